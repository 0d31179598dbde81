// SPDX-License-Identifier: MIT
/*
 * Talking netlink for the kernel SMC code: requests, their bounded replies,
 * attributes, and generic netlink families by name.  What the messages mean
 * is left to the callers (stat_kernel.c).
 *
 * Nothing here reads a byte of a reply before checking that it was received:
 * callbacks get only messages that fit in what recv() returned, and the
 * attribute helpers check each attribute's length against its container.
 */
#ifndef USMC_SMC_NETLINK_H
#define USMC_SMC_NETLINK_H

#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Called for each answer to a request; a negative return (-errno) stops
 * the exchange and becomes nl_talk()'s result. */
typedef int (*nl_cb)(struct nlmsghdr *h, void *arg);

/* A netlink socket of the given protocol (NETLINK_SOCK_DIAG, ...) that
 * gives up waiting for an answer after a few seconds; -1 with errno. */
int nl_open(int protocol);

/* Sends req (its nlmsg_seq is set here) and hands each answer to cb, which
 * may be NULL when only the status matters.  Returns 0 or -errno: the
 * kernel's error, -ETIMEDOUT, or -EMSGSIZE for a datagram cut short. */
int nl_talk(int fd, struct nlmsghdr *req, nl_cb cb, void *arg);

/* An unsigned attribute of any width; 0 when a is NULL or malformed. */
uint64_t nla_uint(const struct nlattr *a);

/* The attributes nested in a with type <= max, parsed into tb[0..max];
 * false if a is NULL. */
bool nla_nested(const struct nlattr **tb, int max, const struct nlattr *a);

/* Copies an rtattr's payload if it holds at least len bytes. */
bool rta_copy(void *dst, size_t len, const struct rtattr *a);

/* A generic netlink request with room for a few small attributes. */
struct genl_req {
	struct nlmsghdr nh;
	struct genlmsghdr gh;
	char attrs[128];
};

/* An empty request for command cmd of family; flags add to NLM_F_REQUEST. */
void genl_init(struct genl_req *r, uint16_t family, uint8_t cmd, uint16_t flags);

/* Appends an attribute; -EMSGSIZE if the request has no room for it. */
int genl_put(struct genl_req *r, uint16_t type, const void *data, size_t len);

/* The attributes of a generic netlink message with type <= max, parsed
 * into tb[0..max]; false if the message is too short for its header. */
bool genl_attrs(const struct nlattr **tb, int max, const struct nlmsghdr *h);

/* A generic netlink socket and the id of the family called name there.
 * Returns the socket, or -errno: -ENOENT when there is no such family. */
int genl_open(const char *name, uint16_t *family);

#endif
