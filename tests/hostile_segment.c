// SPDX-License-Identifier: MIT
/*
 * The hostile peer and the segments (hostile_peer.c runs them): the
 * descriptors received over the link group's channel are sealed memfds
 * that map read-only, and a peer that maps its own copy writable through
 * /proc only makes garbage of what it reads itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "hostile_peer.h"
#include "hostile_segment.h"
#include "usmc_conn.h"
#include "usmc_sys.h"

#define KEPT_MAX 16

static ssize_t (*real_recvmsg)(int, struct msghdr *, int);
static int kept_fds[KEPT_MAX];
static int nkept;

/* The library's recvmsg, keeping a duplicate of every descriptor passed. */
static ssize_t recvmsg_keeping_fds(int fd, struct msghdr *mh, int flags)
{
	ssize_t n = real_recvmsg(fd, mh, flags);

	if (n < 0 || !mh->msg_control)
		return n;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		size_t count;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < count && nkept < KEPT_MAX; i++) {
			int passed;

			memcpy(&passed, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			kept_fds[nkept] = fcntl(passed, F_DUPFD_CLOEXEC, 0);
			CHECK(kept_fds[nkept] >= 0);
			nkept++;
		}
	}
	return n;
}

void keep_passed_fds(void)
{
	real_recvmsg = usmc_sys.recvmsg;
	usmc_sys.recvmsg = recvmsg_keeping_fds;
}

static int count_maps(const char *name, const char *perms)
{
	char line[512];
	int n = 0;
	FILE *f = fopen("/proc/self/maps", "re");

	CHECK(f);
	while (fgets(line, sizeof(line), f))
		n += strstr(line, name) && strstr(line, perms);
	fclose(f);
	return n;
}

/* The peers' segments as the victim got them: sealed, and mapped read-only. */
void victim_sealed(int fd)
{
	(void)fd;
	CHECK(nkept >= 2); /* one segment from each peer process */
	for (int i = 0; i < nkept; i++) {
		int seals = fcntl(kept_fds[i], F_GET_SEALS);
		struct stat st;

		CHECK(seals >= 0);
		CHECK((seals & (F_SEAL_SHRINK | F_SEAL_GROW)) == (F_SEAL_SHRINK | F_SEAL_GROW));
		/* What the victim got is read-only; the seals would stop a writable one too. */
		CHECK((fcntl(kept_fds[i], F_GETFL) & O_ACCMODE) == O_RDONLY);
		CHECK(ftruncate(kept_fds[i], 0) < 0);
		CHECK(fstat(kept_fds[i], &st) == 0 && st.st_size > 0);
		close(kept_fds[i]);
	}
	CHECK(count_maps("memfd:usmc-seg", " r--s ") >= 2);
}

void hostile_keeps_quiet(int fd)
{
	(void)fd;
}

/*
 * The hostile side holds the victim's memfd for a moment after it is
 * passed: the descriptor it got does not map writable.
 */
void hostile_write_map(int fd)
{
	(void)fd;
	CHECK(nkept >= 1);
	for (int i = 0; i < nkept; i++) {
		struct stat st;
		void *p;

		CHECK(fstat(kept_fds[i], &st) == 0 && st.st_size > 0);
		p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, kept_fds[i], 0);
		if (p != MAP_FAILED)
			fprintf(stderr, "the victim's segment (%lld bytes) maps writable in its peer\n",
				(long long)st.st_size);
		CHECK(p == MAP_FAILED);
		close(kept_fds[i]);
	}
}

/*
 * A peer of the same user can still open the victim's segment again,
 * writable, through /proc.  It overwrites the victim's CDC area and ring
 * of the attacked connection: the victim reads nothing back from there
 * (its own state is in a memfd the peer never gets), so only what the
 * peer itself reads is garbage, and its own library resets the connection.
 */
void hostile_scribble(int fd)
{
	struct usmc_conn *conn = own_conn(fd);
	char path[40], b;
	uint8_t *p;
	int rw;

	CHECK(nkept >= 1);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", kept_fds[0]);
	rw = open(path, O_RDWR | O_CLOEXEC);
	CHECK(rw >= 0);
	p = mmap(NULL, conn->rx.seg->len, PROT_READ | PROT_WRITE, MAP_SHARED, rw, 0);
	CHECK(p != MAP_FAILED);
	memset(p + conn->rx.slot, 0xa5, CDC_SLOT_HDR + conn->rx.size);
	munmap(p, conn->rx.seg->len);
	close(rw);
	CHECK(usmc_recv(fd, &b, 1, MSG_DONTWAIT) < 0 && errno == ECONNRESET);
	say(&from_hostile, STEP_ATTACKED);
}

void victim_nothing(int fd)
{
	(void)fd;
}
