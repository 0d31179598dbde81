// SPDX-License-Identifier: MIT
/*
 * usmc-stat: the smcss of usmc, in the manner of ss.
 *
 *   usmc-stat [-l|-a] [FILTERS] [-d] [-W] [--json] [-i SECONDS [-c COUNT]]
 *   usmc-stat -s [--reset] [--json]
 *   usmc-stat --kernel [-s] [--json] [-p PID]   the kernel's SMC sockets (stat_kernel.c)
 *
 * Sockets come from each process's diag table (a memfd found through
 * /proc/PID/fd, read with pread: its owner may resize it); addresses and
 * TCP states from the kernel by socket inode, through sock_diag in each
 * process's own network namespace (stat_inet.c).  One line per socket.
 */
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
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "usmc.h"
#include "usmc_cdc.h"
#include "usmc_cli.h"
#include "usmc_diag.h"
#include "usmc_proc.h"

#include "json_out.h"
#include "stat_counters.h"
#include "stat_inet.h"
#include "stat_kernel.h"
#include "stat_kernel_genl.h"


#define PROG "usmc-stat"

enum which { SHOW_CONNECTED, SHOW_LISTENING, SHOW_ALL };

static struct {
	enum which which;
	int pid;
	long uid;      /* -1: any */
	int port;      /* 0: any; local or peer */
	int tcp_state; /* 0: any */
	int mode;      /* DIAG_*, 0: any */
	bool json, details, wide;
} opt = { .uid = -1 };

static unsigned long own_netns;
static int printed;

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

static const char *const mode_names[] = {
	[DIAG_LISTEN] = "LISTEN", [DIAG_HANDSHAKE] = "CLC", [DIAG_SMCD] = "SMCD",
	[DIAG_FALLBACK] = "TCP", [DIAG_OPEN] = "OPEN",
};

static const char *diag_mode(uint32_t state)
{
	return state < sizeof(mode_names) / sizeof(mode_names[0]) && mode_names[state]
		       ? mode_names[state]
		       : "-";
}

/* SMC's cursor notation: wrap count and offset in the lap (usmc_cdc.h). */
static void cursor(char *buf, size_t len, uint64_t wire, uint32_t ring)
{
	union cdc_cursor c = { .acurs = wire };

	if (!ring)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%u:%u", (unsigned)c.wrap, (unsigned)c.count);
}

static bool wanted(uint32_t state, const struct inet_entry *t)
{
	if (state == DIAG_FREE || (state == DIAG_OPEN && opt.which != SHOW_ALL))
		return false;
	if (opt.which == SHOW_LISTENING && state != DIAG_LISTEN)
		return false;
	if (opt.mode && (int)state != opt.mode)
		return false;
	if (opt.tcp_state && (!t || t->state != opt.tcp_state))
		return false;
	if (opt.port && (!t || (t->lport != opt.port && t->pport != opt.port)))
		return false;
	return true;
}

static void print_json(int pid, unsigned uid, const char *comm, unsigned long netns,
		       const struct usmc_diag_sock *d, const struct inet_entry *t)
{
	uint64_t tx = atomic_load(&d->bytes_sent), rx = atomic_load(&d->bytes_received);

	printf("%s\n  {\"pid\": %d, \"uid\": %u, \"command\": ", printed ? "," : "", pid, uid);
	json_string(comm, 64);
	printf(", \"fd\": %d, \"netns\": %lu, \"tcp_state\": \"%s\", \"local\": ", d->fd, netns,
	       t ? inet_state_name(t->state) : "-");
	json_string(t ? t->local : NULL, 64);
	printf(", \"peer\": ");
	json_string(t ? t->peer : NULL, 64);
	printf(", \"mode\": \"%s\", \"fallback_reason\": \"0x%08x\", \"fallback_reason_text\": ",
	       diag_mode(atomic_load(&d->state)), d->reason);
	json_string(d->reason ? usmc_reason_str(d->reason) : NULL, 256);
	printf(", \"reason_by_peer\": %s, \"lgr\": %u, \"peer_pid\": %d, \"rmb_size\": %u, "
	       "\"peer_rmb_size\": %u, \"bytes_sent\": %" PRIu64 ", \"bytes_received\": %" PRIu64 "}",
	       d->by_peer ? "true" : "false", d->lgr_id, d->peer_pid, d->rmb_size, d->peer_rmb_size,
	       tx, rx);
}

