#!/bin/sh
# Instance metadata for root, mqm and the image's agents only (deploy/ami/files/imds-owner.nft),
# from early boot on, before any network is up: cloud-init (root) still reads user data; any
# other local user cannot read the role's credentials. IMDS_USERS names the agents' users
# (cwagent when the image has the CloudWatch agent, whose configuration runs it as that user):
# each must exist by now, or the build stops.
set -eu
: "${MQM_UID:?}"
uids="$MQM_UID"
for user in ${IMDS_USERS:-}; do
  uid=$(id -u "$user") || { echo "IMDS_USERS names $user, which does not exist" >&2; exit 1; }
  uids="$uids, $uid"
done
dnf -y install nftables
install -d -m 0755 /etc/mqguard
sed "s/@IMDS_UIDS@/$uids/g" /tmp/mqguard-ami-files/imds-owner.nft > /etc/mqguard/imds-owner.nft
chmod 0644 /etc/mqguard/imds-owner.nft
nft -c -f /etc/mqguard/imds-owner.nft
install -m 0644 /tmp/mqguard-ami-files/mqguard-imds-firewall.service /etc/systemd/system/
systemctl daemon-reload
systemctl enable mqguard-imds-firewall.service
