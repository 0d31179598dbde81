/* SPDX-License-Identifier: MIT */
/* The hostile peer and the segments passed over the channel (hostile_segment.c). */
#ifndef USMC_TEST_HOSTILE_SEGMENT_H
#define USMC_TEST_HOSTILE_SEGMENT_H

/* From now on the library's recvmsg keeps a duplicate of every descriptor passed. */
void keep_passed_fds(void);

void victim_sealed(int fd);
void hostile_keeps_quiet(int fd);
void hostile_write_map(int fd);
void hostile_scribble(int fd);
void victim_nothing(int fd);

#endif
