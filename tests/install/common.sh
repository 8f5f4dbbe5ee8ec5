# tests/install/common.sh: sourced by the scripts here. Sets ROOT (the
# strata checkout) and defines fail (prints "<script>: FAIL: ..." and exits
# 1), step (progress line) and need (fails unless each named tool exists).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TEST_NAME="$(basename "$0" .sh)"
fail() {
  echo "$TEST_NAME: FAIL: $*" >&2
  exit 1
}
step() { echo "$TEST_NAME: $*" >&2; }
need() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool not found (tools/setup.sh installs it)"
  done
}
