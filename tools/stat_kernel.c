// SPDX-License-Identifier: MIT
/*
 * usmc-stat --kernel: Linux's own SMC (net/smc) beside usmc's.
 *
 *   kernel_list()      the kernel's SMC sockets through smc_diag (sock_diag
 *                      for AF_SMC): process, addresses, mode, fallback codes
 *   kernel_stats()     its counters through the "SMC_GEN_NETLINK" generic
 *                      netlink family, like smcr stats and smcd stats
 *   kernel_ueid_add()  a user EID, without which SMC-Rv2 is never proposed
 *
 * The netlink exchanges themselves are smc_netlink.c's.  Every field of a
 * reply is read only after the length actually received has been checked:
 * there for messages and generic netlink attributes, here with RTA_OK for
 * smc_diag's attributes and rta_copy() for each structure in one.
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
#include "usmc_proc.h"

#ifndef AF_SMC
#define AF_SMC 43
#endif
#ifndef IPPROTO_SMC
#define IPPROTO_SMC 256
#endif

#define SMC_LISTEN_STATE 10 /* enum smc_state in net/smc/smc.h */

/* ---- SMC's codes ------------------------------------------------------ */

static const struct {
	uint32_t code;
	const char *text;
} decline_codes[] = {
	/* SMC_CLC_DECL_* in net/smc/smc_clc.h */
	{ 0x01010000, "insufficient memory resources" },
	{ 0x02010000, "timeout waiting for confirm link" },
	{ 0x02020000, "timeout waiting for add link" },
	{ 0x03000000, "configuration error" },
	{ 0x03010000, "peer did not indicate SMC" },
	{ 0x03020000, "IPsec usage" },
	{ 0x03030000, "no SMC device found" },
	{ 0x03030001, "no SMC-D device found" },
	{ 0x03030002, "no SMC-R device found" },
	{ 0x03030003, "hardware has no ISMv2 support" },
	{ 0x03030004, "peer sent no CLC v2 extension" },
	{ 0x03030005, "peer sent no SMC-Dv2 extension" },
	{ 0x03030006, "peer sent no SEID" },
	{ 0x03030007, "no SMC-Dv2 device found" },
	{ 0x03030008, "peer sent no UEID" },
	{ 0x03030009, "release version negotiation failed" },
	{ 0x0303000a, "max connections negotiation failed" },
	{ 0x0303000b, "max links negotiation failed" },
	{ 0x03040000, "SMC modes do not match" },
	{ 0x03050000, "peer has eyecatcher in RMBE" },
	{ 0x03060000, "fastopen sockopt not supported" },
	{ 0x03070000, "IP prefix / subnet mismatch" },
	{ 0x03080000, "cannot get VLAN id of IP device" },
	{ 0x03090000, "cannot register VLAN id on ISM device" },
	{ 0x030a0000, "no active SMC-R link in link group" },
	{ 0x030b0000, "SMC-R link from server not found" },
	{ 0x030c0000, "SMC version mismatch" },
	{ 0x030d0000, "SMC-D DMB limit exceeded" },
	{ 0x030e0000, "SMC-Rv2: no route to peer" },
	{ 0x030f0000, "SMC-Rv2: indirect route mismatch" },
	{ 0x04000000, "synchronization error" },
	{ 0x05000000, "peer declined during handshake" },
	{ 0x09990000, "internal error" },
	{ 0x09990001, "rtoken handling failed" },
	{ 0x09990002, "RDMA link not ready" },
	{ 0x09990003, "RDMA buffer registration failed" },
};

static const char *decline_text(uint32_t code)
{
	if (!code)
		return "-";
	for (size_t i = 0; i < sizeof(decline_codes) / sizeof(decline_codes[0]); i++)
		if (decline_codes[i].code == code)
			return decline_codes[i].text;
	return "unknown reason";
}

static const char *smc_state_name(unsigned state)
{
	/* enum smc_state in net/smc/smc.h */
	static const char *const names[] = {
		[1] = "ACTIVE", [2] = "INIT", [7] = "CLOSED", [10] = "LISTEN",
		[20] = "PEERCLW1", [21] = "PEERCLW2", [22] = "APPCLW1", [23] = "APPCLW2",
		[24] = "APPFINCLW", [25] = "PEERFINCLW", [26] = "PEERABORTW", [27] = "PROCESSABORT",
	};

	return state < sizeof(names) / sizeof(names[0]) && names[state] ? names[state] : "?";
}

/* Why this kernel cannot do SMC, in words, or NULL if it can. */
static const char *smc_missing(char *why, size_t len)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_SMC), err;

	if (fd >= 0) {
		close(fd);
		return NULL;
	}
	err = errno;
	/* Before 6.11 SMC exists as AF_SMC only. */
	fd = socket(AF_SMC, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0) {
		close(fd);
		return NULL;
	}
	snprintf(why, len, "%s (socket(AF_INET, SOCK_STREAM, %d): %s); needs Linux 6.11+ with CONFIG_SMC",
		 err == EPROTONOSUPPORT || err == EAFNOSUPPORT ? "the kernel has no smc module"
							     : "SMC sockets are refused here",
		 IPPROTO_SMC, strerror(err));
	return why;
}

