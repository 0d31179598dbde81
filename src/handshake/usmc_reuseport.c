// SPDX-License-Identifier: MIT
/*
 * SO_REUSEPORT groups: listeners of several processes on one port.
 *
 * The kernel gives each connection to one member of the group, by a hash
 * of its 4-tuple that no client can know beforehand.  So each member
 * process binds a queue of its own, @usmc/<uid>/<port>/m<pid>, and lists
 * its pid in the port's registry entry (REG_MEMBERS at most); a client of
 * the group puts the server's end of its connection's channel into every
 * member's queue (usmc_queue.c).  Whichever member gets the TCP
 * connection finds the Proposal and takes it, once: a message has one
 * reader.  The copies in the other queues are empty then, and whoever
 * looks at one next drops it.  A member that forks shares its queue with
 * its children, as any listener's holders share theirs.
 *
 * The kernel lets only sockets of one effective user into a group, so
 * members are of one user.  A member that finds no free slot stays TCP
 * (0x03000005).  The kernel still gives it connections whose clients
 * proposed to the others: they list their Proposals in the registry
 * (reg_slot_take), and it refuses each one it accepts at once with the
 * marker (usmc_listen.c), so both ends are TCP without a CLC timeout.
 * A member's slot is free once its queue is no longer listened on (a
 * client that finds the queue gone clears it), and a member without one
 * joins at its first accept after a slot is free.
 */
#include <errno.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "usmc.h"
#include "usmc_chan.h"
#include "usmc_listener.h"
#include "usmc_queue.h"
#include "usmc_queue_side.h"
#include "usmc_registry.h"
#include "usmc_reuseport.h"
#include "usmc_sys.h"

/*
 * A member is alive while its queue is listened on.  Not its pid: a
 * member killed stays a zombie until its parent reaps it (an init that
 * reaps late, a container without one: for ever), a pid reused by
 * another user's process answers kill() with EPERM, and a member of
 * another pid namespace has a pid that means nothing here.
 */
static bool member_alive(uint16_t port, int32_t pid)
{
	struct sockaddr_un sun;

	return pid && af_channel_listened(&sun, reg_member_addr(getuid(), port, pid, &sun));
}

bool af_listener_alive(uint16_t port, int32_t pid)
{
	struct sockaddr_un sun;

	return pid && af_channel_listened(&sun, reg_listener_addr(getuid(), port, false, &sun));
}

int af_member_join(struct usmc_listener *l, struct reg_port *reg)
{
	int32_t me = (int32_t)usmc_pid(), pid;
	int slot = -1;

	/* Our queue first: a slot always names a member that is listened on. */
	l->uaddr_len = reg_member_addr(getuid(), l->port, me, &l->uaddr);
	l->ufd = af_channel_listen_at(&l->uaddr, l->uaddr_len);
	if (l->ufd < 0)
		return -1;
	for (int i = 0; i < REG_MEMBERS && slot < 0; i++) {
		pid = atomic_load(&reg->members[i]);
		/* The slot of a member that died without leaving is free. */
		if ((pid == 0 || (pid != me && !member_alive(l->port, pid))) &&
		    atomic_compare_exchange_strong(&reg->members[i], &pid, me))
			slot = i;
	}
	if (slot < 0) {
		usmc_sys.close(l->ufd);
		l->ufd = -1;
		return -1;
	}
	l->member = true;
	/*
	 * Clients look at the flags once they see a pid: flags first.  The
	 * entry names a live member already, or nobody (listener_register
	 * left a live listener without SO_REUSEPORT alone).
	 */
	atomic_fetch_or(&reg->flags, REG_REUSEPORT | REG_SHARED);
	pid = atomic_load(&reg->pid);
	if (pid != me && !member_alive(l->port, pid))
		atomic_compare_exchange_strong(&reg->pid, &pid, me);
	return l->ufd;
}

bool af_member_slot_free(struct reg_port *reg)
{
	for (int i = 0; i < REG_MEMBERS; i++)
		if (!atomic_load_explicit(&reg->members[i], memory_order_relaxed))
			return true;
	return false;
}

void af_member_leave(struct reg_port *reg, uint16_t port)
{
	int32_t me = (int32_t)usmc_pid(), other = 0;

	for (int i = 0; i < REG_MEMBERS; i++) {
		int32_t pid = me;

		if (!atomic_compare_exchange_strong(&reg->members[i], &pid, 0) && member_alive(port, pid))
			other = pid;
	}
	/* The entry names a member while there is one: clients find the group by it. */
	if (!atomic_compare_exchange_strong(&reg->pid, &me, other) || other)
		return;
	atomic_fetch_and(&reg->flags, ~(REG_REUSEPORT | REG_SHARED));
}

uint32_t af_member_post(struct reg_port *reg, struct usmc_lgr *lgr)
{
	uint32_t reason = USMC_DECL_PEERNOSMC;
	bool sent = false;

	for (int i = 0; i < REG_MEMBERS; i++) {
		int32_t pid = atomic_load(&reg->members[i]);
		struct sockaddr_un sun;
		socklen_t len;
		struct ucred cred;
		uint32_t r;

		if (!pid)
			continue;
		len = reg_member_addr(reg_owner(), lgr->port, pid, &sun);
		r = af_carrier_send(&sun, len, reg_owner(), lgr->taker, true, &cred, lgr);
		if (!r) {
			sent = true;
			lgr->peer_pid = cred.pid;
		} else if (r == USMC_DECL_PEERNOSMC) {
			/* Its queue is gone with it. */
			atomic_compare_exchange_strong(&reg->members[i], &pid, 0);
		} else {
			reason = r;
		}
	}
	return sent ? 0 : reason;
}
