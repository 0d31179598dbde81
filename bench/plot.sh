#!/usr/bin/env bash
# Plots a usmc-bench JSON file into PNGs:  bench/plot.sh RESULTS.json OUTDIR
# Installs Debian's python3-matplotlib when it is missing.  Debian's module
# belongs to /usr/bin/python3, whatever python3 comes first in PATH.
set -euo pipefail

if [ $# -ne 2 ]; then
	echo "usage: $0 RESULTS.json OUTDIR" >&2
	exit 2
fi
if ! dpkg-query -W -f='${Status}' python3-matplotlib 2>/dev/null | grep -q "ok installed"; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	echo "== installing: python3-matplotlib" >&2
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
		python3-matplotlib >/dev/null
fi
mkdir -p "$2"
exec /usr/bin/python3 "$(dirname "$0")/plot.py" "$1" "$2"
