// SPDX-License-Identifier: MIT
/*
 * exec and posix_spawn: the new image inherits connections in shared
 * memory (see usmc_exec.h).  Before the call, usmc writes their state into
 * a memfd; the environment the new image gets names it (USMC_EXEC_FD)
 * and keeps this library preloaded, since without it the inherited
 * sockets would carry doorbells where the program expects data.  If the
 * call fails, or once the spawn is done, everything goes back as it was.
 *
 * Every exec of libc ends in execve, but inside libc, out of our reach:
 * so each entry point is taken over, and system() and popen(), which
 * spawn inside libc, too.  A program that cannot load this library
 * (usmc_preload_target.c) gets its inherited connections ended instead.
 * An exec from a vfork child runs in the parent's memory: nothing here
 * allocates, and usmc_exec_prepare hands over as for a spawn.
 */
#undef _FORTIFY_SOURCE

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <alloca.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "usmc_exec.h"
#include "usmc_exec_child.h"
#include "usmc_exec_state.h"
#include "usmc_log.h"
#include "usmc_preload.h"
#include "usmc_stats.h"

extern char **environ;

/*
 * What an exec needs, looked up once as the library starts: an exec may
 * come from a vfork child, which should take no lock of the dynamic loader
 * its parent's other threads may hold.
 */
static struct {
	const char *self; /* this library's path, as the dynamic loader found it */
	__typeof__(&execve) execve;
	__typeof__(&execvpe) execvpe;
	__typeof__(&fexecve) fexecve;
	__typeof__(&execveat) execveat;
	__typeof__(&posix_spawn) posix_spawn;
	__typeof__(&posix_spawnp) posix_spawnp;
	int (*system)(const char *);
	FILE *(*popen)(const char *, const char *);
} next;

#define LOOK_UP(name) (*(void **)&next.name = dlsym(RTLD_NEXT, #name))

__attribute__((constructor)) static void exec_look_up(void)
{
	Dl_info info;

	if (dladdr((void *)exec_look_up, &info) && info.dli_fname)
		next.self = info.dli_fname;
	LOOK_UP(execve);
	LOOK_UP(execvpe);
	LOOK_UP(fexecve);
	LOOK_UP(execveat);
	LOOK_UP(posix_spawn);
	LOOK_UP(posix_spawnp);
	LOOK_UP(system);
	LOOK_UP(popen);
}

/*
 * The environment of the new image, in storage the caller gives: on its
 * stack, since a vfork child's heap is its parent's and an exec that
 * succeeds would leave an allocation there for ever.
 */
struct exec_env {
	char **env;   /* room for the old entries and two more */
	char fd_var[32];
	char *preload_var; /* room for LD_PRELOAD's value with this library added */
	size_t preload_cap;
};

static size_t env_count(char *const envp[])
{
	size_t n = 0;

	while (envp && envp[n])
		n++;
	return n;
}

static const char *env_preload(char *const envp[])
{
	for (size_t i = 0; envp && envp[i]; i++)
		if (!strncmp(envp[i], "LD_PRELOAD=", 11))
			return envp[i] + 11;
	return NULL;
}

/*
 * Whether the new image's LD_PRELOAD names this library by a path, as
 * usmc-run puts it: the entry a secure exec's loader ignores.  (Only a
 * set-user-ID library in the standard directories, named without a slash,
 * would load there; usmc is not installed so, since it would then go into
 * every set-user-ID program a user starts with that name in LD_PRELOAD.)
 */
static bool preload_by_path(char *const envp[])
{
	const char *list = env_preload(envp), *self = next.self, *base;
	size_t len;

	if (!list || !self)
		return false;
	base = strrchr(self, '/');
	base = base ? base + 1 : self;
	len = strlen(base);
	while (*list) {
		size_t n = strcspn(list, ": ");
		const char *slash = memrchr(list, '/', n);

		if (slash && (size_t)(list + n - slash - 1) == len && !memcmp(slash + 1, base, len))
			return true;
		list += n + (list[n] != '\0');
	}
	return false;
}

/* Room LD_PRELOAD's new value needs. */
static size_t preload_room(char *const envp[])
{
	const char *old = env_preload(envp);

	return 12 + (next.self ? strlen(next.self) : 0) + 1 + (old ? strlen(old) : 0) + 1;
}

/* LD_PRELOAD's value with this library in it; NULL if it has it already. */
static char *preload_var(struct exec_env *e, const char *old)
{
	const char *self = next.self;

	if (!self || (old && strstr(old, self)))
		return NULL;
	snprintf(e->preload_var, e->preload_cap, "LD_PRELOAD=%s%s%s", self,
		 old && *old ? ":" : "", old ? old : "");
	return e->preload_var;
}

