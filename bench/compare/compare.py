#!/usr/bin/env python3
"""Side-by-side benchmark of strata against the peer allocators.

    bazel run -c opt //bench:compare                      # full suite
    bazel run -c opt //bench:compare -- --quick           # smoke-sized
    bazel run -c opt //bench:compare -- --only larson,xmalloc --reps 9
    bazel run -c opt //bench:compare -- --peers glibc,mimalloc,jemalloc
    bazel run -c opt //bench:compare -- --instructions    # Ir per malloc/free
    bazel run -c opt //bench:compare -- --only mstress --threads 1 \
        --peers strata,tcmalloc --variant off=strata,STRATA_SAMPLE_RATE=0 \
        --variant before=/tmp/old/libstrata.so            # A/B of builds
    bazel run -c opt //bench:compare -- \
        --peer mimalloc-3.4.3=/path/to/libmimalloc.so \
        --peer-desc mimalloc-3.4.3="tag v3.4.3, CMake Release"  # + upstream

Every workload in bench/workloads/ is run at each of its thread counts
(its own defaults, see --list, or --threads) under every allocator, each time the same binary with LD_PRELOAD set to the allocator's
shared object (glibc: nothing preloaded). Runs are interleaved (A B C A B C
...) so that drifting machine load hits all allocators alike; the table shows
the median wall time and the median peak RSS of --reps runs (plus
--extra-reps for every allocator of a row where some cell's runs spread by
more than --noisy-spread: a slow phase of a shared machine, seconds long, can
otherwise decide one cell's median), ratios to strata
(allocator / strata: above 1.00x means strata is faster or smaller), and the
geometric means over all workloads, then checks the bar set for strata
(issue 18's "done when"):

  1. geomean time <= 0.90x the best upstream peer's (--peer; n/a without);
  2. geomean time below every Debian peer's;
  3. no workload slower than 1.25x the best peer on it;
  4. the producer/consumer rows (threads >= 2) at or below the best peer;
  5. geomean peak RSS <= mimalloc 2.4.1's (the --peer named mimalloc-2.4.1;
     else Debian's mimalloc; --rss-reference picks another);
  and with --instructions: strata's pair <= 50 instructions, loop included,
  at 16 B..1 KiB.
Each criterion is PASS, FAIL, or n/a when the run cannot tell.

Fixed-duration throughput workloads (Workload.per_ops) report the operations
they did and the seconds they took; their rows show seconds per a fixed
operation count (inverted throughput), so they compose with the time ratios.

The Debian peers (PEERS) are the default set. --peer NAME=PATH.so (repeatable)
adds any preloadable allocator, e.g. an upstream release built on this
machine; --peer-desc NAME=TEXT says what it is (tag and build type) for
RESULTS.md, else the CMake build type is read from a CMakeCache.txt beside
the object. Before any timing, each --peer must interpose malloc and free in
a short run, or the run stops with the reason (exit 2): a peer is never
silently measured as glibc. Report text elides directories (no machine paths
go into RESULTS.md): a peer shows as NAME=.../libfoo.so.

Each run is checked: it must exit 0, print the same checksum as the other
allocators (the workloads' checksums do not depend on the allocator or on
scheduling), and prove that the allocator was interposed: with
BENCH_CHECK_PRELOAD set, the workload names the objects `malloc` and `free`
resolve to (dlsym(RTLD_DEFAULT) + dladdr), which must be the preloaded
object (libc for glibc). A failed run is reported in the table and makes the
exit status 1.

Wall time and peak RSS come from bench/compare/launch.cc (wait4 rusage of
the forked child): see there why Python's own wait4 would overstate RSS.

--variant NAME=SO[,VAR=VALUE...] adds a column for another strata build (SO
a libstrata.so path, or `strata` for the build under test) and/or
environment settings, interleaved with the rest: the way to measure a
change to strata before and after, with the command that reproduces it.
Variants are not peers (the bar ignores them) and a run with variants never
writes RESULTS.md.

A full run writes the "## Peers" section of bench/RESULTS.md in the source
tree (found through BUILD_WORKSPACE_DIRECTORY, which `bazel run` sets); only
that section is replaced, and within it only the block of the mode that ran
(timing or instructions; --label TEXT titles the run and writes it to a
block of its own, kept beside the unlabelled one). --quick and --only
(--workloads) runs do not write unless --write-results is given.

--instructions runs bench/workloads/malloc_free_pair under
`valgrind --tool=callgrind --callgrind-out-file=/dev/null` at two iteration
counts per allocator and size and reports (difference in Ir) / (difference
in iterations): the instructions of one malloc/free pair (plus the loop's own
few, measured separately with --empty and shown). An allocator valgrind
refuses is reported as n/a with the reason.

Outside Bazel (e.g. while //alloc:libstrata.so does not build yet), run the
script directly after building its inputs:
    bazel build -c opt //bench/workloads //bench/compare:launch
    python3 bench/compare/compare.py --peers glibc,jemalloc,tcmalloc,mimalloc,tbbmalloc
It then takes the binaries from bazel-bin/ (or --bin-dir).

CI runs //bench/compare:compare_smoke_test (--quick, one rep, two workloads,
glibc and strata, plus Debian's tcmalloc as a --peer under another name).
"""

import argparse
import collections
import concurrent.futures
import datetime
import json
import math
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile

WORKSPACE = "strata"
LIBDIR = "/usr/lib/x86_64-linux-gnu"

# name -> (shared object to preload or None, Debian package, description).
# strata's object comes from the runfiles (//alloc:libstrata.so).
PEERS = collections.OrderedDict([
    ("strata", (None, None, "//alloc:libstrata.so")),
    ("glibc", (None, "libc6", "glibc ptmalloc (nothing preloaded)")),
    ("jemalloc", (LIBDIR + "/libjemalloc.so.2", "libjemalloc2", "jemalloc")),
    ("tcmalloc", (LIBDIR + "/libtcmalloc_minimal.so.4",
                  "libtcmalloc-minimal4", "gperftools tcmalloc (minimal)")),
    ("mimalloc", (LIBDIR + "/libmimalloc.so.2", "libmimalloc2.0", "mimalloc")),
    ("tbbmalloc", (LIBDIR + "/libtbbmalloc_proxy.so.2", "libtbbmalloc2",
                   "oneTBB scalable allocator (malloc proxy)")),
])

class Workload:
    """How the runner treats one program of bench/workloads/."""

    def __init__(self, description, threads=(1, 4), min_threads=1,
                 per_ops=None, producer_consumer=False):
        self.description = description
        self.threads = list(threads)  # default thread counts
        self.min_threads = min_threads  # lower --threads are skipped
        # Fixed-duration throughput workload: it reports
        # `bench-throughput: ops=N seconds=S` on stderr, and its "time" is
        # S / N * per_ops (seconds per per_ops operations, i.e. inverted
        # throughput), so it composes with the other rows' time ratios.
        self.per_ops = per_ops
        # Objects allocated by some threads and freed by others (the
        # producer/consumer criterion of the bar, at threads >= 2).
        self.producer_consumer = producer_consumer


