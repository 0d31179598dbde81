// SPDX-License-Identifier: MIT
/*
 * usmc-stat --kernel: Linux's own SMC (net/smc) beside usmc's.
 *
 *   kernel_list()      the kernel's SMC sockets through smc_diag (sock_diag
 *                      for AF_SMC): process, addresses, mode, fallback codes
 *
 * Its counters and the user EID are stat_kernel_genl.c's, SMC's codes in
 * words stat_kernel_codes.c's.  The netlink exchanges themselves are
 * smc_netlink.c's.  Every field of a reply is read only after the length
 * actually received has been checked: there for messages and generic
 * netlink attributes, here with RTA_OK for smc_diag's attributes and
 * rta_copy() for each structure in one.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/smc.h>
#include <linux/smc_diag.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "json_out.h"
#include "smc_netlink.h"
#include "stat_inet.h"
#include "stat_kernel.h"
#include "stat_kernel_codes.h"
#include "usmc_proc.h"

#ifndef AF_SMC
#define AF_SMC 43
#endif

#define SMC_LISTEN_STATE 10 /* enum smc_state in net/smc/smc.h */

/* ---- sockets ---------------------------------------------------------- */

struct tcp_sock {
	uint8_t family, state;
	struct inet_diag_sockid id;
};

struct ksock {
	struct smc_diag_msg m; /* as smc_diag sent it */
	struct smc_diag_fallback fb;
	struct smc_diag_lgrinfo lgr;
	struct smcd_diag_dmbinfo dmb;
	struct smc_diag_conninfo conn;
	bool has_lgr, has_dmb, has_conn, addr_known;
	int family; /* AF_INET or AF_INET6 */
	int pid, fd;
	char comm[32];
};

struct vec {
	void *items;
	size_t count, cap, size;
};

static void *vec_add(struct vec *v)
{
	if (v->count == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 64;
		void *p = realloc(v->items, cap * v->size);

		if (!p)
			return NULL;
		v->items = p;
		v->cap = cap;
	}
	memset((char *)v->items + v->count * v->size, 0, v->size);
	return (char *)v->items + v->count++ * v->size;
}

static int smc_diag_cb(struct nlmsghdr *h, void *arg)
{
	const size_t head = NLMSG_SPACE(sizeof(struct smc_diag_msg));
	int len = (int)h->nlmsg_len - (int)head;
	struct ksock *s;

	if (h->nlmsg_len < NLMSG_LENGTH(sizeof(s->m)))
		return 0;
	s = vec_add(arg);
	if (!s)
		return -ENOMEM;
	memcpy(&s->m, NLMSG_DATA(h), sizeof(s->m));
	/* RTA_OK first checks len, so a message without attributes ends here. */
	for (struct rtattr *a = (struct rtattr *)((char *)h + head); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		if (a->rta_type == SMC_DIAG_FALLBACK)
			rta_copy(&s->fb, sizeof(s->fb), a);
		else if (a->rta_type == SMC_DIAG_LGRINFO)
			s->has_lgr = rta_copy(&s->lgr, sizeof(s->lgr), a);
		else if (a->rta_type == SMC_DIAG_DMBINFO)
			s->has_dmb = rta_copy(&s->dmb, sizeof(s->dmb), a);
		else if (a->rta_type == SMC_DIAG_CONNINFO)
			s->has_conn = rta_copy(&s->conn, sizeof(s->conn), a);
	}
	return 0;
}

static int smc_dump(int fd, struct vec *socks)
{
	struct {
		struct nlmsghdr nh;
		struct smc_diag_req r;
	} req = {
		.nh = { .nlmsg_len = sizeof(req), .nlmsg_type = SOCK_DIAG_BY_FAMILY,
			.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP },
		.r = { .diag_family = AF_SMC,
		       .diag_ext = 1 << (SMC_DIAG_CONNINFO - 1) | 1 << (SMC_DIAG_LGRINFO - 1) |
				   1 << (SMC_DIAG_DMBINFO - 1) | 1 << (SMC_DIAG_FALLBACK - 1) },
	};

	return nl_talk(fd, &req.nh, smc_diag_cb, socks);
}

