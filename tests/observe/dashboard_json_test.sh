#!/usr/bin/env bash
# tests/observe/dashboard_json_test.sh: GET /debug/strata/stats.json of a
# program on strata is valid JSON with the stats report's object, the
# monitor's history and alerts, limits and resident bytes, and values that
# match the program (64 MiB held, a live-bytes warning raised); and GET
# /debug/strata is the page, which loads nothing from elsewhere.
source "${TEST_SRCDIR:-$PWD}/${TEST_WORKSPACE:-strata}/tests/observe/observed_lib.sh"
need_tool python3 python3
start_program --seconds=60 --live-mib=64 --monitor
sleep 1
fetch /debug/strata/stats.json "$WORK/stats.json"
fetch /debug/strata "$WORK/dashboard.html"
python3 - "$WORK/stats.json" "$WORK/dashboard.html" <<'PY'
import json, re, sys
d = json.load(open(sys.argv[1]))
page = open(sys.argv[2], encoding="utf-8").read()
problems = []
def need(cond, what):
    if not cond:
        problems.append(what)
s = d["stats"]
need(64 * 2**20 <= s["generic.current_allocated_bytes"] <= 256 * 2**20, "live bytes %s" % s["generic.current_allocated_bytes"])
need(len(s["size_classes"]) > 10 and all("live_bytes" in c for c in s["size_classes"]), "size_classes")
need(d["process"]["resident_bytes"] >= 64 * 2**20, "resident bytes %s" % d["process"]["resident_bytes"])
need(d["limits"] == {"soft_bytes": 0, "hard_bytes": 0, "soft_state": "unset", "hard_state": "unset"}, "limits %s" % d["limits"])
need(d["profiler"]["sample_rate_bytes"] == 524288, "sample rate %s" % d["profiler"])
m = d["monitor"]
need(m["configured"] and m["running"] and m["interval_ms"] == 200, "monitor status %s" % {k: m[k] for k in ("configured", "running", "interval_ms")})
need(len(m["history"]) >= 3, "history of %d samples" % len(m["history"]))
times = [h["unix_ms"] for h in m["history"]]
need(times == sorted(times), "history not oldest first")
need(all(h["live_bytes"] >= 64 * 2**20 and h["committed_bytes"] >= h["live_bytes"] and h["resident_bytes"] > 0
         for h in m["history"][1:]), "history values")
need(m["levels"]["live_bytes"] == "WARNING", "live_bytes level %s" % m["levels"])
need(any(a["kind"] == "live_bytes" and a["level"] == "WARNING" for a in m["alerts"]), "alerts %s" % m["alerts"])
need(page.startswith("<!DOCTYPE html>") and "</html>" in page, "the page is not the dashboard")
external = re.findall(r'(?:src|href)="(?!/|#)([^"]+)"', page) + re.findall(r'https?://(?!www\.w3\.org/2000/svg)[^\s"\']+', page)
need(not external, "the page refers outside the process: %s" % external)
for p in problems:
    print("FAIL:", p)
print("stats.json: %d history samples, %d alerts, %d size classes" % (len(m["history"]), len(m["alerts"]), len(s["size_classes"])))
sys.exit(1 if problems else 0)
PY
