// SPDX-License-Identifier: MIT
/*
 * stdio on a socket: fdopen streams read with fgets, getline and fread
 * and written with fprintf and fwrite, one "r+" stream each way, dprintf,
 * and a forked child whose stdin and stdout dup2 made the socket; the
 * other names of these (_IO_fdopen, __dprintf_chk, __vdprintf_chk), and
 * freopen, which puts a file in place of a socket's stream.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "diff.h"

#define ROUNDS 300

/* libc's other names of fdopen and its fortified dprintf; its headers do not declare them. */
extern FILE *_IO_fdopen(int fd, const char *mode);
extern int __dprintf_chk(int fd, int flag, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
extern int __vdprintf_chk(int fd, int flag, const char *fmt, va_list ap);

/* fdopen, or what a case puts in its place (_IO_fdopen). */
static FILE *(*opener)(int fd, const char *mode) = fdopen;

static FILE *open_stream(int fd, const char *mode)
{
	FILE *f = opener(fd, mode);

	if (!f)
		fatal("fdopen(%s)", mode);
	return f;
}

/* A line of round i: its length varies from a few bytes to about 20 KiB. */
static size_t make_line(char *buf, size_t cap, int i, const char *who)
{
	size_t len = (size_t)snprintf(buf, cap, "%s %d:", who, i);
	size_t body = (size_t)(i * 7919 % 20000) * (i % 5 == 0);

	if (len + body + 2 > cap)
		fatal("line too long");
	for (size_t k = 0; k < body; k++)
		buf[len + k] = (char)('a' + (i + k) % 26);
	len += body;
	buf[len++] = '\n';
	buf[len] = '\0';
	return len;
}

/* Reads lines with fgets until EOF; says how many, their sum, and the end. */
static void fgets_to_eof(FILE *in, const char *what)
{
	static char line[32768];
	uint32_t sum = SUM_INIT;
	int n = 0;

	while (fgets(line, sizeof(line), in)) {
		sum = sum32(sum, line, strlen(line));
		n++;
	}
	say("%s: %d lines, sum %08x, feof %d ferror %d", what, n, sum, feof(in) != 0,
	    ferror(in) != 0);
}

/* ---- a line protocol: each side its own read and write stream ---- */

static void lines_client(struct end *e)
{
	static char line[32768], reply[32768];
	FILE *in = open_stream(e->fd, "r"), *out = open_stream(dup(e->fd), "w");
	uint32_t sum = SUM_INIT;
	int good = 0;

	say("fileno of the streams: %s", fileno(in) == e->fd ? "the socket" : "OTHER");
	for (int i = 0; i < ROUNDS; i++) {
		make_line(line, sizeof(line), i, "ask");
		if (fprintf(out, "%s", line) < 0 || fflush(out))
			fatal("fprintf");
		if (!fgets(reply, sizeof(reply), in))
			break;
		make_line(line, sizeof(line), i, "got");
		good += !strcmp(line, reply);
		sum = sum32(sum, reply, strlen(reply));
	}
	say("%d replies, %d as expected, sum %08x", ROUNDS, good, sum);
	say_rc("fclose(out)", fclose(out));
	say_rc("shutdown(SHUT_WR)", shutdown(e->fd, SHUT_WR));
	fgets_to_eof(in, "after our SHUT_WR");
	say_rc("fclose(in)", fclose(in));
	e->fd = -1;
}

static void lines_server(struct end *e)
{
	static char line[32768], answer[32768];
	FILE *in = open_stream(e->fd, "r"), *out = open_stream(dup(e->fd), "w");
	int n = 0;

	while (fgets(line, sizeof(line), in)) {
		int i;

		if (sscanf(line, "ask %d:", &i) != 1)
			fatal("a line not asked");
		make_line(answer, sizeof(answer), i, "got");
		fputs(answer, out);
		fflush(out);
		n++;
	}
	say("%d lines answered, feof %d", n, feof(in) != 0);
	fprintf(out, "bye after %d\n", n);
	say_rc("fclose(out)", fclose(out));
	say_rc("fclose(in)", fclose(in));
	e->fd = -1;
}

/* ---- one "r+" stream each side, in lockstep ---- */

static void rw_client(struct end *e)
{
	static char line[32768];
	FILE *f = open_stream(e->fd, "r+");
	uint32_t sum = SUM_INIT;
	int n = 0;

	setvbuf(f, NULL, _IOLBF, 0);
	for (int i = 0; i < ROUNDS; i++) {
		fprintf(f, "ask %d:%0*d\n", i, i % 50, i);
		if (!fgets(line, sizeof(line), f))
			break;
		sum = sum32(sum, line, strlen(line));
		n++;
	}
	say("line buffered r+: %d replies, sum %08x", n, sum);
	fputs("end\n", f);
	fgets_to_eof(f, "then");
	say_rc("fclose", fclose(f));
	e->fd = -1;
}

static void rw_server(struct end *e)
{
	static char line[32768];
	FILE *f = open_stream(e->fd, "r+");
	int n = 0;

	while (fgets(line, sizeof(line), f) && strcmp(line, "end\n")) {
		fprintf(f, "%zu bytes: %s", strlen(line), line);
		fflush(f);
		n++;
	}
	say("r+: %d lines answered", n);
	say_rc("fclose", fclose(f));
	e->fd = -1;
}

/* ---- fread and fwrite of large sizes, getline ---- */

#define BIG (1u << 20)

static void bulk_client(struct end *e)
{
	uint8_t *buf = malloc(BIG + 3);
	FILE *out = open_stream(e->fd, "w");

	if (!buf)
		fatal("malloc");
	pattern(buf, BIG + 3, 60, 0);
	say_rc("fwrite(1 MiB + 3) in one call", (long)fwrite(buf, 1, BIG + 3, out));
	for (int i = 0; i < 200; i++)
		fprintf(out, "%0*d\n", (i * 331) % 9000, i);
	say_rc("fflush", fflush(out));
	say_rc("shutdown(SHUT_WR)", shutdown(e->fd, SHUT_WR));
	recv_pattern(e->fd, 61, 0, 300007, "fwrite in small pieces");
	recv_to_eof(e->fd, "then");
	say_rc("fclose", fclose(out));
	e->fd = -1;
	free(buf);
}

static void bulk_server(struct end *e)
{
	uint8_t *buf = malloc(BIG + 3);
	FILE *in = open_stream(e->fd, "r"), *out = open_stream(dup(e->fd), "w");
	char *line = NULL;
	size_t cap = 0, got;
	uint32_t sum = SUM_INIT;
	ssize_t n;
	int lines = 0;

	if (!buf)
		fatal("malloc");
	got = fread(buf, 1, BIG + 3, in);
	say("fread(1 MiB + 3) in one call = %zu, pattern %s", got,
	    pattern_ok(buf, got, 60, 0) ? "ok" : "BAD");
	while ((n = getline(&line, &cap, in)) > 0) {
		sum = sum32(sum, line, (size_t)n);
		lines++;
	}
	say("getline: %d lines, sum %08x, feof %d", lines, sum, feof(in) != 0);
	say("fread at EOF = %zu", fread(buf, 1, 10, in));
	pattern(buf, 300007, 61, 0);
	for (size_t off = 0; off < 300007; off += 7)
		fwrite(buf + off, 1, 300007 - off < 7 ? 300007 - off : 7, out);
	say_rc("fclose(out)", fclose(out));
	say_rc("fclose(in)", fclose(in));
	e->fd = -1;
	free(line);
	free(buf);
}

/* ---- dprintf ---- */

static void vsay_dprintf(int fd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	say_rc("vdprintf", vdprintf(fd, fmt, ap));
	va_end(ap);
}

static void dprintf_client(struct end *e)
{
	recv_to_eof(e->fd, "dprintf output");
}

static void dprintf_server(struct end *e)
{
	static char big[6000];
	int total = 0;

	memset(big, 'd', sizeof(big) - 1);
	for (int i = 0; i < 1000; i++)
		total += dprintf(e->fd, "line %d of %s\n", i, "dprintf");
	say("1000 dprintf lines: %d bytes", total);
	say_rc("dprintf of 6 KB", dprintf(e->fd, "%s|%d\n", big, 42));
	vsay_dprintf(e->fd, "%s %x %c\n", "vdprintf", 0xbeef, '!');
	say_rc("shutdown(SHUT_WR)", shutdown(e->fd, SHUT_WR));
	say_rc("dprintf after SHUT_WR", dprintf(e->fd, "lost %d\n", 1));
}

/* ---- a forked child on stdin and stdout, without exec ---- */

static void std_client(struct end *e)
{
	static char line[32768];
	FILE *in = open_stream(e->fd, "r");
	uint32_t sum = SUM_INIT;
	int n = 0;

	/* Short lines: all of them fit the socket's buffers before anyone reads. */
	for (int i = 0; i < ROUNDS; i++) {
		int len = snprintf(line, sizeof(line), "ask %d\n", i);

		if (write(e->fd, line, (size_t)len) != len)
			fatal("write");
	}
	say_rc("shutdown(SHUT_WR)", shutdown(e->fd, SHUT_WR));
	while (fgets(line, sizeof(line), in)) {
		sum = sum32(sum, line, strlen(line));
		n++;
	}
	say("%d lines back, sum %08x", n, sum);
	fclose(in);
	e->fd = -1;
}

/* The child reads its stdin and answers on stdout, then exits (exit flushes). */
static void std_server(struct end *e)
{
	pid_t pid = fork();
	int status;

	if (pid < 0)
		fatal("fork");
	if (pid == 0) {
		static char line[32768];
		int n = 0;

		if (dup2(e->fd, 0) != 0 || dup2(e->fd, 1) != 1)
			fatal("dup2");
		close(e->fd);
		while (fgets(line, sizeof(line), stdin))
			printf("%d %zu %s", n++, strlen(line), line);
		say("child: %d lines, feof(stdin) %d", n, feof(stdin) != 0);
		exit(0);
	}
	close(e->fd);
	e->fd = -1;
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		fatal("the child did not end well");
	say("child exit %d", WEXITSTATUS(status));
}

/* ---- the same, line buffered by setvbuf before the dup2, in lockstep ---- */

static void std_lockstep_client(struct end *e)
{
	static char line[256];
	FILE *in = open_stream(e->fd, "r");
	int good = 0;

	/* Each answer must come before the next question: stdout stays line buffered. */
	for (int i = 0; i < 100; i++) {
		char want[300];
		int len = snprintf(line, sizeof(line), "ask %d\n", i);

		snprintf(want, sizeof(want), "%d %d %s", i, len, line);
		if (write(e->fd, line, (size_t)len) != len)
			fatal("write");
		if (!fgets(line, sizeof(line), in))
			break;
		good += !strcmp(line, want);
	}
	say("100 questions, %d answers in step", good);
	say_rc("shutdown(SHUT_WR)", shutdown(e->fd, SHUT_WR));
	fgets_to_eof(in, "then");
	fclose(in);
	e->fd = -1;
}

static void std_lockstep_server(struct end *e)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	std_server(e);
}

