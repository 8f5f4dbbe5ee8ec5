// tests/profile/go_pprof_test.cc: a profile written by strata's writer,
// read by a real reader: `go tool pprof` (Debian golang-go).
//
// Known allocation sites: AllocA allocates three times the bytes of AllocB.
// Each allocation records its stack with absl::GetStackTrace, the samples
// are written with WriteHeapProfile, and `go tool pprof -top
// -sample_index=inuse_space` must list AllocA then AllocB with 75% / 25%.
// go tool pprof cannot symbolize C++ itself: the names it prints come from
// the profile's Function entries. When `go` is missing the test FAILS (CI
// installs golang-go through tools/setup.sh).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/debugging/stacktrace.h"
#include "absl/debugging/symbolize.h"
#include "alloc/profile/pprof_writer.h"
#include "tests/profile/go_pprof.h"
#include "gtest/gtest.h"

namespace strata::profile {
namespace {

constexpr int kMaxDepth = 64;
constexpr int kAllocations = 10;
constexpr std::size_t kSizeA = 3072;
constexpr std::size_t kSizeB = 1024;

struct Record {
  const void* pcs[kMaxDepth];
  int depth;
  std::size_t size;
};

std::vector<Record>* records = new std::vector<Record>();
std::vector<void*>* live = new std::vector<void*>();

// Records the stack of its caller. absl::GetStackTrace may or may not
// include this function's own frame; frames symbolizing to RecordSite are
// dropped below, so the leaf is the allocating function either way.
__attribute__((noinline)) void RecordSite(std::size_t size) {
  Record r;
  r.depth = absl::GetStackTrace(const_cast<void**>(r.pcs), kMaxDepth, 0);
  r.size = size;
  records->push_back(r);
  asm volatile("" ::: "memory");  // keep the call above from being a tail call
}

__attribute__((noinline)) void AllocA() {
  for (int i = 0; i < kAllocations; ++i) {
    void* p = std::malloc(kSizeA);
    live->push_back(p);
    RecordSite(kSizeA);
  }
  asm volatile("" ::: "memory");
}

__attribute__((noinline)) void AllocB() {
  for (int i = 0; i < kAllocations; ++i) {
    void* p = std::malloc(kSizeB);
    live->push_back(p);
    RecordSite(kSizeB);
  }
  asm volatile("" ::: "memory");
}

std::string Symbol(const void* pc) {
  char buf[1024];
  if (!absl::Symbolize(static_cast<const char*>(pc) - 1, buf, sizeof(buf))) {
    return "";
  }
  return buf;
}

using testing::FindGo;
using testing::ParseTop;
using testing::TopLine;

TEST(GoPprofTest, TopListsAllocAThenAllocBWithTheirShares) {
  const std::string go = FindGo();
  ASSERT_FALSE(go.empty())
      << "`go` not found (/usr/bin/go, /usr/lib/go/bin/go): install Debian's "
         "golang-go (tools/setup.sh does); this test needs go tool pprof";

  AllocA();
  AllocB();
  ASSERT_EQ(records->size(), 2u * kAllocations);

  std::vector<HeapSample> samples;
  for (Record& r : *records) {
    // Drop RecordSite's own frame if the unwinder reported it.
    int skip = 0;
    while (skip < r.depth &&
           Symbol(r.pcs[skip]).find("RecordSite") != std::string::npos) {
      ++skip;
    }
    ASSERT_LT(skip, r.depth);
    const std::string leaf = Symbol(r.pcs[skip]);
    ASSERT_TRUE(leaf.find("AllocA") != std::string::npos ||
                leaf.find("AllocB") != std::string::npos)
        << "unexpected leaf frame '" << leaf << "'";
    HeapSample s;
    s.stack = r.pcs + skip;
    s.depth = r.depth - skip;
    s.alloc_objects = s.inuse_objects = 1;
    s.alloc_bytes = s.inuse_bytes = r.size;
    samples.push_back(s);
  }

  const char* tmp = std::getenv("TEST_TMPDIR");
  ASSERT_NE(tmp, nullptr);
  const std::string dir = tmp;
  const std::string profile = dir + "/heap.pb.gz";
  ArraySampleSource source(samples.data(), samples.size());
  WriteOptions opts;
  opts.sample_period = 1;
  ASSERT_EQ(WriteHeapProfile(profile.c_str(), source, opts), 0);

  char exe[4096];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  ASSERT_GT(n, 0);
  exe[n] = '\0';

  std::string text, err;
  const int rc = testing::RunGoPprofTop(go, dir, "inuse_space", exe, profile, &text, &err);
  ASSERT_EQ(rc, 0) << "stdout:\n" << text << "\nstderr:\n" << err;

  const std::vector<TopLine> lines = ParseTop(text);
  ASSERT_GE(lines.size(), 2u) << text;
  EXPECT_NE(lines[0].name.find("AllocA"), std::string::npos) << text;
  EXPECT_NE(lines[1].name.find("AllocB"), std::string::npos) << text;
  EXPECT_NEAR(lines[0].flat_pct, 75.0, 0.01) << text;
  EXPECT_NEAR(lines[1].flat_pct, 25.0, 0.01) << text;
  EXPECT_NE(text.find("Type: inuse_space"), std::string::npos) << text;
  std::printf("go tool pprof -top:\n%s", text.c_str());
}

}  // namespace
}  // namespace strata::profile
