// SPDX-License-Identifier: MIT
/*
 * usmc-stat --kernel -s: the kernel's SMC counters through the
 * "SMC_GEN_NETLINK" generic netlink family, like smcr stats and smcd
 * stats; and a user EID through the same family, without which SMC-Rv2 is
 * never proposed.
 *
 * The netlink exchanges themselves are smc_netlink.c's, which check the
 * length actually received before a field of a reply is read.
 */
#include <errno.h>
#include <inttypes.h>
#include <linux/netlink.h>
#include <linux/smc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smc_netlink.h"
#include "stat_kernel_codes.h"
#include "stat_kernel_genl.h"

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
