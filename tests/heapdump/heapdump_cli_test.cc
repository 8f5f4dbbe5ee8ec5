// tests/heapdump/heapdump_cli_test.cc: the heapdump binary end to end -
// each subcommand's output and exit status, and the error cases (missing,
// truncated, corrupt, foreign and empty inputs) with their messages.
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/heapdump/profile_fixtures.h"

extern char** environ;

namespace strata::heapdump {
namespace {

std::string TempPath(const std::string& name) {
  const char* d = std::getenv("TEST_TMPDIR");
  return std::string(d != nullptr ? d : "/tmp") + "/" + name;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteAll(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

std::string HeapdumpPath() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  if (srcdir != nullptr && workspace != nullptr) {
    return std::string(srcdir) + "/" + workspace + "/tools/heapdump/heapdump";
  }
  return "tools/heapdump/heapdump";
}

struct Result {
  int exit_code = -1;  // -1: killed by a signal
  int signal = 0;
  std::string out;
  std::string err;
};

Result RunHeapdump(std::vector<std::string> args) {
  static int counter = 0;
  const std::string out_path = TempPath("cli_out_" + std::to_string(counter));
  const std::string err_path = TempPath("cli_err_" + std::to_string(counter++));
  args.insert(args.begin(), HeapdumpPath());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid;
  Result r;
  const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(),
                             environ);
  posix_spawn_file_actions_destroy(&actions);
  EXPECT_EQ(rc, 0) << "cannot run " << argv[0];
  if (rc != 0) return r;
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status)) {
    r.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    r.signal = WTERMSIG(status);
  }
  r.out = ReadAll(out_path);
  r.err = ReadAll(err_path);
  return r;
}

class HeapdumpCliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_EQ(testing::WriteFixture("a", TempPath("a.pb.gz")), 0);
    ASSERT_EQ(testing::WriteFixture("b", TempPath("b.pb.gz")), 0);
    ASSERT_EQ(testing::WriteFixture("a", TempPath("a.pb"), false), 0);
    ASSERT_EQ(testing::WriteFixture("empty", TempPath("empty.pb.gz")), 0);
  }
};