/*
 * ---- _IO_fdopen: fdopen's old name, on the r+ lockstep, once in shared memory ----
 *
 * The server's stream is fdopen's: were both ends' streams glibc's own,
 * they would meet in the kernel's TCP and agree without usmc.
 */

static void io_fdopen_client(struct end *e)
{
	greet(e);
	opener = _IO_fdopen;
	errno = 0;
	say("_IO_fdopen(\"x\"): %s", _IO_fdopen(e->fd, "x") ? "a stream" : errno_name(errno));
	rw_client(e);
}

static void io_fdopen_server(struct end *e)
{
	greet(e);
	rw_server(e);
}

/* ---- freopen: a file in place of a socket's stream, under the socket's number ---- */

static FILE *(*reopener)(const char *path, const char *mode, FILE *f);

enum { REOPENED = 1, READ_ALL };

/* What the stream holds in its buffer when freopen comes: less than any buffer's size. */
static size_t reopen_text(char *buf, size_t cap)
{
	size_t len = 0;

	for (int i = 0; i < 20; i++)
		len += (size_t)snprintf(buf + len, cap - len, "line %d before freopen\n", i);
	return len;
}

/*
 * freopen flushes the stream to the socket, and the socket's end is the
 * end of the connection; from then on the number is the file's, for the
 * stream and for every call on the descriptor.
 */
