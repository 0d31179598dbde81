// SPDX-License-Identifier: MIT
/*
 * Connections across exec (see usmc_exec.h): what the old image writes
 * before the exec.  What the new image takes over: usmc_exec_adopt.c.
 *
 * The new image inherits a connection when one of its socket's
 * descriptors is not close-on-exec.  Its link group goes along whole:
 * the segments both ways, the slots' states, and every connection of it,
 * so that those whose descriptors the exec closes are closed properly by
 * the new image (or left to a forked holder), as close() would have.  The
 * channel goes along only when this process owns it (an exec, not a
 * forked child's exec nor a posix_spawn): the peer then sees nothing at
 * all, the same process with the same pid.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "usmc.h"
#include "usmc_bell.h"
#include "usmc_conn.h"
#include "usmc_exec.h"
#include "usmc_exec_child.h"
#include "usmc_exec_listen.h"
#include "usmc_exec_state.h"
#include "usmc_fdtab.h"
#include "usmc_holders.h"
#include "usmc_listen.h"
#include "usmc_log.h"
#include "usmc_proc.h"
#include "usmc_settle.h"
#include "usmc_sock.h"
#include "usmc_sys.h"

/* The largest state the new image reads: far more than EXEC_MAX_SOCKS need. */
/* ---- before the exec ---- */

struct pick {
	struct usmc_sock *s;
	bool inherit; /* a descriptor of it stays open across the exec */
};

static int pick_cmp(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)((const struct pick *)a)->s, y = (uintptr_t)((const struct pick *)b)->s;

	return x < y ? -1 : x > y;
}

bool exec_fd_inherited(int fd)
{
	int fl = usmc_sys.fcntl(fd, F_GETFD);

	return fl >= 0 && !(fl & FD_CLOEXEC);
}

/* Settles the handshakes of inherited sockets: the new image knows no pending ones. */
static void settle_inherited(void)
{
	struct usmc_sock *s;

	af_accept_finish_all();
	for (int fd = 0; (s = usmc_fdtab_next(&fd)); fd++)
		if (s->state == SOCK_PROPOSED && exec_fd_inherited(fd))
			af_settle_fully(s);
}

/*
 * Every socket in shared memory once, sorted, with whether the new image
 * inherits it: by its descriptors' close-on-exec flags, or in a vfork
 * child by what the child holds.
 */
static struct pick *pick_socks(uint32_t *n, const struct exec_child *child)
{
	struct pick *p = NULL, *grown;
	uint32_t cap = 0, k = 0;
	struct usmc_sock *s;

	*n = 0;
	for (int fd = 0; (s = usmc_fdtab_next(&fd)); fd++) {
		if (s->state != SOCK_SMC || !s->conn || !s->conn->tx.seg || !s->conn->rx_mapped)
			continue;
		if (*n == cap) {
			cap = cap ? 2 * cap : 64;
			grown = realloc(p, cap * sizeof(*p));
			if (!grown)
				return free(p), NULL;
			p = grown;
		}
		p[(*n)++] = (struct pick){ s, child ? exec_child_holds(child, fd) : exec_fd_inherited(fd) };
	}
	if (!*n)
		return p;
	qsort(p, *n, sizeof(*p), pick_cmp);
	for (uint32_t i = 1; i < *n; i++) {
		if (p[i].s == p[k].s)
			p[k].inherit |= p[i].inherit;
		else
			p[++k] = p[i];
	}
	*n = k + 1;
	return p;
}

static int lgr_index(struct usmc_lgr **lgrs, uint32_t n, const struct usmc_lgr *lgr)
{
	for (uint32_t i = 0; i < n; i++)
		if (lgrs[i] == lgr)
			return (int)i;
	return -1;
}

/* Where a pointer into one of the peer's segments points: segment id and offset. */
static void peer_ref(const struct usmc_lgr *lgr, const void *p, struct exec_slot *t)
{
	const uint8_t *b = p;

	t->peer_seg = EXEC_NO_SEG;
	for (uint32_t id = 0; p && id < lgr->nrseg; id++) {
		const struct usmc_seg *r = lgr->rseg[id];

		if (r && b >= r->base && b < r->base + r->len) {
			t->peer_seg = id;
			t->peer_off = (uint32_t)(b - r->base);
			return;
		}
	}
}

