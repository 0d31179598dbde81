#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The differential semantics suite: runs each case of usmc_diff twice,
# once as a plain program (kernel TCP) and once under usmc-run with both
# ends in shared memory, and compares the two transcripts line by line.
#
#   same CASE    the transcripts are identical and the usmc run went
#                through shared memory
#   DIFF CASE    they differ: the diff follows
#   FAIL CASE    the plain run failed (the case itself is broken), or the
#                usmc run did not use shared memory as the case expects
#
# Proof of the path: each run has its own registry directory
# (USMC_REGISTRY_DIR), so `usmc-stat -s` shows the counters of that run
# alone.  The case list (usmc_diff --list) says how many connections must
# have used shared memory (smcd_connections at least that, bytes sent
# through it) and how many must have fallen back to TCP (exactly).  The
# plain run must leave no counters at all.
#
# usage: run.sh [--expect-diff] BUILD_DIR [CASE...]     (no CASE: all of them)
#   --expect-diff   for cases where usmc is known to differ: DIFF passes
#                   when its changed lines are exactly known/CASE.diff and
#                   the usmc run took the expected path, and so does "same",
#                   with a note (some differences come
#                   and go with timing or with the compiler).  After a fix,
#                   run.sh BUILD_DIR CASE (without the option) is the check,
#                   and the case moves to USMC_DIFF_CASES in diff.cmake
#   run.sh --registered BUILD_DIR CASE...
#                   checks that the CASEs (what diff.cmake registers) are
#                   exactly the cases usmc_diff has
# Exit status: 0 all as expected, 1 otherwise, 77 skipped (USMC_PRELOAD_SKIP).

set -u
SKIP=77
RUN_LIMIT=120

mode=compare
here=$(cd "$(dirname "$0")" && pwd)
case ${1:-} in
--expect-diff) mode=expect-diff; shift ;;
--registered) mode=registered; shift ;;
esac
build=${1:?usage: run.sh [--expect-diff|--registered] BUILD_DIR [CASE...]}
shift
prog=$build/tests/usmc_diff
run=$build/tools/usmc-run
stat=$build/tools/usmc-stat
for t in "$prog" "$run" "$stat"; do
	[ -x "$t" ] || { echo "run.sh: $t is missing; build first" >&2; exit 2; }
done

if [ "$mode" = registered ]; then
	have=$("$prog" --list | cut -d' ' -f1 | sort)
	want=$(printf '%s\n' "$@" | sort)
	[ "$have" = "$want" ] && { echo "all $(echo "$have" | wc -l) cases registered"; exit 0; }
	echo "cases of usmc_diff not registered in diff.cmake:"
	printf '%s\n' "$have" | grep -vxF -e "$want" | sed 's/^/  /'
	echo "registered cases usmc_diff does not have:"
	printf '%s\n' "$want" | grep -vxF -e "$have" | sed 's/^/  /'
	exit 1
fi

if [ -n "${USMC_PRELOAD_SKIP:-}" ]; then
	echo "skipped: $USMC_PRELOAD_SKIP"
	exit $SKIP
fi

tmp=$(mktemp -d /tmp/usmc-diff.XXXXXX) || exit 2
trap 'rm -rf "$tmp"' EXIT
failed=0

# counter NAME: a counter of the usmc run, from usmc-stat --json (0 if none).
counter() {
	v=$(printf '%s\n' "$stats" | sed -n "s/.*\"$1\": \([0-9]*\).*/\1/p")
	echo "${v:-0}"
}

# runs CASE plain or under usmc-run: runs KIND CASE DIR
runs() {
	mkdir -p "$3/$1-reg" && chmod 700 "$3/$1-reg"
	if [ "$1" = plain ]; then
		USMC_REGISTRY_DIR=$3/$1-reg timeout -k 5 $RUN_LIMIT "$prog" --case "$2" \
			>"$3/$1" 2>"$3/$1.err"
	else
		USMC_REGISTRY_DIR=$3/$1-reg timeout -k 5 $RUN_LIMIT "$run" "$prog" --case "$2" \
			>"$3/$1" 2>"$3/$1.err"
	fi
	rc=$?
	echo "exit $rc" >>"$3/$1"
	return $rc
}

# shm_ok CONNS FALLBACKS: whether the usmc run's counters show the expected path.
shm_ok() {
	smcd=$(counter smcd_connections) fb=$(counter fallbacks) sent=$(counter bytes_sent)
	path="counters: $smcd shared-memory connection ends, $sent bytes through shared memory, $fb fallbacks"
	[ "$fb" -eq "$2" ] || return 1
	[ "$1" -eq 0 ] && return 0
	[ "$smcd" -ge "$1" ] && [ "$sent" -gt 0 ]
}

show() {
	echo "--- $1:"
	sed 's/^/    /' "$2"
}

run_case() {
	c=$1
	line=$("$prog" --list | awk -v c="$c" '$1 == c')
	if [ -z "$line" ]; then
		echo "FAIL $c: no such case"
		failed=1
		return
	fi
	conns=$(echo "$line" | cut -d' ' -f2)
	fallbacks=$(echo "$line" | cut -d' ' -f3)
	d=$tmp/$c
	mkdir -p "$d"
	if ! runs plain "$c" "$d"; then
		echo "FAIL $c: the plain run failed, the case is broken"
		show "plain transcript" "$d/plain"
		show "plain stderr" "$d/plain.err"
		failed=1
		return
	fi
	if [ -n "$(ls -A "$d/plain-reg")" ]; then
		echo "FAIL $c: the plain run left usmc counters: it was not plain"
		failed=1
		return
	fi
	runs usmc "$c" "$d"
	stats=$(USMC_REGISTRY_DIR=$d/usmc-reg "$stat" -s --json 2>/dev/null)
	if diff -u --label "plain TCP" --label "usmc-run" "$d/plain" "$d/usmc" >"$d/diff"; then
		if shm_ok "$conns" "$fallbacks"; then
			verdict=same
			echo "same $c ($path)"
		else
			verdict=fail
			echo "FAIL $c: same transcript, but the usmc run did not take the expected path"
			echo "    expected: at least $conns connections in shared memory, $fallbacks fallbacks"
			echo "    $path"
		fi
	else
		verdict=diff
		echo "DIFF $c"
		sed 's/^/    /' "$d/diff"
		shm_ok "$conns" "$fallbacks" || verdict=fail
		echo "    $path"
		[ -s "$d/usmc.err" ] && show "usmc-run stderr" "$d/usmc.err"
		# A known difference is exactly the lines tests/diff/known/CASE.diff holds.
		if [ "$mode" = expect-diff ] &&
			! grep '^[-+][^-+]' "$d/diff" | cmp -s - "$here/known/$c.diff"; then
			verdict=fail
			echo "FAIL $c: not its known difference (tests/diff/known/$c.diff)"
		fi
	fi
	case $mode/$verdict in
	compare/same | expect-diff/diff) ;;
	expect-diff/same)
		echo "    note: $c is known to differ and did not this time; if \`run.sh BUILD_DIR $c\` passes"
		echo "    every time, move it to USMC_DIFF_CASES in tests/diff/diff.cmake"
		;;
	*) failed=1 ;;
	esac
}

cases=$*
[ -n "$cases" ] || cases=$("$prog" --list | cut -d' ' -f1)
for c in $cases; do
	run_case "$c"
done
exit $failed
