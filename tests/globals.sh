#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Every variable of the library and of the preload that lives as long as
# the process (file scope, or static in a function) is in the table of
# HACKING.md, "Process state", with what guards it; and every row of the
# table names one that still exists.
#
# From the compiled objects: nm's b, B, d and D symbols of each object
# under src/, less those the compiler makes (names that begin with "__"
# or "."; string literals are no symbols).  A function's static is
# "name.N" to gcc and "function.name" to clang: both are "name" here.
# A row whose variable says "(Debug)" is compiled only into a Debug build
# (the lock-order check): needed there, and allowed to be absent in others.
#
# A row guarded by "thread" names a __thread variable (readelf's TLS), and
# a __thread variable has such a row: a variable that lost its __thread
# is shared by every thread, and its row would say otherwise.
#
# usage: globals.sh HACKING.md 'OBJ;OBJ;...' [CONFIG]
set -u
doc=${1:?usage: globals.sh HACKING.md OBJECTS [CONFIG]}
objs=${2:?usage: globals.sh HACKING.md OBJECTS [CONFIG]}
config=${3:-}
[ -r "$doc" ] || { echo "no $doc"; exit 1; }

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

# "file name" for each variable the objects define, file as usmc_x.c.
. "$(dirname "$0")/objects.sh"
: >"$tmp/found"
: >"$tmp/tls"
variables_of() {
	file=${2##*/}
	nm --defined-only "$1" | awk -v f="$file" '
	NF == 3 && $2 ~ /^[bBdD]$/ { print f, $3 }' >>"$tmp/found"
	readelf -sW "$1" | awk -v f="$file" '$4 == "TLS" && $7 != "UND" { print f, $8 }' \
		>>"$tmp/tls"
}
objects_each "$objs" variables_of
for list in found tls; do
	touch "$tmp/$list"
	awk '$2 !~ /^(__|\.)/ {
		name = $2
		sub(/\.[0-9]+$/, "", name)   # gcc: a function static, name.N
		sub(/^.*\./, "", name)       # clang: function.name
		print $1, name
	}' "$tmp/$list" | sort -u >"$tmp/$list.names"
done
mv "$tmp/found.names" "$tmp/found"
mv "$tmp/tls.names" "$tmp/tls"

# The table's rows: | `name` | `file.c` | holds | guard |, in the section only.
awk -F'|' -v debug="$([ "$config" = Debug ] && echo 1)" -v rows="$tmp/rows" \
    -v optional="$tmp/optional" -v thread="$tmp/thread" '
/^## / { inside = ($0 ~ /^## Process state[[:space:]]*$/); next }
!inside || !/^\|[[:space:]]*`/ { next }
{
	name = $2; file = $3
	opt = name ~ /\(Debug\)/ && !debug
	gsub(/^[^`]*`|`.*$/, "", name)
	gsub(/^[^`]*`|`.*$/, "", file)
	print file, name > (opt ? optional : rows)
	if ($5 ~ /^[[:space:]]*thread/)
		print file, name > thread
}' "$doc"
touch "$tmp/rows" "$tmp/optional" "$tmp/thread"
[ -s "$tmp/rows" ] || { echo "$doc: no table under \"## Process state\""; exit 1; }
sort -u "$tmp/rows" -o "$tmp/rows"
sort -u "$tmp/optional" -o "$tmp/optional"
sort -u "$tmp/rows" "$tmp/optional" >"$tmp/listed"

failed=0
# complain WHAT HINT LINES: the lines, if any, as a failure.
complain() {
	[ -n "$3" ] || return 0
	echo "$1 (file, variable):"
	echo "$3" | sed 's/^/    /'
	[ -z "$2" ] || echo "    $2"
	failed=1
}
where="$doc, \"Process state\""
complain "variables of the process missing from $where" \
	"add a row for each: what it holds, and the lock or discipline that guards it" \
	"$(comm -23 "$tmp/found" "$tmp/listed")"
complain "rows of $where naming no variable of the objects" \
	"take them out, or name the variable and its file as they are now" \
	"$(comm -13 "$tmp/found" "$tmp/rows")"
# Thread rows of the variables built here, against the TLS symbols.
sort -u "$tmp/thread" | comm -12 - "$tmp/found" >"$tmp/thread_found"
complain "rows guarded by \"thread\" whose variable is no __thread" \
	"every thread shares it: give it back its __thread, or its row the guard it has" \
	"$(comm -13 "$tmp/tls" "$tmp/thread_found")"
complain "__thread variables whose row does not say \"thread\"" "" \
	"$(comm -23 "$tmp/tls" "$tmp/thread_found")"
echo "$(wc -l <"$tmp/found") variables ($(wc -l <"$tmp/tls") of them a thread's own) in $objects_n objects, $(wc -l <"$tmp/listed") rows"
exit $failed
