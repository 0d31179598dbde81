// SPDX-License-Identifier: MIT
/*
 * What a user sees from outside: usmc-stat lists the sockets of a live
 * process with their modes, reasons and bytes; ss -tp shows the fallback
 * connection with its process; and a large shared-memory transfer leaves
 * its TCP connection almost idle.  A connection a forked child holds
 * after its parent closed its copy is listed under the child.
 *
 *   stat_listing PATH-TO-usmc-stat
 */
#include <netinet/in.h>
#include <linux/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

#define SMC_BYTES (64u << 20)

static uint16_t port;
static struct h_chan done;

/*
 * What the TCP connection itself carried to us.  The loopback interface's
 * own counters would do too, but other processes share it.
 */
static uint64_t tcp_bytes_received(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	CHECK(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0);
	return ti.tcpi_bytes_received;
}

/* A usmc client that sends SMC_BYTES and waits to be told to go. */
static int smc_client(void *arg)
{
	uint8_t *buf = malloc(1 << 20);
	int fd = h_connect(AF_INET, H_USMC, port);

	(void)arg;
	CHECK(buf);
	for (uint32_t off = 0; off < SMC_BYTES; off += 1 << 20) {
		h_pattern(buf, 1 << 20, 3, off);
		h_write_all(fd, buf, 1 << 20);
	}
	h_chan_recv(&done);
	CHECK(usmc_close(fd) == 0);
	free(buf);
	return 0;
}

static int plain_client(void *arg)
{
	int fd = h_connect(AF_INET, H_PLAIN, port);

	(void)arg;
	h_write_all(fd, "hello", 5);
	h_chan_recv(&done);
	CHECK(usmc_close(fd) == 0);
	return 0;
}

/*
 * A command's whole output.  All of it is read: a reader that stopped at a
 * buffer's end would close the pipe on a tool still writing, which then
 * dies of SIGPIPE, and how much it writes depends on what else runs.
 */
static char *run(const char *cmd)
{
	static char *out;
	static size_t cap;
	size_t n = 0, got;
	FILE *p = popen(cmd, "r");

	CHECK(p);
	do {
		if (cap - n < 4096) {
			cap = cap ? cap * 2 : 1 << 16;
			out = realloc(out, cap);
			CHECK(out);
		}
		got = fread(out + n, 1, cap - n - 1, p);
		n += got;
	} while (got);
	out[n] = 0;
	CHECK(pclose(p) == 0);
	return out;
}

static void read_exact(int fd, size_t len, uint64_t seed)
{
	uint8_t *buf = malloc(1 << 20), *want = malloc(1 << 20);

	CHECK(buf && want);
	for (size_t off = 0; off < len;) {
		size_t n = len - off < (1 << 20) ? len - off : (1 << 20);

		h_read_all(fd, buf, n);
		h_pattern(want, n, seed, off);
		CHECK(memcmp(buf, want, n) == 0);
		off += n;
	}
	free(buf);
	free(want);
}

/* A forked child that holds fd until a byte comes on *go, then closes it. */
/*
 * A child holding fd, once its fork has returned in it: until then (its
 * fork handlers) usmc-stat may not list it yet, as a process that has not
 * run cannot be asked.  It closes fd when told on *go.
 */
static pid_t fork_holder(int fd, int *go)
{
	int p[2], up[2];
	char c;
	pid_t pid;

	CHECK(pipe(p) == 0 && pipe(up) == 0);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		close(p[1]);
		close(up[0]);
		if (write(up[1], "", 1) != 1 || read(p[0], &c, 1) != 1)
			_exit(1);
		_exit(usmc_close(fd) == 0 ? 0 : 1);
	}
	close(p[0]);
	close(up[1]);
	CHECK(read(up[0], &c, 1) == 1);
	close(up[0]);
	*go = p[1];
	return pid;
}

int main(int argc, char **argv)
{
	char cmd[512], needle[64], *out;
	int lfd, smc_fd, plain_fd, holder_go;
	uint64_t tcp_moved;
	pid_t smc_pid, plain_pid, holder_pid;
	struct usmc_info info;

	CHECK(argc == 2);
	h_chan_open(&done);
	lfd = h_listen(AF_INET, H_USMC, &port);
	smc_pid = h_fork(smc_client, NULL);
	smc_fd = usmc_accept(lfd, NULL, NULL);
	CHECK(smc_fd >= 0);
	read_exact(smc_fd, SMC_BYTES, 3);
	tcp_moved = tcp_bytes_received(smc_fd);
	fprintf(stderr, "64 MiB through shared memory; the TCP connection carried %llu bytes\n",
		(unsigned long long)tcp_moved);
	CHECK(tcp_moved < 4096);
	h_check_mode(smc_fd, USMC_MODE_SMCD);

	plain_pid = h_fork(plain_client, NULL);
	plain_fd = usmc_accept(lfd, NULL, NULL);
	CHECK(plain_fd >= 0);
	h_read_all(plain_fd, cmd, 5);
	CHECK(usmc_info(plain_fd, &info, sizeof(info)) == 0);
	CHECK(info.mode == USMC_MODE_FALLBACK && info.fallback_reason == USMC_DECL_PEERNOSMC);

	snprintf(cmd, sizeof(cmd), "%s --json -p %d", argv[1], (int)getpid());
	out = run(cmd);
	fprintf(stderr, "%s", out);
	CHECK(strstr(out, "\"mode\": \"LISTEN\""));
	CHECK(strstr(out, "\"mode\": \"SMCD\""));
	CHECK(strstr(out, "\"mode\": \"TCP\""));
	CHECK(strstr(out, "\"fallback_reason\": \"0x03010000\""));
	snprintf(needle, sizeof(needle), "\"bytes_received\": %u", SMC_BYTES);
	CHECK(strstr(out, needle));
	/* Every process's sockets: as long as other processes make it. */
	out = run(argv[1]);
	CHECK(strstr(out, "SMCD") && strstr(out, "peer did not indicate SMC"));
	/* Only our port: other processes may hold thousands of connections. */
	snprintf(cmd, sizeof(cmd), "ss -tpnH state established '( sport = :%u )'", port);
	out = run(cmd);
	snprintf(needle, sizeof(needle), "pid=%d,fd=%d", (int)getpid(), plain_fd);
	CHECK(strstr(out, needle));

	holder_pid = fork_holder(smc_fd, &holder_go);
	CHECK(usmc_close(smc_fd) == 0);
	snprintf(cmd, sizeof(cmd), "%s --json -p %d", argv[1], (int)holder_pid);
	out = run(cmd);
	fprintf(stderr, "the forked child, its parent's copy closed:\n%s", out);
	CHECK(strstr(out, "\"mode\": \"SMCD\""));
	snprintf(needle, sizeof(needle), "\"bytes_received\": %u", SMC_BYTES);
	CHECK(strstr(out, needle));
	CHECK(write(holder_go, "x", 1) == 1);
	CHECK(h_wait_ok(holder_pid));

	h_chan_send(&done, 1);
	h_chan_send(&done, 1);
	CHECK(h_wait_ok(smc_pid) && h_wait_ok(plain_pid));
	CHECK(usmc_close(plain_fd) == 0 && usmc_close(lfd) == 0);
	snprintf(cmd, sizeof(cmd), "%s -s", argv[1]);
	CHECK(strstr(run(cmd), "smcd_connections"));
	printf("usmc-stat, ss and the connection's TCP counters agree: ok\n");
	return 0;
}