static int not_available(bool json, const char *why)
{
	if (json) {
		printf("{\"kernel_smc\": {\"available\": false, \"reason\": ");
		json_string(why, 4096);
		printf("}}\n");
	} else {
		printf("kernel SMC: not available: %s\n", why);
	}
	return 0;
}

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

/* ---- counters --------------------------------------------------------- */

enum { SMCD, SMCR, TECHS };
enum { CLIENT, SERVER, SIDES };

struct kstats {
	uint64_t ok[TECHS][SIDES][2]; /* [.][.][0] SMC v1, [1] SMC v2 */
	uint64_t rx_bytes[TECHS], tx_bytes[TECHS];
	uint64_t hs_errors[SIDES], fallbacks[SIDES];
	struct {
		int side;
		uint32_t code;
		uint64_t count;
	} reason[128];
	int reasons;
};

static void tech_stats(struct kstats *st, int tech, const struct nlattr *nest)
{
	const struct nlattr *tb[SMC_NLA_STATS_T_MAX + 1];

	if (!nla_nested(tb, SMC_NLA_STATS_T_MAX, nest))
		return;
	st->ok[tech][CLIENT][0] = nla_uint(tb[SMC_NLA_STATS_T_CLNT_V1_SUCC]);
	st->ok[tech][CLIENT][1] = nla_uint(tb[SMC_NLA_STATS_T_CLNT_V2_SUCC]);
	st->ok[tech][SERVER][0] = nla_uint(tb[SMC_NLA_STATS_T_SRV_V1_SUCC]);
	st->ok[tech][SERVER][1] = nla_uint(tb[SMC_NLA_STATS_T_SRV_V2_SUCC]);
	st->rx_bytes[tech] = nla_uint(tb[SMC_NLA_STATS_T_RX_BYTES]);
	st->tx_bytes[tech] = nla_uint(tb[SMC_NLA_STATS_T_TX_BYTES]);
}

static int stats_cb(struct nlmsghdr *h, void *arg)
{
	const struct nlattr *top[SMC_GEN_MAX + 1], *tb[SMC_NLA_STATS_MAX + 1];
	struct kstats *st = arg;

	if (!genl_attrs(top, SMC_GEN_MAX, h) || !nla_nested(tb, SMC_NLA_STATS_MAX, top[SMC_GEN_STATS]))
		return 0;
	tech_stats(st, SMCD, tb[SMC_NLA_STATS_SMCD_TECH]);
	tech_stats(st, SMCR, tb[SMC_NLA_STATS_SMCR_TECH]);
	st->hs_errors[CLIENT] = nla_uint(tb[SMC_NLA_STATS_CLNT_HS_ERR_CNT]);
	st->hs_errors[SERVER] = nla_uint(tb[SMC_NLA_STATS_SRV_HS_ERR_CNT]);
	return 0;
}

/* One message per reason code; the totals come with the first only. */
static int fallback_cb(struct nlmsghdr *h, void *arg)
{
	const struct nlattr *top[SMC_GEN_MAX + 1], *tb[SMC_NLA_FBACK_STATS_MAX + 1];
	struct kstats *st = arg;

	if (!genl_attrs(top, SMC_GEN_MAX, h) ||
	    !nla_nested(tb, SMC_NLA_FBACK_STATS_MAX, top[SMC_GEN_FBACK_STATS]))
		return 0;
	if (tb[SMC_NLA_FBACK_STATS_SRV_CNT] || tb[SMC_NLA_FBACK_STATS_CLNT_CNT]) {
		st->fallbacks[SERVER] = nla_uint(tb[SMC_NLA_FBACK_STATS_SRV_CNT]);
		st->fallbacks[CLIENT] = nla_uint(tb[SMC_NLA_FBACK_STATS_CLNT_CNT]);
	}
	if (tb[SMC_NLA_FBACK_STATS_RSN_CODE] && st->reasons < (int)(sizeof(st->reason) / sizeof(st->reason[0]))) {
		st->reason[st->reasons].side = nla_uint(tb[SMC_NLA_FBACK_STATS_TYPE]) ? SERVER : CLIENT;
		st->reason[st->reasons].code = (uint32_t)nla_uint(tb[SMC_NLA_FBACK_STATS_RSN_CODE]);
		st->reason[st->reasons].count = nla_uint(tb[SMC_NLA_FBACK_STATS_RSN_CNT]);
		st->reasons++;
	}
	return 0;
}

static const char *tech_name[TECHS] = { "SMC-D", "SMC-R" };
static const char *side_name[SIDES] = { "client", "server" };

