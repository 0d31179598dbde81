/* SPDX-License-Identifier: MIT */
/* exec with an inherited connection (diff_exec.c): the new image's start. */
#ifndef USMC_DIFF_EXEC_H
#define USMC_DIFF_EXEC_H

#include <spawn.h>

#include "diff.h"

/* The arguments of `usmc_diff --resume STEP FD TELL HEAR LOG`, and their storage. */
struct step_argv {
	char *argv[8];
	char fd[16], tell[16], hear[16], log[16];
};

/* usmc_diff --resume's argv for step on fd, with the other end's pipes and this end's log. */
void step_argv(struct step_argv *a, struct end *e, const char *step, int fd);
/* Runs this program again as step, on fd, with the other end's pipes and this end's log. */
void exec_step(struct end *e, const char *step, int fd);

/* posix_spawn or posix_spawnp. */
typedef int (*spawn_fn)(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
			const posix_spawnattr_t *attr, char *const argv[], char *const envp[]);
/* Spawns this program (path, as spawn takes it) as step with fd on descriptors 0 and 1 only. */
pid_t spawn_step(struct end *e, const char *step, int fd, spawn_fn spawn, const char *path);
/* Waits for a child that must exit; says its status. */
void reap(pid_t pid);

/*
 * exec_self's client: 64 KiB before the exec, 64 KiB after it, then the
 * new image's reply ("exec_self_after" is the step of its server).
 */
void exec_self_client(struct end *e);
/* The client of the "service" step: its request, the reply on 0 and 1. */
void service_client(struct end *e);

#endif
