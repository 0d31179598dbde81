// SPDX-License-Identifier: MIT
/*
 * memory: what idle connections cost, at both ends.
 *
 * A server and a client process open 1, 100 and 10,000 connections and
 * leave them idle.  The main process reads /proc/PID/smaps_rollup and
 * /proc/PID/status of both before the first connection and once every
 * connection is made (and, for smc, checked to be in shared memory), and
 * reports the growth per connection.  /proc/meminfo gives what the kernel
 * holds besides (slab for the sockets, shmem for the memfd segments); it is
 * system-wide, so other load on the machine shows in it.
 *
 * Pss splits a page mapped by both processes between them, so the Pss of
 * both ends added is what a connection really costs; Rss counts a shared
 * page at each end.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "usmc_config.h"

#define MEM_TIMEOUT_SEC 60
#define FD_RESERVE 128 /* descriptors kept for the library and the pipes */

static const int conn_counts[] = { 1, 100, 10000 };
static const enum transport mem_transports[] = { TR_TCP, TR_UNIX, TR_SMC };

/* One process's memory, in KiB. */
struct mem_sample {
	long rss, pss, shared, private_, mapped;
};

/* The kernel's, system-wide, in KiB. */
struct sys_sample {
	long slab, shmem;
};

/* Adds the value of "name:  N kB" lines of a /proc file to *out. */
static bool proc_fields(const char *path, const char *const *names, long **out, int n)
{
	char line[256];
	FILE *f = fopen(path, "r");

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		for (int i = 0; i < n; i++) {
			size_t len = strlen(names[i]);

			if (!strncmp(line, names[i], len) && line[len] == ':')
				*out[i] += strtol(line + len + 1, NULL, 10);
		}
	fclose(f);
	return true;
}

static bool sample_process(pid_t pid, struct mem_sample *m)
{
	static const char *const rollup[] = { "Rss",	       "Pss",	       "Shared_Clean",
					      "Shared_Dirty",  "Private_Clean", "Private_Dirty" };
	static const char *const status[] = { "VmSize" };
	long *rollup_out[] = { &m->rss, &m->pss, &m->shared, &m->shared, &m->private_, &m->private_ };
	long *status_out[] = { &m->mapped };
	char path[64];

	*m = (struct mem_sample){ 0 };
	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	if (!proc_fields(path, rollup, rollup_out, 6))
		return false;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	return proc_fields(path, status, status_out, 1);
}

static void sample_system(struct sys_sample *s)
{
	static const char *const names[] = { "Slab", "Shmem" };
	long *out[] = { &s->slab, &s->shmem };

	*s = (struct sys_sample){ 0 };
	proc_fields("/proc/meminfo", names, out, 2);
}

/*
 * Raises the descriptor limit for count connections per process (the
 * children inherit it); returns how many connections the limit allows.
 */
static int allowed_connections(int count)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)count + FD_RESERVE;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return 1;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want) {
		struct rlimit more = { want, want };

		/* Only a privileged process may raise the hard limit. */
		if (!setrlimit(RLIMIT_NOFILE, &more))
			rl = more;
	}
	if (rl.rlim_cur < want) {
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur >= want)
		return count;
	return rl.rlim_cur > FD_RESERVE + 1 ? (int)(rl.rlim_cur - FD_RESERVE) : 1;
}

/* ---- the two sides ---- */

/* Waits until the main process closes the pipe, holding the connections. */
static void hold_until_closed(int fd)
{
	char c;

	while (read(fd, &c, 1) > 0 || errno == EINTR)
		;
}

static void send_result(int fd, const struct side_result *r)
{
	if (write(fd, r, sizeof(*r)) != (ssize_t)sizeof(*r))
		_exit(1);
}

static void memory_server(const struct job *j, int lfd, int count, int rep, int ctl)
{
	struct side_result r = { .ok = 1 };

	while (r.count < (uint64_t)count) {
		struct pollfd p = { .fd = lfd, .events = POLLIN };
		int fd;

		if (usmc_poll(&p, 1, MEM_TIMEOUT_SEC * 1000) <= 0) {
			fail(&r, "waiting for connections");
			break;
		}
		fd = usmc_accept(lfd, NULL, NULL);
		if (fd < 0) {
			fail(&r, "accept");
			break;
		}
		check_mode(fd, j, true, &r);
		r.count++;
	}
	send_result(rep, &r);
	hold_until_closed(ctl);
	_exit(0);
}

/*
 * A usmc connect() returns once the kernel connected; the server's answer
 * is taken at the next call.  Waiting for it, as a client that uses its
 * connection would, keeps the client from running ahead of accept() by
 * more than the handshake timeout.
 */
