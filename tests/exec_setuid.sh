#!/bin/sh
# SPDX-License-Identifier: MIT
#
# A shared-memory connection inherited by a dynamic program set-user-ID to
# another user: the kernel runs its exec in secure-execution mode, and the
# loader ignores usmc-run's preload (a path with a slash).  usmc ends the
# connection before the exec, as for a static program: exec_static.sh,
# run on a copy of the cat set-user-ID to nobody.
#
# usage: exec_setuid.sh BUILD_DIR DYNAMIC_CAT
set -u
[ -n "${USMC_PRELOAD_SKIP:-}" ] && { echo "skipped: $USMC_PRELOAD_SKIP"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "skipped: needs root (a file set-user-ID to nobody)"; exit 77; }
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d /tmp/usmc-setuid.XXXXXX) || exit 2
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
if findmnt -no OPTIONS -T "$tmp" 2>/dev/null | grep -qw nosuid; then
	echo "skipped: $tmp is mounted nosuid: no set-user-ID exec"
	exit 77
fi
cp "$2" "$tmp/setuid-cat" && chown 65534 "$tmp/setuid-cat" && chmod 4755 "$tmp/setuid-cat" || exit 2
sh "$here/exec_static.sh" "$1" "$tmp/setuid-cat" "set-user-ID program"
