// SPDX-License-Identifier: MIT
/*
 * The loader of usmc_kernel.bpf.c, on top of its bpftool skeleton.
 *
 * Pinned layout, below USMC_KPIN_DIR: one file per scope map (cgroups,
 * pids, netns, comms), the counter map (counts) and the link, pinned last:
 * the program counts as pinned only when the link is there.  The
 * per-connection policy (usmc_kernel_policy.c) pins its maps in the same
 * directory, under the same lock.  What the machine has, and the reason
 * lines, are usmc_kernel_check.c's.
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
#include "usmc_kernel.skel.h"
#include "usmc_kernel_check.h"
#include "usmc_kernel_maps.h"

#define BPFFS "/sys/fs/bpf"

struct usmc_kernel {
	struct usmc_kernel_bpf *skel;	/* NULL when the maps come from the pins */
	int fd[USMC_KSCOPE_COUNT];
	int counts_fd;
	int lock_fd;			/* held while the pins are in use */
};

static const char *const pin_names[USMC_KSCOPE_COUNT] = {
	[USMC_KSCOPE_CGROUP] = "cgroups",
	[USMC_KSCOPE_PID] = "pids",
	[USMC_KSCOPE_NETNS] = "netns",
	[USMC_KSCOPE_COMM] = "comms",
};
#define PIN_COUNTS "counts"
#define PIN_LINK "link"

static bool tracing_refused(int err)
{
	err = err < 0 ? -err : err;
	return err == EPERM || err == EACCES || err == EINVAL || err == ENOTSUPP_KERNEL ||
	       err == EOPNOTSUPP;
}

static void say_refused(char *why, size_t len, const char *step, int err)
{
	say(why, len, "the kernel refuses BPF fmod_ret programs on update_socket_protocol "
	    "(%s: %s), even as root: lockdown, a security module or no fmod_ret support",
	    step, err_str(err));
}

/* Opened, loaded and attached, or NULL with the reason. */
static struct usmc_kernel_bpf *load_skel(char *why, size_t len)
{
	struct usmc_kernel_bpf *skel;
	int err;

	quiet_libbpf();
	skel = usmc_kernel_bpf__open();
	if (!skel) {
		say(why, len, "cannot open the BPF program: %s", err_str(errno));
		return NULL;
	}
	err = usmc_kernel_bpf__load(skel);
	if (err) {
		if (tracing_refused(err))
			say_refused(why, len, "load", err);
		else
			say(why, len, "cannot load the BPF program: %s (-v shows libbpf's "
			    "messages)", err_str(err));
		usmc_kernel_bpf__destroy(skel);
		return NULL;
	}
	err = usmc_kernel_bpf__attach(skel);
	if (err) {
		if (tracing_refused(err))
			say_refused(why, len, "attach", err);
		else
			say(why, len, "cannot attach the BPF program: %s", err_str(err));
		usmc_kernel_bpf__destroy(skel);
		return NULL;
	}
	return skel;
}

int usmc_kernel_check_attach(char *why, size_t len)
{
	struct usmc_kernel_bpf *skel = load_skel(why, len);

	if (!skel)
		return -1;
	usmc_kernel_bpf__destroy(skel);
	return 0;
}

/* ---- loaded and pinned programs ---- */

static struct usmc_kernel *handle_new(void)
{
	struct usmc_kernel *k = calloc(1, sizeof(*k));

	if (!k)
		return NULL;
	for (int i = 0; i < USMC_KSCOPE_COUNT; i++)
		k->fd[i] = -1;
	k->counts_fd = -1;
	k->lock_fd = -1;
	return k;
}

