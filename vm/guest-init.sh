#!/bin/sh
# PID 1 of the cenalloc test guest (see xtask/src/vm.rs). The root file system is the host's,
# read-only over 9p. This mounts what the kernel does not, mounts the writable share from the
# host, runs the command the host left there, writes its exit status back and powers off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /dev/shm && mount -t tmpfs -o mode=1777 tmpfs /dev/shm

ctl=
for arg in $(cat /proc/cmdline); do
  case "$arg" in cenalloc.ctl=*) ctl="${arg#cenalloc.ctl=}" ;; esac
done

poweroff() { sync; echo o > /proc/sysrq-trigger; sleep 10; }

if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 out /mnt; then
  echo "cenalloc-guest: cannot mount the output share" > /dev/console
  poweroff
fi
if [ -z "$ctl" ] || [ ! -f "/mnt/$ctl/env.sh" ]; then
  echo "cenalloc-guest: no control directory (cenalloc.ctl=$ctl)" > /dev/console
  poweroff
fi
# shellcheck disable=SC1090
. "/mnt/$ctl/env.sh"

# A writable /tmp for the command. A workspace that itself lives under the host's /tmp (a
# fresh clone made with mktemp) stays visible: the host's /tmp is kept aside and the workspace
# bound back into the new /tmp at its own path.
case "$CENALLOC_VM_ROOT" in
  /tmp/*)
    mkdir -p /run/host-tmp && mount --bind /tmp /run/host-tmp
    mount -t tmpfs -o mode=1777 tmpfs /tmp
    mkdir -p "$CENALLOC_VM_ROOT"
    mount --bind "/run/host-tmp/${CENALLOC_VM_ROOT#/tmp/}" "$CENALLOC_VM_ROOT"
    ;;
  *) mount -t tmpfs -o mode=1777 tmpfs /tmp ;;
esac

# The share appears at the same path as on the host, so paths under it mean the same thing.
mount --bind /mnt "$CENALLOC_VM_SHARE"
c="$CENALLOC_VM_SHARE/$ctl"
mkdir -p /run/user/0 && chmod 0700 /run/user/0
echo booted > "$c/booted"
echo "cenalloc-guest: booted; running the command in $CENALLOC_VM_CWD" > /dev/console
cd "$CENALLOC_VM_CWD" || { echo 125 > "$c/status"; poweroff; }
sh "$c/run.sh" > "$c/output" 2>&1
status=$?
echo "cenalloc-guest: the command exited with status $status" > /dev/console
echo $status > "$c/status.tmp" && mv "$c/status.tmp" "$c/status"
poweroff
