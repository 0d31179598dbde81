// SPDX-License-Identifier: MIT
/*
 * Statistics and output: the table on stdout, and JSON for the plots.
 * Every figure is the median of the runs, with their spread (min .. max),
 * and its ratio to tcp's median from the same invocation.  Each run also
 * gives a ratio of its own, to tcp's figure of the same run, measured
 * moments apart: the median of those cancels the drift of a busy machine
 * that the ratio of medians keeps.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "bench.h"

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double percentile(uint32_t *ns, size_t n, double p)
{
	size_t i;

	if (!n)
		return 0;
	qsort(ns, n, sizeof(*ns), cmp_u32);
	i = (size_t)(p * (double)(n - 1) + 0.5);
	return ns[i] / 1e3;
}

double median(double *v, int n)
{
	if (n <= 0)
		return 0;
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct summary {
	double med, min, max;
};

static struct summary summarize(const struct figure *f, int tr)
{
	double v[64];
	int n = f->nruns[tr];
	struct summary s = { 0, 0, 0 };

	if (!n)
		return s;
	memcpy(v, f->runs[tr], sizeof(double) * (size_t)n);
	s.med = median(v, n);
	s.min = v[0];
	s.max = v[n - 1];
	return s;
}

/* The figure over tcp's, or 0 when tcp did not run. */
static double ratio_to_tcp(const struct figure *f, int tr)
{
	struct summary tcp = summarize(f, TR_TCP), s = summarize(f, tr);

	return f->nruns[TR_TCP] && tcp.med > 0 ? s.med / tcp.med : 0;
}

/* P(X <= k) for X ~ Binomial(n, 1/2). */
static double binomial_half_cdf(int n, int k)
{
	double term = 1, sum = 0;

	for (int i = 0; i <= n; i++)
		term /= 2;
	for (int i = 0; i <= k; i++) {
		sum += term;
		term = term * (n - i) / (i + 1);
	}
	return sum;
}

/*
 * The median of the per-run ratios to tcp, or 0 when the runs do not pair
 * up (a failed measurement leaves a run out).  With 6 runs or more, *lo
 * and *hi get a 95% confidence interval of that median, from order
 * statistics (no assumption on the distribution); otherwise both are 0.
 */
static double paired_ratio(const struct figure *f, int tr, double *lo, double *hi)
{
	double v[64], med;
	int n = f->nruns[tr], k = 0;

	*lo = *hi = 0;
	if (!n || n != f->nruns[TR_TCP])
		return 0;
	for (int r = 0; r < n; r++) {
		if (f->runs[TR_TCP][r] <= 0)
			return 0;
		v[r] = f->runs[tr][r] / f->runs[TR_TCP][r];
	}
	while (binomial_half_cdf(n, k) <= 0.025)
		k++;
	med = median(v, n);
	if (k > 0) {
		*lo = v[k - 1];
		*hi = v[n - k];
	}
	return med;
}

static const char *num(char *buf, size_t len, double v)
{
	snprintf(buf, len, v >= 1000 ? "%.0f" : v >= 10 ? "%.1f" : "%.2f", v);
	return buf;
}

void report_table(struct figure *f, int nfig, const bool *trs)
{
	printf("%-34s %-16s %9s %21s %7s %7s %15s\n", "figure", "transport", "median", "min .. max",
	       "vs tcp", "per-run", "its 95% CI");
	for (int i = 0; i < nfig; i++) {
		char title[80], a[32], b[32], c[32], range[72], ratio[16], paired[16], ci[40];
		bool first = true;

		snprintf(title, sizeof(title), "%s %s %s, %s", f[i].test, f[i].variant, f[i].metric,
			 f[i].unit);
		for (int tr = 0; tr < TR_COUNT; tr++) {
			struct summary s;
			double r, p, lo, hi;

			if (!trs[tr] || !f[i].nruns[tr])
				continue;
			s = summarize(&f[i], tr);
			r = ratio_to_tcp(&f[i], tr);
			p = paired_ratio(&f[i], tr, &lo, &hi);
			snprintf(range, sizeof(range), "%s .. %s", num(b, sizeof(b), s.min),
				 num(c, sizeof(c), s.max));
			snprintf(ratio, sizeof(ratio), r > 0 ? "%.3f" : "-", r);
			snprintf(paired, sizeof(paired), p > 0 ? "%.3f" : "-", p);
			if (lo > 0 && tr != TR_TCP)
				snprintf(ci, sizeof(ci), "%.3f .. %.3f", lo, hi);
			else
				snprintf(ci, sizeof(ci), "-");
			printf("%-34s %-16s %9s %21s %7s %7s %15s\n", first ? title : "", transport_name(tr),
			       num(a, sizeof(a), s.med), range, ratio, paired, ci);
			first = false;
		}
		if (!first)
			printf("\n");
	}
	fflush(stdout);
}