static void print_line(int pid, const char *comm, unsigned long netns,
		       const struct usmc_diag_sock *d, const struct inet_entry *t)
{
	uint64_t tx = atomic_load(&d->bytes_sent), rx = atomic_load(&d->bytes_received);
	int addr_w = opt.wide ? 46 : 24;
	char reason[64] = "-", ns[24] = "";

	if (d->reason)
		snprintf(reason, sizeof(reason), "0x%08x%s %s", d->reason, d->by_peer ? "(peer)" : "",
			 usmc_reason_str(d->reason));
	if (netns != own_netns)
		snprintf(ns, sizeof(ns), " netns:%lu", netns);
	printf("%-7d %-*.*s %4d %-10s %-*s %-*s %-6s ", pid, opt.wide ? 16 : 15, opt.wide ? 16 : 15,
	       comm, d->fd, t ? inet_state_name(t->state) : "-", addr_w, t ? t->local : "-", addr_w,
	       t ? t->peer : "-", diag_mode(atomic_load(&d->state)));
	if (opt.details) {
		char txc[32], rxc[32];

		cursor(txc, sizeof(txc), atomic_load(&d->tx_cursor), d->peer_rmb_size);
		cursor(rxc, sizeof(rxc), atomic_load(&d->rx_cursor), d->rmb_size);
		printf("%5u %7d %8u %8u %-14s %-14s ", d->lgr_id, d->peer_pid, d->rmb_size,
		       d->peer_rmb_size, txc, rxc);
	}
	printf("%12" PRIu64 " %12" PRIu64 " %s%s\n", tx, rx, reason, ns);
}

static void print_header(void)
{
	int addr_w = opt.wide ? 46 : 24;

	if (opt.json) {
		printf("{\"sockets\": [");
		return;
	}
	printf("%-7s %-*s %4s %-10s %-*s %-*s %-6s ", "PID", opt.wide ? 16 : 15, "COMMAND", "FD",
	       "STATE", addr_w, "LOCAL", addr_w, "PEER", "MODE");
	if (opt.details)
		printf("%5s %7s %8s %8s %-14s %-14s ", "LGR", "PEERPID", "RMB", "PEERRMB",
		       "TX CURSOR", "RX CURSOR");
	printf("%12s %12s %s\n", "SHM SENT", "SHM RECV", "FALLBACK REASON");
}

/* Reads a process's table with pread: its owner (any user, when root runs us) may resize it. */
static void scan_table(int pid, int tfd)
{
	struct usmc_diag_table hdr;
	struct usmc_diag_sock *socks;
	unsigned long netns = 0;
	char comm[32], path[32];
	struct stat st;
	uint32_t high;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d", pid);
	if (pread(tfd, &hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr) || hdr.magic != USMC_DIAG_MAGIC ||
	    hdr.version != USMC_DIAG_VERSION || hdr.pid != pid || stat(path, &st) ||
	    (opt.uid >= 0 && st.st_uid != (uid_t)opt.uid))
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
		uint32_t state = atomic_load(&socks[i].state);
		const struct inet_entry *t;

		if (state == DIAG_FREE)
			continue;
		if (!netns)
			netns = inet_netns_of(pid);
		t = inet_find(netns, pid, fd_socket_inode(pid, socks[i].fd));
		if (!wanted(state, t))
			continue;
		if (opt.json)
			print_json(pid, st.st_uid, comm, netns, &socks[i], t);
		else
			print_line(pid, comm, netns, &socks[i], t);
		printed++;
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

static void list_sockets(void)
{
	struct dirent *de;
	DIR *proc = opendir("/proc");

	printed = 0;
	own_netns = inet_netns_of(getpid());
	print_header();
	while (proc && (de = readdir(proc))) {
		int pid = atoi(de->d_name);

		if (pid > 0 && isdigit((unsigned char)de->d_name[0]) && (!opt.pid || pid == opt.pid))
			proc_for_each_fd(pid, scan_if_table, &pid);
	}
	if (proc)
		closedir(proc);
	if (opt.json)
		printf("\n]}\n");
	inet_table_free();
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: usmc-stat [-l|-a] [FILTERS] [-d] [-W] [--json] [-i SECONDS [-c COUNT]]\n"
		"       usmc-stat -s [--reset] [--json]\n"
		"       usmc-stat --kernel [-s] [--json] [-p PID]\n"
		"\n"
		"Lists usmc sockets, one line each: process, TCP state and addresses (as the\n"
		"socket's own network namespace sees them), mode (SMCD, TCP for fallback,\n"
		"CLC in handshake, LISTEN), bytes through shared memory, fallback reason.\n"
		"\n"
		"  (none)              connected sockets and listeners\n"
		"  -l, --listening     listeners only\n"
		"  -a, --all           also sockets not yet connected\n"
		"  -p, --pid PID       only this process\n"
		"  -u, --uid UID       only processes of this user\n"
		"  -P, --port PORT     only sockets with this port at either end\n"
		"  -t, --state STATE   only this TCP state (ESTAB, LISTEN, CLOSE-WAIT, ...)\n"
		"  -m, --mode MODE     only this mode: smcd, tcp, clc, listen\n"
		"  -d, --details       link group, peer process, ring sizes, cursors (wrap:count)\n"
		"  -W, --wide          do not shorten commands and addresses\n"
		"  -i, --interval SEC  list again every SEC seconds; -c, --count N times\n"
		"  -s, --stats         counters of this user's usmc processes, since when\n"
		"      --reset         with -s: set them to zero, which starts a new since\n"
		"  -k, --kernel        the kernel's SMC sockets instead (-s: its counters)\n"
		"  -j, --json          machine-readable output\n"
		"  -h, --help          this text;  -V, --version  usmc's version\n"
		"Exit status: 0, 1 if there is nothing to read, 2 for a wrong command line.\n");
}

