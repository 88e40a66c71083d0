#!/bin/sh
# mqguard: installed, not enabled. The instance's user data writes /etc/mqguard/conf.d, the
# EFS mount unit and the drop-ins, reloads systemd and only then enables and starts mqguard
# (deploy/cloudformation/mqguard.yaml): started earlier, it would run without its configuration.
set -eu
dnf -y install /tmp/mqguard.rpm
rm -f /tmp/mqguard.rpm
systemctl disable mqguard.service 2>/dev/null || :
mqguard --version
systemd-analyze security mqguard.service | tail -n 1