void report_limits(const struct limits *l)
{
	printf("what the machine allows (median of the runs):\n");
	printf("  memcpy, one thread, 64 KiB blocks: %.2f GB/s into a 256 KiB ring, "
	       "%.2f GB/s through 64 MiB\n",
	       l->memcpy_ring_gbs, l->memcpy_big_gbs);
	printf("  cross-process round trip, p50/p99 us: futex %.1f/%.1f, pipe %.1f/%.1f, "
	       "spinning %.2f/%.2f\n\n",
	       l->futex_us[0], l->futex_us[1], l->pipe_us[0], l->pipe_us[1], l->spin_us[0],
	       l->spin_us[1]);
	fflush(stdout);
}

/* The CPU model line of /proc/cpuinfo, without its label. */
static void cpu_model(char *buf, size_t len)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[256];

	snprintf(buf, len, "unknown");
	while (f && fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');

		if (strncmp(line, "model name", 10) || !colon)
			continue;
		snprintf(buf, len, "%s", colon + 2);
		buf[strcspn(buf, "\n")] = 0;
		break;
	}
	if (f)
		fclose(f);
}

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', f);
		if ((unsigned char)*s >= 0x20)
			fputc(*s, f);
	}
	fputc('"', f);
}

static void json_machine(FILE *f)
{
	struct utsname u;
	char model[200];

	cpu_model(model, sizeof(model));
	uname(&u);
	fprintf(f, "  \"machine\": {\"nproc\": %ld, \"cpu\": ", sysconf(_SC_NPROCESSORS_ONLN));
	json_string(f, model);
	fprintf(f, ", \"kernel\": ");
	json_string(f, u.release);
	fprintf(f, "},\n");
}

static void json_figure(FILE *f, const struct figure *fig, int tr, bool last)
{
	struct summary s = summarize(fig, tr);
	double lo, hi, paired = paired_ratio(fig, tr, &lo, &hi);

	fprintf(f, "    {\"test\": \"%s\", \"variant\": \"%s\", \"metric\": \"%s\", \"unit\": \"%s\", ",
		fig->test, fig->variant, fig->metric, fig->unit);
	fprintf(f, "\"size\": %zu, \"conns\": %d, \"transport\": \"%s\", ", fig->size, fig->conns,
		transport_name(tr));
	fprintf(f,
		"\"median\": %.6g, \"min\": %.6g, \"max\": %.6g, \"ratio_tcp\": %.4g, "
		"\"ratio_paired\": %.4g, \"ratio_paired_ci95\": [%.4g, %.4g], \"runs\": [",
		s.med, s.min, s.max, ratio_to_tcp(fig, tr), paired, lo, hi);
	for (int r = 0; r < fig->nruns[tr]; r++)
		fprintf(f, "%s%.6g", r ? ", " : "", fig->runs[tr][r]);
	fprintf(f, "]}%s\n", last ? "" : ",");
}

int report_json(const char *path, struct figure *fig, int nfig, const bool *trs,
		const struct limits *l, bool have_limits, int runs, double duration)
{
	FILE *f = fopen(path, "w");
	int left = 0;

	if (!f)
		return -1;
	fprintf(f, "{\n");
	json_machine(f);
	fprintf(f, "  \"runs\": %d,\n  \"duration\": %g,\n", runs, duration);
	if (have_limits)
		fprintf(f,
			"  \"limits\": {\"memcpy_ring_gbs\": %.4g, \"memcpy_big_gbs\": %.4g, "
			"\"futex_us\": [%.4g, %.4g], \"pipe_us\": [%.4g, %.4g], \"spin_us\": [%.4g, %.4g]},\n",
			l->memcpy_ring_gbs, l->memcpy_big_gbs, l->futex_us[0], l->futex_us[1],
			l->pipe_us[0], l->pipe_us[1], l->spin_us[0], l->spin_us[1]);
	fprintf(f, "  \"results\": [\n");
	for (int i = 0; i < nfig; i++)
		for (int tr = 0; tr < TR_COUNT; tr++)
			left += trs[tr] && fig[i].nruns[tr];
	for (int i = 0; i < nfig; i++)
		for (int tr = 0; tr < TR_COUNT; tr++)
			if (trs[tr] && fig[i].nruns[tr])
				json_figure(f, &fig[i], tr, --left == 0);
	fprintf(f, "  ]\n}\n");
	return fclose(f);
}
