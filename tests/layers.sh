#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The library's calls point down its layers (HACKING.md, "The tree"):
#
#   src/api/ > src/handshake/ > src/conn/ > src/smc/ > src/lib/
#
# and src/diag/ beside them: every layer may call it, it calls only lib.
# From the compiled objects, each reference from one file to a name that
# another file of a higher layer defines is an upward call.  Each must be
# in ALLOWLIST, as "caller_file -> callee_file: symbol"; and each line of
# ALLOWLIST must still occur, so that the list only shrinks.
#
# A static inline function of a header is compiled into its caller and is
# not seen here.
#
# usage: layers.sh ALLOWLIST 'OBJ;OBJ;...'
set -u
allow=${1:?usage: layers.sh ALLOWLIST OBJECTS}
objs=${2:?usage: layers.sh ALLOWLIST OBJECTS}
[ -r "$allow" ] || { echo "no allowlist $allow"; exit 1; }

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

# Each object as its source file (src/LAYER/FILE.c), with what it defines
# and what it takes from elsewhere.
nobjs=0
: >"$tmp/defined"
: >"$tmp/used"
old_ifs=$IFS
IFS=';'
for o in $objs; do
	IFS=$old_ifs
	case $o in
	*/src/*.o) file=src/${o##*/src/} file=${file%.o} ;;
	*) echo "$o: not an object of a file under src/"; exit 1 ;;
	esac
	[ -r "$o" ] || { echo "$o: not built"; exit 1; }
	nobjs=$((nobjs + 1))
	nm --defined-only -g "$o" 2>/dev/null | awk -v f="$file" 'NF == 3 { print $3, f }' >>"$tmp/defined"
	nm -u "$o" | awk -v f="$file" '{ print f, $NF }' >>"$tmp/used"
done
IFS=$old_ifs
[ -s "$tmp/defined" ] || { echo "no objects"; exit 1; }

# caller -> callee: symbol, for every reference that points up.
awk '
function rank(f) {
	if (f ~ /^src\/api\//) return 5
	if (f ~ /^src\/handshake\//) return 4
	if (f ~ /^src\/conn\//) return 3
	if (f ~ /^src\/smc\//) return 2
	if (f ~ /^src\/lib\//) return 1
	if (f ~ /^src\/diag\//) return 0
	return -1
}
NR == FNR { where[$1] = $2; next }
!($2 in where) { next }            # libc and the rest of the system
{
	caller = $1; callee = where[$2]
	rc = rank(caller); re = rank(callee)
	if (rc < 0 || re < 0) { print "unknown layer: " caller " or " callee > "/dev/stderr"; exit 1 }
	if (re == 0) next                  # diag: callable from every layer
	if (rc == 0 ? re > 1 : re > rc) print caller " -> " callee ": " $2
}' "$tmp/defined" "$tmp/used" | sort -u >"$tmp/up" || exit 1

grep -v '^[[:space:]]*\(#\|$\)' "$allow" | sed 's/[[:space:]]*$//' | sort -u >"$tmp/allowed"

failed=0
new=$(comm -23 "$tmp/up" "$tmp/allowed")
if [ -n "$new" ]; then
	echo "calls that point up a layer (HACKING.md, \"The tree\"):"
	echo "$new" | sed 's/^/    /'
	echo "    move the function down to the layer of its callers, or the call up"
	failed=1
fi
gone=$(comm -13 "$tmp/up" "$tmp/allowed")
if [ -n "$gone" ]; then
	echo "no longer called: take these lines out of $allow"
	echo "$gone" | sed 's/^/    /'
	failed=1
fi
echo "$(wc -l <"$tmp/up") upward calls, $(wc -l <"$tmp/allowed") allowed," \
	"in $nobjs objects"
exit $failed
