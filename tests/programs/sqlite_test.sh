#!/usr/bin/env bash
# tests/programs/sqlite_test.sh LIBSTRATA
#
# The sqlite3 shell builds a database of a million rows, indexes, updates,
# deletes, aggregates, checks integrity and vacuums it, with its lookaside
# allocator off (-lookaside 0 0) so that every small allocation reaches
# malloc. Query output with strata preloaded must equal the output on
# glibc's malloc.
set -euo pipefail
source "${TEST_SRCDIR}/${TEST_WORKSPACE}/tests/programs/common.sh"

SQLITE=/usr/bin/sqlite3
require "$SQLITE" sqlite3
strata_setup "$1"

cat > "$WORK/script.sql" <<'SQL'
.bail on
PRAGMA cache_size = -65536;
CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER NOT NULL, v TEXT NOT NULL);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000)
INSERT INTO t
  SELECT x, (x * 7919) % 100003,
         printf('row-%08d-', x) || substr('abcdefghijklmnopqrstuvwxyz', x % 26 + 1, x % 13 + 1)
  FROM c;
CREATE INDEX t_k ON t(k);
CREATE INDEX t_v ON t(v);
SELECT count(*), sum(k), min(v), max(v), total(length(v)) FROM t;
SELECT k, count(*) AS n FROM t GROUP BY k ORDER BY n DESC, k LIMIT 10;
SELECT id, k, v FROM t WHERE k BETWEEN 500 AND 505 ORDER BY k, id;
UPDATE t SET v = upper(v) WHERE id % 3 = 0;
DELETE FROM t WHERE id % 10 = 0;
SELECT count(*), sum(length(v)) FROM t;
SELECT group_concat(v, ',') FROM (SELECT v FROM t ORDER BY v DESC LIMIT 20);
CREATE TABLE agg AS SELECT k % 100 AS b, count(*) AS n, sum(id) AS s FROM t GROUP BY b;
SELECT * FROM agg ORDER BY b LIMIT 25;
SELECT a.b, a.n, count(*) FROM agg a JOIN t ON t.k % 100 = a.b WHERE t.id < 20000
  GROUP BY a.b ORDER BY a.b LIMIT 10;
SELECT v FROM t ORDER BY substr(v, 10) DESC, id LIMIT 5;
PRAGMA integrity_check;
VACUUM;
SELECT count(*), sum(id) FROM t;
SQL

run_sqlite() {
  local label="$1" wrapper="$2"
  rm -f "$WORK/$label.db"
  local start=$SECONDS
  "$wrapper" "$SQLITE" -lookaside 0 0 "$WORK/$label.db" < "$WORK/script.sql" \
    > "$WORK/$label.out" 2> "$WORK/$label.err" || {
      cat "$WORK/$label.err"
      fail "sqlite3 failed ($label)"
    }
  echo "$label: $(wc -l < "$WORK/$label.out") lines of output in $((SECONDS - start)) s"
}

run_sqlite glibc without_strata
run_sqlite strata with_strata
grep -qx 'ok' "$WORK/strata.out" || fail "integrity_check did not report ok"
grep -q '^1000000|' "$WORK/strata.out" || fail "the table does not hold a million rows"
compare_outputs sqlite-queries "$WORK/glibc.out" "$WORK/strata.out"
compare_outputs sqlite-stderr "$WORK/glibc.err" "$WORK/strata.err"
strata_check_report 1
