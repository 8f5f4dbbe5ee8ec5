#!/usr/bin/env python3
"""Cost of strata's observability, measured on the benchmark workloads.

For each workload (1 thread) it times, interleaved and repeated (median):
  strata, sampling off      STRATA_SAMPLE_RATE=0 (the baseline)
  strata, default sampling  STRATA_SAMPLE_RATE unset (512 KiB stride); the
                            stats counters are always on in both
  strata, full tracking     STRATA_LEAKCHECK=1 (every allocation recorded
                            with its stack, leak check at exit)
  glibc                     no preload
  valgrind memcheck         glibc under valgrind --leak-check=full
and prints the slowdowns (of CPU time by default: user + system of each
run, which other processes on a shared machine disturb much less than wall
time; --clock wall for wall time): sampling vs off (goal under 2%), full tracking
vs strata, valgrind vs glibc, and how many times less strata's leak
checking slows a program down than valgrind's (goal at least 10x).

Usage (from the repository root, after
`bazel build -c opt //alloc:libstrata.so //bench/workloads/...`):
  python3 bench/overhead/overhead.py [--reps 5] [--scale 0.2] [--clock cpu|wall] [--write]
--write replaces the "## Observability overhead" section of bench/RESULTS.md.
"""
import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

WORKLOADS = ["larson", "xmalloc", "mstress", "churn", "pmr_containers"]


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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--scale", type=float, default=0.2)
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                    help="what is timed: each run's CPU time (user + system; the default) or wall time")
    args = ap.parse_args()
    binroot = bazel_bin()
    lib = os.path.join(binroot, "alloc/libstrata.so")
    base_env = dict(os.environ)
    for k in list(base_env):
        if k.startswith("STRATA_"):
            del base_env[k]
    configs = {
        "off": dict(base_env, LD_PRELOAD=lib, STRATA_SAMPLE_RATE="0"),
        "sampling": dict(base_env, LD_PRELOAD=lib),
        "tracking": dict(base_env, LD_PRELOAD=lib, STRATA_LEAKCHECK="1",
                         STRATA_LEAKCHECK_EXITCODE="0"),
        "glibc": base_env,
        "valgrind": base_env,
    }
    rows = []
    for w in WORKLOADS:
        exe = os.path.join(binroot, "bench/workloads", w)
        cmd = [exe, "--threads", "1", "--scale", str(args.scale)]
        times = {c: [] for c in configs}
        names = list(configs)
        for rep in range(args.reps):
            # The order rotates from one repetition to the next: whatever a
            # run leaves behind (valgrind's caches and page cache, a CPU's
            # frequency) then falls on every configuration alike, not always
            # on the one that follows it (a fixed order made sampling look
            # 4-5% faster than no sampling on larson).
            for c in names[rep % len(names):] + names[:rep % len(names)]:
                env = configs[c]
                if c == "valgrind":
                    if len(times[c]) >= max(1, args.reps // 2):
                        continue
                    full = ["valgrind", "--leak-check=full", "--quiet"] + cmd
                else:
                    full = cmd
                times[c].append(run(full, env, args.clock))
        med = {c: statistics.median(v) for c, v in times.items()}
        rows.append((w, med))
        print(f"{w}: " + ", ".join(f"{c} {t:.3f}s" for c, t in med.items()), file=sys.stderr)

    def geo(xs):
        p = 1.0
        for x in xs:
            p *= x
        return p ** (1.0 / len(xs))

    lines = []
    lines.append("| workload | off (s) | sampling 512 KiB | full tracking | glibc (s) | valgrind memcheck | tracking advantage |")
    lines.append("|---|--:|--:|--:|--:|--:|--:|")
    samp, track, vg, adv = [], [], [], []
    for w, m in rows:
        s = m["sampling"] / m["off"]
        t = m["tracking"] / m["off"]
        v = m["valgrind"] / m["glibc"]
        a = v / t
        samp.append(s)
        track.append(t)
        vg.append(v)
        adv.append(a)
        lines.append(f"| {w} | {m['off']:.3f} | {s:.3f}x | {t:.2f}x | {m['glibc']:.3f} | {v:.1f}x | {a:.1f}x |")
    lines.append(f"| **geomean** | | {geo(samp):.3f}x | {geo(track):.2f}x | | {geo(vg):.1f}x | {geo(adv):.1f}x |")
    table = "\n".join(lines)
    load = os.getloadavg()[0]
    section = f"""## Observability overhead

Written by `bench/overhead/overhead.py` (command below). Slowdowns are
median {"CPU times (user + system, from each run's rusage)" if args.clock == "cpu" else "wall times"}
of interleaved runs (1 thread; the order rotates each repetition)
relative to strata with sampling off (`STRATA_SAMPLE_RATE=0`); the stats
counters are always on, so "sampling" is the cost of the default profiler
on top of them. Valgrind memcheck
(`--leak-check=full`) is relative to glibc, and "tracking advantage" is
valgrind's slowdown divided by strata's full-tracking slowdown (the
leak checker's goal: at least 10x).

- Command: `python3 bench/overhead/overhead.py --reps {args.reps} --scale {args.scale}{"" if args.clock == "cpu" else " --clock wall"} --write`
- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} CPUs; load average {load:.2f} at the end

{table}
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
