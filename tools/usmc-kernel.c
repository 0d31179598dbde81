// SPDX-License-Identifier: MIT
/*
 * usmc-kernel - give chosen processes kernel SMC sockets through eBPF.
 *
 *     usmc-kernel [-v] status [--json]
 *     usmc-kernel [-v] enable  --cgroup PATH | --pid PID | --netns NS | --comm NAME ...
 *     usmc-kernel [-v] disable --cgroup PATH | --pid PID | --netns NS | --comm NAME ... | --all
 *     usmc-kernel [-v] policy add RULE... | del RULE|N... | set FILE|- | show | clear
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
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json_out.h"
#include "usmc_kernel.h"
#include "usmc_kernel_maps.h"
#include "usmc_policy.h"

#define PID_MAX_LIMIT 4194304	/* pids stay below; netns inodes are far above */

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
		"  --json            status as JSON\n"
		"  -h, --help        show this text\n"
		"\n"
		"Exit status 0 on success; 1 with a one-line reason otherwise.\n");
}

static int fail(const char *why)
{
	fprintf(stderr, "usmc-kernel: %s\n", why);
	return 1;
}

/* ---- naming entries for people ---- */

static uint64_t wanted_ino;
static char found_path[4096];

static int match_ino(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)ftw;
	if (flag != FTW_D || (uint64_t)st->st_ino != wanted_ino)
		return 0;
	snprintf(found_path, sizeof(found_path), "%s", path);
	return 1;
}

/* The directory of a cgroup v2 id: its inode number on 64-bit kernels. */
static const char *cgroup_path(uint64_t id)
{
	char mount[256];

	found_path[0] = '\0';
	wanted_ino = id;
	if (usmc_kernel_cgroup2_mount(mount, sizeof(mount)))
		nftw(mount, match_ino, 16, FTW_PHYS | FTW_MOUNT);
	return found_path[0] ? found_path : NULL;
}

/* The ip netns name of a namespace inode, if it has one. */
static const char *netns_name(uint64_t ino)
{
	DIR *dir = opendir("/run/netns");
	struct dirent *d;
	struct stat st;
	char path[512];

	found_path[0] = '\0';
	while (dir && (d = readdir(dir))) {
		snprintf(path, sizeof(path), "/run/netns/%s", d->d_name);
		if (d->d_name[0] != '.' && stat(path, &st) == 0 && st.st_ino == ino) {
			snprintf(found_path, sizeof(found_path), "%s", d->d_name);
			break;
		}
	}
	if (dir)
		closedir(dir);
	return found_path[0] ? found_path : NULL;
}

