/* SPDX-License-Identifier: MIT */
/*
 * Room for a new segment's descriptors (usmc_seg_room.c).
 */
#ifndef USMC_SEG_ROOM_H
#define USMC_SEG_ROOM_H

#include <stdbool.h>

/*
 * Whether a new segment's three descriptors leave the program an eighth
 * of its descriptor limit (at least 16).
 */
bool seg_fd_room(void);
/* usmc gave descriptors back: the next look counts again. */
void seg_fd_room_again(void);

#endif /* USMC_SEG_ROOM_H */
