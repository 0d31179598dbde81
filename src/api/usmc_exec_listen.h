/* SPDX-License-Identifier: MIT */
/*
 * Listeners handed to a new image across exec (usmc_exec_listen.c), as
 * nginx's binary upgrade hands them: each with its Unix listener.
 */
#ifndef USMC_EXEC_LISTEN_H
#define USMC_EXEC_LISTEN_H

#include <stdbool.h>
#include <stdint.h>

#include "usmc_exec_state.h"

/*
 * Under usmc_lock.  describe: the listeners whose TCP socket the new
 * image inherits, into st->listen; false if out of memory.  adopt: makes
 * them usmc listeners again in the new image, the TCP socket found by its
 * inode among the descriptors (fd, inode) it has.
 */
bool exec_listen_describe(struct exec_state *st);
struct fd_inode {
	int fd;
	uint64_t inode;
};
void exec_listen_adopt(const struct exec_state *st, const struct fd_inode *v, uint32_t n);

#endif /* USMC_EXEC_LISTEN_H */
