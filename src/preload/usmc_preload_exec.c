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
 * so each entry point is taken over.  (system() and popen() spawn inside
 * libc too; a program that hands a shared-memory connection to a shell
 * that way is not covered.)
 */
#undef _FORTIFY_SOURCE

#include <dlfcn.h>
#include <errno.h>
#include <spawn.h>
#include <alloca.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "usmc_exec.h"
#include "usmc_preload.h"

extern char **environ;

/* The environment of the new image, and what was allocated for it. */
struct exec_env {
	char **env;
	char *fd_var;
	char *preload_var;
};

/* This library's path, as the dynamic loader found it. */
static const char *preload_path(void)
{
	Dl_info info;

	return dladdr((void *)preload_path, &info) && info.dli_fname ? info.dli_fname : NULL;
}

/* LD_PRELOAD's value with this library in it; NULL if it has it already. */
static char *preload_var(const char *old)
{
	const char *self = preload_path();
	char *v;

	if (!self || (old && strstr(old, self)))
		return NULL;
	if (asprintf(&v, "LD_PRELOAD=%s%s%s", self, old && *old ? ":" : "", old ? old : "") < 0)
		return NULL;
	return v;
}

static bool env_build(struct exec_env *e, char *const envp[], int fd)
{
	size_t n = 0, k = 0;
	bool had_preload = false;

	*e = (struct exec_env){ 0 };
	while (envp && envp[n])
		n++;
	e->env = calloc(n + 3, sizeof(char *));
	if (!e->env || asprintf(&e->fd_var, USMC_EXEC_ENV "=%d", fd) < 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!strncmp(envp[i], USMC_EXEC_ENV "=", sizeof(USMC_EXEC_ENV)))
			continue;
		if (!strncmp(envp[i], "LD_PRELOAD=", 11)) {
			had_preload = true;
			e->preload_var = preload_var(envp[i] + 11);
			e->env[k++] = e->preload_var ? e->preload_var : envp[i];
			continue;
		}
		e->env[k++] = envp[i];
	}
	if (!had_preload && (e->preload_var = preload_var(NULL)))
		e->env[k++] = e->preload_var;
	e->env[k] = e->fd_var;
	return true;
}

static void env_free(struct exec_env *e)
{
	free(e->env);
	free(e->fd_var);
	free(e->preload_var);
}

typedef int (*exec_call)(void *ctx, char *const env[]);

/*
 * Runs call (an exec, which returns only on failure, or a spawn) with the
 * state of inherited connections handed over.  -1 with errno if that
 * cannot be written, as an exec that lacks memory.
 */
static int with_handover(bool spawn, char *const envp[], exec_call call, void *ctx)
{
	struct usmc_exec_prep p;
	struct exec_env e;
	int rc, err;

	preload_bound();
	if (usmc_exec_prepare(&p, spawn))
		return -1;
	if (p.fd < 0)
		return call(ctx, envp);
	if (!env_build(&e, envp, p.fd)) {
		env_free(&e);
		usmc_exec_undo(&p);
		errno = ENOMEM;
		return -1;
	}
	rc = call(ctx, e.env);
	err = errno;
	usmc_exec_undo(&p);
	env_free(&e);
	errno = err;
	return rc;
}

/* ---- the calls ---- */

struct exec_args {
	int dirfd;
	const char *path;
	char *const *argv;
	int flags;
	pid_t *pid;
	const posix_spawn_file_actions_t *actions;
	const posix_spawnattr_t *attr;
};

#define NEXT(name, ...) ((__typeof__(&name))dlsym(RTLD_NEXT, #name))(__VA_ARGS__)

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

	return with_handover(false, envp, call_execve, &a);
}

EXPORT int execv(const char *path, char *const argv[])
{
	return execve(path, argv, environ);
}

EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
	struct exec_args a = { .path = file, .argv = argv };

	return with_handover(false, envp, call_execvpe, &a);
}

EXPORT int execvp(const char *file, char *const argv[])
{
	return execvpe(file, argv, environ);
}

EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	struct exec_args a = { .dirfd = fd, .argv = argv };

	return with_handover(false, envp, call_fexecve, &a);
}

EXPORT int execveat(int dirfd, const char *path, char *const argv[], char *const envp[],
		    int flags)
{
	struct exec_args a = { .dirfd = dirfd, .path = path, .argv = argv, .flags = flags };

	return with_handover(false, envp, call_execveat, &a);
}

/* posix_spawn reports failure as its return value, not in errno. */
static int spawn(exec_call call, struct exec_args *a, char *const envp[])
{
	int rc = with_handover(true, envp, call, a);

	return rc < 0 ? errno : rc;
}

EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
		       const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	struct exec_args a = { .path = path, .argv = argv, .pid = pid, .actions = actions,
			       .attr = attr };

	return spawn(call_posix_spawn, &a, envp);
}

EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *actions,
			const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	struct exec_args a = { .path = file, .argv = argv, .pid = pid, .actions = actions,
			       .attr = attr };

	return spawn(call_posix_spawnp, &a, envp);
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
