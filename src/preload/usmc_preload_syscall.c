// SPDX-License-Identifier: MIT
/*
 * syscall(2): a program that reaches the kernel through libc's syscall()
 * rather than read() or send() still passes through here.
 *
 * On a shared-memory connection the kernel socket carries only
 * doorbells, so a raw read would return doorbell bytes or wait for ever,
 * and a raw write would put data beside the rings.  Each call of the
 * socket's data path or life (I/O, waits, copies, close) on a descriptor
 * usmc knows goes to the wrapper of its libc name, with the kernel's
 * arguments; every other call, and every call on a descriptor usmc does
 * not know, goes to libc's syscall() unchanged.  A socket the program
 * makes with syscall(SYS_socket) is never usmc's: plain TCP from its
 * start, whatever path its I/O takes.
 *
 * io_uring moves a socket's bytes in the kernel, where the rings of a
 * shared-memory connection are not.  Once a process sets up an io_uring
 * (SYS_io_uring_setup here, or liburing's setup calls below), every socket
 * it makes from then on is plain TCP from its start (reason
 * USMC_DECL_ENV); connections already in shared memory stay so.
 *
 * A seccomp filter may kill the process for a call it does not list
 * (OpenSSH's pre-auth sandbox kills for fcntl): once the process installs
 * one, through prctl() or here, usmc makes only the calls it must
 * (proc_seccomp_filtered).
 *
 * A fork that runs no fork handler (_Fork, clone without CLONE_VM, and
 * SYS_fork, SYS_clone and SYS_clone3 without it) runs usmc's here, as
 * fork() does through pthread_atfork (usmc_fork.h): its child holds the
 * process's connections, counted.  A raw exec (SYS_execve, SYS_execveat)
 * goes to libc's name, which hands the connections over.
 *
 * A call made without libc at all (inline assembly, as in Go) is out of
 * reach: see docs/PROGRAMS.md.
 */
#undef _FORTIFY_SOURCE

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "usmc.h"
#include "usmc_exec_child.h"
#include "usmc_fd.h"
#include "usmc_fdtab.h"
#include "usmc_fork.h"
#include "usmc_listen.h"
#include "usmc_log.h"
#include "usmc_preload.h"
#include "usmc_proc.h"
#include "usmc_sock.h"
#include "usmc_sys.h"

/* Whether the descriptor is one usmc knows. */
static bool known(long fd)
{
	return fd >= 0 && fd <= INT32_MAX && usmc_sock_get((int)fd);
}

/* pselect6's sixth argument: the mask and its size. */
struct pselect_mask {
	const sigset_t *set;
	size_t size;
};

static long pselect6(long a, long b, long c, long d, long e, long f)
{
	const struct pselect_mask *m = (const struct pselect_mask *)f;

	return pselect((int)a, (fd_set *)b, (fd_set *)c, (fd_set *)d, (const struct timespec *)e,
		       m ? m->set : NULL);
}

