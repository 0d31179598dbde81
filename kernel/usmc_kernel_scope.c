// SPDX-License-Identifier: MIT
/*
 * Scope entries from what people name: a cgroup path, a process id, a
 * network namespace, a command name.  The keys are what the BPF program
 * reads in the kernel: cgroup ids, pids of the initial pid namespace,
 * namespace inode numbers, task names.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <mntent.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "usmc_kernel.h"
#include "usmc_kernel_maps.h"

/* The fixed inode numbers of the initial namespaces (include/linux/proc_ns.h). */
#define PROC_PID_INIT_INO 0xEFFFFFFCU
#define PROC_TIME_INIT_INO 0xEFFFFFFAU

static void say(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void say(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
}

bool usmc_kernel_cgroup2_mount(char *dir, size_t size)
{
	FILE *mounts = setmntent("/proc/self/mounts", "r");
	struct mntent *m;
	bool found = false;

	if (!mounts)
		return false;
	while (!found && (m = getmntent(mounts))) {
		if (strcmp(m->mnt_type, "cgroup2") || strlen(m->mnt_dir) >= size)
			continue;
		strcpy(dir, m->mnt_dir);
		found = true;
	}
	endmntent(mounts);
	return found;
}

static bool ns_is_initial(const char *name, unsigned long ino)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/self/ns/%s", name);
	return stat(path, &st) != 0 || st.st_ino == ino;
}

static bool is_cgroup2(const char *path)
{
	struct statfs st;

	return statfs(path, &st) == 0 && st.f_type == CGROUP2_SUPER_MAGIC;
}

/*
 * A path on the cgroup v2 file system, or a cgroup's name below its mount,
 * as /proc/PID/cgroup and systemd show it ("/system.slice/x.service").
 */
static const char *cgroup_dir(const char *path, char *full, size_t size)
{
	char mount[256];

	if (is_cgroup2(path))
		return path;
	if (!usmc_kernel_cgroup2_mount(mount, sizeof(mount)))
		return NULL;
	snprintf(full, size, "%s%s%s", mount, path[0] == '/' ? "" : "/", path);
	return is_cgroup2(full) ? full : NULL;
}

int usmc_kentry_cgroup(const char *path, struct usmc_kentry *e, char *why, size_t len)
{
	struct {
		struct file_handle fh;
		uint64_t id;
	} h = { .fh.handle_bytes = sizeof(uint64_t) };
	char full[4096];
	const char *dir = cgroup_dir(path, full, sizeof(full));
	int mount_id;

	if (!dir) {
		if (usmc_kernel_check_cgroup2(why, len) == 0)
			say(why, len, "%s is not a cgroup v2 directory, nor one below the cgroup v2 "
			    "mount", path);
		return -1;
	}
	if (name_to_handle_at(AT_FDCWD, dir, &h.fh, &mount_id, 0) < 0) {
		say(why, len, "cannot get the id of cgroup %s: %s", dir, strerror(errno));
		return -1;
	}
	memset(e, 0, sizeof(*e));
	e->scope = USMC_KSCOPE_CGROUP;
	memcpy(&e->id, h.fh.f_handle, sizeof(e->id));
	return 0;
}

uint64_t usmc_kernel_pid_start(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long start = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* The name may hold anything, even ") ": fields start after the last ')'. */
	p = strrchr(buf, ')');
	if (!p)
		return 0;
	/* After ')' come fields 3 (state) to 21; then the start time. */
	for (int field = 3; field <= 22 && p; field++)
		p = strchr(p + 1, ' ');
	if (!p || sscanf(p + 1, "%llu", &start) != 1)
		return 0;
	return start;
}

int usmc_kentry_pid(pid_t pid, struct usmc_kentry *e, char *why, size_t len)
{
	uint64_t start;

	if (!ns_is_initial("pid", PROC_PID_INIT_INO)) {
		say(why, len, "runs in a pid namespace, but the BPF program knows processes by "
		    "their pids in the initial one: run it on the host");
		return -1;
	}
	start = usmc_kernel_pid_start(pid);
	if (pid <= 1 || !start) {
		say(why, len, "no process %d", (int)pid);
		return -1;
	}
	memset(e, 0, sizeof(*e));
	e->scope = USMC_KSCOPE_PID;
	e->id = (uint64_t)pid;
	/* A time namespace shifts what /proc shows, not what the program reads. */
	e->start_ticks = ns_is_initial("time", PROC_TIME_INIT_INO) ? start : 0;
	return 0;
}

/* A pid, a path to a namespace file, or a name made by ip netns. */
int usmc_kentry_netns(const char *arg, struct usmc_kentry *e, char *why, size_t len)
{
	char path[4096];
	struct stat st;
	int fd, type;

	if (arg[0] && strspn(arg, "0123456789") == strlen(arg))
		snprintf(path, sizeof(path), "/proc/%s/ns/net", arg);
	else if (strchr(arg, '/'))
		snprintf(path, sizeof(path), "%s", arg);
	else
		snprintf(path, sizeof(path), "/run/netns/%s", arg);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		say(why, len, "network namespace %s: %s", path, strerror(errno));
		return -1;
	}
	type = ioctl(fd, NS_GET_NSTYPE);
	if (type != CLONE_NEWNET || fstat(fd, &st) < 0) {
		say(why, len, "%s is not a network namespace", path);
		close(fd);
		return -1;
	}
	close(fd);
	memset(e, 0, sizeof(*e));
	e->scope = USMC_KSCOPE_NETNS;
	e->id = st.st_ino;
	return 0;
}

int usmc_kentry_comm(const char *name, struct usmc_kentry *e, char *why, size_t len)
{
	size_t n = strlen(name);

	if (n == 0 || n >= USMC_KCOMM_LEN) {
		say(why, len, "command name '%s': the kernel keeps 1 to %d characters of it",
		    name, USMC_KCOMM_LEN - 1);
		return -1;
	}
	memset(e, 0, sizeof(*e));
	e->scope = USMC_KSCOPE_COMM;
	memcpy(e->comm, name, n);
	return 0;
}
