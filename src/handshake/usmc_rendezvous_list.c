// SPDX-License-Identifier: MIT
/*
 * The rendezvous directory's listing (usmc_rendezvous.c): the listeners of
 * other network namespaces, `usmc-<port>-<netns>` (`-m<pid>` for a member
 * of an SO_REUSEPORT group), each namespace's addresses,
 * `usmc-ns-<netns>`, and its redirects, `usmc-redirect-<netns>`, which
 * tell a client where its Proposal goes.
 *
 * A connect to another namespace read the directory and a namespace's
 * list at each call: ten system calls, which every plain connection to a
 * remote address paid too wherever the directory exists.  The listing is
 * kept now, with what the directory's stat said when it was read.  Every
 * change of the directory is a name made, renamed over or removed
 * (listeners bind under a name of their own and rename it; lists are
 * written whole and renamed), and each moves the directory's mtime: one
 * stat tells whether the kept listing still holds.  A listing made within
 * RACY_NS of the mtime it saw is not kept, since a change in the same tick
 * of the file system's clock would leave the mtime as it was (what git
 * calls racy entries).  A directory with more listeners or namespaces than
 * a listing keeps is read at each connect, as before.  A listing out of
 * date costs shared memory, never a connection: a listener that went
 * refuses its carrier, one that came is found at the next change.
 */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "usmc.h"
#include "usmc_addr.h"
#include "usmc_lock.h"
#include "usmc_registry.h"
#include "usmc_rendezvous.h"
#include "usmc_rendezvous_list.h"
#include "usmc_rendezvous_nat.h"
#include "usmc_sys.h"

#define LIST_LISTENERS_MAX 64
#define LIST_NS_MAX 16
#define RACY_NS 50000000L
/* "usmc-65535-<netns>-m<pid>" and its end, with room to spare. */
#define LISTENER_NAME_MAX 48

struct list_ns {
	char name[24];
	int n; /* addresses listed, 0 if the file is not there or not our user's */
	uint8_t addr[RDV_ADDR_MAX][16];
	int nred; /* its redirects, usmc-redirect-<netns> (rdv_redirect_set) */
	struct rdv_redirect red[RDV_REDIRECTS_MAX];
};

struct list_listener {
	uint16_t port;
	uint8_t ns; /* in listing.ns */
	uint64_t file; /* listener_file */
	char name[LISTENER_NAME_MAX];
};

static struct {
	bool kept;
	dev_t dev;
	ino_t ino;
	struct timespec mtime;
	uid_t uid;
	unsigned long own;
	int n, nns;
	struct list_listener l[LIST_LISTENERS_MAX];
	struct list_ns ns[LIST_NS_MAX];
} listing; /* LOCK_RDV_LIST: all of it */

/* What a client looks for: the address and port it dials, and the ports a NAT maps them to. */
struct want {
	uint8_t a[16];
	uint16_t port;
	uint16_t nat_to[RDV_PORTS_MAX];
	int nnat;
	struct rdv_targets *t;
};

/*
 * The listener of port a directory entry names, "usmc-<port>-<netns>", or
 * "usmc-<port>-<netns>-m<pid>" for a member of an SO_REUSEPORT group: its
 * netns into ns, false if the name is none of those (or longer than any
 * of ours: LISTENER_NAME_MAX).
 */
static bool listener_ns(const char *name, uint16_t *port, char ns[24])
{
	size_t digits;
	char *end;
	unsigned long v;

	if (strlen(name) >= LISTENER_NAME_MAX || strncmp(name, "usmc-", 5) ||
	    !isdigit((unsigned char)name[5]))
		return false;
	v = strtoul(name + 5, &end, 10);
	if (*end != '-' || !v || v > 65535)
		return false;
	name = end + 1;
	digits = strspn(name, "0123456789");
	if (!digits || digits >= 24 ||
	    (name[digits] && (name[digits] != '-' || name[digits + 1] != 'm' ||
			      !name[digits + 2] ||
			      strspn(name + digits + 2, "0123456789") != strlen(name + digits + 2))))
		return false;
	memcpy(ns, name, digits);
	ns[digits] = '\0';
	*port = (uint16_t)v;
	return true;
}