/* The calls whose first argument is the descriptor. */
static long fd_call(long nr, long a, long b, long c, long d, long e, long f, bool *done)
{
	*done = true;
	switch (nr) {
	case SYS_read:
		return read((int)a, (void *)b, (size_t)c);
	case SYS_write:
		return write((int)a, (const void *)b, (size_t)c);
	case SYS_readv:
		return readv((int)a, (const struct iovec *)b, (int)c);
	case SYS_writev:
		return writev((int)a, (const struct iovec *)b, (int)c);
	case SYS_preadv2: /* the offset's high half (e) is 0 on a 64-bit kernel */
		return preadv2((int)a, (const struct iovec *)b, (int)c, (off_t)d, (int)f);
	case SYS_pwritev2:
		return pwritev2((int)a, (const struct iovec *)b, (int)c, (off_t)d, (int)f);
	case SYS_recvfrom:
		return recvfrom((int)a, (void *)b, (size_t)c, (int)d, (struct sockaddr *)e,
				(socklen_t *)f);
	case SYS_sendto:
		return sendto((int)a, (const void *)b, (size_t)c, (int)d,
			      (const struct sockaddr *)e, (socklen_t)f);
	case SYS_recvmsg:
		return recvmsg((int)a, (struct msghdr *)b, (int)c);
	case SYS_sendmsg:
		return sendmsg((int)a, (const struct msghdr *)b, (int)c);
	case SYS_recvmmsg:
		return recvmmsg((int)a, (struct mmsghdr *)b, (unsigned int)c, (int)d,
				(struct timespec *)e);
	case SYS_sendmmsg:
		return sendmmsg((int)a, (struct mmsghdr *)b, (unsigned int)c, (int)d);
	case SYS_sendfile:
		return sendfile((int)a, (int)b, (off_t *)c, (size_t)d);
	case SYS_close:
		return close((int)a);
	case SYS_dup:
		return dup((int)a);
	case SYS_dup2:
		return dup2((int)a, (int)b);
	case SYS_dup3:
		return dup3((int)a, (int)b, (int)c);
	case SYS_fcntl:
		return fcntl((int)a, (int)b, c);
	case SYS_ioctl:
		return ioctl((int)a, (unsigned long)b, c);
	case SYS_shutdown:
		return shutdown((int)a, (int)b);
	case SYS_connect:
		return connect((int)a, (const struct sockaddr *)b, (socklen_t)c);
	case SYS_listen:
		return listen((int)a, (int)b);
	case SYS_accept:
		return accept((int)a, (struct sockaddr *)b, (socklen_t *)c);
	case SYS_accept4:
		return accept4((int)a, (struct sockaddr *)b, (socklen_t *)c, (int)d);
	case SYS_getsockopt:
		return getsockopt((int)a, (int)b, (int)c, (void *)d, (socklen_t *)e);
	case SYS_setsockopt:
		return setsockopt((int)a, (int)b, (int)c, (const void *)d, (socklen_t)e);
	}
	*done = false;
	return 0;
}

/*
 * Whether a raw fork copies the process (no CLONE_VM, no CLONE_THREAD)
 * and its child goes on on the caller's stack, returning from syscall()
 * as fork's child does: the only kind usmc's handlers can run around.
 */
static bool raw_fork_copies(long nr, long a, long b)
{
	const struct clone_args *ca = (const struct clone_args *)a;

	switch (nr) {
	case SYS_fork:
		return true;
	case SYS_clone: /* flags, the child's stack, ... */
		return !(a & (CLONE_VM | CLONE_THREAD)) && !b;
	case SYS_clone3:
		return ca && (size_t)b >= CLONE_ARGS_SIZE_VER0 &&
		       !(ca->flags & (CLONE_VM | CLONE_THREAD)) && !ca->stack;
	}
	return false;
}

/* A raw clone whose child shares our memory and is no thread of ours. */
static bool raw_shares_memory(long nr, long a, long b)
{
	const struct clone_args *ca = (const struct clone_args *)a;

	if (nr == SYS_clone)
		return (a & CLONE_VM) && !(a & CLONE_THREAD);
	return nr == SYS_clone3 && ca && (size_t)b >= CLONE_ARGS_SIZE_VER0 &&
	       (ca->flags & CLONE_VM) && !(ca->flags & CLONE_THREAD);
}

/*
 * An io_uring moves bytes out of usmc's sight: every later socket is plain
 * TCP, and connections accepted but not used yet are declined now, their
 * bytes still all in their clients' rings (usmc_listen.c).
 */
static void took_io_uring(void)
{
	bool first = usmc_plain_reason() == 0;
	struct usmc_sock *sock;
	int live = 0;

	usmc_plain_from_now(USMC_DECL_ENV);
	af_accept_finish_all();
	/*
	 * Connections in shared memory already stay there (PROGRAMS.md): a
	 * ring's operation on one would not see its bytes.  Said once, so
	 * that a program that hangs there can be told why.
	 */
	for (int fd = 0; first && (sock = usmc_fdtab_next(&fd)); fd++)
		live += atomic_load(&sock->state) == SOCK_SMC;
	if (live)
		usmc_log(USMC_LOG_WARN, "io_uring set up with %d connection%s in shared memory: "
			 "they stay there, and an io_uring operation on one would not see its data "
			 "(later connections are plain TCP)", live, live == 1 ? "" : "s");
}

