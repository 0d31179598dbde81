#!/bin/sh
# SPDX-License-Identifier: MIT
#
# usmc-run's command line and environment, and what the preload library
# exports.
#
# usage: preload_cli.sh USMC_RUN PRELOAD_ECHO PRELOAD_LIBRARY

run=$1 echo=$2 lib=$3 map=$4 objs=${5:-}
failures=0

fail() {
	echo "FAIL: $*" >&2
	failures=$((failures + 1))
}

# expect STATUS PATTERN COMMAND...: exit status and a line of its output.
expect() {
	status=$1 pattern=$2
	shift 2
	out=$("$@" 2>&1)
	rc=$?
	[ "$rc" = "$status" ] || fail "$* exited $rc, expected $status: $out"
	printf '%s\n' "$out" | grep -q -- "$pattern" || fail "$* printed no '$pattern': $out"
}

expect 0 '^usage: usmc-run' "$run" --help
expect 0 '^usage: usmc-run' "$run" -h
expect 2 '^usage: usmc-run' "$run"
expect 2 '^usage: usmc-run' "$run" --
expect 2 'unknown option -x' "$run" -x true
expect 0 '^usmc-run (usmc) ' "$run" --version
expect 127 'cannot run /nonexistent/program: No such file' "$run" /nonexistent/program
expect 127 'cannot run /nonexistent/program' "$run" -- /nonexistent/program

if [ -n "${USMC_PRELOAD_SKIP:-}" ]; then
	echo "runs under usmc-run skipped: $USMC_PRELOAD_SKIP"
else
	# The directory resolved, the SONAME's link kept (usmc-run's found()).
	real_lib=$(cd "$(dirname "$lib")" && pwd -P)/$(basename "$lib")
	# The program's exit status comes through.
	expect 2 'usage: preload_echo' "$run" "$echo"
	expect 0 "^$real_lib\$" env -u LD_PRELOAD "$run" "$echo" env
	# Ours goes first; what was there stays, once.
	expect 0 "^$real_lib:libm.so.6\$" env LD_PRELOAD=libm.so.6 "$run" "$echo" env
	expect 0 "^$real_lib:libm.so.6\$" env LD_PRELOAD=libm.so.6 "$run" "$run" "$echo" env
fi

# Exactly the names of the version script made from the one list of
# interposed calls (src/preload/usmc_preload_names.h), nothing of usmc's
# own: a name listed without its wrapper would be missing here.
wanted=$(sed -n 's/^[[:space:]]*\([A-Za-z_][A-Za-z_0-9]*\);$/\1/p' "$map" | sort | tr '\n' ' ')
[ -n "$wanted" ] || fail "no names in $map"
exported=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TWV]$/ { print $3 }' | sort | tr '\n' ' ')
# And every wrapper (a function of the preload's own objects with default
# visibility, EXPORT) is listed: one left out would be hidden, silently.
meant=$(for o in $(echo "$objs" | tr ';' '\n' | grep '/src/preload/'); do
	readelf -sW "$o" | awk '$4 == "FUNC" && $5 == "GLOBAL" && $6 == "DEFAULT" && $7 != "UND" { print $8 }'
done | sort -u)
[ -n "$meant" ] || fail "no wrapper found in the preload's objects: $objs"
unlisted=$(echo "$meant" | grep -vxF "$(echo $wanted | tr ' ' '\n')" | tr '\n' ' ')
[ -z "$unlisted" ] || fail "wrappers not in src/preload/usmc_preload_names.h or the table: $unlisted"
[ "$exported" = "$wanted" ] ||
	fail "exported but not listed: $(echo $exported | tr ' ' '\n' | grep -vxF "$(echo $wanted | tr ' ' '\n')" | tr '\n' ' ')" \
		"listed but not exported: $(echo $wanted | tr ' ' '\n' | grep -vxF "$(echo $exported | tr ' ' '\n')" | tr '\n' ' ')"

[ "$failures" = 0 ] || exit 1
echo "usmc-run command line: ok"
