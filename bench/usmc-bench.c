// SPDX-License-Identifier: MIT
/*
 * usmc-bench: throughput, latency and connection rate of usmc's shared
 * memory (smc) and of its fallback, against plain TCP and AF_UNIX.
 *
 *   usmc-bench [--quick] [--runs N] [--duration S] [--tests LIST]
 *              [--transports LIST] [--verify] [--json FILE] [--plot DIR]
 *
 * Runs are interleaved: each round measures every test over every
 * transport once, so that whatever else the machine does weighs on all
 * of them alike.  Exit status: 0, 1 if a measurement failed, 2 for a
 * usage error, 3 if a connection reported the wrong usmc mode.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "../tools/usmc_cli.h"

#ifndef USMC_BENCH_PLOT_SCRIPT
#define USMC_BENCH_PLOT_SCRIPT "plot.sh"
#endif

#define MAX_RUNS 64
#define MAX_FIGS 32
#define SIDE_TIMEOUT_SEC 30

static const char *const test_names[T_COUNT] = {
	[T_CONNRATE] = "connrate",	 [T_CONNRATE0] = "connrate0",
	[T_CONNRATE_PREFORK] = "connrate-prefork",
	[T_PINGPONG] = "pingpong",	 [T_PINGPONG_EPOLL] = "pingpong-epoll",
	[T_STREAM] = "stream",		 [T_STREAM_X4] = "stream-x4",
	[T_LIMIT] = "limit",		 [T_MEMORY] = "memory",
};

struct options {
	int runs;
	double duration;
	bool tests[T_COUNT];
	bool trs[TR_COUNT];
	bool verify;
	const char *json;
	const char *plot_dir;
};

/* One job shape, and the figures its results go to. */
struct bench_case {
	enum test_kind test;
	size_t size;
	int conns;
	int fig[2]; /* value[0] and value[1]; -1: none */
};

static struct figure figs[MAX_FIGS];
static int nfigs;
static struct bench_case cases[MAX_FIGS];
static int ncases;
static int failures, mode_failures;

static const char prog[] = "usmc-bench";

static void usage(FILE *f)
{
	fprintf(f, "usage: usmc-bench [--quick] [--runs N] [--duration S] [--tests LIST]\n"
		   "                  [--transports LIST] [--verify] [--json FILE] [--plot DIR]\n"
		   "\n"
		   "Measures usmc's shared memory (smc) and its fallback against plain TCP and\n"
		   "AF_UNIX over loopback, in interleaved runs; every figure is a median with its\n"
		   "spread and its ratio to TCP.\n"
		   "\n"
		   "  --quick            3 runs of 0.15 s, tests connrate,pingpong,stream,limit\n"
		   "  --runs N           interleaved runs, 1..%d (default 5)\n"
		   "  --duration S       seconds per measurement, up to 600 (default 1)\n"
		   "  --tests LIST       comma-separated, of connrate,connrate0,connrate-prefork,\n"
		   "                     pingpong,pingpong-epoll,stream,stream-x4,limit,memory\n"
		   "                     (default all)\n"
		   "  --transports LIST  comma-separated, of tcp,unix,fallback,fallback-server,smc\n"
		   "                     (default all)\n"
		   "  --verify           checksum every byte of the stream tests\n"
		   "  --json FILE        write the figures as JSON\n"
		   "  --plot DIR         write plots into DIR (with the JSON, if no --json)\n"
		   "  -h, --help         show this text\n"
		   "  --version          show the version\n"
		   "\n"
		   "Exit status 0; 1 if a measurement failed; 2 for a usage error; 3 if a\n"
		   "connection reported the wrong usmc mode.\n", MAX_RUNS);
}

/* Sets the flags named in a comma-separated list; false, said, on an unknown name. */
static bool parse_list(const char *opt, const char *list, const char *const *names, int n,
		       bool *set)
{
	char *buf = strdup(list), *save = NULL;
	bool ok = buf != NULL, any = false;

	memset(set, 0, sizeof(bool) * (size_t)n);
	for (char *w = ok ? strtok_r(buf, ",", &save) : NULL; w; w = strtok_r(NULL, ",", &save)) {
		int i = 0;

		while (i < n && strcmp(names[i], w))
			i++;
		if (i == n) {
			fprintf(stderr, "%s: %s: unknown name '%s'\n", prog, opt, w);
			ok = false;
			break;
		}
		set[i] = any = true;
	}
	free(buf);
	if (ok && !any)
		fprintf(stderr, "%s: %s: '%s' names nothing\n", prog, opt, list);
	return ok && any;
}

