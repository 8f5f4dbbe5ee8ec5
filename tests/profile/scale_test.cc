// tests/profile/scale_test.cc: unsampling of sampled heap data.
#include <cmath>
#include <cstdint>

#include "alloc/profile/pprof_writer.h"
#include "gtest/gtest.h"

namespace strata::profile {
namespace {

// The formula, independently: scale = 1 / (1 - exp(-s/R)), s = bytes/count.
double Scale(double count, double bytes, double stride) {
  return 1.0 / (1.0 - std::exp(-(bytes / count) / stride));
}

TEST(ScaleSampleTest, StrideOneOrLessMeansNoScaling) {
  for (std::int64_t stride : {1, 0, -5}) {
    const ScaledCounts s = ScaleSample(10, 12345, stride);
    EXPECT_EQ(s.objects, 10u);
    EXPECT_EQ(s.bytes, 12345u);
  }
}

TEST(ScaleSampleTest, EmptySitesStayEmpty) {
  EXPECT_EQ(ScaleSample(0, 0, 524288).objects, 0u);
  EXPECT_EQ(ScaleSample(0, 100, 524288).bytes, 100u);
  EXPECT_EQ(ScaleSample(3, 0, 524288).objects, 3u);
}

TEST(ScaleSampleTest, MatchesTheFormula) {
  struct Case {
    std::uint64_t count, bytes;
    std::int64_t stride;
  };
  const Case cases[] = {
      {1, 16, 512 * 1024},        // tiny objects: huge scale
      {100, 100 * 4096, 512 * 1024},
      {3, 3 * 1024 * 1024, 512 * 1024},  // objects bigger than the stride
      {7, 7 * 100, 100},
  };
  for (const Case& c : cases) {
    const double k = Scale(static_cast<double>(c.count),
                           static_cast<double>(c.bytes),
                           static_cast<double>(c.stride));
    const ScaledCounts s = ScaleSample(c.count, c.bytes, c.stride);
    EXPECT_NEAR(static_cast<double>(s.objects), c.count * k, 0.5 + 1e-9 * c.count * k);
    EXPECT_NEAR(static_cast<double>(s.bytes), c.bytes * k, 0.5 + 1e-9 * c.bytes * k);
    EXPECT_GE(s.objects, c.count);
    EXPECT_GE(s.bytes, c.bytes);
  }
}

TEST(ScaleSampleTest, KnownValue) {
  // s = R: scale = 1 / (1 - 1/e) = 1.5819767...
  const ScaledCounts s = ScaleSample(1000, 1000 * 4096, 4096);
  EXPECT_EQ(s.objects, 1582u);
  EXPECT_EQ(s.bytes, 6479777u);  // 4096000 * 1.5819767068693265 rounded
}

TEST(ScaleSampleTest, LargeObjectsBarelyScale) {
  // s >> R: every object is sampled; scale ~ 1.
  const ScaledCounts s = ScaleSample(5, 5 * (64 << 20), 512 * 1024);
  EXPECT_EQ(s.objects, 5u);
  EXPECT_EQ(s.bytes, 5u * (64 << 20));
}

TEST(ScaleSampleTest, SaturatesInsteadOfOverflowing) {
  const ScaledCounts s = ScaleSample(UINT64_MAX / 2, UINT64_MAX / 2, 1 << 30);
  EXPECT_EQ(s.objects, UINT64_MAX);
  EXPECT_EQ(s.bytes, UINT64_MAX);
}

TEST(ScaleHeapSampleTest, ScalesEachPairByItsOwnAverage) {
  HeapSample h;
  h.alloc_objects = 10;
  h.alloc_bytes = 10 * 64;
  h.inuse_objects = 2;
  h.inuse_bytes = 2 * 1024 * 1024;
  ScaleHeapSample(512 * 1024, &h);
  const ScaledCounts alloc = ScaleSample(10, 640, 512 * 1024);
  const ScaledCounts inuse = ScaleSample(2, 2 * 1024 * 1024, 512 * 1024);
  EXPECT_EQ(h.alloc_objects, alloc.objects);
  EXPECT_EQ(h.alloc_bytes, alloc.bytes);
  EXPECT_EQ(h.inuse_objects, inuse.objects);
  EXPECT_EQ(h.inuse_bytes, inuse.bytes);
  EXPECT_GT(h.alloc_objects, 8000u);  // 64-byte objects: scale ~ 8192
}

}  // namespace
}  // namespace strata::profile
