// tests/profile/go_pprof.h: runs `go tool pprof -top` (Debian golang-go)
// on a profile and parses its table, for tests that check that a real
// reader reads strata's profiles with names.
//
// go tool pprof cannot symbolize C++ itself: the names it prints come from
// the profile's Function entries. When `go` is missing the callers FAIL
// (CI installs golang-go through tools/setup.sh).
#ifndef STRATA_TESTS_PROFILE_GO_PPROF_H_
#define STRATA_TESTS_PROFILE_GO_PPROF_H_

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace strata::testing {

inline std::string FindGo() {
  for (const char* p : {"/usr/bin/go", "/usr/lib/go/bin/go", "/usr/local/go/bin/go"}) {
    if (access(p, X_OK) == 0) return p;
  }
  return "";
}

inline std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

struct TopLine {
  double flat_pct;
  std::string name;
};

// Data lines of `pprof -top`: "flat flat% sum% cum cum% name...".
inline std::vector<TopLine> ParseTop(const std::string& text) {
  std::vector<TopLine> out;
  std::istringstream in(text);
  std::string line;
  bool in_table = false;
  while (std::getline(in, line)) {
    if (line.find("flat%") != std::string::npos) {
      in_table = true;
      continue;
    }
    if (!in_table) continue;
    std::istringstream f(line);
    std::string flat, flat_pct, sum_pct, cum, cum_pct;
    if (!(f >> flat >> flat_pct >> sum_pct >> cum >> cum_pct)) continue;
    std::string name;
    std::getline(f, name);
    name.erase(0, name.find_first_not_of(' '));
    out.push_back(TopLine{std::atof(flat_pct.c_str()), name});
  }
  return out;
}

// Runs `go tool pprof -top -sample_index=INDEX BINARY PROFILE` with its
// caches inside `dir` (a test's TEST_TMPDIR). Returns its exit status;
// *text gets its standard output, *err its standard error.
inline int RunGoPprofTop(const std::string& go, const std::string& dir, const std::string& sample_index,
                         const std::string& binary, const std::string& profile, std::string* text,
                         std::string* err) {
  // go writes to $HOME/.cache and $GOCACHE: keep both inside the sandbox.
  const std::string out_path = dir + "/top.txt";
  const std::string err_path = dir + "/top.err";
  const std::string cmd = "HOME='" + dir + "' GOCACHE='" + dir + "/gocache' XDG_CACHE_HOME='" + dir +
                          "/cache' PPROF_TMPDIR='" + dir + "/pprof' GOFLAGS= '" + go +
                          "' tool pprof -top -sample_index=" + sample_index + " '" + binary + "' '" + profile +
                          "' >'" + out_path + "' 2>'" + err_path + "'";
  const int rc = std::system(cmd.c_str());
  *text = Slurp(out_path);
  *err = cmd + "\n" + Slurp(err_path);
  return rc;
}

}  // namespace strata::testing

#endif  // STRATA_TESTS_PROFILE_GO_PPROF_H_
