#!/bin/sh
# Validation of the image: what an AMI can be checked for before any instance mounts EFS
# (mqm's ids, kernel parameters, units, polkit rule). A FAIL stops the build.
# On each new instance, run `mqguard preflight` (with its configuration and EFS mounted) first.
set -eu
mqguard preflight --image
command -v mount.efs >/dev/null || { echo "amazon-efs-utils (mount.efs) is missing: TLS mounts of EFS need it" >&2; exit 1; }
# The storage check's image sanity on a scratch directory of the root volume (not EFS: that is measured on each
# instance, `mqguard preflight --storage`, docs/real-mq.md "Is my EFS fast enough?"); it removes what it writes.
scratch=$(mktemp -d /var/tmp/mqguard-storage-check.XXXXXX)
mqguard preflight --storage --path "$scratch" --seconds 5
rm -rf "$scratch"
