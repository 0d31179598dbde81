/* SPDX-License-Identifier: MIT */
/*
 * Socket state set before an exec (diff_exec_state.c): the client and
 * server of each case, for diff_exec.c's case table, and the steps their
 * new images run, which usmc_diff --resume finds there by name.
 */
#ifndef USMC_DIFF_EXEC_STATE_H
#define USMC_DIFF_EXEC_STATE_H

#include "diff.h"

/* exec_shut_wr: after shutdown(SHUT_WR) the new image still may not write. */
void exec_shut_wr_client(struct end *e);
void exec_shut_wr_server(struct end *e);
void after_shut_wr(struct end *e);

/* exec_shut_rd, exec_rcvtimeo: the new image's read ends by itself. */
void exec_read_ends_client(struct end *e);
void exec_shut_rd_server(struct end *e);
void exec_rcvtimeo_server(struct end *e);
void read_after_exec(struct end *e);

/* exec_linger: SO_LINGER {1, 0}, and the new image's close resets. */
void exec_linger_client(struct end *e);
void exec_linger_server(struct end *e);
void after_linger(struct end *e);

/* exec_rcvlowat: the new image's poll waits for SO_RCVLOWAT bytes. */
void exec_rcvlowat_client(struct end *e);
void exec_rcvlowat_server(struct end *e);
void after_rcvlowat(struct end *e);

/* exec_reconnect: the new image closes with bytes unread and connects again. */
void exec_reconnect_client(struct end *e);
void exec_reconnect_server(struct end *e);
void reconnect_after(struct end *e);

/* exec_child_shut: a new image a forked child runs, asleep in read(), wakes at the parent's shutdown. */
void exec_child_shut_client(struct end *e);
void exec_child_shut_server(struct end *e);
/* exec_spawn_shut: the same, the new image started by posix_spawn. */
void exec_spawn_shut_server(struct end *e);
/* exec_vfork_shut: the same, the new image a vfork child's exec. */
void exec_vfork_shut_server(struct end *e);
void read_exit(struct end *e);

#endif
