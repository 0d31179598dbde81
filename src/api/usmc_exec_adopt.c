// SPDX-License-Identifier: MIT
/*
 * Connections across exec, in the new image: the state the old image
 * wrote (usmc_exec.c) is read through the bounded parser
 * (usmc_exec_state.c), the link groups' segments are mapped again, and
 * each connection is found by its TCP socket's inode among the inherited
 * descriptors.  What cannot be taken over ends as close() would have
 * ended it: the peer sees EOF or a reset, never doorbell bytes as data.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "usmc.h"
#include "usmc_close.h"
#include "usmc_bell.h"
#include "usmc_conn.h"
#include "usmc_exec_adopt.h"
#include "usmc_exec_listen.h"
#include "usmc_exec_state.h"
#include "usmc_fdtab.h"
#include "usmc_holders.h"
#include "usmc_listen.h"
#include "usmc_log.h"
#include "usmc_proc.h"
#include "usmc_seg.h"
#include "usmc_seg_peer.h"
#include "usmc_sock.h"
#include "usmc_sys.h"
#include "af_usmc.h"

/* The most state the new image reads: the environment may name any file. */
#define EXEC_MAX_BYTES (64u << 20)

struct inherited {
	struct fd_inode *v;
	uint32_t n, cap;
};

static bool note_socket(int fd, const char *link, const char *path, void *arg)
{
	struct inherited *in = arg;
	unsigned long long inode;

	(void)path;
	if (sscanf(link, "socket:[%llu]", &inode) != 1)
		return false;
	if (in->n == in->cap) {
		uint32_t cap = in->cap ? 2 * in->cap : 32;
		struct fd_inode *v = realloc(in->v, cap * sizeof(*v));

		if (!v)
			return true;
		in->v = v;
		in->cap = cap;
	}
	in->v[in->n++] = (struct fd_inode){ fd, inode };
	return false;
}

/*
 * A connection the new image cannot take over: its peer sees the TCP
 * connection end, the program an EOF rather than doorbell bytes.
 */
static void break_socket(int fd)
{
	int err;

	cdc_drain_bells(fd, &err);
	usmc_sys.shutdown(fd, SHUT_RDWR);
}

static void close_on_exec(int fd)
{
	if (fd >= 0)
		usmc_sys.fcntl(fd, F_SETFD, FD_CLOEXEC);
}

/* Maps a link group's segments again; false if any is not what it should be. */
static bool adopt_segs(struct usmc_lgr *lgr, const struct exec_lgr *l)
{
	bool ok = true;

	for (uint32_t i = 0; i < l->nrseg; i++) {
		close_on_exec(l->rseg[i].fd);
		ok &= lgr_adopt_peer_seg(lgr, l->rseg[i].id, l->rseg[i].fd, l->rseg[i].len) != NULL;
	}
	for (uint32_t i = 0; i < l->nlseg; i++) {
		const struct exec_lseg *e = &l->lseg[i];
		struct usmc_seg *seg;

		close_on_exec(e->fd);
		close_on_exec(e->own_fd);
		seg = lgr_adopt_seg(lgr, i, e->fd, e->own_fd, e->rmb_size, e->nslots, e->sent);
		for (uint32_t j = 0; seg && j < e->nslots; j++) {
			const struct usmc_seg *r =
				e->slot[j].peer_seg == EXEC_NO_SEG ? NULL : lgr->rseg[e->slot[j].peer_seg];

			seg_slot_adopted(seg, j, e->slot[j].state);
			seg->peer_cdc[j] = r ? (const void *)(r->base + e->slot[j].peer_off) : NULL;
			seg->peer_gen[j] = e->slot[j].peer_gen;
		}
		ok &= seg != NULL;
	}
	return ok;
}

static struct usmc_lgr *adopt_lgr(const struct exec_lgr *l)
{
	struct usmc_lgr *lgr;

	close_on_exec(l->chan);
	lgr = lgr_new(l->chan, (enum lgr_role)l->role, l->peer_pid, l->peer_uid);
	if (!lgr) {
		if (l->chan >= 0)
			usmc_sys.close(l->chan);
		return NULL;
	}
	lgr->owner_pid = l->owner_pid;
	lgr->port = l->port;
	lgr->proposed = true; /* in use before the exec: not an idle channel */
	/* Without its channel, a link group of ours can take no new connection. */
	lgr->dead = l->chan < 0 && l->owner_pid == usmc_pid();
	if (!adopt_segs(lgr, l))
		lgr->dead = true;
	return lgr;
}

static void sock_settings(struct usmc_sock *s, const struct exec_sock *e)
{
	int fl = usmc_sys.fcntl(s->fd, F_GETFL);

	/* The description's own, which the exec kept: what a seccomp filter may leave us (usmc_sock.h). */
	usmc_sock_note_nonblock(s, fl >= 0 && (fl & O_NONBLOCK));
	s->sndbuf = e->sndbuf;
	s->rcvbuf = e->rcvbuf;
	s->nodelay = e->nodelay;
	s->busy_poll_us = e->busy_poll_us;
	s->rcvtimeo_ms = e->rcvtimeo_ms;
	s->sndtimeo_ms = e->sndtimeo_ms;
	s->rcvlowat = e->rcvlowat;
	s->linger_reset = e->flags & EXEC_LINGER_RESET;
	s->shut_wr = e->flags & EXEC_SHUT_WR;
	s->shut_rd = e->flags & EXEC_SHUT_RD;
	s->cork = e->flags & EXEC_CORK;
}

