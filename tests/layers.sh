#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The library's calls point down its layers (HACKING.md, "The tree"):
#
#   src/api/ > src/handshake/ > src/conn/ > src/smc/ > src/lib/
#
# and src/diag/ beside them: every layer may call it, it calls only lib.
#
# Two looks at the library, each arrow to a higher layer is an upward call:
#
#  - gcc's call graph (layers_callgraph.py): each call from a function to
#    another, each placed in the file that defines it, a header for a
#    static inline function; a line "caller_file:caller -> callee_file:callee";
#  - nm of the compiled objects: each name one object takes from another
#    other than by a call (a global, a function's address), as the call
#    graph sees no such thing; a line "caller_file -> callee_file: symbol".
#
# Each upward call must be in ALLOWLIST, and each line of ALLOWLIST must
# still occur, so that the list only shrinks.  Without a gcc that makes
# call graphs (nor python3 to read them), nm's look is the only one, and
# it sees a call from an object to another but not one from a header's
# static inline function: that is said, and the check goes on with nm.
#
# usage: layers.sh ALLOWLIST 'OBJ;OBJ;...' COMPILE_COMMANDS
set -u
usage='usage: layers.sh ALLOWLIST OBJECTS COMPILE_COMMANDS'
allow=${1:?$usage}
objs=${2:?$usage}
ccjson=${3:?$usage}
here=$(dirname "$0")
[ -r "$allow" ] || { echo "no allowlist $allow"; exit 1; }

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

# Each object as its source file (src/LAYER/FILE.c), with what it defines
# and what it takes from elsewhere.
. "$here/objects.sh"
: >"$tmp/defined"
: >"$tmp/used"
names_of() {
	nm --defined-only -g "$1" 2>/dev/null | awk -v f="$2" 'NF == 3 { print $3, f }' >>"$tmp/defined"
	nm -u "$1" | awk -v f="$2" '{ print f, $NF }' >>"$tmp/used"
}
objects_each "$objs" names_of
[ -s "$tmp/defined" ] || { echo "no objects"; exit 1; }

# The call graph: unit caller_file caller callee_file callee, a line a call.
: >"$tmp/calls"
graph=
if ! command -v python3 >/dev/null; then
	echo "note: no python3 to read gcc's call graph: nm's look only," \
		"blind to calls from a header's static inline functions"
else
	python3 "$here/layers_callgraph.py" "$ccjson" "$here/.." "$objs" >"$tmp/calls"
	case $? in
	0) graph=yes ;;
	3) echo "note: no gcc makes call graphs: nm's look only," \
		"blind to calls from a header's static inline functions" ;;
	*) echo "no call graph"; exit 1 ;;
	esac
fi

# The upward ones, as the lines of ALLOWLIST.
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
function up(caller, callee,   rc, re) {
	rc = rank(caller); re = rank(callee)
	if (rc < 0 || re < 0) { print "unknown layer: " caller " or " callee > "/dev/stderr"; exit 1 }
	if (re == 0) return 0              # diag: callable from every layer
	return rc == 0 ? re > 1 : re > rc
}
FILENAME == ARGV[1] { where[$1] = $2; next }
FILENAME == ARGV[2] {
	called[$1 " " $5] = 1
	if (up($2, $4)) print $2 ":" $3 " -> " $4 ":" $5
	next
}
!($2 in where) { next }            # libc and the rest of the system
($1 " " $2) in called { next }     # a call: the call graph has it
up($1, where[$2]) { print $1 " -> " where[$2] ": " $2 }
' "$tmp/defined" "$tmp/calls" "$tmp/used" >"$tmp/upward" || exit 1
sort -u "$tmp/upward" >"$tmp/up"

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
if [ -n "$graph" ]; then
	seen="gcc's call graph ($(wc -l <"$tmp/calls") calls) and nm of $objects_n objects"
else
	seen="nm of $objects_n objects"
fi
echo "$(wc -l <"$tmp/up") upward calls, $(wc -l <"$tmp/allowed") allowed, from $seen"
exit $failed
