// SPDX-License-Identifier: MIT
/*
 * Per-connection policy: rules on peer address, prefix and port decide
 * before connect() whether to try SMC or go straight to TCP.
 */
#include <arpa/inet.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "usmc_policy.h"

static uint16_t port;
static const char *policy;
/* For a client: what else its environment says (USMC_POLICY is unset if file is). */
static const char *policy_file, *extra_name, *extra_value;
static char log_path[] = "/tmp/usmc-policy-log-XXXXXX";
static char self_path[PATH_MAX];
static char stderr_path[] = "/tmp/usmc-policy-err-XXXXXX";

static struct sockaddr_in v4(const char *addr, uint16_t p)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(p) };

	CHECK(inet_pton(AF_INET, addr, &sa.sin_addr) == 1);
	return sa;
}

static bool matches(const char *rule, const char *addr, uint16_t p)
{
	struct usmc_rule r;
	struct sockaddr_in sa = v4(addr, p);

	CHECK(usmc_rule_parse(&r, rule));
	return usmc_rule_matches(&r, (struct sockaddr *)&sa);
}

static void check_rules(void)
{
	struct usmc_rule r;
	struct sockaddr_in6 sa6 = { .sin6_family = AF_INET6, .sin6_port = htons(22) };

	CHECK(matches("tcp 10.0.0.0/8", "10.1.2.3", 80));
	CHECK(!matches("tcp 10.0.0.0/8", "11.1.2.3", 80));
	CHECK(matches("tcp *:5432", "127.0.0.1", 5432));
	CHECK(!matches("tcp *:5432", "127.0.0.1", 5433));
	CHECK(matches("smc 127.0.0.1:8000-8999", "127.0.0.1", 8500));
	CHECK(!matches("smc 127.0.0.1:8000-8999", "127.0.0.1", 9000));
	CHECK(matches("tcp 127.0.0.0/31", "127.0.0.1", 1));
	CHECK(!matches("tcp 127.0.0.0/31", "127.0.0.2", 1));
	inet_pton(AF_INET6, "::1", &sa6.sin6_addr);
	CHECK(usmc_rule_parse(&r, "tcp [::1]:22") && usmc_rule_matches(&r, (struct sockaddr *)&sa6));
	CHECK(usmc_rule_parse(&r, "tcp ::/0") && usmc_rule_matches(&r, (struct sockaddr *)&sa6));
	/* A rule of one family never matches an address of the other, whatever its bytes. */
	inet_pton(AF_INET6, "a00::1", &sa6.sin6_addr);
	CHECK(usmc_rule_parse(&r, "tcp 10.0.0.0/8") && !usmc_rule_matches(&r, (struct sockaddr *)&sa6));
	CHECK(!matches("tcp a00::/8", "10.1.2.3", 80));
	/* An IPv4 address in IPv6 clothes is IPv4. */
	inet_pton(AF_INET6, "::ffff:10.1.2.3", &sa6.sin6_addr);
	CHECK(usmc_rule_parse(&r, "tcp 10.0.0.0/8") && usmc_rule_matches(&r, (struct sockaddr *)&sa6));
	CHECK(!usmc_rule_parse(&r, "maybe 1.2.3.4"));
	CHECK(!usmc_rule_parse(&r, "tcp 1.2.3.4/33"));
	CHECK(!usmc_rule_parse(&r, "tcp 1.2.3.4:0"));
	CHECK(!usmc_rule_parse(&r, "tcp [::1"));
}

