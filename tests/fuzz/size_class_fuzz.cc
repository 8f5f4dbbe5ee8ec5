// tests/fuzz/size_class_fuzz.cc: the size-class map for arbitrary sizes and
// alignments: SizeToClass is the tightest class, monotonic, with bounded
// waste; AlignedClass is the smallest aligned class that fits; the sized
// free range accepts every size of the class; HardenedClass leaves room
// for the trailer; GoodSize agrees with what Allocate hands out.
#include <cstdint>

#include "alloc/internal/hardening.h"
#include "alloc/internal/size_classes.h"
#include "alloc/strata.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace strata::internal;
  using strata::fuzz::Input;
  Input in(data, size);
  for (int i = 0; i < 64 && !in.empty(); ++i) {
    std::size_t n = in.Byte() % 2 == 0 ? in.Size() : in.Take<std::uint32_t>() % (kMaxSmallSize + 2);
    std::size_t align = std::size_t{1} << in.Below(24);
    if (n <= kMaxSmallSize) {
      int c = SizeToClass(n);
      FUZZ_CHECK(c >= 1 && c < kNumClasses);
      FUZZ_CHECK(ClassSize(c) >= n);
      FUZZ_CHECK(ClassSize(c) % 16 == 0);
      if (n > 0 && c > 1) FUZZ_CHECK(ClassSize(c - 1) < n);  // the tightest class
      if (n > 128) FUZZ_CHECK((ClassSize(c) - n) * 8 <= n);  // waste <= 12.5%
      if (n > 0) FUZZ_CHECK(SizeToClass(n - 1) <= c);        // monotonic
      FUZZ_CHECK(SizedFreeMatches(c, n));
      FUZZ_CHECK(SizedFreeMatches(c, ClassSize(c)));
      FUZZ_CHECK(!SizedFreeMatches(c, ClassSize(c) + 1));
      const SizeClassInfo& info = ClassInfo(c);
      FUZZ_CHECK(info.batch >= (info.size > kFewObjectsAbove ? 1 : 2) && info.batch <= info.objects);
      FUZZ_CHECK(static_cast<std::size_t>(info.objects) * info.size <=
                 static_cast<std::size_t>(info.span_slices) * kSliceSize);
      // Natural alignment of powers of two up to the page: the class is a
      // multiple of the size.
      if (n >= 16 && n <= 4096 && (n & (n - 1)) == 0) FUZZ_CHECK(ClassSize(c) % n == 0);
    }
    int a = AlignedClass(n, align);
    std::size_t need = n < align ? align : n;
    if (a != 0) {
      FUZZ_CHECK(ClassSize(a) >= need);
      FUZZ_CHECK(ClassSize(a) % align == 0);
      for (int c = SizeToClass(need); c < a; ++c) FUZZ_CHECK(ClassSize(c) % align != 0);  // smallest
    } else {
      FUZZ_CHECK(need > kMaxSmallSize || align > kSliceSize || ClassSize(kNumClasses - 1) % align != 0);
    }
    int h = HardenedClass(n, align > 16 ? align : 0);
    if (h != 0) {
      FUZZ_CHECK(ClassSize(h) >= n + kTrailerBytes);
      if (align > 16) FUZZ_CHECK(ClassSize(h) % align == 0);
    } else {
      // Powers of two up to 256 KiB are classes: a request that leaves room
      // for the trailer always has one when the alignment is modest.
      FUZZ_CHECK(!(n + kTrailerBytes <= kMaxSmallSize / 2 && align <= 4096));
    }
    std::size_t g = strata::GoodSize(n);
    FUZZ_CHECK(g >= n);
    if (n <= (std::size_t{1} << 22) && in.Byte() % 16 == 0) {
      void* p = strata::Allocate(n);
      FUZZ_CHECK(p != nullptr);
      FUZZ_CHECK(strata::UsableSize(p) == g);
      strata::FreeSized(p, n);
    }
  }
  return 0;
}
