#!/usr/bin/env python3
"""Cost of strata's observability, measured on the benchmark workloads.

For each workload (1 thread) it times:
  strata, sampling off      STRATA_SAMPLE_RATE=0 (the baseline)
  strata, default sampling  STRATA_SAMPLE_RATE unset (512 KiB stride); the
                            stats counters are always on in both
  strata, full tracking     STRATA_LEAKCHECK=1 (every allocation recorded
                            with its stack, leak check at exit)
  glibc                     no preload
  valgrind memcheck         glibc under valgrind --leak-check=full
and prints the slowdowns (of CPU time by default: user + system of each
run, from wait4's rusage, which other processes on a shared machine
disturb much less than wall time; --clock wall for wall time): sampling vs
off (goal under 2% geomean, under 4% on every workload), full tracking vs
strata, valgrind vs glibc, and how many times less strata's leak checking
slows a program down than valgrind's (goal at least 10x).

How sampling is measured (a cost of a few percent on runs of ~0.1 s, on a
machine shared with other work): in adjacent pairs, one run sampling off
and one sampling on, the order alternating from pair to pair and the
workloads taken in turn, so that whatever load the machine has at a moment
falls on both runs of a pair. A row's slowdown is the median of its pairs'
ratios, with a 90% confidence interval (the order statistics of the median,
distribution-free); a row whose interval is wider than +-precision gets
more pairs, up to --max-pairs. The geomean's interval is a bootstrap over
each row's pairs. The medians of 9 runs per configuration that this tool
took before moved mstress's slowdown by up to 8 points between two runs
of the same code (its 90% range over 9 runs: 1.009-1.058 for a true
1.034); 31-61 pairs hold it to about +-0.5 point. The verdict line says
whether the issue's bars are met, missed, or not decided (an interval
reaches across a bar).

Full tracking, glibc and valgrind are timed in rotated order with an off
run of their own (--reps each; valgrind half as often): slowdowns of 1.5x
to 70x need no more.

Usage (from the repository root, after
`bazel build -c opt //alloc:libstrata.so //bench/workloads/...`):
  python3 bench/overhead/overhead.py [--reps 9] [--scale 0.3] [--pairs 41]
      [--max-pairs 241] [--precision 0.005] [--sample-rate BYTES]
      [--workloads a,b] [--clock cpu|wall] [--write]
--write replaces the "## Observability overhead" section of bench/RESULTS.md
(only with the defaults of --sample-rate and --workloads).
--sample-rate sets the sampling configuration's stride (to check that the
measure sees a real cost: a quarter of the default stride samples four
times as often).
"""
import argparse
import math
import os
import random
import statistics
import subprocess
import sys
import time

WORKLOADS = ["larson", "xmalloc", "mstress", "churn", "pmr_containers"]
# Issue 19's bars for the default sampler.
GEOMEAN_BAR = 1.02
ROW_BAR = 1.04
# Two-sided confidence of the intervals.
CONFIDENCE = 0.90


def bazel_bin():
    return subprocess.check_output(["bazel", "info", "bazel-bin"], text=True,
                                   stderr=subprocess.DEVNULL).strip()


