// SPDX-License-Identifier: MIT
/*
 * stdio on usmc sockets.
 *
 * glibc's FILE reads and writes through its own internal read and write,
 * which no preload sees: a stream on a shared-memory connection would
 * read doorbell bytes as data and write straight into the TCP socket.
 * So a stream on a usmc socket is made with fopencookie, whose functions
 * are usmc's calls.  glibc runs such a stream through the same code as a
 * descriptor's (libio's _IO_cookie_jumps are _IO_file_jumps but for read,
 * write, seek, close and stat): buffering, line mode, fflush, setvbuf,
 * getline, fread and fwrite behave as on the descriptor.  Its _fileno,
 * which fopencookie sets to -2 ("open, but no descriptor"), is set to the
 * socket's so that fileno() answers as it would; glibc reads _fileno only
 * to tell an open stream from a closed one and to ask stat, which a
 * cookie stream answers with "unknown" (a BUFSIZ buffer where a socket's
 * stream gets 4096 bytes: only the size of each call differs).
 *
 * What takes a usmc socket this way: fdopen; dprintf and vdprintf, which
 * glibc runs through a FILE on the stack; and stdin, stdout and stderr
 * when descriptors 0, 1 and 2 are usmc sockets as a new image starts (an
 * inetd-style service, handed its connection through exec) or when dup2
 * or dup3 makes them so.  freopen of a stream on a usmc socket closes the
 * socket as close() does and opens the file under its number, for the
 * same stream (glibc's own freopen cannot reopen a fopencookie stream).
 *
 * A stream glibc made on a descriptor before dup2 or dup3 put a usmc
 * socket under its number (not one of the three standard streams, which
 * are made anew) cannot be switched in place: glibc's FILE has no room
 * for a cookie stream's functions.  Its connection is declined if it is
 * not answered yet, so that it is TCP from its start and the stream works
 * as on TCP; otherwise the stream refuses to read or write (EBADF, its
 * error flag set), which the program sees, rather than read doorbell
 * bytes as data (streams_before_socket).
 *
 * What cannot work: a stream is byte-oriented only (fopencookie gives it
 * no wide-character part), so fwprintf and its kin on such a stream fail
 * with -1 instead of writing.
 */

/* The fortified inline wrappers of the libc headers would clash with our definitions. */
#undef _FORTIFY_SOURCE

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "usmc.h"
#include "usmc_exec_child.h"
#include "usmc_fd.h"
#include "usmc_fdtab.h"
#include "usmc_listen.h"
#include "usmc_preload.h"
#include "usmc_sock.h"
#include "usmc_sys.h"

/* glibc's fortified formatting, which checks %n as the fortified dprintf does. */
extern int __vsnprintf_chk(char *s, size_t maxlen, int flag, size_t slen, const char *fmt,
			   va_list ap);
extern int __vasprintf_chk(char **out, int flag, const char *fmt, va_list ap);

#define NEXT_CALL(name) ((__typeof__(&name))dlsym(RTLD_NEXT, #name))

/* The cookie is the descriptor itself: nothing to allocate, nothing to leak. */
static int cookie_fd(void *c)
{
	return (int)(intptr_t)c;
}

static ssize_t cookie_read(void *c, char *buf, size_t len)
{
	return usmc_read(cookie_fd(c), buf, len);
}

/*
 * All of it, or what went before an error: glibc's own write for a
 * stream loops the same way, and marks the stream in error on a short count.
 */
