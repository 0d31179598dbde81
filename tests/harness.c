// SPDX-License-Identifier: MIT
#include "harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

void h_parse_way(int argc, char **argv, struct h_opts *o)
{
	o->family = AF_INET;
	o->client = o->server = H_USMC;
	for (int i = 1; i + 1 < argc; i++) {
		if (!strcmp(argv[i], "--family"))
			o->family = !strcmp(argv[i + 1], "6") ? AF_INET6 : AF_INET;
		if (!strcmp(argv[i], "--way")) {
			const char *w = argv[i + 1];

			o->client = strcmp(w, "tcp") && strcmp(w, "fallback-server") ? H_USMC : H_PLAIN;
			o->server = strcmp(w, "tcp") && strcmp(w, "fallback") ? H_USMC : H_PLAIN;
		}
	}
}

const char *h_way_name(const struct h_opts *o)
{
	if (o->client == H_USMC && o->server == H_USMC)
		return "smc";
	if (o->client == H_USMC)
		return "fallback";
	if (o->server == H_USMC)
		return "fallback-server";
	return "tcp";
}

int h_expected_mode(enum h_kind self, enum h_kind peer)
{
	if (self == H_PLAIN)
		return USMC_MODE_NONE;
	return peer == H_USMC ? USMC_MODE_SMCD : USMC_MODE_FALLBACK;
}

int h_socket(int family, enum h_kind kind, int flags)
{
	int fd = kind == H_USMC ? usmc_socket(family, SOCK_STREAM | flags, IPPROTO_SMC)
				: socket(family, SOCK_STREAM | flags, 0);

	CHECK(fd >= 0);
	return fd;
}

socklen_t h_loopback(int family, uint16_t port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		return sizeof(*s4);
	}
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	s6->sin6_family = AF_INET6;
	s6->sin6_port = htons(port);
	s6->sin6_addr = in6addr_loopback;
	return sizeof(*s6);
}

int h_listen(int family, enum h_kind kind, uint16_t *port)
{
	struct sockaddr_storage ss;
	socklen_t len = h_loopback(family, 0, &ss);
	int fd = h_socket(family, kind, 0), one = 1;

	CHECK(usmc_setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0);
	CHECK(usmc_bind(fd, (struct sockaddr *)&ss, len) == 0);
	CHECK(usmc_listen(fd, 1024) == 0);
	CHECK(getsockname(fd, (struct sockaddr *)&ss, &len) == 0);
	*port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
					: ((struct sockaddr_in6 *)&ss)->sin6_port);
	return fd;
}

int h_connect_flags(int family, enum h_kind kind, uint16_t port, int flags)
{
	struct sockaddr_storage ss;
	socklen_t len = h_loopback(family, port, &ss);
	int fd = h_socket(family, kind, flags);
	int rc = usmc_connect(fd, (struct sockaddr *)&ss, len);

	CHECK(rc == 0 || (errno == EINPROGRESS && (flags & SOCK_NONBLOCK)));
	return fd;
}

int h_connect(int family, enum h_kind kind, uint16_t port)
{
	return h_connect_flags(family, kind, port, 0);
}

