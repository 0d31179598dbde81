#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Builds, once, what run-in-vm.sh boots: Debian trixie's stock kernel (SMC,
# smc_diag and rdma_rxe as modules, BTF) with a root file system for the
# kernel tests.  Into ${USMC_VM_CACHE:-/var/tmp/usmc-vm}:
#   rootfs/      debootstrap --variant=minbase of trixie
#   vmlinuz      its kernel
#   initrd.img   busybox and the modules needed to mount the root disk
#   rootfs.img   ext4 image of rootfs/; run-in-vm.sh opens it snapshot=on
# The stamp holds a hash of this script, of initramfs-init and of the kernel
# choice, so editing the package list rebuilds and an unchanged setup returns
# at once.
#
# --kernel backports (or USMC_VM_KERNEL=backports) builds a second image, into
# /var/tmp/usmc-vm-bpo, whose kernel is trixie-backports' linux-image-amd64
# instead of trixie's 6.12.  The backports source is added inside the guest's
# root file system only.
#
# usage: sudo tests/vm/build-image.sh [--kernel stock|backports] [--force]
# env:   USMC_VM_KERNEL (stock or backports), USMC_VM_CACHE,
#        USMC_VM_MIRROR (default http://deb.debian.org/debian)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
kernel=${USMC_VM_KERNEL:-stock}
force=
while [ $# -gt 0 ]; do
	case $1 in
	--force) force=1 ;;
	--kernel) [ $# -ge 2 ] || { echo "build-image: --kernel wants stock or backports" >&2; exit 2; }
		kernel=$2
		shift ;;
	*) echo "usage: build-image.sh [--kernel stock|backports] [--force]" >&2; exit 2 ;;
	esac
	shift
done
case $kernel in
stock) default_cache=/var/tmp/usmc-vm ;;
backports) default_cache=/var/tmp/usmc-vm-bpo ;;
*) echo "build-image: the kernel is stock or backports, not '$kernel'" >&2; exit 2 ;;
esac
cache=${USMC_VM_CACHE:-$default_cache}
mirror=${USMC_VM_MIRROR:-http://deb.debian.org/debian}
packages=kmod,iproute2,rdma-core,ibverbs-providers,busybox-static
packages+=,procps,bpftool,libbpf1,libelf1t64,zlib1g,util-linux,iputils-ping
# The backports kernel comes after debootstrap, from inside the root.
[ "$kernel" = stock ] && packages=linux-image-amd64,$packages
# What the initramfs loads before it can mount the root disk and the 9p shares.
initrd_modules="virtio_pci virtio_blk ext4 9pnet_virtio 9p virtio_console"

die() { echo "build-image: $*" >&2; exit 1; }
say() { echo "build-image: $*" >&2; }

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap and chroot need it)"
for tool in debootstrap chroot mke2fs cpio gzip xz sha256sum flock; do
	command -v "$tool" >/dev/null ||
		die "missing host tool '$tool' (apt-get install debootstrap e2fsprogs cpio gzip xz-utils)"
done

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9 # two test runs starting together must not both debootstrap

stamp=$( (cat "$0" "$here/initramfs-init"; echo "kernel=$kernel") | sha256sum | cut -d' ' -f1)
if [ -z "$force" ] && [ "$(cat "$cache/stamp" 2>/dev/null)" = "$stamp" ] &&
	[ -s "$cache/vmlinuz" ] && [ -s "$cache/initrd.img" ] && [ -s "$cache/rootfs.img" ]; then
	exit 0
fi
rm -f "$cache/stamp"

root=$cache/rootfs
log=$cache/debootstrap.log
say "debootstrap trixie into $root (a few minutes; log in $log)"
rm -rf "$root"
if ! debootstrap --variant=minbase --include="$packages" trixie "$root" "$mirror" >"$log" 2>&1; then
	tail -n 30 "$log" >&2
	die "debootstrap failed; whole log in $log"
fi
if [ "$kernel" = backports ]; then
	say "linux-image-amd64 from trixie-backports (log in $log)"
	echo "deb $mirror trixie-backports main" >"$root/etc/apt/sources.list.d/backports.list"
	mount -t proc proc "$root/proc"
	bpo_rc=0
	{
		chroot "$root" apt-get update &&
			DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get install -y \
				--no-install-recommends -t trixie-backports linux-image-amd64
	} >>"$log" 2>&1 || bpo_rc=$?
	umount "$root/proc"
	if [ $bpo_rc != 0 ]; then
		tail -n 30 "$log" >&2
		die "installing the backports kernel failed; whole log in $log"
	fi
	rm -rf "$root"/var/lib/apt/lists/*
fi
# The Debian initrd is never booted and dpkg's downloads are not needed.
rm -f "$root"/boot/initrd.img-* "$root"/var/cache/apt/archives/*.deb
echo usmc-vm >"$root/etc/hostname"

kver=$(ls "$root/lib/modules" | sort -V | tail -n 1)
[ -n "$kver" ] || die "no kernel modules in $root/lib/modules"
cp "$root/boot/vmlinuz-$kver" "$cache/vmlinuz"

# The initramfs: busybox, the modules (decompressed, since busybox insmod
# may not read .xz), their load order, and the init script.
ir=$(mktemp -d "$cache/initrd.XXXXXX")
trap 'rm -rf "$ir"' EXIT
mkdir -p "$ir/bin" "$ir/lib/modules" "$ir/dev" "$ir/proc" "$ir/sys" "$ir/newroot"
cp "$root/usr/bin/busybox" "$ir/bin/busybox"
cp "$here/initramfs-init" "$ir/init"
chmod 755 "$ir/init"
: >"$ir/lib/modules/order"
# The guest's own modprobe knows its modules.dep; builtins print "builtin".
# shellcheck disable=SC2086 # a list of module names
chroot "$root" modprobe -a -S "$kver" --show-depends $initrd_modules |
	awk '$1 == "insmod" && !seen[$2]++ { print $2 }' |
	while read -r ko; do
		name=$(basename "$ko")
		name=${name%.xz}
		case $ko in
		*.xz) xz -dc "$root$ko" >"$ir/lib/modules/$name" ;;
		*) cp "$root$ko" "$ir/lib/modules/$name" ;;
		esac
		echo "$name" >>"$ir/lib/modules/order"
	done
(cd "$ir" && find . | sort | cpio -o -H newc --quiet) | gzip -1 >"$cache/initrd.img"

# Sized to the tree plus room for what the tests write (a snapshot absorbs it).
size_mb=$(($(du -sm "$root" | cut -f1) + 512))
rm -f "$cache/rootfs.img"
truncate -s "${size_mb}M" "$cache/rootfs.img"
mke2fs -q -t ext4 -L usmc-vm -E root_owner=0:0 -d "$root" "$cache/rootfs.img"

echo "$stamp" >"$cache/stamp"
say "kernel $kver, $(wc -l <"$ir/lib/modules/order") initrd modules, image ${size_mb}M in $cache"