def run(cmd, env, clock):
    """Runs cmd; returns its wall time, or its CPU time (user + system, from
    wait4's rusage: what the program itself spent, much less disturbed by
    other processes on a shared machine than wall time)."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 23):
        sys.exit(f"overhead: {' '.join(cmd)} failed ({proc.returncode}): {err.decode()[-500:]}")
    return usage.ru_utime + usage.ru_stime if clock == "cpu" else elapsed


def median_interval(xs, confidence=CONFIDENCE):
    """A distribution-free confidence interval of the median of xs: the
    order statistics x(j) and x(n+1-j) with the largest j for which
    P(j <= Binomial(n, 1/2) < n+1-j) >= confidence."""
    s = sorted(xs)
    n = len(s)
    best = None
    for j in range(1, n // 2 + 1):
        # P(Binomial(n, 1/2) < j) on each side.
        tail = sum(math.comb(n, i) for i in range(j)) / 2.0 ** n
        if 1.0 - 2.0 * tail >= confidence:
            best = j
        else:
            break
    if best is None:
        return s[0], s[-1]
    return s[best - 1], s[n - best]


def geo(xs):
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def geomean_interval(ratio_lists, confidence=CONFIDENCE, resamples=2000):
    """Bootstrap interval of the geomean of the rows' median ratios
    (resampling each row's pairs; a fixed seed: the same data give the same
    interval)."""
    rng = random.Random(0)
    values = []
    for _ in range(resamples):
        values.append(geo([statistics.median(rng.choices(r, k=len(r))) for r in ratio_lists]))
    values.sort()
    lo = values[int(resamples * (1 - confidence) / 2)]
    hi = values[int(resamples * (1 + confidence) / 2) - 1]
    return lo, hi


def verdict(value, interval, bar):
    """'met' when the whole interval is under the bar, 'missed' when it is
    all at or over it, else 'not decided'."""
    if interval[1] < bar:
        return "met"
    if interval[0] >= bar:
        return "missed"
    return "not decided"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=5,
                    help="runs of full tracking and glibc (and their off runs) per workload; valgrind half as many")
    ap.add_argument("--scale", type=float, default=0.2)
    ap.add_argument("--pairs", type=int, default=41, help="off/sampling pairs per workload to start with")
    ap.add_argument("--max-pairs", type=int, default=241, help="at most this many pairs per workload")
    ap.add_argument("--precision", type=float, default=0.005,
                    help="a row gets more pairs while its interval's half-width is above this (0.005: half a point)")
    ap.add_argument("--sample-rate", type=int, default=None,
                    help="STRATA_SAMPLE_RATE of the sampling configuration (default: strata's own, 512 KiB)")
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                    help="what is timed: each run's CPU time (user + system; the default) or wall time")
    args = ap.parse_args()
    workloads = [w for w in args.workloads.split(",") if w]
    for w in workloads:
        if w not in WORKLOADS:
            sys.exit(f"overhead: unknown workload {w!r} (known: {', '.join(WORKLOADS)})")
    if args.write and (args.sample_rate is not None or workloads != WORKLOADS):
        sys.exit("overhead: --write is for the table of record (default --sample-rate and --workloads)")
    if args.pairs < 5 or args.max_pairs < args.pairs:
        sys.exit("overhead: need --pairs >= 5 and --max-pairs >= --pairs")
    binroot = bazel_bin()
    lib = os.path.join(binroot, "alloc/libstrata.so")
    base_env = dict(os.environ)
    for k in list(base_env):
        if k.startswith("STRATA_"):
            del base_env[k]
    sampling_env = dict(base_env, LD_PRELOAD=lib)
    if args.sample_rate is not None:
        sampling_env["STRATA_SAMPLE_RATE"] = str(args.sample_rate)
    configs = {
        "off": dict(base_env, LD_PRELOAD=lib, STRATA_SAMPLE_RATE="0"),
        "sampling": sampling_env,
        "tracking": dict(base_env, LD_PRELOAD=lib, STRATA_LEAKCHECK="1",
                         STRATA_LEAKCHECK_EXITCODE="0"),
        "glibc": base_env,
        "valgrind": base_env,
    }
    load_start = os.getloadavg()[0]

    def command(w):
        return [os.path.join(binroot, "bench/workloads", w), "--threads", "1", "--scale", str(args.scale)]

    # Sampling: adjacent off/sampling pairs, the order alternating, the
    # workloads in turn.
    pairs = {w: [] for w in workloads}

    def add_pair(w):
        cmd = command(w)
        if len(pairs[w]) % 2 == 0:
            off = run(cmd, configs["off"], args.clock)
            on = run(cmd, configs["sampling"], args.clock)
        else:
            on = run(cmd, configs["sampling"], args.clock)
            off = run(cmd, configs["off"], args.clock)
        pairs[w].append((off, on))

    def ratios(w):
        return [on / off for off, on in pairs[w]]

    def wide(w):
        lo, hi = median_interval(ratios(w))
        return (hi - lo) / 2 > args.precision

    for _ in range(args.pairs):
        for w in workloads:
            add_pair(w)
    # Rows still too wide get more pairs, a round of ten at a time (still
    # in turn among themselves).
    while True:
        todo = [w for w in workloads if wide(w) and len(pairs[w]) < args.max_pairs]
        if not todo:
            break
        for _ in range(10):
            for w in todo:
                if len(pairs[w]) < args.max_pairs:
                    add_pair(w)
    for w in workloads:
        lo, hi = median_interval(ratios(w))
        print(f"{w}: sampling {statistics.median(ratios(w)):.4f}x ({lo:.4f}-{hi:.4f}), {len(pairs[w])} pairs",
              file=sys.stderr)

    # Full tracking, glibc and valgrind, with off runs of their own, in an
    # order that rotates each repetition: whatever a run leaves behind
    # (valgrind's caches and page cache, a CPU's frequency) then falls on
    # every configuration alike.
    rest = {}
    names = ["off", "tracking", "glibc", "valgrind"]
    for w in workloads:
        cmd = command(w)
        times = {c: [] for c in names}
        for rep in range(args.reps):
            for c in names[rep % len(names):] + names[:rep % len(names)]:
                if c == "valgrind":
                    if len(times[c]) >= max(1, args.reps // 2):
                        continue
                    full = ["valgrind", "--leak-check=full", "--quiet"] + cmd
                else:
                    full = cmd
                times[c].append(run(full, configs[c], args.clock))
        rest[w] = {c: statistics.median(v) for c, v in times.items()}
        print(f"{w}: " + ", ".join(f"{c} {t:.3f}s" for c, t in rest[w].items()), file=sys.stderr)

    stride = "512 KiB" if args.sample_rate is None else f"{args.sample_rate} B"
    lines = []
    lines.append(f"| workload | off (s) | sampling {stride} (90% interval) | pairs | full tracking | glibc (s) "
                 "| valgrind memcheck | tracking advantage |")
    lines.append("|---|--:|--:|--:|--:|--:|--:|--:|")
    samp, track, vg, adv = [], [], [], []
    rows = []
    for w in workloads:
        r = ratios(w)
        s = statistics.median(r)
        lo, hi = median_interval(r)
        off = statistics.median([p[0] for p in pairs[w]])
        m = rest[w]
        t = m["tracking"] / m["off"]
        v = m["valgrind"] / m["glibc"]
        a = v / t
        samp.append(s)
        track.append(t)
        vg.append(v)
        adv.append(a)
        rows.append((w, s, (lo, hi)))
        lines.append(f"| {w} | {off:.3f} | {s:.3f}x ({lo:.3f}-{hi:.3f}) | {len(r)} | {t:.2f}x | {m['glibc']:.3f} "
                     f"| {v:.1f}x | {a:.1f}x |")
    g = geo(samp)
    glo, ghi = geomean_interval([ratios(w) for w in workloads])
    lines.append(f"| **geomean** | | {g:.3f}x ({glo:.3f}-{ghi:.3f}) | | {geo(track):.2f}x | | {geo(vg):.1f}x "
                 f"| {geo(adv):.1f}x |")
    table = "\n".join(lines)
    worst = max(rows, key=lambda row: row[2][1])
    row_verdicts = [verdict(s, iv, ROW_BAR) for _, s, iv in rows]
    if all(v == "met" for v in row_verdicts):
        rows_verdict = "met"
    elif any(v == "missed" for v in row_verdicts):
        rows_verdict = "missed"
    else:
        rows_verdict = "not decided"
    summary = (f"Sampling: geomean {g:.3f}x (90% interval {glo:.3f}-{ghi:.3f}): under 2% "
               f"**{verdict(g, (glo, ghi), GEOMEAN_BAR)}**; every row under 4% **{rows_verdict}** "
               f"(highest interval: {worst[0]} {worst[1]:.3f}x, {worst[2][0]:.3f}-{worst[2][1]:.3f}). "
               f"Full tracking {geo(adv):.1f}x cheaper than valgrind (geomean), "
               f"{min(adv):.1f}x on the worst row.")
    load_end = os.getloadavg()[0]
    command_line = (f"python3 bench/overhead/overhead.py --reps {args.reps} --scale {args.scale} --pairs {args.pairs}"
                    f" --max-pairs {args.max_pairs} --precision {args.precision}"
                    f"{'' if args.clock == 'cpu' else ' --clock wall'} --write")
    section = f"""## Observability overhead

