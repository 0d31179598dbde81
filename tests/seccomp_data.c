// SPDX-License-Identifier: MIT
/*
 * The data path under a seccomp filter like OpenSSH's pre-auth sandbox
 * (sandbox-seccomp-filter.c, 9.2): read, write, poll-style calls, futex,
 * memory and clocks are allowed, open and stat are refused with EACCES,
 * and any other call (send, recv, fcntl, getsockopt...) kills the process
 * (here: SIGSYS, after the call's number is written to stderr).
 *
 * The server forks a child per round that inherits the accepted socket,
 * installs the filter and echoes what the client sends, waiting with
 * usmc_poll before each read and write, as sshd's child does with ppoll.
 * The client checks every byte; the child must exit 0, not die of SIGSYS.
 * At the end the client lets the echo lag: a ring whose reader lags
 * grows, which needs a call (fallocate) such a filter kills for, and must
 * not grow there.
 */
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define TOTAL (1u << 20)
#define CHUNK 3000
/*
 * Then the client lets the child's echo lag: a first part echoed whole,
 * half of it read, then the second part echoed whole.  The child's ring,
 * of FIRST_RING, never fills (a write there would then ask whether the
 * socket blocks, a call the filter kills for), but its reader lags by more
 * than half of it, and a ring whose reader lags grows.
 */
#define FIRST_RING (256 << 10) /* USMC_BUFSIZE's default */
#define BURST1 (128 << 10)
#define BURST2 (160 << 10)
#define BURST (BURST1 + BURST2)
_Static_assert(BURST - BURST1 / 2 < FIRST_RING, "the child's ring never fills");

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#if !defined(SANITIZED) && defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

#define ALLOW(nr)                                            \
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), \
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)
#define DENY(nr, err)                                        \
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), \
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (err))

/* A refused call names itself, then the child dies as OpenSSH's would (SIGSYS). */
static void refused(int sig, siginfo_t *si, void *ctx)
{
	char msg[] = "refused system call 000\n";
	int nr = si->si_syscall;

	(void)sig;
	(void)ctx;
	msg[20] = (char)('0' + nr / 100 % 10);
	msg[21] = (char)('0' + nr / 10 % 10);
	msg[22] = (char)('0' + nr % 10);
	(void)!write(2, msg, sizeof(msg) - 1);
	signal(SIGSYS, SIG_DFL);
	raise(SIGSYS);
}

static void sandbox(void)
{
	struct sigaction sa = { .sa_sigaction = refused, .sa_flags = SA_SIGINFO };

	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		DENY(__NR_lstat, EACCES), DENY(__NR_fstat, EACCES), DENY(__NR_open, EACCES),
		DENY(__NR_openat, EACCES), DENY(__NR_newfstatat, EACCES), DENY(__NR_stat, EACCES),
		DENY(__NR_shmget, EACCES), DENY(__NR_shmat, EACCES), DENY(__NR_shmdt, EACCES),
		DENY(__NR_statx, EACCES),
		ALLOW(__NR_brk), ALLOW(__NR_clock_gettime), ALLOW(__NR_close), ALLOW(__NR_exit),
		ALLOW(__NR_exit_group), ALLOW(__NR_futex), ALLOW(__NR_geteuid), ALLOW(__NR_getpgid),
		ALLOW(__NR_getpid), ALLOW(__NR_getrandom), ALLOW(__NR_gettid),
		ALLOW(__NR_gettimeofday), ALLOW(__NR_getuid), ALLOW(__NR_madvise),
		/* OpenSSH also checks mmap's and mprotect's protection: no PROT_EXEC. */
		ALLOW(__NR_mmap), ALLOW(__NR_mprotect), ALLOW(__NR_mremap), ALLOW(__NR_munmap),
		ALLOW(__NR_nanosleep), ALLOW(__NR_clock_nanosleep), ALLOW(__NR_ppoll),
		ALLOW(__NR_poll), ALLOW(__NR_pselect6), ALLOW(__NR_read),
		ALLOW(__NR_rt_sigprocmask), ALLOW(__NR_select), ALLOW(__NR_shutdown),
		ALLOW(__NR_time), ALLOW(__NR_write), ALLOW(__NR_writev),
#if SANITIZED
		/* The sanitizers' runtime, not usmc, sets up an alternate signal stack. */
		ALLOW(__NR_sigaltstack),
#endif
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
	};
	struct sock_fprog prog = { .len = sizeof(filter) / sizeof(filter[0]), .filter = filter };

	CHECK(sigaction(SIGSYS, &sa, NULL) == 0);
	CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0);
	CHECK(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0);
}

