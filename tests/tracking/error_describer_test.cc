// tests/tracking/error_describer_test.cc: an error report about a tracked
// block ends with the stack that allocated it (the tracking layer installs
// the error describer of alloc/internal/errors.h).
//
// Each case runs in a forked child in hardened mode with every allocation
// tracked (SetTrackAll, as STRATA_LEAKCHECK=1 does): the block comes from a
// noinline function of this file, then the child misuses it. The parent
// checks the one-line report, the "allocated (tracked block ...) at" line
// and that the symbolized frames name that function. The parent never calls
// strata (each child starts from a fresh engine and picks hardened mode
// through the environment).
#include <cstdio>
#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "alloc/strata.h"
#include "alloc/tracking/tracker.h"
#include "tests/hardening/child.h"

// Outside namespace strata: the describer starts at the first frame that is
// not the allocator's (alloc/tracking/symbolize.h).
namespace user_code {
__attribute__((noinline)) void* AllocateAtDescribedSite(std::size_t n) {
  void* p = strata::Allocate(n);
  asm volatile("" ::"r"(p) : "memory");  // not a tail call
  return p;
}
}  // namespace user_code

namespace strata::tracking {
namespace {

using strata::testing::ChildResult;
using strata::testing::Mode;
using strata::testing::RunInChild;

void* volatile g_sink;

void ExpectAllocationStack(const ChildResult& r, const char* first_line, bool freed) {
  ASSERT_TRUE(r.Aborted()) << r.Describe();
  EXPECT_NE(r.err.find(first_line), std::string::npos) << r.Describe();
  const std::string header =
      std::string("\nstrata:   allocated (tracked block of 100 bytes") + (freed ? ", since freed" : "") + ") at 0x";
  EXPECT_NE(r.err.find(header), std::string::npos) << r.Describe();
  // The first symbolized frame is the test's own function.
  EXPECT_NE(r.err.find("\nstrata:     #0 0x"), std::string::npos) << r.Describe();
  const std::size_t site = r.err.find("user_code::AllocateAtDescribedSite");
  ASSERT_NE(site, std::string::npos) << r.Describe();
  const std::size_t line_start = r.err.rfind('\n', site);
  EXPECT_EQ(r.err.compare(line_start, 16, "\nstrata:     #0 "), 0) << r.Describe();
}

TEST(ErrorDescriber, DoubleFreeOfATrackedBlockShowsItsAllocationStack) {
  ChildResult r = RunInChild(
      [] {
        SetTrackAll(true);
        // Mode changes reach a thread at its next countdown crossing.
        strata::Free(strata::Allocate(16 << 20));
        void* p = user_code::AllocateAtDescribedSite(100);
        strata::Free(p);
        strata::Free(p);
      },
      Mode::kHardened);
  ExpectAllocationStack(r, "strata: double free: pointer 0x", true);
  std::printf("%s", r.err.c_str());  // the report, for the test log
}

TEST(ErrorDescriber, OverflowOfALiveTrackedBlockShowsItsAllocationStack) {
  ChildResult r = RunInChild(
      [] {
        SetTrackAll(true);
        strata::Free(strata::Allocate(16 << 20));
        auto* p = static_cast<unsigned char*>(user_code::AllocateAtDescribedSite(100));
        // Past the end: the canary bytes after the 100 requested.
        for (int i = 100; i < 104; ++i) p[i] = static_cast<unsigned char>(p[i] ^ 0x5a);
        g_sink = p;
        strata::Free(p);
      },
      Mode::kHardened);
  ExpectAllocationStack(r, "strata: heap overflow", false);
}

// An untracked block: no allocation stack is claimed.
TEST(ErrorDescriber, UntrackedBlockHasNoAllocationStack) {
  ChildResult r = RunInChild(
      [] {
        SetSampleRate(0);
        void* p = user_code::AllocateAtDescribedSite(100);
        strata::Free(p);
        strata::Free(p);
      },
      Mode::kHardened);
  ASSERT_TRUE(r.Aborted()) << r.Describe();
  EXPECT_NE(r.err.find("strata: double free: pointer 0x"), std::string::npos) << r.Describe();
  EXPECT_EQ(r.err.find("allocated (tracked block"), std::string::npos) << r.Describe();
}

}  // namespace
}  // namespace strata::tracking
