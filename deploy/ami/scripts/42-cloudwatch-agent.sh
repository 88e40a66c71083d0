#!/bin/sh
# The CloudWatch agent (packer -var cloudwatch_agent=true), for teams without Prometheus: it scrapes
# mqguard's /metrics and publishes them in the namespace mqguard (monitoring/cloudwatch). Installed
# with its configuration, not started: the stack's user data starts it when CloudWatchAgent=true.
# It runs as cwagent (its configuration's run_as_user), which 45-imds-firewall.sh then admits to
# instance metadata (IMDS_USERS): without the role's credentials from there it publishes nothing.
set -eu
[ "${CLOUDWATCH_AGENT:-false}" = true ] || { echo "no CloudWatch agent in this image"; exit 0; }
if [ "$BASE" = al2023 ]; then
  dnf -y install amazon-cloudwatch-agent
else
  # AWS publishes the agent's RPM per region ("Download the CloudWatch agent package")
  dnf -y install "https://amazoncloudwatch-agent-${AWS_REGION}.s3.${AWS_REGION}.amazonaws.com/redhat/amd64/latest/amazon-cloudwatch-agent.rpm"
fi
id cwagent
etc=/opt/aws/amazon-cloudwatch-agent/etc
install -m 0644 /tmp/mqguard-cloudwatch/amazon-cloudwatch-agent.json "$etc/mqguard-agent.json"
install -m 0644 /tmp/mqguard-cloudwatch/mqguard-prometheus.yaml "$etc/mqguard-prometheus.yaml"
install -m 0755 /tmp/mqguard-ami-files/mqguard-cloudwatch-agent-start /usr/local/sbin/
install -m 0644 /tmp/mqguard-ami-files/mqguard-cloudwatch-agent.service /etc/systemd/system/
systemctl daemon-reload
