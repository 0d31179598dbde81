// SPDX-License-Identifier: MIT
/*
 * usmc-kernel - give chosen processes kernel SMC sockets through eBPF.
 *
 *     usmc-kernel [-v] status [--json]
 *     usmc-kernel [-v] enable  --cgroup PATH | --pid PID | --netns NS | --comm NAME ...
 *     usmc-kernel [-v] disable --cgroup PATH | --pid PID | --netns NS | --comm NAME ... | --all
 *     usmc-kernel [-v] policy add RULE... | del RULE|N... | set FILE|- | show | clear
 *     usmc-kernel --help | --version
 *
 * enable loads the BPF program and pins it below /sys/fs/bpf/usmc the
 * first time; from then on the TCP sockets that the selected processes
 * create are kernel SMC sockets (Linux 6.11+), running processes
 * included.  disable --all detaches it and removes the pins.
 *
 * policy keeps a table of rules of the userspace policy's syntax in the
 * kernel's smc_hs_ctrl struct_ops (Linux 6.19+), which decides per
 * connection whether the SYN or SYN-ACK offers SMC.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json_out.h"
#include "usmc_cli.h"
#include "usmc_kernel.h"
#include "usmc_kernel_maps.h"
#include "kernel_names.h"
#include "kernel_policy.h"

#define PID_MAX_LIMIT 4194304	/* pids stay below; netns inodes are far above */

static const char prog[] = "usmc-kernel";
static bool json;

static void usage(FILE *out)
{
	fprintf(out,
		"usage: usmc-kernel [-v] status [--json]\n"
		"       usmc-kernel [-v] enable SELECTOR...\n"
		"       usmc-kernel [-v] disable SELECTOR... | --all\n"
		"       usmc-kernel [-v] policy add RULE... | del RULE|N... | set FILE|- | show | clear\n"
		"\n"
		"Makes the TCP sockets that the selected processes create kernel SMC sockets\n"
		"(IPPROTO_SMC, Linux 6.11+), through a BPF program on update_socket_protocol.\n"
		"Running processes switch with their next socket; nothing is restarted.\n"
		"\n"
		"  status            what this machine can do, and what is enabled\n"
		"  enable            load and pin the program (" USMC_KPIN_DIR ") if needed,\n"
		"                    then add the selected processes\n"
		"  disable           remove them; --all detaches the program, removes the\n"
		"                    per-connection policy and the pins\n"
		"  policy            per-connection policy (Linux 6.19+ smc_hs_ctrl): rules\n"
		"                    'smc|tcp ADDR[/PREFIX][:PORT[-PORT]]' on the peer's address,\n"
		"                    first match wins, no match tries SMC.  add appends, del\n"
		"                    removes by text or number, set replaces them all (one per\n"
		"                    line or ';'-separated, '#' comments), show lists them,\n"
		"                    clear removes the policy.  It applies in this network\n"
		"                    namespace and in namespaces created after it\n"
		"\n"
		"Selectors (any number):\n"
		"  --cgroup PATH     the processes in this cgroup v2 and its descendants: a\n"
		"                    directory, or a path below the cgroup v2 mount\n"
		"  --pid PID         this process and its descendants\n"
		"  --netns NS        the processes in this network namespace: a pid, a path\n"
		"                    (/proc/PID/ns/net), a name of ip netns, or an inode number\n"
		"  --comm NAME       the processes with this command name (up to 15 characters)\n"
		"\n"
		"  -v, --verbose     show libbpf's messages (-vv: with debug messages)\n"
		"  --json            status and policy show as JSON\n"
		"  -h, --help        show this text\n"
		"  --version         show the version\n"
		"\n"
		"Exit status 0 on success; 1 with a one-line reason if the machine or the\n"
		"kernel refuses; 2 for a usage error.\n");
}

static int fail(const char *why)
{
	fprintf(stderr, "usmc-kernel: %s\n", why);
	return 1;
}

/* ---- status ---- */

static int entries_seen;

