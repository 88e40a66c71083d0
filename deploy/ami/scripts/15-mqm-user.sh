#!/bin/sh
# The mqm user and group with FIXED ids, before IBM MQ's installer would create them with
# whatever ids are free: every host that mounts the queue manager's EFS must have the same
# UID and GID (IBM: essential for shared data and multi-instance), or a rebuilt AMI cannot
# read the data. Below 1000 so logind's RemoveIPC= never removes MQ's shared memory.
set -eu
: "${MQM_UID:?}" "${MQM_GID:?}"
if getent group mqm >/dev/null; then
  have=$(getent group mqm | cut -d: -f3)
  [ "$have" = "$MQM_GID" ] || { echo "group mqm exists with gid $have, expected $MQM_GID" >&2; exit 1; }
else
  groupadd --system --gid "$MQM_GID" mqm
fi
if getent passwd mqm >/dev/null; then
  have=$(id -u mqm)
  [ "$have" = "$MQM_UID" ] || { echo "user mqm exists with uid $have, expected $MQM_UID" >&2; exit 1; }
else
  useradd --system --uid "$MQM_UID" --gid mqm --home-dir /var/mqm --no-create-home --shell /bin/bash mqm
fi
id mqm
