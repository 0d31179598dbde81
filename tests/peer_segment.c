// SPDX-License-Identifier: MIT
/*
 * Segments a hostile peer may hand over, from its own process on a link
 * group's channel (the library's own send and receive), against the check the victim
 * makes before it maps one: only an ordinary shmem memfd sealed against
 * shrinking, growing and further seals is taken.  A hugetlb memfd (a hole
 * punched in it, or a page its pool lacks, is SIGBUS on the reader's
 * side), one sealed only against shrinking, an unsealed one, a plain
 * tmpfs file and a short one are refused with 0x04000000.  In the one
 * taken, the peer punches holes while the victim reads: zeros, no signal.
 * And the end of its connection that a client which closed before the
 * answer published in its ring (af_orphan), read without a mapping from a
 * descriptor not checked yet: a ring names an end only once closed, and
 * only its own; a short file, a slot past its end or a descriptor that is
 * not shmem names none.
 *
 *   peer_segment
 *   peer_segment --huge-pool   with a pool of huge pages (made for the run,
 *                              as root, if there is none), so that only
 *                              the check of the file system refuses the
 *                              hugetlb memfd; exit 77 if none can be had
 */
#include <fcntl.h>
#include <poll.h>
#include <linux/falloc.h>
#include <linux/magic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include "harness.h"
#include "usmc_channel.h"
#include "usmc_core.h"
#include "usmc_seg.h"
#include "usmc_seg_peer.h"

#define SEG_LEN (2u << 20) /* a huge page's size, so that hugetlbfs takes it */
#define RMB 16384

enum kind { GOOD, SHRINK_ONLY, UNSEALED, HUGE_SEALED, HUGE_SHRINK_ONLY, PLAIN_FILE, SHORT, NKINDS };

static const char *const kind_names[NKINDS] = {
	"shmem memfd, all seals", "shmem memfd, F_SEAL_SHRINK only", "memfd without seals",
	"hugetlb memfd, all seals", "hugetlb memfd, F_SEAL_SHRINK only", "tmpfs file",
	"memfd shorter than described",
};

static int make(enum kind k)
{
	const int all = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
	bool huge = k == HUGE_SEALED || k == HUGE_SHRINK_ONLY;
	int fd;

	if (k == PLAIN_FILE) {
		char path[] = "/dev/shm/usmc-peer-seg-XXXXXX";

		fd = mkstemp(path);
		CHECK(fd >= 0 && unlink(path) == 0);
	} else {
		fd = memfd_create("usmc-seg", MFD_CLOEXEC | (k == UNSEALED ? 0 : MFD_ALLOW_SEALING) |
						     (huge ? MFD_HUGETLB : 0));
		if (fd < 0 && huge)
			return -1;
		CHECK(fd >= 0);
	}
	CHECK(ftruncate(fd, k == SHORT ? SEG_LEN / 2 : SEG_LEN) == 0);
	if (k == GOOD || k == HUGE_SEALED || k == SHORT)
		CHECK(fcntl(fd, F_ADD_SEALS, all) == 0);
	else if (k == SHRINK_ONLY || k == HUGE_SHRINK_ONLY)
		CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) == 0);
	return fd;
}

/* On the link group's channel, as the library sends and receives a segment. */
static void send_fd(struct usmc_lgr *lgr, int fd)
{
	struct clc_msg m = { .type = CLC_DECLINE, .version = CLC_VERSION,
			     .decline.reason = USMC_DECL_PEERDECL };

	CHECK(lgr_send(lgr, &m, fd) == 0);
}

static int recv_fd(struct usmc_lgr *lgr)
{
	struct pollfd p = { .fd = lgr->chan, .events = POLLIN };
	struct clc_msg m;
	uint32_t reason;
	int fd, rc;

	while ((rc = lgr_recv(lgr, &m, &fd, &reason)) == 0)
		CHECK(poll(&p, 1, 10000) == 1);
	CHECK(rc == 1 && reason == 0 && m.type == CLC_DECLINE);
	return fd;
}

static int pair[2];

/* The hostile peer: hands each kind over, then punches holes in the one taken. */
static int hostile(void *arg)
{
	struct usmc_lgr *lgr = lgr_new(pair[1], LGR_SERVER, getppid(), getuid());
	int good = -1;

	(void)arg;
	CHECK(lgr);
	for (int k = 0; k < NKINDS; k++) {
		int fd = make((enum kind)k);

		send_fd(lgr, fd);
		if (k == GOOD)
			good = fd;
		else if (fd >= 0)
			close(fd);
	}
	/* Punching needs no write seal absent; our copy is writable. */
	for (int i = 0; i < 200; i++) {

		CHECK(fallocate(good, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, SEG_LEN) == 0);
		CHECK(pwrite(good, "x", 1, (off_t)(i % 512) * 4096) == 1);
	}
	send_fd(lgr, -1);
	return 0;
}

#define HUGE_POOL "/proc/sys/vm/nr_hugepages"

static long huge_before = -1;
static pid_t huge_owner;

static long huge_pages(void)
{
	FILE *f = fopen(HUGE_POOL, "re");
	long n = -1;

	if (f) {
		if (fscanf(f, "%ld", &n) != 1)
			n = -1;
		fclose(f);
	}
	return n;
}

static bool huge_set(long n)
{
	FILE *f = fopen(HUGE_POOL, "we");

	return f && fprintf(f, "%ld\n", n) > 0 && fclose(f) == 0;
}

static void huge_restore(void)
{
	if (huge_before >= 0 && getpid() == huge_owner)
		huge_set(huge_before);
}

