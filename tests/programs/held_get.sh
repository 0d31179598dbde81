# SPDX-License-Identifier: MIT
#
# held_get HOLD OUT CMD...: runs CMD, which writes a body of several MiB
# to its stdout (curl URL), into the file OUT through a reader that takes
# the first byte, then runs HOLD (`sleep 2`, or a wait until usmc-stat
# has looked) and only then reads the rest.  Meanwhile CMD blocks on the
# full pipe and the server's writes on the full socket buffers or ring
# behind it: the connection stays open with data in flight for as long as
# HOLD lasts, whatever the load, for usmc-stat to see it move bytes.
# (curl's --limit-rate does not hold it: curl 7.88.1 lets the first bytes
# through unlimited, and 64 KiB or 4 MiB come in milliseconds.)  Without a
# first byte there is nothing to hold: HOLD is skipped.  The status is
# CMD's, or the reader's when CMD's is 0 (pipefail); OUT is for the
# caller to check by length and checksum.  With HELD_ACCOUNT set, the
# seconds HOLD lasted are added to that file, a line each, for a caller
# that times CMD to leave out (the hold is the test's, not the program's).
held_get() {
	local hold=$1 out=$2
	shift 2
	(
		set -o pipefail
		# head -c 1 reads one byte from a pipe, no more; OUT's size says
		# whether one came.
		# shellcheck disable=SC2094
		"$@" | { head -c 1 && [ -s "$out" ] && held_for "$hold"; cat; } >"$out"
	)
}

held_for() {
	local t0=$EPOCHREALTIME
	$1
	[ -z "${HELD_ACCOUNT:-}" ] || echo "$t0 $EPOCHREALTIME" >>"$HELD_ACCOUNT"
}
