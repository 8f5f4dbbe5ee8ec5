#!/usr/bin/env bash
# tests/observe/prometheus_e2e_test.sh: a real Prometheus server (Debian
# prometheus; loopback, a temporary config and data directory, at most 90
# s) scrapes a program on strata every second; the test then asks
# Prometheus's HTTP API for strata_live_bytes and checks that the stored
# value is what the program holds (64 MiB live, plus at most 64 MiB of
# churn and runtime), that the target is up, and that a counter and a
# per-class series arrived too. Skips (passing, with a message) where
# prometheus is not installed; tools/setup.sh installs it.
source "${TEST_SRCDIR:-$PWD}/${TEST_WORKSPACE:-strata}/tests/observe/observed_lib.sh"
need_tool prometheus prometheus
start_program --seconds=120 --live-mib=64
PROM_PORT=$(free_port)
cat > "$WORK/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: strata
    static_configs:
      - targets: ['127.0.0.1:$PORT']
YAML
timeout 90 prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/data" \
  --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn > "$WORK/prometheus.log" 2>&1 &
PIDS+=($!)

# query EXPR: prints "value" of the first series, or nothing.
query() {
  python3 - "http://127.0.0.1:$PROM_PORT/api/v1/query" "$1" <<'PY' 2>/dev/null || true
import json, sys, urllib.parse, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
url = sys.argv[1] + "?" + urllib.parse.urlencode({"query": sys.argv[2]})
with opener.open(url, timeout=5) as r:
    data = json.load(r)
result = data.get("data", {}).get("result", [])
if data.get("status") == "success" and result:
    print(result[0]["value"][1])
PY
}

live=""
for _ in $(seq 1 120); do
  live=$(query strata_live_bytes)
  [ -n "$live" ] && break
  sleep 0.5
done
cp "$WORK/prometheus.log" "$OUTPUTS/prometheus.log"
[ -n "$live" ] || fail "Prometheus has no strata_live_bytes after 60 s; its log:
$(tail -20 "$WORK/prometheus.log")"
echo "Prometheus: strata_live_bytes = $live"
python3 - "$live" <<'PY' || fail "strata_live_bytes = $live is not 64..128 MiB"
import sys
v = float(sys.argv[1])
sys.exit(0 if 64 * 2**20 <= v <= 128 * 2**20 else 1)
PY
up=$(query 'up{job="strata"}')
[ "$up" = 1 ] || fail "up{job=\"strata\"} = '$up'"
allocs=$(query strata_allocations_total)
[ -n "$allocs" ] || fail "no strata_allocations_total"
classes=$(query 'count(strata_size_class_live_bytes)')
[ -n "$classes" ] && [ "$classes" -gt 10 ] || fail "per-class series: '$classes'"
echo "Prometheus: up=1, strata_allocations_total=$allocs, $classes size-class series"
