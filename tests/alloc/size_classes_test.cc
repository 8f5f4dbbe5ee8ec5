#include "alloc/internal/size_classes.h"

#include <gtest/gtest.h>

namespace strata::internal {
namespace {

TEST(SizeClasses, EverySizeMapsToTheTightestClassWithBoundedWaste) {
  int prev = 1;
  for (std::size_t n = 0; n <= kMaxSmallSize; ++n) {
    int c = SizeToClass(n);
    ASSERT_GE(c, 1) << n;
    ASSERT_LT(c, kNumClasses) << n;
    std::size_t s = ClassSize(c);
    ASSERT_GE(s, n) << "round trip fails for " << n;
    if (n > 0 && c > 1) ASSERT_LT(ClassSize(c - 1), n) << "class not tightest for " << n;
    ASSERT_GE(c, prev) << "not monotonic at " << n;
    if (n > 128) ASSERT_LE((s - n) * 8, n) << "waste above 12.5% for " << n;
    prev = c;
  }
  EXPECT_EQ(ClassSize(SizeToClass(kMaxSmallSize)), kMaxSmallSize);
}

TEST(SizeClasses, ClassSizesAreSixteenAlignedAndPowersOfTwoAreClasses) {
  for (int c = 1; c < kNumClasses; ++c) EXPECT_EQ(ClassSize(c) % 16, 0u) << c;
  for (std::size_t p = 16; p <= kMaxSmallSize; p *= 2) EXPECT_EQ(ClassSize(SizeToClass(p)), p);
}

TEST(SizeClasses, SpansHoldBatchesAndWasteLittle) {
  for (int c = 1; c < kNumClasses; ++c) {
    const SizeClassInfo& i = ClassInfo(c);
    std::size_t bytes = static_cast<std::size_t>(i.span_slices) * kSliceSize;
    EXPECT_EQ(i.objects, bytes / i.size) << c;
    // Big classes may take single-object spans and batches of one; the
    // others hold kMinObjectsPerSpan objects and move at least two.
    const bool few = i.size > kFewObjectsAbove;
    EXPECT_GE(i.objects, few ? 1u : static_cast<std::uint32_t>(kMinObjectsPerSpan)) << c;
    EXPECT_GE(i.batch, few ? 1 : 2) << c;
    EXPECT_GE(i.objects, i.batch) << c;
    EXPECT_LE((bytes - i.objects * i.size) * 8, bytes) << c;
    EXPECT_LE(i.span_slices, kSlicesPerSegment / 2) << c;
  }
}

}  // namespace
}  // namespace strata::internal