static bool describe_segs(const struct usmc_lgr *lgr, struct exec_lgr *l)
{
	for (uint32_t id = 0; id < lgr->nrseg; id++)
		l->nrseg += lgr->rseg[id] != NULL;
	l->nlseg = lgr->nlseg;
	l->rseg = calloc(l->nrseg ? l->nrseg : 1, sizeof(*l->rseg));
	l->lseg = calloc(l->nlseg ? l->nlseg : 1, sizeof(*l->lseg));
	if (!l->rseg || !l->lseg)
		return false;
	for (uint32_t id = 0, k = 0; id < lgr->nrseg; id++) {
		if (lgr->rseg[id] && lgr->rseg[id]->fd < 0) {
			errno = EMFILE;
			return false;
		}
		if (lgr->rseg[id])
			l->rseg[k++] = (struct exec_rseg){ id, lgr->rseg[id]->fd, lgr->rseg[id]->len };
	}
	for (uint32_t i = 0; i < l->nlseg; i++) {
		const struct usmc_seg *seg = lgr->lseg[i];
		struct exec_lseg *e = &l->lseg[i];

		/* Its descriptors went to the program at EMFILE: nothing to map again. */
		if (!seg || seg->fd < 0) {
			errno = seg ? EMFILE : errno;
			return false;
		}
		*e = (struct exec_lseg){ .fd = seg->fd, .own_fd = seg->own_fd, .len = seg->len,
					 .rmb_size = seg->rmb_size, .nslots = seg->nslots,
					 .sent = seg->sent };
		/*
		 * A slot in use has no peer CDC area to note: the one an
		 * adoption noted for it only marks it taken, and the next
		 * image's adoption would take it for a second record.
		 */
		for (uint32_t j = 0; j < seg->nslots; j++) {
			bool used = seg->slot_state[j] == SLOT_USED;

			e->slot[j].state = seg->slot_state[j];
			e->slot[j].peer_gen = seg->peer_gen[j];
			peer_ref(lgr, used ? NULL : seg->peer_cdc[j], &e->slot[j]);
		}
	}
	return true;
}

static void describe_lgr(const struct usmc_lgr *lgr, bool spawn, struct exec_lgr *l)
{
	bool ours = !spawn && !lgr->dead && lgr->owner_pid == usmc_pid();

	l->chan = ours ? lgr->chan : -1;
	l->role = lgr->role;
	l->peer_pid = lgr->peer_pid;
	l->peer_uid = lgr->peer_uid;
	l->owner_pid = lgr->owner_pid;
	l->port = lgr->port;
}

static void describe_sock(const struct usmc_sock *s, uint32_t lgr, bool held, bool vforked,
			  struct exec_sock *e)
{
	const struct usmc_conn *conn = s->conn;

	*e = (struct exec_sock){
		.inode = exec_sock_inode(s->fd, vforked),
		.lgr = lgr,
		.domain = s->domain,
		.sndbuf = s->sndbuf,
		.rcvbuf = s->rcvbuf,
		.nodelay = s->nodelay,
		.busy_poll_us = s->busy_poll_us,
		.rcvtimeo_ms = s->rcvtimeo_ms,
		.sndtimeo_ms = s->sndtimeo_ms,
		.rcvlowat = s->rcvlowat,
		.flags = (s->linger_reset ? EXEC_LINGER_RESET : 0) | (sock_shut(s, CONN_SHUT_WR) ? EXEC_SHUT_WR : 0) |
			 (sock_shut(s, CONN_SHUT_RD) ? EXEC_SHUT_RD : 0) | (s->cork ? EXEC_CORK : 0) |
			 (held ? EXEC_HELD : 0),
		.tx_seg = conn->tx.seg->id,
		.tx_slot = conn->tx.slot,
		.rx_seg = conn->rx.seg->id,
		.rx_off = conn->rx.slot,
		.rx_size = conn->rx.size,
		.peer_gen = conn->peer_gen,
		.token = conn->token,
	};
}

