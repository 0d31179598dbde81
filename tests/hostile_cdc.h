/* SPDX-License-Identifier: MIT */
/*
 * The hostile peer's attacks through what it publishes (hostile_cdc.c):
 * each a function for the hostile process on its attacked end, and one
 * for the victim on the attacked connection.
 */
#ifndef USMC_TEST_HOSTILE_CDC_H
#define USMC_TEST_HOSTILE_CDC_H

/* Cursors out of the ring, backwards, a wrap ahead, a ring too far. */
void hostile_prod_beyond(int fd);
void hostile_prod_backwards(int fd);
void hostile_wrap_jump(int fd);
void hostile_prod_overfull(int fd);
/* A next lap larger than the ring. */
void hostile_lap_beyond(int fd);
void victim_prod_backwards(int fd);
void victim_prod_overfull(int fd);
/* The victim waits for the attack and its reset: also for the segment's and the stream's. */
void victim_wait_reset(int fd);

/* A consumer cursor ahead of what was sent, or behind what was read. */
void hostile_cons_ahead(int fd);
void hostile_cons_backwards(int fd);
void victim_cons(int fd);

/* The abort flag on and off; garbage in the hints; silence. */
void hostile_abort_flip(int fd);
void victim_abort_flip(int fd);
void hostile_garbage(int fd);
void victim_garbage(int fd);
void hostile_silence(int fd);
void victim_silence(int fd);

/* A byte on the TCP stream that is no doorbell, uncounted and counted. */
void hostile_tcp_alien(int fd);
void hostile_tcp_alien_counted(int fd);

#endif