# Timed workloads, in report order (targets in bench/workloads/BUILD.bazel).
WORKLOADS = collections.OrderedDict([
    ("larson", Workload(
        "server simulation: rolling windows, thread churn, remote frees")),
    ("xmalloc", Workload("producer/consumer ring, every free remote",
                         producer_consumer=True)),
    ("xmalloc_test", Workload(
        "xmalloc-test: producers -> consumers through one lock-free queue, "
        "64 B, fixed time", threads=(2, 4, 8), min_threads=2,
        per_ops=10**7, producer_consumer=True)),
    ("xmalloc_pairs", Workload(
        "producer -> consumer pairs, a queue each, 8 B-2 KiB, fixed time",
        threads=(2, 4, 8), min_threads=2, per_ops=10**7,
        producer_consumer=True)),
    ("cache_thrash", Workload("active false sharing of small objects")),
    ("cache_thrash_single", Workload(
        "Hoard's cache-thrash: one 1-byte object per thread at a time",
        threads=(2, 4, 8))),
    ("cache_scratch", Workload(
        "passive false sharing after freeing foreign objects")),
    ("cache_scratch_single", Workload(
        "Hoard's cache-scratch: free a neighbour's object, then as "
        "cache-thrash", threads=(2, 4, 8))),
    ("mstress", Workload("mixed lifetimes, global hand-off, thread churn")),
    ("churn", Workload("build/tear down trees, lists, maps of small nodes")),
    ("realloc_growth", Workload(
        "string builders and vectors growing by realloc")),
    ("aligned", Workload(
        "posix_memalign/aligned_alloc/aligned new, 16 B-64 KiB")),
    ("large_blocks", Workload("256 KiB-32 MiB blocks, every page touched")),
    ("pmr_containers", Workload(
        "std::pmr containers on new_delete_resource")),
])

INSTRUCTION_SIZES = [16, 64, 256, 1024]

# The bar of issue 18 ("done when").
BAR_TIME_VS_BEST_UPSTREAM = 0.90
BAR_WORST_WORKLOAD = 1.25
BAR_INSTRUCTIONS_PER_PAIR = 50.0  # loop included, 16 B..1 KiB
# The RSS bar's reference: this --peer when given, else Debian's mimalloc.
DEFAULT_RSS_REFERENCE = "mimalloc-2.4.1"

PEERS_HEADING = "## Peers"
BLOCK_MARKERS = {
    "timing": ("<!-- peers:timing:begin -->", "<!-- peers:timing:end -->"),
    "instructions": ("<!-- peers:instructions:begin -->",
                     "<!-- peers:instructions:end -->"),
}

PRELOAD_RE = re.compile(r"^bench-preload: malloc=(\S+) free=(\S+)\s*$", re.M)
CHECKSUM_RE = re.compile(r"^[0-9a-f]{16}$")
COLLECTED_RE = re.compile(r"==\d+== Collected : (\d+)")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class UsageError(Exception):
    pass


# --------------------------------------------------------------------------
# Locating the binaries.

def runfiles_roots():
    """Directories that may hold the workspace's files (runfiles first)."""
    roots = []
    if os.environ.get("RUNFILES_DIR"):
        roots.append(os.path.join(os.environ["RUNFILES_DIR"], WORKSPACE))
    # Not realpath: in a runfiles tree this script is a symlink into the
    # source tree, and the runfiles are next to the link, not the target.
    here = os.path.abspath(__file__)
    roots.append(os.path.dirname(os.path.dirname(os.path.dirname(here))))
    return roots


def source_root():
    """The source tree: where `bazel run` was started, or this script's tree
    when run directly. None when it cannot be told (e.g. under bazel test)."""
    ws = os.environ.get("BUILD_WORKSPACE_DIRECTORY")
    if ws:
        return ws
    here = os.path.abspath(__file__)
    if ".runfiles" + os.sep in here:
        return None
    return os.path.dirname(os.path.dirname(os.path.dirname(here)))


class Locator:
    def __init__(self, bin_dir=None):
        self.bases = []
        if bin_dir:
            self.bases.append(os.path.abspath(bin_dir))
        for root in runfiles_roots():
            self.bases.append(root)
            self.bases.append(os.path.join(root, "bazel-bin"))

    def find(self, relpath):
        for base in self.bases:
            path = os.path.join(base, relpath)
            if os.path.isfile(path):
                return path
        return None

    def need(self, relpath, what):
        path = self.find(relpath)
        if path is None:
            raise UsageError(
                "%s not found (looked for %s under %s); run through "
                "`bazel run -c opt //bench:compare`, or build it and pass "
                "--bin-dir" % (what, relpath, ", ".join(self.bases)))
        return path


class Allocator:
    def __init__(self, name, path, package, description, env=None,
                 variant=False, upstream=False):
        self.name = name
        self.path = path  # None: glibc, nothing preloaded
        self.package = package
        self.description = description
        self.env = env or {}  # set in the workload's environment
        self.variant = variant  # a --variant of strata, not a peer
        self.upstream = upstream  # a --peer NAME=SO, not a Debian package

    def interposed(self, malloc_obj, free_obj):
        """True when both symbols come from the object this allocator is."""
        for obj in (malloc_obj, free_obj):
            real = os.path.realpath(obj) if obj != "?" else obj
            if self.path is None:
                if not re.match(r"libc(\.so|-)", os.path.basename(real)):
                    return False
            elif real != os.path.realpath(self.path):
                return False
        return True


def strata_library(locator, strata_so):
    """The libstrata.so under test: --strata-so, else the runfiles' or
    bazel-bin's (None when there is none)."""
    return strata_so or locator.find("alloc/libstrata.so")


def make_allocators(names, locator, strata_so):
    allocs = []
    for name in names:
        path, package, description = PEERS[name]
        if name == "strata":
            path = strata_library(locator, strata_so)
            if path is None or not os.path.isfile(path):
                raise UsageError(
                    "strata: libstrata.so not found (%s). It comes from "
                    "//alloc:libstrata.so, a data dependency of "
                    "//bench:compare: run `bazel run -c opt //bench:compare`, "
                    "pass --strata-so PATH, or leave strata out with e.g. "
                    "--peers glibc,jemalloc,tcmalloc,mimalloc,tbbmalloc"
                    % (strata_so or "not in the runfiles or bazel-bin"))
            path = os.path.abspath(path)
        elif path is not None and not os.path.isfile(path):
            raise UsageError(
                "%s: %s not found: install Debian package %s "
                "(tools/setup.sh does) or leave it out with --peers"
                % (name, path, package))
        allocs.append(Allocator(name, path, package, description))
    return allocs


def make_variants(specs, locator, strata_so, taken):
    """Allocators for --variant NAME=SO[,VAR=VALUE...] (SO: a libstrata.so
    path, or `strata` for the build under test)."""
    variants = []
    for spec in specs or []:
        name, sep, rest = spec.partition("=")
        parts = rest.split(",") if sep else []
        if not re.match(r"^[A-Za-z0-9_.+-]+$", name) or not parts or \
                not parts[0]:
            raise UsageError("--variant %r: expected NAME=SO[,VAR=VALUE...]"
                             % spec)
        if name in taken or name in PEERS:
            raise UsageError("--variant %s: the name is taken" % name)
        taken.add(name)
        so = parts[0]
        if so == "strata":
            so = strata_library(locator, strata_so)
        if so is None or not os.path.isfile(so):
            raise UsageError("--variant %s: %s is not a file" % (name, so))
        env = {}
        for kv in parts[1:]:
            var, eq, value = kv.partition("=")
            if not eq or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", var):
                raise UsageError("--variant %s: %r is not VAR=VALUE"
                                 % (name, kv))
            env[var] = value
        so = os.path.abspath(so)
        desc = "strata variant: %s%s" % (so, "".join(
            " %s=%s" % kv for kv in sorted(env.items())))
        variants.append(Allocator(name, so, None, desc, env, variant=True))
    return variants


NAME_RE = re.compile(r"^[A-Za-z0-9_.+-]+$")


def cmake_build_type(so):
    """CMAKE_BUILD_TYPE from a CMakeCache.txt beside the shared object (or
    beside the file a symlink chain ends at), or None."""
    for d in dict.fromkeys([os.path.dirname(os.path.abspath(so)),
                            os.path.dirname(os.path.realpath(so))]):
        try:
            with open(os.path.join(d, "CMakeCache.txt")) as f:
                for line in f:
                    m = re.match(r"^CMAKE_BUILD_TYPE:\w+=(.*)$", line.strip())
                    if m:
                        return m.group(1) or "(empty: no optimisation flags)"
        except OSError:
            continue
    return None


