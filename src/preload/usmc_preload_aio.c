// SPDX-License-Identifier: MIT
/*
 * POSIX AIO on sockets.
 *
 * glibc's aio_read and aio_write hand the request to a thread of its own,
 * which tries pread and, on a socket (ESPIPE), calls its internal read:
 * no preload sees it.  On a shared-memory connection that read would
 * return doorbell bytes as data, and the write would put the program's
 * bytes in the kernel socket beside the rings.  So a request on such a
 * connection fails at once with ENOSYS, the answer of a system without
 * AIO (a program that has a synchronous path takes it, and usmc serves
 * that), and from then on the process's sockets are plain TCP, on which
 * glibc's AIO works (usmc_fd_kernel_io).  A request on any other
 * descriptor, a plain TCP one included, is glibc's, unchanged.
 */
#include <aio.h>
#include <errno.h>

#include "usmc_fd.h"
#include "usmc_preload.h"
#include "usmc_sys.h"

EXPORT int aio_read(struct aiocb *cb)
{
	preload_bound();
	if (usmc_fd_kernel_io(cb->aio_fildes) < 0)
		return -1;
	return usmc_sys.aio_read(cb);
}

EXPORT int aio_write(struct aiocb *cb)
{
	preload_bound();
	if (usmc_fd_kernel_io(cb->aio_fildes) < 0)
		return -1;
	return usmc_sys.aio_write(cb);
}

EXPORT int aio_read64(struct aiocb64 *cb)
{
	preload_bound();
	if (usmc_fd_kernel_io(cb->aio_fildes) < 0)
		return -1;
	return usmc_sys.aio_read64(cb);
}

EXPORT int aio_write64(struct aiocb64 *cb)
{
	preload_bound();
	if (usmc_fd_kernel_io(cb->aio_fildes) < 0)
		return -1;
	return usmc_sys.aio_write64(cb);
}

/* Whether every request of the list may go to glibc: none is queued otherwise. */
static bool list_kernel_io(struct aiocb *const list[], int n)
{
	for (int i = 0; list && i < n; i++)
		if (list[i] && list[i]->aio_lio_opcode != LIO_NOP &&
		    usmc_fd_kernel_io(list[i]->aio_fildes) < 0)
			return false;
	return true;
}

EXPORT int lio_listio(int mode, struct aiocb *const list[], int n, struct sigevent *sev)
{
	preload_bound();
	if (!list_kernel_io(list, n))
		return -1;
	return usmc_sys.lio_listio(mode, list, n, sev);
}

EXPORT int lio_listio64(int mode, struct aiocb64 *const list[], int n, struct sigevent *sev)
{
	preload_bound();
	/* struct aiocb64 is struct aiocb on a 64-bit ABI; its first fields are the same on every one. */
	if (!list_kernel_io((struct aiocb *const *)list, n))
		return -1;
	return usmc_sys.lio_listio64(mode, list, n, sev);
}