pid_t h_fork(int (*fn)(void *), void *arg)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		/* A test that fails must not leave its peers waiting forever. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() == 1)
			_exit(1);
		_exit(fn(arg));
	}
	return pid;
}

bool h_wait_ok(pid_t pid)
{
	int status;

	CHECK(waitpid(pid, &status, 0) == pid);
	if (WIFSIGNALED(status))
		fprintf(stderr, "child %d killed by signal %d\n", (int)pid, WTERMSIG(status));
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

void h_chan_open(struct h_chan *c)
{
	int p[2];

	CHECK(pipe(p) == 0);
	c->rd = p[0];
	c->wr = p[1];
}

void h_run_pair(int (*server)(void *), int (*client)(void *), struct h_chan *port_chan)
{
	pid_t srv, cli;
	uint16_t port;

	h_chan_open(port_chan);
	srv = h_fork(server, NULL);
	port = (uint16_t)h_chan_recv(port_chan);
	cli = h_fork(client, (void *)(uintptr_t)port);
	CHECK(h_wait_ok(cli));
	CHECK(h_wait_ok(srv));
	close(port_chan->rd);
	close(port_chan->wr);
}

void h_chan_send(struct h_chan *c, uint64_t v)
{
	CHECK(write(c->wr, &v, sizeof(v)) == sizeof(v));
}

uint64_t h_chan_recv(struct h_chan *c)
{
	uint64_t v;

	CHECK(read(c->rd, &v, sizeof(v)) == sizeof(v));
	return v;
}

uint64_t h_rand(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

void h_pattern(uint8_t *buf, size_t len, uint64_t seed, uint64_t offset)
{
	for (size_t i = 0; i < len; i++) {
		uint64_t x = (offset + i) * 0x9e3779b97f4a7c15ull ^ seed;

		buf[i] = (uint8_t)(x >> 29 ^ x >> 7);
	}
}

uint64_t h_fnv(uint64_t h, const void *buf, size_t len)
{
	return fnv(h, buf, len);
}

static void wait_fd(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };

	CHECK(usmc_poll(&p, 1, 30000) == 1);
}

void h_write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = usmc_write(fd, p, len);

		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			wait_fd(fd, POLLOUT);
			continue;
		}
		CHECK(n > 0);
		p += n;
		len -= (size_t)n;
	}
}

void h_read_all(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = usmc_read(fd, p, len);

		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			wait_fd(fd, POLLIN);
			continue;
		}
		CHECK(n > 0);
		p += n;
		len -= (size_t)n;
	}
}

uint64_t h_read_to_eof(int fd, uint64_t *sum, size_t chunk_max, uint64_t *rng)
{
	uint8_t *buf = malloc(chunk_max);
	uint64_t total = 0;

	CHECK(buf);
	*sum = H_FNV_INIT;
	for (;;) {
		size_t want = rng ? 1 + h_rand(rng) % chunk_max : chunk_max;
		ssize_t n = usmc_read(fd, buf, want);

		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			wait_fd(fd, POLLIN);
			continue;
		}
		CHECK(n >= 0);
		if (n == 0)
			break;
		*sum = h_fnv(*sum, buf, (size_t)n);
		total += (uint64_t)n;
	}
	free(buf);
	return total;
}

uint64_t h_write_stream(int fd, uint64_t size, uint64_t seed, size_t chunk_max, uint64_t *rng)
{
	uint8_t *buf = malloc(chunk_max);
	uint64_t sum = H_FNV_INIT, off = 0;

	CHECK(buf);
	while (off < size) {
		size_t n = rng ? 1 + h_rand(rng) % chunk_max : chunk_max;

		if (n > size - off)
			n = size - off;
		h_pattern(buf, n, seed, off);
		sum = h_fnv(sum, buf, n);
		h_write_all(fd, buf, n);
		off += n;
	}
	free(buf);
	return sum;
}

int h_send_half(uint16_t port, size_t len, uint64_t seed, uint64_t *sum)
{
	int fd = h_connect(AF_INET, H_USMC, port);

	*sum = h_write_stream(fd, len, seed, 1 << 16, NULL);
	CHECK(usmc_shutdown(fd, SHUT_WR) == 0);
	return fd;
}

void h_check_mode(int fd, int mode)
{
	struct usmc_info info;

	CHECK(usmc_info(fd, &info, sizeof(info)) == 0);
	if (info.mode != mode)
		fprintf(stderr, "[%d] fd %d: mode %s, expected %s (reason 0x%08x %s)\n", (int)getpid(),
			fd, usmc_mode_str(info.mode), usmc_mode_str(mode), info.fallback_reason,
			usmc_reason_str(info.fallback_reason));
	CHECK(info.mode == mode);
}

uint64_t h_tcp_carried(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	/* The kernel's own count, whatever usmc says of the connection. */
	CHECK(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0);
	return ti.tcpi_bytes_acked + ti.tcpi_bytes_received;
}

void h_check_shm_carried(int fd, uint64_t moved)
{
	uint64_t carried = h_tcp_carried(fd);

	if (carried > 64 + moved / 8)
		fprintf(stderr, "[%d] fd %d: its TCP carried %llu bytes of %llu moved\n", (int)getpid(),
			fd, (unsigned long long)carried, (unsigned long long)moved);
	CHECK(carried <= 64 + moved / 8);
}