/*
 * Whether the new image holds the connection (usmc_holders.c): after an
 * exec, where this process did; a spawned program, where it inherits the
 * socket, and then it is counted now, before it exists.
 */
static bool new_image_holds(const struct pick *p, bool spawn, struct usmc_exec_prep *prep)
{
	struct usmc_conn *conn = p->s->conn;

	if (!spawn)
		return atomic_load(&conn->holds);
	if (!p->inherit || !usmc_holder_add(conn))
		return false;
	if (prep->ncounted < EXEC_COUNTED_MAX)
		prep->counted[prep->ncounted++] = conn;
	return true;
}

/* The link groups of inherited sockets, and all their connections. */
static int describe(struct pick *p, uint32_t n, bool spawn, bool vforked, struct exec_state *st,
		    struct usmc_exec_prep *prep)
{
	struct usmc_lgr *lgrs[EXEC_MAX_LGRS];
	uint32_t nlgr = 0;

	for (uint32_t i = 0; i < n; i++) {
		struct usmc_lgr *lgr = p[i].s->conn->lgr;

		if (!p[i].inherit || lgr_index(lgrs, nlgr, lgr) >= 0)
			continue;
		if (nlgr == EXEC_MAX_LGRS)
			return -1;
		lgrs[nlgr++] = lgr;
	}
	st->writer = usmc_pid();
	st->lgr = calloc(nlgr ? nlgr : 1, sizeof(*st->lgr));
	st->sock = calloc(n ? n : 1, sizeof(*st->sock));
	if (!st->lgr || !st->sock)
		return -1;
	for (uint32_t i = 0; i < nlgr; i++) {
		st->nlgr = i + 1;
		describe_lgr(lgrs[i], spawn, &st->lgr[i]);
		if (!describe_segs(lgrs[i], &st->lgr[i]))
			return -1;
	}
	for (uint32_t i = 0; i < n && st->nsock < EXEC_MAX_SOCKS; i++) {
		int l = lgr_index(lgrs, nlgr, p[i].s->conn->lgr);

		if (l < 0)
			continue;
		describe_sock(p[i].s, (uint32_t)l, new_image_holds(&p[i], spawn, prep), vforked,
			      &st->sock[st->nsock++]);
	}
	return nlgr ? 0 : 1;
}

/* The state in a memfd that stays open across the exec. */
static int write_state(const struct exec_state *st)
{
	size_t len = exec_state_size(st);
	int fd = memfd_create("usmc-exec", 0);
	void *map;
	bool ok;

	if (fd < 0)
		return -1;
	map = ftruncate(fd, (off_t)len) ? MAP_FAILED
					: mmap(NULL, len, PROT_WRITE, MAP_SHARED, fd, 0);
	ok = map != MAP_FAILED && exec_state_encode(st, map, len) == len;
	if (map != MAP_FAILED)
		munmap(map, len);
	if (!ok) {
		usmc_sys.close(fd);
		return -1;
	}
	return fd;
}

static bool keep_open(struct usmc_exec_prep *p, int fd)
{
	if (fd < 0)
		return true;
	if (usmc_sys.fcntl(fd, F_SETFD, 0))
		return false;
	p->kept[p->nkept++] = fd;
	return true;
}

/* Clears close-on-exec of every descriptor the new image will map or use. */
static bool keep_descriptors(struct usmc_exec_prep *p, const struct exec_state *st)
{
	size_t n = 1 + (1 + SIDE_QUEUES) * (size_t)st->nlisten;

	for (uint32_t i = 0; i < st->nlgr; i++)
		n += 1 + st->lgr[i].nrseg + 2 * (size_t)st->lgr[i].nlseg;
	p->kept = malloc(n * sizeof(int));
	if (!p->kept || !keep_open(p, st->bell))
		return false;
	/* A Unix listener two TCP listeners share is kept once. */
	for (uint32_t i = 0; i < st->nlisten; i++) {
		for (int k = -1; k < SIDE_QUEUES; k++) {
			int fd = k < 0 ? st->listen[i].ufd : st->listen[i].side[k];

			if (fd >= 0 && !exec_fd_inherited(fd) && !keep_open(p, fd))
				return false;
		}
	}
	for (uint32_t i = 0; i < st->nlgr; i++) {
		const struct exec_lgr *l = &st->lgr[i];
		bool ok = keep_open(p, l->chan);

		for (uint32_t j = 0; ok && j < l->nrseg; j++)
			ok = keep_open(p, l->rseg[j].fd);
		for (uint32_t j = 0; ok && j < l->nlseg; j++)
			ok = keep_open(p, l->lseg[j].fd) && keep_open(p, l->lseg[j].own_fd);
		if (!ok)
			return false;
	}
	return true;
}