/* The list of addresses of the namespace ns->name, from a file of our own user's only. */
static void ns_read(struct list_ns *ns)
{
	struct sockaddr_un sun;
	char file[48];
	struct stat st;
	ssize_t n = 0;
	int fd;

	snprintf(file, sizeof(file), "usmc-ns-%s", ns->name);
	rdv_addr(file, &sun);
	fd = usmc_sys.open(sun.sun_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd >= 0) {
		if (!fstat(fd, &st) && S_ISREG(st.st_mode) && st.st_uid == getuid())
			n = usmc_sys.read(fd, ns->addr, sizeof(ns->addr));
		usmc_sys.close(fd);
	}
	ns->n = n > 0 ? (int)(n / 16) : 0;
	snprintf(file, sizeof(file), "usmc-redirect-%s", ns->name);
	rdv_addr(file, &sun);
	ns->nred = rdv_redirects_read(sun.sun_path, ns->red);
}

/*
 * Whether a listener of lport in namespace ns may hold the connection w
 * looks for.  With redirects, the one a redirect there gives the port to
 * instead of the port's own (a mesh's sidecar proxy).
 */
static bool wanted(const struct want *w, uint16_t lport, const struct list_ns *ns, bool redirects)
{
	uint16_t port = w->port;

	for (int i = 0; i < w->nnat; i++)
		if (w->nat_to[i] == lport)
			return true;
	for (int i = 0; redirects && i < ns->nred; i++)
		if (ns->red[i].port == port && ns->red[i].to)
			port = ns->red[i].to;
	/* Not through a NAT: the namespace has the very address and port we dial. */
	if (lport != port)
		return false;
	for (int i = 0; i < ns->n; i++)
		if (!memcmp(ns->addr[i], w->a, 16))
			return true;
	return false;
}

/*
 * Which socket file a listener's name is now: its inode number and its
 * change time (its bind, its rename into the name).  A listener bound
 * later under the same name may get the inode number of the one before
 * it, which its clients' segments must not serve (rdv_reuse_key).
 */
static uint64_t listener_file(const char *name)
{
	struct sockaddr_un sun;
	struct stat st;

	rdv_addr(name, &sun);
	if (lstat(sun.sun_path, &st))
		return 0;
	return (uint64_t)st.st_ino * 0x9e3779b97f4a7c15ull ^
	       ((uint64_t)st.st_ctim.tv_sec * 1000000000ull + (uint64_t)st.st_ctim.tv_nsec);
}

static void target_add(struct rdv_targets *t, const char *name, uint64_t file)
{
	if (t->n == RDV_TARGETS_MAX)
		return;
	t->len[t->n] = rdv_addr(name, &t->sun[t->n]);
	t->file[t->n] = file;
	t->n++;
}

/* The listing's namespace named ns, added if new; -1 once the listing holds no more. */
static int ns_index(const char *ns)
{
	for (int i = 0; i < listing.nns; i++)
		if (!strcmp(listing.ns[i].name, ns))
			return i;
	if (listing.nns == LIST_NS_MAX)
		return -1;
	snprintf(listing.ns[listing.nns].name, sizeof(listing.ns[0].name), "%s", ns);
	return listing.nns++;
}

static bool listing_holds(const struct stat *st, uid_t uid, unsigned long own)
{
	return listing.kept && listing.dev == st->st_dev && listing.ino == st->st_ino &&
	       listing.mtime.tv_sec == st->st_mtim.tv_sec &&
	       listing.mtime.tv_nsec == st->st_mtim.tv_nsec && listing.uid == uid &&
	       listing.own == own;
}

