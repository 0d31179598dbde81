// SPDX-License-Identifier: MIT
/*
 * The client's link groups (net/smc's smc_conn_create, client side): the
 * one a Proposal toward a port goes on, reused while its listener is the
 * process we know, or made by connecting to the listener's Unix name,
 * whose owner must be who the registry says (SO_PEERCRED).
 */
#include <errno.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "usmc.h"
#include "usmc_channel.h"
#include "usmc_connect_lgr.h"
#include "usmc_log.h"
#include "usmc_policy.h"
#include "usmc_proc.h"
#include "usmc_registry.h"
#include "usmc_sys.h"

/*
 * A usable link group to the listener of a port run by uid (and by pid, if
 * not 0), whose channel has room for our Proposals.
 */
static struct usmc_lgr *cli_lgr_find(uint16_t port, uid_t uid, int32_t pid)
{
	struct usmc_lgr *lgr;

	for (lgr = lgr_first(); lgr; lgr = lgr->next)
		if (lgr->role == LGR_CLIENT && lgr->port == port && lgr_usable(lgr) && !lgr->oneshot &&
		    lgr->peer_uid == uid && (!pid || lgr->peer_pid == pid) &&
		    (!lgr->crowded || !lgr_crowded(lgr)))
			return lgr;
	return NULL;
}

/*
 * Connects to the channel of the port's listener run by uid; the channel's
 * descriptor, or -1 with *reason.  Never under our lock, and never waits:
 * the name is anyone's to take, and anyone may fill its backlog.
 */
static int cli_chan_open(uint16_t port, uid_t uid, struct ucred *cred, uint32_t *reason)
{
	struct sockaddr_un sun;
	socklen_t sun_len = reg_listener_addr(uid, port, uid != reg_owner(), &sun);
	socklen_t len = sizeof(*cred);
	int fd, err;

	fd = usmc_sys.socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*reason = usmc_env_fail("socket(AF_UNIX)");
		return -1;
	}
	/* A Unix connect does not go on in the background: done now, or EAGAIN if the backlog is full. */
	if (usmc_sys.connect(fd, (struct sockaddr *)&sun, sun_len)) {
		err = errno;
		usmc_sys.close(fd);
		errno = err;
		*reason = err == EAGAIN ? USMC_DECL_CHAN_BUSY : USMC_DECL_PEERNOSMC;
		return -1;
	}
	/* Abstract names are anyone's to take: the name's owner must be who it says. */
	if (usmc_sys.getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, &len) || cred->uid != uid ||
	    (uid != reg_owner() && !usmc_peer_user_allowed(cred->uid))) {
		usmc_sys.close(fd);
		*reason = USMC_DECL_FOREIGN;
		return -1;
	}
	return usmc_fd_lift(fd);
}

/*
 * A usable link group toward the port.  The port's listener must still be
 * the process we know: ports are reused, and a link group to an earlier
 * owner would take our Proposal where the connection does not go.  No
 * listener of our own user: one of the users that policy allows may have
 * it.
 */
static struct usmc_lgr *cli_lgr_lookup(uint16_t port, struct reg_port *reg, bool own_user)
{
	const uid_t *uids;
	int n = own_user ? 0 : usmc_policy_other_users(&uids);
	struct usmc_lgr *lgr = NULL;

	if (own_user)
		return cli_lgr_find(port, reg_owner(), atomic_load(&reg->pid));
	for (int i = 0; i < n && !lgr; i++)
		lgr = cli_lgr_find(port, uids[i], 0);
	return lgr;
}

/* Opens a channel toward the port (see cli_lgr_lookup), without our lock. */
static int cli_chan_open_any(uint16_t port, struct reg_port *reg, bool own_user,
			     struct ucred *cred, uint32_t *reason)
{
	int32_t pid = atomic_load(&reg->pid);
	const uid_t *uids;
	int n, fd = -1;

	if (own_user) {
		fd = cli_chan_open(port, reg_owner(), cred, reason);
		/* The listener died without closing: clear its registry entry. */
		if (fd < 0 && *reason == USMC_DECL_PEERNOSMC && (errno == ECONNREFUSED || errno == ENOENT))
			atomic_compare_exchange_strong(&reg->pid, &pid, 0);
		/* Its backlog is full: make the listener look at it at its next accept. */
		if (fd < 0 && *reason == USMC_DECL_CHAN_BUSY)
			atomic_fetch_or(&reg->flags, REG_KNOCK);
		return fd;
	}
	n = usmc_policy_other_users(&uids);
	*reason = USMC_DECL_PEERNOSMC;
	for (int i = 0; i < n && fd < 0; i++)
		fd = cli_chan_open(port, uids[i], cred, reason);
	return fd;
}

/*
 * The link group for a Proposal toward the port: one we have, or a new
 * one.  Called and returns with our lock held, which it drops while it
 * connects.
 */
struct usmc_lgr *af_cli_lgr_get(uint16_t port, struct reg_port *reg, bool own_user,
				uint32_t *reason)
{
	struct usmc_lgr *lgr = cli_lgr_lookup(port, reg, own_user);
	struct ucred cred;
	int fd;

	if (lgr)
		return lgr;
	usmc_unlock();
	fd = cli_chan_open_any(port, reg, own_user, &cred, reason);
	usmc_lock();
	if (fd < 0)
		return NULL;
	/* Another thread of ours made one meanwhile: one link group with room is enough. */
	lgr = cli_lgr_lookup(port, reg, own_user);
	if (lgr) {
		usmc_sys.close(fd);
		return lgr;
	}
	lgr = lgr_new(fd, LGR_CLIENT, cred.pid, cred.uid);
	if (!lgr) {
		usmc_sys.close(fd);
		*reason = USMC_DECL_MEM;
		return NULL;
	}
	lgr->port = port;
	lgr->own_user = own_user;
	return lgr;
}
