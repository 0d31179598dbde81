// SPDX-License-Identifier: MIT
/*
 * kernel_policy.c - usmc-kernel policy: the per-connection policy of the
 * kernel's SMC (Linux 6.19+ smc_hs_ctrl), in the userspace policy's syntax,
 * read by the same parser (usmc_policy_file.c), so that both take exactly
 * the same text.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_out.h"
#include "kernel_policy.h"
#include "usmc_cli.h"
#include "usmc_kernel.h"
#include "usmc_kernel_maps.h"
#include "usmc_policy.h"
#include "usmc_policy_file.h"

static const char prog[] = "usmc-kernel";
static bool json;

static int fail(const char *why)
{
	fprintf(stderr, "%s: %s\n", prog, why);
	return 1;
}

/* ---- per-connection policy ---- */

#define POLICY_UNAVAILABLE "per-connection policy is unavailable on this kernel (needs Linux 6.19+ smc_hs_ctrl)"

static void rule_to_kernel(const struct usmc_rule *r, struct usmc_kprule *k)
{
	memset(k, 0, sizeof(*k));
	k->family = (uint8_t)r->family;
	k->prefix = (uint8_t)r->prefix;
	k->smc = r->smc;
	k->port_lo = r->port_lo;
	k->port_hi = r->port_hi;
	memcpy(k->addr, r->addr, sizeof(k->addr));
	/* The mask, byte by byte in network order like the address. */
	for (int bit = 0; bit < r->prefix && bit < 128; bit++)
		((uint8_t *)k->mask)[bit / 8] |= (uint8_t)(0x80 >> (bit % 8));
}

/* Back to the text usmc_rule_parse() reads, in its shortest form. */
static void rule_text(const struct usmc_kprule *k, char *buf, size_t size)
{
	char addr[INET6_ADDRSTRLEN] = "*", prefix[8] = "", ports[16] = "";
	bool v6 = k->family == AF_INET6;

	if (k->family)
		inet_ntop(k->family, k->addr, addr, sizeof(addr));
	if (k->family && k->prefix != (v6 ? 128 : 32))
		snprintf(prefix, sizeof(prefix), "/%u", k->prefix);
	if (k->port_lo != 0 || k->port_hi != 65535) {
		if (k->port_lo == k->port_hi)
			snprintf(ports, sizeof(ports), ":%u", k->port_lo);
		else
			snprintf(ports, sizeof(ports), ":%u-%u", k->port_lo, k->port_hi);
	}
	snprintf(buf, size, "%s %s%s%s%s%s", k->smc ? "smc" : "tcp", v6 && ports[0] ? "[" : "",
		 addr, prefix, v6 && ports[0] ? "]" : "", ports);
}

static int parse_rule(const char *text, struct usmc_kprule *k, char *why, size_t len)
{
	struct usmc_rule r;

	if (!usmc_rule_parse(&r, text)) {
		snprintf(why, len, "not a rule: '%s' (smc|tcp ADDR[/PREFIX][:PORT[-PORT]])", text);
		return -1;
	}
	rule_to_kernel(&r, k);
	return 0;
}

static bool same_rule(const struct usmc_kprule *a, const struct usmc_kprule *b)
{
	return a->family == b->family && a->prefix == b->prefix && a->smc == b->smc &&
	       a->port_lo == b->port_lo && a->port_hi == b->port_hi &&
	       !memcmp(a->addr, b->addr, sizeof(a->addr));
}

struct read_state {
	const char *file;
	struct usmc_kprule *rules;
	int *n;
	char *why;
	size_t len;
};

static int take_rule(void *arg, int line, char *stmt)
{
	struct read_state *st = arg;
	char what[USMC_KWHY_LEN], *words;

	if (usmc_policy_allow_line(stmt, &words))
		return 0; /* for the userspace library only */
	if (*st->n == USMC_KPOLICY_RULES) {
		snprintf(st->why, st->len, "%s: more than %d rules", st->file, USMC_KPOLICY_RULES);
		return -1;
	}
	if (parse_rule(stmt, &st->rules[*st->n], what, sizeof(what))) {
		snprintf(st->why, st->len, "%.64s line %d: %.200s", st->file, line, what);
		return -1;
	}
	(*st->n)++;
	return 0;
}