def make_peers(specs, desc_specs, taken):
    """Allocators for --peer NAME=SO (any preloadable allocator built
    elsewhere: e.g. an upstream release), described by --peer-desc
    NAME=TEXT (its tag and build type) or, failing that, by the
    CMakeCache.txt found beside SO."""
    descs = {}
    for spec in desc_specs or []:
        name, sep, text = spec.partition("=")
        if not sep or not NAME_RE.match(name) or not text.strip():
            raise UsageError("--peer-desc %r: expected NAME=TEXT, e.g. "
                             "mimalloc-3.4.3=\"tag v3.4.3, CMake Release\""
                             % spec)
        if name in descs:
            raise UsageError("--peer-desc %s given twice" % name)
        descs[name] = text.strip()
    peers = []
    for spec in specs or []:
        name, sep, so = spec.partition("=")
        if not sep or not NAME_RE.match(name) or not so:
            raise UsageError("--peer %r: expected NAME=PATH.so (NAME of "
                             "letters, digits and _.+-)" % spec)
        if name in taken or name in PEERS:
            raise UsageError("--peer %s: the name is taken (the Debian "
                             "peers' names, strata's, and every other "
                             "--peer/--variant name are)" % name)
        if not os.path.isfile(so):
            raise UsageError("--peer %s: %s is not a file" % (name, so))
        taken.add(name)
        so = os.path.abspath(so)
        desc = descs.pop(name, None)
        if desc is None:
            build = cmake_build_type(so)
            desc = ("CMake build type %s, from the CMakeCache.txt beside "
                    "it; version not given (--peer-desc %s=...)" % (build,
                                                                   name)
                    if build else "version and build type not given "
                    "(--peer-desc %s=...)" % name)
            log("compare: --peer %s: %s" % (name, desc))
        desc += "; %s" % os.path.basename(so)
        peers.append(Allocator(name, so, None, desc, upstream=True))
    if descs:
        raise UsageError("--peer-desc for %s, which no --peer names"
                         % ", ".join(sorted(descs)))
    return peers


def check_interposes(launcher, probe, alloc, timeout):
    """Raises UsageError unless a short run of `probe` under LD_PRELOAD of
    alloc's object binds malloc and free to that object: a --peer that does
    not interpose (not a malloc replacement, built without its override, or
    refused by ld.so) is stopped here with the reason, before any timing,
    and never measured as glibc."""
    s = run_once(launcher, probe, ["--size", "16", "--iters", "1000"], alloc,
                 min(timeout, 60))
    if s.ok:
        return
    if s.preload is not None and not alloc.interposed(*s.preload):
        why = ("malloc resolves to %s and free to %s, not to %s: it does not "
               "replace malloc (no exported malloc/free, or built without "
               "its override)" % (s.preload[0], s.preload[1], alloc.path))
    else:
        why = s.error
    raise UsageError("--peer %s does not interpose: %s" % (alloc.name, why))


# --------------------------------------------------------------------------
# Running one workload.

class Sample:
    def __init__(self):
        self.ok = False
        self.error = None
        self.wall = None  # seconds
        self.maxrss_kib = None
        self.utime = None
        self.stime = None
        self.minflt = None
        self.other_cpus = None
        self.checksum = None
        self.preload = None  # (malloc object, free object)
        self.run_wall = None  # throughput workloads: the run's wall time
        self.ops = None  # throughput workloads: operations done

    def to_json(self):
        return dict(self.__dict__)


