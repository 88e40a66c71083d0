#!/bin/sh
# What the image needs besides MQ: EFS mount helper, the journal binding for mqguard,
# the AWS CLI (hooks, S3 download) and the SSM agent (Session Manager instead of SSH).
set -eu
dnf -y update
if [ "$BASE" = al2023 ]; then
  dnf -y install amazon-efs-utils python3-systemd awscli-2 amazon-ssm-agent nfs-utils
else
  # RHEL 9: amazon-efs-utils is not in RHEL's repositories. AWS's way ("Installing the Amazon EFS client
  # on other Linux distributions"): build its RPM from aws/efs-utils, a pinned release, and install it.
  # Without it TLS mounts of EFS fail, so any failure here stops the build.
  dnf -y install python3-systemd nfs-utils unzip git rpm-build make gcc cmake openssl-devel rust cargo
  if ! rpm -q amazon-efs-utils >/dev/null; then
    rm -rf /tmp/efs-utils
    git clone --depth 1 --branch "${EFS_UTILS_VERSION:?}" https://github.com/aws/efs-utils /tmp/efs-utils
    (cd /tmp/efs-utils && make rpm)
    dnf -y install /tmp/efs-utils/build/amazon-efs-utils*.rpm
    rm -rf /tmp/efs-utils
  fi
  # The subnets have no internet, so no public NTP: RHEL's chrony must use the Amazon Time Sync
  # Service, which every instance reaches at 169.254.169.123 (AWS, "Set the time for your Linux
  # instance"; AL2023 is set up so already). MQ's logs and mqguard's decisions want a right clock.
  if ! grep -q '^server 169.254.169.123' /etc/chrony.conf; then
    sed -i 's/^\(pool\|server\) /# \1 /' /etc/chrony.conf
    echo 'server 169.254.169.123 prefer iburst minpoll 4 maxpoll 4' >> /etc/chrony.conf
  fi
  systemctl enable chronyd
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
