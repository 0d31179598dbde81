#!/usr/bin/env bash
# Installs what is missing on Debian 12, then builds and runs the whole test
# suite: a release build, an AddressSanitizer + UBSan build, every
# libFuzzer target for a bounded time, and the kernel SMC tests in a VM
# with Debian's 6.12 kernel (docs/KERNEL.md).
#
#   ./run-tests.sh            everything
#   FUZZ_SECONDS=0 ./run-tests.sh   skip the fuzzers
#   USMC_VM_SKIP=1 ./run-tests.sh   skip the VM, saying so
#
# One tier of the suite alone: (cd build && ctest -L unit), or -L needs-root,
# programs, slow, fuzz, vm, docker (see tests/CMakeLists.txt).
set -euo pipefail
cd "$(dirname "$0")"

packages=(cmake make gcc clang libclang-rt-14-dev iproute2 procps python3 valgrind
	pkg-config libc6-dev bpftool libbpf-dev libelf-dev zlib1g-dev liburing-dev
	qemu-system-x86 debootstrap e2fsprogs cpio xz-utils
	debhelper lintian dpkg-dev fakeroot git bash-completion tcpdump systemd nftables strace)
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

jobs=$(nproc)
fuzz_seconds=${FUZZ_SECONDS:-30}

# A test that cannot run here exits 77, says why, and CTest counts it
# skipped, not failed.  So that a skip never hides a regression, each pass
# names the tests it may skip; any other skip (a package missing, no root,
# a mount refused) fails the run.  Every skip's reason is printed (ctest
# shows no output of a test it counts skipped).
#   run_ctest DIR "ALLOWED SKIPS" COMMAND...
run_ctest() {
	local dir=$1 allowed=$2 log skipped unexpected t
	shift 2
	log=$(mktemp)
	(cd "$dir" && "$@") 2>&1 | tee "$log"
	skipped=$(sed -n 's/^[[:space:]]*[0-9]* - \([^ ]*\) (Skipped)$/\1/p' "$log" | sort -u)
	unexpected=$(comm -23 <(printf '%s\n' $skipped) <(printf '%s\n' $allowed | sort -u))
	rm -f "$log"
	for t in $skipped; do
		echo "skipped: $t: $(awk -v t="$t" '
			$0 ~ "^[0-9]+/[0-9]+ Test: " t "$" { on = 1; next }
			on && /^<end of output>/ { exit }
			on && /^Output:/ { out = 1; next }
			on && out && !/^-+$/ && NF { printf "%s ", $0 }' \
			"$dir/Testing/Temporary/LastTest.log")"
	done
	if [ -n "$unexpected" ]; then
		echo "skipped where they must run:"
		printf '  %s\n' $unexpected
		exit 1
	fi
}

# Tests that CMake registers only where what they need is found: here
# they must be (liburing, python3, the kernel tools), or the run fails
# rather than pass without them.
#   require_tests DIR NAME...
require_tests() {
	local dir=$1 t missing=
	shift
	for t in "$@"; do
		(cd "$dir" && ctest -N -R "^$t\$") | grep -q "Total Tests: 1" || missing="$missing $t"
	done
	if [ -n "$missing" ]; then
		echo "not registered in $dir (what they need was not found):$missing"
		exit 1
	fi
}

echo "== release build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
# The VM's kernel SMC tests run last, on their own (label vm); the docker
# case (label docker) runs only by hand, where a daemon and its image are.
require_tests build preload_io_uring preload_io_uring_after_accept mutate_smoke programs_matrix install_check kernel_cli_usage kernel_vm
run_ctest build "" ctest --output-on-failure -j2 --timeout 300 -LE '^(vm|docker)$'

echo "== AddressSanitizer + UBSan build"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang -DUSMC_SANITIZE=ON \
	-DUSMC_FUZZ=ON >/dev/null
cmake --build build-asan -j"$jobs"
# The slow tier (long load, the crash mix) and the real programs ran once, above.
# Under the sanitizers an instrumented preload cannot run in programs that
# lack their runtime: the static and set-user-ID exec cases (Debian's python3) and the three
# differential cases that exec /bin/sh.  Nor can fork() beside threads that
# allocate: this clang's AddressSanitizer holds no lock of its allocator across
# fork (fork_threads says so, and the release build ran it).
run_ctest build-asan "preload_exec_static preload_exec_setuid diff_exec_vfork_sh diff_exec_system diff_exec_popen fork_threads" \
	env ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 ctest --output-on-failure -j2 --timeout 300 \
	-LE '^(slow|programs|docker)$'

echo "== valgrind memcheck on the core tests"
valgrind_cases=(
	"transfer --way smc --size 4194304"
	"transfer --way fallback --size 1048576 --nonblock"
	"transfer --way smc --family 6 --size 300000 --chunk 7"
	"lgr_reuse 200"
	"kill_peer --kill client --rounds 3"
	"kill_peer --kill server --rounds 3"
	"semantics --case epoll_et --way smc"
	"semantics --case linger0 --way smc"
	"semantics --case shutdown_wr --way smc"
	"policy"
)
for c in "${valgrind_cases[@]}"; do
	# shellcheck disable=SC2086
	if ! valgrind -q --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite \
		build/tests/$c >/tmp/usmc-valgrind.log 2>&1; then
		tail -n 40 /tmp/usmc-valgrind.log
		echo "valgrind: $c: FAILED"
		exit 1
	fi
	echo "valgrind: $c: clean"
done

if [ "$fuzz_seconds" -gt 0 ]; then
	echo "== fuzzers, ${fuzz_seconds}s each"
	fuzzed=0
	for f in build-asan/fuzz/fuzz_*; do
		[ -x "$f" ] || continue
		fuzzed=$((fuzzed + 1))
		corpus=$(mktemp -d)
		log=$(mktemp)
		seeds=fuzz/corpus/$(basename "$f" | sed 's/^fuzz_//')
		[ -d "$seeds" ] && cp "$seeds"/* "$corpus"/
		if ! "$f" -max_total_time="$fuzz_seconds" -print_final_stats=1 "$corpus" >"$log" 2>&1; then
			tail -n 40 "$log"
			echo "$(basename "$f"): FAILED"
			exit 1
		fi
		echo "$(basename "$f"): $(grep -E 'stat::number_of_executed_units' "$log" | awk '{print $2}') executions, no finding"
		rm -rf "$corpus" "$log"
	done
	[ "$fuzzed" -gt 0 ] || { echo "fuzzers: none was built"; exit 1; }
else
	echo "fuzzers skipped: FUZZ_SECONDS=0"
fi
echo "== Debian packages: built, lintian, installed, used"
# Installing the packages needs root, as the needs-root tests above do.
if [ "$(id -u)" -ne 0 ]; then
	echo "deb_check: installing the packages needs root"
	exit 1
fi
tests/deb_check.sh .

echo "== kernel SMC in a VM (Debian's 6.12 kernel under qemu)"
vm_skip=""
[ "${USMC_VM_SKIP:-0}" = 1 ] && vm_skip=kernel_vm
run_ctest build "$vm_skip" ctest --output-on-failure -L '^vm$'

echo "== all tests passed"
