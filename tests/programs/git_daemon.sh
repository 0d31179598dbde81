#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# git daemon and git clone over git://, three ways:
#   both     daemon and clone under usmc-run: shared memory.  The daemon
#            hands each connection to a forked `git daemon --serve` through
#            exec, which forks and execs `git upload-pack` on it: an exec
#            chain on the descriptors 0 and 1.
#   server   daemon under usmc-run, plain clone: TCP from the start
#   client   plain daemon, clone under usmc-run: TCP from the start
# Each way has its own registry directory, so `usmc-stat -s` counts its
# connections alone.  A way is ok when the clone succeeds, its HEAD is the
# source's, `git fsck --full` is clean, every file equals the source's,
# and the counters show the path: shared-memory connections and bytes and
# no fallback (both), no shared-memory byte (server, client).
#
# usage: tests/programs/git_daemon.sh BUILD_DIR [WAY...]
# Exit status: 0 all ok, 1 a way failed, 77 skipped (no git, USMC_MATRIX_SKIP).

set -u
if [ -n "${USMC_MATRIX_SKIP:-}" ]; then
	echo "skipped: $USMC_MATRIX_SKIP"
	exit 77
fi
build=$(cd "${1:?usage: git_daemon.sh BUILD_DIR [WAY...]}" && pwd)
shift
RUN=$build/tools/usmc-run
STAT=$build/tools/usmc-stat
ways=${*:-both server client}

if ! command -v git >/dev/null; then
	sudo=""
	[ "$(id -u)" = 0 ] || sudo="sudo -n"
	[ "${MATRIX_INSTALL:-1}" = 0 ] || $sudo apt-get install -y -q git >/dev/null 2>&1
	command -v git >/dev/null || { echo "skipped: git is not installed"; exit 77; }
fi

tmp=$(mktemp -d /tmp/usmc-git.XXXXXX) || exit 2
daemon=""
cleanup() {
	[ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

# The source: three commits, text and binary files, 4 MiB in all.
src=$tmp/base/repo
git init -q "$src" || exit 2
export GIT_AUTHOR_NAME=usmc GIT_AUTHOR_EMAIL=usmc@localhost
export GIT_COMMITTER_NAME=usmc GIT_COMMITTER_EMAIL=usmc@localhost
for c in 1 2 3; do
	for i in $(seq 1 20); do
		head -c $((i * 997 + c)) /dev/urandom | base64 >"$src/text$i"
	done
	head -c 1048576 /dev/urandom >"$src/blob$c"
	git -C "$src" add -A && git -C "$src" commit -q -m "commit $c" || exit 2
done
head=$(git -C "$src" rev-parse HEAD)

# counter NAME: a counter of the way's registry (0 if none).
counter() {
	v=$(printf '%s\n' "$stats" | sed -n "s/.*\"$1\": \([0-9]*\).*/\1/p")
	echo "${v:-0}"
}

# Starts the daemon (under usmc-run if $1 is usmc) on a free port: sets daemon and port.
start_daemon() {
	for _ in 1 2 3 4 5; do
		port=$((20000 + RANDOM % 30000))
		: >"$tmp/daemon.log"
		if [ "$1" = usmc ]; then
			"$RUN" git daemon --verbose --export-all --base-path="$tmp/base" \
				--listen=127.0.0.1 --port=$port --reuseaddr 2>"$tmp/daemon.log" &
		else
			git daemon --verbose --export-all --base-path="$tmp/base" \
				--listen=127.0.0.1 --port=$port --reuseaddr 2>"$tmp/daemon.log" &
		fi
		daemon=$!
		for _ in $(seq 1 100); do
			grep -q "Ready to rumble" "$tmp/daemon.log" && return 0
			kill -0 "$daemon" 2>/dev/null || break
			sleep 0.1
		done
		kill "$daemon" 2>/dev/null
		wait "$daemon" 2>/dev/null
		daemon=""
	done
	return 1
}

failed=0
for way in $ways; do
	case $way in
	both) server=usmc client=usmc ;;
	server) server=usmc client=plain ;;
	client) server=plain client=usmc ;;
	*) echo "git_daemon: unknown way $way" >&2; exit 2 ;;
	esac
	export USMC_REGISTRY_DIR=$tmp/$way-reg
	mkdir -p "$USMC_REGISTRY_DIR" && chmod 700 "$USMC_REGISTRY_DIR"
	if ! start_daemon $server; then
		echo "FAIL $way: git daemon did not start"
		cat "$tmp/daemon.log"
		failed=1
		continue
	fi
	dst=$tmp/clone-$way
	prefix=""
	[ $client = usmc ] && prefix=$RUN
	timeout 60 $prefix git clone -q "git://127.0.0.1:$port/repo" "$dst" 2>"$tmp/clone.err"
	rc=$?
	kill "$daemon" 2>/dev/null
	wait "$daemon" 2>/dev/null
	daemon=""
	stats=$("$STAT" -s --json 2>/dev/null)
	smcd=$(counter smcd_connections) sent=$(counter bytes_sent) fb=$(counter fallbacks)
	path="$smcd shared-memory connection ends, $sent bytes through shared memory, $fb fallbacks"
	why=""
	if [ $rc != 0 ]; then
		why="git clone exited $rc: $(tr '\n' ' ' <"$tmp/clone.err")"
	elif [ "$(git -C "$dst" rev-parse HEAD)" != "$head" ]; then
		why="HEAD differs"
	elif ! git -C "$dst" fsck --full --no-progress >/dev/null 2>&1; then
		why="git fsck failed"
	elif ! diff -r -q -x .git "$src" "$dst" >/dev/null; then
		why="the files differ"
	elif [ $way = both ] && { [ "$smcd" -lt 2 ] || [ "$sent" -eq 0 ] || [ "$fb" -ne 0 ]; }; then
		why="not through shared memory ($path)"
	elif [ $way != both ] && { [ "$smcd" -ne 0 ] || [ "$sent" -ne 0 ]; }; then
		why="shared memory with a plain end ($path)"
	fi
	if [ -n "$why" ]; then
		echo "FAIL $way (daemon $server, clone $client): $why"
		sed 's/^/    daemon: /' "$tmp/daemon.log" | tail -20
		failed=1
	else
		echo "ok   $way (daemon $server, clone $client): HEAD, fsck and files equal; $path"
	fi
done
exit $failed
