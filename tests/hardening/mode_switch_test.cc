// tests/hardening/mode_switch_test.cc: changing the sampling rate or
// switching full tracking on or off at run time keeps hardened mode
// hardened. The regression: the calling thread's refresh reset its
// allocation countdown like normal mode does, so the next allocation took
// the fast path and popped an encoded free-list link as a pointer (a
// crash). Checked in a hardened child: after each switch, allocations and
// frees still work and still take the checked path (a double free is
// still caught at once).
#include <csignal>
#include <cstdint>
#include <cstring>
#include <unistd.h>

#include <gtest/gtest.h>

#include "alloc/internal/hooks.h"
#include "alloc/strata.h"
#include "tests/hardening/child.h"

namespace strata {
namespace {

using testing::ChildResult;
using testing::Mode;
using testing::RunInChild;

// Allocations of a few classes, written and freed; returns false on a
// block that is not usable.
bool Churn() {
  void* blocks[64];
  for (int round = 0; round < 50; ++round) {
    for (int i = 0; i < 64; ++i) {
      std::size_t n = 16 + static_cast<std::size_t>((i * 37 + round) % 700);
      blocks[i] = Allocate(n);
      if (blocks[i] == nullptr) return false;
      std::memset(blocks[i], i, n);
    }
    for (void* p : blocks) Free(p);
  }
  return true;
}

void SwitchAndChurn(void (*change)()) {
  Free(Allocate(16));  // the thread's cache exists before the switch
  change();
  if (!Churn()) _exit(2);
  // Still hardened: a double free is reported at once (abort).
  void* p = Allocate(48);
  Free(p);
  Free(p);
  _exit(3);  // not reached in hardened mode
}

void ExpectStillHardened(const ChildResult& r) {
  EXPECT_TRUE(r.signaled && r.signal == SIGABRT) << r.Describe();
  EXPECT_NE(r.err.find("strata: double free"), std::string::npos) << r.err;
}

TEST(HardenedModeSwitch, SampleRateChange) {
  ExpectStillHardened(RunInChild([] { SwitchAndChurn([] { internal::SetSampleRate(std::int64_t{1} << 19); }); },
                                 Mode::kHardened));
}

TEST(HardenedModeSwitch, TrackAllOnAndOff) {
  ExpectStillHardened(RunInChild(
      [] {
        SwitchAndChurn([] {
          internal::SetTrackAll(true);
          internal::SetTrackAll(false);
        });
      },
      Mode::kHardened));
}

}  // namespace
}  // namespace strata