/* A fresh process reads the policy at its first connect. */
static int client(void *arg)
{
	int expect = (int)(intptr_t)arg, fd;
	struct usmc_info info;
	uint8_t reply;

	if (policy_file) {
		unsetenv("USMC_POLICY");
		setenv("USMC_POLICY_FILE", policy_file, 1);
	} else {
		setenv("USMC_POLICY", policy, 1);
	}
	if (extra_name)
		setenv(extra_name, extra_value, 1);
	setenv("USMC_LOG", log_path, 1);
	fd = h_connect(AF_INET, H_USMC, port);
	h_write_all(fd, "x", 1);
	h_read_all(fd, &reply, 1);
	CHECK(reply == 'y');
	CHECK(usmc_info(fd, &info, sizeof(info)) == 0);
	CHECK(info.mode == expect);
	if (expect == USMC_MODE_FALLBACK)
		CHECK(info.fallback_reason == USMC_DECL_POLICY);
	CHECK(usmc_close(fd) == 0);
	return 0;
}

static void try_policy(int lfd, const char *text, int expect)
{
	char rule[128];
	pid_t pid;
	int fd;
	uint8_t b;

	snprintf(rule, sizeof(rule), text, port);
	policy = rule;
	pid = h_fork(client, (void *)(intptr_t)expect);
	fd = usmc_accept(lfd, NULL, NULL);
	CHECK(fd >= 0);
	h_read_all(fd, &b, 1);
	CHECK(b == 'x');
	h_write_all(fd, "y", 1);
	CHECK(h_wait_ok(pid));
	h_check_mode(fd, expect);
	CHECK(usmc_close(fd) == 0);
	printf("policy \"%s\": %s\n", rule, usmc_mode_str(expect));
}

/* Writes text (with %u for our port) to a fresh policy file. */
static void write_policy_file(const char *path, const char *text)
{
	char *full;
	FILE *f = fopen(path, "w");

	CHECK(f);
	CHECK(asprintf(&full, text, port) > 0);
	CHECK(fputs(full, f) >= 0);
	CHECK(fclose(f) == 0);
	free(full);
}

static void try_file(int lfd, const char *path, const char *text, int expect, const char *what)
{
	write_policy_file(path, text);
	policy_file = path;
	try_policy(lfd, "(file)", expect);
	policy_file = NULL;
	printf("policy file, %s: %s\n", what, usmc_mode_str(expect));
}

/* The file's syntax: comments, any length, any number of rules. */
static void check_file_syntax(int lfd)
{
	/* Static, not malloc'd: the clients forked below exit holding it. */
	static char text[64 << 10];
	char path[] = "/tmp/usmc-policy-XXXXXX", *p;
	int fd = mkstemp(path);

	CHECK(fd >= 0);
	close(fd);
	try_file(lfd, path, "tcp 10.0.0.0/8 # a comment; tcp *:%u\n", USMC_MODE_SMCD,
		 "';' inside a comment");
	/* A line longer than any buffer is one statement, not a rule and its tail. */
	memset(text, 'z', 256);
	strcpy(text + 256, "tcp *:%u\n");
	try_file(lfd, path, text, USMC_MODE_SMCD, "a 266-character line");
	/* Rule 100 decides as rule 1 would. */
	p = text;
	for (int i = 0; i < 99; i++)
		p += sprintf(p, "tcp 10.%d.0.0/16\n", i);
	strcpy(p, "tcp *:%u\n");
	try_file(lfd, path, text, USMC_MODE_FALLBACK, "rule 100");
	/* Past 8 KiB of comments. */
	p = text;
	while (p < text + (20 << 10))
		p += sprintf(p, "# a comment line that takes room in the file\n");
	strcpy(p, "tcp *:%u\n");
	try_file(lfd, path, text, USMC_MODE_FALLBACK, "a rule after 20 KiB");
	/* The file is read again when it changes. */
	try_file(lfd, path, "smc *:%u\n", USMC_MODE_SMCD, "before a change");
	unlink(path);
}