def cpu_busy_seconds():
    """CPU time all processes of the machine have used so far (/proc/stat,
    all CPUs together), or None where that cannot be read."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    v = [int(x) for x in fields[1:]]
    busy = v[0] + v[1] + v[2] + sum(v[5:8])  # user nice system irq softirq steal
    return busy / float(os.sysconf("SC_CLK_TCK"))


def child_env():
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env["BENCH_CHECK_PRELOAD"] = "1"
    return env


def first_error_line(text):
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("bench-preload:"):
            return line[:160]
    return ""


THROUGHPUT_RE = re.compile(
    r"^bench-throughput: ops=(\d+) seconds=([0-9.eE+-]+)\s*$", re.M)


def run_once(launcher, binary, args, alloc, timeout, per_ops=None):
    """One run. s.wall is the run's wall time, or for a throughput workload
    (per_ops set) its reported seconds per per_ops operations."""
    cmd = [launcher, "--timeout", str(int(timeout))]
    if alloc.path:
        cmd += ["--preload", alloc.path]
    cmd += ["--", binary] + args
    s = Sample()
    env = child_env()
    env.update(alloc.env)
    busy0 = cpu_busy_seconds()
    try:
        p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True,
                           errors="replace", timeout=timeout + 60)
    except subprocess.TimeoutExpired:
        s.error = "launcher hung"
        return s
    report = None
    out_lines = []
    for line in p.stdout.splitlines():
        if line.startswith("compare_launch: "):
            report = dict(kv.split("=", 1) for kv in line.split()[1:])
        elif line.strip():
            out_lines.append(line.strip())
    busy1 = cpu_busy_seconds()
    if report is None:
        s.error = "launcher failed: " + first_error_line(p.stderr)
        return s
    s.wall = int(report["wall_ns"]) / 1e9
    s.maxrss_kib = int(report["maxrss_kib"])
    s.utime = int(report["utime_us"]) / 1e6
    s.stime = int(report["stime_us"]) / 1e6
    s.minflt = int(report["minflt"])
    if busy0 is not None and busy1 is not None and s.wall > 0:
        # CPUs the rest of the machine kept busy meanwhile (this runner's
        # own few milliseconds included): interference with the timing.
        s.other_cpus = max(0.0, (busy1 - busy0) - s.utime - s.stime) / s.wall
    m = PRELOAD_RE.search(p.stderr)
    if m:
        s.preload = (m.group(1), m.group(2))
    if report["timeout"] == "1":
        s.error = "timeout (%ds)" % timeout
    elif report["signal"] != "0":
        s.error = "killed by signal %s" % report["signal"]
    elif report["exit"] != "0":
        s.error = "exit %s: %s" % (report["exit"], first_error_line(p.stderr))
    elif s.preload is None:
        s.error = "no bench-preload line (interposition not verified)"
    elif not alloc.interposed(*s.preload):
        s.error = "not interposed: malloc from %s, free from %s" % s.preload
    elif len(out_lines) != 1 or not CHECKSUM_RE.match(out_lines[0]):
        s.error = "unexpected stdout: %r" % (out_lines[:3],)
    elif per_ops and not tput_ok(s, p.stderr, per_ops):
        pass  # tput_ok set s.error
    else:
        s.checksum = out_lines[0]
        s.ok = True
    return s


def tput_ok(s, stderr, per_ops):
    """Turns a throughput workload's report into s.wall (seconds per per_ops
    operations); False with s.error set when the report is missing."""
    m = THROUGHPUT_RE.search(stderr)
    if m is None:
        s.error = "no bench-throughput line on stderr"
        return False
    ops, seconds = int(m.group(1)), float(m.group(2))
    if ops <= 0 or not seconds > 0:
        s.error = "bench-throughput: ops=%d seconds=%g" % (ops, seconds)
        return False
    s.run_wall = s.wall
    s.ops = ops
    s.wall = seconds / ops * per_ops
    return True


def count_text(n):
    """10000000 -> "10M"."""
    for div, suffix in ((10**9, "G"), (10**6, "M"), (10**3, "k")):
        if n >= div and n % div == 0:
            return "%d%s" % (n // div, suffix)
    return str(n)


def threads_setting(args, plan):
    """The thread counts of the run, as the Settings line states them."""
    if args.threads:
        return ",".join(str(t) for t in sorted(set(t for _, t in plan)))
    groups = collections.OrderedDict()
    for w, t in plan:
        groups.setdefault(w, []).append(t)
    by_counts = collections.OrderedDict()
    for w, ts in groups.items():
        by_counts.setdefault(",".join(map(str, ts)), []).append(w)
    if len(by_counts) == 1:
        return next(iter(by_counts))
    return "; ".join("%s for %s" % (ts, ", ".join(ws))
                     for ts, ws in by_counts.items())


def preflight(args, locator, launcher, allocs):
    """Every --peer must interpose before anything is timed."""
    peers = [a for a in allocs if a.upstream]
    if not peers:
        return
    probe = locator.need("bench/workloads/malloc_free_pair",
                         "//bench/workloads:malloc_free_pair")
    for a in peers:
        check_interposes(launcher, probe, a, args.timeout)
        log("compare: --peer %s interposes malloc and free" % a.name)


# --------------------------------------------------------------------------
# Statistics and tables.

def geomean(xs):
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def fmt_ratio(r):
    return "%.2fx" % r


def md_table(header, rows, left=2):
    """A Markdown table, padded to line up in a terminal too; the first
    `left` columns are left-aligned, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [header] + rows)
              for i in range(len(header))]

    def line(cells):
        return "| " + " | ".join(
            str(c).ljust(w) if i < left else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    rule = "|" + "|".join("-" * (w + 1) + ":" if i >= left else "-" * (w + 2)
                          for i, w in enumerate(widths)) + "|"
    return "\n".join([line(header), rule] + [line(r) for r in rows])


class Cell:
    """The runs of one workload x threads x allocator."""

    def __init__(self):
        self.samples = []
        self.error = None

    @property
    def ok(self):
        return self.error is None and self.samples and all(
            s.ok for s in self.samples)

    def median_time(self):
        return statistics.median(s.wall for s in self.samples)

    def median_rss_mib(self):
        return statistics.median(s.maxrss_kib for s in self.samples) / 1024.0

    def spread(self):
        walls = [s.wall for s in self.samples]
        med = statistics.median(walls)
        return (max(walls) - min(walls)) / med if med > 0 else 0.0


def check_checksums(cells, allocs):
    """Marks cells whose checksum differs from the reference (glibc's when it
    ran cleanly, else the most common one)."""
    ref = None
    if "glibc" in cells and cells["glibc"].ok:
        ref = collections.Counter(
            s.checksum for s in cells["glibc"].samples).most_common(1)[0][0]
    else:
        sums = collections.Counter(s.checksum for a in allocs
                                   for s in cells[a.name].samples if s.ok)
        if sums:
            ref = sums.most_common(1)[0][0]
    for a in allocs:
        cell = cells[a.name]
        for s in cell.samples:
            if s.ok and s.checksum != ref:
                s.ok = False
                s.error = "wrong checksum %s (expected %s)" % (s.checksum, ref)
        bad = [s for s in cell.samples if not s.ok]
        if bad and cell.error is None:
            cell.error = bad[0].error


def pair_ratio(rows, a, b, metric):
    """Geomean of metric(a) / metric(b) over the rows both completed, and
    how many rows that is (ratio None when none)."""
    ratios = [metric(r["cells"][a]) / metric(r["cells"][b]) for r in rows
              if r["cells"][a].ok and r["cells"][b].ok]
    return (geomean(ratios) if ratios else None), len(ratios)


def time_of(cell):
    return cell.median_time()


def rss_of(cell):
    return cell.median_rss_mib()


def rss_reference_of(allocs, requested=None):
    """The peer the RSS bar compares with: --rss-reference, else the --peer
    named mimalloc-2.4.1, else Debian's mimalloc; None when none ran."""
    names = [a.name for a in allocs if not a.variant and a.name != "strata"]
    if requested:
        if requested not in names:
            raise UsageError("--rss-reference %s is not a peer of this run"
                             % requested)
        return requested
    for n in (DEFAULT_RSS_REFERENCE, "mimalloc"):
        if n in names:
            return n
    return None


def evaluate(rows, allocs, base_name, rss_reference=None):
    """Geomeans and the bar.

    Absolute geomeans are over the rows every allocator completed (the same
    set for all, so they compare). Ratios are pairwise: the geomean of the
    per-row ratios over the rows both allocators completed, so one peer's
    failure on a workload does not drop that workload from every other
    comparison."""
    names = [a.name for a in allocs]
    complete = [r for r in rows if all(r["cells"][n].ok for n in names)]
    summary = {"complete_rows": len(complete), "rows": len(rows),
               "time": {}, "rss": {}, "time_ratio": {}, "rss_ratio": {},
               "criteria": []}
    for n in names:
        if complete:
            summary["time"][n] = geomean([time_of(r["cells"][n])
                                          for r in complete])
            summary["rss"][n] = geomean([rss_of(r["cells"][n])
                                         for r in complete])
        summary["time_ratio"][n] = pair_ratio(rows, n, base_name, time_of)
        summary["rss_ratio"][n] = pair_ratio(rows, n, base_name, rss_of)
    if "strata" not in names:
        summary["criteria"].append(("all", "strata not in this run", "n/a"))
        return summary
    peers = [a for a in allocs if a.name != "strata" and not a.variant]
    upstream = [a.name for a in peers if a.upstream]
    debian = [a.name for a in peers if not a.upstream]
    summary["criteria"] = bar_criteria(rows, [a.name for a in peers],
                                       upstream, debian, rss_reference)
    return summary


def bar_criteria(rows, peers, upstream, debian, rss_reference):
    """The bar of issue 18's "done when", as (criterion, measured, result)
    rows; result is PASS, FAIL, or n/a when this run cannot tell."""
    out = []

    def vs(peer, metric):
        ratio, count = pair_ratio(rows, "strata", peer, metric)
        note = "" if count == len(rows) else " (over the %d of %d rows both " \
            "completed)" % (count, len(rows))
        return ratio, note

    # 1. Geomean time against the best upstream peer.
    name = ("geomean time <= %.2fx the best upstream peer (--peer)"
            % BAR_TIME_VS_BEST_UPSTREAM)
    if not upstream:
        out.append((name, "no upstream peer in this run (pass --peer "
                    "NAME=PATH.so)", "n/a"))
    else:
        got = [(vs(n, time_of), n) for n in upstream]
        missing = [n for (r, _), n in got if r is None]
        if missing:
            out.append((name, "no row completed by both strata and %s"
                        % ", ".join(missing), "FAIL"))
        else:
            # The best peer is the one strata is slowest against.
            (ratio, note), best = max(got)
            out.append((name, "best: %s; strata/%s = %.3f%s" % (
                best, best, ratio, note),
                "PASS" if ratio <= BAR_TIME_VS_BEST_UPSTREAM else "FAIL"))
    # 2. Geomean time below every Debian peer.
    name = "geomean time below every Debian peer"
    if not debian:
        out.append((name, "no Debian peer in this run", "n/a"))
    else:
        got = [(vs(n, time_of), n) for n in debian]
        missing = [n for (r, _), n in got if r is None]
        if missing:
            out.append((name, "no row completed by both strata and %s"
                        % ", ".join(missing), "FAIL"))
        else:
            (ratio, note), closest = max(got)
            out.append((name, "closest: strata/%s = %.3f%s" % (
                closest, ratio, note), "PASS" if ratio < 1.0 else "FAIL"))

    # 3 and 4: per row, against the best peer on that row.
    def per_row(selected, limit, what):
        worst = None
        offenders = []
        considered = 0
        for r in rows:
            if not selected(r):
                continue
            c = r["cells"]
            ok_peers = [n for n in peers if c[n].ok]
            if not ok_peers:
                continue
            considered += 1
            best = min(ok_peers, key=lambda n: c[n].median_time())
            if not c["strata"].ok:
                offenders.append("%s t=%d (strata failed)" % (r["workload"],
                                                               r["threads"]))
                continue
            ratio = c["strata"].median_time() / c[best].median_time()
            if worst is None or ratio > worst[0]:
                worst = (ratio, r["workload"], r["threads"], best)
            if ratio > limit:
                offenders.append("%s t=%d %.2fx %s" % (
                    r["workload"], r["threads"], ratio, best))
        if not peers:
            return (what, "no peer in this run", "n/a")
        if not considered:
            return (what, "no such row in this run", "n/a")
        detail = ("worst: %s t=%d at %.2fx the best peer (%s)" % (
            worst[1], worst[2], worst[0], worst[3]) if worst else "no rows")
        if offenders:
            detail += "; over the bar: " + ", ".join(offenders)
        return (what, detail, "FAIL" if offenders else "PASS")

    out.append(per_row(lambda r: True, BAR_WORST_WORKLOAD,
                       "no workload slower than %.2fx the best peer"
                       % BAR_WORST_WORKLOAD))
    pc_names = ", ".join(w for w, d in WORKLOADS.items()
                         if d.producer_consumer)
    out.append(per_row(lambda r: WORKLOADS[r["workload"]].producer_consumer
                       and r["threads"] >= 2, 1.0,
                       "producer/consumer rows (%s; threads >= 2) at or "
                       "below the best peer" % pc_names))
    # 5. Peak RSS.
    name = "geomean peak RSS <= %s" % (rss_reference or "mimalloc 2.4.1 "
                                       "(--peer mimalloc-2.4.1=...)")
    if rss_reference is None:
        out.append((name, "not in this run", "n/a"))
    else:
        ratio, note = vs(rss_reference, rss_of)
        if ratio is None:
            out.append((name, "no row completed by both strata and %s"
                        % rss_reference, "FAIL"))
        else:
            out.append((name, "strata/%s = %.3f%s" % (rss_reference, ratio,
                                                      note),
                        "PASS" if ratio <= 1.0 else "FAIL"))
    return out


def render_tables(rows, allocs, base_name, summary):
    names = [a.name for a in allocs]
    header = ["workload", "threads"] + names

    def cells(metric, fmt):
        out = []
        for r in rows:
            c = r["cells"]
            base = c[base_name].ok and metric(c[base_name])
            line = [r["workload"], str(r["threads"])]
            for n in names:
                if not c[n].ok:
                    line.append("FAILED")
                    continue
                v = metric(c[n])
                if n == base_name or not base:
                    line.append(fmt % v)
                else:
                    line.append((fmt + " (%s)") % (v, fmt_ratio(v / base)))
            out.append(line)
        return out

    def gm_row(key, fmt):
        g, ratios = summary[key], summary[key + "_ratio"]
        line = ["**geomean**", ""]
        for n in names:
            absolute = (fmt % g[n]) if n in g else "-"
            ratio = ratios[n][0]
            if n == base_name or ratio is None:
                line.append(absolute)
            else:
                line.append("%s (%s)" % (absolute, fmt_ratio(ratio)))
        return line

    time_rows = cells(time_of, "%.3f")
    time_rows.append(gm_row("time", "%.3f"))
    rss_rows = cells(rss_of, "%.1f")
    rss_rows.append(gm_row("rss", "%.1f"))
    return (md_table(header, time_rows), md_table(header, rss_rows))


def render_failures(rows, allocs):
    out = []
    for r in rows:
        for a in allocs:
            c = r["cells"][a.name]
            if not c.ok:
                out.append("- %s t=%d %s: %s" % (r["workload"], r["threads"],
                                                a.name, c.error))
    return out


# --------------------------------------------------------------------------
# Machine description and RESULTS.md.

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def package_version(package):
    if not package:
        return None
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True, timeout=20)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def git_revision():
    root = source_root()
    if not root:
        return None
    try:
        out = subprocess.run(["git", "-C", root, "describe", "--always",
                              "--dirty"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, timeout=20)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def machine_lines(allocs):
    lines = [
        "- Machine: %d CPUs (nproc), %s; Linux %s; glibc %s; %s"
        % (os.cpu_count() or 0, cpu_model(), platform.release(),
           platform.libc_ver()[1] or "?",
           "load average %.2f at start" % os.getloadavg()[0]),
    ]
    versions = []
    for a in allocs:
        if a.name == "strata":
            rev = git_revision()
            versions.append("strata %s" % (("@ " + rev) if rev else
                                           "(this tree)"))
        elif a.variant or a.upstream:
            versions.append("%s (%s)" % (a.name, a.description))
        else:
            v = package_version(a.package)
            versions.append("%s %s" % (a.name, v or "(version unknown)"))
    lines.append("- Allocators: " + ", ".join(versions))
    return lines


# A path's directories, as RESULTS.md must not show them (no machine paths
# in the repository): "/a/b/libx.so" -> ".../libx.so".
# Two directories at least, so that e.g. /proc/stat in prose stays.
DIRS_RE = re.compile(r"(?<![\w.~-])/(?:[^/\s,=`'\"()]+/){2,}")


def public_text(text, allocs):
    """`text` with the directories of every --peer and --variant object, and
    of any other absolute path, elided (the object's file name stays)."""
    for a in allocs:
        if a.path and (a.upstream or a.variant):
            for p in {a.path, os.path.realpath(a.path)}:
                text = text.replace(p, ".../" + os.path.basename(p))
    return DIRS_RE.sub(".../", text)


def command_line(argv):
    args = " ".join(shlex.quote(DIRS_RE.sub(".../", a)) for a in argv)
    if os.environ.get("BUILD_WORKSPACE_DIRECTORY"):
        return "bazel run -c opt //bench:compare" + (" -- " + args if args
                                                      else "")
    return "python3 bench/compare/compare.py" + (" " + args if args else "")


def skeleton():
    return "\n".join([
        PEERS_HEADING,
        "",
        "strata side by side with the peer allocators. Written by",
        "`bench/compare/compare.py` (`bazel run -c opt //bench:compare`);",
        "change the runner, not this section. Ratios are allocator / strata",
        "(or / the baseline each table names): above 1.00x, strata is",
        "faster (or smaller).",
        "",
        BLOCK_MARKERS["timing"][0],
        "_Not run yet: `bazel run -c opt //bench:compare`._",
        BLOCK_MARKERS["timing"][1],
        "",
        BLOCK_MARKERS["instructions"][0],
        "_Not run yet: `bazel run -c opt //bench:compare -- --instructions`._",
        BLOCK_MARKERS["instructions"][1],
        "",
    ])


def block_markers(block):
    """The markers of a block: "timing", "instructions", or a labelled
    timing block ("timing:<slug>", from --label) kept beside the others."""
    if block in BLOCK_MARKERS:
        return BLOCK_MARKERS[block]
    return ("<!-- peers:%s:begin -->" % block, "<!-- peers:%s:end -->" % block)


def label_slug(label):
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def replace_peers_block(text, block, content):
    """Returns `text` with the `block` part of the Peers section replaced;
    everything outside the Peers section is kept byte for byte."""
    begin, end = block_markers(block)
    lines = text.splitlines(keepends=True)
    start = None
    fence = False
    for i, line in enumerate(lines):
        if line.lstrip().startswith("```"):
            fence = not fence
        if not fence and line.rstrip("\n").rstrip() == PEERS_HEADING:
            start = i
            break
    if start is None:
        prefix = text
        if not prefix.strip():
            prefix = "# strata benchmark results\n\n"
        elif not prefix.endswith("\n\n"):
            prefix += "\n" if prefix.endswith("\n") else "\n\n"
        text = prefix + skeleton()
        return replace_peers_block(text, block, content)
    stop = len(lines)
    fence = False
    for i in range(start + 1, len(lines)):
        if lines[i].lstrip().startswith("```"):
            fence = not fence
        if not fence and lines[i].startswith("## "):
            stop = i
            break
    section = "".join(lines[start:stop])
    new_block = begin + "\n" + content.rstrip("\n") + "\n" + end
    b = section.find(begin)
    e = section.find(end, b + 1) if b >= 0 else -1
    if b >= 0 and e >= 0:
        section = section[:b] + new_block + section[e + len(end):]
    else:
        body = section.rstrip("\n")
        section = body + "\n\n" + new_block + "\n"
        if stop < len(lines):
            section += "\n"
    return "".join(lines[:start]) + section + "".join(lines[stop:])


def write_results(path, block, content):
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        text = ""
    new = replace_peers_block(text, block, content)
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".RESULTS.", dir=d)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(new)
        if os.path.exists(path):
            os.chmod(tmp, os.stat(path).st_mode & 0o777)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def results_path(args):
    if args.results:
        return os.path.abspath(args.results)
    root = source_root()
    if root is None:
        return None
    return os.path.join(root, "bench", "RESULTS.md")