enum { OPT_QUICK = 256, OPT_RUNS, OPT_DURATION, OPT_TESTS, OPT_TRANSPORTS, OPT_VERIFY, OPT_JSON,
       OPT_PLOT, OPT_VERSION };

/* The options in any order; --quick sets only what the others leave alone. */
static void parse_options(int argc, char **argv, struct options *o)
{
	static const struct option opts[] = {
		{ "quick", no_argument, NULL, OPT_QUICK },
		{ "runs", required_argument, NULL, OPT_RUNS },
		{ "duration", required_argument, NULL, OPT_DURATION },
		{ "tests", required_argument, NULL, OPT_TESTS },
		{ "transports", required_argument, NULL, OPT_TRANSPORTS },
		{ "verify", no_argument, NULL, OPT_VERIFY },
		{ "json", required_argument, NULL, OPT_JSON },
		{ "plot", required_argument, NULL, OPT_PLOT },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ 0 },
	};
	const char *trnames[TR_COUNT];
	bool quick = false, runs_set = false, duration_set = false, tests_set = false, ok = true;
	long runs;
	int c;

	for (int i = 0; i < TR_COUNT; i++)
		trnames[i] = transport_name(i);
	*o = (struct options){ .runs = 5, .duration = 1.0 };
	parse_list("--tests",
		   "connrate,connrate0,connrate-prefork,pingpong,pingpong-epoll,stream,stream-x4,limit,memory",
		   test_names, T_COUNT, o->tests);
	for (int i = 0; i < TR_COUNT; i++)
		o->trs[i] = true;
	opterr = 0;
	while (ok && (c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_QUICK:
			quick = true;
			break;
		case OPT_VERIFY:
			o->verify = true;
			break;
		case OPT_RUNS:
			ok = runs_set = usmc_cli_long(prog, "--runs", optarg, 1, MAX_RUNS, &runs);
			if (ok)
				o->runs = (int)runs;
			break;
		case OPT_DURATION:
			ok = duration_set = usmc_cli_double(prog, "--duration", optarg, 0, 600,
							    &o->duration);
			break;
		case OPT_TESTS:
			ok = tests_set = parse_list("--tests", optarg, test_names, T_COUNT, o->tests);
			break;
		case OPT_TRANSPORTS:
			ok = parse_list("--transports", optarg, trnames, TR_COUNT, o->trs);
			break;
		case OPT_JSON:
			o->json = optarg;
			break;
		case OPT_PLOT:
			o->plot_dir = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case OPT_VERSION:
			exit(usmc_cli_version(prog));
		default:
			exit(usmc_cli_bad_option(prog, argv, c));
		}
	}
	if (!ok)
		exit(USMC_EXIT_USAGE);
	if (optind < argc)
		exit(usmc_cli_usage_error(prog, "unexpected %s", argv[optind]));
	if (quick && !runs_set)
		o->runs = 3;
	if (quick && !duration_set)
		o->duration = 0.15;
	if (quick && !tests_set)
		parse_list("--tests", "connrate,pingpong,stream,limit", test_names, T_COUNT, o->tests);
}

static int add_figure(const char *test, const char *variant, const char *metric, const char *unit,
		      size_t size, int conns)
{
	struct figure *f = &figs[nfigs];

	f->test = test;
	snprintf(f->variant, sizeof(f->variant), "%s", variant);
	f->metric = metric;
	f->unit = unit;
	f->size = size;
	f->conns = conns;
	return nfigs++;
}

static const char *size_name(size_t size, char *buf, size_t len)
{
	unsigned n = (unsigned)size;

	if (n >= (1 << 20))
		snprintf(buf, len, "%uMiB", n >> 20);
	else if (n >= 1024)
		snprintf(buf, len, "%uKiB", n >> 10);
	else
		snprintf(buf, len, "%uB", n);
	return buf;
}

