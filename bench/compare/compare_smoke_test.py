#!/usr/bin/env python3
"""CI smoke test of the peer comparison (//bench/compare:compare_smoke_test).

Runs compare.py --quick with one rep on two workloads against glibc and
strata, and checks that it finished cleanly, printed both tables with a
geomean row, and verified interposition on every run. Also checks that
updating RESULTS.md replaces only the Peers section's own block.
Takes a few seconds; the workloads are scaled down 10x by --quick.
"""

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
