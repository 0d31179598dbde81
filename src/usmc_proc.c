// SPDX-License-Identifier: MIT
/*
 * What /proc tells of other processes: which of them hold a socket.
 *
 * After fork() parent and child hold one kernel socket, and the kernel
 * closes it with its last descriptor.  A shared-memory connection follows:
 * a close publishes the end to the peer only where no other process of the
 * fork tree still holds the socket.  These walks happen only for
 * connections that went through a fork.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "usmc_proc.h"

/* Bounds the walk of a fork tree: a server with more children is rare. */
#define TREE_MAX 4096

bool proc_for_each_fd(pid_t pid, proc_fd_fn fn, void *arg)
{
	char dir[64], path[400], link[256];
	struct dirent *de;
	bool stopped = false;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	d = opendir(dir);
	if (!d)
		return false;
	while (!stopped && (de = readdir(d))) {
		ssize_t n;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = 0;
		stopped = fn(atoi(de->d_name), link, path, arg);
	}
	closedir(d);
	return stopped;
}

static bool is_the_socket(int fd, const char *link, const char *path, void *arg)
{
	(void)fd;
	(void)path;
	return !strcmp(link, arg);
}

bool proc_holds_socket(pid_t pid, unsigned long inode)
{
	char want[32];

	snprintf(want, sizeof(want), "socket:[%lu]", inode);
	return proc_for_each_fd(pid, is_the_socket, want);
}

/* Appends the children of every thread of pid to the list. */
static void add_children(pid_t pid, pid_t *list, int *n)
{
	char dir[64], path[400];
	struct dirent *de;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
	d = opendir(dir);
	while (d && (de = readdir(d))) {
		FILE *f;
		int child;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/children", dir, de->d_name);
		f = fopen(path, "re");
		while (f && *n < TREE_MAX && fscanf(f, "%d", &child) == 1)
			list[(*n)++] = child;
		if (f)
			fclose(f);
	}
	if (d)
		closedir(d);
}

bool proc_tree_holds_socket(pid_t root, unsigned long inode)
{
	pid_t self = getpid(), *list = malloc(TREE_MAX * sizeof(*list));
	bool found = false;
	int n = 0;

	/* Our own subtree too: the root may have exited, its children moved away. */
	if (!list)
		return true; /* cannot tell: keep the connection open for the others */
	list[n++] = root;
	if (root != self)
		list[n++] = self;
	for (int i = 0; i < n && !found; i++) {
		bool seen = false;

		for (int j = 0; j < i && !seen; j++)
			seen = list[j] == list[i];
		if (seen)
			continue;
		found = list[i] != self && proc_holds_socket(list[i], inode);
		add_children(list[i], list, &n);
	}
	free(list);
	return found;
}
