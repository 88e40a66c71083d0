#!/bin/sh
# Instance metadata for root and mqm only (deploy/ami/files/imds-owner.nft), from early boot on,
# before any network is up: cloud-init (root) still reads user data; a local user cannot read
# the role's credentials.
set -eu
dnf -y install nftables
install -d -m 0755 /etc/mqguard
sed "s/@MQM_UID@/$MQM_UID/g" /tmp/mqguard-ami-files/imds-owner.nft > /etc/mqguard/imds-owner.nft
chmod 0644 /etc/mqguard/imds-owner.nft
nft -c -f /etc/mqguard/imds-owner.nft
install -m 0644 /tmp/mqguard-ami-files/mqguard-imds-firewall.service /etc/systemd/system/
systemctl daemon-reload
systemctl enable mqguard-imds-firewall.service