static int tcp_diag_cb(struct nlmsghdr *h, void *arg)
{
	struct inet_diag_msg m;
	struct tcp_sock *t;

	if (h->nlmsg_len < NLMSG_LENGTH(sizeof(m)))
		return 0;
	memcpy(&m, NLMSG_DATA(h), sizeof(m));
	t = vec_add(arg);
	if (!t)
		return -ENOMEM;
	t->family = m.idiag_family;
	t->state = m.idiag_state;
	t->id = m.id;
	return 0;
}

static int tcp_dump(int fd, int family, struct vec *tcp)
{
	/* Those could also make a match ambiguous. */
	uint32_t states = INET_DIAG_STATES_WITH_FD;
	struct {
		struct nlmsghdr nh;
		struct inet_diag_req_v2 r;
	} req = {
		.nh = { .nlmsg_len = sizeof(req), .nlmsg_type = SOCK_DIAG_BY_FAMILY,
			.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP },
		.r = { .sdiag_family = (uint8_t)family, .sdiag_protocol = IPPROTO_TCP,
		       .idiag_states = states },
	};

	return nl_talk(fd, &req.nh, tcp_diag_cb, tcp);
}

static bool zero_addrs(const struct inet_diag_sockid *id, int from)
{
	for (int i = from; i < 4; i++)
		if (id->idiag_src[i] || id->idiag_dst[i])
			return false;
	return true;
}

static bool same_addrs(const struct inet_diag_sockid *a, const struct inet_diag_sockid *b)
{
	return !memcmp(a->idiag_src, b->idiag_src, 16) && !memcmp(a->idiag_dst, b->idiag_dst, 16);
}

/*
 * Every SMC socket runs on a kernel TCP socket (its clcsock) with the same
 * ports.  smc_diag fills addresses only for AF_SMC sockets (6.12 leaves
 * them zero for socket(AF_INET[6], SOCK_STREAM, IPPROTO_SMC)) and never
 * says whether an AF_SMC socket is IPv4 or IPv6: the TCP socket knows both.
 * Two candidates with different addresses leave the addresses unknown.
 */
static void resolve_addrs(struct ksock *s, const struct vec *tcp)
{
	const struct tcp_sock *t = tcp->items, *found = NULL;
	struct inet_diag_sockid *id = &s->m.id;
	bool have = !zero_addrs(id, 0);

	for (size_t i = 0; i < tcp->count; i++, t++) {
		if (t->id.idiag_sport != id->idiag_sport || t->id.idiag_dport != id->idiag_dport ||
		    (t->state == TCP_LISTEN) != (s->m.diag_state == SMC_LISTEN_STATE) ||
		    (s->m.diag_family != AF_SMC && t->family != s->m.diag_family) ||
		    (have && !same_addrs(id, &t->id)))
			continue;
		if (found && !same_addrs(&found->id, &t->id)) {
			found = NULL;
			break;
		}
		found = t;
	}
	s->family = s->m.diag_family;
	s->addr_known = have;
	if (found) {
		s->family = found->family;
		memcpy(id->idiag_src, found->id.idiag_src, 16);
		memcpy(id->idiag_dst, found->id.idiag_dst, 16);
		s->addr_known = true;
	} else if (s->m.diag_family == AF_SMC) {
		/* Anything beyond the first word must be IPv6. */
		s->family = zero_addrs(id, 1) ? AF_INET : AF_INET6;
	}
}

static void format_addr(const struct ksock *s, const __be32 *addr, __be16 port, char *out, size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "*";

	if (s->addr_known)
		inet_ntop(s->family, addr, ip, sizeof(ip));
	snprintf(out, len, s->family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip, ntohs(port));
}

void stat_read_comm(int pid, char *comm, size_t len)
{
	char path[64];
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	snprintf(comm, len, "?");
	f = fopen(path, "re");
	if (!f)
		return;
	/* All of it: a name may hold a newline of its own; the kernel adds one. */
	n = fread(comm, 1, len - 1, f);
	if (n > 0 && comm[n - 1] == '\n')
		n--;
	if (n > 0)
		comm[n] = 0;
	fclose(f);
}

struct fd_scan {
	int pid;
	struct vec *socks;
};

