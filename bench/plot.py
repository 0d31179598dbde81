#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Plots usmc-bench's JSON: throughput against write size, latency and
connection rate per transport.  Bars and points are medians, whiskers the
spread (min .. max) of the runs, as each plot says.  Latencies span
decades (shared memory against TCP), so their axis is logarithmic; the
legends sit outside the plotting area, where they cover nothing."""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator  # noqa: E402

TRANSPORTS = ["tcp", "unix", "fallback", "fallback-server", "smc"]
COLORS = {"tcp": "#4c72b0", "unix": "#8c8c8c", "fallback": "#dd8452",
          "fallback-server": "#c4ad66", "smc": "#55a868"}


def subtitle(data):
    m = data["machine"]
    return ("%s, %d CPUs, Linux %s; median of %d runs of %g s, whiskers min–max" % (
        m["cpu"], m["nproc"], m["kernel"], data["runs"], data["duration"]))


def legend_outside(ax):
    """Below the axes, in one row: it covers no bar and no point."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=5, fontsize=8,
              frameon=False, title="median; whiskers: min–max of the runs",
              title_fontsize=8)


def transports_in(rows):
    return [t for t in TRANSPORTS if any(r["transport"] == t for r in rows)]


def whiskers(rows):
    return [[r["median"] - r["min"] for r in rows], [r["max"] - r["median"] for r in rows]]


def plot_throughput(data, outdir):
    rows = [r for r in data["results"] if r["test"] == "stream"]
    conns = sorted({r["conns"] for r in rows})
    if not rows:
        return None
    fig, axes = plt.subplots(1, len(conns), figsize=(6 * len(conns), 5), squeeze=False)
    for ax, c in zip(axes[0], conns):
        for t in transports_in(rows):
            pts = sorted((r for r in rows if r["transport"] == t and r["conns"] == c),
                         key=lambda r: r["size"])
            ax.errorbar([r["size"] for r in pts], [r["median"] for r in pts],
                        yerr=whiskers(pts), marker="o", capsize=3, label=t, color=COLORS[t])
        sizes = sorted({r["size"]: r["variant"].split()[0] for r in rows
                        if r["conns"] == c}.items())
        ax.set_xscale("log", base=2)
        # One tick per measured size, named as the benchmark names it; no minor ticks.
        ax.xaxis.set_major_locator(FixedLocator([size for size, _ in sizes]))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([name for _, name in sizes])
        ax.set_ylim(bottom=0)
        ax.set_xlabel("write size")
        ax.set_ylabel("throughput, GB/s (higher is better)")
        ax.set_title("stream, %d connection%s" % (c, "" if c == 1 else "s"))
        ax.grid(alpha=0.3)
        legend_outside(ax)
    fig.suptitle(subtitle(data), fontsize=8)
    return save(fig, outdir, "throughput.png")


def grouped_bars(ax, rows, groups, key):
    trs = transports_in(rows)
    width = 0.8 / max(len(trs), 1)
    for i, t in enumerate(trs):
        pts = [next((r for r in rows if key(r) == g and r["transport"] == t), None)
               for g in groups]
        pts = [p or {"median": 0, "min": 0, "max": 0} for p in pts]
        ax.bar([x + i * width for x in range(len(groups))], [p["median"] for p in pts],
               width, yerr=whiskers(pts), capsize=2, label=t, color=COLORS[t])
    ax.set_xticks([x + width * (len(trs) - 1) / 2 for x in range(len(groups))])
    ax.set_xticklabels(groups)
    ax.grid(axis="y", which="both", alpha=0.3)
    legend_outside(ax)


def plot_latency(data, outdir):
    rows = [r for r in data["results"] if r["test"].startswith("pingpong")]
    if not rows:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    for ax, metric in zip(axes, ["p50", "p99"]):
        sel = [r for r in rows if r["metric"] == metric]
        groups = list(dict.fromkeys("%s %s" % (r["test"], r["variant"]) for r in sel))
        grouped_bars(ax, sel, groups, lambda r: "%s %s" % (r["test"], r["variant"]))
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: "%g" % v))  # 1, 10, 100
        ax.set_ylabel("round trip, µs, log scale (lower is better)")
        ax.set_title("ping-pong round trip, %s" % metric)
        ax.tick_params(axis="x", labelsize=8)
    fig.suptitle(subtitle(data), fontsize=8)
    return save(fig, outdir, "latency.png")


def plot_connrate(data, outdir):
    rows = [r for r in data["results"] if r["test"].startswith("connrate")]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(8, 5))
    groups = list(dict.fromkeys("%s, %s" % (r["test"], r["variant"]) for r in rows))
    grouped_bars(ax, rows, groups, lambda r: "%s, %s" % (r["test"], r["variant"]))
    ax.set_ylabel("connections per second (higher is better)")
    ax.set_title("connection rate")
    fig.suptitle(subtitle(data), fontsize=8)
    return save(fig, outdir, "connrate.png")


def save(fig, outdir, name):
    path = os.path.join(outdir, name)
    fig.tight_layout()
    fig.savefig(path + ".tmp", dpi=100, format="png")
    plt.close(fig)
    os.replace(path + ".tmp", path)  # never a half-written PNG
    return path


def main():
    with open(sys.argv[1]) as f:
        data = json.load(f)
    for plot in (plot_throughput, plot_latency, plot_connrate):
        path = plot(data, sys.argv[2])
        if path:
            print("plot: %s" % path)


if __name__ == "__main__":
    main()
