// SPDX-License-Identifier: MIT
/*
 * usmc-stat: the smcss of usmc.
 *
 *   usmc-stat            live usmc sockets: process, addresses, mode, reason, bytes
 *   usmc-stat -s         counters of all usmc processes of this user (like smcd stats)
 *   usmc-stat --json     the same as JSON, for scripts
 *   usmc-stat --kernel   the kernel's own SMC sockets (smc_diag); with -s its
 *                        counters (stat_kernel.c)
 *
 * Sockets come from each process's diag table (a memfd found through
 * /proc/PID/fd); addresses and TCP states from /proc/net/tcp{,6} by inode.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "usmc.h"
#include "usmc_diag.h"
#include "usmc_proc.h"
#include "usmc_stats.h"

#include "json_out.h"
#include "stat_kernel.h"

struct tcp_entry {
	unsigned long inode;
	int family;
	char local[64];
	char peer[64];
	int state;
};

static struct tcp_entry *tcp_table;
static size_t tcp_count, tcp_cap;
static bool json;
static int only_pid;
static int printed;

static const char *tcp_state_names[] = {
	"?", "ESTAB", "SYN-SENT", "SYN-RECV", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT",
	"CLOSE", "CLOSE-WAIT", "LAST-ACK", "LISTEN", "CLOSING",
};

/* "0100007F:1F90" (IPv4) or 32 hex digits (IPv6) to "127.0.0.1:8080". */
static void format_proc_addr(const char *hex, int family, char *out, size_t len)
{
	unsigned char addr[16];
	char text[INET6_ADDRSTRLEN];
	unsigned port = 0;
	size_t n = family == AF_INET ? 4 : 16;
	const char *colon = strchr(hex, ':');

	if (!colon || (size_t)(colon - hex) != 2 * n) {
		snprintf(out, len, "?");
		return;
	}
	/* /proc prints each 32-bit word in host order. */
	for (size_t w = 0; w < n / 4; w++) {
		uint32_t v;

		sscanf(hex + 8 * w, "%8x", &v);
		memcpy(addr + 4 * w, &v, 4);
	}
	sscanf(colon + 1, "%x", &port);
	inet_ntop(family, addr, text, sizeof(text));
	snprintf(out, len, family == AF_INET ? "%s:%u" : "[%s]:%u", text, port);
}

static void load_proc_tcp(const char *path, int family)
{
	char line[512], local[64], peer[64];
	unsigned long inode;
	int state;
	FILE *f = fopen(path, "re");

	if (!f)
		return;
	if (!fgets(line, sizeof(line), f)) {
		fclose(f);
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		struct tcp_entry *e;

		if (sscanf(line, "%*d: %63s %63s %x %*s %*s %*s %*d %*d %lu", local, peer, &state,
			   &inode) != 4)
			continue;
		if (tcp_count == tcp_cap) {
			tcp_cap = tcp_cap ? tcp_cap * 2 : 256;
			tcp_table = realloc(tcp_table, tcp_cap * sizeof(*tcp_table));
			if (!tcp_table)
				exit(1);
		}
		e = &tcp_table[tcp_count++];
		e->inode = inode;
		e->family = family;
		e->state = state;
		format_proc_addr(local, family, e->local, sizeof(e->local));
		format_proc_addr(peer, family, e->peer, sizeof(e->peer));
	}
	fclose(f);
}

/* Not a socket (inode 0) matches nothing: /proc lists TIME-WAIT sockets with inode 0. */
static const struct tcp_entry *tcp_find(unsigned long inode)
{
	if (inode == 0)
		return NULL;
	for (size_t i = 0; i < tcp_count; i++)
		if (tcp_table[i].inode == inode)
			return &tcp_table[i];
	return NULL;
}

static unsigned long fd_socket_inode(int pid, int fd)
{
	char path[64], link[64];
	unsigned long inode = 0;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", pid, fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n <= 0)
		return 0;
	link[n] = 0;
	sscanf(link, "socket:[%lu]", &inode);
	return inode;
}

static const char *diag_mode(uint32_t state)
{
	switch (state) {
	case DIAG_LISTEN:
		return "LISTEN";
	case DIAG_HANDSHAKE:
		return "CLC";
	case DIAG_SMCD:
		return "SMCD";
	case DIAG_FALLBACK:
		return "TCP";
	default:
		return "-";
	}
}

