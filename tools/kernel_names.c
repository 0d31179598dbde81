// SPDX-License-Identifier: MIT
/*
 * kernel_names.c - what usmc-kernel status calls the entries of the scope
 * maps, which hold only numbers: a cgroup's directory, a network
 * namespace's ip netns name, a process's command name.
 */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernel_names.h"
#include "usmc_kernel.h"

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
const char *cgroup_path(uint64_t id)
{
	char mount[256];

	found_path[0] = '\0';
	wanted_ino = id;
	if (usmc_kernel_cgroup2_mount(mount, sizeof(mount)))
		nftw(mount, match_ino, 16, FTW_PHYS | FTW_MOUNT);
	return found_path[0] ? found_path : NULL;
}

/* The ip netns name of a namespace inode, if it has one. */
const char *netns_name(uint64_t ino)
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

const char *pid_comm(const struct usmc_kentry *e, char *comm, size_t size)
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