int usmc_exec_prepare(struct usmc_exec_prep *p, bool spawn)
{
	struct exec_state st = { 0 };
	struct exec_child child = { 0 };
	bool vforked = usmc_vfork_child();
	struct pick *picks;
	uint32_t n;
	int rc, err;

	*p = (struct usmc_exec_prep){ .fd = -1, .bell = -1 };
	/*
	 * A vfork child hands over as a posix_spawn does (its parent keeps
	 * the link groups); the handshakes it cannot settle are its parent's.
	 */
	if (vforked) {
		spawn = true;
		if (!exec_child_scan(&child)) {
			exec_child_free(&child);
			errno = ENOMEM;
			return -1;
		}
	} else {
		settle_inherited();
	}
	usmc_lock();
	picks = pick_socks(&n, vforked ? &child : NULL);
	errno = ENOMEM;
	rc = picks ? describe(picks, n, spawn, vforked, &st, p) : n ? -1 : 1;
	/*
	 * The holders' bell goes along, so that a holder that came by fork,
	 * then exec, hears the others' shutdowns.  A spawned child holds the
	 * connections beside us, as a forked one does: the bell is made now
	 * if need be.  A vfork child's parent made it before the child
	 * started (usmc_holders_vforking), and the child keeps its own copy.
	 */
	if (rc == 0 && spawn && !vforked && st.nsock)
		usmc_bell_prepare();
	st.bell = vforked ? (rc == 0 ? (p->bell = exec_child_bell()) : -1) : usmc_bell_fd();
	/* Listeners go along with a plain exec (nginx's binary upgrade), not into a spawn. */
	if (rc >= 0 && !spawn && !exec_listen_describe(&st))
		rc = -1;
	else if (rc == 1 && st.nlisten)
		rc = 0;
	err = rc < 0 ? errno : ENOMEM;
	if (rc == 0 && vforked) {
		/* Nothing to undo but closing what the child opened: an exec failure ends it. */
		rc = exec_child_reopen(&st) && (p->fd = write_state(&st)) >= 0 ? 0 : -1;
	} else if (rc == 0) {
		p->fd = write_state(&st);
		rc = p->fd >= 0 && keep_descriptors(p, &st) ? 0 : -1;
	}
	usmc_unlock();
	free(picks);
	exec_child_free(&child);
	exec_state_free(&st);
	if (rc < 0) {
		usmc_exec_undo(p);
		errno = err;
		return -1;
	}
	return 0;
}

void usmc_exec_uncount(struct usmc_exec_prep *p)
{
	struct usmc_sock *s;

	/* Only connections still in the table: one closed meanwhile may be freed. */
	for (int fd = 0; p->ncounted && (s = usmc_fdtab_next(&fd)); fd++) {
		for (uint32_t k = 0; s->conn && k < p->ncounted; k++) {
			if (p->counted[k] == s->conn) {
				usmc_holder_sub(s->conn);
				p->counted[k] = p->counted[--p->ncounted];
				break;
			}
		}
	}
	p->ncounted = 0;
}

void usmc_exec_undo(struct usmc_exec_prep *p)
{
	for (int i = 0; i < p->nkept; i++)
		usmc_sys.fcntl(p->kept[i], F_SETFD, FD_CLOEXEC);
	if (p->bell >= 0)
		usmc_sys.fcntl(p->bell, F_SETFD, FD_CLOEXEC);
	free(p->kept);
	if (p->fd >= 0)
		usmc_sys.close(p->fd);
	*p = (struct usmc_exec_prep){ .fd = -1, .bell = -1 };
}