/* A fork that runs no handler, with usmc's around it; errno as the fork left it. */
static long fork_with_handlers(long (*fork_call)(long, long, long, long, long, long, long), long nr,
			       long a, long b, long c, long d, long e, long f)
{
	long rc;
	int err;

	usmc_fork_before();
	rc = fork_call(nr, a, b, c, d, e, f);
	err = errno;
	usmc_fork_after((pid_t)rc);
	errno = err;
	return rc;
}

static long raw_syscall(long nr, long a, long b, long c, long d, long e, long f)
{
	return usmc_sys.syscall(nr, a, b, c, d, e, f);
}

static long libc_fork(long nr, long a, long b, long c, long d, long e, long f)
{
	(void)nr, (void)a, (void)b, (void)c, (void)d, (void)e, (void)f;
	return usmc_sys._Fork();
}

EXPORT pid_t _Fork(void)
{
	preload_bound();
	return (pid_t)fork_with_handlers(libc_fork, 0, 0, 0, 0, 0, 0, 0);
}

/*
 * vfork: the child runs in our memory with a descriptor table of its own,
 * and a handshake it answered would leave our link groups naming its
 * descriptors.  So accepted connections not used yet are answered first
 * (af_accept_finish_all), and then libc's vfork runs in our caller's
 * frame: the stub jumps to it, since a return through a C function's
 * frame would find it overwritten by the child.  Elsewhere than x86-64
 * and AArch64 vfork is not taken over: such a child's exec hands over only
 * connections in shared memory (docs/PROGRAMS.md).
 */
#if defined(__x86_64__) || defined(__aarch64__)
__attribute__((used, visibility("hidden"))) pid_t (*usmc_vfork_next)(void);

__attribute__((used, visibility("hidden"))) void usmc_vfork_before(void)
{
	preload_bound();
	usmc_vfork_coming();
	af_accept_finish_all();
	usmc_vfork_next = usmc_sys.vfork;
}

/* Once the stub stands for vfork and __vfork, every vfork is seen (usmc_vfork_child). */
__attribute__((constructor)) static void vfork_watch(void)
{
	usmc_vfork_watched();
}
#endif

#ifdef __x86_64__
__asm__(".pushsection .text\n"
	".globl vfork\n"
	".type vfork, @function\n"
	".globl __vfork\n"
	".type __vfork, @function\n"
	"vfork:\n"
	"__vfork:\n"
	"	endbr64\n"
	"	subq $8, %rsp\n" /* the call's stack aligned to 16 */
	"	call usmc_vfork_before\n"
	"	addq $8, %rsp\n"
	"	jmp *usmc_vfork_next(%rip)\n"
	".size vfork, .-vfork\n"
	".size __vfork, .-__vfork\n"
	".popsection\n");
#elif defined(__aarch64__)
__asm__(".pushsection .text\n"
	".globl vfork\n"
	".type vfork, %function\n"
	".globl __vfork\n"
	".type __vfork, %function\n"
	"vfork:\n"
	"__vfork:\n"
	"	hint #34\n" /* bti c: a landing pad where branch protection is on */
	"	stp x29, x30, [sp, #-16]!\n"
	"	mov x29, sp\n"
	"	bl usmc_vfork_before\n"
	"	ldp x29, x30, [sp], #16\n"
	"	adrp x16, usmc_vfork_next\n"
	"	ldr x16, [x16, #:lo12:usmc_vfork_next]\n"
	"	br x16\n"
	".size vfork, .-vfork\n"
	".size __vfork, .-__vfork\n"
	".popsection\n");
#endif

/* clone(): the child runs fn on its own stack; without CLONE_VM, usmc's handlers first. */
struct clone_start {
	int (*fn)(void *);
	void *arg;
};

static int clone_child(void *p)
{
	/* The child's copy of the parent's memory: the parent frees its own. */
	struct clone_start start = *(struct clone_start *)p;

	usmc_fork_after(0);
	return start.fn(start.arg);
}

/*
 * The three optional arguments are read whether or not the caller passed
 * them, as glibc's clone reads them: AddressSanitizer would take that
 * read of the caller's stack for an overflow.
 */
