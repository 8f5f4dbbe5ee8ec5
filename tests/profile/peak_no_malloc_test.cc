// tests/profile/peak_no_malloc_test.cc: the peak heap profile never calls
// malloc: neither its snapshots (taken inside the allocator, on sampled
// allocations that pass the peak) nor writing it. This binary interposes
// the malloc family and counts the test thread's calls while armed
// (tests/util/malloc_counter.h); allocations go through the engine's API.
// Not run under sanitizers (they own malloc).
#include <string>
#include <vector>

#include "alloc/heap_profiler.h"
#include "alloc/strata.h"
#include "alloc/tracking/peak_tracker.h"
#include "gtest/gtest.h"
#include "tests/util/malloc_counter.h"

namespace strata {
namespace {

TEST(PeakNoMalloc, SnapshotsAndWritingNeverCallMalloc) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string path = std::string(tmp != nullptr ? tmp : "/tmp") + "/peak.pb.gz";
  SetProfileSampleRate(1);  // every block sampled: a snapshot every MiB or 1/16 of growth
  ASSERT_EQ(WritePeakHeapProfile(path.c_str()), 0);  // first write opens zlib and the symbolizer (dlopen)
  tracking::ResetPeak();
  void* blocks[400];
  testing::t_malloc_calls = 0;
  testing::t_malloc_armed = true;
  for (void*& p : blocks) p = Allocate(64 << 10);  // 25 MiB: ~30 snapshots
  for (void* p : blocks) Free(p);
  const int written = WritePeakHeapProfile(path.c_str());
  const PeakHeapProfileSummary summary = GetPeakHeapProfileSummary();
  testing::t_malloc_armed = false;
  SetProfileSampleRate(512 * 1024);
  EXPECT_EQ(written, 0);
  EXPECT_EQ(testing::t_malloc_calls, 0);
  EXPECT_GE(summary.snapshots, 20u);
  EXPECT_GE(summary.profile.inuse_bytes, 23u << 20);
}

}  // namespace
}  // namespace strata
