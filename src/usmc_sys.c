// SPDX-License-Identifier: MIT
#include "usmc_sys.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

struct usmc_sys usmc_sys = {
	.socket = socket,
	.bind = bind,
	.listen = listen,
	.connect = connect,
	.accept4 = accept4,
	.read = read,
	.write = write,
	.readv = readv,
	.writev = writev,
	.recv = recv,
	.send = send,
	.recvmsg = recvmsg,
	.sendmsg = sendmsg,
	.sendto = sendto,
	.close = close,
	.dup = dup,
	.dup2 = dup2,
	.dup3 = dup3,
	.close_range = close_range,
	.shutdown = shutdown,
	.fcntl = fcntl,
	.ioctl = (int (*)(int, unsigned long, ...))ioctl,
	.getsockopt = getsockopt,
	.setsockopt = setsockopt,
	.getsockname = getsockname,
	.poll = poll,
	.epoll_ctl = epoll_ctl,
	.epoll_wait = epoll_wait,
};

#define BIND_NEXT(name)                                          \
	do {                                                     \
		void *f = dlsym(RTLD_NEXT, #name);               \
		if (f)                                           \
			*(void **)&usmc_sys.name = f;            \
	} while (0)

void usmc_sys_bind_next(void)
{
	BIND_NEXT(socket);
	BIND_NEXT(bind);
	BIND_NEXT(listen);
	BIND_NEXT(connect);
	BIND_NEXT(accept4);
	BIND_NEXT(read);
	BIND_NEXT(write);
	BIND_NEXT(readv);
	BIND_NEXT(writev);
	BIND_NEXT(recv);
	BIND_NEXT(send);
	BIND_NEXT(recvmsg);
	BIND_NEXT(sendmsg);
	BIND_NEXT(sendto);
	BIND_NEXT(close);
	BIND_NEXT(dup);
	BIND_NEXT(dup2);
	BIND_NEXT(dup3);
	BIND_NEXT(close_range);
	BIND_NEXT(shutdown);
	BIND_NEXT(fcntl);
	BIND_NEXT(ioctl);
	BIND_NEXT(getsockopt);
	BIND_NEXT(setsockopt);
	BIND_NEXT(getsockname);
	BIND_NEXT(poll);
	BIND_NEXT(epoll_ctl);
	BIND_NEXT(epoll_wait);
}
