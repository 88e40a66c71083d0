#!/bin/sh
# What the image needs besides MQ: EFS mount helper, the journal binding for mqguard,
# the AWS CLI (hooks, S3 download) and the SSM agent (Session Manager instead of SSH).
set -eu
dnf -y update
if [ "$BASE" = al2023 ]; then
  dnf -y install amazon-efs-utils python3-systemd awscli-2 amazon-ssm-agent nfs-utils
else
  # RHEL 9: efs-utils from its RPM release (build it, or use your mirror); the kernel NFS client
  # covers the nfs4.1 mount mode of the stack.
  dnf -y install python3-systemd nfs-utils unzip
  if ! command -v aws >/dev/null; then
    curl -fsS https://awscli.amazonaws.com/awscli-exe-linux-x86_64.zip -o /tmp/awscli.zip
    unzip -q /tmp/awscli.zip -d /tmp && /tmp/aws/install && rm -rf /tmp/aws /tmp/awscli.zip
  fi
fi
systemctl enable amazon-ssm-agent 2>/dev/null || true
