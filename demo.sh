#!/usr/bin/env bash
# A short live demonstration on Debian 12: installs what the build needs,
# builds into build/, then shows two processes talking over usmc and what
# each side reports, and a quick benchmark of usmc's shared memory (smc)
# against plain TCP and AF_UNIX.  Under a minute; the full benchmark and
# its method are in docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")"

packages=(cmake make gcc)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	echo "== installing: ${missing[*]}"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

echo "== build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target usmc-demo usmc-bench >/dev/null

echo
echo "== two processes over usmc (usmc_info on each side)"
build/bench/usmc-demo

echo
echo "== usmc-bench --quick: smc (shared memory) against plain tcp and unix sockets"
echo "   (numbers from a busy machine are noisy: see the min .. max spread)"
echo
build/bench/usmc-bench --quick --tests stream,pingpong --transports tcp,unix,smc
