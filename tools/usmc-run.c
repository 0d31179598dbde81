// SPDX-License-Identifier: MIT
/*
 * usmc-run - run a program with its TCP sockets made usmc sockets.
 *
 *     usmc-run [--] PROGRAM [ARGS...]
 *     usmc-run --kernel [--] PROGRAM [ARGS...]
 *
 * Puts libusmc-preload.so at the front of LD_PRELOAD and executes PROGRAM.
 * Two programs started this way on one host move their connections' data
 * through shared memory; against any other peer they speak plain TCP.
 * A statically linked program ignores LD_PRELOAD and simply runs as TCP.
 *
 * With --kernel, the sockets are the kernel's own SMC sockets instead
 * (Linux 6.11+): a BPF program, loaded by usmc-run for as long as it runs,
 * turns the TCP sockets of PROGRAM and of all its descendants into
 * IPPROTO_SMC ones, static binaries included.  usmc-run stays as their
 * parent, and as the subreaper of whatever they leave behind, until the
 * last of them has exited: the program is detached when usmc-run exits.
 *
 * The library is looked for next to this binary (the build tree), then
 * in the library directory of the installation this binary belongs to,
 * then in the library directory it was configured for.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "usmc_cli.h"
#include "usmc_policy_file.h"


#ifndef IPPROTO_SMC
#define IPPROTO_SMC 256
#endif

#ifndef USMC_PRELOAD_NAME
#define USMC_PRELOAD_NAME "libusmc-preload.so"
#endif
#ifndef USMC_PRIVATE_RELDIR
#define USMC_PRIVATE_RELDIR "../lib/usmc"
#endif
#ifndef USMC_PRIVATE_DIR
#define USMC_PRIVATE_DIR "/usr/local/lib/usmc"
#endif
#define USMC_RUN_KERNEL_NAME "usmc-run-kernel"

/* Like env(1) and the shells: the program could not be run. */
#define EXIT_CANNOT_RUN 127
/* A command line usmc-run does not understand. */
#define EXIT_USAGE 2

