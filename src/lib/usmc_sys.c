// SPDX-License-Identifier: MIT
/*
 * The table of real calls (usmc_sys.h): the only object of the library
 * that names an interposed call.
 */
#include "usmc_sys.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <unistd.h>

#define USMC_SYS_LIBC(ret, name, params) .name = name,
struct usmc_sys usmc_sys = { USMC_SYS_CALLS(USMC_SYS_LIBC) };

/*
 * A call this libc lacks.  The table cannot keep the link-time address
 * instead: in the preloaded library that is our own wrapper, which would
 * call itself.  -1 in the return register reads right for every entry,
 * whatever the arguments were (usmc_sys.h).
 */
static long sys_missing(void)
{
	errno = ENOSYS;
	return -1;
}

#define USMC_SYS_NEXT(ret, name, params)                           \
	do {                                                       \
		void *f = dlsym(RTLD_NEXT, #name);                 \
		*(void **)&usmc_sys.name = f ? f : (void *)sys_missing; \
	} while (0);

static _Atomic bool sys_interposed;

void usmc_sys_bind_next(void)
{
	USMC_SYS_CALLS(USMC_SYS_NEXT)
	atomic_store(&sys_interposed, true);
}

bool usmc_sys_interposed(void)
{
	return atomic_load_explicit(&sys_interposed, memory_order_relaxed);
}

/* Signals a fault raises in the thread that faults: they do not cut a wait short. */
static bool fault_signal(int sig)
{
	return sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL ||
	       sig == SIGTRAP || sig == SIGSYS;
}

bool usmc_signals_restart(void)
{
	for (int sig = 1; sig < NSIG; sig++) {
		struct sigaction sa;

		if (sig == SIGKILL || sig == SIGSTOP || fault_signal(sig) || sigaction(sig, NULL, &sa))
			continue;
		if (!(sa.sa_flags & SA_SIGINFO) &&
		    (sa.sa_handler == SIG_DFL || sa.sa_handler == SIG_IGN))
			continue;
		if (!(sa.sa_flags & SA_RESTART))
			return false;
	}
	return true;
}

bool usmc_fd_hung_up(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLRDHUP };

	return usmc_sys.poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}
