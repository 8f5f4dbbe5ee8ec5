#!/usr/bin/env bash
# tests/observe/dashboard_browser_test.sh: opens GET /debug/strata of a
# program on strata in headless Chromium (Debian chromium), lets the page's
# scripts run (virtual time), and checks from the rendered DOM that the
# chart, the size-class table and the allocation sites hold the program's
# data: with the monitor on (its history drawn, its alert shown) and off
# (the page's own samples, a note instead of alerts). Saves screenshots
# (dashboard.png, dashboard-no-monitor.png) and the DOMs as test outputs.
# Skips (passing, with a message) where chromium is not installed;
# tools/setup.sh installs it.
source "${TEST_SRCDIR:-$PWD}/${TEST_WORKSPACE:-strata}/tests/observe/observed_lib.sh"
need_tool chromium chromium
need_tool python3 python3

# chromium ARGS... URL: a fresh profile each time, nothing fetched from
# outside, bounded in time.
browse() {
  local profile
  profile=$(mktemp -d "$WORK/chromium.XXXXXX")
  HOME="$WORK" timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync --disable-extensions \
    --user-data-dir="$profile" --window-size=1280,1400 --virtual-time-budget=6000 "$@" 2>>"$WORK/chromium.log"
}

check_dom() {  # check_dom FILE MODE(monitor|no-monitor)
  python3 - "$1" "$2" <<'PY'
import re, sys
dom = open(sys.argv[1], encoding="utf-8").read()
mode = sys.argv[2]
problems = []
def need(cond, what):
    if not cond:
        problems.append(what)
body = re.search(r'<body([^>]*)>', dom)
need(body and 'data-stats="1"' in body.group(1), "the page never rendered stats.json (body data-stats)")
need(body and 'data-heap="1"' in body.group(1), "the page never rendered the heap profile (body data-heap)")
# The chart: three series, each with several points and a live value.
series = dict(re.findall(r'<path [^>]*data-series="(\w+)"[^>]*data-points="(\d+)"', dom))
need(set(series) == {"live", "committed", "rss"}, "chart series: %s" % sorted(series))
need(all(int(n) >= 2 for n in series.values()), "chart points: %s" % series)
last_live = re.search(r'data-series="live"[^>]*data-last="(\d+)"', dom)
need(last_live and 64 * 2**20 <= int(last_live.group(1)) <= 256 * 2**20,
     "chart's last live value %s is not the program's 64+ MiB" % (last_live and last_live.group(1)))
# The size-class table: rows with live bytes, the largest holding the 64 MiB.
classes = [int(b) for b in re.findall(r'<tr data-class="\d+" data-live-bytes="(\d+)"', dom)]
need(len(classes) >= 5, "size-class rows: %d" % len(classes))
need(classes and max(classes) >= 60 * 2**20, "largest class row: %s" % (max(classes) if classes else None))
# The sites: the program's holding function first.
sites = re.findall(r'<li data-bytes="(\d+)" data-function="([^"]*)"', dom)
need(sites and "ObservedSiteHoldBuffers" in sites[0][1], "top site: %s" % (sites[:2],))
need(any("ObservedSiteChurn" in f for _, f in sites), "churn site missing: %s" % (sites,))
peak = re.search(r'<ol class="sites" id="peak-sites">(.*?)</ol>', dom, re.S)
need(peak and "ObservedSiteHoldBuffers" in peak.group(1), "peak sites lack the holding function")
if mode == "monitor":
    need('monitor history:' in dom, "chart does not say it draws the monitor's history")
    need(re.search(r'class="alert WARNING" data-kind="live_bytes"', dom), "no active live_bytes warning")
    need(re.search(r'data-sequence="\d+"', dom), "no recent alert listed")
else:
    need('samples taken by this page' in dom, "chart does not say it draws its own samples")
    need('No monitor configured' in dom, "no note that the monitor is off")
for p in problems:
    print("FAIL:", p)
sys.exit(1 if problems else 0)
PY
}

for mode in monitor no-monitor; do
  args=(--seconds=90 --live-mib=64)
  [ "$mode" = monitor ] && args+=(--monitor)
  start_program "${args[@]}"
  sleep 1  # a few monitor samples
  url="http://127.0.0.1:$PORT/debug/strata"
  browse --dump-dom "$url" > "$WORK/dom-$mode.html" || fail "chromium --dump-dom failed: $(tail -5 "$WORK/chromium.log")"
  cp "$WORK/dom-$mode.html" "$OUTPUTS/"
  check_dom "$WORK/dom-$mode.html" "$mode" || fail "the rendered dashboard ($mode) lacks the program's data (DOM: $OUTPUTS/dom-$mode.html)"
  shot="$OUTPUTS/dashboard$([ "$mode" = monitor ] || echo -no-monitor).png"
  browse --screenshot="$shot" "$url" > /dev/null || fail "chromium --screenshot failed"
  [ "$(head -c 4 "$shot" | od -An -c | tr -d ' ')" = "211PNG" ] || fail "no PNG screenshot at $shot"
  echo "dashboard ($mode): chart, size classes and sites hold the program's data; screenshot $(basename "$shot")"
  kill "${PIDS[-1]}"
  wait "${PIDS[-1]}" 2>/dev/null || true
done
