// SPDX-License-Identifier: MIT
/*
 * An SO_REUSEPORT group: MEMBERS processes, each with a listener of its
 * own on one port, as haproxy, nginx `reuseport` and most Go and Rust
 * servers make them.  The kernel gives each connection to one member; the
 * member that gets it finds its Proposal in its own queue, where the
 * client put it as into every member's (usmc_reuseport.c).  Every
 * connection is in shared memory on both ends (and the client's TCP
 * socket, by the kernel's count, carried almost none of its bytes), every
 * byte arrives, no
 * handshake waits for a CLC timeout, and every member serves some
 * connections, which the counters of the test's own registry directory
 * and the members' own counts show.
 *
 * Before the group, GHOSTS members of an earlier one filled every member
 * slot of the port's registry entry and were killed, and nobody reaps
 * them: zombies, as under an init that reaps late or in a container
 * without one.  A member that is gone frees its slot, reaped or not.
 *
 * reuseport N: a group of N members, more than the slots (REG_MEMBERS)
 * if N > 4.  Those that found none stay TCP, and the connections the
 * kernel gives them are TCP on both ends: refused at once, never a CLC
 * timeout.  Each connection's two ends agree on its mode.
 *
 * reuseport N rejoin: then two members with a slot are killed, and the
 * clients come again.  The members without one take the slots freed: a
 * connection or two each before they do, then shared memory.
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "counters.h"
#include "harness.h"

#define MEMBERS_MAX 8
#define CLIENTS 4
#define ROUNDS 30
/* Every member slot of a registry entry (REG_MEMBERS). */
#define GHOSTS 4

static struct h_chan port_chan, ready_chan;
static int stop_pipe[2];
static uint16_t port;
static int members_n = 3;

static uint64_t mode_of(int fd)
{
	struct usmc_info info;

	CHECK(usmc_info(fd, &info, sizeof(info)) == 0);
	return (uint64_t)info.mode;
}

static int member_listen(uint16_t want)
{
	struct sockaddr_storage ss;
	socklen_t len = h_loopback(AF_INET, want, &ss);
	int fd = h_socket(AF_INET, H_USMC, 0), one = 1;

	CHECK(usmc_setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == 0);
	CHECK(usmc_bind(fd, (struct sockaddr *)&ss, len) == 0);
	CHECK(usmc_listen(fd, 64) == 0);
	len = sizeof(ss);
	CHECK(getsockname(fd, (struct sockaddr *)&ss, &len) == 0);
	return fd;
}

/* Joins the group at port arg (0: the first, which says its port); says it listens. */
static int member_join(void *arg)
{
	int lfd = member_listen((uint16_t)(uintptr_t)arg);
	struct usmc_info info;
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	CHECK(getsockname(lfd, (struct sockaddr *)&sin, &len) == 0);
	if (!arg)
		h_chan_send(&port_chan, ntohs(sin.sin_port));
	CHECK(usmc_info(lfd, &info, sizeof(info)) == 0);
	/* Its pid, and whether it found no slot. */
	h_chan_send(&ready_chan, (uint64_t)getpid() * 2 + (info.mode == USMC_MODE_FALLBACK));
	return lfd;
}

/* Echoes length and checksum of each connection until the stop pipe closes. */
static int member(void *arg)
{
	int lfd = member_join(arg), served = 0;

	close(stop_pipe[1]);
	for (;;) {
		struct pollfd p[2] = { { .fd = lfd, .events = POLLIN },
				       { .fd = stop_pipe[0], .events = POLLIN } };
		uint64_t sum, reply[3];
		int fd;

		CHECK(usmc_poll(p, 2, -1) > 0);
		if (!(p[0].revents & POLLIN))
			break;
		fd = usmc_accept(lfd, NULL, NULL);
		CHECK(fd >= 0);
		reply[0] = h_read_to_eof(fd, &sum, 8192, NULL);
		reply[1] = sum;
		reply[2] = mode_of(fd);
		if (members_n <= GHOSTS)
			h_check_mode(fd, USMC_MODE_SMCD);
		h_write_all(fd, reply, sizeof(reply));
		CHECK(usmc_close(fd) == 0);
		served++;
	}
	printf("member %d: %d connections\n", (int)getpid(), served);
	fflush(stdout);
	CHECK(usmc_close(lfd) == 0);
	/* A group whose members all served: the test proves a member's queue each. */
	return served > 0 ? 0 : 3;
}

/* A member of the earlier group: listens until killed. */
static int ghost(void *arg)
{
	int lfd = member_join(arg);

	/* Killed while it waits, its listener open. */
	while (pause() < 0)
		;
	return lfd;
}

static int client(void *arg)
{
	static uint8_t buf[100000];

	(void)arg;
	for (int i = 0; i < ROUNDS; i++) {
		size_t len = 1 + (size_t)(getpid() * 7919u + (unsigned)i * 104729u) % sizeof(buf);
		uint64_t reply[3], sum;
		int fd = h_connect(AF_INET, H_USMC, port);

		h_pattern(buf, len, (uint64_t)i, 0);
		sum = h_fnv(H_FNV_INIT, buf, len);
		h_write_all(fd, buf, len);
		CHECK(usmc_shutdown(fd, SHUT_WR) == 0);
		h_read_all(fd, reply, sizeof(reply));
		CHECK(reply[0] == len && reply[1] == sum);
		CHECK(reply[2] == mode_of(fd));
		if (members_n <= GHOSTS || reply[2] == USMC_MODE_SMCD) {
			h_check_mode(fd, USMC_MODE_SMCD);
			h_check_shm_carried(fd, len + sizeof(reply));
		}
		CHECK(usmc_close(fd) == 0);
	}
	return 0;
}