static void wait_handshake(int fd)
{
	struct usmc_info info;
	char none;

	/* A usmc read of nothing waits for the answer, and takes no data. */
	if (usmc_info(fd, &info, sizeof(info)) == 0 && info.mode == USMC_MODE_HANDSHAKE)
		usmc_recv(fd, &none, 0, 0);
}

static void memory_client(const struct job *j, uint16_t port, int count, int rep, int ctl)
{
	struct side_result r = { .ok = 1 };
	char go;

	send_result(rep, &r); /* ready: the main process samples "before" now */
	if (read(ctl, &go, 1) != 1)
		_exit(1);
	while (r.count < (uint64_t)count) {
		int fd = bench_connect(j, port);

		if (fd < 0) {
			fail(&r, "connect");
			break;
		}
		wait_handshake(fd);
		check_mode(fd, j, false, &r);
		r.count++;
	}
	send_result(rep, &r);
	hold_until_closed(ctl);
	_exit(0);
}

/* ---- one measurement ---- */

struct mem_result {
	int conns;                   /* made at both ends */
	struct mem_sample delta[2];  /* client, server: after minus before */
	struct sys_sample sys_delta;
	double seconds;              /* to open them all */
	bool ok;
};

static bool read_timed(int fd, void *buf, size_t len)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, MEM_TIMEOUT_SEC * 1000) == 1 && read(fd, buf, len) == (ssize_t)len;
}

/* Side 0 is the client, 1 the server. */
static pid_t spawn(const struct job *j, int count, uint16_t port, int side, int rep[2][2],
		   int ctl[2][2])
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	/* A pipe end left open here would keep the other side from seeing EOF. */
	for (int k = 0; k < 2; k++) {
		close(rep[!side][k]);
		close(ctl[!side][k]);
	}
	close(rep[side][0]);
	close(ctl[side][1]);
	if (side == 0) {
		memory_client(j, port, count, rep[side][1], ctl[side][0]);
	} else {
		struct side_result r = { .ok = 1 };
		int lfd = bench_listen(j, &port);

		if (lfd < 0)
			fail(&r, "listen");
		if (write(rep[side][1], &port, sizeof(port)) != sizeof(port) || lfd < 0)
			_exit(1);
		memory_server(j, lfd, count, rep[side][1], ctl[side][0]);
	}
	_exit(1);
}

static void sub_sample(struct mem_sample *d, const struct mem_sample *a, const struct mem_sample *b)
{
	d->rss = a->rss - b->rss;
	d->pss = a->pss - b->pss;
	d->shared = a->shared - b->shared;
	d->private_ = a->private_ - b->private_;
	d->mapped = a->mapped - b->mapped;
}

static void note_failure(const struct job *j, const struct side_result *r, const char *side)
{
	if (!r->ok)
		fprintf(stderr, "ERROR: memory over %s: %s: %s\n", transport_name(j->tr), side, r->err);
	if (r->mode_wrong)
		fprintf(stderr, "WARNING: memory over %s: %d %s connection(s) report mode %s (%s)\n",
			transport_name(j->tr), r->mode_wrong, side, usmc_mode_str(r->mode_seen),
			usmc_reason_str(r->reason));
}

/* Samples both processes once the client is ready, and again once all is connected. */
static void measure_sides(const struct job *j, pid_t pid[2], int rep[2][2], int ctl[2][2],
			  struct mem_result *out)
{
	struct mem_sample before[2], after[2];
	struct sys_sample sys_before, sys_after;
	struct side_result r[2] = { { 0 }, { 0 } };
	double start;

	if (!read_timed(rep[0][0], &r[0], sizeof(r[0])))
		return;
	sample_system(&sys_before);
	if (!sample_process(pid[0], &before[0]) || !sample_process(pid[1], &before[1]))
		return;
	start = now_sec();
	if (write(ctl[0][1], "g", 1) != 1)
		return;
	if (!read_timed(rep[0][0], &r[0], sizeof(r[0])) || !read_timed(rep[1][0], &r[1], sizeof(r[1])))
		return;
	out->seconds = now_sec() - start;
	note_failure(j, &r[0], "client");
	note_failure(j, &r[1], "server");
	if (!sample_process(pid[0], &after[0]) || !sample_process(pid[1], &after[1]))
		return;
	sample_system(&sys_after);
	for (int s = 0; s < 2; s++)
		sub_sample(&out->delta[s], &after[s], &before[s]);
	out->sys_delta.slab = sys_after.slab - sys_before.slab;
	out->sys_delta.shmem = sys_after.shmem - sys_before.shmem;
	out->conns = (int)(r[0].count < r[1].count ? r[0].count : r[1].count);
	out->ok = r[0].ok && r[1].ok && !r[0].mode_wrong && !r[1].mode_wrong && out->conns > 0;
}