static void print_stats_text(const struct kstats *st)
{
	printf("kernel SMC counters (this network namespace)\n");
	printf("%-24s %12s %12s\n", "", "client", "server");
	for (int t = SMCR; t >= SMCD; t--) {
		for (int v = 0; v < 2; v++) {
			char label[32];

			snprintf(label, sizeof(label), "%s v%d handshakes", tech_name[t], v + 1);
			printf("%-24s %12" PRIu64 " %12" PRIu64 "\n", label, st->ok[t][CLIENT][v],
			       st->ok[t][SERVER][v]);
		}
	}
	printf("%-24s %12" PRIu64 " %12" PRIu64 "\n", "handshake errors", st->hs_errors[CLIENT],
	       st->hs_errors[SERVER]);
	printf("%-24s %12" PRIu64 " %12" PRIu64 "\n", "TCP fallbacks", st->fallbacks[CLIENT],
	       st->fallbacks[SERVER]);
	for (int t = SMCR; t >= SMCD; t--)
		printf("%s bytes sent %" PRIu64 ", received %" PRIu64 "\n", tech_name[t], st->tx_bytes[t],
		       st->rx_bytes[t]);
	printf("fallback reasons\n");
	for (int i = 0; i < st->reasons; i++)
		printf("  %-6s 0x%08x %-40s %8" PRIu64 "\n", side_name[st->reason[i].side],
		       st->reason[i].code, decline_text(st->reason[i].code), st->reason[i].count);
}

static void print_stats_json(const struct kstats *st)
{
	printf("{\"kernel_stats\": {");
	for (int t = SMCD; t < TECHS; t++)
		printf("\"%s\": {\"client_v1\": %" PRIu64 ", \"client_v2\": %" PRIu64
		       ", \"server_v1\": %" PRIu64 ", \"server_v2\": %" PRIu64
		       ", \"tx_bytes\": %" PRIu64 ", \"rx_bytes\": %" PRIu64 "}, ",
		       t == SMCD ? "smcd" : "smcr", st->ok[t][CLIENT][0], st->ok[t][CLIENT][1],
		       st->ok[t][SERVER][0], st->ok[t][SERVER][1], st->tx_bytes[t], st->rx_bytes[t]);
	printf("\"handshake_errors\": {\"client\": %" PRIu64 ", \"server\": %" PRIu64 "}, "
	       "\"fallbacks\": {\"client\": %" PRIu64 ", \"server\": %" PRIu64 "}, "
	       "\"fallback_reasons\": [",
	       st->hs_errors[CLIENT], st->hs_errors[SERVER], st->fallbacks[CLIENT], st->fallbacks[SERVER]);
	for (int i = 0; i < st->reasons; i++)
		printf("%s{\"side\": \"%s\", \"code\": \"0x%08x\", \"text\": \"%s\", \"count\": %" PRIu64 "}",
		       i ? ", " : "", side_name[st->reason[i].side], st->reason[i].code,
		       decline_text(st->reason[i].code), st->reason[i].count);
	printf("]}}\n");
}

int kernel_stats(bool json)
{
	struct kstats *st = calloc(1, sizeof(*st));
	struct genl_req r;
	uint16_t family;
	char why[256];
	int fd, rc;

	if (!st)
		return 1;
	fd = genl_open(SMC_GENL_FAMILY_NAME, &family);
	if (fd == -ENOENT && smc_missing(why, sizeof(why))) {
		free(st);
		return not_available(json, why);
	}
	/* Creating an SMC socket above may have just loaded smc: ask again. */
	if (fd == -ENOENT)
		fd = genl_open(SMC_GENL_FAMILY_NAME, &family);
	rc = fd < 0 ? fd : 0;
	if (rc == 0) {
		genl_init(&r, family, SMC_NETLINK_GET_STATS, NLM_F_DUMP);
		rc = nl_talk(fd, &r.nh, stats_cb, st);
	}
	if (rc == 0) {
		genl_init(&r, family, SMC_NETLINK_GET_FBACK_STATS, NLM_F_DUMP);
		rc = nl_talk(fd, &r.nh, fallback_cb, st);
	}
	if (fd >= 0)
		close(fd);
	if (rc < 0)
		fprintf(stderr, "usmc-stat: kernel SMC counters: %s\n", strerror(-rc));
	else if (json)
		print_stats_json(st);
	else
		print_stats_text(st);
	free(st);
	return rc < 0;
}

/* ---- configuration ---------------------------------------------------- */

int kernel_ueid_add(const char *eid)
{
	/* Exactly SMC_MAX_EID_LEN characters, blank padded, then NUL. */
	char padded[SMC_MAX_EID_LEN + 1];
	size_t n = strlen(eid);
	struct genl_req r;
	uint16_t family;
	int fd, rc;

	if (!n || n > SMC_MAX_EID_LEN)
		return -EINVAL;
	memset(padded, ' ', SMC_MAX_EID_LEN);
	memcpy(padded, eid, n);
	padded[SMC_MAX_EID_LEN] = 0;
	fd = genl_open(SMC_GENL_FAMILY_NAME, &family);
	if (fd < 0)
		return fd;
	genl_init(&r, family, SMC_NETLINK_ADD_UEID, NLM_F_ACK);
	genl_put(&r, SMC_NLA_EID_TABLE_ENTRY, padded, sizeof(padded));
	rc = nl_talk(fd, &r.nh, NULL, NULL);
	close(fd);
	return rc;
}
