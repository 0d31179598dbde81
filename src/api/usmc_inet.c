// SPDX-License-Identifier: MIT
/*
 * SMC on the inet path: socket creation, the descriptor table, the calls
 * that only need the kernel socket, and usmc_info.
 */
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "usmc.h"
#include "usmc_close.h"
#include "usmc_config.h"
#include "usmc_conn.h"
#include "usmc_connect.h"
#include "usmc_epoll.h"
#include "usmc_fd.h"
#include "usmc_fdtab.h"
#include "usmc_listen.h"
#include "usmc_listener.h"
#include "usmc_log.h"
#include "usmc_proc.h"
#include "usmc_rx.h"
#include "usmc_seg.h"
#include "usmc_settle.h"
#include "usmc_sock.h"
#include "usmc_stats.h"
#include "usmc_sys.h"

/*
 * Linux's SMC sockets, socket(AF_SMC, SOCK_STREAM, SMCPROTO_SMC or _SMC6),
 * are usmc sockets of AF_INET or AF_INET6, whether or not the kernel has
 * AF_SMC: TCP wherever SMC cannot be used, as the kernel's are.
 */
#define SMCPROTO_SMC 0
#define SMCPROTO_SMC6 1

int usmc_socket(int domain, int type, int protocol)
{
	int base = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
	bool smc;
	struct usmc_sock *s;
	int fd;

	if (domain == AF_SMC && base == SOCK_STREAM &&
	    (protocol == SMCPROTO_SMC || protocol == SMCPROTO_SMC6)) {
		domain = protocol == SMCPROTO_SMC6 ? AF_INET6 : AF_INET;
		protocol = 0;
	}
	smc = (domain == AF_INET || domain == AF_INET6) && base == SOCK_STREAM &&
	      (protocol == 0 || protocol == IPPROTO_TCP || protocol == IPPROTO_SMC);
	if (smc)
		protocol = IPPROTO_TCP;
	fd = usmc_sys.socket(domain, type, protocol);
	/* What our segments keep only for later is the program's when it runs out. */
	if (fd < 0 && usmc_fd_give_back())
		fd = usmc_sys.socket(domain, type, protocol);
	if (fd < 0 || !smc)
		return fd;
	s = usmc_sock_new(fd, domain);
	if (s)
		usmc_sock_note_nonblock(s, type & SOCK_NONBLOCK);
	if (s && usmc_config()->disabled)
		usmc_sock_fallback(s, USMC_DECL_DISABLED, false);
	else if (s && usmc_plain_reason())
		usmc_sock_fallback(s, usmc_plain_reason(), false);
	return fd;
}

int usmc_bind(int fd, const struct sockaddr *addr, socklen_t len)
{
	return usmc_sys.bind(fd, addr, len);
}

int usmc_listen(int fd, int backlog)
{
	struct usmc_sock *s = usmc_sock_get(fd);

	if (!s || (s->state != SOCK_INIT && s->state != SOCK_LISTEN))
		return usmc_sys.listen(fd, backlog);
	return af_listen(s, backlog);
}

int usmc_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	struct usmc_sock *s = usmc_sock_get(fd);

	if (!s || s->state != SOCK_INIT)
		return usmc_sys.connect(fd, addr, len);
	return af_connect(s, addr, len);
}

int usmc_shutdown(int fd, int how)
{
	struct usmc_sock *s = usmc_sock_active(fd);

	if (s && s->state == SOCK_PROPOSED) {
		if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR) {
			errno = EINVAL;
			return -1;
		}
		usmc_shut_mark(s, how, false);
		if (how != SHUT_WR)
			usmc_shut_wake(s);
		af_settle(s, 0);
		return 0;
	}
	if (!s)
		return usmc_sys.shutdown(fd, how);
	if (usmc_shutdown_conn(s, how) < 0)
		return -1;
	/*
	 * What a wait finds of the socket changed here, with no doorbell: its
	 * entries look again, and a thread asleep in a read or write of it
	 * wakes.
	 */
	usmc_epoll_sock_changed(s);
	usmc_shut_wake(s);
	return 0;
}

int usmc_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	struct usmc_sock *ls = usmc_sock_get(fd), *ns;
	struct sockaddr_storage peer;
	socklen_t peer_len = sizeof(peer);
	int nfd;

	if (!ls)
		return usmc_sys.accept4(fd, addr, len, flags);
	if (atomic_load(&ls->state) == SOCK_LISTEN)
		af_listener_claim(ls);
	/* A close by another thread meanwhile leaves the listener to this accept: usmc_close.h. */
	usmc_sock_hold(ls);
	nfd = usmc_sys.accept4(ls->fd, (struct sockaddr *)&peer, &peer_len, flags);
	if (nfd < 0 && usmc_fd_give_back()) {
		peer_len = sizeof(peer);
		nfd = usmc_sys.accept4(ls->fd, (struct sockaddr *)&peer, &peer_len, flags);
	}
	if (nfd >= 0) {
		if (addr && len) {
			memcpy(addr, &peer, *len < peer_len ? *len : peer_len);
			*len = peer_len;
		}
		af_accept(ls, nfd, (struct sockaddr *)&peer, peer_len);
		if ((ns = usmc_sock_get(nfd)))
			usmc_sock_note_nonblock(ns, flags & SOCK_NONBLOCK);
	}
	usmc_sock_release(ls);
	return nfd;
}