/*
 * Reads the directory into the listing, kept unless too recent a change
 * or too many entries; entries past what it holds are matched against w
 * as they are read.
 */
static void listing_read(const char *dir, const struct stat *st, uid_t uid, unsigned long own,
			 const struct want *w)
{
	struct timespec now;
	char own_name[24];
	bool full = false;
	struct dirent *e;
	DIR *d;

	listing.kept = false;
	listing.n = listing.nns = 0;
	snprintf(own_name, sizeof(own_name), "%lu", own);
	d = opendir(dir);
	if (!d)
		return;
	while ((e = readdir(d))) {
		uint16_t lport;
		char ns[24];
		int k;

		if (!listener_ns(e->d_name, &lport, ns) || !strcmp(ns, own_name))
			continue;
		if (!full && listing.n < LIST_LISTENERS_MAX && (k = ns_index(ns)) >= 0) {
			struct list_listener *l = &listing.l[listing.n++];

			l->port = lport;
			l->ns = (uint8_t)k;
			memcpy(l->name, e->d_name, strlen(e->d_name) + 1);
			l->file = listener_file(l->name);
			continue;
		}
		full = true;
		if (w->t->n < RDV_TARGETS_MAX) {
			struct list_ns other;

			snprintf(other.name, sizeof(other.name), "%s", ns);
			ns_read(&other);
			if (wanted(w, lport, &other, true))
				target_add(w->t, e->d_name, listener_file(e->d_name));
		}
	}
	closedir(d);
	for (int i = 0; i < listing.nns; i++)
		ns_read(&listing.ns[i]);
	clock_gettime(CLOCK_REALTIME, &now);
	if (full || (now.tv_sec - st->st_mtim.tv_sec) * 1000000000L +
				    (now.tv_nsec - st->st_mtim.tv_nsec) <=
			    RACY_NS)
		return;
	listing.kept = true;
	listing.dev = st->st_dev;
	listing.ino = st->st_ino;
	listing.mtime = st->st_mtim;
	listing.uid = uid;
	listing.own = own;
}

uint32_t rdv_targets_find(const struct sockaddr *dst, uint16_t port, struct rdv_targets *t)
{
	const struct rdv_nat *env;
	struct rdv_nat file = { 0 };
	struct want w = { .port = port, .t = t };
	unsigned long own = usmc_netns_inode();
	uid_t uid = getuid();
	const char *dir;
	uint16_t dport;
	struct stat st;

	t->n = 0;
	t->here = false;
	if (!rdv_enabled() || !usmc_addr16(dst, w.a, &dport))
		return USMC_DECL_NOSMCDEV;
	dir = rdv_dir(&env);
	rdv_nat_file(dir, &file);
	w.nnat = rdv_nat_ports(env, w.a, port, w.nat_to, 0);
	w.nnat = rdv_nat_ports(&file, w.a, port, w.nat_to, w.nnat);
	if (stat(dir, &st))
		return USMC_DECL_NOSMCDEV;
	usmc_rank_lock(LOCK_RDV_LIST);
	if (!listing_holds(&st, uid, own))
		listing_read(dir, &st, uid, own, &w);
	/* A redirect whose proxy is gone: the port's own listeners, as if there were none. */
	for (int pass = 0; pass < 2 && !t->n; pass++)
		for (int i = 0; i < listing.n; i++) {
			const struct list_listener *l = &listing.l[i];

			if (wanted(&w, l->port, &listing.ns[l->ns], pass == 0))
				target_add(t, l->name, l->file);
		}
	t->here = t->n || w.nnat;
	for (int i = 0; i < listing.nns && !t->here; i++)
		for (int j = 0; j < listing.ns[i].n && !t->here; j++)
			t->here = !memcmp(listing.ns[i].addr[j], w.a, 16);
	usmc_rank_unlock(LOCK_RDV_LIST);
	return t->n ? 0 : USMC_DECL_NOSMCDEV;
}
