// SPDX-License-Identifier: MIT
/*
 * Every way libc has to run a new image, each handing it a connection in
 * shared memory as exec_self's execl does (diff_exec.c): execv, execvp,
 * execvpe, execle, execlp, fexecve, execveat and posix_spawnp.  glibc's
 * own ones end in its internal execve, which no preload sees, so each is
 * a separate entry point that must hand the connection over.  The calls
 * that search PATH find this program by its bare name, in a PATH of its
 * directory alone; execveat finds it relative to a directory descriptor.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "diff.h"
#include "diff_exec.h"

#define SELF "/proc/self/exe"

enum exec_way { WAY_V, WAY_VP, WAY_VPE, WAY_LE, WAY_LP, WAY_FEXECVE, WAY_EXECVEAT };

/* This program's directory and file name, from /proc/self/exe. */
static char self_dir[PATH_MAX];
static const char *self_name;

/* Finds this program's directory and name, and makes PATH that directory alone. */
static void search_self(void)
{
	ssize_t n = readlink(SELF, self_dir, sizeof(self_dir) - 1);
	char *slash;

	if (n <= 0)
		fatal("readlink " SELF);
	self_dir[n] = '\0';
	slash = strrchr(self_dir, '/');
	if (!slash)
		fatal("no directory in %s", self_dir);
	*slash = '\0';
	self_name = slash + 1;
	/* Only this directory: a search that finds the name finds this program. */
	if (setenv("PATH", self_dir, 1))
		fatal("setenv PATH");
}

/* Runs this program again as step on fd, the way asked; returns only to fail. */
static void exec_by_way(struct end *e, enum exec_way way, const char *step, int fd)
{
	struct step_argv a;
	char **v = a.argv;
	int file;

	step_argv(&a, e, step, fd);
	search_self();
	switch (way) {
	case WAY_V:
		execv(SELF, v);
		break;
	case WAY_VP:
		execvp(self_name, v);
		break;
	case WAY_VPE:
		execvpe(self_name, v, environ);
		break;
	case WAY_LE:
		execle(SELF, v[0], v[1], v[2], v[3], v[4], v[5], v[6], (char *)NULL, environ);
		break;
	case WAY_LP:
		execlp(self_name, v[0], v[1], v[2], v[3], v[4], v[5], v[6], (char *)NULL);
		break;
	case WAY_FEXECVE:
		file = open(SELF, O_RDONLY | O_CLOEXEC);
		if (file < 0)
			fatal("open " SELF);
		fexecve(file, v, environ);
		break;
	case WAY_EXECVEAT:
		file = open(self_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (file < 0)
			fatal("open %s", self_dir);
		execveat(file, self_name, v, environ, 0);
		break;
	}
	fatal("exec, way %d", (int)way);
}

/* As exec_self's server: 64 KiB read, then the rest is the new image's. */
static void exec_way_server(struct end *e, enum exec_way way)
{
	recv_pattern(e->fd, 40, 0, 65536, "before exec");
	exec_by_way(e, way, "exec_self_after", e->fd);
}

#define EXEC_WAY_SERVER(way, name)                       \
	static void exec_##name##_server(struct end *e) \
	{                                                \
		exec_way_server(e, way);                 \
	}
EXEC_WAY_SERVER(WAY_V, v)
EXEC_WAY_SERVER(WAY_VP, vp)
EXEC_WAY_SERVER(WAY_VPE, vpe)
EXEC_WAY_SERVER(WAY_LE, le)
EXEC_WAY_SERVER(WAY_LP, lp)
EXEC_WAY_SERVER(WAY_FEXECVE, fexecve)
EXEC_WAY_SERVER(WAY_EXECVEAT, execveat)

/* As exec_spawn's server, the program found by posix_spawnp in PATH. */
static void exec_spawnp_server(struct end *e)
{
	pid_t pid;

	search_self();
	pid = spawn_step(e, "service", e->fd, posix_spawnp, self_name);
	close(e->fd);
	e->fd = -1;
	reap(pid);
}

const struct diff_case exec_way_cases[] = {
	{ "exec_v", exec_self_client, exec_v_server, .conns = 1 },
	{ "exec_vp", exec_self_client, exec_vp_server, .conns = 1 },
	{ "exec_vpe", exec_self_client, exec_vpe_server, .conns = 1 },
	{ "exec_le", exec_self_client, exec_le_server, .conns = 1 },
	{ "exec_lp", exec_self_client, exec_lp_server, .conns = 1 },
	{ "exec_fexecve", exec_self_client, exec_fexecve_server, .conns = 1 },
	{ "exec_execveat", exec_self_client, exec_execveat_server, .conns = 1 },
	{ "exec_spawnp", service_client, exec_spawnp_server, .conns = 1 },
	{ NULL },
};