static void run_clients(void)
{
	pid_t clients[CLIENTS];

	for (int i = 0; i < CLIENTS; i++)
		clients[i] = h_fork(client, NULL);
	for (int i = 0; i < CLIENTS; i++)
		CHECK(h_wait_ok(clients[i]));
}

/*
 * Kills two members that have a slot, and runs the clients again: the
 * members without one join in their place, each after a connection or
 * two that it refused, and every other connection is in shared memory.
 */
static void kill_two_slotted(pid_t *members, const uint64_t *ready)
{
	uint64_t smc0, fb0, clc0, smc, fb, clc;
	int killed = 0;

	counters(&smc0, &fb0, &clc0);
	for (int i = 0; i < members_n && killed < 2; i++) {
		pid_t pid = (pid_t)(ready[i] / 2);

		if (ready[i] % 2)
			continue;
		for (int j = 0; j < members_n; j++) {
			if (members[j] != pid)
				continue;
			CHECK(kill(pid, SIGKILL) == 0 && waitpid(pid, NULL, 0) == pid);
			members[j] = 0;
			killed++;
		}
	}
	CHECK(killed == 2);
	run_clients();
	counters(&smc, &fb, &clc);
	printf("after two members with a slot were killed: %llu connections in shared memory, "
	       "%llu TCP\n", (unsigned long long)(smc - smc0) / 2, (unsigned long long)(fb - fb0) / 2);
	CHECK(clc == clc0 && smc - smc0 + fb - fb0 == 2 * CLIENTS * ROUNDS);
	/* At most the connections each had waiting while it joined: the clients', one each. */
	CHECK(fb - fb0 <= 2 * 2 * CLIENTS);
}

int main(int argc, char **argv)
{
	char dir[] = "/tmp/usmc-reuseport-XXXXXX";
	pid_t members[MEMBERS_MAX], ghosts[GHOSTS];
	uint64_t smc, fallbacks, clc_timeouts, ready[MEMBERS_MAX];
	bool rejoin = argc > 2 && !strcmp(argv[2], "rejoin");

	if (argc > 1)
		members_n = atoi(argv[1]);
	CHECK(members_n >= 1 && members_n <= MEMBERS_MAX);
	CHECK(mkdtemp(dir));
	setenv("USMC_REGISTRY_DIR", dir, 1);
	/* Long: a connection whose Proposal no member finds would show, and fail. */
	setenv("USMC_CLC_TIMEOUT_MS", "5000", 1);
	h_chan_open(&port_chan);
	h_chan_open(&ready_chan);
	CHECK(pipe(stop_pipe) == 0);
	ghosts[0] = h_fork(ghost, NULL);
	port = (uint16_t)h_chan_recv(&port_chan);
	for (int i = 1; i < GHOSTS; i++)
		ghosts[i] = h_fork(ghost, (void *)(uintptr_t)port);
	for (int i = 0; i < GHOSTS; i++)
		h_chan_recv(&ready_chan);
	for (int i = 0; i < GHOSTS; i++) {
		siginfo_t si;

		CHECK(kill(ghosts[i], SIGKILL) == 0);
		/* Dead, and left unreaped. */
		CHECK(waitid(P_PID, (id_t)ghosts[i], &si, WEXITED | WNOWAIT) == 0);
	}
	for (int i = 0; i < members_n; i++)
		members[i] = h_fork(member, (void *)(uintptr_t)port);
	for (int i = 0; i < members_n; i++)
		ready[i] = h_chan_recv(&ready_chan);
	run_clients();
	if (rejoin)
		kill_two_slotted(members, ready);
	/* The members end when the stop pipe's last writer is gone. */
	close(stop_pipe[1]);
	for (int i = 0; i < members_n; i++)
		CHECK(!members[i] || h_wait_ok(members[i]));
	for (int i = 0; i < GHOSTS; i++)
		CHECK(waitpid(ghosts[i], NULL, 0) == ghosts[i]);
	counters(&smc, &fallbacks, &clc_timeouts);
	printf("counters: %llu SMC connection ends, %llu fallbacks, %llu CLC timeouts\n",
	       (unsigned long long)smc, (unsigned long long)fallbacks,
	       (unsigned long long)clc_timeouts);
	CHECK(clc_timeouts == 0);
	if (members_n > GHOSTS) {
		/* The kernel gave some connections to the members without a slot. */
		CHECK(smc + fallbacks == 2 * CLIENTS * ROUNDS * (rejoin ? 2 : 1) && fallbacks > 0 &&
		      smc > 0);
		printf("SO_REUSEPORT group of %d processes, %d with a slot: %llu connections in "
		       "shared memory, %llu TCP on both ends, bytes intact, no CLC timeout: ok\n",
		       members_n, GHOSTS, (unsigned long long)smc / 2,
		       (unsigned long long)fallbacks / 2);
		return 0;
	}
	CHECK(smc == 2 * CLIENTS * ROUNDS);
	CHECK(fallbacks == 0);
	printf("SO_REUSEPORT group of %d processes after %d unreaped ones: %d connections in shared memory on both ends, "
	       "each member served some, bytes intact, no CLC timeout: ok\n",
	       members_n, GHOSTS, CLIENTS * ROUNDS);
	return 0;
}
