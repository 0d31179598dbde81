// SPDX-License-Identifier: MIT
/*
 * Per-connection policy for kernel SMC sockets.
 *
 * Linux 6.19 added struct smc_hs_ctrl, a struct_ops that net/smc asks,
 * for every SMC socket, whether its SYN (syn_option) or its SYN-ACK
 * (synack_option) carries the SMC TCP option: 0 means no, and the
 * connection then falls back to plain TCP before any SMC handshake.  The
 * struct_ops is registered under a name and chosen per network namespace
 * through the sysctl net.smc.hs_ctrl.
 *
 * This one applies the rules of usmc_prules to the peer of the connection
 * (client: the destination; server: the source of the SYN): the first rule
 * that matches decides, and without a match SMC is tried, as in the
 * userspace policy.
 */

/*
 * The build machine's kernel may not know struct smc_hs_ctrl (a module
 * type, and new).  Its vmlinux.h copy, if any, is renamed out of the way
 * and the one below is used; libbpf matches it to the running kernel's
 * type by name and member names.
 */
#define smc_hs_ctrl smc_hs_ctrl___vmlinux
#include "vmlinux.h"
#undef smc_hs_ctrl

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "usmc_kernel_maps.h"

#define AF_INET		2
#define AF_INET6	10
#define SMC_HS_CTRL_NAME_MAX		16
#define SMC_HS_CTRL_FLAG_INHERITABLE	0x1	/* new namespaces inherit init_net's choice */

struct smc_hs_ctrl {
	struct list_head list;
	struct module *owner;
	char name[SMC_HS_CTRL_NAME_MAX];
	int flags;
	int (*syn_option)(struct tcp_sock *tp);
	int (*synack_option)(const struct tcp_sock *tp, struct inet_request_sock *ireq);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, USMC_KPOLICY_RULES);
	__type(key, __u32);
	__type(value, struct usmc_kprule);
} usmc_prules SEC(".maps");

/* Entry 0: how many rules of usmc_prules are in use. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} usmc_pcount SEC(".maps");

/* Decisions taken, per CPU: USMC_KPOLICY_SMC and USMC_KPOLICY_TCP. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, USMC_KPOLICY_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} usmc_pstats SEC(".maps");

struct peer {
	__u8 family;
	__u16 port;	/* host order */
	__u32 addr[4];	/* network order; IPv4 in addr[0] */
};

static bool rule_matches(const struct usmc_kprule *r, const struct peer *p)
{
	__u32 diff;

	if (p->port < r->port_lo || p->port > r->port_hi)
		return false;
	if (!r->family)
		return true;
	if (r->family != p->family)
		return false;
	diff = ((p->addr[0] ^ r->addr[0]) & r->mask[0]) | ((p->addr[1] ^ r->addr[1]) & r->mask[1]) |
	       ((p->addr[2] ^ r->addr[2]) & r->mask[2]) | ((p->addr[3] ^ r->addr[3]) & r->mask[3]);
	return diff == 0;
}

static void set_v4(struct peer *p, __be32 addr)
{
	p->family = AF_INET;
	p->addr[0] = addr;
}

/* An IPv4-mapped IPv6 address (::ffff:a.b.c.d) counts as IPv4, as in user space. */
static void set_v6(struct peer *p, const __u32 *a)
{
	if (a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0xffff)) {
		set_v4(p, a[3]);
		return;
	}
	p->family = AF_INET6;
	p->addr[0] = a[0];
	p->addr[1] = a[1];
	p->addr[2] = a[2];
	p->addr[3] = a[3];
}

static int decide(const struct peer *p)
{
	__u32 zero = 0, *count = bpf_map_lookup_elem(&usmc_pcount, &zero);
	__u32 n = count ? *count : 0, stat = USMC_KPOLICY_SMC;
	int smc = 1;
	__u64 *counter;

	/*
	 * The counter stays in a register and the key is a copy: with the
	 * counter itself on the stack the verifier cannot see the loop end.
	 */
	for (int i = 0; i < USMC_KPOLICY_RULES; i++) {
		__u32 key = i;
		struct usmc_kprule *r;

		if (key >= n)
			break;
		r = bpf_map_lookup_elem(&usmc_prules, &key);
		if (r && rule_matches(r, p)) {
			smc = r->smc;
			break;
		}
	}
	if (!smc)
		stat = USMC_KPOLICY_TCP;
	counter = bpf_map_lookup_elem(&usmc_pstats, &stat);
	if (counter)
		*counter += 1;
	return smc;
}

/* Client: the SYN goes to the socket's destination. */
SEC("struct_ops/usmc_syn_option")
int BPF_PROG(usmc_syn_option, struct tcp_sock *tp)
{
	const struct sock_common *c = (const void *)tp;
	struct peer p = {};
	__u32 a[4];

	p.port = bpf_ntohs(c->skc_dport);
	if (c->skc_family == AF_INET6) {
		a[0] = c->skc_v6_daddr.in6_u.u6_addr32[0];
		a[1] = c->skc_v6_daddr.in6_u.u6_addr32[1];
		a[2] = c->skc_v6_daddr.in6_u.u6_addr32[2];
		a[3] = c->skc_v6_daddr.in6_u.u6_addr32[3];
		set_v6(&p, a);
	} else {
		set_v4(&p, c->skc_daddr);
	}
	return decide(&p);
}

/*
 * Server: the peer is the SYN's source.  A dual-stack listener's request
 * for an IPv4 SYN has the listener's family but only IPv4 addresses; the
 * request's operations say which protocol the SYN came in on.
 */
SEC("struct_ops/usmc_synack_option")
int BPF_PROG(usmc_synack_option, const struct tcp_sock *tp, struct inet_request_sock *ireq)
{
	const struct sock_common *c = &ireq->req.__req_common;
	struct peer p = {};
	__u32 a[4];

	p.port = bpf_ntohs(c->skc_dport);
	if (ireq->req.rsk_ops->family == AF_INET6) {
		a[0] = c->skc_v6_daddr.in6_u.u6_addr32[0];
		a[1] = c->skc_v6_daddr.in6_u.u6_addr32[1];
		a[2] = c->skc_v6_daddr.in6_u.u6_addr32[2];
		a[3] = c->skc_v6_daddr.in6_u.u6_addr32[3];
		set_v6(&p, a);
	} else {
		set_v4(&p, c->skc_daddr);
	}
	return decide(&p);
}

SEC(".struct_ops")
struct smc_hs_ctrl usmc_hs = {
	.name = USMC_KPOLICY_NAME,
	.flags = SMC_HS_CTRL_FLAG_INHERITABLE,
	.syn_option = (void *)usmc_syn_option,
	.synack_option = (void *)usmc_synack_option,
};

char LICENSE[] SEC("license") = "Dual MIT/GPL";