static int print_entry(const struct usmc_kentry *e, void *arg)
{
	static const char *const kinds[] = { "cgroup", "pid", "netns", "comm" };
	char comm[32];
	const char *name = NULL;

	(void)arg;
	if (e->scope == USMC_KSCOPE_CGROUP)
		name = cgroup_path(e->id);
	else if (e->scope == USMC_KSCOPE_PID)
		name = pid_comm(e, comm, sizeof(comm));
	else if (e->scope == USMC_KSCOPE_NETNS)
		name = netns_name(e->id);
	else
		name = e->comm;
	if (json) {
		printf("%s{\"type\":\"%s\"", entries_seen ? "," : "", kinds[e->scope]);
		if (e->scope != USMC_KSCOPE_COMM)
			printf(",\"id\":%" PRIu64, e->id);
		printf(",\"name\":");
		if (name)
			json_string(name, 4096);
		else
			printf("null");
		printf("}");
	} else if (e->scope == USMC_KSCOPE_CGROUP) {
		printf("  cgroup  %s (id %" PRIu64 ")\n", name ? name : "(removed)", e->id);
	} else if (e->scope == USMC_KSCOPE_PID) {
		printf("  pid     %" PRIu64 " %s and its descendants\n", e->id,
		       name ? name : "(exited)");
	} else if (e->scope == USMC_KSCOPE_NETNS) {
		printf("  netns   %" PRIu64 "%s%s\n", e->id, name ? " " : "", name ? name : "");
	} else {
		printf("  comm    %s\n", e->comm);
	}
	entries_seen++;
	return 0;
}

struct check {
	const char *label;
	const char *key;	/* in JSON */
	int rc;			/* 0 yes, -1 no, 1 not tried */
	char why[USMC_KWHY_LEN];
};

static void print_check(const struct check *c)
{
	if (json) {
		printf("\"%s\":%s,", c->key, c->rc == 0 ? "true" : c->rc < 0 ? "false" : "null");
		return;
	}
	if (c->rc == 0)
		printf("%-24s yes\n", c->label);
	else
		printf("%-24s %s: %s\n", c->label, c->rc < 0 ? "no" : "not tried", c->why);
}

enum { C_ROOT, C_BTF, C_SMC, C_HOOK, C_ATTACH, C_BPFFS, C_CGROUP2, C_COUNT };

static void run_checks(struct check *c)
{
	c[C_ROOT] = (struct check){ "privileges:", "privileges" };
	c[C_BTF] = (struct check){ "kernel BTF:", "btf" };
	c[C_SMC] = (struct check){ "kernel SMC sockets:", "kernel_smc" };
	c[C_HOOK] = (struct check){ "update_socket_protocol:", "hook" };
	c[C_ATTACH] = (struct check){ "BPF fmod_ret:", "fmod_ret" };
	c[C_BPFFS] = (struct check){ "bpffs:", "bpffs" };
	c[C_CGROUP2] = (struct check){ "cgroup v2:", "cgroup2" };

	c[C_ROOT].rc = usmc_kernel_check_root(c[C_ROOT].why, USMC_KWHY_LEN);
	c[C_BTF].rc = usmc_kernel_check_btf(c[C_BTF].why, USMC_KWHY_LEN);
	c[C_SMC].rc = usmc_kernel_check_smc(c[C_SMC].why, USMC_KWHY_LEN);
	c[C_HOOK].rc = c[C_BTF].rc ? 1 : usmc_kernel_check_hook(c[C_HOOK].why, USMC_KWHY_LEN);
	if (c[C_BTF].rc)
		snprintf(c[C_HOOK].why, USMC_KWHY_LEN, "needs the kernel BTF");
	/* Attached and pinned already proves it; else try, even without SMC, to tell. */
	if (c[C_ROOT].rc || c[C_HOOK].rc) {
		c[C_ATTACH].rc = 1;
		snprintf(c[C_ATTACH].why, USMC_KWHY_LEN, "needs %s",
			 c[C_ROOT].rc ? "root" : "update_socket_protocol");
	} else if (!usmc_kernel_pinned()) {
		c[C_ATTACH].rc = usmc_kernel_check_attach(c[C_ATTACH].why, USMC_KWHY_LEN);
	}
	c[C_BPFFS].rc = usmc_kernel_check_bpffs(c[C_BPFFS].why, USMC_KWHY_LEN);
	c[C_CGROUP2].rc = usmc_kernel_check_cgroup2(c[C_CGROUP2].why, USMC_KWHY_LEN);
}