static void reopen_steps(struct end *e)
{
	char path[] = "/tmp/usmc-diff-XXXXXX", text[1024], back[64];
	int fd = e->fd, tmp = mkstemp(path);
	FILE *f, *g;
	ssize_t n;

	if (tmp < 0)
		fatal("mkstemp");
	close(tmp);
	greet(e);
	f = open_stream(fd, "w");
	reopen_text(text, sizeof(text));
	if (fputs(text, f) == EOF)
		fatal("fputs");
	say("%zu bytes in the stream's buffer", strlen(text));
	g = reopener(path, "w+", f);
	if (!g)
		fatal("freopen");
	e->fd = -1;
	say("freopen: the same stream %s, the same descriptor %s", g == f ? "yes" : "no",
	    fileno(g) == fd ? "yes" : "no");
	tell(e, REOPENED);
	say_rc("getsockopt(SO_TYPE) on the descriptor",
	       getsockopt(fd, SOL_SOCKET, SO_TYPE, &(int){ 0 }, &(socklen_t){ sizeof(int) }));
	fputs("into the file\n", g);
	say_rc("fflush", fflush(g));
	say_rc("write(3) on the descriptor", write(fd, "abc", 3));
	say_rc("lseek to the start", lseek(fd, 0, SEEK_SET));
	n = read(fd, back, sizeof(back) - 1);
	say_rc("read the file back", n);
	back[n > 0 ? n : 0] = '\0';
	say("  %s", strcmp(back, "into the file\nabc") ? "NOT what was written" : "what was written");
	say_rc("fclose", fclose(g));
	unlink(path);
	expect(e, READ_ALL);
}