EXPORT __attribute__((no_sanitize_address)) int clone(int (*fn)(void *), void *stack, int flags,
						      void *arg, ...)
{
	struct clone_start start = { fn, arg };
	void *ptid, *tls, *ctid;
	va_list ap;
	int rc, err;

	/* The three the flags may ask for, read as glibc's clone reads them. */
	va_start(ap, arg);
	ptid = va_arg(ap, void *), tls = va_arg(ap, void *), ctid = va_arg(ap, void *);
	va_end(ap);
	preload_bound();
	/* A child of our memory that is no thread of ours: a vfork child's kind. */
	if ((flags & CLONE_VM) && !(flags & CLONE_THREAD))
		usmc_vfork_coming();
	if (flags & (CLONE_VM | CLONE_THREAD))
		return usmc_sys.clone(fn, stack, flags, arg, ptid, tls, ctid);
	usmc_fork_before();
	rc = usmc_sys.clone(clone_child, stack, flags, &start, ptid, tls, ctid);
	err = errno;
	usmc_fork_after(rc < 0 ? -1 : 1);
	errno = err;
	return rc;
}

/* glibc's other name for it, which a program may call as well. */
EXPORT __attribute__((no_sanitize_address)) int __clone(int (*fn)(void *), void *stack, int flags,
							void *arg, ...)
{
	void *ptid, *tls, *ctid;
	va_list ap;

	va_start(ap, arg);
	ptid = va_arg(ap, void *), tls = va_arg(ap, void *), ctid = va_arg(ap, void *);
	va_end(ap);
	return clone(fn, stack, flags, arg, ptid, tls, ctid);
}

/*
 * The sixth argument lives on the caller's stack, whether or not it
 * passed one; libc's syscall() reads it as well.  AddressSanitizer would
 * take that read for an overflow.
 */
EXPORT __attribute__((no_sanitize_address)) long syscall(long nr, ...)
{
	long a, b, c, d, e, f, rc;
	bool done = false;
	va_list ap;

	/* Six arguments, whatever the call takes, as libc's syscall() reads them. */
	va_start(ap, nr);
	a = va_arg(ap, long), b = va_arg(ap, long), c = va_arg(ap, long);
	d = va_arg(ap, long), e = va_arg(ap, long), f = va_arg(ap, long);
	va_end(ap);
	preload_bound();
	/* On a socket not usmc's too: the descriptors it passes may be (usmc_fd_passing). */
	if (nr == SYS_sendmsg && !known(a) && b && ((const struct msghdr *)b)->msg_controllen)
		usmc_fd_passing((const struct msghdr *)b);
	/*
	 * A wait without a usmc socket stays the kernel's own, which (unlike
	 * libc's) writes the time left into ppoll's and pselect6's timeout.
	 */
	switch (nr) {
	case SYS_poll:
		if (pollset_holds_usmc((struct pollfd *)a, (nfds_t)b))
			return poll((struct pollfd *)a, (nfds_t)b, (int)c);
		break;
	case SYS_ppoll:
		if (pollset_holds_usmc((struct pollfd *)a, (nfds_t)b))
			return ppoll((struct pollfd *)a, (nfds_t)b, (const struct timespec *)c,
				     (const sigset_t *)d);
		break;
	case SYS_select:
	case SYS_pselect6:
		if (!sets_hold_usmc((int)a, (fd_set *)b, (fd_set *)c, (fd_set *)d))
			break;
		if (nr == SYS_pselect6)
			return pselect6(a, b, c, d, e, f);
		return select((int)a, (fd_set *)b, (fd_set *)c, (fd_set *)d, (struct timeval *)e);
	case SYS_epoll_wait:
		return epoll_wait((int)a, (struct epoll_event *)b, (int)c, (int)d);
	case SYS_epoll_pwait:
		return epoll_pwait((int)a, (struct epoll_event *)b, (int)c, (int)d,
				   (const sigset_t *)e);
	case SYS_epoll_pwait2:
		return epoll_pwait2((int)a, (struct epoll_event *)b, (int)c,
				    (const struct timespec *)d, (const sigset_t *)e);
#ifdef SYS_vfork
	case SYS_vfork:
		usmc_vfork_coming();
		break;
#endif
	case SYS_fork:
	case SYS_clone:
	case SYS_clone3:
		if (raw_shares_memory(nr, a, b))
			usmc_vfork_coming();
		if (raw_fork_copies(nr, a, b))
			return fork_with_handlers(raw_syscall, nr, a, b, c, d, e, f);
		break;
	case SYS_execve:
		return execve((const char *)a, (char *const *)b, (char *const *)c);
	case SYS_execveat:
		return execveat((int)a, (const char *)b, (char *const *)c, (char *const *)d, (int)e);
	case SYS_splice:
		if (known(a) || known(c))
			return splice((int)a, (loff_t *)b, (int)c, (loff_t *)d, (size_t)e,
				      (unsigned int)f);
		break;
	case SYS_close_range:
		return close_range((unsigned int)a, (unsigned int)b, (int)c);
	case SYS_io_uring_setup:
		rc = usmc_sys.syscall(nr, a, b, c, d, e, f);
		if (rc >= 0)
			took_io_uring();
		return rc;
	case SYS_seccomp:
	case SYS_prctl:
		rc = usmc_sys.syscall(nr, a, b, c, d, e, f);
		/* A filter's (SECCOMP_SET_MODE_FILTER) may return a listener's descriptor. */
		if (rc >= 0 && (nr == SYS_seccomp ? a == SECCOMP_SET_MODE_STRICT ||
							  a == SECCOMP_SET_MODE_FILTER
						    : a == PR_SET_SECCOMP))
			proc_seccomp_note();
		return rc;
	default:
		/* dup2 and dup3 onto a usmc descriptor close it: usmc must know. */
		if (known(a) || ((nr == SYS_dup2 || nr == SYS_dup3) && known(b))) {
			rc = fd_call(nr, a, b, c, d, e, f, &done);
			if (done)
				return rc;
		}
	}
	return usmc_sys.syscall(nr, a, b, c, d, e, f);
}

