// SPDX-License-Identifier: MIT
/*
 * A static cat: copies descriptor 0 to 1 and says on stderr how many bytes
 * it read and how reading ended.  Linked statically, it cannot load
 * usmc-run's preload: a shared-memory connection it inherits must end
 * with an error, never give it doorbell bytes (tests/exec_static.sh).
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
	fprintf(stderr, "static cat: read %ld bytes, then %s\n", total,
		n == 0 ? "EOF" : n < 0 ? strerror(errno) : "a failed write");
	return 0;
}