static void print_program(bool policy, bool root)
{
	char why[USMC_KWHY_LEN];
	struct usmc_kernel *k = NULL;

	if (root && usmc_kernel_pinned())
		k = usmc_kernel_open_pinned(false, why, sizeof(why));
	if (json) {
		printf("\"policy\":%s,\"pinned\":%s,", policy ? "true" : "false",
		       k ? "true" : root ? "false" : "null");
		printf("\"switched\":%" PRIu64 ",\"scope\":[", k ? usmc_kernel_switched(k) : 0);
	} else {
		printf("%-24s %s\n", "per-connection policy:", policy ? "available (smc_hs_ctrl)"
		       : "unavailable on this kernel (needs Linux 6.19+ smc_hs_ctrl)");
		if (k)
			printf("%-24s pinned at %s, %" PRIu64 " socket%s made SMC\n", "program:",
			       USMC_KPIN_DIR, usmc_kernel_switched(k),
			       usmc_kernel_switched(k) == 1 ? "" : "s");
		else
			printf("%-24s %s\n", "program:", root ? "not pinned" : "unknown (needs root)");
	}
	if (k) {
		if (!json)
			printf("scope:\n");
		usmc_kernel_list(k, print_entry, NULL);
		if (!json && !entries_seen)
			printf("  (none)\n");
	}
	if (json)
		printf("]");
	usmc_kernel_close(k);
}

/* Everything is printed; the exit status says whether enable can work. */
static int cmd_status(void)
{
	struct check c[C_COUNT];
	const char *reason = NULL;
	bool policy;

	run_checks(c);
	if (json)
		printf("{");
	for (int i = 0; i < C_COUNT; i++)
		print_check(&c[i]);
	/* cgroup v2 is needed only by --cgroup. */
	for (int i = 0; i < C_CGROUP2 && !reason; i++)
		if (c[i].rc)
			reason = c[i].why;
	policy = c[C_SMC].rc == 0 && usmc_kernel_policy_available();
	print_program(policy, c[C_ROOT].rc == 0);
	kernel_policy_print(policy, c[C_ROOT].rc == 0, json);
	if (json) {
		printf(",\"reason\":");
		if (reason)
			json_string(reason, 4096);
		else
			printf("null");
		printf("}\n");
	}
	fflush(stdout);
	return reason ? fail(reason) : 0;
}

/* ---- enable, disable ---- */

#define MAX_SELECTORS 64

struct request {
	struct usmc_kentry e[MAX_SELECTORS];
	const char *opt[MAX_SELECTORS], *arg[MAX_SELECTORS];	/* as given */
	int count;
	bool all;
	bool cgroup;
};

/* disable names a process by its pid alone: it may be gone already. */
static int parse_pid(const char *arg, bool enable, struct usmc_kentry *e, char *why, size_t len)
{
	long pid = strtol(arg, NULL, 10); /* parse_request checked it */

	if (enable)
		return usmc_kentry_pid((pid_t)pid, e, why, len);
	memset(e, 0, sizeof(*e));
	e->scope = USMC_KSCOPE_PID;
	e->id = (uint64_t)pid;
	return 0;
}

/* An inode number, as status lists it, names a namespace that may be gone. */
static int parse_netns(const char *arg, struct usmc_kentry *e, char *why, size_t len)
{
	unsigned long long ino;

	if (strspn(arg, "0123456789") == strlen(arg) && sscanf(arg, "%llu", &ino) == 1 &&
	    ino >= PID_MAX_LIMIT) {
		memset(e, 0, sizeof(*e));
		e->scope = USMC_KSCOPE_NETNS;
		e->id = ino;
		return 0;
	}
	return usmc_kentry_netns(arg, e, why, len);
}

