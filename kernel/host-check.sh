#!/bin/sh
# SPDX-License-Identifier: MIT
# On the build machine, usmc-kernel and usmc-run --kernel either work or
# say in one line what is missing.  Which reason depends on the machine
# (not root, no SMC, BPF tracing refused, ...): any of the documented ones.
#
#   host-check.sh status|run|usage USMC_KERNEL USMC_RUN
set -u
mode=$1 kernel=$2 run=$3
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
reasons='needs root|runs as root without|the kernel has no BTF|the kernel has no SMC sockets|no update_socket_protocol|refuses BPF fmod_ret|bpffs is not mounted|no cgroup v2'

die() { echo "FAIL: $*"; for f in "$tmp"/*; do echo "--- $f"; cat "$f"; done; exit 1; }

# $1 = file, $2 = prefix: exactly one line, with the prefix and a known reason.
one_reason() {
	[ "$(wc -l < "$1")" -eq 1 ] || die "$1: not one line"
	grep -q "^$2" "$1" || die "$1: does not start with '$2'"
	grep -Eq "$reasons" "$1" || die "$1: names no known reason"
}

"$kernel" status > "$tmp/status.out" 2> "$tmp/status.err"
status_rc=$?

case $mode in
status)
	grep -q '^kernel SMC sockets:' "$tmp/status.out" || die "status: no SMC line"
	grep -q '^BPF fmod_ret:' "$tmp/status.out" || die "status: no fmod_ret line"
	grep -Eq '^per-connection policy: +(available \(smc_hs_ctrl\)|unavailable on this kernel \(needs Linux 6.19\+ smc_hs_ctrl\))$' \
		"$tmp/status.out" || die "status: no policy line"
	case $status_rc in
	0) [ ! -s "$tmp/status.err" ] || die "status: exit 0 with a message" ;;
	1) one_reason "$tmp/status.err" "usmc-kernel: " ;;
	*) die "status: exit $status_rc" ;;
	esac
	"$kernel" status --json > "$tmp/json.out" 2> "$tmp/json.err"
	[ $? -eq $status_rc ] || die "status --json: another exit status"
	grep -q '^{.*"kernel_smc":.*"policy":.*"reason":.*}$' "$tmp/json.out" || die "status --json"
	;;
run)
	"$run" --kernel sh -c "echo ran > '$tmp/ran'" > "$tmp/run.out" 2> "$tmp/run.err"
	rc=$?
	if [ $status_rc -eq 0 ]; then
		if [ $rc -ne 0 ] || [ ! -s "$tmp/ran" ]; then die "run: exit $rc on a capable machine"; fi
		"$run" --kernel sh -c 'exit 3'
		[ $? -eq 3 ] || die "run: exit status not passed on"
		exit 0
	fi
	[ $rc -eq 127 ] || die "run: exit $rc, not 127"
	[ ! -e "$tmp/ran" ] || die "run: the program ran without kernel SMC"
	one_reason "$tmp/run.err" "usmc-run: --kernel: "
	# The same reason as status names first.
	sed 's/^usmc-kernel: //' "$tmp/status.err" > "$tmp/want"
	sed 's/^usmc-run: --kernel: //' "$tmp/run.err" > "$tmp/got"
	cmp -s "$tmp/want" "$tmp/got" || die "run: another reason than status"
	;;
usage)
	"$kernel" --help > "$tmp/help" || die "--help"
	grep -q 'disable SELECTOR' "$tmp/help" || die "--help text"
	for args in "bogus" "enable" "disable" "disable --all --pid 1" "enable --pid x" \
	    "enable --comm abcdefghijklmnopq" "status extra"; do
		# shellcheck disable=SC2086 # the words are the arguments
		"$kernel" $args > "$tmp/u.out" 2> "$tmp/u.err"
		rc=$?
		[ $rc -eq 2 ] || die "usmc-kernel $args: exit $rc, not 2"
		[ "$(wc -l < "$tmp/u.err")" -eq 1 ] || die "usmc-kernel $args: not one line"
	done
	"$run" --help | grep -q -- '--kernel' || die "usmc-run --help names no --kernel"
	;;
*) die "mode $mode" ;;
esac
exit 0
