#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The server's answer at the accepted connection's first use, under
# usmc-run (preload_first_use.c): each case in a registry of its own,
# then what usmc-stat -s counted, which must be exactly this:
#   pass       no connection in shared memory; the first connection's two
#              ends plain TCP as the process hands connections on
#              (0x03000008), and the client's later ones too, asking no
#              more: their servers' ends saw no Proposal (0x03010000)
#   withdrawn  the withdrawn connection's two ends plain TCP for the
#              withdrawal (0x02030000), nothing else fell back, and the
#              further connections in shared memory
#   closed     both ends in shared memory, no fallback
#
# usage: preload_first_use.sh USMC_RUN USMC_STAT PRELOAD_FIRST_USE

SKIP=77
run=$1 stat=$2 prog=$3

if [ -n "${USMC_PRELOAD_SKIP:-}" ]; then
	echo "skipped: $USMC_PRELOAD_SKIP"
	exit $SKIP
fi
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
failures=0

fail() {
	echo "FAIL: $*" >&2
	failures=$((failures + 1))
}

# counted NAME: a counter of usmc-stat -s
counted() {
	awk -v n="$1" '$1 == n { print $2; exit }' "$tmp/stat"
}

# reasons: "CODE COUNT" for each fallback reason counted, sorted
reasons() {
	awk '/^fallbacks by reason/ { on = 1; next } on && $1 ~ /^0x/ { print $1, $NF }' "$tmp/stat" |
		sort | tr '\n' ' '
}

# one CASE [ENV...]: runs it in a registry of its own, leaves usmc-stat -s in $tmp/stat
one() {
	c=$1
	shift
	reg="$tmp/reg-$c"
	mkdir "$reg" || exit 1
	if ! env USMC_REGISTRY_DIR="$reg" "$@" "$run" "$prog" "$c"; then
		fail "$c: the program failed"
		return 1
	fi
	USMC_REGISTRY_DIR="$reg" "$stat" -s >"$tmp/stat" || fail "$c: usmc-stat -s"
	sed 's/^/    /' "$tmp/stat"
}

if one pass; then
	[ "$(counted smcd_connections)" = 0 ] || fail "pass: $(counted smcd_connections) ends in shared memory"
	[ "$(reasons)" = "0x03000008 4 0x03010000 2 " ] || fail "pass: fallbacks by reason: $(reasons)"
fi
if one withdrawn USMC_CLC_TIMEOUT_MS=100; then
	[ "$(counted smcd_connections)" -ge 2 ] ||
		fail "withdrawn: $(counted smcd_connections) ends in shared memory"
	[ "$(reasons)" = "0x02030000 2 " ] || fail "withdrawn: fallbacks by reason: $(reasons)"
fi
if one closed; then
	[ "$(counted smcd_connections)" = 2 ] || fail "closed: $(counted smcd_connections) ends in shared memory"
	[ "$(counted fallbacks)" = 0 ] || fail "closed: $(counted fallbacks) fallbacks"
fi
[ "$failures" = 0 ] || exit 1
echo "preload_first_use: ok"
