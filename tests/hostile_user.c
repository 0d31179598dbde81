// SPDX-License-Identifier: MIT
/*
 * Other processes against a victim's listener channel (@usmc/<uid>/<port>,
 * a name anyone may connect to).  The victim runs as root, the attacker
 * as another unprivileged user unless said; every transfer is checked.
 *
 *   hostile_user --case backlog    another user fills the channel's backlog
 *                                  and never lets go: the victim's clients
 *                                  connect, fall back with 0x02040000 while
 *                                  it is full, and find shared memory again
 *                                  once the attacker is gone
 *   hostile_user --case squat      another user holds the name of a killed
 *                                  listener (and its TCP port): 0x03000002,
 *                                  or 0x02040000 with its backlog full
 *   hostile_user --case churn      another user leaves 4,000 closed
 *                                  connections queued while a Proposal is
 *                                  pending: each plain accept takes at most
 *                                  a batch of them, plain clients served
 *   hostile_user --case idle       a process of the same user holds 3,000
 *                                  idle channels to a server at 1,024
 *                                  descriptors: plain and usmc clients are
 *                                  served, idle channels closed
 *   hostile_user --case proposals  70,000 Proposals that never connect: the
 *                                  server lists at most 65,536 and declines
 *                                  the rest with 0x01010000
 */
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/un.h>

#include "robust.h"
#include "usmc_channel.h"
#include "usmc_core.h"
#include "usmc_registry.h"

#define ATTACKER_UID 64003
#define PAYLOAD 100000

static struct h_chan to_parent;

static void become(uid_t uid)
{
	RCHECK(setgroups(0, NULL) == 0);
	RCHECK(setresgid(uid, uid, uid) == 0);
	RCHECK(setresuid(uid, uid, uid) == 0);
}

static void raise_nofile(rlim_t n)
{
	struct rlimit rl = { n, n };

	RCHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
}

/* A connect to the victim's channel name; the descriptor, or -1 with errno. */
static int chan_connect(uint16_t port, bool nonblock)
{
	struct sockaddr_un sun;
	socklen_t len = reg_listener_addr(0, port, false, &sun);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | (nonblock ? SOCK_NONBLOCK : 0), 0), err;

	RCHECK(fd >= 0);
	if (connect(fd, (struct sockaddr *)&sun, len) == 0)
		return fd;
	err = errno;
	close(fd);
	errno = err;
	return -1;
}

/* How many connections wait in the channel's accept queue (ss's Recv-Q). */
static int chan_queue(uint16_t port)
{
	char cmd[96], state[16], kind[16];
	int q = -1;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "ss -xlH src @usmc/0/%u", (unsigned)port);
	f = popen(cmd, "r");
	RCHECK(f);
	if (fscanf(f, "%15s %15s %d", kind, state, &q) != 3)
		q = -1;
	pclose(f);
	return q;
}

/* Echo of length and checksum for each connection, forever or n times. */
static void serve(int lfd, int n)
{
	for (int i = 0; n < 0 || i < n; i++) {
		uint64_t sum, reply[2];
		int fd = usmc_accept(lfd, NULL, NULL);

		RCHECK(fd >= 0);
		reply[0] = h_read_to_eof(fd, &sum, 65536, NULL);
		reply[1] = sum;
		h_write_all(fd, reply, sizeof(reply));
		usmc_close(fd);
	}
}

/*
 * The squatted port is below the ephemeral range: once its server is
 * gone, no other test's listener may get it and find its name taken.
 */
static uint16_t fixed_port;

static int listen_fixed(void)
{
	for (int tries = 0; tries < 1000; tries++) {
		struct sockaddr_storage ss;
		uint16_t port = (uint16_t)(20000 + (getpid() * 7919 + tries * 104729) % 10000);
		socklen_t len = h_loopback(AF_INET, port, &ss);
		int fd = h_socket(AF_INET, H_USMC, 0);

		if (usmc_bind(fd, (struct sockaddr *)&ss, len) == 0 && usmc_listen(fd, 64) == 0) {
			fixed_port = port;
			return fd;
		}
		usmc_close(fd);
	}
	RCHECK(!"a free port below the ephemeral range");
	return -1;
}

