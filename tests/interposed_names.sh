#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The library never calls a name the preload interposes: inside usmc-run,
# such a call would come back to usmc (sendfile calling sendfile for ever).
# Every such call must go through the table of real calls, usmc_sys.
#
#   1. no object of the library but the table's own (usmc_sys.c.o) has an
#      undefined reference to a name libusmc-preload.so exports;
#   2. the table has every socket call the preload exports (all but the
#      exec family, system, popen, liburing's setup calls and the stdio
#      streams' functions, which are no socket calls,
#      and the __ names: libc's aliases and fortified forms, which usmc
#      never calls), so a wrapper can pass what is not usmc's to it.
#
# usage: interposed_names.sh LIBUSMC_PRELOAD_SO 'OBJ;OBJ;...'
set -u
so=${1:?usage: interposed_names.sh PRELOAD_SO OBJECTS}
objs=${2:?usage: interposed_names.sh PRELOAD_SO OBJECTS}

names() { awk '{ print $NF }' | sed 's/@.*//' | sort -u; }

exported=$(nm -D --defined-only "$so" | names)
[ -n "$exported" ] || { echo "no exported names in $so"; exit 1; }
failed=0
table=
checked=0
old_ifs=$IFS
IFS=';'
for o in $objs; do
	IFS=$old_ifs
	case $o in
	*/usmc_sys.c.o | */usmc_sys.c.obj) table=$o; continue ;;
	esac
	checked=$((checked + 1))
	hits=$(nm -u "$o" | names | grep -xF "$exported" | tr '\n' ' ')
	if [ -n "$hits" ]; then
		echo "$(basename "$o") calls interposed names directly: $hits"
		echo "    (call them through usmc_sys, src/lib/usmc_sys.h)"
		failed=1
	fi
done
IFS=$old_ifs
[ -n "$table" ] || { echo "the table's object usmc_sys.c.o is not among the objects"; exit 1; }
echo "$checked objects checked against $(echo "$exported" | wc -l) exported names"

in_table=$(nm -u "$table" | names)
socket_calls=$(echo "$exported" |
	grep -vE '^(__|exec|fexecve$|posix_spawn|io_uring_|system$|popen$|(_IO_)?fdopen$|v?dprintf$|freopen(64)?$|sockatmark$)')
missing=$(echo "$socket_calls" | grep -vxF "$in_table" | tr '\n' ' ')
if [ -n "$missing" ]; then
	echo "exported but not in the table of real calls (USMC_SYS_CALLS): $missing"
	failed=1
else
	echo "the table has all $(echo "$socket_calls" | wc -l) socket calls the preload exports"
fi
exit $failed