EXPORT int prctl(int option, ...)
{
	unsigned long a, b, c, d;
	va_list ap;
	int rc;

	/* Four arguments, whatever the option takes, as libc's prctl() reads them. */
	va_start(ap, option);
	a = va_arg(ap, unsigned long), b = va_arg(ap, unsigned long);
	c = va_arg(ap, unsigned long), d = va_arg(ap, unsigned long);
	va_end(ap);
	preload_bound();
	rc = usmc_sys.prctl(option, a, b, c, d);
	if (rc == 0 && option == PR_SET_SECCOMP)
		proc_seccomp_note();
	return rc;
}

/*
 * liburing makes its system calls itself: its setup calls are the place
 * to see an io_uring coming.  They return -errno.
 */
#define LIBURING_NEXT(name, ...)                                                    \
	do {                                                                        \
		void *f = dlsym(RTLD_NEXT, #name);                                  \
		int rc = f ? ((__typeof__(&name))f)(__VA_ARGS__) : -ENOSYS;         \
		if (rc >= 0)                                                        \
			took_io_uring();                                            \
		return rc;                                                          \
	} while (0)

EXPORT int io_uring_setup(unsigned int entries, void *params);
EXPORT int io_uring_queue_init(unsigned int entries, void *ring, unsigned int flags);
EXPORT int io_uring_queue_init_params(unsigned int entries, void *ring, void *params);
EXPORT int io_uring_queue_init_mem(unsigned int entries, void *ring, void *params, void *buf,
				   size_t buf_size);

EXPORT int io_uring_setup(unsigned int entries, void *params)
{
	LIBURING_NEXT(io_uring_setup, entries, params);
}

EXPORT int io_uring_queue_init(unsigned int entries, void *ring, unsigned int flags)
{
	LIBURING_NEXT(io_uring_queue_init, entries, ring, flags);
}

EXPORT int io_uring_queue_init_params(unsigned int entries, void *ring, void *params)
{
	LIBURING_NEXT(io_uring_queue_init_params, entries, ring, params);
}

EXPORT int io_uring_queue_init_mem(unsigned int entries, void *ring, void *params, void *buf,
				   size_t buf_size)
{
	LIBURING_NEXT(io_uring_queue_init_mem, entries, ring, params, buf, buf_size);
}