int usmc_accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	return usmc_accept4(fd, addr, len, 0);
}

static void remember_timeout(struct usmc_sock *s, int name, const void *val)
{
	struct timeval tv;
	long long ms;

	memcpy(&tv, val, sizeof(tv));
	ms = (long long)tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000;
	ms = ms < 0 ? 0 : ms > INT_MAX ? INT_MAX : ms;
	if (name == SO_RCVTIMEO)
		s->rcvtimeo_ms = (int)ms;
	else
		s->sndtimeo_ms = (int)ms;
}

/* Options that size the rings are remembered before the kernel sees them. */
static void remember_option(struct usmc_sock *s, int level, int name, const void *val,
			    socklen_t len)
{
	int v;

	if (len < (socklen_t)sizeof(int) || !val)
		return;
	memcpy(&v, val, sizeof(v));
	if (level == SOL_SOCKET && name == SO_SNDBUF)
		s->sndbuf = v;
	else if (level == SOL_SOCKET && name == SO_RCVBUF)
		s->rcvbuf = v;
	else if (level == IPPROTO_TCP && name == TCP_NODELAY)
		s->nodelay = v != 0;
	else if (level == IPPROTO_TCP && name == TCP_CORK)
		s->cork = v != 0;
	else if (level == SOL_SOCKET && name == SO_BUSY_POLL)
		s->busy_poll_us = v > 0 ? v : 0;
	else if (level == SOL_SOCKET && name == SO_RCVLOWAT)
		s->rcvlowat = v;
	else if (level == SOL_SOCKET && name == SO_OOBINLINE)
		s->oobinline = v != 0;
	else if (level == SOL_SOCKET && (name == SO_RCVTIMEO || name == SO_SNDTIMEO) &&
		 len >= (socklen_t)sizeof(struct timeval))
		remember_timeout(s, name, val);
	else if (level == SOL_SOCKET && name == SO_LINGER && len >= (socklen_t)sizeof(struct linger))
		s->linger_reset = ((const struct linger *)val)->l_onoff &&
				  !((const struct linger *)val)->l_linger;
}

int usmc_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	struct usmc_sock *s = usmc_sock_get(fd);

	/* A fallback socket stays one: nothing of its options is needed later. */
	if (!s || s->state == SOCK_PLAIN)
		return usmc_sys.setsockopt(fd, level, name, val, len);
	/*
	 * In shared memory the kernel socket carries only doorbells: it keeps
	 * TCP_NODELAY, and no TCP_CORK, which would hold each doorbell back
	 * for up to 200 ms (nginx's tcp_nopush corks every sendfile).
	 */
	if (s->state == SOCK_SMC && level == IPPROTO_TCP && (name == TCP_NODELAY || name == TCP_CORK)) {
		int rc = val && len >= (socklen_t)sizeof(int) ? 0 : (errno = EINVAL, -1);

		if (rc == 0)
			remember_option(s, level, name, val, len);
		return rc;
	}
	/* SO_OOBINLINE is the rings' (usmc_rx.c): the kernel socket carries doorbells. */
	if (s->state == SOCK_SMC && level == SOL_SOCKET && name == SO_OOBINLINE) {
		if (!val || len < (socklen_t)sizeof(int)) {
			errno = EINVAL;
			return -1;
		}
		usmc_rx_set_oobinline(s, *(const int *)val != 0);
		return 0;
	}
	if (usmc_sys.setsockopt(fd, level, name, val, len) < 0)
		return -1;
	remember_option(s, level, name, val, len);
	if (s->state == SOCK_LISTEN && level == IPPROTO_TCP && name == TCP_DEFER_ACCEPT)
		af_listener_defer_take(s);
	return 0;
}

/*
 * SO_ERROR of a shared-memory connection, reported once as TCP does: a
 * reset we saw in shared memory, else an error of the kernel socket that
 * a doorbell drain took.  The kernel's own copy of a reported reset is
 * consumed with it, and so is the error of a reset that only our
 * doorbells caused (usmc_wake.c): the connection ended with TCP's end of
 * file.
 */
static int conn_so_error(struct usmc_sock *s)
{
	struct usmc_conn_shared *sh = s->conn->sh;
	int err = atomic_exchange(&sh->err, 0), tcp_err = atomic_exchange(&sh->tcp_err, 0);
	int kernel_err = 0;
	socklen_t len = sizeof(kernel_err);

	usmc_sys.getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &kernel_err, &len);
	if (atomic_load(&sh->reset))
		return err;
	if (atomic_load(&sh->tcp_state) == CDC_TCP_EOF)
		return tcp_err;
	return tcp_err ? tcp_err : kernel_err;
}

