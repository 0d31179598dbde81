// SPDX-License-Identifier: MIT
/*
 * usmc-run - run a program with its TCP sockets made usmc sockets.
 *
 *     usmc-run [--] PROGRAM [ARGS...]
 *
 * Puts libusmc-preload.so at the front of LD_PRELOAD and executes PROGRAM.
 * Two programs started this way on one host move their connections' data
 * through shared memory; against any other peer they speak plain TCP.
 * A statically linked program ignores LD_PRELOAD and simply runs as TCP.
 *
 * The library is looked for next to this binary (the build tree), then
 * in the library directory of the installation this binary belongs to,
 * then in the library directory it was configured for.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef USMC_PRELOAD_NAME
#define USMC_PRELOAD_NAME "libusmc-preload.so"
#endif
#ifndef USMC_PRELOAD_RELDIR
#define USMC_PRELOAD_RELDIR "../lib"
#endif
#ifndef USMC_PRELOAD_LIBDIR
#define USMC_PRELOAD_LIBDIR "/usr/local/lib"
#endif

/* Like env(1) and the shells: the program could not be run. */
#define EXIT_CANNOT_RUN 127

static void usage(FILE *out)
{
	fprintf(out,
		"usage: usmc-run [--] PROGRAM [ARGS...]\n"
		"\n"
		"Runs PROGRAM with its TCP stream sockets made usmc sockets, by putting\n"
		USMC_PRELOAD_NAME " first in LD_PRELOAD.  Connections between two\n"
		"programs run this way on one host move their data through shared memory;\n"
		"all others are plain TCP.  Statically linked programs run as plain TCP.\n"
		"\n"
		"  -h, --help   show this text and exit\n"
		"\n"
		"The usmc environment variables (USMC_DISABLE, USMC_BUFSIZE, USMC_POLICY, ...)\n"
		"reach the program unchanged.  Exit status: the program's, or %d if it\n"
		"could not be run.\n",
		EXIT_CANNOT_RUN);
}

/* The directory this binary lives in, without a trailing slash. */
static bool own_dir(char *dir, size_t size)
{
	ssize_t n = readlink("/proc/self/exe", dir, size - 1);
	char *slash;

	if (n <= 0 || (size_t)n >= size - 1)
		return false;
	dir[n] = '\0';
	slash = strrchr(dir, '/');
	if (!slash)
		return false;
	*slash = '\0';
	return true;
}

static bool found(const char *candidate, char *path)
{
	return access(candidate, R_OK) == 0 && realpath(candidate, path) != NULL;
}

/* The absolute path of the preload library into path (PATH_MAX bytes). */
static bool find_preload(char *path)
{
	char dir[PATH_MAX], candidate[PATH_MAX + 64];

	if (own_dir(dir, sizeof(dir))) {
		snprintf(candidate, sizeof(candidate), "%s/%s", dir, USMC_PRELOAD_NAME);
		if (found(candidate, path))
			return true;
		snprintf(candidate, sizeof(candidate), "%s/%s/%s", dir, USMC_PRELOAD_RELDIR,
			 USMC_PRELOAD_NAME);
		if (found(candidate, path))
			return true;
	}
	return found(USMC_PRELOAD_LIBDIR "/" USMC_PRELOAD_NAME, path);
}

/* LD_PRELOAD separates its entries by colons or spaces. */
static bool preload_lists(const char *list, const char *lib)
{
	size_t len = strlen(lib);

	for (const char *p = list; (p = strstr(p, lib)); p += len) {
		bool starts = p == list || p[-1] == ':' || p[-1] == ' ';
		bool ends = p[len] == '\0' || p[len] == ':' || p[len] == ' ';

		if (starts && ends)
			return true;
	}
	return false;
}

static bool set_preload(const char *lib)
{
	const char *old = getenv("LD_PRELOAD");
	char *value;
	int rc;

	if (!old || !*old)
		return setenv("LD_PRELOAD", lib, 1) == 0;
	if (preload_lists(old, lib))
		return true;
	if (asprintf(&value, "%s:%s", lib, old) < 0)
		return false;
	rc = setenv("LD_PRELOAD", value, 1);
	free(value);
	return rc == 0;
}

int main(int argc, char **argv)
{
	char lib[PATH_MAX];
	int first = 1;

	if (first < argc && (!strcmp(argv[first], "-h") || !strcmp(argv[first], "--help"))) {
		usage(stdout);
		return 0;
	}
	if (first < argc && !strcmp(argv[first], "--"))
		first++;
	else if (first < argc && argv[first][0] == '-') {
		fprintf(stderr, "usmc-run: unknown option %s (try usmc-run --help)\n", argv[first]);
		return EXIT_CANNOT_RUN;
	}
	if (first >= argc) {
		usage(stderr);
		return EXIT_CANNOT_RUN;
	}
	if (!find_preload(lib)) {
		fprintf(stderr, "usmc-run: cannot find %s next to usmc-run or in %s\n",
			USMC_PRELOAD_NAME, USMC_PRELOAD_LIBDIR);
		return EXIT_CANNOT_RUN;
	}
	/* The loader would split the path there. */
	if (strpbrk(lib, ": ")) {
		fprintf(stderr, "usmc-run: cannot preload %s: its path holds ':' or ' '\n", lib);
		return EXIT_CANNOT_RUN;
	}
	if (!set_preload(lib)) {
		fprintf(stderr, "usmc-run: cannot set LD_PRELOAD: %s\n", strerror(errno));
		return EXIT_CANNOT_RUN;
	}
	execvp(argv[first], argv + first);
	fprintf(stderr, "usmc-run: cannot run %s: %s\n", argv[first], strerror(errno));
	return EXIT_CANNOT_RUN;
}
