/* SPDX-License-Identifier: MIT */
/*
 * usmc.h - userspace Shared Memory Communications.
 *
 * A usmc socket is a kernel TCP socket that may carry its data through
 * shared memory instead of the TCP/IP stack.  Make one with
 *
 *     int fd = usmc_socket(AF_INET, SOCK_STREAM, IPPROTO_SMC);
 *
 * and use it with the usmc_ variants of the BSD socket calls below.  The
 * descriptor returned is always the kernel TCP socket itself.
 *
 * When both ends of a connection are usmc processes on the same host (and
 * the same network namespace), they agree on shared memory through a CLC
 * handshake (Proposal, Accept, Confirm, Decline, as in RFC 7609) that
 * travels over a host-local Unix socket, never over the TCP stream.  Data
 * then moves through receive buffers (RMBs) in shared memory, with SMC's
 * CDC producer and consumer cursors.  In every other case the socket
 * "falls back": it is the plain kernel TCP socket, every usmc_ call is the
 * system call of the same name, and usmc_info() tells why.
 *
 * Errors follow the system call mirrored: -1 and errno.
 *
 * The usmc_ calls accept any descriptor: on one that is not a usmc socket
 * they are exactly the system call, so a program may route all its I/O
 * through them.
 */
#ifndef USMC_H
#define USMC_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Linux's protocol number for SMC on the inet path (Linux 6.11 and later). */
#ifndef IPPROTO_SMC
#define IPPROTO_SMC 256
#endif

#ifdef USMC_BUILD
#define USMC_API __attribute__((visibility("default")))
#else
#define USMC_API
#endif

/*
 * Socket creation.
 *
 * domain is AF_INET or AF_INET6, type SOCK_STREAM (SOCK_NONBLOCK and
 * SOCK_CLOEXEC may be or-ed in).  protocol IPPROTO_SMC asks for SMC; 0 and
 * IPPROTO_TCP are treated the same way, as smc_run treats TCP sockets.  Any
 * other combination is passed to socket(2) unchanged and the descriptor is
 * not a usmc socket.
 */
USMC_API int usmc_socket(int domain, int type, int protocol);

USMC_API int usmc_bind(int fd, const struct sockaddr *addr, socklen_t len);
USMC_API int usmc_listen(int fd, int backlog);
USMC_API int usmc_accept(int fd, struct sockaddr *addr, socklen_t *len);
USMC_API int usmc_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);
USMC_API int usmc_connect(int fd, const struct sockaddr *addr, socklen_t len);

USMC_API ssize_t usmc_read(int fd, void *buf, size_t len);
USMC_API ssize_t usmc_write(int fd, const void *buf, size_t len);
USMC_API ssize_t usmc_readv(int fd, const struct iovec *iov, int iovcnt);
USMC_API ssize_t usmc_writev(int fd, const struct iovec *iov, int iovcnt);
USMC_API ssize_t usmc_send(int fd, const void *buf, size_t len, int flags);
USMC_API ssize_t usmc_recv(int fd, void *buf, size_t len, int flags);
USMC_API ssize_t usmc_sendmsg(int fd, const struct msghdr *msg, int flags);
USMC_API ssize_t usmc_recvmsg(int fd, struct msghdr *msg, int flags);

/*
 * sendfile(2) toward a usmc socket: the file's bytes go through the same
 * path as usmc_write (in shared memory, copied through a buffer).  On any
 * other descriptor it is sendfile(2).
 */
USMC_API ssize_t usmc_sendfile(int out_fd, int in_fd, off_t *offset, size_t count);

USMC_API int usmc_shutdown(int fd, int how);
USMC_API int usmc_close(int fd);

/*
 * Descriptors: a dup of a usmc socket is the same usmc socket, and its
 * connection lasts until the last descriptor is closed, as with TCP.
 * usmc_fcntl handles F_DUPFD and F_DUPFD_CLOEXEC the same way.
 */
USMC_API int usmc_dup(int fd);
USMC_API int usmc_dup2(int oldfd, int newfd);
USMC_API int usmc_dup3(int oldfd, int newfd, int flags);
USMC_API int usmc_close_range(unsigned int first, unsigned int last, int flags);

/*
 * Socket options go to the kernel socket.  SO_RCVBUF and SO_SNDBUF, set
 * before connect() or listen(), also size the shared receive buffers
 * (rounded up to a power of two between 16 KiB and 8 MiB).  SO_ERROR
 * reports errors of the shared-memory path as well.
 */
USMC_API int usmc_setsockopt(int fd, int level, int name, const void *val, socklen_t len);
USMC_API int usmc_getsockopt(int fd, int level, int name, void *val, socklen_t *len);
USMC_API int usmc_fcntl(int fd, int cmd, ... /* arg */);
USMC_API int usmc_ioctl(int fd, unsigned long request, ... /* arg */);

/*
 * Tells usmc that the process has installed a seccomp filter (prctl
 * PR_SET_SECCOMP, seccomp(2), libseccomp's seccomp_load): from then on
 * usmc makes only the calls its data path cannot do without (read, write,
 * poll), since a filter may answer any other with SIGSYS.  usmc sees a
 * filter by itself in a process that was forked after its last look, and
 * under usmc-run always; a program linked with usmc that installs one
 * in a process usmc has already looked at calls this right after.
 */