/* A file that changes under a running process: its next connect follows it. */
static int reload_client(void *arg)
{
	const char *path = arg;
	int fd;

	unsetenv("USMC_POLICY");
	setenv("USMC_POLICY_FILE", path, 1);
	for (int round = 0; round < 2; round++) {
		struct usmc_info info;
		uint8_t reply;

		if (round == 1) {
			write_policy_file(path, "# now TCP\ntcp *:%u\n");
			sleep(2); /* looked at once a second */
		}
		fd = h_connect(AF_INET, H_USMC, port);
		h_write_all(fd, "x", 1);
		h_read_all(fd, &reply, 1);
		CHECK(usmc_info(fd, &info, sizeof(info)) == 0);
		CHECK(info.mode == (round ? USMC_MODE_FALLBACK : USMC_MODE_SMCD));
		CHECK(usmc_close(fd) == 0);
	}
	return 0;
}

static void check_reload(int lfd)
{
	char path[] = "/tmp/usmc-policy-XXXXXX";
	int fd = mkstemp(path);
	pid_t pid;

	CHECK(fd >= 0);
	close(fd);
	write_policy_file(path, "smc *:%u\n");
	pid = h_fork(reload_client, path);
	for (int round = 0; round < 2; round++) {
		uint8_t b;

		fd = usmc_accept(lfd, NULL, NULL);
		CHECK(fd >= 0);
		h_read_all(fd, &b, 1);
		h_write_all(fd, "y", 1);
		h_check_mode(fd, round ? USMC_MODE_FALLBACK : USMC_MODE_SMCD);
		CHECK(usmc_close(fd) == 0);
	}
	CHECK(h_wait_ok(pid));
	unlink(path);
	printf("policy file, changed while running: followed\n");
}

/*
 * A client in a process of its own image: settings are read once per
 * process, and a forked client would have its parent's.
 */
static int exec_client(void *arg)
{
	char portbuf[16], expect[16];
	int fd;

	snprintf(portbuf, sizeof(portbuf), "%u", port);
	snprintf(expect, sizeof(expect), "%d", (int)(intptr_t)arg);
	if (extra_name)
		setenv(extra_name, extra_value, 1);
	if (policy_file)
		setenv("USMC_POLICY_FILE", policy_file, 1);
	setenv("USMC_LOG", log_path, 1);
	/* Whatever usmc has to say goes to the log, never to the program's stderr. */
	fd = open(stderr_path, O_WRONLY | O_TRUNC);
	CHECK(fd >= 0 && dup2(fd, STDERR_FILENO) == STDERR_FILENO);
	close(fd);
	execl(self_path, "policy", "--client", portbuf, expect, (char *)NULL);
	return 127;
}

static void try_setting(int lfd, const char *name, const char *value, int expect)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };
	struct stat st;
	pid_t pid;
	uint8_t b;
	int fd;

	extra_name = name, extra_value = value;
	pid = h_fork(exec_client, (void *)(intptr_t)expect);
	/* A client that could not be run must not leave us waiting. */
	CHECK(poll(&p, 1, 60000) == 1);
	fd = usmc_accept(lfd, NULL, NULL);
	CHECK(fd >= 0);
	h_read_all(fd, &b, 1);
	h_write_all(fd, "y", 1);
	CHECK(h_wait_ok(pid));
	CHECK(stat(stderr_path, &st) == 0 && st.st_size == 0);
	h_check_mode(fd, expect);
	CHECK(usmc_close(fd) == 0);
	extra_name = NULL;
	printf("%s=%s: %s\n", name ? name : "-", value ? value : "", usmc_mode_str(expect));
}