static void handle_from_skel(struct usmc_kernel *k, struct usmc_kernel_bpf *skel)
{
	k->skel = skel;
	k->fd[USMC_KSCOPE_CGROUP] = bpf_map__fd(skel->maps.usmc_cgroups);
	k->fd[USMC_KSCOPE_PID] = bpf_map__fd(skel->maps.usmc_pids);
	k->fd[USMC_KSCOPE_NETNS] = bpf_map__fd(skel->maps.usmc_netns);
	k->fd[USMC_KSCOPE_COMM] = bpf_map__fd(skel->maps.usmc_comms);
	k->counts_fd = bpf_map__fd(skel->maps.usmc_counts);
}

static void close_pins(struct usmc_kernel *k)
{
	for (int i = 0; i < USMC_KSCOPE_COUNT; i++) {
		if (k->fd[i] >= 0)
			close(k->fd[i]);
		k->fd[i] = -1;
	}
	if (k->counts_fd >= 0)
		close(k->counts_fd);
	k->counts_fd = -1;
}

void usmc_kernel_close(struct usmc_kernel *k)
{
	if (!k)
		return;
	if (k->skel)
		usmc_kernel_bpf__destroy(k->skel);
	else
		close_pins(k);
	if (k->lock_fd >= 0)
		close(k->lock_fd);
	free(k);
}

struct usmc_kernel *usmc_kernel_load(char *why, size_t len)
{
	struct usmc_kernel *k = handle_new();
	struct usmc_kernel_bpf *skel;

	if (!k) {
		say(why, len, "out of memory");
		return NULL;
	}
	skel = load_skel(why, len);
	if (!skel) {
		free(k);
		return NULL;
	}
	handle_from_skel(k, skel);
	return k;
}

static void pin_path(char *path, size_t size, const char *name)
{
	snprintf(path, size, "%s/%s", USMC_KPIN_DIR, name);
}

bool usmc_kernel_pinned(void)
{
	char path[128];

	pin_path(path, sizeof(path), PIN_LINK);
	return access(path, F_OK) == 0;
}

/* Two usmc-kernel at once must not both create, nor one remove what the other fills. */
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

static int remove_pins(char *why, size_t len)
{
	char path[128];

	/* The link first: from then on nothing is attached. */
	pin_path(path, sizeof(path), PIN_LINK);
	if (unlink(path) && errno != ENOENT)
		goto fail;
	for (int i = 0; i < USMC_KSCOPE_COUNT; i++) {
		pin_path(path, sizeof(path), pin_names[i]);
		if (unlink(path) && errno != ENOENT)
			goto fail;
	}
	pin_path(path, sizeof(path), PIN_COUNTS);
	if (unlink(path) && errno != ENOENT)
		goto fail;
	/* The per-connection policy's pins, if any, keep the directory. */
	snprintf(path, sizeof(path), "%s", USMC_KPIN_DIR);
	if (rmdir(path) && errno != ENOENT && errno != ENOTEMPTY)
		goto fail;
	return 0;
fail:
	say(why, len, "cannot remove %s: %s", path, strerror(errno));
	return -1;
}

static int open_pins(struct usmc_kernel *k)
{
	char path[128];

	for (int i = 0; i < USMC_KSCOPE_COUNT; i++) {
		pin_path(path, sizeof(path), pin_names[i]);
		k->fd[i] = bpf_obj_get(path);
		if (k->fd[i] < 0)
			return -1;
	}
	pin_path(path, sizeof(path), PIN_COUNTS);
	k->counts_fd = bpf_obj_get(path);
	return k->counts_fd < 0 ? -1 : 0;
}