/* After the machine checks: a missing cgroup v2 or SMC says more than a path. */
static int resolve(struct request *r, bool enable, char *why, size_t len)
{
	for (int i = 0; i < r->count; i++) {
		const char *opt = r->opt[i], *arg = r->arg[i];
		struct usmc_kentry *e = &r->e[i];
		int rc;

		if (!strcmp(opt, "--cgroup"))
			rc = usmc_kentry_cgroup(arg, e, why, len);
		else if (!strcmp(opt, "--pid"))
			rc = parse_pid(arg, enable, e, why, len);
		else if (!strcmp(opt, "--netns"))
			rc = parse_netns(arg, e, why, len);
		else
			rc = usmc_kentry_comm(arg, e, why, len);
		if (rc)
			return -1;
	}
	return 0;
}

enum { OPT_CGROUP = 256, OPT_PID, OPT_NETNS, OPT_COMM, OPT_ALL, OPT_JSON, OPT_VERSION };

static const char *const selector_names[] = { "--cgroup", "--pid", "--netns", "--comm" };

/*
 * enable's and disable's options, the selectors in the order given: 0, or
 * 2 after a message.  What can be told without the machine is told here;
 * whether a cgroup, process or namespace exists is for resolve().
 */
static int parse_request(int argc, char **argv, bool enable, struct request *r)
{
	static const struct option opts[] = {
		{ "cgroup", required_argument, NULL, OPT_CGROUP },
		{ "pid", required_argument, NULL, OPT_PID },
		{ "netns", required_argument, NULL, OPT_NETNS },
		{ "comm", required_argument, NULL, OPT_COMM },
		{ "all", no_argument, NULL, OPT_ALL },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *cmd = enable ? "enable" : "disable";
	long pid;
	int c;

	memset(r, 0, sizeof(*r));
	optind = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			exit(0);
		}
		if (c == '?' || c == ':')
			return usmc_cli_bad_option(prog, argv, c);
		if (c == OPT_ALL && enable)
			return usmc_cli_usage_error(prog, "enable takes no %s", "--all");
		if (c == OPT_ALL) {
			r->all = true;
			continue;
		}
		if (r->count == MAX_SELECTORS)
			return usmc_cli_usage_error(prog, "more than %d selectors", MAX_SELECTORS);
		if (c == OPT_PID && !usmc_cli_long(prog, "--pid", optarg, 1, PID_MAX_LIMIT - 1, &pid))
			return USMC_EXIT_USAGE;
		if (c == OPT_COMM && (!*optarg || strlen(optarg) >= USMC_KCOMM_LEN)) {
			fprintf(stderr, "%s: --comm: '%s' is not a command name: the kernel keeps "
				"1 to %d characters of it\n", prog, optarg, USMC_KCOMM_LEN - 1);
			return USMC_EXIT_USAGE;
		}
		r->cgroup |= c == OPT_CGROUP;
		r->opt[r->count] = selector_names[c - OPT_CGROUP];
		r->arg[r->count++] = optarg;
	}
	if (optind < argc)
		return usmc_cli_usage_error(prog, "%s: unexpected %s", cmd, argv[optind]);
	if (r->all && r->count)
		return usmc_cli_usage_error(prog, "disable --all takes %s", "no selectors");
	if (!r->all && !r->count)
		return usmc_cli_usage_error(prog, "%s needs --cgroup, --pid, --netns or --comm%s", cmd,
					    enable ? "" : ", or --all");
	return 0;
}

