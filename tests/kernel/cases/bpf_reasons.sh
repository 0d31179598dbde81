#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Where the machine lacks something, usmc-kernel (exit 1) and usmc-run
# --kernel (exit 127, the program not run) say what in one line: not root,
# a pid namespace, no bpffs, no cgroup v2, no SMC.  (No BTF, no hook and
# BPF tracing refused cannot be made in this VM: the build host shows the
# last two, see kernel/host-check.sh.)
# shellcheck disable=SC2317 # the functions run through expect and trap
set -u
# guest.sh has sourced lib.sh; by hand: BUILD=... SRC=... bash CASE
# shellcheck source=tests/kernel/lib.sh
declare -F expect >/dev/null || . "$SRC/tests/kernel/lib.sh"
KERNEL=$BUILD/tools/usmc-kernel
RUN=$BUILD/tools/usmc-run
W=$(mktemp -d)
chmod 755 "$W"

# reason_is RC REGEX COMMAND...: COMMAND exits RC with one line matching REGEX.
reason_is() {
	local want=$1 re=$2 rc
	shift 2
	"$@" > "$W/out" 2> "$W/err"
	rc=$?
	echo "    exit $rc: $(cat "$W/err")"
	[ "$rc" = "$want" ] && [ "$(wc -l < "$W/err")" = 1 ] && grep -qE "$re" "$W/err"
}

nobody() {
	setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
}

"$KERNEL" disable --all 2>/dev/null

echo "== not root"
expect "usmc-kernel status" reason_is 1 '^usmc-kernel: needs root' nobody "$KERNEL" status
expect "status does not guess what is pinned" grep -q '^program: *unknown (needs root)' "$W/out"
expect "usmc-kernel enable" reason_is 1 '^usmc-kernel: needs root' nobody "$KERNEL" enable --comm x
expect "usmc-run --kernel" \
	reason_is 127 '^usmc-run: --kernel: needs root' nobody "$RUN" --kernel touch "$W/ran"
expect "the program did not run" [ ! -e "$W/ran" ]

echo "== in a pid namespace"
expect "usmc-run --kernel" reason_is 127 '^usmc-run: --kernel: runs in a pid namespace' \
	unshare --pid --fork --mount-proc "$RUN" --kernel touch "$W/ran"
expect "the program did not run" [ ! -e "$W/ran" ]

echo "== no bpffs"
umount /sys/fs/bpf || fail "umount /sys/fs/bpf"
expect "usmc-kernel enable" reason_is 1 \
	'^usmc-kernel: bpffs is not mounted on /sys/fs/bpf: mount -t bpf bpf /sys/fs/bpf$' \
	"$KERNEL" enable --comm x
expect "usmc-run --kernel does without" "$RUN" --kernel true
mount -t bpf bpf /sys/fs/bpf

echo "== no cgroup v2"
umount /sys/fs/cgroup || fail "umount /sys/fs/cgroup"
expect "enable --cgroup" reason_is 1 '^usmc-kernel: no cgroup v2 hierarchy is mounted' \
	"$KERNEL" enable --cgroup /sys/fs/cgroup/x
expect "enable --comm does without" "$KERNEL" enable --comm x
expect "disable --all" "$KERNEL" disable --all
mount -t cgroup2 cgroup2 /sys/fs/cgroup

echo "== no SMC"
# Only while nothing uses the module yet; then modprobe may not load it.
if modprobe -r smc_diag smc 2>/dev/null; then
	echo "install smc /bin/false" > /etc/modprobe.d/usmc-no-smc.conf
	expect "usmc-kernel enable" reason_is 1 \
		'^usmc-kernel: the kernel has no SMC sockets .*needs Linux 6.11\+ with the smc module' \
		"$KERNEL" enable --comm x
	expect "usmc-run --kernel" reason_is 127 '^usmc-run: --kernel: the kernel has no SMC sockets' \
		"$RUN" --kernel touch "$W/ran"
	expect "the program did not run" [ ! -e "$W/ran" ]
	rm /etc/modprobe.d/usmc-no-smc.conf
	smc_modules || fail "cannot load the smc modules again"
else
	echo "  skipped: the smc module is in use"
fi
expect "nothing pinned on the way" [ ! -e /sys/fs/bpf/usmc ]
rm -rf "$W"
exit 0
