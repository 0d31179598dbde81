// SPDX-License-Identifier: MIT
/*
 * usmc_capture.c - pcapng of the data in shared memory (see usmc_capture.h).
 *
 * The file is opened on the first segment and checked (same inode) before
 * each write: a program that closes every descriptor it does not know
 * would otherwise let a later segment land in a file of its own that
 * reuses the number.  A forked child opens a file of its own (with %p,
 * its own name): appending to its parent's would interleave two files'
 * blocks.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "usmc_addr.h"
#include "usmc_capture.h"
#include "usmc_lock.h"
#include "usmc_log.h"
#include "usmc_proc.h"
#include "usmc_sys.h"

#define PCAPNG_SHB 0x0A0D0D0Au
#define PCAPNG_IDB 1u
#define PCAPNG_EPB 6u
#define LINKTYPE_RAW 101 /* an IPv4 or IPv6 header first */
#define SEG_MAX 32768    /* payload per synthetic segment */
#define ISN 1            /* both directions start their sequence here */

bool usmc_capture_on;

static struct {
	char pattern[256];
	char path[300];
	int port;
	int fd;
	pid_t owner; /* whose file fd is: a forked child opens its own */
	dev_t dev;
	ino_t ino;
	bool failed;
} cap = { .fd = -1 };

void usmc_capture_init(void)
{
	const char *v = getenv("USMC_CAPTURE"), *port = getenv("USMC_CAPTURE_PORT");

	if (!v || !*v || strlen(v) >= sizeof(cap.pattern))
		return;
	strcpy(cap.pattern, v);
	cap.port = port ? atoi(port) : 0;
	usmc_capture_on = true;
}

/* The pattern with %p made this process's id, so that several processes can capture. */
static void make_path(void)
{
	size_t n = 0;

	for (const char *v = cap.pattern; *v && n + 12 < sizeof(cap.path); v++) {
		if (v[0] == '%' && v[1] == 'p')
			n += (size_t)snprintf(cap.path + n, sizeof(cap.path) - n, "%d", (int)usmc_pid()), v++;
		else
			cap.path[n++] = *v;
	}
	cap.path[n] = 0;
}

static bool write_all(const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = usmc_sys.write(cap.fd, p, len);

		if (n <= 0)
			return false;
		p += n, len -= (size_t)n;
	}
	return true;
}

/* With LOCK_CAPTURE held: the file is ours and open, with its header written. */
static bool file_ready(void)
{
	static const uint32_t shb[7] = { PCAPNG_SHB, 28, 0x1A2B3C4D, 1, 0xffffffffu, 0xffffffffu, 28 };
	static const uint32_t idb[5] = { PCAPNG_IDB, 20, LINKTYPE_RAW, 65535 + 64, 20 };
	struct stat st;

	if (cap.owner != usmc_pid()) {
		/* A forked child: the descriptor is its parent's file, not to be written. */
		cap.owner = usmc_pid();
		cap.failed = false;
		cap.fd = -1;
		make_path();
	}
	if (cap.failed)
		return false;
	if (cap.fd >= 0 && fstat(cap.fd, &st) == 0 && st.st_dev == cap.dev && st.st_ino == cap.ino)
		return true;
	cap.fd = usmc_sys.open(cap.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (cap.fd < 0 || fstat(cap.fd, &st) || !write_all(shb, sizeof(shb)) ||
	    !write_all(idb, sizeof(idb))) {
		usmc_log(USMC_LOG_WARN, "capture %s: cannot write: %m", cap.path);
		cap.failed = true;
		return false;
	}
	cap.dev = st.st_dev, cap.ino = st.st_ino;
	return true;
}

static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)(p[len - 1] << 8);
	return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons((uint16_t)~sum);
}

struct endpoints {
	int family;
	uint8_t src[16], dst[16];
	uint16_t sport, dport; /* network order */
};