static ssize_t cookie_write(void *c, const char *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = usmc_write(cookie_fd(c), buf + done, len - done);

		if (n < 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

/* ESPIPE on a socket, as glibc's lseek on the descriptor gives it. */
static int cookie_seek(void *c, off64_t *off, int whence)
{
	off64_t at = lseek64(cookie_fd(c), *off, whence);

	if (at < 0)
		return -1;
	*off = at;
	return 0;
}

static int cookie_close(void *c)
{
	return usmc_close(cookie_fd(c));
}

static const cookie_io_functions_t cookie_calls = {
	.read = cookie_read,
	.write = cookie_write,
	.seek = cookie_seek,
	.close = cookie_close,
};

/* Whether a stream on fd must go through usmc: a socket that is or may become shared memory. */
static bool usmc_stream_fd(int fd)
{
	struct usmc_sock *s = usmc_sock_get(fd);

	return s && atomic_load(&s->state) != SOCK_PLAIN && atomic_load(&s->state) != SOCK_LISTEN;
}

/* The jump table glibc gives a stream fopencookie makes: set by the first one we make. */
static const void *_Atomic cookie_jumps;

/* A stream on fd through usmc's calls; mode as fopencookie reads it. */
static FILE *cookie_stream(int fd, const char *mode)
{
	FILE *f = fopencookie((void *)(intptr_t)fd, mode, cookie_calls);

	if (f) {
		f->_fileno = fd;
		atomic_store_explicit(&cookie_jumps, *(const void *const *)(f + 1),
				      memory_order_relaxed);
	}
	return f;
}

/* fdopen's checks, as glibc makes them, then the stream. */
static FILE *usmc_fdopen(int fd, const char *mode)
{
	char how[3] = { mode[0], '\0', '\0' };
	int fl;

	if (mode[0] != 'r' && mode[0] != 'w' && mode[0] != 'a') {
		errno = EINVAL;
		return NULL;
	}
	/* glibc looks for '+' among the next four characters, up to the end. */
	for (int i = 1; i < 5 && mode[i]; i++)
		if (mode[i] == '+') {
			how[1] = '+';
			break;
		}
	fl = usmc_sys.fcntl(fd, F_GETFL);
	if (fl < 0)
		return NULL;
	if (((fl & O_ACCMODE) == O_RDONLY && (how[0] != 'r' || how[1])) ||
	    ((fl & O_ACCMODE) == O_WRONLY && (how[0] == 'r' || how[1]))) {
		errno = EINVAL;
		return NULL;
	}
	if (how[0] == 'a' && !(fl & O_APPEND) && usmc_sys.fcntl(fd, F_SETFL, fl | O_APPEND))
		return NULL;
	return cookie_stream(fd, how);
}

EXPORT FILE *fdopen(int fd, const char *mode)
{
	preload_bound();
	if (usmc_stream_fd(fd))
		return usmc_fdopen(fd, mode);
	return NEXT_CALL(fdopen)(fd, mode);
}

EXPORT FILE *_IO_fdopen(int fd, const char *mode)
{
	return fdopen(fd, mode);
}

/* ---- dprintf ---- */

/* Formats (flag >= 0: fortified, as __vdprintf_chk) and writes it all; -1 on error. */
static int usmc_vdprintf(int fd, int flag, const char *fmt, va_list ap)
{
	char small[1024], *text = small;
	va_list again;
	int n;

	va_copy(again, ap);
	n = flag < 0 ? vsnprintf(small, sizeof(small), fmt, ap)
		     : __vsnprintf_chk(small, sizeof(small), flag, sizeof(small), fmt, ap);
	if (n >= (int)sizeof(small))
		n = flag < 0 ? vasprintf(&text, fmt, again)
			     : __vasprintf_chk(&text, flag, fmt, again);
	va_end(again);
	if (n < 0)
		return -1;
	if (cookie_write((void *)(intptr_t)fd, text, (size_t)n) != n)
		n = -1;
	if (text != small)
		free(text);
	return n;
}

EXPORT int vdprintf(int fd, const char *fmt, va_list ap)
{
	preload_bound();
	if (usmc_sock_active(fd))
		return usmc_vdprintf(fd, -1, fmt, ap);
	return NEXT_CALL(vdprintf)(fd, fmt, ap);
}

EXPORT int dprintf(int fd, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vdprintf(fd, fmt, ap);
	va_end(ap);
	return n;
}

EXPORT int __vdprintf_chk(int fd, int flag, const char *fmt, va_list ap)
{
	preload_bound();
	if (usmc_sock_active(fd))
		return usmc_vdprintf(fd, flag < 0 ? 0 : flag, fmt, ap);
	return NEXT_CALL(__vdprintf_chk)(fd, flag, fmt, ap);
}

EXPORT int __dprintf_chk(int fd, int flag, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = __vdprintf_chk(fd, flag, fmt, ap);
	va_end(ap);
	return n;
}

/* ---- freopen ---- */

/* libio's flag bits in a FILE's _flags (glibc's ABI). */
#define STREAM_NO_READS 0x0004
#define STREAM_NO_WRITES 0x0008

/*
 * Whether f is a stream cookie_stream made: glibc's cookie table right
 * after the FILE (struct _IO_FILE_plus), and a descriptor in _fileno,
 * which cookie_stream sets.  A program's own fopencookie stream has
 * _fileno -2.  (The cookie itself is not looked at: a sanitizer's
 * fopencookie puts one of its own there.)
 */
static bool usmc_stream(FILE *f)
{
	const void *jumps = atomic_load_explicit(&cookie_jumps, memory_order_relaxed);

	return jumps && *(const void *const *)(f + 1) == jumps && f->_fileno >= 0;
}

/* open()'s flags for a stream's mode, as glibc reads it; -1 for a mode it refuses. */
static int reopen_flags(const char *mode)
{
	int flags;

	switch (mode[0]) {
	case 'r':
		flags = O_RDONLY;
		break;
	case 'w':
		flags = O_WRONLY | O_CREAT | O_TRUNC;
		break;
	case 'a':
		flags = O_WRONLY | O_CREAT | O_APPEND;
		break;
	default:
		return -1;
	}
	for (int i = 1; i < 7 && mode[i] && mode[i] != ','; i++) {
		if (mode[i] == '+')
			flags = (flags & ~O_ACCMODE) | O_RDWR;
		else if (mode[i] == 'x')
			flags |= O_EXCL;
		else if (mode[i] == 'e')
			flags |= O_CLOEXEC;
	}
	return flags;
}

/*
 * glibc's freopen replaces the stream's descriptor with its internal
 * dup3, or closes it, and its fclose closes it: for a usmc socket, what
 * close() does goes first, after the stream's buffer went out through usmc.
 */
static void before_stream_close(FILE *f)
{
	int fd = f ? fileno(f) : -1;

	if (fd < 0 || !usmc_sock_get(fd))
		return;
	fflush(f);
	usmc_fd_close(fd);
}

/*
 * glibc's freopen of a stream fopencookie made writes through the
 * stream's wide-character part, which such a stream lacks (glibc 2.36:
 * SIGSEGV).  A stream of ours is reopened here as glibc reopens one on a
 * descriptor: what it holds goes out to the socket, the socket is closed
 * as close() closes it, and the file is opened under the same descriptor
 * number, which the same FILE reads and writes from then on (its calls
 * pass a descriptor usmc does not know to the kernel).  Without a path
 * glibc would reopen the socket through /proc, which a socket refuses
 * (ENXIO).  A stream whose file cannot be opened stays, dead (EBADF), as
 * glibc leaves it; nothing is freed that the program may still close.
 */
static FILE *reopen_ours(const char *path, const char *mode, FILE *f)
{
	int fd = fileno(f), flags = reopen_flags(mode), nfd = -1, err;

	before_stream_close(f);
	__fpurge(f);
	clearerr(f);
	if (!path)
		errno = ENXIO;
	else if (flags < 0)
		errno = EINVAL;
	else
		nfd = usmc_sys.open(path, flags, 0666);
	err = errno;
	if (nfd >= 0 && nfd != fd &&
	    (usmc_sys.dup3(nfd, fd, flags & O_CLOEXEC) < 0 || (usmc_sys.close(nfd), false))) {
		err = errno;
		usmc_sys.close(nfd);
		nfd = -1;
	}
	if (nfd < 0) {
		usmc_sys.close(fd);
		f->_flags |= STREAM_NO_READS | STREAM_NO_WRITES;
		errno = err;
		return NULL;
	}
	f->_flags &= ~(STREAM_NO_READS | STREAM_NO_WRITES);
	if ((flags & O_ACCMODE) == O_RDONLY)
		f->_flags |= STREAM_NO_WRITES;
	else if ((flags & O_ACCMODE) == O_WRONLY)
		f->_flags |= STREAM_NO_READS;
	return f;
}

/* fclose of a stream glibc made on what became a usmc socket (streams_before_socket). */
EXPORT int fclose(FILE *f)
{
	int err = errno;

	preload_bound();
	/* fileno() of a program's own fopencookie stream sets errno: a look leaves none. */
	if (f && !usmc_stream(f))
		before_stream_close(f);
	errno = err;
	return usmc_sys.fclose(f);
}

EXPORT FILE *freopen(const char *path, const char *mode, FILE *f)
{
	preload_bound();
	if (f && usmc_stream(f))
		return reopen_ours(path, mode, f);
	before_stream_close(f);
	return NEXT_CALL(freopen)(path, mode, f);
}

EXPORT FILE *freopen64(const char *path, const char *mode, FILE *f)
{
	preload_bound();
	if (f && usmc_stream(f))
		return reopen_ours(path, mode, f);
	before_stream_close(f);
	return NEXT_CALL(freopen64)(path, mode, f);
}

/* ---- the standard streams ---- */

/* libio's _IO_UNBUFFERED and _IO_LINE_BUF in a FILE's _flags (glibc's ABI). */
#define STREAM_UNBUFFERED 0x0002
#define STREAM_LINE_BUF 0x0200

/* The streams made here for descriptors 0, 1 and 2. */
static FILE *std_made[3];

/*
 * Puts a usmc stream in place of the standard stream of fd, unless it is
 * one already.  What glibc's stream holds for output goes on through the
 * new one, as it would have on its next flush, and its buffering mode
 * stays: stderr unbuffered, the others fully buffered as glibc makes them
 * on a socket, or what setvbuf made them.
 */
static void std_stream(FILE **slot, int fd)
{
	FILE *old = *slot, *f;

	if (!old || old == std_made[fd] || fileno(old) != fd || !usmc_sock_active(fd))
		return;
	f = cookie_stream(fd, fd == 0 ? "r" : "w");
	if (!f)
		return;
	/* The old stream's mode, as setvbuf or a terminal left it (libio's flag bits). */
	if (old->_flags & STREAM_UNBUFFERED)
		setvbuf(f, NULL, _IONBF, 0);
	else if (old->_flags & STREAM_LINE_BUF)
		setvbuf(f, NULL, _IOLBF, 0);
	if (fd > 0 && old->_IO_write_ptr > old->_IO_write_base) {
		fwrite(old->_IO_write_base, 1, (size_t)(old->_IO_write_ptr - old->_IO_write_base), f);
		__fpurge(old);
	}
	std_made[fd] = f;
	*slot = f;
}

static void std_streams(void)
{
	std_stream(&stdin, 0);
	std_stream(&stdout, 1);
	std_stream(&stderr, 2);
}

/*
 * exit() flushes the streams after the atexit handlers and the kernel
 * closes the sockets without usmc: the streams go out first, while every
 * wait for room is still answered, then the doorbells are drained.
 */
static void at_exit(void)
{
	fflush(NULL);
	usmc_exit_drain();
}

void preload_stdio_init(void)
{
	std_streams();
	atexit(at_exit);
}

/* glibc's list of the streams it made, and the list's lock (GLIBC_2.2.5). */
extern FILE *_IO_list_all;
extern void _IO_list_lock(void);
extern void _IO_list_unlock(void);

/*
 * How many streams glibc made on fd that are not usmc's, each made to
 * refuse if asked: glibc's underflow and overflow then fail with EBADF
 * and set the stream's error flag.  The stream's lock is only tried: a
 * thread may sit in a read of it, on the file the descriptor was before.
 */
static unsigned native_streams(int fd, bool refuse)
{
	unsigned n = 0;

	_IO_list_lock();
	for (FILE *f = _IO_list_all; f; f = f->_chain) {
		bool locked;

		if (f->_fileno != fd || usmc_stream(f))
			continue;
		n++;
		if (!refuse)
			continue;
		locked = ftrylockfile(f) == 0;
		__atomic_fetch_or(&f->_flags, STREAM_NO_READS | STREAM_NO_WRITES, __ATOMIC_RELAXED);
		if (locked)
			funlockfile(f);
	}
	_IO_list_unlock();
	return n;
}

/* dup2 or dup3 put a usmc socket under fd, where glibc may have made a stream. */
static void streams_before_socket(int fd)
{
	struct usmc_sock *s = usmc_sock_get(fd);
	int state;

	if (!s || !native_streams(fd, false))
		return;
	state = atomic_load(&s->state);
	if (state == SOCK_ACCEPTING)
		state = af_accept_decline(s, USMC_DECL_ENV);
	if (state == SOCK_PROPOSED || state == SOCK_SMC)
		native_streams(fd, true);
}

int preload_stdio_fd_changed(int fd)
{
	int err = errno;

	/*
	 * A vfork child shares our memory but not our pid: the streams it
	 * would replace, or refuse, are its parent's.
	 */
	if (fd < 0 || !usmc_sock_get(fd) || usmc_vfork_child())
		return fd;
	if (fd > 2)
		streams_before_socket(fd);
	else if (usmc_sock_active(fd))
		std_streams();
	errno = err;
	return fd;
}