static int cmd_enable(int argc, char **argv)
{
	char why[USMC_KWHY_LEN];
	struct request r;
	struct usmc_kernel *k;
	unsigned int needs = USMC_KNEED_PIN;
	int rc = parse_request(argc, argv, true, &r);

	if (rc)
		return rc;
	if (r.cgroup)
		needs |= USMC_KNEED_CGROUP;
	if (!usmc_kernel_pinned())
		needs |= USMC_KNEED_ATTACH;
	if (usmc_kernel_check(needs, why, sizeof(why)) || resolve(&r, true, why, sizeof(why)))
		return fail(why);
	k = usmc_kernel_open_pinned(true, why, sizeof(why));
	if (!k)
		return fail(why);
	for (int i = 0; i < r.count; i++) {
		if (usmc_kernel_add(k, &r.e[i], why, sizeof(why))) {
			usmc_kernel_close(k);
			return fail(why);
		}
	}
	usmc_kernel_close(k);
	return 0;
}

static int cmd_disable(int argc, char **argv)
{
	char why[USMC_KWHY_LEN];
	struct request r;
	struct usmc_kernel *k;
	int rc = parse_request(argc, argv, false, &r);

	if (rc)
		return rc;
	if (usmc_kernel_check_root(why, sizeof(why)))
		return fail(why);
	if (r.all) {
		/* The policy first: it holds the same lock while it goes. */
		int policy_rc = usmc_kpolicy_clear(why, sizeof(why));

		if (policy_rc < 0)
			return fail(why);
		rc = usmc_kernel_unpin(why, sizeof(why));
		if (rc < 0)
			return fail(why);
		if (rc > 0 && policy_rc > 0)
			fprintf(stderr, "usmc-kernel: nothing was enabled\n");
		return 0;
	}
	if (resolve(&r, false, why, sizeof(why)))
		return fail(why);
	k = usmc_kernel_open_pinned(false, why, sizeof(why));
	if (!k)
		return fail(why);
	for (int i = 0; i < r.count && rc == 0; i++) {
		int removed = usmc_kernel_del(k, &r.e[i], why, sizeof(why));

		if (removed == 0)
			snprintf(why, sizeof(why), "%s %s was not enabled", r.opt[i], r.arg[i]);
		if (removed <= 0)
			rc = fail(why);
	}
	usmc_kernel_close(k);
	return rc;
}

/*
 * The options of status and policy: --json anywhere, and --help.  The
 * index of the first other word, or -1 with *rc the status to exit with.
 */
static int json_only(int argc, char **argv, int *rc)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;

	optind = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			*rc = 0;
			return -1;
		}
		if (c != OPT_JSON) {
			*rc = usmc_cli_bad_option(prog, argv, c);
			return -1;
		}
		json = true;
	}
	return optind;
}

/* status [--json] */
static int cmd_status_args(int argc, char **argv)
{
	int rc, first = json_only(argc, argv, &rc);

	if (first < 0)
		return rc;
	if (first < argc)
		return usmc_cli_usage_error(prog, "status takes no arguments but %s", "--json");
	return cmd_status();
}

/* policy SUB [ARGS...] */
static int cmd_policy_args(int argc, char **argv)
{
	int rc, first = json_only(argc, argv, &rc);

	return first < 0 ? rc : kernel_policy_cmd(argc - first, argv + first, json);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "verbose", no_argument, NULL, 'v' },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ 0 },
	};
	int verbose = 0, c;
	const char *cmd;

	opterr = 0;
	/* '+': the options before the command; each command parses its own. */
	while ((c = getopt_long(argc, argv, "+:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'v':
			verbose++;
			break;
		case OPT_JSON:
			json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case OPT_VERSION:
			return usmc_cli_version(prog);
		default:
			return usmc_cli_bad_option(prog, argv, c);
		}
	}
	usmc_kernel_verbose(verbose);
	if (optind >= argc) {
		usage(stderr);
		return USMC_EXIT_USAGE;
	}
	cmd = argv[optind];
	argc -= optind;
	argv += optind;
	if (!strcmp(cmd, "status"))
		return cmd_status_args(argc, argv);
	if (!strcmp(cmd, "enable"))
		return cmd_enable(argc, argv);
	if (!strcmp(cmd, "disable"))
		return cmd_disable(argc, argv);
	if (!strcmp(cmd, "policy"))
		return cmd_policy_args(argc, argv);
	return usmc_cli_usage_error(prog, "unknown command %s", cmd);
}