static void wait_for(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };

	CHECK(usmc_poll(&p, 1, 10000) == 1 && (p.revents & events));
}

/* The sandboxed child: echoes TOTAL bytes, then exits without a further call. */
static void echo(int fd)
{
	static uint8_t buf[CHUNK];

	sandbox();
	for (size_t done = 0; done < TOTAL + BURST;) {
		ssize_t n, w;

		wait_for(fd, POLLIN);
		n = usmc_read(fd, buf, sizeof(buf));
		CHECK(n > 0);
		for (ssize_t off = 0; off < n; off += w) {
			wait_for(fd, POLLOUT);
			w = usmc_write(fd, buf + off, (size_t)(n - off));
			CHECK(w > 0);
		}
		done += (size_t)n;
	}
	_exit(0);
}

/* Waits until n bytes wait to be read: the child has echoed them. */
static void wait_echoed(int fd, int n)
{
	for (int i = 0, avail = 0; avail < n; i++) {
		CHECK(i < 100000 && usmc_ioctl(fd, FIONREAD, &avail) == 0);
		usleep(100);
	}
}

static int client(void *arg)
{
	uint16_t port = *(uint16_t *)arg;
	int fd = h_connect(AF_INET, H_USMC, port);
	static uint8_t out[TOTAL + BURST], in[TOTAL + BURST];

	h_pattern(out, TOTAL + BURST, 5, 0);
	/* Writes and reads in turn, a chunk ahead, so that neither side's ring fills. */
	for (size_t sent = 0, got = 0; got < TOTAL;) {
		if (sent < TOTAL && sent - got < 4 * CHUNK) {
			size_t n = TOTAL - sent < CHUNK ? TOTAL - sent : CHUNK;

			h_write_all(fd, out + sent, n);
			sent += n;
			continue;
		}
		ssize_t n = usmc_read(fd, in + got, TOTAL - got);

		CHECK(n > 0);
		got += (size_t)n;
	}
	/* The burst: a lag that would grow the ring (a charge, fallocate) in the child. */
	h_write_all(fd, out + TOTAL, BURST1);
	wait_echoed(fd, BURST1);
	h_read_all(fd, in + TOTAL, BURST1 / 2);
	h_write_all(fd, out + TOTAL + BURST1, BURST2);
	wait_echoed(fd, BURST - BURST1 / 2);
	h_read_all(fd, in + TOTAL + BURST1 / 2, BURST - BURST1 / 2);
	CHECK(!memcmp(in, out, TOTAL + BURST));
	h_check_mode(fd, USMC_MODE_SMCD);
	CHECK(usmc_close(fd) == 0);
	return 0;
}

int main(void)
{
	uint16_t port;
	int lfd = h_listen(AF_INET, H_USMC, &port), fd, status;
	pid_t cli, child;

	cli = h_fork(client, &port);
	fd = usmc_accept(lfd, NULL, NULL);
	CHECK(fd >= 0);
	h_check_mode(fd, USMC_MODE_SMCD);
	child = fork();
	CHECK(child >= 0);
	if (child == 0)
		echo(fd);
	CHECK(waitpid(child, &status, 0) == child);
	if (WIFSIGNALED(status))
		fprintf(stderr, "the sandboxed child died of signal %d\n", WTERMSIG(status));
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(h_wait_ok(cli));
	CHECK(usmc_close(fd) == 0);
	printf("%u bytes echoed both ways by a child under a seccomp filter\n", TOTAL + BURST);
	return 0;
}