static void env_build(struct exec_env *e, char *const envp[], int fd)
{
	size_t n = env_count(envp), k = 0;
	bool had_preload = false;
	char *v;

	snprintf(e->fd_var, sizeof(e->fd_var), USMC_EXEC_ENV "=%d", fd);
	for (size_t i = 0; i < n; i++) {
		if (!strncmp(envp[i], USMC_EXEC_ENV "=", sizeof(USMC_EXEC_ENV)))
			continue;
		if (!strncmp(envp[i], "LD_PRELOAD=", 11)) {
			had_preload = true;
			v = preload_var(e, envp[i] + 11);
			e->env[k++] = v ? v : envp[i];
			continue;
		}
		e->env[k++] = envp[i];
	}
	if (!had_preload && (v = preload_var(e, NULL)))
		e->env[k++] = v;
	e->env[k++] = e->fd_var;
	e->env[k] = NULL;
}

/* What each call gets. */
struct exec_args {
	int dirfd;
	const char *path;
	char *const *argv;
	int flags;
	pid_t *pid;
	const posix_spawn_file_actions_t *actions;
	const posix_spawnattr_t *attr;
};

typedef int (*exec_call)(void *ctx, char *const env[]);

/*
 * Runs call (an exec of target, which returns only on failure, or a spawn)
 * with the state of inherited connections handed over.  -1 with errno if that
 * cannot be written, as an exec that lacks memory.
 */
static int with_handover(bool spawn, const char *target, bool search, bool ids_reset,
			 char *const envp[], exec_call call, void *ctx)
{
	struct usmc_exec_prep p;
	bool secure = false, adopts = true, judged = false;
	int rc, err;

	preload_bound();
	/*
	 * An exec that loses usmc: the new image is plain TCP, and says so in
	 * the counters, for its connections will count no fallback.  (Not
	 * logged from a vfork child, whose log line may allocate in its
	 * parent's memory.)
	 */
	if (preload_by_path(envp)) {
		adopts = preload_target_adopts(target, search, ids_reset, &secure);
		judged = true;
	}
	if (secure) {
		usmc_stats_add(USMC_STAT_EXEC_SECURE, 1);
		if (usmc_log_debug() && !usmc_vfork_child())
			usmc_log(USMC_LOG_DEBUG, "exec of %s in secure-execution mode: usmc does not "
				 "run in it (LD_PRELOAD ignored), plain TCP", target ? target : "?");
	}
	if (usmc_exec_prepare(&p, spawn))
		return -1;
	if (p.fd < 0)
		return call(ctx, envp);
	/* A program that cannot take the connections over gets them ended, not doorbells. */
	if (!judged)
		adopts = preload_target_adopts(target, search, ids_reset, &secure);
	if (!adopts) {
		usmc_exec_uncount(&p);
		usmc_exec_undo(&p);
		usmc_exec_break_inherited();
		return call(ctx, envp);
	}
	{
		char *env[env_count(envp) + 3];
		char room[preload_room(envp)];
		struct exec_env e = { .env = env, .preload_var = room, .preload_cap = sizeof(room) };

		env_build(&e, envp, p.fd);
		rc = call(ctx, e.env);
	}
	err = errno;
	/* An exec that returns failed; so did a spawn that did not return 0. */
	if (!spawn || rc)
		usmc_exec_uncount(&p);
	usmc_exec_undo(&p);
	errno = err;
	return rc;
}

/* ---- the calls ---- */


#define NEXT(name, ...) next.name(__VA_ARGS__)

static int call_execve(void *ctx, char *const env[])
{
	const struct exec_args *a = ctx;

	return NEXT(execve, a->path, a->argv, env);
}

static int call_execvpe(void *ctx, char *const env[])
{
	const struct exec_args *a = ctx;

	return NEXT(execvpe, a->path, a->argv, env);
}

static int call_fexecve(void *ctx, char *const env[])
{
	const struct exec_args *a = ctx;

	return NEXT(fexecve, a->dirfd, a->argv, env);
}

static int call_execveat(void *ctx, char *const env[])
{
	const struct exec_args *a = ctx;

	return NEXT(execveat, a->dirfd, a->path, a->argv, env, a->flags);
}

static int call_posix_spawn(void *ctx, char *const env[])
{
	const struct exec_args *a = ctx;

	return NEXT(posix_spawn, a->pid, a->path, a->actions, a->attr, a->argv, env);
}

static int call_posix_spawnp(void *ctx, char *const env[])
{
	const struct exec_args *a = ctx;

	return NEXT(posix_spawnp, a->pid, a->path, a->actions, a->attr, a->argv, env);
}

EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
	struct exec_args a = { .path = path, .argv = argv };

	return with_handover(false, path, false, false, envp, call_execve, &a);
}

EXPORT int execv(const char *path, char *const argv[])
{
	return execve(path, argv, environ);
}

EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
	struct exec_args a = { .path = file, .argv = argv };

	return with_handover(false, file, true, false, envp, call_execvpe, &a);
}

EXPORT int execvp(const char *file, char *const argv[])
{
	return execvpe(file, argv, environ);
}

EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	struct exec_args a = { .dirfd = fd, .argv = argv };
	char target[40];

	snprintf(target, sizeof(target), "/proc/self/fd/%d", fd);
	return with_handover(false, target, false, false, envp, call_fexecve, &a);
}

EXPORT int execveat(int dirfd, const char *path, char *const argv[], char *const envp[],
		    int flags)
{
	struct exec_args a = { .dirfd = dirfd, .path = path, .argv = argv, .flags = flags };
	char target[PATH_MAX];

	if (path[0] == '/' || dirfd == AT_FDCWD)
		snprintf(target, sizeof(target), "%s", path);
	else if (!path[0])
		snprintf(target, sizeof(target), "/proc/self/fd/%d", dirfd);
	else
		snprintf(target, sizeof(target), "/proc/self/fd/%d/%s", dirfd, path);
	return with_handover(false, target, false, false, envp, call_execveat, &a);
}

/* posix_spawn reports failure as its return value, not in errno. */
static int spawn(exec_call call, struct exec_args *a, bool search, char *const envp[])
{
	short flags = 0;
	bool reset = a->attr && !posix_spawnattr_getflags(a->attr, &flags) &&
		     (flags & POSIX_SPAWN_RESETIDS);
	int rc = with_handover(true, a->path, search, reset, envp, call, a);

	return rc < 0 ? errno : rc;
}

EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
		       const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	struct exec_args a = { .path = path, .argv = argv, .pid = pid, .actions = actions,
			       .attr = attr };

	return spawn(call_posix_spawn, &a, false, envp);
}

EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *actions,
			const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	struct exec_args a = { .path = file, .argv = argv, .pid = pid, .actions = actions,
			       .attr = attr };

	return spawn(call_posix_spawnp, &a, true, envp);
}

/*
 * ---- system() and popen() ----
 *
 * Both spawn /bin/sh through libc's internal posix_spawn, which no preload
 * sees, with the environment environ points to: so the handover goes
 * into environ for the time of the call.  (Another thread reading the
 * environment meanwhile sees the same entries and USMC_EXEC_FD; one that
 * changes it with setenv at that moment races as it would with any
 * setenv.)  posix_spawn returns once the shell runs, so the state may go
 * as soon as the call returns.
 */
struct shell_args {
	const char *command;
	const char *mode;
	int status;
	FILE *stream;
};

static int call_system(void *ctx, char *const env[])
{
	struct shell_args *a = ctx;
	char **saved = environ;

	environ = (char **)env;
	a->status = next.system(a->command);
	environ = saved;
	return a->status == -1 ? -1 : 0; /* -1: no shell was spawned */
}

static int call_popen(void *ctx, char *const env[])
{
	struct shell_args *a = ctx;
	char **saved = environ;

	environ = (char **)env;
	a->stream = next.popen(a->command, a->mode);
	environ = saved;
	return a->stream ? 0 : -1;
}

EXPORT int system(const char *command)
{
	struct shell_args a = { .command = command, .status = -1 };

	/* system(NULL) asks whether a shell exists: nothing is spawned with a socket. */
	if (!command) {
		preload_bound();
		return next.system(command);
	}
	if (with_handover(true, "/bin/sh", false, false, environ, call_system, &a))
		return -1;
	return a.status;
}

EXPORT FILE *popen(const char *command, const char *mode)
{
	struct shell_args a = { .command = command, .mode = mode };

	if (with_handover(true, "/bin/sh", false, false, environ, call_popen, &a))
		return NULL;
	return a.stream;
}

/* ---- the execl family: their arguments as an argv ---- */

/* The arguments from arg up to and with the NULL, as an argv on the stack. */
#define ARGV_FROM_VA(arg, argv)                                     \
	do {                                                        \
		va_list ap;                                         \
		size_t n = 1;                                       \
		va_start(ap, arg);                                  \
		while (va_arg(ap, char *))                          \
			n++;                                        \
		va_end(ap);                                         \
		argv = alloca((n + 1) * sizeof(char *));            \
		argv[0] = (char *)arg;                              \
		va_start(ap, arg);                                  \
		for (size_t i = 1; i <= n; i++)                     \
			argv[i] = va_arg(ap, char *);               \
		va_end(ap);                                         \
	} while (0)

EXPORT int execl(const char *path, const char *arg, ...)
{
	char **argv;

	ARGV_FROM_VA(arg, argv);
	return execve(path, argv, environ);
}

EXPORT int execlp(const char *file, const char *arg, ...)
{
	char **argv;

	ARGV_FROM_VA(arg, argv);
	return execvpe(file, argv, environ);
}

/* execle's environment comes after the NULL that ends the arguments. */
EXPORT int execle(const char *path, const char *arg, ...)
{
	char **argv, **envp;
	va_list ap;

	ARGV_FROM_VA(arg, argv);
	va_start(ap, arg);
	while (va_arg(ap, char *))
		;
	envp = va_arg(ap, char **);
	va_end(ap);
	return execve(path, argv, envp);
}
