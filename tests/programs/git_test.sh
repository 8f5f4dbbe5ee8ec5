#!/usr/bin/env bash
# tests/programs/git_test.sh LIBSTRATA
#
# git (many short processes, zlib, threaded pack-objects) creates a
# repository with 20 commits of generated files, repacks it, clones it
# (--no-hardlinks, so every object is copied), and checks the clone with
# fsck; the log, trees and fsck output with strata preloaded must equal
# those on glibc's malloc. Dates and identities are fixed, so both runs
# produce the same object ids.
set -euo pipefail
source "${TEST_SRCDIR}/${TEST_WORKSPACE}/tests/programs/common.sh"

GIT=/usr/bin/git
require "$GIT" git
strata_setup "$1"

export GIT_AUTHOR_NAME="Strata Test" GIT_AUTHOR_EMAIL="test@strata.invalid"
export GIT_COMMITTER_NAME="Strata Test" GIT_COMMITTER_EMAIL="test@strata.invalid"
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
unset GIT_DIR GIT_WORK_TREE

run_git_scenario() {
  local label="$1" wrapper="$2"
  local dir="$WORK/$label"
  mkdir -p "$dir/home"
  export HOME="$dir/home"
  local start=$SECONDS
  (
    cd "$dir"
    "$wrapper" "$GIT" init -q -b main origin
    cd origin
    for c in $(seq 1 20); do
      export GIT_AUTHOR_DATE="2024-01-$(printf %02d "$c")T12:00:00Z"
      export GIT_COMMITTER_DATE="$GIT_AUTHOR_DATE"
      mkdir -p "dir$((c % 4))"
      for f in $(seq 1 40); do
        awk -v c="$c" -v f="$f" 'BEGIN {
          for (i = 0; i < 150; i++) printf "file %d line %d commit %d value %d\n", f, i, (i % 7 == 0 ? c : 0), (f * i * 2654435761) % 1000003
        }' > "dir$((f % 4))/file$f.txt"
      done
      [ $((c % 5)) -eq 0 ] && rm -f "dir1/file$c.txt"
      "$wrapper" "$GIT" add -A
      "$wrapper" "$GIT" commit -q -m "commit $c"
    done
    "$wrapper" "$GIT" gc -q
    cd ..
    "$wrapper" "$GIT" clone -q --no-hardlinks origin clone
    cd clone
    "$wrapper" "$GIT" fsck --full --strict --no-progress 2>&1
    "$wrapper" "$GIT" log --format='%H %T %an %ad %s' --date=iso-strict
    "$wrapper" "$GIT" ls-tree -r HEAD
    "$wrapper" "$GIT" diff --stat HEAD~10 HEAD
    "$wrapper" "$GIT" grep -c 'commit 13 ' HEAD~7 | sort
    "$wrapper" "$GIT" rev-list --objects --all | sort | sha256sum
  ) > "$dir.out" 2> "$dir.err" || {
    cat "$dir.err"
    fail "git scenario failed ($label)"
  }
  echo "$label: $(wc -l < "$dir.out") lines of output in $((SECONDS - start)) s"
}

run_git_scenario glibc without_strata
run_git_scenario strata with_strata
[ "$(grep -c '^[0-9a-f]\{40\} ' "$WORK/strata.out")" -ge 20 ] || fail "git log is missing commits"
compare_outputs git "$WORK/glibc.out" "$WORK/strata.out"
compare_outputs git-stderr "$WORK/glibc.err" "$WORK/strata.err"
# Dozens of git processes ran preloaded; every one that exited normally
# reported.
strata_check_report 20