static const char *pid_comm(const struct usmc_kentry *e, char *comm, size_t size)
{
	char path[64];
	ssize_t n;
	int fd;

	if (e->start_ticks && usmc_kernel_pid_start((pid_t)e->id) != e->start_ticks)
		return NULL;
	snprintf(path, sizeof(path), "/proc/%" PRIu64 "/comm", e->id);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	n = read(fd, comm, size - 1);
	close(fd);
	if (n <= 0)
		return NULL;
	comm[n] = '\0';
	comm[strcspn(comm, "\n")] = '\0';
	return comm;
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

/* "set" input: one rule per line or several separated by ';'; '#' starts a comment. */
static int read_rules(const char *file, struct usmc_kprule *rules, int *n, char *why, size_t len)
{
	FILE *f = strcmp(file, "-") ? fopen(file, "re") : stdin;
	char line[512];
	int lineno = 0, rc = 0;

	if (!f) {
		snprintf(why, len, "cannot open %s: %s", file, strerror(errno));
		return -1;
	}
	*n = 0;
	while (rc == 0 && fgets(line, sizeof(line), f)) {
		char *save = NULL, *part;

		lineno++;
		line[strcspn(line, "#\n")] = '\0';
		for (part = strtok_r(line, ";", &save); part && rc == 0;
		     part = strtok_r(NULL, ";", &save)) {
			char *end;

			while (*part == ' ' || *part == '\t')
				part++;
			end = part + strlen(part);
			while (end > part && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
				*--end = '\0';
			if (!*part)
				continue;
			if (*n == USMC_KPOLICY_RULES) {
				snprintf(why, len, "%s: more than %d rules", file, USMC_KPOLICY_RULES);
				rc = -1;
			} else if (parse_rule(part, &rules[*n], why, len) == 0) {
				(*n)++;
			} else {
				char what[USMC_KWHY_LEN];

				snprintf(what, sizeof(what), "%s", why);
				snprintf(why, len, "%.64s line %d: %.200s", file, lineno, what);
				rc = -1;
			}
		}
	}
	if (f != stdin)
		fclose(f);
	return rc;
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
static void print_policy(bool available, bool root)
{
	static struct usmc_kprule rules[USMC_KPOLICY_RULES];
	char why[USMC_KWHY_LEN], selected[64] = "";
	uint64_t smc = 0, tcp = 0;
	int n = -1;

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

static int cmd_policy(int argc, char **argv)
{
	static struct usmc_kprule rules[USMC_KPOLICY_RULES], arg_rules[USMC_KPOLICY_RULES];
	char why[USMC_KWHY_LEN];
	const char *sub = argc > 0 ? argv[0] : "";
	int n, rc;

	if (strcmp(sub, "add") && strcmp(sub, "del") && strcmp(sub, "set") && strcmp(sub, "show") &&
	    strcmp(sub, "clear"))
		return fail("policy needs add, del, set, show or clear (try usmc-kernel --help)");
	if (usmc_kernel_check_root(why, sizeof(why)))
		return fail(why);
	/* The smc module brings the type; a first IPPROTO_SMC socket loads it. */
	usmc_kernel_check_smc(why, sizeof(why));
	if (!usmc_kernel_policy_available())
		return fail(POLICY_UNAVAILABLE);
	if (usmc_kernel_check_bpffs(why, sizeof(why)))
		return fail(why);

	if (!strcmp(sub, "clear")) {
		if (argc != 1)
			return fail("policy clear takes no arguments");
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
		if (argc != 1)
			return fail("policy show takes no arguments");
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
		if (argc != 2)
			return fail("policy set takes one FILE, or - for standard input");
		if (read_rules(argv[1], rules, &n, why, sizeof(why)))
			return fail(why);
	} else if (argc < 2) {
		return fail(!strcmp(sub, "add") ? "policy add needs a rule, such as 'tcp 10.0.0.0/8'"
						: "policy del needs a rule or its number");
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
			char *end;
			long num = strtol(argv[i], &end, 10);
			int found = -1;

			if (*argv[i] && !*end) {
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
	print_policy(policy, c[C_ROOT].rc == 0);
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
	char *end;
	long pid;

	errno = 0;
	pid = strtol(arg, &end, 10);
	if (errno || *end || end == arg || pid <= 0 || pid >= PID_MAX_LIMIT) {
		snprintf(why, len, "--pid %s: not a process id", arg);
		return -1;
	}
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

static bool is_selector(const char *opt)
{
	return !strcmp(opt, "--cgroup") || !strcmp(opt, "--pid") || !strcmp(opt, "--netns") ||
	       !strcmp(opt, "--comm");
}

static int parse_request(int argc, char **argv, bool enable, struct request *r, char *why,
			 size_t len)
{
	memset(r, 0, sizeof(*r));
	for (int i = 0; i < argc; i++) {
		if (!enable && !strcmp(argv[i], "--all")) {
			r->all = true;
		} else if (is_selector(argv[i])) {
			if (i + 1 == argc) {
				snprintf(why, len, "%s needs a value (try usmc-kernel --help)", argv[i]);
				return -1;
			}
			if (r->count == MAX_SELECTORS) {
				snprintf(why, len, "more than %d selectors", MAX_SELECTORS);
				return -1;
			}
			r->cgroup |= !strcmp(argv[i], "--cgroup");
			r->opt[r->count] = argv[i];
			r->arg[r->count++] = argv[++i];
		} else {
			snprintf(why, len, "unexpected %s (try usmc-kernel --help)", argv[i]);
			return -1;
		}
	}
	if (r->all && r->count) {
		snprintf(why, len, "disable --all takes no selectors");
		return -1;
	}
	if (!r->all && !r->count) {
		snprintf(why, len, "%s needs --cgroup, --pid, --netns or --comm%s",
			 enable ? "enable" : "disable", enable ? "" : ", or --all");
		return -1;
	}
	return 0;
}

static int cmd_enable(int argc, char **argv)
{
	char why[USMC_KWHY_LEN];
	struct request r;
	struct usmc_kernel *k;
	unsigned int needs = USMC_KNEED_PIN;

	if (parse_request(argc, argv, true, &r, why, sizeof(why)))
		return fail(why);
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
	int rc = 0;

	if (parse_request(argc, argv, false, &r, why, sizeof(why)) ||
	    usmc_kernel_check_root(why, sizeof(why)))
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

int main(int argc, char **argv)
{
	int verbose = 0, i = 1;

	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose"))
			verbose++;
		else if (!strcmp(argv[i], "-vv"))
			verbose += 2;
		else if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "usmc-kernel: unknown option %s (try usmc-kernel --help)\n",
				argv[i]);
			return 1;
		}
	}
	usmc_kernel_verbose(verbose);
	if (i >= argc) {
		usage(stderr);
		return 1;
	}
	if (!strcmp(argv[i], "status")) {
		if (i + 1 < argc && !strcmp(argv[i + 1], "--json"))
			json = true;
		else if (i + 1 < argc)
			return fail("status takes no arguments but --json");
		return cmd_status();
	}
	if (!strcmp(argv[i], "enable"))
		return cmd_enable(argc - i - 1, argv + i + 1);
	if (!strcmp(argv[i], "disable"))
		return cmd_disable(argc - i - 1, argv + i + 1);
	if (!strcmp(argv[i], "policy")) {
		/* --json may follow, as after status. */
		if (argc - i >= 3 && !strcmp(argv[argc - 1], "--json")) {
			json = true;
			argc--;
		}
		return cmd_policy(argc - i - 1, argv + i + 1);
	}
	fprintf(stderr, "usmc-kernel: unknown command %s (try usmc-kernel --help)\n", argv[i]);
	return 1;
}
