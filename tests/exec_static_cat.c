// SPDX-License-Identifier: MIT
/*
 * A cat: copies descriptor 0 to 1 and says on stderr how many bytes it
 * read and how reading ended.  Linked statically (exec_static_cat), it
 * cannot load usmc-run's preload; linked dynamically and made set-user-ID
 * to another user (exec_secure_cat), its loader ignores usmc-run's
 * preload.  A shared-memory connection it inherits must end with an
 * error, never give it doorbell bytes (tests/exec_static.sh,
 * tests/exec_setuid.sh).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
	char buf[65536];
	long total = 0;
	ssize_t n;

	while ((n = read(0, buf, sizeof(buf))) > 0) {
		total += n;
		if (write(1, buf, (size_t)n) != n)
			break;
	}
	fprintf(stderr, "cat: read %ld bytes, then %s\n", total,
		n == 0 ? "EOF" : n < 0 ? strerror(errno) : "a failed write");
	return 0;
}