# --------------------------------------------------------------------------
# Modes.

def split_list(values, allowed, what):
    out = []
    for v in values or []:
        for item in v.split(","):
            item = item.strip()
            if not item:
                continue
            if allowed is not None and item not in allowed:
                raise UsageError("unknown %s %r (known: %s)" % (
                    what, item, ", ".join(allowed)))
            if item not in out:
                out.append(item)
    return out


def plan_rows(args, workloads):
    """(workload, threads) pairs to run, and the skipped ones explained:
    --threads applies to every workload; without it each workload runs at
    its own default counts. Counts below a workload's minimum are skipped."""
    given = [int(t) for t in split_list(args.threads, None, "thread count")] \
        if args.threads else None
    if given is not None and (not given or any(t < 1 for t in given)):
        raise UsageError("--threads needs positive counts, e.g. 1,4")
    plan, skipped = [], []
    for w in workloads:
        for t in (given if given is not None else WORKLOADS[w].threads):
            if t < WORKLOADS[w].min_threads:
                skipped.append("%s t=%d (needs >= %d threads)" % (
                    w, t, WORKLOADS[w].min_threads))
            else:
                plan.append((w, t))
    if not plan:
        raise UsageError("no row to run: " + "; ".join(skipped))
    return plan, skipped


def run_timing(args, argv, locator, allocs):
    launcher = locator.need("bench/compare/launch", "//bench/compare:launch")
    workloads = split_list(args.only, WORKLOADS, "workload") or list(WORKLOADS)
    binaries = {w: locator.need("bench/workloads/" + w,
                                "//bench/workloads:" + w) for w in workloads}
    plan, skipped = plan_rows(args, workloads)
    names = [a.name for a in allocs]
    base = args.baseline or ("strata" if "strata" in names else names[0])
    if base not in names:
        raise UsageError("--baseline %s is not in --peers" % base)
    rss_reference = rss_reference_of(allocs, args.rss_reference)
    preflight(args, locator, launcher, allocs)

    total = len(plan) * args.reps * len(allocs)
    threads = sorted(set(t for _, t in plan))
    log("compare: %d runs: %d rows (%d workloads, threads %s) x %d reps x %s "
        "(scale %g)" % (total, len(plan), len(workloads),
                        ",".join(map(str, threads)), args.reps,
                        ",".join(names), args.scale))
    for note in skipped:
        log("compare: skipped %s" % note)
    started = datetime.datetime.now(datetime.timezone.utc)
    start_load = os.getloadavg()[0]
    machine = machine_lines(allocs)
    rows = []
    extended = []  # rows that got extra reps
    done = 0
    for w, t in plan:
        row = {"workload": w, "threads": t,
               "cells": collections.OrderedDict(
                   (a.name, Cell()) for a in allocs)}
        wargs = ["--threads", str(t), "--scale", repr(args.scale)]

        def run_reps(first, count):
            nonlocal done
            for rep in range(first, first + count):
                for a in allocs:  # interleaved: A B C A B C ...
                    s = run_once(launcher, binaries[w], wargs, a,
                                 args.timeout, WORKLOADS[w].per_ops)
                    row["cells"][a.name].samples.append(s)
                    done += 1
                    log("[%d/%d] %-14s t=%d %-9s rep %d: %s" % (
                        done, total, w, t, a.name, rep + 1,
                        ("%.3f s %.1f MiB" % (s.wall,
                                              s.maxrss_kib / 1024.0))
                        if s.ok else "FAILED: %s" % s.error))

        run_reps(0, args.reps)
        # A slow phase of the machine (seconds long) can cover most of
        # one cell's runs and decide its median. Where any cell of the
        # row spread more than --noisy-spread, every allocator of the
        # row runs --extra-reps more, still interleaved.
        noisy = max((c.spread() for c in row["cells"].values() if c.ok),
                    default=0.0)
        if args.extra_reps > 0 and noisy > args.noisy_spread:
            total += args.extra_reps * len(allocs)
            log("compare: %s t=%d spread %.0f%%: %d more reps" % (
                w, t, 100 * noisy, args.extra_reps))
            run_reps(args.reps, args.extra_reps)
            extended.append("%s t=%d" % (w, t))
        check_checksums(row["cells"], allocs)
        rows.append(row)

    end_load = os.getloadavg()[0]
    summary = evaluate(rows, allocs, base, rss_reference)
    time_table, rss_table = render_tables(rows, allocs, base, summary)
    failures = render_failures(rows, allocs)
    runs = sum(len(c.samples) for r in rows for c in r["cells"].values())
    by_name = {a.name: a for a in allocs}
    verified = sum(1 for r in rows for n, c in r["cells"].items()
                   for s in c.samples
                   if s.preload and by_name[n].interposed(*s.preload))
    max_spread = max((c.spread() for r in rows for c in r["cells"].values()
                      if c.ok), default=0.0)

    finished = datetime.datetime.now(datetime.timezone.utc)
    out = []
    out.append("### Wall time and peak RSS" + (": " + args.label
                                               if args.label else ""))
    out.append("")
    out.append("- Command: `%s`" % command_line(argv))
    out.append("- Date: %s (the run took %d min)" % (
        started.strftime("%Y-%m-%d %H:%M UTC"),
        round((finished - started).total_seconds() / 60)))
    out += machine
    out.append("- Settings: %d reps per cell, interleaved across allocators; "
               "threads %s; --scale %g; medians shown; load average %.2f at "
               "start, %.2f at end; largest spread (max-min)/median in a "
               "cell: %.0f%%" % (args.reps, threads_setting(args, plan),
                                 args.scale, start_load, end_load,
                                 100 * max_spread))
    if skipped:
        out.append("- Skipped rows: %s" % ", ".join(skipped))
    if args.extra_reps > 0:
        out.append("- Noisy rows: a row where some cell's spread exceeded "
                   "%.0f%% after %d reps ran %d more for every allocator "
                   "(medians of %d): %s" % (
                       100 * args.noisy_spread, args.reps, args.extra_reps,
                       args.reps + args.extra_reps,
                       ", ".join(extended) if extended else "none"))
    others = [s.other_cpus for r in rows for c in r["cells"].values()
              for s in c.samples if s.other_cpus is not None]
    if others:
        other_mean = statistics.mean(others)
        out.append("- Interference: while the workloads ran, other processes "
                   "kept on average %.2f of the %d CPUs busy (from "
                   "/proc/stat minus the workload's own CPU time; worst run "
                   "%.2f)" % (other_mean, os.cpu_count() or 0, max(others)))
        if other_mean > 0.25:
            out.append("- **Warning: the machine was busy, so times are "
                       "noisy and inflated; trust the ratios more than the "
                       "absolute numbers, and rerun on a quiet machine.**")
    out.append("- Interposition verified: %d/%d runs (malloc and free "
               "resolved to the preloaded object; glibc: libc)" % (verified,
                                                                 runs))
    out.append("")
    out.append("Median wall time, seconds (ratio = allocator / %s):" % base)
    out.append("")
    tput = sorted(set((w, WORKLOADS[w].per_ops) for w, _ in plan
                      if WORKLOADS[w].per_ops))
    if tput:
        out.append("Rows of fixed-duration throughput workloads (%s) show "
                   "inverted throughput instead of wall time: seconds per "
                   "%s operations (the run's measured seconds / operations "
                   "done x that count), so lower is better and the ratios "
                   "and geomeans compose with the other rows." % (
                       ", ".join(w for w, _ in tput),
                       " / ".join(sorted(set(count_text(n)
                                             for _, n in tput)))))
        out.append("")
    out.append(time_table)
    out.append("")
    out.append("Median peak RSS, MiB (ratio = allocator / %s):" % base)
    out.append("")
    out.append(rss_table)
    out.append("")
    if summary["complete_rows"] < summary["rows"]:
        out.append("Some runs failed (listed below). In the geomean rows, the "
                   "absolute values are over the %d of %d rows every "
                   "allocator completed; each ratio is over the rows that "
                   "allocator and %s both completed." % (
                       summary["complete_rows"], summary["rows"], base))
        out.append("")
    out.append("The bar for strata:")
    out.append("")
    out.append(md_table(["criterion", "measured", "result"],
                        [list(c) for c in summary["criteria"]], left=3))
    out.append("")
    if failures:
        out.append("Failed runs:")
        out.append("")
        out += failures
        out.append("")
    report = public_text("\n".join(out), allocs)
    print(report)

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": [{"workload": r["workload"],
                                 "threads": r["threads"],
                                 "samples": {n: [s.to_json()
                                                 for s in c.samples]
                                             for n, c in r["cells"].items()}}
                                for r in rows],
                       "geomean_time": summary["time"],
                       "geomean_rss_mib": summary["rss"],
                       "criteria": summary["criteria"]}, f, indent=1)
    maybe_write(args, "timing", report)
    return 1 if failures else 0


