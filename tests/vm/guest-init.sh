#!/bin/bash
# SPDX-License-Identifier: MIT
#
# PID 1 of the test VM; the initramfs hands over to it.  run-in-vm.sh puts a
# fresh copy, the script, its arguments and its environment on the control
# share (/run/usmc); the script's status goes back there as "rc".
ctl=/run/usmc
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 TERM=dumb

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkdir -p /dev/pts /dev/shm /host
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /tmp
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t debugfs debugfs /sys/kernel/debug
mount -t tracefs tracefs /sys/kernel/tracing
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 usmc_host /host
hostname usmc-vm
ip link set lo up

args=() envs=()
mapfile -d '' -t args <"$ctl/args"
mapfile -d '' -t envs <"$ctl/env"
for e in "${envs[@]}"; do
	export "${e?}"
done

# Through a pipe rather than straight to the console, so that programs see
# no terminal and print as they would into a log.
cd /host || cd /
# Milestones on the kernel console, whose tail a timeout prints.
echo "usmc-vm: script started"
bash "$ctl/script" "${args[@]}" </dev/null 2>&1 | cat >/dev/hvc0
rc=${PIPESTATUS[0]}
echo "usmc-vm: script ended with status $rc"
echo "$rc" >"$ctl/rc"

umount /host
sync
busybox poweroff -f
echo o >/proc/sysrq-trigger
