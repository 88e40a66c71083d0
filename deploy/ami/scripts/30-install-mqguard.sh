#!/bin/sh
# mqguard: enabled, not started. The instance's user data writes /etc/mqguard/conf.d and
# starts it once EFS is mounted (deploy/cloudformation/mqguard.yaml).
set -eu
dnf -y install /tmp/mqguard.rpm
rm -f /tmp/mqguard.rpm
systemctl enable mqguard.service
mqguard --version
systemd-analyze security mqguard.service | tail -n 1
