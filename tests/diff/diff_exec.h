/* SPDX-License-Identifier: MIT */
/* exec with an inherited connection (diff_exec.c): the new image's start. */
#ifndef USMC_DIFF_EXEC_H
#define USMC_DIFF_EXEC_H

#include "diff.h"

/* Runs this program again as step, on fd, with the other end's pipes and this end's log. */
void exec_step(struct end *e, const char *step, int fd);

#endif