static void usage(FILE *out)
{
	fprintf(out,
		"usage: usmc-run [--kernel] [--] PROGRAM [ARGS...]\n"
		"       usmc-run --check-policy FILE\n"
		"       usmc-run --enable UNIT | --disable UNIT\n"
		"\n"
		"Runs PROGRAM with its TCP stream sockets made usmc sockets, by putting\n"
		USMC_PRELOAD_NAME " first in LD_PRELOAD.  Connections between two\n"
		"programs run this way on one host move their data through shared memory;\n"
		"all others are plain TCP.  Statically linked programs run as plain TCP.\n"
		"\n"
		"  --kernel     give PROGRAM and its descendants the kernel's SMC sockets\n"
		"               instead (Linux 6.11+, root): a BPF program loaded while\n"
		"               usmc-run runs makes their TCP sockets IPPROTO_SMC, static\n"
		"               binaries too.  usmc-run waits for all of them to exit.\n"
		"  --check-policy FILE\n"
		"               read FILE (- for standard input) as a policy, as the library\n"
		"               would, tell each statement it would ignore, and exit 1 if\n"
		"               there is one\n"
		"  --enable UNIT, --disable UNIT\n"
		"               write (remove) a systemd drop-in that runs the service UNIT\n"
		"               under usmc: Environment=LD_PRELOAD=..., in\n"
		"               /etc/systemd/system/UNIT.d/usmc.conf; then restart UNIT\n"
		"  -h, --help   show this text and exit\n"
		"  --version    show usmc's version and exit\n"
		"\n"
		"The usmc environment variables (USMC_DISABLE, USMC_BUFSIZE, USMC_POLICY, ...)\n"
		"reach the program unchanged.  Exit status: the program's, %d if it\n"
		"could not be run, %d for a command line usmc-run does not understand.\n",
		EXIT_CANNOT_RUN, EXIT_USAGE);
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

/*
 * candidate's absolute path into path, its directory resolved but not the
 * file itself: the SONAME's link, not the file it points to today, which
 * an upgrade replaces under the programs that inherit LD_PRELOAD.
 */
static bool found(const char *candidate, char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(candidate, '/');

	if (access(candidate, R_OK) || !slash || (size_t)(slash - candidate) >= sizeof(dir))
		return false;
	memcpy(dir, candidate, (size_t)(slash - candidate));
	dir[slash - candidate] = '\0';
	if (!realpath(dir[0] ? dir : "/", path) || strlen(path) + strlen(slash) >= PATH_MAX)
		return false;
	strcat(path, slash);
	return true;
}

/*
 * The absolute path of one of usmc's private files (the preload library,
 * usmc-run-kernel) into path (PATH_MAX bytes): beside this binary in the
 * build tree, then in the private directory relative to it, so that a
 * moved installation still works, then where it was configured to be.
 */
static bool find_private(const char *name, char *path)
{
	char dir[PATH_MAX], candidate[PATH_MAX + 64];

	if (own_dir(dir, sizeof(dir))) {
		snprintf(candidate, sizeof(candidate), "%s/%s", dir, name);
		if (found(candidate, path))
			return true;
		snprintf(candidate, sizeof(candidate), "%s/%s/%s", dir, USMC_PRIVATE_RELDIR, name);
		if (found(candidate, path))
			return true;
	}
	snprintf(candidate, sizeof(candidate), "%s/%s", USMC_PRIVATE_DIR, name);
	return found(candidate, path);
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

/* ---- --kernel ---- */

/*
 * The kernel's SMC is the business of usmc-run-kernel, a helper beside
 * the preload library: it needs libbpf, which a plain usmc-run should
 * neither load nor make its package depend on.
 */
static int run_kernel(char **argv)
{
	char helper[PATH_MAX];

	if (!find_private(USMC_RUN_KERNEL_NAME, helper)) {
		fprintf(stderr, "usmc-run: --kernel: %s is not installed (it comes with usmc's "
			"kernel support)\n", USMC_RUN_KERNEL_NAME);
		return EXIT_CANNOT_RUN;
	}
	/* The word before PROGRAM (--kernel or --) becomes the helper's own name. */
	argv[-1] = helper;
	execv(helper, argv - 1);
	fprintf(stderr, "usmc-run: --kernel: cannot run %s: %s\n", helper, strerror(errno));
	return EXIT_CANNOT_RUN;
}

static void check_warn(void *arg, int line, const char *what, const char *stmt)
{
	fprintf(stderr, "%s line %d: %s: '%s'\n", (const char *)arg, line, what, stmt);
}

/* --check-policy: the file read as the library reads it; 1 if any statement is wrong. */
static int check_policy(const char *file)
{
	struct usmc_policy p;
	size_t len;
	char *text = usmc_policy_read(file, &len);
	int errors;

	if (!text) {
		fprintf(stderr, "usmc-run: cannot read %s: %s\n", file, strerror(errno));
		return 1;
	}
	if (usmc_policy_parse(&p, text, len, check_warn, (void *)file)) {
		fprintf(stderr, "usmc-run: %s: %s\n", file, strerror(errno));
		free(text);
		return 1;
	}
	printf("%s: %d rule%s, %d allowed user%s, %d error%s\n", file, p.nrules,
	       p.nrules == 1 ? "" : "s", p.nusers, p.nusers == 1 ? "" : "s", p.errors,
	       p.errors == 1 ? "" : "s");
	errors = p.errors;
	usmc_policy_free(&p);
	free(text);
	return errors ? 1 : 0;
}

/* ---- --enable / --disable: a systemd drop-in, as mptcpize enable writes ---- */

static const char *unit_dir(void)
{
	const char *dir = getenv("USMC_SYSTEMD_DIR"); /* for tests and image builders */

	return dir && *dir ? dir : "/etc/systemd/system";
}

/* UNIT, with ".service" when it has no type; NULL for a name systemd would refuse. */
static char *unit_name(const char *unit)
{
	char *name;

	if (!*unit || strlen(unit) > 255 || strchr(unit, '/') || unit[0] == '.')
		return NULL;
	if (asprintf(&name, "%s%s", unit, strchr(unit, '.') ? "" : ".service") < 0)
		return NULL;
	return name;
}

static void daemon_reload(void)
{
	if (access("/run/systemd/system", F_OK)) {
		printf("systemd is not running here: the drop-in applies when it next starts\n");
		return;
	}
	if (system("systemctl daemon-reload") != 0)
		fprintf(stderr, "usmc-run: systemctl daemon-reload failed: run it yourself\n");
}

static int unit_enable(const char *unit, bool enable)
{
	char *name = unit_name(unit), dir[PATH_MAX], file[PATH_MAX + 16], lib[PATH_MAX];
	FILE *f;

	if (!name) {
		fprintf(stderr, "usmc-run: '%s' is not a unit name (try usmc-run --help)\n", unit);
		return EXIT_USAGE;
	}
	snprintf(dir, sizeof(dir), "%s/%s.d", unit_dir(), name);
	snprintf(file, sizeof(file), "%s/usmc.conf", dir);
	free(name);
	if (!enable) {
		if (unlink(file) && errno != ENOENT) {
			fprintf(stderr, "usmc-run: cannot remove %s: %s\n", file, strerror(errno));
			return 1;
		}
		rmdir(dir); /* only if nothing else is in it */
		printf("removed %s\n", file);
		daemon_reload();
		return 0;
	}
	if (!find_private(USMC_PRELOAD_NAME, lib)) {
		fprintf(stderr, "usmc-run: cannot find %s\n", USMC_PRELOAD_NAME);
		return 1;
	}
	if (mkdir(dir, 0755) && errno != EEXIST) {
		fprintf(stderr, "usmc-run: cannot make %s: %s\n", dir, strerror(errno));
		return 1;
	}
	f = fopen(file, "we");
	if (!f || fprintf(f, "# Written by usmc-run --enable; usmc-run --disable removes it.\n"
			  "[Service]\nEnvironment=LD_PRELOAD=%s\n", lib) < 0 || fclose(f)) {
		fprintf(stderr, "usmc-run: cannot write %s: %s\n", file, strerror(errno));
		return 1;
	}
	printf("wrote %s: restart the service to run it under usmc\n", file);
	daemon_reload();
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "kernel", no_argument, NULL, 'k' },
		{ "check-policy", required_argument, NULL, 'P' },
		{ "enable", required_argument, NULL, 'E' },
		{ "disable", required_argument, NULL, 'D' },
		{ 0 },
	};
	char lib[PATH_MAX];
	bool kernel = false;
	int c, first;

	/* '+': the options end at PROGRAM, whose own options are its own. */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			return usmc_cli_version("usmc-run");
		case 'k':
			kernel = true;
			break;
		case 'P':
		case 'E':
		case 'D':
			if (optind != argc || kernel)
				return usmc_cli_usage_error("usmc-run", "%s takes one %s and nothing else",
							    argv[optind - 2], c == 'P' ? "FILE" : "UNIT");
			return c == 'P' ? check_policy(optarg) : unit_enable(optarg, c == 'E');
		default:
			return usmc_cli_bad_option("usmc-run", argv, c);
		}
	}
	first = optind;
	if (first >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (kernel)
		return run_kernel(argv + first);
	if (!find_private(USMC_PRELOAD_NAME, lib)) {
		fprintf(stderr, "usmc-run: cannot find %s next to usmc-run or in %s\n",
			USMC_PRELOAD_NAME, USMC_PRIVATE_DIR);
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