static void add_case(enum test_kind test, size_t size, int conns)
{
	struct bench_case *c = &cases[ncases++];
	const char *name = test_names[test];
	char variant[32], sz[16];

	*c = (struct bench_case){ .test = test, .size = size, .conns = conns, .fig = { -1, -1 } };
	size_name(size, sz, sizeof(sz));
	switch (test) {
	case T_CONNRATE:
	case T_CONNRATE0:
	case T_CONNRATE_PREFORK:
		snprintf(variant, sizeof(variant), "%s",
			 test == T_CONNRATE0 ? "no data" : "64B each way");
		c->fig[0] = add_figure(name, variant, "rate", "conn/s", size, 1);
		break;
	case T_PINGPONG:
	case T_PINGPONG_EPOLL:
		c->fig[0] = add_figure(name, sz, "p50", "us", size, 1);
		c->fig[1] = add_figure(name, sz, "p99", "us", size, 1);
		break;
	default:
		snprintf(variant, sizeof(variant), "%s x%d", sz, conns);
		c->fig[0] = add_figure("stream", variant, "throughput", "GB/s", size, conns);
		break;
	}
}

static void plan(const struct options *o)
{
	static const size_t stream_sizes[] = { 4 << 10, 64 << 10, 1 << 20 };

	if (o->tests[T_CONNRATE])
		add_case(T_CONNRATE, 64, 1);
	if (o->tests[T_CONNRATE0])
		add_case(T_CONNRATE0, 0, 1);
	if (o->tests[T_CONNRATE_PREFORK])
		add_case(T_CONNRATE_PREFORK, 64, 1);
	for (int t = T_PINGPONG; t <= T_PINGPONG_EPOLL; t++) {
		if (!o->tests[t])
			continue;
		add_case(t, 64, 1);
		add_case(t, 1024, 1);
	}
	for (int t = T_STREAM; t <= T_STREAM_X4; t++)
		for (size_t i = 0; o->tests[t] && i < 3; i++)
			add_case(t, stream_sizes[i], t == T_STREAM_X4 ? 4 : 1);
}

/* ---- one measurement: a server and a client process ---- */

/* Reads exactly len bytes from a child's pipe, waiting at most timeout seconds. */
static bool pipe_read(int fd, void *buf, size_t len, int timeout)
{
	char *p = buf;

	while (len) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&pf, 1, timeout * 1000) <= 0)
			return false;
		n = read(fd, p, len);
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

struct job_pipes {
	int port[2], stop[2], sres[2], cres[2];
};

/* Closes every pipe end but keep (-1: all of them). */
static void close_pipes(struct job_pipes *p, int keep1, int keep2)
{
	int *fds = (int *)p;

	for (size_t i = 0; i < sizeof(*p) / sizeof(int); i++)
		if (fds[i] >= 0 && fds[i] != keep1 && fds[i] != keep2)
			close(fds[i]);
}

static void report_side(int fd, const struct side_result *r)
{
	if (write(fd, r, sizeof(*r)) != (ssize_t)sizeof(*r))
		_exit(1);
	_exit(0);
}

static pid_t spawn_server(const struct job *j, struct job_pipes *p)
{
	pid_t pid = fork();
	struct side_result r = { .ok = 1 };
	uint16_t port = 0;
	int lfd;

	if (pid != 0)
		return pid;
	/* The stop pipe hangs up only once no process but the main one holds it. */
	close(p->stop[1]);
	close(p->cres[1]);
	lfd = bench_listen(j, &port);
	if (lfd < 0)
		fail(&r, "listen");
	if (lfd >= 0 && j->test == T_CONNRATE_PREFORK)
		server_prefork(j, lfd, p->stop[0], &r);
	if (write(p->port[1], &port, sizeof(port)) != sizeof(port))
		_exit(1);
	if (lfd >= 0) {
		server_run(j, lfd, p->stop[0], &r);
		usmc_close(lfd);
	}
	report_side(p->sres[1], &r);
	return 0;
}

