#!/bin/sh
# The kernel parameters and limits IBM documents for a queue manager on Linux (mqconfig's
# minimums). The units carry the process limits themselves (mq@.service: LimitNOFILE=10240,
# LimitNPROC=4096); limits.d covers an operator's interactive mqm session.
set -eu
cat > /etc/sysctl.d/30-ibmmq.conf <<'CONF'
# IBM MQ: minimums checked by mqconfig
kernel.shmmni = 4096
kernel.shmall = 2097152
kernel.shmmax = 268435456
kernel.sem = 32 4096 32 128
fs.file-max = 524288
kernel.pid_max = 120000
kernel.threads-max = 32768
# detect dead client connections in minutes, not hours
net.ipv4.tcp_keepalive_time = 300
CONF
sysctl --system >/dev/null
cat > /etc/security/limits.d/30-ibmmq.conf <<'CONF'
mqm  hard  nofile  10240
mqm  soft  nofile  10240
mqm  hard  nproc   4096
mqm  soft  nproc   4096
CONF
