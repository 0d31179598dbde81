// SPDX-License-Identifier: MIT
/*
 * The loader of usmc_policy.bpf.c: per-connection policy through the
 * kernel's smc_hs_ctrl struct_ops (Linux 6.19+).
 *
 * The kernel refuses to attach smc_hs_ctrl through a BPF link; the
 * struct_ops is registered by updating its map, and the kernel keeps it
 * registered (and the map alive) until the map's entry is deleted.  So
 * the struct_ops map is pinned, not a link, next to the rule table:
 *
 *     USMC_KPIN_DIR/policy_rules   the rules, usmc_kprule by index
 *     USMC_KPIN_DIR/policy_count   how many of them are in use
 *     USMC_KPIN_DIR/policy_stats   decisions taken (per CPU)
 *     USMC_KPIN_DIR/policy_ops     the struct_ops map, pinned last
 *
 * Registered, it is still unused until net.smc.hs_ctrl of a network
 * namespace names it; it is written for the namespace the caller runs in.
 * The struct_ops sets SMC_HS_CTRL_FLAG_INHERITABLE, so namespaces created
 * afterwards inherit the choice of the initial one.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "usmc_kernel.h"
#include "usmc_kernel_check.h"
#include "usmc_kernel_maps.h"
#include "usmc_policy.skel.h"

#define BPFFS "/sys/fs/bpf"
#define HS_CTRL_SYSCTL "/proc/sys/net/smc/hs_ctrl"
#define PIN_RULES "policy_rules"
#define PIN_COUNT "policy_count"
#define PIN_STATS "policy_stats"
#define PIN_OPS "policy_ops"

static void pin_path(char *path, size_t size, const char *name)
{
	snprintf(path, size, "%s/%s", USMC_KPIN_DIR, name);
}

bool usmc_kpolicy_loaded(void)
{
	char path[128];

	pin_path(path, sizeof(path), PIN_OPS);
	return access(path, F_OK) == 0;
}

/* The same lock as usmc_kernel.c's pins: one writer at a time. */
static int lock_pins(char *why, size_t len)
{
	int fd = open(BPFFS, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || flock(fd, LOCK_EX) < 0) {
		say(why, len, "cannot lock %s: %s", BPFFS, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Writes net.smc.hs_ctrl of the caller's network namespace; "" clears it. */
static int select_ctrl(const char *name, char *why, size_t len)
{
	int fd = open(HS_CTRL_SYSCTL, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0) {
		say(why, len, "cannot open %s: %s", HS_CTRL_SYSCTL, strerror(errno));
		return -1;
	}
	/* A lone newline clears it: an empty write would not reach the kernel. */
	n = *name ? write(fd, name, strlen(name)) : write(fd, "\n", 1);
	if (n < 0) {
		say(why, len, "cannot write '%s' to %s: %s", name, HS_CTRL_SYSCTL, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* What net.smc.hs_ctrl names in the caller's namespace, "" for nothing. */
int usmc_kpolicy_selected(char *name, size_t size)
{
	FILE *f = fopen(HS_CTRL_SYSCTL, "re");

	if (!size)
		return -1;
	name[0] = '\0';
	if (!f)
		return -1;
	if (!fgets(name, (int)size, f))
		name[0] = '\0';
	fclose(f);
	name[strcspn(name, "\n")] = '\0';
	return 0;
}

/*
 * Unselects and unregisters the struct_ops, then removes the pins.  The
 * sysctl goes first: a namespace that still names it holds a reference
 * and would go on calling the programs after the unregistration.
 */
static int remove_policy(char *why, size_t len)
{
	static const char *const pins[] = { PIN_OPS, PIN_RULES, PIN_COUNT, PIN_STATS };
	char path[128], selected[64];
	uint32_t zero = 0;
	int fd;

	if (usmc_kpolicy_selected(selected, sizeof(selected)) == 0 &&
	    !strcmp(selected, USMC_KPOLICY_NAME) && select_ctrl("", why, len))
		return -1;
	pin_path(path, sizeof(path), PIN_OPS);
	fd = bpf_obj_get(path);
	if (fd >= 0) {
		/* ENOENT: not registered; EINPROGRESS: being unregistered already. */
		if (bpf_map_delete_elem(fd, &zero) && errno != ENOENT && errno != EINPROGRESS) {
			say(why, len, "cannot unregister the smc_hs_ctrl '%s': %s",
			    USMC_KPOLICY_NAME, strerror(errno));
			close(fd);
			return -1;
		}
		close(fd);
	}
	for (size_t i = 0; i < sizeof(pins) / sizeof(pins[0]); i++) {
		pin_path(path, sizeof(path), pins[i]);
		if (unlink(path) && errno != ENOENT) {
			say(why, len, "cannot remove %s: %s", path, strerror(errno));
			return -1;
		}
	}
	/* The directory stays while the scope program's pins are in it. */
	if (rmdir(USMC_KPIN_DIR) && errno != ENOENT && errno != ENOTEMPTY) {
		say(why, len, "cannot remove %s: %s", USMC_KPIN_DIR, strerror(errno));
		return -1;
	}
	return 0;
}

static int pin_map(struct bpf_map *map, const char *name, char *why, size_t len)
{
	char path[128];
	int err;

	pin_path(path, sizeof(path), name);
	err = bpf_map__pin(map, path);
	if (err) {
		say(why, len, "cannot pin %s: %s", path, strerror(-err));
		return -1;
	}
	return 0;
}

/* Loads, registers and pins the struct_ops with an empty rule table. */
static int create_policy(char *why, size_t len)
{
	struct usmc_policy_bpf *skel;
	struct bpf_link *link;
	int err;

	if (remove_policy(why, len))
		return -1;
	skel = usmc_policy_bpf__open();
	if (!skel) {
		say(why, len, "cannot open the policy BPF object: %s", strerror(errno));
		return -1;
	}
	err = usmc_policy_bpf__load(skel);
	if (err) {
		say(why, len, "the kernel refused the smc_hs_ctrl program: %s (usmc-kernel -v shows why)",
		    strerror(-err));
		goto fail;
	}
	if (mkdir(USMC_KPIN_DIR, 0700) && errno != EEXIST) {
		say(why, len, "cannot create %s: %s", USMC_KPIN_DIR, strerror(errno));
		goto fail;
	}
	if (pin_map(skel->maps.usmc_prules, PIN_RULES, why, len) ||
	    pin_map(skel->maps.usmc_pcount, PIN_COUNT, why, len) ||
	    pin_map(skel->maps.usmc_pstats, PIN_STATS, why, len))
		goto fail_pins;
	link = bpf_map__attach_struct_ops(skel->maps.usmc_hs);
	if (!link) {
		say(why, len, "cannot register the smc_hs_ctrl '%s': %s", USMC_KPOLICY_NAME,
		    strerror(errno));
		goto fail_pins;
	}
	/*
	 * Without a kernel link, libbpf's "link" would unregister when
	 * destroyed: the registration is to outlive this process.
	 */
	bpf_link__disconnect(link);
	bpf_link__destroy(link);
	if (pin_map(skel->maps.usmc_hs, PIN_OPS, why, len)) {
		bpf_map_delete_elem(bpf_map__fd(skel->maps.usmc_hs), &(uint32_t){ 0 });
		goto fail_pins;
	}
	usmc_policy_bpf__destroy(skel);
	return 0;
fail_pins:
	remove_policy(NULL, 0);
fail:
	usmc_policy_bpf__destroy(skel);
	return -1;
}

static int open_pin(const char *name, char *why, size_t len)
{
	char path[128];
	int fd;

	pin_path(path, sizeof(path), name);
	fd = bpf_obj_get(path);
	if (fd < 0)
		say(why, len, "cannot open %s: %s", path, strerror(errno));
	return fd;
}

int usmc_kpolicy_get(struct usmc_kprule *rules, int max, char *why, size_t len)
{
	uint32_t zero = 0, count = 0;
	int rules_fd, count_fd, n = -1;

	if (!usmc_kpolicy_loaded())
		return 0;
	rules_fd = open_pin(PIN_RULES, why, len);
	count_fd = rules_fd < 0 ? -1 : open_pin(PIN_COUNT, why, len);
	if (count_fd < 0)
		goto out;
	if (bpf_map_lookup_elem(count_fd, &zero, &count)) {
		say(why, len, "cannot read the policy's rule count: %s", strerror(errno));
		goto out;
	}
	if (count > (uint32_t)max)
		count = (uint32_t)max;
	for (n = 0; n < (int)count; n++) {
		uint32_t i = (uint32_t)n;

		if (bpf_map_lookup_elem(rules_fd, &i, &rules[n])) {
			say(why, len, "cannot read policy rule %d: %s", n, strerror(errno));
			n = -1;
			break;
		}
	}
out:
	if (rules_fd >= 0)
		close(rules_fd);
	if (count_fd >= 0)
		close(count_fd);
	return n;
}

/*
 * The count drops to the shorter of the two tables before the rules are
 * rewritten and rises after, so a connection in between sees a prefix of
 * either the old or the new table, never a rule half written.
 */
static int write_rules(const struct usmc_kprule *rules, int n, char *why, size_t len)
{
	uint32_t zero = 0, old = 0, count;
	int rules_fd = open_pin(PIN_RULES, why, len);
	int count_fd = rules_fd < 0 ? -1 : open_pin(PIN_COUNT, why, len);
	int rc = -1;

	if (count_fd < 0)
		goto out;
	bpf_map_lookup_elem(count_fd, &zero, &old);
	count = 0;
	if (bpf_map_update_elem(count_fd, &zero, &count, BPF_ANY))
		goto fail;
	for (int i = 0; i < n; i++) {
		uint32_t key = (uint32_t)i;

		if (bpf_map_update_elem(rules_fd, &key, &rules[i], BPF_ANY))
			goto fail;
	}
	count = (uint32_t)n;
	if (bpf_map_update_elem(count_fd, &zero, &count, BPF_ANY))
		goto fail;
	rc = 0;
	goto out;
fail:
	say(why, len, "cannot write the policy rules: %s", strerror(errno));
out:
	if (rules_fd >= 0)
		close(rules_fd);
	if (count_fd >= 0)
		close(count_fd);
	return rc;
}

int usmc_kpolicy_set(const struct usmc_kprule *rules, int n, char *why, size_t len)
{
	char selected[64];
	int lock_fd, rc = -1;

	if (n < 0 || n > USMC_KPOLICY_RULES) {
		say(why, len, "at most %d rules", USMC_KPOLICY_RULES);
		return -1;
	}
	lock_fd = lock_pins(why, len);
	if (lock_fd < 0)
		return -1;
	if (!usmc_kpolicy_loaded() && create_policy(why, len))
		goto out;
	if (write_rules(rules, n, why, len))
		goto out;
	/* Selected last, so that the namespace switches to a complete table. */
	if (usmc_kpolicy_selected(selected, sizeof(selected)) == 0 &&
	    !strcmp(selected, USMC_KPOLICY_NAME))
		rc = 0;
	else
		rc = select_ctrl(USMC_KPOLICY_NAME, why, len);
out:
	close(lock_fd);
	return rc;
}

int usmc_kpolicy_clear(char *why, size_t len)
{
	int lock_fd, rc;

	if (!usmc_kpolicy_loaded())
		return 1;
	lock_fd = lock_pins(why, len);
	if (lock_fd < 0)
		return -1;
	rc = usmc_kpolicy_loaded() ? remove_policy(why, len) : 1;
	close(lock_fd);
	return rc;
}

int usmc_kpolicy_stats(uint64_t *smc, uint64_t *tcp)
{
	int ncpu = libbpf_num_possible_cpus(), fd;
	uint64_t *values;

	*smc = *tcp = 0;
	if (ncpu <= 0)
		return -1;
	fd = open_pin(PIN_STATS, NULL, 0);
	if (fd < 0)
		return -1;
	values = calloc((size_t)ncpu, sizeof(*values));
	for (uint32_t key = 0; values && key < USMC_KPOLICY_COUNTERS; key++) {
		if (bpf_map_lookup_elem(fd, &key, values))
			continue;
		for (int c = 0; c < ncpu; c++)
			*(key == USMC_KPOLICY_SMC ? smc : tcp) += values[c];
	}
	free(values);
	close(fd);
	return 0;
}