int h_count_lines(const char *path, const char *needle)
{
	char line[512];
	int n = 0;
	FILE *f = fopen(path, "re");

	CHECK(f);
	while (fgets(line, sizeof(line), f))
		n += strstr(line, needle) != NULL;
	fclose(f);
	return n;
}

int h_count_fds(void)
{
	struct dirent *de;
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	CHECK(d);
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the directory's own descriptor */
}

void h_smc_pair(int lfd, uint16_t port, int *client, int *server)
{
	char b;

	*client = h_connect(AF_INET, H_USMC, port);
	*server = usmc_accept(lfd, NULL, NULL);
	CHECK(*server >= 0);
	/* The handshake settles on the client's first read of the server's byte. */
	h_write_all(*server, "x", 1);
	h_read_all(*client, &b, 1);
	h_check_mode(*server, USMC_MODE_SMCD);
	h_check_mode(*client, USMC_MODE_SMCD);
}

void h_raise_nofile(int need)
{
	struct rlimit rl;

	CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
	}
	CHECK(rl.rlim_cur >= (rlim_t)need);
}

void h_become(uid_t uid, const char *policy)
{
	CHECK(setgroups(0, NULL) == 0);
	CHECK(setresgid(uid, uid, uid) == 0);
	CHECK(setresuid(uid, uid, uid) == 0);
	CHECK(setenv("USMC_POLICY", policy, 1) == 0);
}

void h_registry_own(const char *name)
{
	static char dir[64];

	snprintf(dir, sizeof(dir), "/tmp/usmc-%s-XXXXXX", name);
	CHECK(mkdtemp(dir));
	CHECK(setenv("USMC_REGISTRY_DIR", dir, 1) == 0);
}

void h_wait_wchan(pid_t tid, const char *needle)
{
	char path[64], buf[128];

	snprintf(path, sizeof(path), "/proc/%d/wchan", (int)tid);
	for (int i = 0; i < 100000; i++) {
		FILE *f = fopen(path, "r");
		size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

		if (f)
			fclose(f);
		buf[n] = 0;
		if (strstr(buf, needle))
			return;
		usleep(100);
	}
	fprintf(stderr, "[%d] %d never slept in %s (wchan %s)\n", (int)getpid(), (int)tid, needle,
		buf);
	CHECK(!"asleep");
}

bool h_tcp_listed(unsigned lport, uint16_t port)
{
	char line[256], want[48];
	FILE *f = fopen("/proc/net/tcp", "r");
	bool found = false;

	CHECK(f != NULL);
	snprintf(want, sizeof(want), "0100007F:%04X 0100007F:%04X ", lport, port);
	while (fgets(line, sizeof(line), f))
		found |= strstr(line, want) != NULL;
	fclose(f);
	return found;
}

unsigned h_write_close(uint16_t port, uint64_t seed, size_t len, bool short_fin_wait2)
{
	uint8_t *buf = malloc(len);
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	int fd = h_connect(AF_INET, H_USMC, port);

	CHECK(buf && getsockname(fd, (struct sockaddr *)&a, &alen) == 0);
	if (short_fin_wait2)
		CHECK(setsockopt(fd, IPPROTO_TCP, TCP_LINGER2, &(int){ 1 }, sizeof(int)) == 0);
	h_pattern(buf, len, seed, 0);
	h_write_all(fd, buf, len);
	CHECK(usmc_close(fd) == 0);
	free(buf);
	return ntohs(a.sin_port);
}

void h_trace_until(pid_t pid, bool (*stop)(const struct __ptrace_syscall_info *info, pid_t pid))
{
	struct __ptrace_syscall_info info;
	int status;

	CHECK(waitpid(pid, &status, 0) == pid && WIFSTOPPED(status) && WSTOPSIG(status) == SIGSTOP);
	CHECK(ptrace(PTRACE_SETOPTIONS, pid, NULL, (void *)(uintptr_t)PTRACE_O_TRACESYSGOOD) == 0);
	do {
		CHECK(ptrace(PTRACE_SYSCALL, pid, NULL, NULL) == 0);
		CHECK(waitpid(pid, &status, 0) == pid && WIFSTOPPED(status));
		CHECK(WSTOPSIG(status) == (SIGTRAP | 0x80));
		CHECK(ptrace(PTRACE_GET_SYSCALL_INFO, pid, (void *)sizeof(info), &info) > 0);
	} while (!stop(&info, pid));
}
