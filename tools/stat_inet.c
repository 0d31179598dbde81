// SPDX-License-Identifier: MIT
/*
 * stat_inet.c - TCP sockets by inode, per network namespace, for usmc-stat.
 *
 * sock_diag answers for the namespace of the netlink socket that asks.
 * To see a container's sockets with their own addresses, root enters its
 * namespace for the dump and comes back; without that right, the
 * namespace's /proc/PID/net/tcp tells the same for a process we may read.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stat_inet.h"

struct ns_table {
	unsigned long netns;
	struct inet_entry *e;
	size_t n, cap;
	struct ns_table *next;
};

static struct ns_table *tables;

static const char *const state_names[] = {
	"?", "ESTAB", "SYN-SENT", "SYN-RECV", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT",
	"CLOSE", "CLOSE-WAIT", "LAST-ACK", "LISTEN", "CLOSING",
};

const char *inet_state_name(int state)
{
	return state > 0 && state < (int)(sizeof(state_names) / sizeof(state_names[0]))
		       ? state_names[state]
		       : "-";
}

unsigned long inet_netns_of(int pid)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d/ns/net", pid);
	return stat(path, &st) ? 0 : (unsigned long)st.st_ino;
}

static void format_addr(int family, const void *addr, uint16_t port, char *out, size_t len)
{
	char text[INET6_ADDRSTRLEN];

	inet_ntop(family, addr, text, sizeof(text));
	snprintf(out, len, family == AF_INET ? "%s:%u" : "[%s]:%u", text, port);
}

static struct inet_entry *add(struct ns_table *t)
{
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 256;
		struct inet_entry *e = realloc(t->e, cap * sizeof(*e));

		if (!e)
			return NULL;
		t->e = e, t->cap = cap;
	}
	return &t->e[t->n++];
}

/* One family's TCP sockets through sock_diag: false if the kernel would not say. */
static bool dump_family(struct ns_table *t, int family)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 req;
	} rq = { 0 };
	struct sockaddr_nl nl = { .nl_family = AF_NETLINK };
	static char buf[32768] __attribute__((aligned(8)));
	int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	bool ok = false, done = false;

	if (fd < 0)
		return false;
	rq.nlh.nlmsg_len = sizeof(rq);
	rq.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	rq.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	rq.req.sdiag_family = (uint8_t)family;
	rq.req.sdiag_protocol = IPPROTO_TCP;
	rq.req.idiag_states = INET_DIAG_STATES_WITH_FD;
	if (sendto(fd, &rq, sizeof(rq), 0, (struct sockaddr *)&nl, sizeof(nl)) < 0)
		goto out;
	while (!done) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		struct nlmsghdr *h;

		if (n <= 0)
			goto out;
		for (h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			const struct inet_diag_msg *m = NLMSG_DATA(h);
			struct inet_entry *e;

			if (h->nlmsg_type == NLMSG_DONE) {
				done = true;
				break;
			}
			if (h->nlmsg_type == NLMSG_ERROR)
				goto out;
			if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*m)) || !m->idiag_inode ||
			    !(e = add(t)))
				continue;
			e->inode = m->idiag_inode;
			e->state = m->idiag_state;
			e->lport = ntohs(m->id.idiag_sport);
			e->pport = ntohs(m->id.idiag_dport);
			format_addr(family, m->id.idiag_src, e->lport, e->local, sizeof(e->local));
			format_addr(family, m->id.idiag_dst, e->pport, e->peer, sizeof(e->peer));
		}
	}
	ok = true;
out:
	close(fd);
	return ok;
}

static bool dump(struct ns_table *t)
{
	return dump_family(t, AF_INET) && dump_family(t, AF_INET6);
}

/* "0100007F:1F90" (IPv4) or 32 hex digits (IPv6), each 32-bit word in host order. */
static bool parse_proc_addr(const char *hex, int family, char *out, size_t len, uint16_t *port)
{
	unsigned char addr[16];
	size_t n = family == AF_INET ? 4 : 16;
	const char *colon = strchr(hex, ':');
	unsigned p = 0;

	if (!colon || (size_t)(colon - hex) != 2 * n)
		return false;
	for (size_t w = 0; w < n / 4; w++) {
		uint32_t v;

		if (sscanf(hex + 8 * w, "%8x", &v) != 1)
			return false;
		memcpy(addr + 4 * w, &v, 4);
	}
	sscanf(colon + 1, "%x", &p);
	*port = (uint16_t)p;
	format_addr(family, addr, *port, out, len);
	return true;
}

static void read_proc_net(struct ns_table *t, int pid, const char *name, int family)
{
	char path[64], line[512], local[64], peer[64];
	unsigned long inode;
	int state;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/net/%s", pid, name);
	f = fopen(path, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		struct inet_entry e = { 0 }, *slot;

		if (sscanf(line, "%*d: %63s %63s %x %*s %*s %*s %*d %*d %lu", local, peer, &state,
			   &inode) != 4 || !inode)
			continue;
		e.inode = inode, e.state = state;
		if (!parse_proc_addr(local, family, e.local, sizeof(e.local), &e.lport) ||
		    !parse_proc_addr(peer, family, e.peer, sizeof(e.peer), &e.pport))
			continue;
		if ((slot = add(t)))
			*slot = e;
	}
	fclose(f);
}

/* Enters netns (the namespace of pid) for a dump, and comes back; false if we may not. */
static bool dump_in(struct ns_table *t, int pid)
{
	char path[64];
	int own = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC), theirs;
	bool ok = false;

	snprintf(path, sizeof(path), "/proc/%d/ns/net", pid);
	theirs = open(path, O_RDONLY | O_CLOEXEC);
	if (own >= 0 && theirs >= 0 && setns(theirs, CLONE_NEWNET) == 0) {
		ok = dump(t);
		if (setns(own, CLONE_NEWNET)) {
			fprintf(stderr, "usmc-stat: cannot return to its own network namespace\n");
			exit(1);
		}
	}
	if (own >= 0)
		close(own);
	if (theirs >= 0)
		close(theirs);
	return ok;
}

static struct ns_table *load(unsigned long netns, int pid)
{
	struct ns_table *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->netns = netns;
	if (netns != inet_netns_of(getpid()) ? !dump_in(t, pid) : !dump(t)) {
		t->n = 0;
		read_proc_net(t, pid, "tcp", AF_INET);
		read_proc_net(t, pid, "tcp6", AF_INET6);
	}
	t->next = tables;
	tables = t;
	return t;
}

const struct inet_entry *inet_find(unsigned long netns, int pid, unsigned long inode)
{
	struct ns_table *t;

	if (!inode)
		return NULL; /* not a socket: /proc lists TIME-WAIT sockets with inode 0 */
	for (t = tables; t && t->netns != netns; t = t->next)
		;
	if (!t && !(t = load(netns, pid)))
		return NULL;
	for (size_t i = 0; i < t->n; i++)
		if (t->e[i].inode == inode)
			return &t->e[i];
	return NULL;
}

void inet_table_free(void)
{
	while (tables) {
		struct ns_table *t = tables;

		tables = t->next;
		free(t->e);
		free(t);
	}
}
