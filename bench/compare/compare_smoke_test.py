#!/usr/bin/env python3
"""CI smoke test of the peer comparison (//bench/compare:compare_smoke_test).

Runs compare.py --quick with one rep on two workloads against glibc and
strata, and checks that it finished cleanly, printed both tables with a
geomean row, and verified interposition on every run; that a --peer
NAME=PATH.so joins the tables (Debian's tcmalloc under another name) and
one that does not interpose is refused; that the bar's criteria come out
right on made-up medians; and that updating RESULTS.md replaces only the
Peers section's own block.
Takes a few seconds; the workloads are scaled down 10x by --quick.
"""

import json
import os
import re
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import compare  # noqa: E402  (bench/compare/compare.py)

WORKLOADS = ["larson", "mstress"]
# COMPARE_SMOKE_PEERS (e.g. glibc,mimalloc) checks the harness alone.
PEERS = os.environ.get("COMPARE_SMOKE_PEERS", "glibc,strata").split(",")
THREADS = [1, 4]
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"


class CompareSmokeTest(unittest.TestCase):

    def test_quick_run(self):
        cmd = [sys.executable, os.path.join(HERE, "compare.py"), "--quick",
               "--reps", "1", "--only", ",".join(WORKLOADS), "--peers",
               ",".join(PEERS), "--threads", ",".join(map(str, THREADS)),
               "--no-write-results", "--timeout", "40"]
        p = subprocess.run(cmd, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=120)
        sys.stderr.write(p.stderr)
        sys.stdout.write(p.stdout)
        self.assertEqual(p.returncode, 0, "compare.py failed:\n" + p.stderr)
        out = p.stdout
        self.assertIn("Median wall time", out)
        self.assertIn("Median peak RSS", out)
        header = re.compile(r"^\| workload\s+\| threads \|" + "".join(
            r"\s+%s \|" % re.escape(a) for a in PEERS), re.M)
        self.assertEqual(len(header.findall(out)), 2, out)
        for w in WORKLOADS:
            for t in THREADS:
                self.assertRegex(out, r"\| %s\s+\| %d\s+\|" % (w, t))
        self.assertEqual(len(re.findall(r"^\| \*\*geomean\*\*", out, re.M)), 2)
        self.assertNotIn("FAILED", out)
        runs = len(WORKLOADS) * len(THREADS) * len(PEERS)
        m = re.search(r"Interposition verified: (\d+)/(\d+) runs", out)
        self.assertIsNotNone(m, out)
        self.assertEqual((int(m.group(1)), int(m.group(2))), (runs, runs))
        if "strata" in PEERS:
            # The bar is evaluated (without mimalloc, two criteria are n/a).
            self.assertRegex(out, r"no workload slower than 1\.25x the best "
                             r"peer\s*\|[^|\n]*\|\s*(PASS|FAIL)\s*\|")

    def test_noisy_rows_get_extra_reps(self):
        # A negative threshold makes every row noisy: each gets the extra
        # reps, for every allocator, and the report says which rows did.
        peers = [a for a in PEERS if a in ("strata", "glibc")] or PEERS[:1]
        cmd = [sys.executable, os.path.join(HERE, "compare.py"), "--quick",
               "--reps", "2", "--extra-reps", "1", "--noisy-spread", "-1",
               "--only", WORKLOADS[0], "--peers", ",".join(peers),
               "--threads", "1", "--no-write-results", "--timeout", "40"]
        p = subprocess.run(cmd, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, "compare.py failed:\n" + p.stderr)
        out = p.stdout
        self.assertRegex(out, r"Noisy rows: .*ran 1 more for every allocator "
                              r"\(medians of 3\): %s t=1" % WORKLOADS[0])
        m = re.search(r"Interposition verified: (\d+)/(\d+) runs", out)
        self.assertIsNotNone(m, out)
        self.assertEqual(int(m.group(2)), 3 * len(peers))

    @unittest.skipUnless("strata" in PEERS, "needs strata")
    def test_variant_runs_beside_strata_and_is_no_peer(self):
        # A variant of the build under test with an environment setting: its
        # own column, interposed, left out of the bar (with strata alone
        # there is no peer), and RESULTS.md is never written.
        cmd = [sys.executable, os.path.join(HERE, "compare.py"), "--quick",
               "--reps", "1", "--only", WORKLOADS[0], "--peers", "strata",
               "--threads", "1", "--timeout", "40",
               "--variant", "off=strata,STRATA_SAMPLE_RATE=0"]
        p = subprocess.run(cmd, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, "compare.py failed:\n" + p.stderr)
        out = p.stdout
        self.assertRegex(out, r"(?m)^\| workload\s+\| threads \|\s+strata \|"
                              r"\s+off \|")
        self.assertIn("off (strata variant: ", out)
        self.assertIn("STRATA_SAMPLE_RATE=0)", out)
        self.assertRegex(out, r"Interposition verified: 2/2 runs")
        self.assertRegex(out, r"no workload slower than 1\.25x the best "
                              r"peer\s*\|\s*no peer in this run\s*\|")
        self.assertIn("not writing RESULTS.md (a run with --variant)",
                      p.stderr)

    def test_variant_spec_errors(self):
        for spec in ("novalue", "x=", "strata=strata", "y=/nonexistent.so",
                     "z=strata,NOT_AN_ASSIGNMENT"):
            cmd = [sys.executable, os.path.join(HERE, "compare.py"), "--quick",
                   "--only", WORKLOADS[0], "--peers", "glibc", "--threads",
                   "1", "--variant", spec]
            p = subprocess.run(cmd, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, timeout=60)
            self.assertEqual(p.returncode, 2, spec + ": " + p.stderr)
            self.assertIn("--variant", p.stderr, spec)

    @unittest.skipUnless(os.path.isfile(TCMALLOC), "needs Debian's tcmalloc")
    def test_peer_joins_tables_and_bar(self):
        # A preloadable allocator given by path (Debian's tcmalloc under
        # another name stands in for an upstream build): its own column in
        # both tables, interposition verified on its runs too, its
        # description in the Allocators line, its directory kept out of the
        # report, and it counts as the upstream peer of the bar.
        peers = [a for a in PEERS if a in ("strata", "glibc")] or PEERS[:1]
        cmd = [sys.executable, os.path.join(HERE, "compare.py"), "--quick",
               "--reps", "1", "--only", WORKLOADS[0], "--peers",
               ",".join(peers), "--threads", "1", "--no-write-results",
               "--timeout", "40", "--peer", "tc-again=" + TCMALLOC,
               "--peer-desc", "tc-again=Debian's tcmalloc, renamed"]
        p = subprocess.run(cmd, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, "compare.py failed:\n" + p.stderr)
        out = p.stdout
        header = re.compile(r"^\| workload\s+\| threads \|" + "".join(
            r"\s+%s \|" % re.escape(a) for a in peers + ["tc-again"]), re.M)
        self.assertEqual(len(header.findall(out)), 2, out)
        self.assertNotIn("FAILED", out)
        self.assertIn("tc-again (Debian's tcmalloc, renamed; %s)"
                      % os.path.basename(TCMALLOC), out)
        self.assertNotIn(os.path.dirname(TCMALLOC) + "/", out)
        self.assertIn("--peer tc-again=.../%s" % os.path.basename(TCMALLOC),
                      out)
        n = len(peers) + 1
        self.assertRegex(out, r"Interposition verified: %d/%d runs" % (n, n))
        if "strata" in peers:
            self.assertRegex(out, r"geomean time <= 0\.90x the best upstream "
                                  r"peer \(--peer\)\s*\|\s*best: tc-again; "
                                  r"strata/tc-again = [0-9.]+\s*\|\s*"
                                  r"(PASS|FAIL)\s*\|")

    def test_throughput_rows(self):
        # A fixed-duration workload's row shows seconds per 10M objects, not
        # the run's wall time (0.1 s under --quick); a thread count below
        # its minimum is skipped and said so.
        peers = [a for a in PEERS if a in ("strata", "glibc")] or PEERS[:1]
        cmd = [sys.executable, os.path.join(HERE, "compare.py"), "--quick",
               "--reps", "1", "--workloads", "xmalloc_test", "--peers",
               ",".join(peers), "--threads", "1,2", "--no-write-results",
               "--timeout", "40", "--json", os.path.join(
                   os.environ.get("TEST_TMPDIR", "/tmp"), "tput.json")]
        p = subprocess.run(cmd, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, "compare.py failed:\n" + p.stderr)
        out = p.stdout
        self.assertIn("Skipped rows: xmalloc_test t=1 (needs >= 2 threads)",
                      out)
        self.assertIn("Rows of fixed-duration throughput workloads "
                      "(xmalloc_test) show inverted throughput", out)
        self.assertRegex(out, r"\| xmalloc_test\s+\| 2\s+\|")
        self.assertNotRegex(out, r"\| xmalloc_test\s+\| 1\s+\|")
        self.assertNotIn("FAILED", out)
        with open(cmd[cmd.index("--json") + 1]) as f:
            samples = json.load(f)["rows"][0]["samples"]
        for name in peers:
            s = samples[name][0]
            self.assertGreater(s["ops"], 0)
            # Shown: seconds per 10M objects. The timed window behind it
            # lasts the 0.1 s of --quick at least, within the process's
            # own wall time.
            seconds = s["wall"] / 1e7 * s["ops"]
            self.assertGreaterEqual(seconds, 0.099)
            self.assertLessEqual(seconds, s["run_wall"])

    def test_peer_that_does_not_interpose_is_refused(self):
        # libm exports no malloc: the run stops before timing anything and
        # says why, instead of measuring glibc under the peer's name.
        libm = "/lib/x86_64-linux-gnu/libm.so.6"
        cmd = [sys.executable, os.path.join(HERE, "compare.py"), "--quick",
               "--reps", "1", "--only", WORKLOADS[0], "--peers", "glibc",
               "--threads", "1", "--no-write-results", "--peer",
               "notalloc=" + libm]
        p = subprocess.run(cmd, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=60)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertRegex(p.stderr, r"--peer notalloc does not interpose: "
                                   r"malloc resolves to \S*libc\.so\.6")
        self.assertEqual(p.stdout, "")

    def test_peer_spec_errors(self):
        for args, message in (
                (["--peer", "novalue"], "expected NAME=PATH.so"),
                (["--peer", "x=/nonexistent.so"], "is not a file"),
                (["--peer", "glibc=" + sys.executable], "the name is taken"),
                (["--peer", "a=" + sys.executable, "--peer",
                  "a=" + sys.executable], "the name is taken"),
                (["--peer-desc", "nobody=text"], "which no --peer names"),
                (["--peer-desc", "broken"], "expected NAME=TEXT")):
            cmd = [sys.executable, os.path.join(HERE, "compare.py"), "--quick",
                   "--only", WORKLOADS[0], "--peers", "glibc", "--threads",
                   "1"] + args
            p = subprocess.run(cmd, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, timeout=60)
            self.assertEqual(p.returncode, 2, " ".join(args) + p.stderr)
            self.assertIn(message, p.stderr, args)

    def test_bar_criteria(self):
        # The bar of issue 18 on made-up medians: strata 1.0 s per row; an
        # upstream peer u, Debian peers d1 and d2.
        def row(workload, threads, **times):
            cells = {}
            for name, t in times.items():
                c = compare.Cell()
                s = compare.Sample()
                s.ok, s.wall, s.maxrss_kib = True, t, 1024 * t
                c.samples.append(s)
                cells[name] = c
            return {"workload": workload, "threads": threads, "cells": cells}

        rows = [row("larson", 1, strata=1.0, u=1.2, d1=1.1, d2=1.5),
                row("xmalloc", 4, strata=1.0, u=1.3, d1=0.9, d2=2.0)]
        crit = compare.bar_criteria(rows, ["u", "d1", "d2"], ["u"],
                                    ["d1", "d2"], "u")
        self.assertEqual(len(crit), 5)
        best = [c for c in crit if "best upstream" in c[0]][0]
        # strata/u = geomean(1/1.2, 1/1.3) = 0.801 <= 0.90
        self.assertEqual(best[2], "PASS", best)
        debian = [c for c in crit if "every Debian peer" in c[0]][0]
        # strata/d1 = geomean(1/1.1, 1/0.9) = 1.005: not below
        self.assertEqual(debian[2], "FAIL", debian)
        self.assertIn("strata/d1 = 1.005", debian[1])
        worst = [c for c in crit if "1.25x" in c[0]][0]
        self.assertEqual(worst[2], "PASS", worst)  # 1.11x d1 on xmalloc
        pc = [c for c in crit if c[0].startswith("producer/consumer")][0]
        self.assertEqual(pc[2], "FAIL", pc)  # xmalloc t=4: 1.11x d1
        self.assertIn("xmalloc t=4 1.11x d1", pc[1])
        rss = [c for c in crit if "RSS" in c[0]][0]
        self.assertEqual(rss[2], "PASS", rss)
        # Without an upstream peer or an RSS reference: n/a, not PASS.
        crit = compare.bar_criteria(rows, ["d1", "d2"], [], ["d1", "d2"],
                                    None)
        self.assertEqual(crit[0][2], "n/a")
        self.assertEqual(crit[-1][2], "n/a")
        # Instructions: 50 or less at every size.
        ok = compare.instruction_criterion([(49.5, None), (50.0, None),
                                            (48.0, None), (45.0, None)])
        self.assertEqual(ok[2], "PASS", ok)
        bad = compare.instruction_criterion([(49.5, None), (50.1, None),
                                             (48.0, None), (45.0, None)])
        self.assertEqual(bad[2], "FAIL", bad)
        self.assertIn("worst: 50.1 at 64 B", bad[1])

    def test_results_block_replacement(self):
        original = ("# Results\n\nintro\n\n## Micro\n\nkeep me\n\n"
                    "## Peers\n\nold text\n\n## Later\n\n```\n## Peers\n```\n"
                    "tail\n")
        once = compare.replace_peers_block(original, "timing", "TABLE 1")
        self.assertTrue(once.startswith("# Results\n\nintro\n\n## Micro\n\n"
                                        "keep me\n\n## Peers\n"))
        self.assertTrue(once.endswith("## Later\n\n```\n## Peers\n```\ntail\n"))
        self.assertIn("TABLE 1", once)
        twice = compare.replace_peers_block(once, "timing", "TABLE 2")
        self.assertNotIn("TABLE 1", twice)
        self.assertIn("TABLE 2", twice)
        both = compare.replace_peers_block(twice, "instructions", "IR")
        self.assertIn("TABLE 2", both)
        self.assertIn("IR", both)
        self.assertEqual(both.count("## Peers"), 2)  # one is in the fence
        fresh = compare.replace_peers_block("", "instructions", "IR")
        self.assertIn("## Peers", fresh)
        self.assertIn(compare.BLOCK_MARKERS["timing"][0], fresh)
        self.assertIn("IR", fresh)


if __name__ == "__main__":
    unittest.main()