/* Two huge pages for the run: the victim's check then meets a hugetlb memfd mmap would take. */
static void huge_pool(void)
{
	long n = huge_pages();

	if (n > 0)
		return;
	huge_owner = getpid();
	if (n < 0 || !huge_set(2)) {
		printf("skipped: no pool of huge pages, and none can be made here (%s)\n",
		       strerror(errno));
		exit(77);
	}
	huge_before = n;
	atexit(huge_restore);
	if (huge_pages() < 1) {
		printf("skipped: the kernel gave no huge page\n");
		exit(77);
	}
}

static void orphan_ends(void)
{
	const uint8_t addr[16] = { [10] = 0xff, [11] = 0xff, 127, 0, 0, 1 }, other[16] = { 1 };
	struct cdc_area cdc = { .orphan = { .port = 40000, .set = 1 } };
	struct clc_rmb_desc d = { .slot_off = 4096 };
	int fd = memfd_create("orphan", MFD_CLOEXEC);

	memcpy(cdc.orphan.addr, addr, sizeof(addr));
	CHECK(fd >= 0 && pwrite(fd, &cdc, sizeof(cdc), d.slot_off) == (ssize_t)sizeof(cdc));
	CHECK(!seg_peer_orphan_is(fd, &d, addr, 40000, false)); /* not closed yet */
	CHECK(seg_peer_orphan_is(fd, &d, addr, 40000, true));   /* gone (killed) */
	CHECK(!seg_peer_orphan_is(fd, &d, addr, 40001, true));
	atomic_store(&cdc.flags, CDC_PEER_CONN_CLOSED);
	CHECK(pwrite(fd, &cdc, sizeof(cdc), d.slot_off) == (ssize_t)sizeof(cdc));
	CHECK(seg_peer_orphan_is(fd, &d, addr, 40000, false));
	CHECK(!seg_peer_orphan_is(fd, &d, addr, 40001, false));
	CHECK(!seg_peer_orphan_is(fd, &d, other, 40000, false));
	d.slot_off = 1u << 30;
	CHECK(!seg_peer_orphan_is(fd, &d, addr, 40000, false));
	d.slot_off = 4096;
	CHECK(ftruncate(fd, 4096 + 8) == 0 && !seg_peer_orphan_is(fd, &d, addr, 40000, false));
	CHECK(!seg_peer_orphan_is(-1, &d, addr, 40000, false));
	close(fd);
	/*
	 * Not shmem: a file of another file system, whose reads could wait
	 * (FUSE, NFS), here one of /var/tmp with the same bytes.  Skipped
	 * where /var/tmp is tmpfs.
	 */
	{
		char path[] = "/var/tmp/usmc-orphan-XXXXXX";
		int ffd = mkstemp(path);
		struct statfs sfs;

		CHECK(ffd >= 0 && unlink(path) == 0);
		CHECK(pwrite(ffd, &cdc, sizeof(cdc), d.slot_off) == (ssize_t)sizeof(cdc));
		CHECK(fstatfs(ffd, &sfs) == 0);
		if (sfs.f_type == TMPFS_MAGIC)
			printf("  not checked: /var/tmp is tmpfs here, no other file system at hand\n");
		CHECK(sfs.f_type == TMPFS_MAGIC || !seg_peer_orphan_is(ffd, &d, addr, 40000, false));
		close(ffd);
	}
	printf("an orphan's published end: read only once closed, only its own, never past the file\n");
}

int main(int argc, char **argv)
{
	struct usmc_lgr *lgr;
	struct usmc_ring ring;
	volatile uint8_t sum = 0;
	pid_t pid;

	if (argc > 1 && !strcmp(argv[1], "--huge-pool"))
		huge_pool();
	CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, pair) == 0);
	pid = h_fork(hostile, NULL);
	lgr = lgr_new(pair[0], LGR_CLIENT, pid, getuid());
	CHECK(lgr);
	for (int k = 0; k < NKINDS; k++) {
		struct clc_rmb_desc d = { .seg_id = (uint32_t)k, .seg_len = SEG_LEN,
					  .rmb_size = RMB, .new_seg = 1 };
		int fd = recv_fd(lgr);
		uint32_t r;

		if (fd < 0) {
			printf("  %-36s cannot be made here: not tried\n", kind_names[k]);
			continue;
		}
		if (k == HUGE_SEALED) {
			void *p = mmap(NULL, SEG_LEN, PROT_READ, MAP_SHARED, fd, 0);

			/* Without a pool of huge pages here, mmap itself refuses it too. */
			printf("  (a hugetlb mapping %s here)\n", p == MAP_FAILED ? "fails" : "works");
			if (p != MAP_FAILED)
				munmap(p, SEG_LEN);
		}
		r = lgr_ring_map_peer(lgr, &d, fd, &ring);
		printf("  %-36s %s (0x%08x)\n", kind_names[k], r ? "refused" : "mapped", r);
		CHECK(k == GOOD ? r == 0 : r == USMC_DECL_SYNCERR);
	}
	/* Read the whole segment while the peer punches holes in it. */
	for (int pass = 0; pass < 400; pass++)
		for (uint32_t off = 0; off < SEG_LEN; off += 4096)
			sum += lgr->rseg[GOOD]->base[off];
	CHECK(h_wait_ok(pid));
	(void)sum;
	printf("the peer punched holes in the segment taken while we read it: no signal\n");
	orphan_ends();
	printf("peer segments: only sealed shmem memfds mapped: ok\n");
	return 0;
}
