/* SPDX-License-Identifier: MIT */
/*
 * A seccomp filter like OpenSSH's pre-auth sandbox (sandbox-seccomp-filter.c,
 * 9.2): read, write, poll-style calls, futex, memory and clocks are
 * allowed, open and stat are refused with EACCES, and any other call
 * (send, recv, fcntl, getsockopt...) kills the process (here: SIGSYS,
 * after the call's number is written to stderr).  Installed with prctl(),
 * as sshd does.  Needs CHECK.
 */
#ifndef USMC_TEST_SANDBOX_H
#define USMC_TEST_SANDBOX_H

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

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
static inline void refused(int sig, siginfo_t *si, void *ctx)
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

static inline void ssh_sandbox(void)
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

#endif
