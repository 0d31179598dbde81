#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The kernel SMC tests, from the host: builds the VM image if it is missing
# (tests/vm/build-image.sh), brings the release build in build-kvm up to
# date, and boots one VM that runs tests/kernel/guest.sh.  Exits non-zero
# if a case fails, and also when this machine cannot run the tests at all
# (not root, no qemu): a silent pass would hide that the kernel's SMC went
# untested.  USMC_VM_SKIP=1 skips them, saying so.
#
# usage: tests/kernel/run-vm-tests.sh [-v] [PATTERN...]
#   -v       every case's output, not only a failed one's
#   PATTERN  only the cases whose name matches (a glob: 'stat_*')
# env:   USMC_VM_SKIP, USMC_VM_CACHE, USMC_VM_TIMEOUT (seconds, default 600),
#        USMC_VM_KERNEL=backports: boot trixie-backports' kernel instead of
#        6.12 (its own image, built by build-image.sh --kernel backports)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=$repo/build-kvm
verbose=()
if [ "${1:-}" = -v ]; then
	verbose=(-e VERBOSE=1)
	shift
fi

cannot() {
	echo "kernel SMC tests: cannot run: $*"
	exit 1
}

if [ "${USMC_VM_SKIP:-0}" = 1 ]; then
	echo "kernel SMC tests: skipped (USMC_VM_SKIP=1)"
	exit 77
fi
[ "$(id -u)" = 0 ] || cannot "needs root (debootstrap builds the VM image)"
command -v qemu-system-x86_64 >/dev/null ||
	cannot "no qemu-system-x86_64 (apt-get install qemu-system-x86)"

"$repo/tests/vm/build-image.sh" || cannot "no VM image (tests/vm/build-image.sh failed)"

# cmake --build is incremental: cheap when the tree is up to date, and it
# keeps the VM from testing stale binaries.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { [ -e "$build/CMakeCache.txt" ] || cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release; } >"$log" 2>&1 ||
	! cmake --build "$build" -j2 >>"$log" 2>&1; then
	tail -n 30 "$log"
	cannot "the build in $build failed"
fi
[ -x "$build/tests/smc_peer" ] || cannot "no static smc_peer in $build (static libc: apt-get install libc6-dev)"

start=$SECONDS
rc=0
"$repo/tests/vm/run-in-vm.sh" -t "${USMC_VM_TIMEOUT:-600}" -e BUILD=/host/build-kvm -e SRC=/host \
	"${verbose[@]}" "$here/guest.sh" "$@" || rc=$?
if [ $rc = 0 ]; then
	echo "kernel SMC tests: passed ($((SECONDS - start))s with boot)"
else
	echo "kernel SMC tests: FAILED (exit status $rc$([ $rc = 125 ] && echo ': the VM gave none'))"
fi
exit $rc
