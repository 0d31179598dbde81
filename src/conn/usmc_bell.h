/* SPDX-License-Identifier: MIT */
/*
 * The holders' bell (usmc_bell.c): waking the sleepers of the other
 * processes of a fork tree that hold a connection, for what ends a wait
 * without any doorbell (a shutdown by one of them).
 */
#ifndef USMC_BELL_H
#define USMC_BELL_H

#include <stdbool.h>

/* Before a fork of a process that has connections: makes the bell its children inherit. */
void usmc_bell_prepare(void);
/*
 * Wakes every sleeper of the fork tree on a shared connection, after the
 * change it is to see was stored: each looks again, and sleeps on if it
 * was not for it.
 */
void usmc_bell_ring(void);
/*
 * Before its last look at what it waits for, a thread about to sleep on
 * a connection that other processes may hold (shared): the descriptor its
 * sleep polls for POLLIN beside its sockets, or -1 if it sleeps without.
 */
int usmc_bell_enter(bool shared);
/* The bell, for an exec's handover (usmc_exec.c), or -1. */
int usmc_bell_fd(void);
/*
 * A new image takes the bell its old one handed over: one process of the
 * fork tree still, whose shutdowns ring it and whose sleeps watch it.
 * Taken only if fd is an eventfd; close-on-exec again.
 */
void usmc_bell_adopt(int fd);

#endif /* USMC_BELL_H */