static int server_main(void *arg)
{
	int nofile = (int)(intptr_t)arg;
	uint16_t port;
	int lfd;

	if (nofile)
		raise_nofile((rlim_t)nofile);
	if (fixed_port) {
		lfd = listen_fixed();
		port = fixed_port;
	} else {
		lfd = h_listen(AF_INET, H_USMC, &port);
	}
	h_chan_send(&to_parent, port);
	serve(lfd, -1);
	return 0;
}

/* One checked exchange; its usmc_info. */
static struct usmc_info client_once(uint16_t port, enum h_kind kind, uint64_t seed)
{
	static uint8_t buf[PAYLOAD];
	struct usmc_info info;
	uint64_t reply[2];
	int fd = h_connect(AF_INET, kind, port);

	RCHECK(fd >= 0);
	h_pattern(buf, sizeof(buf), seed, 0);
	h_write_all(fd, buf, sizeof(buf));
	RCHECK(usmc_shutdown(fd, SHUT_WR) == 0);
	h_read_all(fd, reply, sizeof(reply));
	RCHECK(reply[0] == PAYLOAD && reply[1] == h_fnv(H_FNV_INIT, buf, sizeof(buf)));
	RCHECK(usmc_info(fd, &info, sizeof(info)) == 0);
	usmc_close(fd);
	return info;
}

static pid_t start_server(int nofile, uint16_t *port)
{
	pid_t pid = h_fork(server_main, (void *)(intptr_t)nofile);

	*port = (uint16_t)h_chan_recv(&to_parent);
	return pid;
}