/* "set" input: the policy file's syntax (usmc_policy_file.h), read as the library reads it. */
static int read_rules(const char *file, struct usmc_kprule *rules, int *n, char *why, size_t len)
{
	struct read_state st = { file, rules, n, why, len };
	size_t size;
	char *text = usmc_policy_read(file, &size);
	int rc;

	if (!text) {
		snprintf(why, len, "cannot read %s: %s", file, strerror(errno));
		return -1;
	}
	*n = 0;
	rc = usmc_policy_each(text, size, take_rule, &st);
	free(text);
	return rc ? -1 : 0;
}

static void print_rules(const struct usmc_kprule *rules, int n)
{
	char text[96];

	for (int i = 0; i < n; i++) {
		rule_text(&rules[i], text, sizeof(text));
		if (json) {
			printf("%s", i ? "," : "");
			json_string(text, sizeof(text));
		} else {
			printf("  %2d  %s\n", i + 1, text);
		}
	}
}

/* status: the policy's rules and what it decided, when it is loaded. */
void kernel_policy_print(bool available, bool root, bool as_json)
{
	static struct usmc_kprule rules[USMC_KPOLICY_RULES];
	char why[USMC_KWHY_LEN], selected[64] = "";
	uint64_t smc = 0, tcp = 0;
	int n = -1;

	json = as_json;
	if (available && root && usmc_kpolicy_loaded()) {
		n = usmc_kpolicy_get(rules, USMC_KPOLICY_RULES, why, sizeof(why));
		usmc_kpolicy_stats(&smc, &tcp);
		usmc_kpolicy_selected(selected, sizeof(selected));
	}
	if (json) {
		printf(",\"policy_rules\":");
		if (n < 0) {
			printf("null");
			return;
		}
		printf("[");
		print_rules(rules, n);
		printf("],\"policy_selected\":%s", strcmp(selected, USMC_KPOLICY_NAME) ? "false" : "true");
		printf(",\"policy_smc\":%" PRIu64 ",\"policy_tcp\":%" PRIu64, smc, tcp);
		return;
	}
	if (n < 0)
		return;
	printf("policy:                  smc_hs_ctrl '%s'%s, %" PRIu64 " connection%s tried SMC, %" PRIu64
	       " kept to TCP\n", USMC_KPOLICY_NAME,
	       strcmp(selected, USMC_KPOLICY_NAME) ? " (not selected in this network namespace)" : "",
	       smc, smc == 1 ? "" : "s", tcp);
	print_rules(rules, n);
	if (!n)
		printf("  (no rules: every connection tries SMC)\n");
}

static bool is_number(const char *s)
{
	return *s && strspn(s, "0123456789") == strlen(s);
}

/* The words of a policy command, checked before the machine is: 0 or 2. */
static int policy_usage(int argc, char **argv)
{
	const char *sub = argc > 0 ? argv[0] : "";
	char why[USMC_KWHY_LEN];
	struct usmc_kprule k;

	if (strcmp(sub, "add") && strcmp(sub, "del") && strcmp(sub, "set") && strcmp(sub, "show") &&
	    strcmp(sub, "clear"))
		return usmc_cli_usage_error(prog, "policy needs %s", "add, del, set, show or clear");
	if ((!strcmp(sub, "clear") || !strcmp(sub, "show")) && argc != 1)
		return usmc_cli_usage_error(prog, "policy %s takes no arguments", sub);
	if (!strcmp(sub, "set") && argc != 2)
		return usmc_cli_usage_error(prog, "policy set takes %s",
					    "one FILE, or - for standard input");
	if (!strcmp(sub, "add") && argc < 2)
		return usmc_cli_usage_error(prog, "policy add needs %s",
					    "a rule, such as 'tcp 10.0.0.0/8'");
	if (!strcmp(sub, "del") && argc < 2)
		return usmc_cli_usage_error(prog, "policy del needs %s", "a rule or its number");
	for (int i = 1; i < argc && strcmp(sub, "set"); i++) {
		if ((!strcmp(sub, "del") && is_number(argv[i])) ||
		    !parse_rule(argv[i], &k, why, sizeof(why)))
			continue;
		fprintf(stderr, "%s: policy %s: %s\n", prog, sub, why);
		return USMC_EXIT_USAGE;
	}
	return 0;
}