/* The connection's rings, from segments adopted before; false if one is missing. */
static bool conn_rings(struct usmc_conn *conn, const struct exec_sock *e)
{
	struct usmc_seg *tx = conn->lgr->lseg[e->tx_seg], *rx = conn->lgr->rseg[e->rx_seg];

	/* A slot in use has no peer CDC area noted yet: a second record for it is refused. */
	if (!tx || !rx || tx->slot_state[e->tx_slot] != SLOT_USED || tx->peer_cdc[e->tx_slot])
		return false;
	seg_ring(&conn->tx, tx, e->tx_slot);
	conn->sh = seg_own(tx, e->tx_slot);
	seg_peer_ring(&conn->rx, rx, e->rx_off, e->rx_size);
	conn->rx_mapped = true;
	conn->peer_gen = e->peer_gen;
	conn->token = e->token;
	usmc_holders_adopt(conn, (e->flags & EXEC_HELD) != 0);
	return true;
}

/*
 * A connection whose descriptors the exec closed: the end of the
 * process's hold, and what close() would have done if it was the last.
 */
static void conn_closed_by_exec(struct usmc_lgr *lgr, const struct exec_sock *e)
{
	struct usmc_conn conn = { .lgr = lgr };
	uint32_t flags = CDC_PEER_DONE_WRITING | CDC_PEER_CONN_CLOSED;

	if (!conn_rings(&conn, e))
		return;
	if (!usmc_holder_last(&conn, -1, e->inode)) {
		lgr_ring_put(lgr, &conn.tx, conn.rx.cdc, conn.peer_gen, NULL);
		return;
	}
	/* Unread data: TCP resets the connection on close. */
	if (conn.sh->rx_prod_seen != conn.sh->rx_cons)
		flags = CDC_PEER_CONN_ABORT;
	conn_publish_flags(&conn, flags);
	lgr_ring_free(lgr, &conn.tx, conn_peer_cdc(&conn), conn.peer_gen);
}

static void adopt_sock(struct usmc_lgr *lgr, const struct exec_sock *e, const struct inherited *in)
{
	struct usmc_sock *s = NULL;
	struct usmc_conn *conn;

	for (uint32_t i = 0; i < in->n; i++) {
		if (in->v[i].inode != e->inode || usmc_sock_get(in->v[i].fd))
			continue;
		if (!s)
			s = usmc_sock_new(in->v[i].fd, e->domain);
		else
			usmc_sock_alias(s, in->v[i].fd);
		if (!s)
			break_socket(in->v[i].fd);
	}
	if (!s) {
		if (lgr)
			conn_closed_by_exec(lgr, e);
		return;
	}
	conn = lgr ? af_conn_new(s, lgr) : NULL;
	if (!conn || !conn_rings(conn, e)) {
		usmc_conn_free(conn);
		usmc_sock_fallback(s, usmc_env_fail("exec: rings"), false);
		break_socket(s->fd);
		return;
	}
	lgr->lseg[e->tx_seg]->peer_cdc[e->tx_slot] = conn->rx.cdc;
	lgr->refs++;
	sock_settings(s, e);
	s->conn = conn;
	usmc_holders_watch_fork();
	usmc_sock_set_state(s, SOCK_SMC);
}

/* The handed-over state, read whole from the descriptor the environment names. */
static void *read_state(size_t *len)
{
	const char *v = getenv(USMC_EXEC_ENV);
	char *end;
	long fd = v ? strtol(v, &end, 10) : -1;
	struct stat st;
	void *buf = NULL;

	unsetenv(USMC_EXEC_ENV);
	if (fd < 0 || fd > INT32_MAX || *end || fstat((int)fd, &st) || !S_ISREG(st.st_mode) ||
	    st.st_size <= 0 || st.st_size > EXEC_MAX_BYTES)
		return NULL;
	buf = malloc((size_t)st.st_size);
	if (buf && pread((int)fd, buf, (size_t)st.st_size, 0) != st.st_size) {
		free(buf);
		buf = NULL;
	}
	usmc_sys.close((int)fd);
	*len = (size_t)st.st_size;
	return buf;
}

void usmc_exec_adopt(void)
{
	struct inherited in = { 0 };
	struct exec_state st;
	struct usmc_lgr **lgrs;
	size_t len = 0;
	void *buf = read_state(&len);

	if (!buf)
		return;
	if (exec_state_parse(buf, len, &st)) {
		free(buf);
		return;
	}
	free(buf);
	if (st.bell >= 0)
		usmc_bell_adopt(st.bell);
	proc_for_each_fd(usmc_pid(), note_socket, &in);
	lgrs = calloc(st.nlgr ? st.nlgr : 1, sizeof(*lgrs));
	usmc_lock();
	for (uint32_t i = 0; lgrs && i < st.nlgr; i++)
		lgrs[i] = adopt_lgr(&st.lgr[i]);
	for (uint32_t i = 0; i < st.nsock; i++)
		adopt_sock(lgrs ? lgrs[st.sock[i].lgr] : NULL, &st.sock[i], &in);
	exec_listen_adopt(&st, in.v, in.n);
	/* A link group that came along for nothing goes (refs 0). */
	for (uint32_t i = 0; lgrs && i < st.nlgr; i++)
		if (lgrs[i] && (lgrs[i]->dead || lgrs[i]->owner_pid != usmc_pid()) && !lgrs[i]->refs)
			lgr_terminate(lgrs[i]);
	usmc_unlock();
	/* A listener handed over gets its side queue at this image's first fork, if it has none. */
	if (st.nlisten)
		af_listen_watch_fork();
	free(lgrs);
	free(in.v);
	exec_state_free(&st);
}