static pid_t spawn_client(const struct job *j, uint16_t port, struct job_pipes *p)
{
	pid_t pid = fork();
	struct side_result r = { .ok = 1 };

	if (pid != 0)
		return pid;
	close_pipes(p, p->cres[1], -1);
	client_run(j, port, &r);
	report_side(p->cres[1], &r);
	return 0;
}

/* Closes one pipe end in the main process, once a child holds it. */
static void drop(int *fd)
{
	close(*fd);
	*fd = -1;
}

/* Runs one job; false if a side failed or hung (it is killed then). */
static bool run_job(const struct job *j, struct side_result *cli, struct side_result *srv)
{
	int budget = (int)j->duration + SIDE_TIMEOUT_SEC;
	struct job_pipes p;
	pid_t spid, cpid = -1;
	uint16_t port;
	bool ok;

	memset(&p, -1, sizeof(p));
	if (pipe(p.port) || pipe(p.stop) || pipe(p.sres) || pipe(p.cres)) {
		close_pipes(&p, -1, -1);
		return false;
	}
	fflush(NULL);
	spid = spawn_server(j, &p);
	drop(&p.port[1]);
	drop(&p.stop[0]);
	drop(&p.sres[1]);
	ok = spid > 0 && pipe_read(p.port[0], &port, sizeof(port), SIDE_TIMEOUT_SEC);
	if (ok)
		cpid = spawn_client(j, port, &p);
	drop(&p.cres[1]);
	ok = ok && cpid > 0 && pipe_read(p.cres[0], cli, sizeof(*cli), budget);
	/* The client is done: the server's stop pipe hangs up. */
	drop(&p.stop[1]);
	if (ok && cli->ok)
		ok = pipe_read(p.sres[0], srv, sizeof(*srv), SIDE_TIMEOUT_SEC);
	if ((!ok || !cli->ok) && spid > 0)
		kill(spid, SIGKILL);
	if (!ok && cpid > 0)
		kill(cpid, SIGKILL);
	if (cpid > 0)
		waitpid(cpid, NULL, 0);
	if (spid > 0)
		waitpid(spid, NULL, 0);
	close_pipes(&p, -1, -1);
	return ok && cli->ok && srv->ok;
}

static void warn_mode(const struct job *j, const struct side_result *r, bool server)
{
	if (!r->mode_wrong)
		return;
	mode_failures++;
	fprintf(stderr,
		"WARNING: %s %zuB over %s: %d %s connection(s) report mode %s, expected %s "
		"(reason 0x%08x: %s)\n",
		test_names[j->test], j->msg_size, transport_name(j->tr), r->mode_wrong,
		server ? "server" : "client",
		usmc_mode_str(r->mode_seen), usmc_mode_str(expected_mode(j->tr, server)), r->reason,
		usmc_reason_str(r->reason));
}

/* Runs a case over a transport once, adding its figures. */
static void measure(const struct options *o, const struct bench_case *c, enum transport tr)
{
	static int seq;
	struct job j = { .test = c->test, .tr = tr, .msg_size = c->size, .conns = c->conns,
			 .duration = o->duration, .verify = o->verify };
	struct side_result cli = { 0 }, srv = { .ok = 1 };
	bool fresh_ns, ok;

	snprintf(j.unix_path, sizeof(j.unix_path), "usmc-bench/%d/%d", (int)getpid(), seq++);
	fresh_ns = (c->test == T_CONNRATE || c->test == T_CONNRATE0 ||
		    c->test == T_CONNRATE_PREFORK) && netns_fresh_enter();
	ok = run_job(&j, &cli, &srv);
	if (fresh_ns)
		netns_leave();
	if (!ok) {
		failures++;
		fprintf(stderr, "ERROR: %s %zu over %s: %s\n", test_names[c->test], c->size,
			transport_name(tr), cli.err[0] ? cli.err : srv.err[0] ? srv.err : "no result");
		return;
	}
	warn_mode(&j, &cli, false);
	warn_mode(&j, &srv, true);
	if (c->test != T_PINGPONG && c->test != T_PINGPONG_EPOLL && cli.count != srv.count) {
		failures++;
		fprintf(stderr, "ERROR: %s over %s: the client counted %llu, the server %llu\n",
			test_names[c->test], transport_name(tr), (unsigned long long)cli.count,
			(unsigned long long)srv.count);
	}
	for (int k = 0; k < 2; k++) {
		struct figure *f = c->fig[k] >= 0 ? &figs[c->fig[k]] : NULL;

		if (f)
			f->runs[tr][f->nruns[tr]++] = cli.value[k];
	}
}

