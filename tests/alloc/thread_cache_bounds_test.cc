// Thread-cache capacity (alloc/internal/thread_cache.h): a thread that
// builds and tears down a working set of small objects keeps that set in
// its own list, up to kMaxSmallListBytes per class; a big class keeps at
// most kMaxListBytes; and all of a thread's lists together stay within
// kMaxThreadCacheBytes. Each case runs on a fresh thread and reads the
// statistics before that thread exits (an exiting thread flushes its cache).
#include <cstddef>
#include <cstdint>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "alloc/internal/size_classes.h"
#include "alloc/internal/thread_cache.h"
#include "alloc/stats.h"
#include "alloc/strata.h"

namespace strata {
namespace {

// Bytes cached in thread caches for the class of `size` (all threads).
std::size_t CachedBytesOfClass(std::size_t size) {
  const Stats s = GetStats();
  const int c = internal::SizeToClass(size);
  return s.size_classes[c - 1].thread_cache_bytes;  // entry 0 is class 1
}

// Allocates `count` blocks of `size` bytes, writes them, frees them in
// allocation order (a container's teardown); `rounds` times.
void Cycle(std::size_t size, std::size_t count, int rounds) {
  std::vector<void*> blocks(count);
  for (int r = 0; r < rounds; ++r) {
    for (auto& p : blocks) {
      p = Allocate(size);
      ASSERT_NE(p, nullptr);
      *static_cast<volatile char*>(p) = 1;
    }
    for (void* p : blocks) Free(p);
  }
}

TEST(ThreadCacheBounds, ASmallClassKeepsATeardownsWorthOfObjects) {
  // 24000 blocks of 48 bytes: 1.1 MiB a round, more than the old 256 KiB
  // per list and a little more than the small-class bound.
  constexpr std::size_t kSize = 48;
  ASSERT_LE(kSize, internal::kSmallListClassBytes);
  const std::size_t before = CachedBytesOfClass(kSize);
  std::size_t during = 0;
  std::thread([&] {
    Cycle(kSize, 24000, 12);
    during = CachedBytesOfClass(kSize);
  }).join();
  const std::size_t kept = during - before;
  EXPECT_GE(kept, internal::kMaxSmallListBytes * 3 / 4) << "the list did not grow past " << kept;
  EXPECT_LE(kept, internal::kMaxSmallListBytes + kSize) << "the list grew past its bound";
}

TEST(ThreadCacheBounds, ABigClassListStaysWithinItsBound) {
  constexpr std::size_t kSize = 4096;
  ASSERT_GT(kSize, internal::kSmallListClassBytes);
  const std::size_t before = CachedBytesOfClass(kSize);
  std::size_t during = 0;
  std::thread([&] {
    Cycle(kSize, 100, 12);  // 400 KiB a round: would fit a small-class list
    during = CachedBytesOfClass(kSize);
  }).join();
  const std::size_t kept = during - before;
  EXPECT_GT(kept, 0u);
  EXPECT_LE(kept, internal::kMaxListBytes + kSize);
}

TEST(ThreadCacheBounds, AllListsTogetherStayWithinTheThreadBound) {
  // Five small classes, each cycling more than its own bound: together they
  // would hold 5 MiB without the thread bound.
  const std::size_t sizes[] = {64, 128, 256, 512, 1024};
  const Stats before = GetStats();
  Stats during{};
  std::size_t largest_list = 0;
  std::thread([&] {
    for (int pass = 0; pass < 3; ++pass) {
      for (std::size_t size : sizes) Cycle(size, (std::size_t{1} << 20) / size + 1000, 4);
    }
    during = GetStats();
    for (std::size_t size : sizes) {
      const int c = internal::SizeToClass(size);
      const std::size_t list = during.size_classes[c - 1].thread_cache_bytes -
                               before.size_classes[c - 1].thread_cache_bytes;
      if (list > largest_list) largest_list = list;
    }
  }).join();
  const std::size_t kept = during.thread_cache_bytes - before.thread_cache_bytes;
  EXPECT_LE(kept, internal::kMaxThreadCacheBytes + 5 * 1024) << "the thread bound was exceeded";
  // The bound is used: the thread keeps close to it, and its lists are not
  // all held to the big-class bound.
  EXPECT_GE(kept, internal::kMaxThreadCacheBytes / 2);
  EXPECT_GT(largest_list, internal::kMaxListBytes);
}

}  // namespace
}  // namespace strata