int usmc_getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	/* Options ask nothing of a connection not used yet: it stays unanswered. */
	struct usmc_sock *s = usmc_sock_get(fd);
	int v;

	if (!s)
		return usmc_sys.getsockopt(fd, level, name, val, len);
	if (level == IPPROTO_TCP && name == TCP_NODELAY && s->state == SOCK_SMC)
		v = s->nodelay;
	else if (level == IPPROTO_TCP && name == TCP_CORK && s->state == SOCK_SMC)
		v = s->cork;
	else if (level == SOL_SOCKET && name == SO_ERROR && s->state == SOCK_SMC)
		v = conn_so_error(s);
	else if (level == SOL_SOCKET && name == SO_OOBINLINE && s->state == SOCK_SMC)
		v = s->conn->sh->rx_urg.inline_;
	else if (level == IPPROTO_TCP && name == TCP_DEFER_ACCEPT && s->state == SOCK_LISTEN)
		v = s->defer_accept;
	else
		return usmc_sys.getsockopt(fd, level, name, val, len);
	if (!val || !len || (int)*len < 0) {
		errno = EINVAL;
		return -1;
	}
	/* A shorter buffer gets the first bytes, as from TCP's getsockopt. */
	if (*len > (socklen_t)sizeof(v))
		*len = sizeof(v);
	memcpy(val, &v, *len);
	return 0;
}

int usmc_fcntl(int fd, int cmd, ...)
{
	struct usmc_sock *s;
	va_list ap;
	long arg;
	int rc;

	va_start(ap, cmd);
	arg = va_arg(ap, long);
	va_end(ap);
	if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)
		return usmc_fcntl_dupfd(fd, cmd, (int)arg);
	/* Signal-driven I/O waits on the kernel socket, out of our sight: a first use. */
	if ((cmd == F_SETOWN || cmd == F_SETOWN_EX || cmd == F_SETSIG ||
	     (cmd == F_SETFL && (arg & O_ASYNC))) &&
	    (s = usmc_sock_get(fd)))
		af_sock_used(s);
	rc = usmc_sys.fcntl(fd, cmd, arg);
	if (rc >= 0 && (cmd == F_SETFL || cmd == F_GETFL) && (s = usmc_sock_get(fd)))
		usmc_sock_note_nonblock(s, (cmd == F_SETFL ? arg : rc) & O_NONBLOCK);
	return rc;
}

void usmc_seccomp_installed(void)
{
	proc_seccomp_note();
}

int usmc_ioctl(int fd, unsigned long request, ...)
{
	struct usmc_sock *s;
	va_list ap;
	void *arg;
	uint64_t avail;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (request == FIONBIO) {
		int rc = usmc_sys.ioctl(fd, request, arg);

		if (!rc && arg && (s = usmc_sock_get(fd)))
			usmc_sock_note_nonblock(s, *(int *)arg != 0);
		return rc;
	}
	s = usmc_sock_active(fd);
	if (s && s->state == SOCK_PROPOSED && request == FIONREAD && af_settle(s, 0) < 0) {
		*(int *)arg = 0; /* nothing can have come before the answer */
		return 0;
	}
	if (s && s->state == SOCK_PROPOSED && request == SIOCATMARK)
		af_settle(s, 0);
	if (s && s->state == SOCK_SMC && request == SIOCATMARK) {
		*(int *)arg = usmc_rx_at_mark(s);
		return 0;
	}
	if (!s || request != FIONREAD || s->state != SOCK_SMC)
		return usmc_sys.ioctl(fd, request, arg);
	if (usmc_rx_inq(s, &avail) < 0)
		avail = 0;
	*(int *)arg = avail > INT32_MAX ? INT32_MAX : (int)avail;
	return 0;
}

int usmc_info(int fd, struct usmc_info *info, size_t size)
{
	struct usmc_sock *s = usmc_sock_get(fd);
	struct usmc_info out = { 0 };
	int type;
	socklen_t tlen = sizeof(type);

	/* Only a descriptor we do not know needs the kernel's word on what it is. */
	if (!s && usmc_sys.getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) < 0)
		return -1;
	if (s) {
		if (af_sock_used(s) == SOCK_PROPOSED)
			af_settle(s, 0);
		out.mode = usmc_sock_mode(s);
		out.fallback_reason = s->reason;
		out.fallback_by_peer = s->reason_by_peer;
		if (s->conn) {
			out.rmb_size = s->conn->tx.size;
			out.peer_rmb_size = s->conn->rx_mapped ? s->conn->rx.size : 0;
			out.lgr_id = s->conn->lgr ? s->conn->lgr->id : 0;
		}
		out.bytes_sent = atomic_load(&s->diag->bytes_sent);
		out.bytes_received = atomic_load(&s->diag->bytes_received);
	}
	/* A copy of known size is a few moves; of any size, a loop. */
	if (size >= sizeof(out))
		*info = out;
	else
		memcpy(info, &out, size);
	return 0;
}

const char *usmc_mode_str(int mode)
{
	switch (mode) {
	case USMC_MODE_HANDSHAKE:
		return "handshake";
	case USMC_MODE_SMCD:
		return "SMCD";
	case USMC_MODE_FALLBACK:
		return "TCP";
	default:
		return "none";
	}
}