static int pin_all(struct usmc_kernel_bpf *skel, char *why, size_t len)
{
	struct bpf_map *maps[USMC_KSCOPE_COUNT] = {
		[USMC_KSCOPE_CGROUP] = skel->maps.usmc_cgroups,
		[USMC_KSCOPE_PID] = skel->maps.usmc_pids,
		[USMC_KSCOPE_NETNS] = skel->maps.usmc_netns,
		[USMC_KSCOPE_COMM] = skel->maps.usmc_comms,
	};
	char path[128];
	int err;

	if (mkdir(USMC_KPIN_DIR, 0700) && errno != EEXIST) {
		say(why, len, "cannot create %s: %s", USMC_KPIN_DIR, strerror(errno));
		return -1;
	}
	for (int i = 0; i < USMC_KSCOPE_COUNT; i++) {
		pin_path(path, sizeof(path), pin_names[i]);
		if ((err = bpf_map__pin(maps[i], path)))
			goto fail;
	}
	pin_path(path, sizeof(path), PIN_COUNTS);
	if ((err = bpf_map__pin(skel->maps.usmc_counts, path)))
		goto fail;
	pin_path(path, sizeof(path), PIN_LINK);
	if ((err = bpf_link__pin(skel->links.usmc_socket_protocol, path)))
		goto fail;
	return 0;
fail:
	say(why, len, "cannot pin %s: %s", path, err_str(err));
	remove_pins(NULL, 0);
	return -1;
}

/* Left over from an interrupted run: start again rather than guess. */
static int create_pins(struct usmc_kernel *k, char *why, size_t len)
{
	struct usmc_kernel_bpf *skel;

	if (remove_pins(why, len))
		return -1;
	skel = load_skel(why, len);
	if (!skel)
		return -1;
	if (pin_all(skel, why, len)) {
		usmc_kernel_bpf__destroy(skel);
		return -1;
	}
	handle_from_skel(k, skel);
	return 0;
}

struct usmc_kernel *usmc_kernel_open_pinned(bool create, char *why, size_t len)
{
	struct usmc_kernel *k;

	quiet_libbpf();
	if (usmc_kernel_check_bpffs(why, len))
		return NULL;
	k = handle_new();
	if (!k) {
		say(why, len, "out of memory");
		return NULL;
	}
	k->lock_fd = lock_pins(why, len);
	if (k->lock_fd < 0)
		goto fail;
	if (usmc_kernel_pinned() && open_pins(k) == 0)
		return k;
	if (!create) {
		say(why, len, "kernel SMC is not enabled (nothing pinned at %s)", USMC_KPIN_DIR);
		goto fail;
	}
	close_pins(k);
	if (create_pins(k, why, len) == 0)
		return k;
fail:
	usmc_kernel_close(k);
	return NULL;
}

static uint32_t pinned_prog_id(void)
{
	struct bpf_link_info info;
	uint32_t info_len = sizeof(info);
	char path[128];
	int fd;

	pin_path(path, sizeof(path), PIN_LINK);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return 0;
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &info_len))
		info.prog_id = 0;
	close(fd);
	return info.prog_id;
}

/*
 * bpffs drops the link's last reference after an RCU grace period, from a
 * work queue: wait for the program to go, which follows the detach, so
 * that no socket made after disable returns is switched.
 */
static void wait_detached(uint32_t prog_id)
{
	for (int i = 0; i < 300; i++) {
		int fd = bpf_prog_get_fd_by_id(prog_id);

		if (fd < 0)
			return;
		close(fd);
		usleep(10000);
	}
}

int usmc_kernel_unpin(char *why, size_t len)
{
	uint32_t prog_id;
	int lock_fd, rc;

	if (usmc_kernel_check_bpffs(why, len))
		return -1;
	lock_fd = lock_pins(why, len);
	if (lock_fd < 0)
		return -1;
	prog_id = pinned_prog_id();
	rc = access(USMC_KPIN_DIR, F_OK) == 0 ? remove_pins(why, len) : 1;
	if (rc == 0 && prog_id)
		wait_detached(prog_id);
	close(lock_fd);
	return rc;
}

/* ---- scope entries ---- */

struct kv {
	union {
		uint64_t id64;
		uint32_t id32;
		char comm[USMC_KCOMM_LEN];
	} key;
	union {
		uint32_t on;
		struct usmc_kpid pid;
	} value;
};

