#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Boots the image of build-image.sh under qemu and runs SCRIPT in it, as root
# with bash.  The script's output streams to stdout and its exit status is
# this script's.  The repository root is shared read-write at /host (the
# script starts there), so a build tree made on this host runs in the guest.
#
# usage: run-in-vm.sh [-t TIMEOUT] [-c CPUS] [-m MEM] [-a tcg|kvm]
#                     [-e NAME=VALUE]... SCRIPT [ARGS]
#   -t  seconds before the VM is stopped (default 600)
#   -c  vCPUs (default 2)    -m  memory (default 1G)
#   -a  accelerator (default tcg: this host's KVM cannot run a stock kernel)
#   -e  environment variable for SCRIPT (repeatable)
# exit: SCRIPT's status; 125 if the VM gave none (no boot, or timeout), with
# the tail of the kernel console; 2 for a usage error or a missing image.
# env:  USMC_VM_KERNEL (stock, default: trixie's 6.12, from /var/tmp/usmc-vm;
#       backports: trixie-backports' kernel, from /var/tmp/usmc-vm-bpo; both
#       made by build-image.sh), USMC_VM_CACHE (the image directory itself)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
case ${USMC_VM_KERNEL:-stock} in
stock) cache=${USMC_VM_CACHE:-/var/tmp/usmc-vm} ;;
backports) cache=${USMC_VM_CACHE:-/var/tmp/usmc-vm-bpo} ;;
*) echo "run-in-vm: USMC_VM_KERNEL is stock or backports, not '$USMC_VM_KERNEL'" >&2; exit 2 ;;
esac
timeout=600 cpus=2 mem=1G accel=tcg
envs=()

usage() {
	sed -n '9,13p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}
die() {
	echo "run-in-vm: $*" >&2
	exit 2
}

while getopts "t:c:m:a:e:h" opt; do
	case $opt in
	t) timeout=$OPTARG ;;
	c) cpus=$OPTARG ;;
	m) mem=$OPTARG ;;
	a) accel=$OPTARG ;;
	e) [[ $OPTARG == [A-Za-z_]*=* ]] || die "-e wants NAME=VALUE, not '$OPTARG'"
	   envs+=("$OPTARG") ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || usage
script=$1
shift
[ -r "$script" ] || die "cannot read $script"
case $accel in
tcg) cpu=max ;;
kvm) cpu=host ;;
*) die "-a wants tcg or kvm" ;;
esac
for f in vmlinuz initrd.img rootfs.img; do
	[ -s "$cache/$f" ] ||
		die "no $cache/$f: run tests/vm/build-image.sh$([ "${USMC_VM_KERNEL:-stock}" = backports ] && echo ' --kernel backports') (as root) first"
done
qemu=$(command -v qemu-system-x86_64) || die "qemu-system-x86_64 not found (apt-get install qemu-system-x86)"

run=$(mktemp -d "${TMPDIR:-/tmp}/usmc-vm.XXXXXX")
qemu_pid=
cleanup() {
	if [ -n "$qemu_pid" ]; then
		kill "$qemu_pid" 2>/dev/null || true
		wait "$qemu_pid" 2>/dev/null || true
	fi
	rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

cp "$here/guest-init.sh" "$run/guest-init.sh"
cp "$script" "$run/script"
: >"$run/args"
: >"$run/env"
# NUL-separated, so arguments may hold any character but NUL.
for a in "$@"; do printf '%s\0' "$a" >>"$run/args"; done
for e in "${envs[@]}"; do printf '%s\0' "$e" >>"$run/env"; done

# -nodefaults: no emulated VGA or network card to probe, which under TCG
# costs seconds.  The script's output comes through a virtio console on our
# stdout; the kernel's own console goes to a file for when things go wrong.
boot() {
	rm -f "$run/console.log"
	timeout -k 5 "$timeout" "$qemu" -nodefaults -no-user-config -no-reboot \
		-machine q35,accel="$accel" -cpu "$cpu" -smp "$cpus" -m "$mem" \
		-display none -monitor none \
		-kernel "$cache/vmlinuz" -initrd "$cache/initrd.img" \
		-append "console=ttyS0 quiet panic=-1 mitigations=off" \
		-drive "file=$cache/rootfs.img,if=virtio,format=raw,snapshot=on" \
		-fsdev "local,id=ctl,path=$run,security_model=none" \
		-device virtio-9p-pci,fsdev=ctl,mount_tag=usmc_ctl \
		-fsdev "local,id=host,path=$repo,security_model=none" \
		-device virtio-9p-pci,fsdev=host,mount_tag=usmc_host \
		-device virtio-serial-pci -chardev stdio,id=out,signal=off \
		-device virtconsole,chardev=out \
		-serial "file:$run/console.log" </dev/null &
	qemu_pid=$!
	qemu_rc=0
	wait "$qemu_pid" || qemu_rc=$?
	qemu_pid=
}

boot
# A guest kernel that died while booting, before the script began (a panic
# in its early init under TCG's emulation, seen once in the suite's
# runs), ran nothing of ours: it boots once more.  A script that began
# and gave no status is reported as it is.
if [ ! -s "$run/rc" ] && ! grep -q "usmc-vm: script started" "$run/console.log" 2>/dev/null; then
	echo "run-in-vm: the guest died before the script began (qemu exited with $qemu_rc); booting again; its console's last lines:" >&2
	tail -n 5 "$run/console.log" >&2 || true
	boot
fi

if [ ! -s "$run/rc" ]; then
	why="qemu exited with $qemu_rc"
	[ "$qemu_rc" = 124 ] && why="timeout after ${timeout}s"
	echo "run-in-vm: the VM gave no exit status ($why); last console lines:" >&2
	tail -n 30 "$run/console.log" >&2 || true
	exit 125
fi
exit "$(cat "$run/rc")"
