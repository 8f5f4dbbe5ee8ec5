// tests/tracking/misuse_report_test.cc: misuse reports name their frames.
//
// With the tracking layer linked (as in libstrata.so and //alloc:malloc),
// an error report's stack starts at the function that made the bad call
// (strata's own frames dropped from the top) and names every frame, the
// way the leak report does: "#0 0x... in user_code::FreeTwice() (module+0x...)".
// Each case runs in a forked child (the report aborts it).
#include <string>

#include <gtest/gtest.h>

#include "alloc/strata.h"
#include "alloc/tracking/tracker.h"
#include "tests/hardening/child.h"

// Outside namespace strata (whose frames the report drops).
namespace user_code {
__attribute__((noinline)) void FreeTwice() {
  void* p = strata::Allocate(48);
  strata::Free(p);
  strata::Free(p);
  asm volatile("" ::: "memory");  // not a tail call
}

__attribute__((noinline)) void FreeAStackAddress() {
  alignas(64) char local[64];
  void* volatile p = local;
  strata::Free(p);
  asm volatile("" ::: "memory");
}
}  // namespace user_code

namespace strata::tracking {
namespace {

using strata::testing::ChildResult;
using strata::testing::Mode;

// The report's first symbolized frame is `function`, and no frame before
// it (raw or named) is strata's.
void ExpectNamedCaller(const ChildResult& r, const char* kind, const char* function) {
  ASSERT_TRUE(r.Aborted()) << r.Describe();
  EXPECT_NE(r.err.find(kind), std::string::npos) << r.Describe();
  const std::size_t at = r.err.find("\nstrata:   at 0x");
  ASSERT_NE(at, std::string::npos) << r.Describe();
  const std::size_t first = r.err.find("\nstrata:     #0 0x", at);
  ASSERT_NE(first, std::string::npos) << "no symbolized frames\n" << r.Describe();
  const std::size_t eol = r.err.find('\n', first + 1);
  const std::string line = r.err.substr(first + 1, eol - first - 1);
  EXPECT_NE(line.find(std::string(" in ") + function), std::string::npos) << line << "\n" << r.Describe();
  EXPECT_NE(line.find("+0x"), std::string::npos) << "no module+offset: " << line;
  // No frame of the report's stacks names strata's internals.
  const std::string stacks = r.err.substr(at);
  EXPECT_EQ(stacks.find("strata::internal::"), std::string::npos) << r.Describe();
  EXPECT_EQ(stacks.find("strata::Free"), std::string::npos) << r.Describe();
}

TEST(MisuseReport, DoubleFreeNamesTheCallerNotTheAllocator) {
  ChildResult r = strata::testing::RunInChild([] { user_code::FreeTwice(); }, Mode::kHardened);
  ExpectNamedCaller(r, "strata: double free: pointer 0x", "user_code::FreeTwice()");
  std::printf("%s", r.err.c_str());  // the report, for the test log
}

TEST(MisuseReport, InvalidFreeNamesTheCaller) {
  ChildResult r = strata::testing::RunInChild([] { user_code::FreeAStackAddress(); }, Mode::kNormal);
  ExpectNamedCaller(r, "strata: invalid free", "user_code::FreeAStackAddress()");
}

}  // namespace
}  // namespace strata::tracking