static void stop(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* ---- backlog ---- */

static uint16_t attack_port;

/* Fills the victim's channel backlog with connections it never closes. */
static int filler(void *arg)
{
	int n = 0;

	(void)arg;
	raise_nofile(8192);
	become(ATTACKER_UID);
	while (chan_connect(attack_port, true) >= 0)
		n++;
	RCHECK(errno == EAGAIN);
	h_chan_send(&to_parent, (uint64_t)n);
	pause();
	return 0;
}

static void case_backlog(void)
{
	uint16_t port, healthy;
	pid_t srv = start_server(0, &port), other = start_server(0, &healthy), att;
	struct usmc_info info;
	int n, i;

	/* A first connection: the client has its link group before the attack. */
	RCHECK(client_once(port, H_USMC, 1).mode == USMC_MODE_SMCD);
	attack_port = port;
	att = h_fork(filler, NULL);
	n = (int)h_chan_recv(&to_parent);
	printf("attacker queued %d connections\n", n);
	/* The client's link group stands: its connections stay in shared memory. */
	RCHECK(client_once(port, H_USMC, 2).mode == USMC_MODE_SMCD);
	/* A new process of the victim needs a new channel: it finds it full. */
	if (fork() == 0) {
		info = client_once(port, H_USMC, 3);
		RCHECK(info.mode == USMC_MODE_FALLBACK && info.fallback_reason == USMC_DECL_CHAN_BUSY);
		RCHECK(client_once(healthy, H_USMC, 4).mode == USMC_MODE_SMCD);
		exit(0);
	}
	RCHECK(wait(&i) > 0 && WIFEXITED(i) && WEXITSTATUS(i) == 0);
	stop(att);
	/* What the attacker queued goes away a batch per accept, or at once for a Proposal. */
	for (i = 0; i < 600; i++) {
		pid_t c = fork();

		if (c == 0)
			exit(client_once(port, H_USMC, 5 + (uint64_t)i).mode == USMC_MODE_SMCD ? 0 : 3);
		RCHECK(waitpid(c, &n, 0) == c && WIFEXITED(n));
		RCHECK(WEXITSTATUS(n) == 0 || WEXITSTATUS(n) == 3);
		if (WEXITSTATUS(n) == 0)
			break;
	}
	printf("shared memory again after %d connections of new processes\n", i);
	RCHECK(i < 600);
	stop(srv);
	stop(other);
}

/* ---- squat ---- */

static int squatter(void *arg)
{
	struct sockaddr_un sun;
	socklen_t len = reg_listener_addr(0, attack_port, false, &sun);
	struct sockaddr_storage ss;
	socklen_t slen = h_loopback(AF_INET, attack_port, &ss);
	int one = 1, u, t;

	(void)arg;
	become(ATTACKER_UID);
	u = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	RCHECK(u >= 0 && bind(u, (struct sockaddr *)&sun, len) == 0 && listen(u, 4) == 0);
	t = socket(AF_INET, SOCK_STREAM, 0);
	RCHECK(setsockopt(t, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0);
	RCHECK(bind(t, (struct sockaddr *)&ss, slen) == 0 && listen(t, 16) == 0);
	h_chan_send(&to_parent, 1);
	/* First round with room in the backlog, then full. */
	serve(t, 1);
	while (chan_connect(attack_port, true) >= 0)
		;
	h_chan_send(&to_parent, 2);
	serve(t, 1);
	return 0;
}

static void case_squat(void)
{
	uint16_t port;
	pid_t srv, att;

	fixed_port = 1;
	srv = start_server(0, &port);
	struct usmc_info info;

	stop(srv);
	attack_port = port;
	att = h_fork(squatter, NULL);
	RCHECK(h_chan_recv(&to_parent) == 1);
	info = client_once(port, H_USMC, 1);
	printf("squatted name: %s 0x%08x\n", usmc_mode_str(info.mode), info.fallback_reason);
	RCHECK(info.mode == USMC_MODE_FALLBACK && info.fallback_reason == USMC_DECL_FOREIGN);
	RCHECK(h_chan_recv(&to_parent) == 2);
	info = client_once(port, H_USMC, 2);
	printf("squatted name, full: %s 0x%08x\n", usmc_mode_str(info.mode), info.fallback_reason);
	RCHECK(info.mode == USMC_MODE_FALLBACK && info.fallback_reason == USMC_DECL_CHAN_BUSY);
	RCHECK(h_wait_ok(att));
}

/* ---- Proposals that never connect ---- */

static int declined_mem;

/* Reads what the server answered so far: Declines for want of memory only. */
static void drain_answers(struct usmc_lgr *lgr)
{
	struct clc_msg m;
	uint32_t reason;
	int fd;

	while (lgr_recv(lgr, &m, &fd, &reason) > 0) {
		RCHECK(!reason && fd < 0 && m.type == CLC_DECLINE);
		RCHECK(m.decline.reason == USMC_DECL_MEM);
		declined_mem++;
	}
}

/*
 * Sends n Proposals on a channel of our own, for cookies no socket has,
 * with a sealed segment as a client's, counted in the registry as a
 * client counts them; reads the answers meanwhile.  Returns the link
 * group, whose sender waits for room while answers come.
 */
static struct usmc_lgr *propose_unmatched(uint16_t port, int n)
{
	uint32_t seg_len = CDC_SLOT_HDR + CLC_RMB_MIN;
	int ch = chan_connect(port, true), mfd = memfd_create("usmc-seg", MFD_ALLOW_SEALING);
	struct clc_msg m = { .type = CLC_PROPOSAL, .version = CLC_VERSION };
	struct usmc_lgr *lgr;

	RCHECK(ch >= 0 && mfd >= 0 && ftruncate(mfd, seg_len) == 0);
	RCHECK(fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0);
	lgr = lgr_new(ch, LGR_CLIENT, 0, 0);
	RCHECK(lgr);
	m.proposal.dst.family = AF_INET;
	m.proposal.dst.port = port;
	m.proposal.rmb = (struct clc_rmb_desc){ .seg_len = seg_len, .rmb_size = CLC_RMB_MIN };
	for (int i = 0; i < n; i++) {
		m.token = (uint64_t)i + 1;
		m.proposal.cookie = 0xdead000000000000ull + (uint64_t)i;
		m.proposal.rmb.new_seg = i == 0;
		RCHECK(lgr_send(lgr, &m, i == 0 ? mfd : -1) == 0);
		atomic_fetch_add(&reg_port(port)->proposals, 1);
		drain_answers(lgr);
	}
	return lgr;
}

/* 70,000 Proposals, then their answers, in a process of their own. */
static int proposer(void *arg)
{
	struct usmc_lgr *lgr = propose_unmatched(attack_port, 70000);
	struct pollfd p = { .fd = lgr->chan, .events = POLLIN };

	(void)arg;
	drain_answers(lgr);
	while (declined_mem < 70000 - 65536 && poll(&p, 1, 10000) == 1)
		drain_answers(lgr);
	printf("declined %d of 70000 unmatched Proposals\n", declined_mem);
	RCHECK(declined_mem == 70000 - 65536);
	/* More would show the bound too loose. */
	RCHECK(poll(&p, 1, 200) == 0);
	return 0;
}

static void case_proposals(void)
{
	uint16_t port;
	pid_t srv = start_server(0, &port), pid;
	int st;

	attack_port = port;
	pid = h_fork(proposer, NULL);
	/* Accepts make the server read its channels: connections until the proposer is done. */
	for (uint64_t i = 0; waitpid(pid, &st, WNOHANG) == 0; i++)
		client_once(port, H_PLAIN, i);
	RCHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	RCHECK(client_once(port, H_USMC, 1).mode == USMC_MODE_SMCD);
	stop(srv);
}

/* ---- churn ---- */

/* Leaves n closed connections in the channel's queue. */
static int churner(void *arg)
{
	int n = (int)(intptr_t)arg;

	become(ATTACKER_UID);
	for (int i = 0; i < n; i++) {
		int fd = chan_connect(attack_port, true);

		RCHECK(fd >= 0);
		close(fd);
	}
	return 0;
}

static void case_churn(void)
{
	uint16_t port;
	pid_t srv = start_server(0, &port);
	int before, after;

	propose_unmatched(port, 1);
	RCHECK(declined_mem == 0);
	/* A connection lets the server read the Proposal: it stays listed, unmatched. */
	RCHECK(client_once(port, H_USMC, 1).mode == USMC_MODE_SMCD);
	attack_port = port;
	RCHECK(h_wait_ok(h_fork(churner, (void *)(intptr_t)4000)));
	before = chan_queue(port);
	for (int i = 0; i < 20; i++)
		client_once(port, H_PLAIN, 2 + (uint64_t)i);
	after = chan_queue(port);
	printf("queued before 20 plain clients: %d, after: %d\n", before, after);
	RCHECK(before >= 4000 && before - after <= 20 * 16);
	stop(srv);
}

/* ---- idle ---- */

static int idler(void *arg)
{
	int n = (int)(intptr_t)arg, i;

	raise_nofile(8192);
	for (i = 0; i < n; i++)
		RCHECK(chan_connect(attack_port, true) >= 0);
	h_chan_send(&to_parent, (uint64_t)i);
	pause();
	return 0;
}

static void case_idle(void)
{
	uint16_t port;
	pid_t srv = start_server(1024, &port), idle;
	int served = 0, smc = 0;

	attack_port = port;
	idle = h_fork(idler, (void *)(intptr_t)3000);
	RCHECK(h_chan_recv(&to_parent) == 3000);
	for (int i = 0; i < 50; i++) {
		struct usmc_info info = client_once(port, i % 5 ? H_PLAIN : H_USMC, (uint64_t)i);

		served++;
		smc += info.mode == USMC_MODE_SMCD;
	}
	printf("served %d of 50 plain and usmc clients, %d in shared memory\n", served, smc);
	RCHECK(smc == 10);
	stop(idle);
	stop(srv);
}

int main(int argc, char **argv)
{
	const char *c = argc > 2 ? argv[2] : "";

	setvbuf(stdout, NULL, _IONBF, 0);
	h_chan_open(&to_parent);
	if (!strcmp(c, "backlog"))
		case_backlog();
	else if (!strcmp(c, "squat"))
		case_squat();
	else if (!strcmp(c, "churn"))
		case_churn();
	else if (!strcmp(c, "idle"))
		case_idle();
	else if (!strcmp(c, "proposals"))
		case_proposals();
	else
		RCHECK(!"--case backlog|squat|churn|idle|proposals");
	return 0;
}
