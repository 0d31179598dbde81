// SPDX-License-Identifier: MIT
/*
 * Per-connection policy: rules on peer address, prefix and port decide
 * before connect() whether to try SMC or go straight to TCP.
 */
#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "usmc_policy.h"

static uint16_t port;
static const char *policy;

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

	setenv("USMC_POLICY", policy, 1);
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

int main(void)
{
	int lfd;

	check_rules();
	lfd = h_listen(AF_INET, H_USMC, &port);
	try_policy(lfd, "tcp 127.0.0.1:%u", USMC_MODE_FALLBACK);
	try_policy(lfd, "tcp *:%u", USMC_MODE_FALLBACK);
	try_policy(lfd, "smc 127.0.0.1:%u; tcp *", USMC_MODE_SMCD);
	try_policy(lfd, "tcp 10.0.0.0/8 # not us:%u", USMC_MODE_SMCD);
	try_policy(lfd, "tcp 127.0.0.0/8\nsmc *:%u", USMC_MODE_FALLBACK);
	CHECK(usmc_close(lfd) == 0);
	printf("policy: ok\n");
	return 0;
}