static void print_socket(int pid, const char *comm, const struct usmc_diag_sock *d)
{
	const struct tcp_entry *t = tcp_find(fd_socket_inode(pid, d->fd));
	const char *tcp_state = t && t->state < 12 ? tcp_state_names[t->state] : "-";
	uint64_t tx = atomic_load(&d->bytes_sent), rx = atomic_load(&d->bytes_received);
	uint32_t state = atomic_load(&d->state);

	if (json) {
		printf("%s\n  {\"pid\": %d, \"command\": ", printed ? "," : "", pid);
		json_string(comm, 64);
		printf(", \"fd\": %d, \"tcp_state\": \"%s\", \"local\": \"%s\", \"peer\": \"%s\", "
		       "\"mode\": \"%s\", \"fallback_reason\": \"0x%08x\", \"fallback_reason_text\": ",
		       d->fd, tcp_state, t ? t->local : "", t ? t->peer : "", diag_mode(state), d->reason);
		json_string(usmc_reason_str(d->reason), 256);
		printf(", \"reason_by_peer\": %s, \"lgr\": %u, \"peer_pid\": %d, \"rmb_size\": %u, "
		       "\"bytes_sent\": %" PRIu64 ", \"bytes_received\": %" PRIu64 "}",
		       d->by_peer ? "true" : "false", d->lgr_id, d->peer_pid, d->rmb_size, tx, rx);
	} else {
		printf("%-7d %-15.15s %4d %-10s %-24s %-24s %-6s %-10s %-30s %12" PRIu64 " %12" PRIu64 "\n",
		       pid, comm, d->fd, tcp_state, t ? t->local : "-", t ? t->peer : "-",
		       diag_mode(state), d->reason ? "" : "-", d->reason ? usmc_reason_str(d->reason) : "",
		       tx, rx);
		if (d->reason) {
			/* The reason code in SMC's notation beside its text. */
			printf("%*s0x%08x%s\n", 118, "", d->reason, d->by_peer ? " (peer)" : "");
		}
	}
	printed++;
}

/*
 * The table is read, not mapped: its owner (any user, when root runs us)
 * may resize it, and a mapping would fault where it no longer reaches.
 * pread just comes back short.
 */
static void scan_table(int pid, int tfd)
{
	struct usmc_diag_table hdr;
	struct usmc_diag_sock *socks;
	uint32_t high;
	ssize_t n;
	char comm[32];

	if (pread(tfd, &hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr) || hdr.magic != USMC_DIAG_MAGIC ||
	    hdr.version != USMC_DIAG_VERSION || hdr.pid != pid)
		return;
	high = atomic_load(&hdr.high);
	if (high > USMC_DIAG_SLOTS)
		high = USMC_DIAG_SLOTS;
	socks = calloc(high ? high : 1, sizeof(*socks));
	if (!socks)
		return;
	n = pread(tfd, socks, high * sizeof(*socks), (off_t)sizeof(hdr));
	high = n > 0 ? (uint32_t)((size_t)n / sizeof(*socks)) : 0;
	stat_read_comm(pid, comm, sizeof(comm));
	for (uint32_t i = 0; i < high; i++) {
		uint32_t s = atomic_load(&socks[i].state);

		if (s != DIAG_FREE && s != DIAG_OPEN)
			print_socket(pid, comm, &socks[i]);
	}
	free(socks);
}

/* A descriptor of a usmc process's diag table: read the table. */
static bool scan_if_table(int fd, const char *link, const char *path, void *arg)
{
	int pid = *(int *)arg, tfd;

	(void)fd;
	if (strncmp(link, "/memfd:" USMC_DIAG_NAME, strlen("/memfd:" USMC_DIAG_NAME)))
		return false;
	tfd = open(path, O_RDONLY | O_CLOEXEC);
	if (tfd >= 0) {
		scan_table(pid, tfd);
		close(tfd);
	}
	return false;
}

static void scan_process(int pid)
{
	proc_for_each_fd(pid, scan_if_table, &pid);
}