/* Marks the sockets that this descriptor of the process refers to. */
static bool mark_owner(int fd, const char *link, const char *path, void *arg)
{
	struct fd_scan *scan = arg;
	struct ksock *ks = scan->socks->items;
	unsigned long inode;

	(void)path;
	if (sscanf(link, "socket:[%lu]", &inode) != 1)
		return false;
	for (size_t i = 0; i < scan->socks->count; i++) {
		if (ks[i].m.diag_inode != inode || ks[i].pid)
			continue;
		ks[i].pid = scan->pid;
		ks[i].fd = fd;
		stat_read_comm(scan->pid, ks[i].comm, sizeof(ks[i].comm));
	}
	return false;
}

static void scan_fds(int pid, struct vec *socks)
{
	struct fd_scan scan = { pid, socks };

	proc_for_each_fd(pid, mark_owner, &scan);
}

/* smc_diag gives the inode; the owner is whoever holds it open. */
static void find_owners(struct vec *socks)
{
	struct dirent *de;
	DIR *proc;

	if (!socks->count)
		return;
	proc = opendir("/proc");
	while (proc && (de = readdir(proc)))
		if (isdigit((unsigned char)de->d_name[0]))
			scan_fds(atoi(de->d_name), socks);
	if (proc)
		closedir(proc);
}

static const char *mode_name(const struct ksock *s)
{
	int state = s->m.diag_state;

	if (s->m.diag_mode == SMC_DIAG_MODE_FALLBACK_TCP)
		return "TCP";
	if (state == SMC_LISTEN_STATE || state == 2 || state == 7)
		return "-"; /* INIT, CLOSED: no connection, so no mode */
	return s->m.diag_mode == SMC_DIAG_MODE_SMCD ? "SMC-D" : "SMC-R";
}

/* What the mode column leaves out: the link, or why SMC was not used. */
static void detail(const struct ksock *s, char *out, size_t len)
{
	const struct smc_diag_linkinfo *l = &s->lgr.lnk[0];

	snprintf(out, len, "-");
	if (s->m.diag_mode == SMC_DIAG_MODE_FALLBACK_TCP || s->fb.reason)
		snprintf(out, len, "%s%s%s", decline_text(s->fb.reason),
			 s->fb.peer_diagnosis ? "; peer: " : "",
			 s->fb.peer_diagnosis ? decline_text(s->fb.peer_diagnosis) : "");
	else if (s->has_lgr)
		snprintf(out, len, "%.*s/%u %s", (int)sizeof(l->ibname), l->ibname, l->ibport,
			 s->lgr.role ? "server" : "client");
	else if (s->has_dmb)
		snprintf(out, len, "gid 0x%" PRIx64 " peer 0x%" PRIx64, (uint64_t)s->dmb.my_gid,
			 (uint64_t)s->dmb.peer_gid);
}

/* , "key": "value" with value (at most max bytes) escaped for JSON. */
static void json_field(const char *key, const void *value, size_t max)
{
	printf(", \"%s\": ", key);
	json_string(value, max);
}

static void print_sock_text(const struct ksock *s, const char *local, const char *peer)
{
	char pid[16] = "-", fd[16] = "-", reason[16] = "-", diag[16] = "-", more[160];

	if (s->pid) {
		snprintf(pid, sizeof(pid), "%d", s->pid);
		snprintf(fd, sizeof(fd), "%d", s->fd);
	}
	if (s->fb.reason)
		snprintf(reason, sizeof(reason), "0x%08x", s->fb.reason);
	if (s->fb.peer_diagnosis)
		snprintf(diag, sizeof(diag), "0x%08x", s->fb.peer_diagnosis);
	detail(s, more, sizeof(more));
	printf("%-7s %-15.15s %4s %-6s %-10s %-24s %-24s %-5s %-10s %-10s %s\n", pid,
	       s->pid ? s->comm : "-", fd, s->family == AF_INET6 ? "IPv6" : "IPv4",
	       smc_state_name(s->m.diag_state), local, peer, mode_name(s), reason, diag, more);
}

