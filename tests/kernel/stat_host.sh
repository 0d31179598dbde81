#!/bin/sh
# SPDX-License-Identifier: MIT
#
# usmc-stat --kernel on the build host.  A kernel without SMC gets one line
# that says so, and exit status 0, for the listing and the counters alike,
# as text and as JSON; a kernel with SMC gets a listing or counters.  Plain
# usmc-stat never mentions the kernel's SMC.
#
# usage: stat_host.sh USMC_STAT
stat=$1
fail() {
	echo "FAIL: usmc-stat $*"
	exit 1
}

for args in "--kernel" "--kernel -s" "--kernel --json" "--kernel -s --json"; do
	# shellcheck disable=SC2086 # args are words
	out=$("$stat" $args 2>&1) || fail "$args: exit status $?: $out"
	echo "usmc-stat $args: $(printf '%s\n' "$out" | head -n 1)"
	case $out in
	"kernel SMC: not available: "* | '{"kernel_smc": {"available": false, "reason": '*)
		[ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] || fail "$args: more than one line: $out"
		printf '%s\n' "$out" | grep -q 'needs Linux 6.11+' || fail "$args: no advice: $out"
		;;
	*)
		printf '%s\n' "$out" | head -n 1 |
			grep -qE '^PID +COMMAND|^kernel SMC counters|^\{"kernel_(sockets|stats)"' ||
			fail "$args: neither a listing nor 'not available': $out"
		;;
	esac
done
"$stat" | grep -q "kernel SMC" && fail "(plain) mentions the kernel's SMC"
echo "ok"
