#!/bin/bash
# Boot the real systemd as PID 1 of a new PID + mount namespace, over a
# copy-on-write overlay of the host's /. Run as:
#   unshare --pid --fork --mount --propagation private nsboot.sh STATEDIR [SHARED...]
# Each SHARED host directory is bind-mounted at the same path in the guest, so
# what the guest writes there (simulator logs, "EFS" data) outlives the guest.
# Nothing the guest does reaches the host's files: writes land in a tmpfs
# upper layer, and the guest's /run and /tmp are fresh tmpfs mounts (a bare
# systemd in a namespace would clean the host's /tmp at boot).
set -euo pipefail
state=$1
shift
mount --make-rprivate /
mount -t tmpfs -o size=512m,mode=0755 mqguard-systest "$state"
mkdir -p "$state/upper" "$state/work" "$state/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$state/upper,workdir=$state/work" "$state/root"
root=$state/root
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --rbind /dev "$root/dev"
mount -t tmpfs -o mode=0755 tmpfs "$root/run"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
for dir in "$@"; do
  mount --bind "$dir" "$root$dir"
done
# cloud-init (installed for the deploy kit's schema checks) must not run in the guest
if [ -d "$root/etc/cloud" ]; then touch "$root/etc/cloud/cloud-init.disabled"; fi
# the host's machine-id must not be shared; systemd writes a transient one
rm -f "$root/etc/machine-id" && touch "$root/etc/machine-id"
mkdir -p "$root/oldroot"
cd "$root"
pivot_root . oldroot
umount -l /oldroot
rmdir /oldroot 2>/dev/null || true
# A real host's systemd makes / shared at boot (it skips that in a container):
# units with a private mount namespace then see mounts made after they started,
# as on an EC2 instance where EFS is mounted late.
mount --make-rshared /
exec env -i container=mqguard-systest PATH=/usr/sbin:/usr/bin:/sbin:/bin \
  /lib/systemd/systemd --system --unit=multi-user.target --log-target=journal --show-status=no
