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
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "usmc_policy_file.h"

#ifdef USMC_HAVE_KERNEL
#include "usmc_kernel.h"
#endif

#ifndef IPPROTO_SMC
#define IPPROTO_SMC 256
#endif

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
		"usage: usmc-run [--kernel] [--] PROGRAM [ARGS...]\n"
		"       usmc-run --check-policy FILE\n"
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

/* ---- --kernel ---- */

#ifdef USMC_HAVE_KERNEL

static int cannot_run(const char *why)
{
	fprintf(stderr, "usmc-run: --kernel: %s\n", why);
	return EXIT_CANNOT_RUN;
}

/* usmc-run is in scope itself: its test socket must come out SMC. */
static bool smc_for_me(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int proto = 0;
	socklen_t len = sizeof(proto);
	bool ok;

	if (fd < 0)
		return false;
	ok = getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) == 0 && proto == IPPROTO_SMC;
	close(fd);
	return ok;
}

/*
 * The scope is usmc-run's own process with its descendants: the program
 * is in it from fork on, and so are the orphans it leaves, which the
 * subreaper adopts.  Nothing can create a socket before the entry exists.
 */
static struct usmc_kernel *load_for_me(void)
{
	char why[USMC_KWHY_LEN];
	struct usmc_kernel *k;
	struct usmc_kentry self;

	if (usmc_kernel_check(0, why, sizeof(why)) ||
	    usmc_kentry_pid(getpid(), &self, why, sizeof(why))) {
		cannot_run(why);
		return NULL;
	}
	k = usmc_kernel_load(why, sizeof(why));
	if (!k) {
		cannot_run(why);
		return NULL;
	}
	if (usmc_kernel_add(k, &self, why, sizeof(why))) {
		cannot_run(why);
		usmc_kernel_close(k);
		return NULL;
	}
	if (!smc_for_me()) {
		cannot_run("the BPF program is attached but did not make a test socket SMC");
		usmc_kernel_close(k);
		return NULL;
	}
	return k;
}

/*
 * A signal from the terminal already reached everyone in its process
 * group; only those outside it, and signals sent to usmc-run alone, are
 * passed on.  The targets are usmc-run's children: the program, then
 * what it left behind.
 */
static void forward(int sig, const siginfo_t *si, pid_t child, bool child_alive)
{
	char path[64];
	FILE *children;
	int pid;

	snprintf(path, sizeof(path), "/proc/self/task/%d/children", (int)getpid());
	children = fopen(path, "re");
	if (!children) {
		if (child_alive && !(si->si_code == SI_KERNEL && getpgid(child) == getpgrp()))
			kill(child, sig);
		return;
	}
	while (fscanf(children, "%d", &pid) == 1)
		if (!(si->si_code == SI_KERNEL && getpgid(pid) == getpgrp()))
			kill(pid, sig);
	fclose(children);
}

/* Reaps until no descendant is left; the wait status of the program. */
static int supervise(pid_t child, const sigset_t *sigs)
{
	bool child_alive = true;
	int status = 0, st;
	siginfo_t si;
	pid_t pid;

	for (;;) {
		int sig = sigwaitinfo(sigs, &si);

		if (sig < 0 && errno == EINTR)
			continue;
		if (sig < 0)
			break;
		if (sig != SIGCHLD) {
			forward(sig, &si, child, child_alive);
			continue;
		}
		while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
			if (pid == child) {
				status = st;
				child_alive = false;
			}
		}
		if (pid < 0 && errno == ECHILD)
			break;
	}
	return status;
}

/* Ends like the program did: by its exit status, or by its signal. */
static int exit_like(int status)
{
	struct rlimit no_core = { 0, 0 };
	sigset_t sig;

	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (!WIFSIGNALED(status))
		return EXIT_CANNOT_RUN;
	/* The program has dumped core already, if it was to. */
	setrlimit(RLIMIT_CORE, &no_core);
	signal(WTERMSIG(status), SIG_DFL);
	sigemptyset(&sig);
	sigaddset(&sig, WTERMSIG(status));
	sigprocmask(SIG_UNBLOCK, &sig, NULL);
	raise(WTERMSIG(status));
	return 128 + WTERMSIG(status);
}

static int run_kernel(char **argv)
{
	struct usmc_kernel *k = load_for_me();
	sigset_t sigs, old;
	pid_t child;
	int status;

	if (!k)
		return EXIT_CANNOT_RUN;
	/* Daemons that double-fork stay below usmc-run, and in scope. */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
		usmc_kernel_close(k);
		return cannot_run("cannot become a child subreaper");
	}
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGCHLD);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGQUIT);
	sigprocmask(SIG_BLOCK, &sigs, &old);
	child = fork();
	if (child == 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		execvp(argv[0], argv);
		fprintf(stderr, "usmc-run: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(EXIT_CANNOT_RUN);
	}
	if (child < 0) {
		usmc_kernel_close(k);
		return cannot_run("cannot fork");
	}
	status = supervise(child, &sigs);
	usmc_kernel_close(k);
	return exit_like(status);
}

#else

static int run_kernel(char **argv)
{
	(void)argv;
	fprintf(stderr, "usmc-run: --kernel: this usmc-run was built without kernel SMC support\n");
	return EXIT_CANNOT_RUN;
}

#endif

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

int main(int argc, char **argv)
{
	char lib[PATH_MAX];
	bool kernel = false;
	int first = 1;

	if (first < argc && (!strcmp(argv[first], "-h") || !strcmp(argv[first], "--help"))) {
		usage(stdout);
		return 0;
	}
	if (first < argc && !strcmp(argv[first], "--check-policy")) {
		if (argc != 3) {
			fprintf(stderr, "usmc-run: --check-policy takes one FILE, or - for standard "
				"input\n");
			return 2;
		}
		return check_policy(argv[2]);
	}
	if (first < argc && !strcmp(argv[first], "--kernel")) {
		kernel = true;
		first++;
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
	if (kernel)
		return run_kernel(argv + first);
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
