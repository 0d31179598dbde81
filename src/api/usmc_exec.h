/* SPDX-License-Identifier: MIT */
/*
 * Connections across exec.
 *
 * exec replaces the process image but keeps its descriptors: a program
 * that inherits a shared-memory connection (inetd style, a re-exec, a
 * child of posix_spawn) holds a TCP socket whose data moves through
 * segments the new image knows nothing of.  Before the exec, usmc writes
 * the state of those connections (link groups, segments, slots, the
 * connections themselves) into a memfd, keeps the descriptors it needs
 * open across the exec, and names the memfd in the environment
 * (USMC_EXEC_FD).  The new image maps the segments again and goes on.
 *
 * The connections' own state (cursors, locks, errors) is in the segments'
 * own memfds, so nothing of it needs copying.  What is written here is
 * read back by the new image of the same program, but through a bounded
 * reader all the same, since the environment can name any descriptor.
 *
 * usmc_exec.c writes the state before the exec or the spawn
 * (usmc_exec_prepare) and sets it right again if the call fails.
 */
#ifndef USMC_EXEC_H
#define USMC_EXEC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct usmc_conn;

/* Whether fd stays open across an exec. */
bool exec_fd_inherited(int fd);

/* Connections a spawn counts a holder of that it can take back if it fails. */
#define EXEC_COUNTED_MAX 64

struct usmc_exec_prep {
	int fd;        /* the memfd with the state, -1 if there is nothing to hand over */
	int nkept;     /* descriptors made to survive the exec */
	int *kept;
	int bell;      /* a vfork child's holders' bell, made to survive it, or -1 */
	pid_t spawned; /* 0: exec of this process; else posix_spawn */
	/*
	 * A spawn's: connections counted for the program (in the prep itself,
	 * which a vfork child keeps on its stack; past the limit a failed
	 * spawn leaves the count one too high, which is safe).
	 */
	uint32_t ncounted;
	struct usmc_conn *counted[EXEC_COUNTED_MAX];
};

/*
 * Before an exec (spawn false) or a posix_spawn (spawn true): writes the
 * state of the connections the new image inherits.  -1 with errno if it
 * cannot; the call must then fail as the exec would have.
 */
int usmc_exec_prepare(struct usmc_exec_prep *p, bool spawn);
/* The exec or the spawn failed: the program it counted as a holder is none. */
void usmc_exec_uncount(struct usmc_exec_prep *p);
/* The exec failed, or the spawn is done: everything back as it was. */
void usmc_exec_undo(struct usmc_exec_prep *p);

#endif /* USMC_EXEC_H */