/* Settings: the usual booleans, and values out of range said in the log. */
static void check_settings(int lfd)
{
	static const char *const off[] = { "true", "yes", "on", "1", "TRUE" };

	unsetenv("USMC_POLICY");
	for (size_t i = 0; i < sizeof(off) / sizeof(off[0]); i++)
		try_setting(lfd, "USMC_DISABLE", off[i], USMC_MODE_FALLBACK);
	try_setting(lfd, "USMC_DISABLE", "maybe", USMC_MODE_SMCD);
	CHECK(h_count_lines(log_path, "USMC_DISABLE=maybe is not a boolean") == 1);
	try_setting(lfd, "USMC_BUFSIZE", "4k", USMC_MODE_SMCD);
	CHECK(h_count_lines(log_path, "USMC_BUFSIZE=4k is outside 16384..8388608: 16384") == 1);
	try_setting(lfd, "USMC_BUFSIZE", "1G", USMC_MODE_SMCD);
	CHECK(h_count_lines(log_path, "USMC_BUFSIZE=1G is outside 16384..8388608: 8388608") == 1);
	/* A policy file that is named but missing is said once; TCP is not forced. */
	policy_file = "/nonexistent/usmc-policy";
	try_setting(lfd, NULL, NULL, USMC_MODE_SMCD);
	policy_file = NULL;
	CHECK(h_count_lines(log_path, "/nonexistent/usmc-policy does not exist") == 1);
	/* A wrong statement is said in the log (the client's stderr stays empty). */
	try_setting(lfd, "USMC_POLICY", "bogus rule", USMC_MODE_SMCD);
	CHECK(h_count_lines(log_path, "USMC_POLICY line 1: not a rule") == 1);
	/* USMC_DEBUG: each fallback in the log with its reason; nothing without it. */
	try_setting(lfd, "USMC_POLICY", "tcp *", USMC_MODE_FALLBACK);
	CHECK(h_count_lines(log_path, "fallback 0x03000001") == 0);
	setenv("USMC_DEBUG", "yes", 1);
	try_setting(lfd, "USMC_POLICY", "tcp *", USMC_MODE_FALLBACK);
	unsetenv("USMC_DEBUG");
	CHECK(h_count_lines(log_path, "fallback 0x03000001 (policy") == 1);
	printf("settings: booleans, clamps and the log: ok\n");
}

/* --client PORT MODE: one connection, its mode checked, in a fresh image. */
static int client_main(char **argv)
{
	struct usmc_info info;
	uint8_t reply;
	int fd;

	port = (uint16_t)atoi(argv[2]);
	fd = h_connect(AF_INET, H_USMC, port);
	h_write_all(fd, "x", 1);
	h_read_all(fd, &reply, 1);
	CHECK(usmc_info(fd, &info, sizeof(info)) == 0);
	CHECK(info.mode == atoi(argv[3]));
	if (getenv("USMC_BUFSIZE")) {
		uint32_t want = strcmp(getenv("USMC_BUFSIZE"), "4k") ? 8u << 20 : 16u << 10;

		CHECK(info.rmb_size == want || info.peer_rmb_size == want);
	}
	CHECK(usmc_close(fd) == 0);
	return 0;
}

int main(int argc, char **argv)
{
	int lfd;


	if (argc == 4 && !strcmp(argv[1], "--client"))
		return client_main(argv);
	/* Our own program, as run: under valgrind /proc/self/exe is valgrind's. */
	CHECK(realpath(argv[0], self_path));

	CHECK(mkstemp(log_path) >= 0);
	CHECK(mkstemp(stderr_path) >= 0);
	check_rules();
	lfd = h_listen(AF_INET, H_USMC, &port);
	try_policy(lfd, "tcp 127.0.0.1:%u", USMC_MODE_FALLBACK);
	try_policy(lfd, "tcp *:%u", USMC_MODE_FALLBACK);
	try_policy(lfd, "smc 127.0.0.1:%u; tcp *", USMC_MODE_SMCD);
	try_policy(lfd, "tcp 10.0.0.0/8 # not us:%u", USMC_MODE_SMCD);
	try_policy(lfd, "tcp 127.0.0.0/8\nsmc *:%u", USMC_MODE_FALLBACK);
	check_file_syntax(lfd);
	check_reload(lfd);
	check_settings(lfd);
	unlink(log_path);
	unlink(stderr_path);
	CHECK(usmc_close(lfd) == 0);
	printf("policy: ok\n");
	return 0;
}
