// SPDX-License-Identifier: MIT
/*
 * A program as a user of the installed library writes it, built by
 * install_check.sh and deb_check.sh against the installed files alone:
 * one connection to itself, through shared memory.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <usmc.h>

int main(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	struct usmc_info info;
	char buf[6] = "";
	int l = usmc_socket(AF_INET, SOCK_STREAM, IPPROTO_SMC), c, s;

	if (usmc_bind(l, (struct sockaddr *)&a, len) || usmc_listen(l, 8) ||
	    getsockname(l, (struct sockaddr *)&a, &len))
		return 1;
	c = usmc_socket(AF_INET, SOCK_STREAM, IPPROTO_SMC);
	if (usmc_connect(c, (struct sockaddr *)&a, len) || (s = usmc_accept(l, NULL, NULL)) < 0)
		return 2;
	if (usmc_write(c, "hello", 5) != 5 || usmc_read(s, buf, 5) != 5 || strcmp(buf, "hello"))
		return 3;
	if (usmc_info(s, &info, sizeof(info)) || info.mode != USMC_MODE_SMCD)
		return 4;
	printf("%s %s\n", buf, usmc_mode_str(info.mode));
	return 0;
}
