// SPDX-License-Identifier: MIT
/*
 * usmc-stat against what any process can show it: command names with
 * quotes, backslashes, control characters and bytes that are not UTF-8
 * (its JSON must stay valid and say the name exactly), and a memfd named
 * like a socket table whose size flips while usmc-stat reads it, whose
 * slots name descriptors that are not sockets.  usmc-stat must never die
 * of a signal, and a non-socket must show no socket's addresses.  A real
 * table cannot be shrunk by anyone: it is sealed.
 *
 *   stat_hostile PATH-TO-usmc-stat
 */
#include <netinet/in.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "harness.h"
#include "usmc_diag.h"
#include "usmc_proc.h"

static const char *usmc_stat;
static struct h_chan ready, done;

/* Runs cmd; its output in out; fails unless it exited 0 (a signal is a failure). */
static void run(const char *cmd, char *out, size_t len)
{
	size_t n;
	int st;
	FILE *p = popen(cmd, "r");

	CHECK(p);
	n = fread(out, 1, len - 1, p);
	out[n] = 0;
	st = pclose(p);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fprintf(stderr, "%s: %s %d\n", cmd, WIFSIGNALED(st) ? "killed by signal" : "exit",
			WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* ---- hostile command names ---- */

static int named_listener(void *arg)
{
	uint16_t port;
	int lfd;

	CHECK(prctl(PR_SET_NAME, (const char *)arg) == 0);
	lfd = h_listen(AF_INET, H_USMC, &port);
	h_chan_send(&ready, 1);
	h_chan_recv(&done);
	CHECK(usmc_close(lfd) == 0);
	return 0;
}

/* The table's memfd, opened writable as any process of the user may. */
static bool diag_fd(int fd, const char *link, const char *path, void *arg)
{
	(void)fd;
	if (strncmp(link, "/memfd:" USMC_DIAG_NAME, strlen("/memfd:" USMC_DIAG_NAME)))
		return false;
	*(int *)arg = open(path, O_RDWR | O_CLOEXEC);
	return true;
}

/* Nobody can shrink a process's table under its mapping: it is sealed. */
static void check_sealed(pid_t pid)
{
	int fd = -1;

	CHECK(proc_for_each_fd(pid, diag_fd, &fd) && fd >= 0);
	CHECK(ftruncate(fd, 0) < 0 && errno == EPERM);
	CHECK(close(fd) == 0);
}

static void check_name(const char *name)
{
	static char out[1 << 16];
	char cmd[1024], hex[64] = "";
	pid_t pid = h_fork(named_listener, (void *)name);

	for (size_t i = 0; name[i]; i++)
		snprintf(hex + 2 * i, 3, "%02x", (unsigned char)name[i]);
	h_chan_recv(&ready);
	check_sealed(pid);
	/* Valid JSON, and the name exactly where it is UTF-8. */
	snprintf(cmd, sizeof(cmd),
		 "%s --json -p %d | python3 -c 'import json, sys\n"
		 "d = json.load(sys.stdin)\n"
		 "s = d[\"sockets\"]\n"
		 "b = bytes.fromhex(\"%s\")\n"
		 "try: want = b.decode(\"utf-8\")\n"
		 "except UnicodeDecodeError: want = \"\".join(map(chr, b)) if max(b) < 0xc0 else None\n"
		 "assert len(s) == 1 and s[0][\"mode\"] == \"LISTEN\", s\n"
		 "assert want is None or s[0][\"command\"] == want, (s[0][\"command\"], want)\n"
		 "print(json.dumps(s[0][\"command\"]))'",
		 usmc_stat, (int)pid, hex);
	run(cmd, out, sizeof(out));
	fprintf(stderr, "name %s: %s", hex, out);
	snprintf(cmd, sizeof(cmd), "%s --json -p %d | python3 -m json.tool > /dev/null", usmc_stat,
		 (int)pid);
	run(cmd, out, sizeof(out));
	snprintf(cmd, sizeof(cmd), "%s -p %d", usmc_stat, (int)pid);
	run(cmd, out, sizeof(out));
	h_chan_send(&done, 1);
	CHECK(h_wait_ok(pid));
}

static void case_names(void)
{
	static const char *const names[] = {
		"a\"b", "x\\y\\", "\"},{\"pid\":1,\"", "t\tn\nr\re\x1b", "\x7f\x01q\"\\",
		"\xff\xfe bad \xc3", "\xc3\xa9\"\xc3\xbc", "\xed\xa0\x80 surr", "</script>",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		check_name(names[i]);
	printf("hostile command names: valid JSON, names exact: ok\n");
}

/* ---- a table that flips its size, naming descriptors that are not sockets ---- */

#define FLIP_SLOTS 65536

static size_t table_len(uint32_t slots)
{
	return sizeof(struct usmc_diag_table) + slots * sizeof(struct usmc_diag_sock);
}

static int flipper(void *arg)
{
	int fd = memfd_create(USMC_DIAG_NAME, MFD_CLOEXEC), null = open("/dev/null", O_RDONLY);
	struct usmc_diag_table *t;

	(void)arg;
	CHECK(fd >= 0 && null >= 0 && ftruncate(fd, (off_t)table_len(FLIP_SLOTS)) == 0);
	t = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(t != MAP_FAILED);
	t->magic = USMC_DIAG_MAGIC;
	t->version = USMC_DIAG_VERSION;
	t->pid = (int32_t)getpid();
	t->nslots = FLIP_SLOTS;
	t->high = FLIP_SLOTS;
	/* In the first page, which stays: a regular file and the table itself. */
	t->sock[0].state = DIAG_SMCD;
	t->sock[0].fd = null;
	t->sock[1].state = DIAG_FALLBACK;
	t->sock[1].fd = fd;
	t->sock[1].reason = USMC_DECL_PEERNOSMC;
	h_chan_send(&ready, 1);
	for (;;) {
		CHECK(ftruncate(fd, 4096) == 0);
		CHECK(ftruncate(fd, (off_t)table_len(FLIP_SLOTS)) == 0);
	}
	return 0;
}

/* A TIME-WAIT socket: /proc/net/tcp lists it with inode 0. */
static void make_time_wait(void)
{
	uint16_t port;
	int lfd = h_listen(AF_INET, H_PLAIN, &port), c = h_connect(AF_INET, H_PLAIN, port);
	int a = accept(lfd, NULL, NULL);

	CHECK(a >= 0);
	CHECK(close(c) == 0);
	usleep(20000);
	CHECK(close(a) == 0 && close(lfd) == 0);
}

static void case_flip(void)
{
	static char out[1 << 16];
	char cmd[512];
	pid_t pid;

	make_time_wait();
	pid = h_fork(flipper, NULL);
	h_chan_recv(&ready);
	for (int i = 0; i < 40; i++) {
		snprintf(cmd, sizeof(cmd), "%s %s -p %d", usmc_stat, i % 2 ? "--json" : "", (int)pid);
		run(cmd, out, sizeof(out));
		if (i % 2) {
			/* Neither descriptor is a socket: no addresses, whatever /proc/net/tcp holds. */
			CHECK(strstr(out, "\"mode\": \"SMCD\""));
			CHECK(!strstr(out, "\"local\": \"1") && !strstr(out, "\"local\": \"["));
		}
	}
	fprintf(stderr, "%s", out);
	snprintf(cmd, sizeof(cmd), "%s --json -p %d | python3 -m json.tool > /dev/null", usmc_stat,
		 (int)pid);
	run(cmd, out, sizeof(out));
	CHECK(kill(pid, SIGKILL) == 0);
	CHECK(!h_wait_ok(pid));
	printf("a table flipping its size, descriptors that are not sockets: no signal, no "
	       "addresses: ok\n");
}

int main(int argc, char **argv)
{
	CHECK(argc == 3);
	usmc_stat = argv[1];
	h_chan_open(&ready);
	h_chan_open(&done);
	if (!strcmp(argv[2], "names"))
		case_names();
	else if (!strcmp(argv[2], "flip"))
		case_flip();
	else
		return 2;
	return 0;
}