static void list_sockets(void)
{
	struct dirent *de;
	DIR *proc = opendir("/proc");

	load_proc_tcp("/proc/net/tcp", AF_INET);
	load_proc_tcp("/proc/net/tcp6", AF_INET6);
	if (json)
		printf("{\"sockets\": [");
	else
		printf("%-7s %-15s %4s %-10s %-24s %-24s %-6s %-41s %12s %12s\n", "PID", "COMMAND", "FD",
		       "STATE", "LOCAL", "PEER", "MODE", "FALLBACK REASON", "SHM SENT", "SHM RECV");
	while (proc && (de = readdir(proc))) {
		int pid = atoi(de->d_name);

		if (pid > 0 && isdigit((unsigned char)de->d_name[0]) && (!only_pid || pid == only_pid))
			scan_process(pid);
	}
	if (proc)
		closedir(proc);
	if (json)
		printf("\n]}\n");
}

static const char *stat_names[USMC_STAT_COUNT] = {
	[USMC_STAT_SMC_CONNS] = "smcd_connections",
	[USMC_STAT_FALLBACKS] = "fallbacks",
	[USMC_STAT_BYTES_SENT] = "bytes_sent",
	[USMC_STAT_BYTES_RECEIVED] = "bytes_received",
	[USMC_STAT_BELLS] = "doorbells",
	[USMC_STAT_LGR_CREATED] = "link_groups_created",
	[USMC_STAT_SEGMENTS] = "segments_created",
	[USMC_STAT_CLC_SENT] = "clc_messages_sent",
	[USMC_STAT_CLC_RECEIVED] = "clc_messages_received",
	[USMC_STAT_ABORTS] = "aborts",
};

static int show_stats(void)
{
	struct usmc_stats_file *st = malloc(sizeof(*st));
	char path[256];
	ssize_t n = -1;
	int fd;

	usmc_stats_path(path, sizeof(path), (unsigned)getuid());
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || !st) {
		fprintf(stderr, "usmc-stat: no counters yet (%s: %s)\n", path, strerror(errno));
		return 1;
	}
	/* Read, not mapped, for the reason scan_table gives. */
	n = pread(fd, st, sizeof(*st), 0);
	close(fd);
	if (n != (ssize_t)sizeof(*st) || st->magic != USMC_STATS_MAGIC ||
	    st->version != USMC_STATS_VERSION) {
		fprintf(stderr, "usmc-stat: %s is not a usmc counters file\n", path);
		return 1;
	}
	printf(json ? "{\"counters\": {" : "usmc counters (uid %u)\n", (unsigned)getuid());
	for (int i = 0; i < USMC_STAT_COUNT; i++)
		printf(json ? "%s\"%s\": %" PRIu64 : "%s  %-24s %" PRIu64 "\n",
		       json && i ? ", " : "", stat_names[i], usmc_stats_total(st, i));
	printf(json ? "}, \"fallbacks_by_reason\": {" : "fallbacks by reason\n");
	for (int i = 0, n = 0; i < USMC_STATS_REASONS; i++) {
		uint32_t r = atomic_load(&st->fallback[i].reason);

		if (!r)
			continue;
		if (json)
			printf("%s\"0x%08x\": %" PRIu64, n++ ? ", " : "", r,
			       atomic_load(&st->fallback[i].count));
		else
			printf("  0x%08x %-32s %" PRIu64 "\n", r, usmc_reason_str(r),
			       atomic_load(&st->fallback[i].count));
	}
	if (json)
		printf("}}\n");
	free(st);
	return 0;
}

static void usage(FILE *out)
{
	fprintf(out, "usage: usmc-stat [--kernel] [-s] [--json] [-p PID]\n"
		     "  (none)     list live usmc sockets\n"
		     "  -s         counters of this user's usmc processes\n"
		     "  --kernel   the kernel's SMC sockets instead (-s: its counters)\n"
		     "  -p PID     only this process\n"
		     "  --json     machine-readable output\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "stats", no_argument, NULL, 's' },
		{ "pid", required_argument, NULL, 'p' },
		{ "kernel", no_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	bool stats = false, kernel = false;
	int c;

	while ((c = getopt_long(argc, argv, "sjp:h", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			stats = true;
			break;
		case 'j':
			json = true;
			break;
		case 'p':
			only_pid = atoi(optarg);
			break;
		case 'k':
			kernel = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (kernel)
		return stats ? kernel_stats(json) : kernel_list(json, only_pid);
	if (stats)
		return show_stats();
	list_sockets();
	return 0;
}
