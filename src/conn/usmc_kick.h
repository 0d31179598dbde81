/* SPDX-License-Identifier: MIT */
/*
 * Kicks (usmc_kick.c): waking this process's own sleepers, for what ends
 * a wait without any doorbell (another thread's shutdown of the socket).
 */
#ifndef USMC_KICK_H
#define USMC_KICK_H

/*
 * Counts the calling thread among the sleepers, before its last look at
 * what it waits for: the descriptor its sleep polls for POLLIN beside its
 * sockets, or -1 if it sleeps without (one thread in the process, or no
 * kick to be had), and is not counted.  Each enter is followed by a leave
 * with what it returned, once the sleep is over.
 */
int usmc_kick_enter(void);
void usmc_kick_leave(int kick);
/*
 * Wakes every sleeper of the process, after the change it is to see was
 * stored: each looks again, and sleeps on if it was not for it.
 */
void usmc_kick(void);

#endif /* USMC_KICK_H */
