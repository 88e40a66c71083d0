#!/bin/sh
# The kernel parameters IBM documents for a queue manager are MINIMUMS: raise a value only
# where this host's is lower (RHEL 9's and AL2023's defaults exceed most of them; lowering
# kernel.shmall or kernel.sem would hurt). `mqguard preflight --write-sysctl` compares the
# running values with IBM's table and writes only what falls short. The units carry the
# process limits (mq@.service and mq-prepare@.service: LimitNOFILE=10240, LimitNPROC=4096);
# limits.d covers an operator's interactive mqm session.
set -eu
mqguard preflight --write-sysctl /etc/sysctl.d/30-ibmmq.conf
sysctl --system >/dev/null
cat > /etc/security/limits.d/30-ibmmq.conf <<'CONF'
mqm  hard  nofile  10240
mqm  soft  nofile  10240
mqm  hard  nproc   4096
mqm  soft  nproc   4096
CONF