static bool endpoints_of(int fd, bool sent, struct endpoints *e)
{
	struct sockaddr_storage l, p;
	socklen_t ll = sizeof(l), pl = sizeof(p);
	uint8_t la[16], pa[16];
	uint16_t lp, pp;
	int lf, pf;

	if (usmc_sys.getsockname(fd, (struct sockaddr *)&l, &ll) ||
	    getpeername(fd, (struct sockaddr *)&p, &pl))
		return false;
	lf = usmc_addr_plain((struct sockaddr *)&l, la, &lp);
	pf = usmc_addr_plain((struct sockaddr *)&p, pa, &pp);
	if (!lf || lf != pf)
		return false;
	if (cap.port && ntohs(lp) != cap.port && ntohs(pp) != cap.port)
		return false;
	e->family = lf;
	memcpy(e->src, sent ? la : pa, 16);
	memcpy(e->dst, sent ? pa : la, 16);
	e->sport = sent ? lp : pp;
	e->dport = sent ? pp : lp;
	return true;
}

/* One segment: IP and TCP headers, then payload, as an enhanced packet block. */
static void put_segment(const struct endpoints *e, uint32_t seq, const uint8_t *data, size_t len)
{
	_Alignas(8) uint8_t pkt[60 + SEG_MAX + 4] = { 0 };
	size_t ip = e->family == AF_INET ? 20 : 40, total = ip + 20 + len, padded = (total + 3) & ~3u;
	uint8_t *tcp = pkt + ip;
	uint32_t sum, blk[7];
	struct timespec ts;
	uint64_t us;

	if (e->family == AF_INET) {
		pkt[0] = 0x45, pkt[8] = 64, pkt[9] = IPPROTO_TCP;
		*(uint16_t *)(pkt + 2) = htons((uint16_t)total);
		memcpy(pkt + 12, e->src, 4), memcpy(pkt + 16, e->dst, 4);
		*(uint16_t *)(pkt + 10) = csum_fold(csum_add(0, pkt, 20));
		sum = csum_add(0, pkt + 12, 8);
	} else {
		pkt[0] = 0x60, pkt[6] = IPPROTO_TCP, pkt[7] = 64;
		*(uint16_t *)(pkt + 4) = htons((uint16_t)(20 + len));
		memcpy(pkt + 8, e->src, 16), memcpy(pkt + 24, e->dst, 16);
		sum = csum_add(0, pkt + 8, 32);
	}
	*(uint16_t *)(tcp + 0) = e->sport, *(uint16_t *)(tcp + 2) = e->dport;
	*(uint32_t *)(tcp + 4) = htonl(seq);
	tcp[12] = 5 << 4, tcp[13] = 0x18; /* PSH, ACK */
	*(uint16_t *)(tcp + 14) = htons(65535);
	memcpy(tcp + 20, data, len);
	sum += IPPROTO_TCP + (uint32_t)(20 + len);
	*(uint16_t *)(tcp + 16) = csum_fold(csum_add(sum, tcp, 20 + len));

	clock_gettime(CLOCK_REALTIME, &ts);
	us = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
	blk[0] = PCAPNG_EPB, blk[1] = (uint32_t)(28 + padded + 4), blk[2] = 0;
	blk[3] = (uint32_t)(us >> 32), blk[4] = (uint32_t)us;
	blk[5] = blk[6] = (uint32_t)total;
	if (!write_all(blk, sizeof(blk)) || !write_all(pkt, padded) || !write_all(&blk[1], 4))
		cap.failed = true;
}

void usmc_capture(int fd, bool sent, uint64_t pos, const struct iovec *iov, int iovcnt,
		  size_t skip, size_t len)
{
	uint8_t chunk[SEG_MAX];
	struct endpoints e;
	int i = 0;

	if (!len || !endpoints_of(fd, sent, &e))
		return;
	while (i < iovcnt && skip >= iov[i].iov_len)
		skip -= iov[i++].iov_len;
	usmc_rank_lock(LOCK_CAPTURE);
	while (len && i < iovcnt && file_ready()) {
		size_t n = 0;

		while (n < SEG_MAX && n < len && i < iovcnt) {
			size_t take = iov[i].iov_len - skip;

			if (take > SEG_MAX - n)
				take = SEG_MAX - n;
			if (take > len - n)
				take = len - n;
			memcpy(chunk + n, (const uint8_t *)iov[i].iov_base + skip, take);
			n += take, skip += take;
			if (skip == iov[i].iov_len)
				i++, skip = 0;
		}
		put_segment(&e, (uint32_t)(ISN + pos), chunk, n);
		pos += n, len -= n;
	}
	usmc_rank_unlock(LOCK_CAPTURE);
}
