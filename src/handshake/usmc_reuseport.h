/* SPDX-License-Identifier: MIT */
/*
 * SO_REUSEPORT groups (usmc_reuseport.c): each member process of a port
 * has its own queue, and a client's channel goes to every member's.
 */
#ifndef USMC_REUSEPORT_H
#define USMC_REUSEPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "usmc_listener.h"
#include "usmc_registry.h"

/*
 * join: takes a member slot of the port and binds this process's own
 * queue as l->ufd; -1 if it cannot.  leave: gives them back.  post: puts
 * the server's end of a client's channel (lgr->taker) into every member's
 * queue; 0 if one took it.
 */
int af_member_join(struct usmc_listener *l, struct reg_port *reg);
void af_member_leave(struct reg_port *reg, uint16_t port);
uint32_t af_member_post(struct reg_port *reg, struct usmc_lgr *lgr);
/*
 * Whether pid, the port's listener by its registry entry, still listens
 * on its channel (a member of a group is alive while its queue is).
 */
bool af_listener_alive(uint16_t port, int32_t pid);
/* Whether the port's group has a slot nobody holds (a member that left, or one cleared). */
bool af_member_slot_free(struct reg_port *reg);

#endif /* USMC_REUSEPORT_H */