static void print_sock_json(const struct ksock *s, const char *local, const char *peer, bool first)
{
	const struct smc_diag_linkinfo *l = &s->lgr.lnk[0];

	printf("%s\n  {\"pid\": %d", first ? "" : ",", s->pid);
	json_field("command", s->pid ? s->comm : "", sizeof(s->comm));
	printf(", \"fd\": %d, \"inode\": %" PRIu64 ", \"uid\": %u, \"family\": \"%s\", \"af_smc\": %s, "
	       "\"state\": \"%s\", \"local\": \"%s\", \"peer\": \"%s\", \"mode\": \"%s\", "
	       "\"fallback_reason\": \"0x%08x\", \"fallback_reason_text\": \"%s\", "
	       "\"peer_diagnosis\": \"0x%08x\", \"peer_diagnosis_text\": \"%s\"",
	       s->pid ? s->fd : -1, (uint64_t)s->m.diag_inode, s->m.diag_uid,
	       s->family == AF_INET6 ? "IPv6" : "IPv4", s->m.diag_family == AF_SMC ? "true" : "false",
	       smc_state_name(s->m.diag_state), local, peer, mode_name(s), s->fb.reason,
	       decline_text(s->fb.reason), s->fb.peer_diagnosis, decline_text(s->fb.peer_diagnosis));
	if (s->has_lgr) {
		printf(", \"link\": {\"port\": %u, \"role\": \"%s\"", l->ibport, s->lgr.role ? "server" : "client");
		json_field("device", l->ibname, sizeof(l->ibname));
		json_field("gid", l->gid, sizeof(l->gid));
		json_field("peer_gid", l->peer_gid, sizeof(l->peer_gid));
		printf("}");
	}
	if (s->has_dmb)
		printf(", \"dmb\": {\"gid\": \"0x%" PRIx64 "\", \"peer_gid\": \"0x%" PRIx64 "\"}",
		       (uint64_t)s->dmb.my_gid, (uint64_t)s->dmb.peer_gid);
	if (s->has_conn)
		printf(", \"rmbe_size\": %u, \"peer_rmbe_size\": %u", s->conn.rmbe_size,
		       s->conn.peer_rmbe_size);
	printf("}");
}

static void print_socks(const struct vec *socks, bool json, int only_pid)
{
	const struct ksock *ks = socks->items;
	int shown = 0;

	if (json)
		printf("{\"kernel_sockets\": [");
	else
		printf("%-7s %-15s %4s %-6s %-10s %-24s %-24s %-5s %-10s %-10s %s\n", "PID", "COMMAND",
		       "FD", "FAMILY", "STATE", "LOCAL", "PEER", "MODE", "FALLBACK", "PEER-DIAG",
		       "DETAIL");
	for (size_t i = 0; i < socks->count; i++) {
		char local[64], peer[64];

		if (only_pid && ks[i].pid != only_pid)
			continue;
		format_addr(&ks[i], ks[i].m.id.idiag_src, ks[i].m.id.idiag_sport, local, sizeof(local));
		format_addr(&ks[i], ks[i].m.id.idiag_dst, ks[i].m.id.idiag_dport, peer, sizeof(peer));
		if (json)
			print_sock_json(&ks[i], local, peer, !shown);
		else
			print_sock_text(&ks[i], local, peer);
		shown++;
	}
	if (json)
		printf("\n]}\n");
}

int kernel_list(bool json, int only_pid)
{
	struct vec socks = { .size = sizeof(struct ksock) };
	struct vec tcp = { .size = sizeof(struct tcp_sock) };
	char why[256];
	int fd = nl_open(NETLINK_SOCK_DIAG), rc;

	if (fd < 0) {
		fprintf(stderr, "usmc-stat: netlink: %s\n", strerror(errno));
		return 1;
	}
	/* sock_diag loads smc_diag (and smc) on demand: ENOENT means neither exists. */
	rc = smc_dump(fd, &socks);
	if (rc == -ENOENT && smc_missing(why, sizeof(why))) {
		close(fd);
		return not_available(json, why);
	}
	if (rc < 0) {
		fprintf(stderr, "usmc-stat: kernel SMC: smc_diag: %s%s\n", strerror(-rc),
			rc == -ENOENT ? " (the smc module is there, smc_diag is not: modprobe smc_diag)" : "");
		close(fd);
		free(socks.items);
		return 1;
	}
	/* Without the TCP view only the addresses go missing. */
	if (socks.count && tcp_dump(fd, AF_INET, &tcp) == 0)
		tcp_dump(fd, AF_INET6, &tcp);
	close(fd);
	for (size_t i = 0; i < socks.count; i++)
		resolve_addrs((struct ksock *)socks.items + i, &tcp);
	find_owners(&socks);
	print_socks(&socks, json, only_pid);
	free(socks.items);
	free(tcp.items);
	return 0;
}
