#!/bin/sh
# What the image needs besides MQ: EFS mount helper, the journal binding for mqguard,
# the AWS CLI (hooks, S3 download) and the SSM agent (Session Manager instead of SSH).
set -eu
dnf -y update
if [ "$BASE" = al2023 ]; then
  dnf -y install amazon-efs-utils python3-systemd awscli-2 amazon-ssm-agent nfs-utils
else
  # RHEL 9: amazon-efs-utils is not in RHEL's repositories: build its RPM from aws/efs-utils
  # (make rpm) into a repository this build can reach. Without it TLS mounts of EFS fail: stop here.
  dnf -y install python3-systemd nfs-utils unzip
  dnf -y install amazon-efs-utils || {
    echo "amazon-efs-utils is not in the enabled repositories: build it from aws/efs-utils and add it" >&2
    exit 1
  }
  if ! command -v aws >/dev/null; then
    curl -fsS https://awscli.amazonaws.com/awscli-exe-linux-x86_64.zip -o /tmp/awscli.zip
    unzip -q /tmp/awscli.zip -d /tmp && /tmp/aws/install && rm -rf /tmp/aws /tmp/awscli.zip
  fi
  # RHEL images have no SSM agent, and the stack opens no SSH: without it nobody can reach the
  # instance. AWS publishes the agent's RPM per region (Session Manager docs, "Manually install
  # SSM Agent on RHEL").
  if ! rpm -q amazon-ssm-agent >/dev/null; then
    dnf -y install "https://s3.${AWS_REGION}.amazonaws.com/amazon-ssm-${AWS_REGION}/latest/linux_amd64/amazon-ssm-agent.rpm"
  fi
fi
# Session Manager is the only way in: a missing agent stops the build
systemctl enable amazon-ssm-agent