static int parse_state(const char *s)
{
	for (int i = 1; i < 12; i++)
		if (!strcasecmp(s, inet_state_name(i)))
			return i;
	return !strcasecmp(s, "established") ? 1 : -1;
}

static int parse_mode(const char *s)
{
	static const struct { const char *name; int mode; } modes[] = {
		{ "smcd", DIAG_SMCD }, { "smc", DIAG_SMCD }, { "tcp", DIAG_FALLBACK },
		{ "fallback", DIAG_FALLBACK }, { "clc", DIAG_HANDSHAKE }, { "listen", DIAG_LISTEN },
	};

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		if (!strcasecmp(s, modes[i].name))
			return modes[i].mode;
	return -1;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },     { "stats", no_argument, NULL, 's' },
		{ "pid", required_argument, NULL, 'p' }, { "uid", required_argument, NULL, 'u' },
		{ "port", required_argument, NULL, 'P' }, { "state", required_argument, NULL, 't' },
		{ "mode", required_argument, NULL, 'm' }, { "listening", no_argument, NULL, 'l' },
		{ "all", no_argument, NULL, 'a' },      { "details", no_argument, NULL, 'd' },
		{ "wide", no_argument, NULL, 'W' },     { "interval", required_argument, NULL, 'i' },
		{ "count", required_argument, NULL, 'c' }, { "reset", no_argument, NULL, 'R' },
		{ "kernel", no_argument, NULL, 'k' },   { "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },  { 0 },
	};
	bool stats = false, kernel = false, reset = false;
	double interval = 0;
	long count = 0, n;
	int c;

	opterr = 0; /* usmc_cli_bad_option says it, in one line */
	while ((c = getopt_long(argc, argv, ":sjp:u:P:t:m:ladWi:c:khV", longopts, NULL)) != -1) {
		switch (c) {
		case 's': stats = true; break;
		case 'j': opt.json = true; break;
		case 'l': opt.which = SHOW_LISTENING; break;
		case 'a': opt.which = SHOW_ALL; break;
		case 'd': opt.details = true; break;
		case 'W': opt.wide = true; break;
		case 'k': kernel = true; break;
		case 'R': reset = true; break;
		case 'p':
			if (!usmc_cli_long(PROG, "--pid", optarg, 1, 1 << 30, &n))
				return USMC_EXIT_USAGE;
			opt.pid = (int)n;
			break;
		case 'u':
			if (!usmc_cli_long(PROG, "--uid", optarg, 0, 0xfffffffeL, &opt.uid))
				return USMC_EXIT_USAGE;
			break;
		case 'P':
			if (!usmc_cli_long(PROG, "--port", optarg, 1, 65535, &n))
				return USMC_EXIT_USAGE;
			opt.port = (int)n;
			break;
		case 't':
			if ((opt.tcp_state = parse_state(optarg)) < 0)
				return usmc_cli_usage_error(PROG, "--state: '%s' is not a TCP state",
							    optarg);
			break;
		case 'm':
			if ((opt.mode = parse_mode(optarg)) < 0)
				return usmc_cli_usage_error(
					PROG, "--mode: '%s' is not smcd, tcp, clc or listen", optarg);
			break;
		case 'i':
			if (!usmc_cli_double(PROG, "--interval", optarg, 0, 86400, &interval))
				return USMC_EXIT_USAGE;
			break;
		case 'c':
			if (!usmc_cli_long(PROG, "--count", optarg, 1, 1L << 30, &count))
				return USMC_EXIT_USAGE;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			return usmc_cli_version(PROG);
		default:
			return usmc_cli_bad_option(PROG, argv, c);
		}
	}
	if (optind < argc || (reset && !stats) || (count && !interval))
		return usmc_cli_usage_error(PROG, "%s",
					    optind < argc ? "unexpected argument"
					    : reset	  ? "--reset goes with -s"
							  : "--count goes with -i");
	if (kernel)
		return stats ? kernel_stats(opt.json) : kernel_list(opt.json, opt.pid);
	if (stats)
		return reset ? counters_reset() : counters_show(opt.json);
	for (long round = 0;; round++) {
		struct timespec pause = { (time_t)interval,
					  (long)((interval - (double)(time_t)interval) * 1e9) };

		list_sockets();
		fflush(stdout);
		if (!interval || (count && round + 1 >= count))
			break;
		nanosleep(&pause, NULL);
		if (!opt.json)
			printf("\n");
	}
	return 0;
}