def maybe_write(args, block, report):
    partial = args.quick or args.only
    if args.variant:
        log("compare: not writing RESULTS.md (a run with --variant)")
        return
    if args.no_write_results or (partial and not args.write_results):
        log("compare: not writing RESULTS.md (%s)" % (
            "--no-write-results" if args.no_write_results else
            "partial run; pass --write-results to write anyway"))
        return
    path = results_path(args)
    if path is None:
        log("compare: not writing RESULTS.md: source tree unknown (not under "
            "`bazel run`); pass --results PATH")
        return
    if args.label:
        block = "%s:%s" % (block, label_slug(args.label))
    write_results(path, block, report)
    log("compare: wrote the %s block of the Peers section of %s" % (block,
                                                                     path))


def callgrind_ir(binary, args, alloc, timeout):
    """(Ir, None) or (None, reason)."""
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
           binary] + args
    env = child_env()
    if alloc is not None and alloc.path:
        env["LD_PRELOAD"] = alloc.path
        env.update(alloc.env)
    try:
        p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True,
                           errors="replace", timeout=timeout)
    except FileNotFoundError:
        return None, "valgrind not installed"
    except subprocess.TimeoutExpired:
        return None, "valgrind timed out after %ds" % timeout
    m = COLLECTED_RE.search(p.stderr)
    if p.returncode != 0 or m is None:
        reason = ""
        for line in p.stderr.splitlines():
            text = re.sub(r"^==\d+==\s*", "", line).strip()
            if text and not text.startswith(("Callgrind", "Copyright",
                                             "Using Valgrind", "Command:",
                                             "For interactive", "bench-preload")):
                reason = text
                if re.search(r"error|fatal|fail|cannot|unable|abort|signal",
                             text, re.I):
                    break
        return None, "valgrind exit %d: %s" % (p.returncode, reason[:140])
    pre = PRELOAD_RE.search(p.stderr)
    if alloc is not None:
        if pre is None:
            return None, "interposition not verified (no bench-preload line)"
        if not alloc.interposed(pre.group(1), pre.group(2)):
            return None, ("not interposed under valgrind: malloc from %s, "
                          "free from %s" % (pre.group(1), pre.group(2)))
    return int(m.group(1)), None


