#!/bin/sh
# SPDX-License-Identifier: MIT
#
# usmc-run's command line and environment, and what the preload library
# exports.
#
# usage: preload_cli.sh USMC_RUN PRELOAD_ECHO PRELOAD_LIBRARY

run=$1 echo=$2 lib=$3
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

# Exactly the interposed calls, nothing of usmc's own.
wanted="__poll_chk __ppoll_chk __read_chk __recv_chk __recvfrom_chk accept accept4 bind close
close_range dup dup2 dup3 connect epoll_ctl epoll_pwait epoll_pwait2 epoll_wait fcntl fcntl64 getsockopt ioctl listen poll ppoll
pselect read readv recv recvfrom recvmmsg recvmsg select send sendfile sendfile64 sendmmsg sendmsg sendto splice setsockopt shutdown
socket write writev preadv2 pwritev2 preadv64v2 pwritev64v2 syscall prctl closefrom _Fork clone
aio_read aio_write aio_read64 aio_write64 lio_listio lio_listio64
io_uring_setup io_uring_queue_init io_uring_queue_init_params io_uring_queue_init_mem
__close __connect __dup2 __fcntl __poll __read __select __send __write
execl execle execlp execv execve execveat execvp execvpe fexecve posix_spawn posix_spawnp
system popen fdopen _IO_fdopen dprintf vdprintf __dprintf_chk __vdprintf_chk freopen freopen64"
exported=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TWV]$/ { print $3 }' | sort | tr '\n' ' ')
wanted=$(echo $wanted | tr ' ' '\n' | sort | tr '\n' ' ')
[ "$exported" = "$wanted" ] || fail "exported: $exported; wanted: $wanted"

[ "$failures" = 0 ] || exit 1
echo "usmc-run command line: ok"