static void reopen_server(struct end *e)
{
	char text[1024], got[1024];
	size_t len = reopen_text(text, sizeof(text)), have = 0;
	ssize_t n = 0;
	short ready;

	greet(e);
	expect(e, REOPENED);
	while (have < len && (n = read(e->fd, got + have, len - have)) > 0)
		have += (size_t)n;
	say("the stream's buffer, which freopen flushed: %zu bytes, %s", have,
	    have == len && !memcmp(got, text, len) ? "as written" : "NOT as written");
	/* A bounded wait: a connection freopen did not end gives no end of file. */
	ready = wait_for(e->fd, POLLIN);
	say_mask("then", (unsigned)ready);
	if (ready & POLLIN)
		say_rc("read", read(e->fd, got, 1));
	tell(e, READ_ALL);
}

#define REOPEN_CLIENT(fn)                               \
	static void fn##_client(struct end *e)         \
	{                                               \
		reopener = fn;                          \
		reopen_steps(e);                        \
	}
REOPEN_CLIENT(freopen)
REOPEN_CLIENT(freopen64)

/* ---- __dprintf_chk and __vdprintf_chk, as _FORTIFY_SOURCE makes dprintf ---- */

#define CHK_LINES 300
#define CHK_BIG 3000

static char chk_big[CHK_BIG + 1];

static void vdprintf_chk(int fd, const char *what, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void vdprintf_chk(int fd, const char *what, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	say_rc(what, __vdprintf_chk(fd, 1, fmt, ap));
	va_end(ap);
}

/* The client's copy of what the server writes, formatted by snprintf. */
static size_t chk_text(char *buf, size_t cap)
{
	size_t len = 0;

	for (int i = 0; i < CHK_LINES; i++)
		len += (size_t)snprintf(buf + len, cap - len, "chk %d of %s\n", i, "__dprintf_chk");
	len += (size_t)snprintf(buf + len, cap - len, "%s|%d\n", chk_big, 42);
	len += (size_t)snprintf(buf + len, cap - len, "%s %x %c\n", "__vdprintf_chk", 0xbeef, '!');
	len += (size_t)snprintf(buf + len, cap - len, "%s/%s\n", chk_big, chk_big);
	return len;
}

static void dprintf_chk_client(struct end *e)
{
	static char want[65536], got[65536];
	size_t len, have = 0;
	ssize_t n;

	memset(chk_big, 'c', CHK_BIG);
	len = chk_text(want, sizeof(want));
	greet(e);
	while (have < sizeof(got) && (n = read(e->fd, got + have, sizeof(got) - have)) > 0)
		have += (size_t)n;
	say("the fortified dprintf output: %zu bytes, %s", have,
	    have == len && !memcmp(got, want, len) ? "as snprintf formats it" : "NOT as formatted");
}

static void dprintf_chk_server(struct end *e)
{
	int total = 0;

	memset(chk_big, 'c', CHK_BIG);
	greet(e);
	for (int i = 0; i < CHK_LINES; i++)
		total += __dprintf_chk(e->fd, 1, "chk %d of %s\n", i, "__dprintf_chk");
	say("%d __dprintf_chk lines: %d bytes", CHK_LINES, total);
	say_rc("__dprintf_chk of 3 KB", __dprintf_chk(e->fd, 2, "%s|%d\n", chk_big, 42));
	vdprintf_chk(e->fd, "__vdprintf_chk", "%s %x %c\n", "__vdprintf_chk", 0xbeef, '!');
	vdprintf_chk(e->fd, "__vdprintf_chk of 6 KB", "%s/%s\n", chk_big, chk_big);
	say_rc("shutdown(SHUT_WR)", shutdown(e->fd, SHUT_WR));
	say_rc("__dprintf_chk after SHUT_WR", __dprintf_chk(e->fd, 1, "lost %d\n", 1));
}

const struct diff_case stdio_cases[] = {
	{ "stdio_lines", lines_client, lines_server, .conns = 1 },
	{ "stdio_rw", rw_client, rw_server, .conns = 1 },
	{ "stdio_bulk", bulk_client, bulk_server, .conns = 1 },
	{ "stdio_dprintf", dprintf_client, dprintf_server, .conns = 1 },
	{ "stdio_std_fork", std_client, std_server, .conns = 1 },
	{ "stdio_std_linebuf", std_lockstep_client, std_lockstep_server, .conns = 1 },
	{ "stdio_io_fdopen", io_fdopen_client, io_fdopen_server, .conns = 1 },
	{ "stdio_freopen", freopen_client, reopen_server, .conns = 1 },
	{ "stdio_freopen64", freopen64_client, reopen_server, .conns = 1 },
	{ "stdio_dprintf_chk", dprintf_chk_client, dprintf_chk_server, .conns = 1 },
	{ NULL },
};