def instruction_criterion(strata_pairs):
    """(criterion, measured, result) for strata's malloc/free pair, loop
    included, at every size of INSTRUCTION_SIZES; strata_pairs is the list
    of per_pair() results, or None when strata did not run."""
    name = "instructions per malloc/free pair <= %g at %d B..%d B (loop " \
        "included)" % (BAR_INSTRUCTIONS_PER_PAIR, INSTRUCTION_SIZES[0],
                       INSTRUCTION_SIZES[-1])
    if strata_pairs is None:
        return (name, "strata not in this run", "n/a")
    errors = [e for v, e in strata_pairs if v is None]
    if errors:
        return (name, "strata n/a: %s" % errors[0], "FAIL")
    values = [v for v, _ in strata_pairs]
    worst = max(range(len(values)), key=lambda i: values[i])
    return (name, "worst: %.1f at %d B (%s)" % (
        values[worst], INSTRUCTION_SIZES[worst],
        ", ".join("%.1f" % v for v in values)),
        "PASS" if values[worst] <= BAR_INSTRUCTIONS_PER_PAIR else "FAIL")


def run_instructions(args, argv, locator, allocs):
    binary = locator.need("bench/workloads/malloc_free_pair",
                          "//bench/workloads:malloc_free_pair")
    preflight(args, locator, locator.need("bench/compare/launch",
                                          "//bench/compare:launch"), allocs)
    n1, n2 = args.iters
    jobs = {}
    workers = max(1, min(os.cpu_count() or 1, 4))
    log("compare: callgrind, %d allocators x sizes %s x iterations %d,%d "
        "(%d at a time)" % (len(allocs), ",".join(map(str, INSTRUCTION_SIZES)),
                            n1, n2, workers))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for n in (n1, n2):
            jobs[("loop", 16, n)] = pool.submit(
                callgrind_ir, binary, ["--size", "16", "--iters", str(n),
                                       "--empty"], None, args.timeout)
        for a in allocs:
            for size in INSTRUCTION_SIZES:
                for n in (n1, n2):
                    jobs[(a.name, size, n)] = pool.submit(
                        callgrind_ir, binary, ["--size", str(size), "--iters",
                                               str(n)], a, args.timeout)
        results = {k: f.result() for k, f in jobs.items()}

    def per_pair(name, size):
        (ir1, e1), (ir2, e2) = results[(name, size, n1)], results[(name, size, n2)]
        if e1 or e2:
            return None, e1 or e2
        return (ir2 - ir1) / float(n2 - n1), None

    loop, loop_err = per_pair("loop", 16)
    header = ["size"] + [a.name for a in allocs]
    rows = []
    notes = []
    for size in INSTRUCTION_SIZES:
        line = ["%d B" % size]
        for a in allocs:
            v, err = per_pair(a.name, size)
            if v is None:
                line.append("n/a")
                note = "- %s: n/a: %s" % (a.name, err)
                if note not in notes:
                    notes.append(note)
            else:
                line.append("%.1f" % v)
        rows.append(line)
    table = md_table(header, rows, left=1)
    crit = instruction_criterion(
        [per_pair("strata", n) for n in INSTRUCTION_SIZES]
        if "strata" in [a.name for a in allocs] else None)
    out = ["### Instructions per malloc/free pair" + (
        ": " + args.label if args.label else ""), "",
           "- Command: `%s`" % command_line(argv),
           "- Date: %s" % datetime.datetime.now(datetime.timezone.utc)
           .strftime("%Y-%m-%d %H:%M UTC")]
    out += machine_lines(allocs)
    out.append("- Method: `valgrind --tool=callgrind "
               "--callgrind-out-file=/dev/null` on "
               "bench/workloads/malloc_free_pair at %d and %d iterations of "
               "`p = malloc(size); *(volatile char*)p = i; free(p);`; shown: "
               "(Ir difference) / (iteration difference). Deterministic: "
               "rerunning gives the same numbers." % (n1, n2))
    out.append("- Included in every number: the loop's own %s instructions "
               "per iteration (measured with --empty: a no-op call in place "
               "of malloc and of free)." % (
                   "%.1f" % loop if loop is not None else "(n/a: %s)" % loop_err))
    out.append("")
    out.append(table)
    out.append("")
    if notes:
        out += notes
        out.append("")
    out.append("The bar for strata:")
    out.append("")
    out.append(md_table(["criterion", "measured", "result"], [list(crit)],
                        left=3))
    out.append("")
    report = public_text("\n".join(out), allocs)
    print(report)
    maybe_write(args, "instructions", report)
    return 0


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="compare", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="See the top of bench/compare/compare.py for details.")
    p.add_argument("--reps", type=int, default=None,
                   help="runs per workload x threads x allocator "
                        "(default 5; 3 with --quick)")
    p.add_argument("--extra-reps", type=int, default=None,
                   help="more runs for every allocator of a row where some "
                        "cell's (max-min)/median exceeds --noisy-spread "
                        "(default 4; 0 with --quick)")
    p.add_argument("--noisy-spread", type=float, default=0.25,
                   help="spread that makes a row noisy (default 0.25)")
    p.add_argument("--quick", action="store_true",
                   help="smoke-sized: --scale 0.1, 3 reps, fewer "
                        "callgrind iterations; does not write RESULTS.md")
    p.add_argument("--only", "--workloads", dest="only", action="append",
                   metavar="WORKLOAD[,...]",
                   help="run only these workloads (%s); a partial run"
                   % ", ".join(WORKLOADS))
    p.add_argument("--peers", action="append", metavar="ALLOC[,...]",
                   help="allocators to run, strata included (default: %s)"
                   % ",".join(PEERS))
    p.add_argument("--threads", action="append", metavar="N[,...]",
                   help="thread counts for every workload (default: each "
                        "workload's own, 1,4 or 2,4,8: see --list); counts "
                        "below a workload's minimum are skipped")
    p.add_argument("--scale", type=float, default=None,
                   help="work multiplier passed to every workload (default "
                        "1.0, sized for ~0.3-1.5 s with glibc; 0.1 with "
                        "--quick)")
    p.add_argument("--timeout", type=int, default=300,
                   help="seconds before a run is killed (default 300)")
    p.add_argument("--baseline", help="allocator the ratios are relative to "
                                      "(default strata, else the first)")
    p.add_argument("--instructions", action="store_true",
                   help="count instructions per malloc/free pair under "
                        "callgrind instead of timing the workloads")
    p.add_argument("--iters", default=None, metavar="N1,N2",
                   help="--instructions: iteration counts (default "
                        "100000,300000; 20000,60000 with --quick)")
    p.add_argument("--results", metavar="PATH",
                   help="RESULTS.md to update (default "
                        "<source tree>/bench/RESULTS.md)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--write-results", action="store_true",
                   help="update RESULTS.md even for a --quick/--only run")
    g.add_argument("--no-write-results", action="store_true",
                   help="never update RESULTS.md")
    p.add_argument("--json", metavar="PATH",
                   help="also write every sample as JSON")
    p.add_argument("--strata-so", metavar="PATH",
                   help="libstrata.so to use instead of the runfiles' one")
    p.add_argument("--bin-dir", metavar="DIR",
                   help="directory holding bench/workloads/* and "
                        "bench/compare/launch (default: runfiles, bazel-bin)")
    p.add_argument("--variant", action="append",
                   metavar="NAME=SO[,VAR=VALUE...]",
                   help="also run another strata build (SO: a libstrata.so, "
                        "or `strata` for the one under test) with these "
                        "environment settings, as column NAME; not a peer, "
                        "and RESULTS.md is not written")
    p.add_argument("--peer", action="append", metavar="NAME=PATH.so",
                   help="also run this preloadable allocator (e.g. an "
                        "upstream release built elsewhere) as peer NAME; "
                        "repeatable. It must interpose malloc and free "
                        "(checked first). Counts as an upstream peer in the "
                        "bar")
    p.add_argument("--peer-desc", action="append", metavar="NAME=TEXT",
                   help="what --peer NAME is, for RESULTS.md, e.g. "
                        "mimalloc-3.4.3=\"tag v3.4.3, CMake Release\" "
                        "(default: the CMake build type from a CMakeCache.txt "
                        "beside the object, if any)")
    p.add_argument("--rss-reference", metavar="NAME",
                   help="peer the RSS criterion compares with (default: "
                        "the --peer named %s, else Debian's mimalloc)"
                   % DEFAULT_RSS_REFERENCE)
    p.add_argument("--label", metavar="TEXT",
                   help="title this run (e.g. \"baseline before X\") and "
                        "write it to its own block of the Peers section, "
                        "kept beside the unlabelled one")
    p.add_argument("--list", action="store_true",
                   help="list workloads and allocators, then exit")
    args = p.parse_args(argv)
    # Under `bazel run` the working directory is the runfiles tree: take
    # relative paths from where the user ran bazel.
    user_cwd = os.environ.get("BUILD_WORKING_DIRECTORY")
    for attr in ("json", "results", "strata_so", "bin_dir"):
        value = getattr(args, attr)
        if value and user_cwd and not os.path.isabs(value):
            setattr(args, attr, os.path.join(user_cwd, value))
    if args.reps is None:
        args.reps = 3 if args.quick else 5
    if args.extra_reps is None:
        args.extra_reps = 0 if args.quick else 4
    if args.extra_reps < 0:
        p.error("--extra-reps must be >= 0")
    if args.reps < 1:
        p.error("--reps must be >= 1")
    if args.scale is None:
        args.scale = 0.1 if args.quick else 1.0
    if not args.scale > 0:
        p.error("--scale must be > 0")
    if args.iters is None:
        args.iters = "20000,60000" if args.quick else "100000,300000"
    try:
        n1, n2 = (int(x) for x in args.iters.split(","))
        if not 0 <= n1 < n2:
            raise ValueError
        args.iters = (n1, n2)
    except ValueError:
        p.error("--iters needs N1,N2 with 0 <= N1 < N2")
    return args


def main(argv):
    args = parse_args(argv)
    if args.list:
        for w, d in WORKLOADS.items():
            print("workload  %-15s %s (threads %s%s)" % (
                w, d.description, ",".join(map(str, d.threads)),
                "; throughput: seconds per %s ops" % count_text(d.per_ops)
                if d.per_ops else ""))
        for n, (_, _, d) in PEERS.items():
            print("allocator %-15s %s" % (n, d))
        return 0
    try:
        names = split_list(args.peers, PEERS, "allocator") or list(PEERS)
        locator = Locator(args.bin_dir)
        allocs = make_allocators(names, locator, args.strata_so)
        taken = set(names)
        allocs += make_peers(args.peer, args.peer_desc, taken)
        allocs += make_variants(args.variant, locator, args.strata_so, taken)
        if args.instructions:
            return run_instructions(args, argv, locator, allocs)
        return run_timing(args, argv, locator, allocs)
    except UsageError as e:
        log("compare: error: %s" % e)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