USMC_API void usmc_seccomp_installed(void);

/*
 * Readiness.  In shared-memory mode the kernel socket becomes readable when
 * the peer rings it (a one-byte "doorbell" the peer writes on the idle
 * TCP connection while this side may wait).  usmc_poll and usmc_epoll_wait
 * are exact: they filter the doorbell out, report POLLOUT only when the
 * peer's buffer has room, and wake for the peer's write whichever thread
 * or process holding the socket reads the doorbell.  Plain poll/epoll on
 * the descriptor wakes for a new connection's first data and for data
 * after a read that returned EAGAIN; it misses data a read left in the
 * buffer, a client's first data that its blocking read or usmc_poll was
 * waiting for when the server's Accept came (that call has it), and data
 * a client wrote before it learnt of the server's Accept until its next
 * usmc call; it may report readable with nothing to read.  The peer's
 * end (POLLRDHUP, POLLHUP once this side shut down writing) shows as TCP's
 * FIN would: only once what is unread fits the receive buffer (SO_RCVBUF,
 * else tcp_rmem's default), since TCP's peer sends its FIN no sooner.
 */
USMC_API int usmc_poll(struct pollfd *fds, nfds_t nfds, int timeout);
USMC_API int usmc_epoll_ctl(int epfd, int op, int fd, struct epoll_event *event);
USMC_API int usmc_epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout);

/* What usmc_info reports. */
enum usmc_mode {
	USMC_MODE_NONE = 0,      /* not connected, a listener, or not a usmc socket */
	USMC_MODE_HANDSHAKE = 1, /* CLC handshake in progress */
	USMC_MODE_SMCD = 2,      /* data moves through shared memory */
	USMC_MODE_FALLBACK = 3,  /* the plain kernel TCP socket */
};

/*
 * Fallback reasons: SMC's CLC decline codes (net/smc/smc_clc.h) where one
 * fits, and usmc's own in the same families.
 */
#define USMC_DECL_MEM           0x01010000u /* no memory for buffers (memfd, mmap) */
#define USMC_DECL_TIMEOUT_CLC   0x02030000u /* CLC handshake timed out */
#define USMC_DECL_CHAN_BUSY     0x02040000u /* the listener's channel takes no one now */
#define USMC_DECL_CNFERR        0x03000000u /* configuration error */
#define USMC_DECL_POLICY        0x03000001u /* policy says TCP for this peer */
#define USMC_DECL_FOREIGN       0x03000002u /* peer runs as another user, not allowed */
#define USMC_DECL_ENV           0x03000003u /* environment refuses the fast path */
#define USMC_DECL_DISABLED      0x03000004u /* usmc switched off (USMC_DISABLE) */
#define USMC_DECL_SOCKOPT       0x03000005u /* a socket option rules out SMC */
#define USMC_DECL_LISTENSHARED  0x03000006u /* listener accepted on by several processes */
#define USMC_DECL_SNAT          0x03000007u /* source address translated between namespaces */
#define USMC_DECL_PASSED        0x03000008u /* the process hands connections on (SCM_RIGHTS) */
#define USMC_DECL_REDIRECTED    0x03000009u /* a redirect gave the connection to another listener */
#define USMC_DECL_PEERNOSMC     0x03010000u /* peer is not a usmc endpoint */
#define USMC_DECL_NOSMCDEV      0x03030000u /* peer not on this host */
#define USMC_DECL_VERSMISMAT    0x030c0000u /* CLC version mismatch */
#define USMC_DECL_MAX_DMB       0x030d0000u /* buffer limit of the link group reached */
#define USMC_DECL_SYNCERR       0x04000000u /* handshake out of sync (bad message) */
#define USMC_DECL_FOREIGN_BYTES 0x04000001u /* reset: bytes on the TCP stream that are no doorbell */
#define USMC_DECL_PEERDECL      0x05000000u /* peer declined during handshake */
#define USMC_DECL_INTERR        0x09990000u /* internal error */

struct usmc_info {
	int mode;                 /* enum usmc_mode */
	int fallback_by_peer;     /* the reason is the peer's Decline */
	uint32_t fallback_reason; /* USMC_DECL_*, 0 if none */
	uint32_t rmb_size;        /* our shared receive buffer, bytes */
	uint32_t peer_rmb_size;   /* the peer's, which we write into */
	uint32_t lgr_id;          /* link group, 0 if none */
	uint64_t bytes_sent;      /* through shared memory */
	uint64_t bytes_received;  /* through shared memory */
};

/*
 * Fills *info (at most size bytes of it, so the struct may grow).
 * Returns 0, or -1 with errno EBADF (not open) or ENOTSOCK.  A descriptor
 * that is a socket but not a usmc one reports USMC_MODE_NONE.
 */
USMC_API int usmc_info(int fd, struct usmc_info *info, size_t size);

/* A short text for a USMC_DECL_* code; never NULL. */
USMC_API const char *usmc_reason_str(uint32_t reason);

/* A short name for an enum usmc_mode; never NULL. */
USMC_API const char *usmc_mode_str(int mode);

#ifdef __cplusplus
}
#endif
#endif /* USMC_H */
