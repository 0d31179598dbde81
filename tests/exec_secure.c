// SPDX-License-Identifier: MIT
/*
 * An exec the kernel runs in secure-execution mode (AT_SECURE), by an
 * ordinary program for usmc-run to take over (exec_secure.sh drives it):
 *
 *   exec_secure uid|gid|none [CMD [ARG...]]
 *       Makes the real user (uid) or group (gid) nobody's, the effective
 *       one staying root's, as squid's master does before it execs its
 *       worker; then execs CMD (execvp), or with no CMD exits 0.
 *
 * Needs root for uid and gid.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define NOBODY 65534

int main(int argc, char **argv)
{
	if (argc < 2)
		return fprintf(stderr, "usage: exec_secure uid|gid|none [CMD [ARG...]]\n"), 2;
	if (!strcmp(argv[1], "uid") && setresuid(NOBODY, 0, 0))
		return perror("setresuid"), 1;
	if (!strcmp(argv[1], "gid") && setresgid(NOBODY, 0, 0))
		return perror("setresgid"), 1;
	if (argc == 2)
		return 0;
	execvp(argv[2], argv + 2);
	perror("execvp");
	return 127;
}