TEST_F(HeapdumpCliTest, Help) {
  Result r = RunHeapdump({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("Usage:"), std::string::npos);
  EXPECT_NE(r.out.find("heapdump svg"), std::string::npos);
  r = RunHeapdump({"top", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("Usage:"), std::string::npos);
}

TEST_F(HeapdumpCliTest, UsageErrorsExitTwo) {
  Result r = RunHeapdump({});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("Usage:"), std::string::npos);
  r = RunHeapdump({"frobnicate", TempPath("a.pb.gz")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("unknown command 'frobnicate'"), std::string::npos);
  r = RunHeapdump({"top", "--bogus", TempPath("a.pb.gz")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("unknown option '--bogus'"), std::string::npos);
  r = RunHeapdump({"top", TempPath("a.pb.gz"), TempPath("b.pb.gz")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("top takes one profile FILE, got 2"), std::string::npos);
  r = RunHeapdump({"diff", TempPath("a.pb.gz")});
  EXPECT_EQ(r.exit_code, 2);
  r = RunHeapdump({"top", "-n", "many", TempPath("a.pb.gz")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("-n needs a count"), std::string::npos);
}

TEST_F(HeapdumpCliTest, TopRawAndGzippedAgree) {
  const Result gz = RunHeapdump({"top", TempPath("a.pb.gz")});
  const Result raw = RunHeapdump({"top", "-n", "3", TempPath("a.pb")});
  ASSERT_EQ(gz.exit_code, 0) << gz.err;
  ASSERT_EQ(raw.exit_code, 0) << raw.err;
  EXPECT_EQ(gz.err, "");
  EXPECT_EQ(gz.out.substr(0, gz.out.find("       1kB")),
            "Type: inuse_space\n"
            "Showing top 5 of 5 functions, accounting for 9kB (100.00%) of "
            "9kB total\n"
            "      flat   flat%    sum%        cum    cum%  function\n"
            "       4kB  44.44%  44.44%        4kB  44.44%  AllocA\n"
            "       4kB  44.44%  88.89%        4kB  44.44%  Cache<int, "
            "std::string>::Insert(K const&)\n");
  EXPECT_NE(raw.out.find("Showing top 3 of 5"), std::string::npos);
  const Result objects = RunHeapdump({"top", "--alloc_objects", "--cum",
                              TempPath("a.pb.gz")});
  ASSERT_EQ(objects.exit_code, 0);
  EXPECT_NE(objects.out.find("Type: alloc_objects"), std::string::npos);
  EXPECT_NE(objects.out.find("         0   0.00%   0.00%         20 100.00%  "
                             "main\n"),
            std::string::npos)
      << objects.out;
}

TEST_F(HeapdumpCliTest, Folded) {
  const Result r = RunHeapdump({"folded", "--inuse_objects", TempPath("a.pb.gz")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "main;AllocA 1\n"
            "main;Cache<int, std::string>::Insert(K const&) 4\n"
            "main;Work;AllocA 3\n"
            "main;Work;AllocB 2\n");
}

TEST_F(HeapdumpCliTest, DiffAndGrowthLimit) {
  const std::string a = TempPath("a.pb.gz");
  const std::string b = TempPath("b.pb.gz");
  Result r = RunHeapdump({"diff", a, b});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.substr(0, r.out.find("Showing")),
            "A: " + a + "\nB: " + b +
                "\nTotal inuse_space: 9kB -> 136kB (+127kB)\n"
                "Total inuse_objects: 10 -> 137 (+127)\n");
  EXPECT_NE(r.out.find("      +100kB        +100       100kB       100  Leak "
                       "<- Work <- main\n"),
            std::string::npos)
      << r.out;
  r = RunHeapdump({"diff", "--fail_on_growth=100k", a, b});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("GROWTH: inuse_space grew by 127kB, above the limit "
                       "100kB"),
            std::string::npos)
      << r.out;
  r = RunHeapdump({"diff", "--fail_on_growth", "1M", a, b});
  EXPECT_EQ(r.exit_code, 0);
  // Shrinking is never growth.
  r = RunHeapdump({"diff", "--fail_on_growth=0", b, a});
  EXPECT_EQ(r.exit_code, 0);
  // An empty baseline is fine for diff.
  r = RunHeapdump({"diff", TempPath("empty.pb.gz"), b});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("Total inuse_space: 0 -> 136kB (+136kB)"),
            std::string::npos)
      << r.out;
}

TEST_F(HeapdumpCliTest, SvgToFileAndStdout) {
  const std::string svg_path = TempPath("a.svg");
  Result r = RunHeapdump({"svg", TempPath("a.pb.gz"), "-o", svg_path});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string svg = ReadAll(svg_path);
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_NE(svg.find("<title>Heap flame graph: inuse_space</title>"),
            std::string::npos);
  EXPECT_NE(svg.find("<title>AllocB (1kB, 11.11%)</title>"), std::string::npos);
  r = RunHeapdump({"svg", "--alloc_space", "--title=My heap", "--width=800",
           TempPath("a.pb.gz")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("<title>My heap</title>"), std::string::npos);
  EXPECT_NE(r.out.find("width=\"800\""), std::string::npos);
  r = RunHeapdump({"svg", TempPath("a.pb.gz"), "-o", TempPath("no/such/dir/x.svg")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("x.svg: cannot write"), std::string::npos) << r.err;
}

void ExpectInputError(const std::vector<std::string>& args,
                      const std::string& path, const std::string& message) {
  const Result r = RunHeapdump(args);
  EXPECT_EQ(r.signal, 0) << "crashed with signal " << r.signal;
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("heapdump: " + path + ": " + message), std::string::npos)
      << "stderr was: " << r.err;
}

TEST_F(HeapdumpCliTest, MissingFile) {
  const std::string p = TempPath("nope.pb.gz");
  for (const char* cmd : {"top", "folded", "svg"}) {
    ExpectInputError({cmd, p}, p, "cannot open: No such file or directory");
  }
  ExpectInputError({"diff", TempPath("a.pb.gz"), p}, p, "cannot open");
}

TEST_F(HeapdumpCliTest, TruncatedFile) {
  const std::string gz = ReadAll(TempPath("a.pb.gz"));
  const std::string p = TempPath("truncated.pb.gz");
  WriteAll(p, gz.substr(0, gz.size() / 2));
  ExpectInputError({"top", p}, p, "truncated gzip stream");
  const std::string raw = ReadAll(TempPath("a.pb"));
  const std::string q = TempPath("truncated.pb");
  WriteAll(q, raw.substr(0, raw.size() - 3));
  ExpectInputError({"top", q}, q, "truncated or corrupt profile");
}

TEST_F(HeapdumpCliTest, CorruptGzip) {
  std::string gz = ReadAll(TempPath("a.pb.gz"));
  gz[gz.size() - 6] ^= 0x40;  // inside the CRC-32
  const std::string p = TempPath("corrupt.pb.gz");
  WriteAll(p, gz);
  ExpectInputError({"folded", p}, p, "corrupt gzip stream");
}

TEST_F(HeapdumpCliTest, ForeignFiles) {
  const std::string png = TempPath("image.png");
  WriteAll(png, std::string("\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10", 20));
  ExpectInputError({"top", png}, png,
                   "not a pprof profile (looks like a PNG image)");
  const std::string txt = TempPath("notes.txt");
  WriteAll(txt, "This is not a heap profile.\nJust text.\n");
  ExpectInputError({"svg", txt, "-o", TempPath("t.svg")}, txt,
                   "not a pprof profile (looks like a text file)");
  const std::string empty = TempPath("zero.pb");
  WriteAll(empty, "");
  ExpectInputError({"top", empty}, empty, "empty file");
  ExpectInputError({"top", TempPath("")}, TempPath(""),
                   "is a directory, not a profile");
}

TEST_F(HeapdumpCliTest, ProfileWithNoSamples) {
  const std::string p = TempPath("empty.pb.gz");
  for (const char* cmd : {"top", "folded", "svg"}) {
    ExpectInputError({cmd, p}, p, "profile has no samples");
  }
  const Result r = RunHeapdump({"diff", p, p});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("neither profile has samples"), std::string::npos);
}

TEST_F(HeapdumpCliTest, TruncationsNeverCrashTheTool) {
  const std::string gz = ReadAll(TempPath("b.pb.gz"));
  const std::string p = TempPath("cut.pb.gz");
  for (std::size_t n = 1; n < gz.size(); n += gz.size() / 25 + 1) {
    WriteAll(p, gz.substr(0, n));
    const Result r = RunHeapdump({"top", p});
    EXPECT_EQ(r.signal, 0) << n;
    EXPECT_EQ(r.exit_code, 2) << n << ": " << r.err;
  }
}

}  // namespace
}  // namespace strata::heapdump
