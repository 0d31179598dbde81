// SPDX-License-Identifier: MIT
/*
 * Listeners across exec.
 *
 * nginx's binary upgrade forks its master and execs the new binary in the
 * child with the listening sockets; the old master and its workers go on
 * until they are told to quit.  The new image gets the TCP listeners as
 * descriptors only.  So each usmc listener whose TCP socket survives the
 * exec keeps its Unix listener open beside it, and the new image takes
 * both again: it is one more holder of the listener, as a forked child
 * is, its own workers mark it shared when they wait on it
 * (af_listener_claim), and whichever holder, old or new, accepts a
 * connection finds its Proposal in the backlog they all share.  The old
 * master's close leaves the registry entry to the holders that keep the
 * name (af_listener_close).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "usmc.h"
#include "usmc_exec.h"
#include "usmc_exec_listen.h"
#include "usmc_exec_state.h"
#include "usmc_fdtab.h"
#include "usmc_listener.h"
#include "usmc_queue_side.h"
#include "usmc_sock.h"
#include "usmc_sys.h"

bool exec_listen_describe(struct exec_state *st)
{
	uint32_t cap = 0;
	struct usmc_sock *s;

	for (int fd = 0; (s = usmc_fdtab_next(&fd)); fd++) {
		struct usmc_listener *l;
		struct stat sb;

		if (s->state != SOCK_LISTEN || !(l = s->listener) || l->ufd < 0 ||
		    !exec_fd_inherited(fd) || fstat(fd, &sb) || st->nlisten == EXEC_MAX_LISTENS)
			continue;
		if (st->nlisten == cap) {
			struct exec_listen *grown;

			cap = cap ? 2 * cap : 8;
			grown = realloc(st->listen, cap * sizeof(*grown));
			if (!grown)
				return false;
			st->listen = grown;
		}
		st->listen[st->nlisten++] = (struct exec_listen){
			.inode = sb.st_ino, .ufd = l->ufd, .port = l->port,
			.owner = l->owner, .uid = l->uid, .member = l->member,
		};
		memcpy(st->listen[st->nlisten - 1].side, l->side, sizeof(l->side));
	}
	return true;
}

/* Whether fd is a Unix seqpacket listener, as ours are: the state may name any descriptor. */
static bool unix_listener(int fd)
{
	int type = 0, acc = 0, domain = 0;
	socklen_t len = sizeof(int);

	return !usmc_sys.getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) && domain == AF_UNIX &&
	       !usmc_sys.getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) && type == SOCK_SEQPACKET &&
	       !usmc_sys.getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) && acc;
}

void exec_listen_adopt(const struct exec_state *st, const struct fd_inode *v, uint32_t n)
{
	for (uint32_t i = 0; i < st->nlisten; i++) {
		const struct exec_listen *e = &st->listen[i];
		bool taken = false, sides = e->side[0] >= 0;

		/* One that is not a side queue is the program's now, left alone: entries go back. */
		for (int k = 0; k < SIDE_QUEUES && sides; k++)
			sides = af_side_is(e->side[k]);
		if (unix_listener(e->ufd)) {
			for (uint32_t j = 0; j < n; j++)
				if (v[j].inode == e->inode && !usmc_sock_get(v[j].fd))
					taken |= af_listener_inherit(v[j].fd, e->ufd, sides ? e->side : NULL,
								     e->port, e->owner, e->uid, e->member);
		}
		/* Ours again, close-on-exec as they were; or of no use, unless another entry took them. */
		for (int k = -1; k < (sides ? SIDE_QUEUES : 0); k++) {
			int fd = k < 0 ? e->ufd : e->side[k];

			if (taken)
				usmc_sys.fcntl(fd, F_SETFD, FD_CLOEXEC);
			else if (!af_listener_ufd_held(fd))
				usmc_sys.close(fd);
		}
	}
}