/* ---- limits, plots, main ---- */

_Static_assert(sizeof(struct limits) == 8 * sizeof(double), "struct limits holds doubles only");

static void limits_median(const struct limits *all, int n, struct limits *out)
{
	double *o = (double *)out, v[MAX_RUNS];

	for (size_t k = 0; k < sizeof(*out) / sizeof(double); k++) {
		for (int r = 0; r < n; r++)
			v[r] = ((const double *)&all[r])[k];
		o[k] = median(v, n);
	}
}

/* Plots are a convenience: their failure leaves the figures standing. */
static void plot(const char *json, const char *dir)
{
	const char *script = getenv("USMC_BENCH_PLOT");
	int status = -1;
	pid_t pid;

	if (!script)
		script = USMC_BENCH_PLOT_SCRIPT;
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		execl(script, script, json, dir, (char *)NULL);
		fprintf(stderr, "usmc-bench: %s: %s\n", script, strerror(errno));
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
		fprintf(stderr, "usmc-bench: plotting failed; the figures above stand\n");
}

static void print_header(const struct options *o)
{
	printf("usmc-bench: %d interleaved run(s) of %.2f s per measurement%s; figures are medians\n"
	       "with the spread (min .. max), the ratio to tcp's median (above 1: more than tcp;\n"
	       "for latency, lower is better) and the median of each run's ratio to tcp's figure\n"
	       "of the same run (per-run), with a 95%% confidence interval from 6 runs on.\n"
	       "Noise from other load shows in the spread.\n\n",
	       o->runs, o->duration, o->verify ? ", every byte checksummed" : "");
	fflush(stdout);
}

int main(int argc, char **argv)
{
	static struct limits lim_runs[MAX_RUNS];
	struct limits lim = { 0 };
	struct options o;
	char json_tmp[4096];
	const char *json;

	parse_options(argc, argv, &o);
	plan(&o);
	signal(SIGPIPE, SIG_IGN);
	if (ncases || o.tests[T_LIMIT])
		print_header(&o);
	for (int run = 0; run < o.runs && (ncases || o.tests[T_LIMIT]); run++) {
		fprintf(stderr, "run %d/%d\n", run + 1, o.runs);
		if (o.tests[T_LIMIT])
			limits_measure(o.duration < 0.3 ? o.duration : 0.3, &lim_runs[run]);
		/* Every other run backwards: no transport always follows the same one. */
		for (int i = 0; i < ncases; i++)
			for (int k = 0; k < TR_COUNT; k++) {
				int tr = run % 2 ? TR_COUNT - 1 - k : k;

				if (o.trs[tr])
					measure(&o, &cases[i], tr);
			}
	}
	if (o.tests[T_LIMIT]) {
		limits_median(lim_runs, o.runs, &lim);
		report_limits(&lim);
	}
	if (nfigs)
		report_table(figs, nfigs, o.trs);
	/* Thousands of connections take seconds: once, after the interleaved runs. */
	if (o.tests[T_MEMORY] && !memory_run(o.trs))
		failures++;
	json = o.json;
	if (o.plot_dir) {
		mkdir(o.plot_dir, 0755);
		if (!json && snprintf(json_tmp, sizeof(json_tmp), "%s/usmc-bench.json", o.plot_dir) <
				     (int)sizeof(json_tmp))
			json = json_tmp;
	}
	if (json && report_json(json, figs, nfigs, o.trs, &lim, o.tests[T_LIMIT], o.runs, o.duration)) {
		fprintf(stderr, "usmc-bench: cannot write %s: %s\n", json, strerror(errno));
		failures++;
	}
	if (json && o.plot_dir)
		plot(json, o.plot_dir);
	netns_cleanup();
	if (failures)
		fprintf(stderr, "usmc-bench: %d measurement(s) failed\n", failures);
	return failures ? 1 : mode_failures ? 3 : 0;
}
