#!/bin/sh
# Validation of the image: what an AMI can be checked for before any instance mounts EFS
# (mqm's ids, kernel parameters, units, polkit rule). A FAIL stops the build.
# On each new instance, run `mqguard preflight` (with its configuration and EFS mounted) first.
set -eu
mqguard preflight --image
command -v mount.efs >/dev/null || { echo "amazon-efs-utils (mount.efs) is missing: TLS mounts of EFS need it" >&2; exit 1; }
