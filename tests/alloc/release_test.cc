// Memory goes back: after everything is freed and ReleaseMemory() runs,
// committed bytes and RSS drop back near the baseline.
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "alloc/stats.h"
#include "alloc/strata.h"
#include "tests/alloc/test_util.h"

namespace strata {
namespace {

TEST(Release, CommittedBytesAndRssReturnToBaseline) {
  ReleaseMemory();
  Stats base = GetStats();
  std::size_t rss_base = testing::ResidentBytes();
  std::vector<void*> v;
  constexpr std::size_t kBytes = std::size_t{256} << 20;
  std::size_t total = 0;
  std::size_t i = 0;
  while (total < kBytes) {
    std::size_t n = (i % 4 == 0) ? 100000 : (i % 4 == 1 ? 64 : (i % 4 == 2 ? 3000 : (2u << 20)));
    void* p = Allocate(n);
    ASSERT_NE(p, nullptr);
    std::memset(p, 1, n);
    v.push_back(p);
    total += n;
    ++i;
  }
  Stats peak = GetStats();
  std::size_t rss_peak = testing::ResidentBytes();
  EXPECT_GE(peak.committed_bytes, base.committed_bytes + kBytes * 9 / 10);
  EXPECT_GE(rss_peak, rss_base + kBytes * 9 / 10);
  (void)rss_peak;
  for (void* p : v) Free(p);
  std::size_t released = ReleaseMemory();
  Stats after = GetStats();
  std::size_t rss_after = testing::ResidentBytes();
  EXPECT_GE(released, kBytes / 2);
  EXPECT_LE(after.committed_bytes, base.committed_bytes + (16u << 20))
      << "base " << base.committed_bytes << " peak " << peak.committed_bytes;
#if !defined(STRATA_SANITIZER_BUILD)
  // Sanitizers keep shadow memory for every page we touched: RSS only
  // means something without them.
  EXPECT_LE(rss_after, rss_base + (32u << 20)) << "base " << rss_base << " peak " << rss_peak;
#endif
}

}  // namespace
}  // namespace strata