Written by `bench/overhead/overhead.py` (command below; its docstring says
how it measures). Slowdowns are of {"CPU time (user + system, from each run's rusage)" if args.clock == "cpu" else "wall time"},
1 thread, relative to strata with sampling off (`STRATA_SAMPLE_RATE=0`);
the stats counters are always on, so "sampling" is the cost of the
default profiler on top of them. Sampling: the median ratio of adjacent
off/sampling pairs (order alternating, workloads in turn; more pairs for
a row until its 90% interval is within +-{args.precision * 100:g} point, at most
{args.max_pairs}), with its 90% confidence interval; the geomean's interval is a
bootstrap. Full tracking: medians of {args.reps} runs against {args.reps} off runs of its
own, in rotated order with glibc and valgrind memcheck (`--leak-check=full`,
{max(1, args.reps // 2)} runs), which is relative to glibc; "tracking advantage" is
valgrind's slowdown divided by strata's full-tracking slowdown (the leak
checker's goal: at least 10x).

- Command: `{command_line}`
- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} CPUs; load average {load_start:.2f} at the start, {load_end:.2f} at the end

{table}

{summary}

"""
    print(section)
    if args.write:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "RESULTS.md")
        text = open(path).read()
        start = text.find("## Observability overhead")
        if start >= 0:
            end = text.find("\n## ", start + 1)
            text = text[:start] + section + (text[end + 1:] if end >= 0 else "")
        else:
            text = text.rstrip() + "\n\n" + section
        open(path, "w").write(text)


if __name__ == "__main__":
    main()