static void measure_memory(enum transport tr, int count, struct mem_result *out)
{
	static int seq;
	struct job j = { .test = T_MEMORY, .tr = tr };
	int rep[2][2] = { { -1, -1 }, { -1, -1 } }, ctl[2][2] = { { -1, -1 }, { -1, -1 } };
	pid_t pid[2] = { -1, -1 }; /* client, server */
	uint16_t port = 0;

	*out = (struct mem_result){ 0 };
	snprintf(j.unix_path, sizeof(j.unix_path), "usmc-bench/mem/%d/%d", (int)getpid(), seq++);
	fflush(NULL);
	if (pipe(rep[0]) || pipe(rep[1]) || pipe(ctl[0]) || pipe(ctl[1]))
		goto out;
	pid[1] = spawn(&j, count, 0, 1, rep, ctl);
	if (pid[1] > 0 && read_timed(rep[1][0], &port, sizeof(port)))
		pid[0] = spawn(&j, count, port, 0, rep, ctl);
	close(rep[0][1]);
	close(rep[1][1]);
	rep[0][1] = rep[1][1] = -1;
	if (pid[0] > 0)
		measure_sides(&j, pid, rep, ctl, out);
out:
	for (int s = 0; s < 2; s++) {
		for (int k = 0; k < 2; k++) {
			if (rep[s][k] >= 0)
				close(rep[s][k]);
			if (ctl[s][k] >= 0)
				close(ctl[s][k]);
		}
		if (pid[s] > 0 && !out->ok)
			kill(pid[s], SIGKILL);
		if (pid[s] > 0)
			waitpid(pid[s], NULL, 0);
	}
}

/* ---- output ---- */

/* A ring's first lap, as the library reads USMC_BUFSIZE and its default. */
static long ring_bytes(void)
{
	return (long)usmc_ring_size(0);
}

static void print_row(enum transport tr, const struct mem_result *m, long target_kib)
{
	const struct mem_sample *c = &m->delta[0], *s = &m->delta[1];
	double n = m->conns;
	double pss = (double)(c->pss + s->pss) / n;

	printf("| %s | %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.2f | %s |\n",
	       transport_name(tr), m->conns, (double)c->rss / n, (double)s->rss / n, pss,
	       (double)(c->shared + s->shared) / n, (double)(c->private_ + s->private_) / n,
	       (double)(c->mapped + s->mapped) / n, (double)m->sys_delta.slab / n,
	       (double)m->sys_delta.shmem / n, m->seconds,
	       pss <= (double)target_kib ? "yes" : "NO");
}

/* Runs the memory test once over tcp, unix and smc (those of trs); false on a failure. */
bool memory_run(const bool *trs)
{
	long ring_kib = ring_bytes() >> 10, target = 2 * ring_kib + 4;
	bool all_ok = true;

	printf("\nmemory per idle connection, KiB (after minus before, divided by the connections;\n"
	       "pss, shared, private and mapped add both ends; slab and shmem are system-wide):\n"
	       "target: the two rings (2 x %ld KiB) + 4 KiB = %ld KiB of pss per connection\n\n",
	       ring_kib, target);
	printf("| transport | conns | client rss | server rss | pss both | shared both | private both"
	       " | mapped both | kernel slab | kernel shmem | open s | pss <= target |\n"
	       "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
	fflush(stdout);
	for (size_t i = 0; i < sizeof(conn_counts) / sizeof(conn_counts[0]); i++) {
		int count = allowed_connections(conn_counts[i]);

		if (count < conn_counts[i])
			fprintf(stderr, "memory: RLIMIT_NOFILE allows %d connections, not %d\n", count,
				conn_counts[i]);
		for (size_t t = 0; t < sizeof(mem_transports) / sizeof(mem_transports[0]); t++) {
			enum transport tr = mem_transports[t];
			struct mem_result m;

			if (!trs[tr])
				continue;
			measure_memory(tr, count, &m);
			if (m.conns > 0)
				print_row(tr, &m, target);
			if (!m.ok) {
				all_ok = false;
				fprintf(stderr, "ERROR: memory over %s: %d of %d connections\n",
					transport_name(tr), m.conns, count);
			}
			fflush(stdout);
		}
	}
	return all_ok;
}