int kernel_policy_cmd(int argc, char **argv, bool as_json)
{
	static struct usmc_kprule rules[USMC_KPOLICY_RULES], arg_rules[USMC_KPOLICY_RULES];
	char why[USMC_KWHY_LEN];
	const char *sub = argc > 0 ? argv[0] : "";
	int n, rc;

	json = as_json;
	rc = policy_usage(argc, argv);
	if (rc)
		return rc;
	if (usmc_kernel_check_root(why, sizeof(why)))
		return fail(why);
	/* The smc module brings the type; a first IPPROTO_SMC socket loads it. */
	usmc_kernel_check_smc(why, sizeof(why));
	if (!usmc_kernel_policy_available())
		return fail(POLICY_UNAVAILABLE);
	if (usmc_kernel_check_bpffs(why, sizeof(why)))
		return fail(why);

	if (!strcmp(sub, "clear")) {
		rc = usmc_kpolicy_clear(why, sizeof(why));
		if (rc < 0)
			return fail(why);
		if (rc > 0)
			fprintf(stderr, "usmc-kernel: no policy was loaded\n");
		return 0;
	}
	n = usmc_kpolicy_get(rules, USMC_KPOLICY_RULES, why, sizeof(why));
	if (n < 0)
		return fail(why);
	if (!strcmp(sub, "show")) {
		if (json) {
			printf("[");
			print_rules(rules, n);
			printf("]\n");
		} else if (!usmc_kpolicy_loaded()) {
			printf("no policy loaded: every connection tries SMC\n");
		} else {
			print_rules(rules, n);
			if (!n)
				printf("no rules: every connection tries SMC\n");
		}
		return 0;
	}
	if (!strcmp(sub, "set")) {
		if (read_rules(argv[1], rules, &n, why, sizeof(why)))
			return fail(why);
	} else if (!strcmp(sub, "add")) {
		for (int i = 1; i < argc; i++) {
			if (parse_rule(argv[i], &arg_rules[i - 1], why, sizeof(why)))
				return fail(why);
			if (n + i - 1 >= USMC_KPOLICY_RULES) {
				snprintf(why, sizeof(why), "at most %d rules", USMC_KPOLICY_RULES);
				return fail(why);
			}
		}
		memcpy(&rules[n], arg_rules, sizeof(arg_rules[0]) * (size_t)(argc - 1));
		n += argc - 1;
	} else {
		/* Numbers as show prints them, all resolved before any is removed. */
		bool gone[USMC_KPOLICY_RULES] = { false };
		int kept = 0;

		for (int i = 1; i < argc; i++) {
			long num = strtol(argv[i], NULL, 10);
			int found = -1;

			if (is_number(argv[i])) {
				if (num >= 1 && num <= n)
					found = (int)num - 1;
			} else {
				struct usmc_kprule k;

				if (parse_rule(argv[i], &k, why, sizeof(why)))
					return fail(why);
				for (int j = 0; j < n && found < 0; j++)
					if (!gone[j] && same_rule(&rules[j], &k))
						found = j;
			}
			if (found < 0) {
				snprintf(why, sizeof(why), "no rule %s in the policy", argv[i]);
				return fail(why);
			}
			gone[found] = true;
		}
		for (int j = 0; j < n; j++)
			if (!gone[j])
				rules[kept++] = rules[j];
		n = kept;
	}
	if (usmc_kpolicy_set(rules, n, why, sizeof(why)))
		return fail(why);
	return 0;
}

/* Only root can look into the pins; others are told so, not "not pinned". */
