// SPDX-License-Identifier: MIT
/*
 * Netlink for the kernel SMC code (see smc_netlink.h): a request out, its
 * answers back, and their attributes read without trusting their lengths.
 *
 * Every field of a reply is read only after the length actually received
 * has been checked: nl_ok() for messages, nla_parse() for attributes, and
 * rta_copy() a structure's size against its attribute's payload.
 */
#include "smc_netlink.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* One datagram; a larger one is reported (MSG_TRUNC), never read cut. */
#define NL_BUFSIZE 65536

/* ---- messages --------------------------------------------------------- */

int nl_open(int protocol)
{
	/* A kernel that never answers must not hang usmc-stat. */
	struct timeval tv = { .tv_sec = 5 };
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);

	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* The status in NLMSG_ERROR (0: an ACK) or NLMSG_DONE (a dump's error). */
static int nl_status(const struct nlmsghdr *h)
{
	int err = 0;

	if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(err)))
		memcpy(&err, NLMSG_DATA(h), sizeof(err));
	else if (h->nlmsg_type == NLMSG_ERROR)
		return -EBADMSG;
	return err < 0 ? err : 0;
}

/* NLMSG_OK, without comparing a signed length with an unsigned one. */
static bool nl_ok(const struct nlmsghdr *h, int len)
{
	return len >= (int)sizeof(*h) && h->nlmsg_len >= sizeof(*h) && h->nlmsg_len <= (unsigned)len;
}

/* One datagram of answers: 1 if more are to come, else 0 or -errno. */
static int nl_walk(char *buf, int len, uint32_t seq, nl_cb cb, void *arg)
{
	for (struct nlmsghdr *h = (struct nlmsghdr *)buf; nl_ok(h, len); h = NLMSG_NEXT(h, len)) {
		int rc;

		if (h->nlmsg_seq != seq)
			continue;
		if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR)
			return nl_status(h);
		if (h->nlmsg_type < NLMSG_MIN_TYPE)
			continue;
		rc = cb ? cb(h, arg) : 0;
		if (rc < 0)
			return rc;
		if (!(h->nlmsg_flags & NLM_F_MULTI))
			return 0;
	}
	return 1;
}

int nl_talk(int fd, struct nlmsghdr *req, nl_cb cb, void *arg)
{
	static uint32_t seq;
	char *buf = malloc(NL_BUFSIZE);
	int rc = 1;

	if (!buf)
		return -ENOMEM;
	req->nlmsg_seq = ++seq;
	if (send(fd, req, req->nlmsg_len, 0) < 0)
		rc = -errno;
	while (rc == 1) {
		/* MSG_TRUNC: the real size, so a cut datagram is noticed. */
		ssize_t n = recv(fd, buf, NL_BUFSIZE, MSG_TRUNC);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			rc = errno == EAGAIN ? -ETIMEDOUT : -errno;
		else if (n > NL_BUFSIZE)
			rc = -EMSGSIZE;
		else
			rc = nl_walk(buf, (int)n, req->nlmsg_seq, cb, arg);
	}
	free(buf);
	return rc;
}

/* ---- attributes ------------------------------------------------------- */

/* Fills tb[type] for the attributes in data[0..len) with type <= max. */
static void nla_parse(const struct nlattr **tb, int max, const void *data, int len)
{
	const char *p = data;

	memset(tb, 0, (size_t)(max + 1) * sizeof(*tb));
	while (len >= NLA_HDRLEN) {
		const struct nlattr *a = (const struct nlattr *)p;
		int type = a->nla_type & NLA_TYPE_MASK;

		if (a->nla_len < NLA_HDRLEN || a->nla_len > len)
			return;
		if (type <= max)
			tb[type] = a;
		if (NLA_ALIGN(a->nla_len) >= len)
			return;
		p += NLA_ALIGN(a->nla_len);
		len -= NLA_ALIGN(a->nla_len);
	}
}

static const void *nla_payload(const struct nlattr *a)
{
	return (const char *)a + NLA_HDRLEN;
}

static int nla_size(const struct nlattr *a)
{
	return a->nla_len - NLA_HDRLEN;
}

uint64_t nla_uint(const struct nlattr *a)
{
	union { uint8_t u8; uint16_t u16; uint32_t u32; uint64_t u64; } v = { .u64 = 0 };
	int n = a ? nla_size(a) : 0;

	if (n != 1 && n != 2 && n != 4 && n != 8)
		return 0;
	memcpy(&v, nla_payload(a), (size_t)n); /* payloads are only 4-aligned */
	return n == 1 ? v.u8 : n == 2 ? v.u16 : n == 4 ? v.u32 : v.u64;
}

bool nla_nested(const struct nlattr **tb, int max, const struct nlattr *a)
{
	if (!a)
		return false;
	nla_parse(tb, max, nla_payload(a), nla_size(a));
	return true;
}

bool rta_copy(void *dst, size_t len, const struct rtattr *a)
{
	if (RTA_PAYLOAD(a) < len)
		return false;
	memcpy(dst, RTA_DATA(a), len);
	return true;
}

/* ---- generic netlink -------------------------------------------------- */

void genl_init(struct genl_req *r, uint16_t family, uint8_t cmd, uint16_t flags)
{
	memset(r, 0, sizeof(*r));
	r->nh.nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN);
	r->nh.nlmsg_type = family;
	r->nh.nlmsg_flags = NLM_F_REQUEST | flags;
	r->gh.cmd = cmd;
	r->gh.version = 1;
}

int genl_put(struct genl_req *r, uint16_t type, const void *data, size_t len)
{
	size_t off = NLMSG_ALIGN(r->nh.nlmsg_len);
	struct nlattr a = { .nla_len = (uint16_t)(NLA_HDRLEN + len), .nla_type = type };

	if (off + NLA_ALIGN(NLA_HDRLEN + len) > sizeof(*r))
		return -EMSGSIZE;
	memcpy((char *)r + off, &a, sizeof(a));
	memcpy((char *)r + off + NLA_HDRLEN, data, len);
	r->nh.nlmsg_len = (uint32_t)(off + NLA_ALIGN(NLA_HDRLEN + len));
	return 0;
}

bool genl_attrs(const struct nlattr **tb, int max, const struct nlmsghdr *h)
{
	if (h->nlmsg_len < NLMSG_LENGTH(GENL_HDRLEN))
		return false;
	nla_parse(tb, max, (const char *)NLMSG_DATA(h) + GENL_HDRLEN,
		  (int)(h->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN)));
	return true;
}

static int family_id_cb(struct nlmsghdr *h, void *arg)
{
	const struct nlattr *tb[CTRL_ATTR_FAMILY_ID + 1];

	if (genl_attrs(tb, CTRL_ATTR_FAMILY_ID, h))
		*(uint16_t *)arg = (uint16_t)nla_uint(tb[CTRL_ATTR_FAMILY_ID]);
	return 0;
}

int genl_open(const char *name, uint16_t *family)
{
	struct genl_req r;
	int fd = nl_open(NETLINK_GENERIC), rc;

	if (fd < 0)
		return -errno;
	*family = 0;
	genl_init(&r, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 0);
	/* The controller wants the name with its NUL. */
	genl_put(&r, CTRL_ATTR_FAMILY_NAME, name, strlen(name) + 1);
	rc = nl_talk(fd, &r.nh, family_id_cb, family);
	if (rc == 0 && !*family)
		rc = -ENOENT;
	if (rc < 0) {
		close(fd);
		return rc;
	}
	return fd;
}
