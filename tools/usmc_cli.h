/* SPDX-License-Identifier: MIT */
/*
 * usmc_cli.h - the command-line conventions of the usmc tools.
 *
 * Every tool parses with getopt_long, answers --help on standard output
 * with status 0 and --version with "NAME (usmc) VERSION", and ends a usage
 * error with one line on standard error and status 2.  A value it cannot
 * use is named in that line, with the option it was given to.
 *
 * Header-only, so that a tool takes it without a library of its own.
 * Parse with opterr = 0 and an optstring that starts with ':' (after a
 * '+', if any), so that the messages below are the only ones.
 */
#ifndef USMC_CLI_H
#define USMC_CLI_H

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef USMC_VERSION
#define USMC_VERSION "0.1.0"
#endif

#define USMC_EXIT_USAGE 2

static inline int usmc_cli_version(const char *prog)
{
	printf("%s (usmc) %s\n", prog, USMC_VERSION);
	return 0;
}

/*
 * What getopt_long returned '?' or ':' for, in one line; returns 2.  A long
 * option is the word getopt has just passed; a short one is optopt, since
 * the word may go on with more options.
 */
static inline int usmc_cli_bad_option(const char *prog, char **argv, int c)
{
	const char *word = optind > 0 ? argv[optind - 1] : "";
	bool is_long = word[0] == '-' && word[1] == '-';

	if (c == ':' && is_long)
		fprintf(stderr, "%s: %s needs a value (try %s --help)\n", prog, word, prog);
	else if (c == ':')
		fprintf(stderr, "%s: -%c needs a value (try %s --help)\n", prog, optopt, prog);
	else if (is_long && optopt && strchr(word, '='))
		fprintf(stderr, "%s: %.*s takes no value (try %s --help)\n", prog,
			(int)(strchr(word, '=') - word), word, prog);
	else if (is_long && !optopt)
		fprintf(stderr, "%s: unknown option %s (try %s --help)\n", prog, word, prog);
	else
		fprintf(stderr, "%s: unknown option -%c (try %s --help)\n", prog, optopt, prog);
	return USMC_EXIT_USAGE;
}

/* Any other usage error: one line, status 2. */
#define usmc_cli_usage_error(prog, fmt, ...)                                              \
	(fprintf(stderr, "%s: " fmt " (try %s --help)\n", prog, __VA_ARGS__, prog),       \
	 USMC_EXIT_USAGE)

/* A whole decimal number in min..max into *out; otherwise one line naming it, false. */
static inline bool usmc_cli_long(const char *prog, const char *opt, const char *text, long min,
				 long max, long *out)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(text, &end, 10);
	if (!*text || isspace((unsigned char)*text) || *end || errno == ERANGE) {
		fprintf(stderr, "%s: %s: '%s' is not a number\n", prog, opt, text);
		return false;
	}
	if (n < min || n > max) {
		fprintf(stderr, "%s: %s: '%s' is out of range (%ld..%ld)\n", prog, opt, text, min,
			max);
		return false;
	}
	*out = n;
	return true;
}

/* The same for a number with a fraction, in the half-open range (min, max]. */
static inline bool usmc_cli_double(const char *prog, const char *opt, const char *text,
				   double min, double max, double *out)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(text, &end);
	if (!*text || isspace((unsigned char)*text) || *end || errno == ERANGE || d != d) {
		fprintf(stderr, "%s: %s: '%s' is not a number\n", prog, opt, text);
		return false;
	}
	if (d <= min || d > max) {
		fprintf(stderr, "%s: %s: '%s' is out of range (above %g, up to %g)\n", prog, opt,
			text, min, max);
		return false;
	}
	*out = d;
	return true;
}

#endif /* USMC_CLI_H */
