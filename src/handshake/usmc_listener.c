// SPDX-License-Identifier: MIT
/*
 * Listeners: a usmc listener's registry entry and Unix listener, made at
 * listen() or at the first accept of one the program did not make
 * (usmc_listen.c), taken over across exec (usmc_exec_listen.c), shared
 * when a process that did not make it waits on it (a prefork worker), a
 * member of an SO_REUSEPORT group (usmc_reuseport.c), and closed.
 *
 * The list of this process's listeners is guarded by usmc_lock().
 */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "usmc.h"
#include "usmc_chan.h"
#include "usmc_fdtab.h"
#include "usmc_holders.h"
#include "usmc_listen.h"
#include "usmc_listener.h"
#include "usmc_log.h"
#include "usmc_policy.h"
#include "usmc_queue_side.h"
#include "usmc_registry.h"
#include "usmc_rendezvous.h"
#include "usmc_reuseport.h"
#include "usmc_sock.h"
#include "usmc_sockdiag.h"
#include "usmc_sys.h"
#include "af_usmc.h"

static struct usmc_listener *listeners;

bool af_listener_shared(const struct usmc_listener *l)
{
	struct reg_port *reg = reg_port(l->port);

	return reg && (atomic_load_explicit(&reg->flags, memory_order_relaxed) & REG_SHARED);
}

/* Ours, or inherited and shared with the process that made it. */
struct usmc_listener *af_listener_find(uint16_t port)
{
	for (struct usmc_listener *l = listeners; l; l = l->next)
		if (l->port == port && (l->owner == usmc_pid() || af_listener_shared(l)))
			return l;
	return NULL;
}

/*
 * A process that did not make the listener is about to accept from it:
 * a prefork worker waiting on the listener it inherited from its master.
 * From now on each Proposal toward the port comes on a channel of its
 * own, which whichever holder accepts the connection can find
 * (usmc_queue.c).  Marked when a worker first waits or accepts, not at
 * the fork: a server that forks after accept (postgresql, dnsmasq, sshd)
 * has children that never accept, and its connections keep the link
 * groups they share with the listener's creator.  A connection proposed
 * on a link group to the creator before the mark, and accepted by a
 * worker, falls back at once: the worker refuses it through the
 * registry's list (docs/HANDSHAKE.md).
 */
void af_listener_claim(struct usmc_sock *ls)
{
	struct usmc_listener *l = ls->listener;
	struct reg_port *reg;

	if (!l || l->owner == usmc_pid() || l->claimed == usmc_pid())
		return;
	l->claimed = usmc_pid();
	reg = reg_port(l->port);
	if (reg && atomic_load(&reg->pid) == l->owner)
		atomic_fetch_or(&reg->flags, REG_SHARED);
}

static uint16_t sock_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (usmc_sys.getsockname(fd, (struct sockaddr *)&ss, &len))
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* A listener of port with none of its Unix listeners yet. */
static struct usmc_listener *listener_alloc(uint16_t port)
{
	struct usmc_listener *l = calloc(1, sizeof(*l));

	if (l) {
		l->port = port;
		l->ufd = l->ufd_users = l->rfd = -1;
		for (int i = 0; i < SIDE_QUEUES; i++)
			l->side[i] = -1;
	}
	return l;
}

static uint32_t listener_register(struct usmc_sock *s)
{
	const uid_t *other_users;
	struct reg_port *reg;
	struct usmc_listener *l;
	uint16_t port = sock_port(s->fd);
	int reuseport = 0;
	socklen_t len = sizeof(reuseport);

	reg = reg_port(port);
	if (!port || !reg)
		return usmc_env_fail("registry");
	/*
	 * With SO_REUSEPORT other processes may get the connections: a member
	 * of the group (usmc_reuseport.c), unless a usmc listener without it
	 * has the port, on another address.
	 */
	if (usmc_sys.getsockopt(s->fd, SOL_SOCKET, SO_REUSEPORT, &reuseport, &len) == 0 && reuseport) {
		int32_t pid = atomic_load(&reg->pid);

		if (pid && !(atomic_load(&reg->flags) & REG_REUSEPORT) &&
		    af_listener_alive(port, pid))
			return USMC_DECL_SOCKOPT;
	}
	if (!af_diag_available())
		return usmc_env_fail("sock_diag");
	l = af_listener_find(port);
	if (l) {
		l->refs++;
		s->listener = l;
		return 0;
	}
	l = listener_alloc(port);
	if (!l)
		return USMC_DECL_MEM;
	if (reuseport) {
		l->ufd = af_member_join(l, reg);
	} else {
		l->uaddr_len = reg_listener_addr(getuid(), port, false, &l->uaddr);
		l->ufd = af_channel_listen_at(&l->uaddr, l->uaddr_len);
	}
	if (l->ufd < 0) {
		uint32_t reason = reuseport ? USMC_DECL_SOCKOPT : usmc_env_fail("channel listen");

		/* Its clients proposed to the group's members: it refuses them (usmc_listen.c). */
		if (reuseport)
			s->outside_port = port;
		free(l);
		return reason;
	}
	/*
	 * Clients of other users knock only where this name exists, so one
	 * that allows nobody never leaves them waiting for an answer.
	 */
	l->ufd_users = !reuseport && usmc_policy_other_users(&other_users)
			       ? af_channel_listen(port, true)
			       : -1;
	/*
	 * Clients of other network namespaces find it in the rendezvous
	 * directory, if there is one; a member of an SO_REUSEPORT group under
	 * a name of its own, as in the abstract namespace.
	 */
	l->rfd = rdv_listen(port, reuseport ? (int32_t)usmc_pid() : 0, &l->rfd_ino);
	l->owner = usmc_pid();
	l->uid = getuid();
	l->refs = 1;
	l->forks = usmc_holders_forks();
	l->seen = atomic_load(&reg->proposals);
	l->next = listeners;
	listeners = l;
	if (!reuseport) {
		/* What earlier listeners of the port left unread is nobody's now. */
		atomic_store(&reg->read, l->seen);
		atomic_store(&reg->flags, 0);
		atomic_store(&reg->pid, (int32_t)usmc_pid());
	}
	s->listener = l;
	return 0;
}

