#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Runs inside the test VM (see run-vm-tests.sh): loads the kernel's SMC
# modules, then runs every tests/kernel/cases/*.sh in name order, each in a
# bash of its own that has sourced lib.sh, in a fresh directory, with BUILD
# (the build tree) and SRC (the sources) set.  Prints "ok NAME" or
# "FAIL NAME" and the case's output, then a summary; exits 1 if a case
# failed.  VERBOSE=1 prints the output of passing cases too.
#
# usage: guest.sh [PATTERN...]   only the cases whose name matches a glob
set -uo pipefail
export BUILD=${BUILD:-/host/build-kvm} SRC=${SRC:-/host}
limit=${CASE_TIMEOUT:-180}

# rdma_rxe is loaded here too, so that its first use in a case is not also
# the moment it registers with smc.
for m in smc smc_diag rdma_rxe; do
	modprobe "$m" || { echo "FAIL: modprobe $m (kernel $(uname -r))"; exit 1; }
done

# run_case FILE: the case's exit status; 124 if it ran out of time.  Its
# own session, so that whatever it leaves running can be stopped.
run_case() {
	local pid t
	setsid bash -c 'cd "$(mktemp -d)" && . "$SRC/tests/kernel/lib.sh" && . "$1"' case "$1" &
	pid=$!
	for ((t = 0; t < limit * 10; t++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL -- "-$pid" 2>/dev/null
		wait "$pid"
		kill -KILL -- "-$pid" 2>/dev/null
		return 124
	fi
	wait "$pid"
	t=$?
	kill -KILL -- "-$pid" 2>/dev/null
	return "$t"
}

passed=0 failed=()
start=$SECONDS
# selected NAME: whether the command line asks for this case.
selected() {
	local p
	[ $# -eq 1 ] && return 0
	for p in "${@:2}"; do
		# shellcheck disable=SC2053 # a glob on purpose
		[[ $1 == $p ]] && return 0
	done
	return 1
}

for c in "$SRC"/tests/kernel/cases/*.sh; do
	name=$(basename "$c" .sh)
	selected "$name" "$@" || continue
	log=$(mktemp)
	t0=$(date +%s%N)
	run_case "$c" >"$log" 2>&1
	rc=$?
	secs=$(( ($(date +%s%N) - t0) / 10000000 ))
	secs=$((secs / 100)).$(printf '%02d' $((secs % 100)))
	if [ "$rc" = 0 ]; then
		echo "ok $name (${secs}s)"
		passed=$((passed + 1))
		[ "${VERBOSE:-0}" = 1 ] && sed 's/^/    /' "$log"
	else
		echo "FAIL $name (${secs}s, exit status $rc$([ "$rc" = 124 ] && echo ", timeout after ${limit}s"))"
		sed 's/^/    /' "$log"
		failed+=("$name")
	fi
	rm -f "$log"
done
echo "kernel SMC cases: $passed passed, ${#failed[@]} failed$([ ${#failed[@]} -gt 0 ] && echo ": ${failed[*]}") ($((SECONDS - start))s, kernel $(uname -r))"
[ ${#failed[@]} = 0 ]
