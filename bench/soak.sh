#!/usr/bin/env bash
# Soak: the load test for longer, bounded, then what it held.
#
#   bench/soak.sh [MINUTES] [BUILD_DIR]      (default: 10 minutes, build/)
#
# Several client processes keep many connections busy against one echo
# server, every byte checked; the run fails at the first error.
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=${1:-10}
build=${2:-build}
case "$minutes" in
''|*[!0-9]*) echo "usage: $0 [MINUTES] [BUILD_DIR]" >&2; exit 2 ;;
esac
[ "$minutes" -ge 1 ] && [ "$minutes" -le 1440 ] || { echo "minutes: 1..1440" >&2; exit 2; }
if [ ! -x "$build/tests/load" ]; then
	cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build "$build" -j"$(nproc)" --target load >/dev/null
fi

seconds=$((minutes * 60))
clients=${SOAK_CLIENTS:-6}
conns=${SOAK_CONNS:-32}
echo "soak: ${minutes} min, $clients client processes x $conns connections"
start=$(date +%s)
if "$build/tests/load" --seconds "$seconds" --clients "$clients" --conns "$conns"; then
	status=ok
else
	status=FAILED
fi
echo "soak: $status after $(( $(date +%s) - start )) s"
[ "$status" = ok ]