int af_listen(struct usmc_sock *s, int backlog)
{
	if (usmc_sys.listen(s->fd, backlog) < 0)
		return -1;
	if (s->state != SOCK_LISTEN)
		af_listener_open(s);
	return 0;
}

void af_listener_open(struct usmc_sock *s)
{
	uint32_t reason;

	/* The policy names users, and NSS must not run under our lock: read it now. */
	usmc_peer_user_allowed(getuid());
	af_listen_watch_fork();
	usmc_lock();
	reason = listener_register(s);
	usmc_unlock();
	if (reason) {
		s->reason = reason;
		usmc_sock_set_state(s, SOCK_PLAIN);
	} else {
		af_listener_defer_take(s);
		usmc_sock_set_state(s, SOCK_LISTEN);
	}
}

bool af_listener_inherit(int fd, int ufd, const int *side, uint16_t port, pid_t owner, uid_t uid,
			 bool member)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct usmc_listener *l;
	struct reg_port *reg = reg_port(port);
	struct usmc_sock *s;

	if (!reg || usmc_sys.getsockname(fd, (struct sockaddr *)&ss, &len) ||
	    (ss.ss_family != AF_INET && ss.ss_family != AF_INET6) || sock_port(fd) != port)
		return false;
	for (l = listeners; l && !(l->port == port && l->ufd == ufd); l = l->next)
		;
	if (!l) {
		/* Its directory's listener did not survive the exec (close-on-exec). */
		l = listener_alloc(port);
		if (!l)
			return false;
		l->owner = owner;
		l->uid = uid;
		l->ufd = ufd;
		if (side)
			memcpy(l->side, side, sizeof(l->side));
		l->member = member;
		l->uaddr_len = member ? reg_member_addr(uid, port, owner, &l->uaddr)
				      : reg_listener_addr(uid, port, false, &l->uaddr);
		l->seen = atomic_load(&reg->proposals);
		l->next = listeners;
		listeners = l;
	}
	s = usmc_sock_new(fd, ss.ss_family);
	if (!s) {
		if (!l->refs) {
			listeners = l->next;
			free(l);
		}
		return false;
	}
	l->refs++;
	s->listener = l;
	usmc_sock_set_state(s, SOCK_LISTEN);
	return true;
}

bool af_listener_ufd_held(int ufd)
{
	for (struct usmc_listener *l = listeners; l; l = l->next) {
		if (l->ufd == ufd)
			return true;
		for (int i = 0; i < SIDE_QUEUES; i++)
			if (l->side[i] == ufd)
				return true;
	}
	return false;
}

void af_listener_fork_prepare(void)
{
	usmc_lock();
	for (struct usmc_listener *l = listeners; l; l = l->next)
		if (l->side[0] < 0 && !l->member && l->ufd >= 0 && l->owner == usmc_pid())
			af_side_open(l->side);
	usmc_unlock();
}

void af_listener_close(struct usmc_sock *s)
{
	struct usmc_listener *l = s->listener, **pp;
	struct reg_port *reg;
	int32_t me = (int32_t)usmc_pid();
	bool held;

	if (!l)
		return;
	usmc_lock();
	s->listener = NULL;
	if (--l->refs == 0) {
		for (pp = &listeners; *pp; pp = &(*pp)->next) {
			if (*pp == l) {
				*pp = l->next;
				break;
			}
		}
		reg = reg_port(l->port);
		/*
		 * Closed by its maker after a fork: the children may hold it,
		 * and go on with its names.  haproxy's master closes it as soon
		 * as its workers are made, before any of them waits where
		 * af_listener_claim would mark it shared.
		 */
		held = l->owner == me && l->forks != usmc_holders_forks();
		/*
		 * A shared listener's other holders (its workers, a new image
		 * after exec) may go on with the name: its clients clear the
		 * entry when they find the name gone (usmc_queue.c).
		 */
		if (reg && l->member && !held)
			af_member_leave(reg, l->port);
		else if (reg && !l->member && held && atomic_load(&reg->pid) == me)
			atomic_fetch_or(&reg->flags, REG_SHARED);
		else if (reg && !l->member && !(atomic_load(&reg->flags) & REG_SHARED))
			atomic_compare_exchange_strong(&reg->pid, &(int32_t){ me }, 0);
		if (l->ufd >= 0)
			usmc_sys.close(l->ufd);
		if (l->ufd_users >= 0)
			usmc_sys.close(l->ufd_users);
		for (int i = 0; i < SIDE_QUEUES; i++)
			if (l->side[i] >= 0)
				usmc_sys.close(l->side[i]);
		if (l->rfd >= 0) {
			usmc_sys.close(l->rfd);
			/* A path outlives its process: the creator removes it; forked holders leave it. */
			if (l->owner == me && !held)
				rdv_unlisten(l->port, l->member ? (int32_t)l->owner : 0, l->rfd_ino);
		}
		/* Proposals for the port stay until their link group goes, orphans until our last listener. */
		if (!af_listener_find(l->port))
			af_srv_drop_orphans(l->port);
		free(l);
	}
	usmc_unlock();
}