static void entry_to_kv(const struct usmc_kentry *e, struct kv *kv)
{
	memset(kv, 0, sizeof(*kv));
	kv->value.on = 1;
	switch (e->scope) {
	case USMC_KSCOPE_CGROUP:
		kv->key.id64 = e->id;
		break;
	case USMC_KSCOPE_PID:
		kv->key.id32 = (uint32_t)e->id;
		kv->value.pid.start_ticks = e->start_ticks;
		break;
	case USMC_KSCOPE_NETNS:
		kv->key.id32 = (uint32_t)e->id;
		break;
	default:
		memcpy(kv->key.comm, e->comm, sizeof(kv->key.comm));
		break;
	}
}

static void kv_to_entry(enum usmc_kscope scope, const struct kv *kv, struct usmc_kentry *e)
{
	memset(e, 0, sizeof(*e));
	e->scope = scope;
	if (scope == USMC_KSCOPE_CGROUP)
		e->id = kv->key.id64;
	else if (scope == USMC_KSCOPE_COMM)
		memcpy(e->comm, kv->key.comm, sizeof(e->comm));
	else
		e->id = kv->key.id32;
	if (scope == USMC_KSCOPE_PID)
		e->start_ticks = kv->value.pid.start_ticks;
}

int usmc_kernel_add(struct usmc_kernel *k, const struct usmc_kentry *e, char *why, size_t len)
{
	struct kv kv;

	entry_to_kv(e, &kv);
	if (bpf_map_update_elem(k->fd[e->scope], &kv.key, &kv.value, BPF_ANY) == 0)
		return 0;
	if (errno == E2BIG)
		say(why, len, "the %s map is full (%d entries)", pin_names[e->scope],
		    USMC_KMAP_ENTRIES);
	else
		say(why, len, "cannot add to the %s map: %s", pin_names[e->scope], strerror(errno));
	return -1;
}

int usmc_kernel_del(struct usmc_kernel *k, const struct usmc_kentry *e, char *why, size_t len)
{
	struct kv kv;

	entry_to_kv(e, &kv);
	if (bpf_map_delete_elem(k->fd[e->scope], &kv.key) == 0)
		return 1;
	if (errno == ENOENT)
		return 0;
	say(why, len, "cannot remove from the %s map: %s", pin_names[e->scope], strerror(errno));
	return -1;
}

static int list_map(struct usmc_kernel *k, enum usmc_kscope scope,
		    int (*fn)(const struct usmc_kentry *e, void *arg), void *arg)
{
	struct kv kv, next;
	struct usmc_kentry e;
	void *prev = NULL;
	int rc;

	while (bpf_map_get_next_key(k->fd[scope], prev, &next.key) == 0) {
		kv.key = next.key;
		prev = &kv.key;
		/* Removed between the two calls: skip it. */
		if (bpf_map_lookup_elem(k->fd[scope], &kv.key, &kv.value))
			continue;
		kv_to_entry(scope, &kv, &e);
		if ((rc = fn(&e, arg)))
			return rc;
	}
	return 0;
}

int usmc_kernel_list(struct usmc_kernel *k, int (*fn)(const struct usmc_kentry *e, void *arg),
		     void *arg)
{
	int rc;

	for (int scope = 0; scope < USMC_KSCOPE_COUNT; scope++)
		if ((rc = list_map(k, scope, fn, arg)))
			return rc;
	return 0;
}

uint64_t usmc_kernel_switched(struct usmc_kernel *k)
{
	int ncpus = libbpf_num_possible_cpus();
	uint32_t zero = 0;
	uint64_t *per_cpu, sum = 0;

	if (ncpus <= 0 || !(per_cpu = calloc(ncpus, sizeof(*per_cpu))))
		return 0;
	if (bpf_map_lookup_elem(k->counts_fd, &zero, per_cpu) == 0)
		for (int i = 0; i < ncpus; i++)
			sum += per_cpu[i];
	free(per_cpu);
	return sum;
}
