// Multithreaded engine tests: producer/consumer hand-off (other threads free
// what one allocated), thread churn, and a many-thread mix, all with
// contents checked. 8+ threads on 2 cores, so preemption lands anywhere.
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "alloc/stats.h"
#include "alloc/strata.h"
#include "tests/alloc/test_util.h"

namespace strata {
namespace {

using testing::Check;
using testing::Fill;
using testing::Rng;

using Ring = testing::SpscRing<1024>;

struct Header {
  std::size_t size;
  std::uint64_t seed;
};

TEST(Threads, ProducerConsumerHandOff) {
  constexpr int kPairs = 4;
  const std::size_t per_producer = 400'000 / testing::kScale;
  std::vector<Ring> rings(kPairs);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kPairs; ++i) {
    threads.emplace_back([&, i] {
      Rng rng(i + 1);
      for (std::size_t n = 0; n < per_producer; ++n) {
        std::size_t size = sizeof(Header) + rng.Uniform(i == 0 ? 3000 : 200);
        auto* h = static_cast<Header*>(Allocate(size));
        if (h == nullptr) {
          failures.fetch_add(1);
          return;
        }
        h->size = size;
        h->seed = n;
        Fill(h + 1, size - sizeof(Header), n);
        while (!rings[i].Push(h)) std::this_thread::yield();
      }
    });
    threads.emplace_back([&, i] {
      for (;;) {
        void* p = rings[i].Pop();
        if (p == nullptr) {  // empty
          std::this_thread::yield();
          continue;
        }
        if (p == reinterpret_cast<void*>(1)) break;  // end marker
        auto* h = static_cast<Header*>(p);
        if (!Check(h + 1, h->size - sizeof(Header), h->seed)) failures.fetch_add(1);
        Free(h);
      }
    });
  }
  // Once a producer is done, its consumer gets the end marker.
  for (int i = 0; i < kPairs; ++i) threads[2 * i].join();
  for (int i = 0; i < kPairs; ++i) {
    while (!rings[i].Push(reinterpret_cast<void*>(1))) std::this_thread::yield();
  }
  for (int i = 0; i < kPairs; ++i) threads[2 * i + 1].join();
  EXPECT_EQ(failures.load(), 0);
}

TEST(Threads, ManyThreadsMixedSizesSharedPool) {
  constexpr int kThreads = 10;
  constexpr int kSlots = 4096;
  std::atomic<void*> slots[kSlots] = {};
  std::atomic<int> failures{0};
  const std::size_t ops = 300'000 / testing::kScale;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Rng rng(100 + t);
      for (std::size_t i = 0; i < ops; ++i) {
        std::size_t slot = rng.Uniform(kSlots);
        std::size_t size = rng.Uniform(16) == 0 ? 300000 + rng.Uniform(100000) : 16 + rng.Uniform(600);
        auto* h = static_cast<Header*>(Allocate(size));
        if (h == nullptr) {
          failures.fetch_add(1);
          return;
        }
        std::uint64_t seed = rng.Next();
        h->size = size;
        h->seed = seed;
        Fill(h + 1, size < 256 ? size - sizeof(Header) : 256 - sizeof(Header), seed);
        void* old = slots[slot].exchange(h, std::memory_order_acq_rel);
        if (old != nullptr) {
          auto* oh = static_cast<Header*>(old);
          std::size_t n = oh->size < 256 ? oh->size - sizeof(Header) : 256 - sizeof(Header);
          if (!Check(oh + 1, n, oh->seed)) failures.fetch_add(1);
          Free(old);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (auto& s : slots) Free(s.load());
  EXPECT_EQ(failures.load(), 0);
}

TEST(Threads, ThreadChurnReturnsCachesAndMemoryDoesNotGrow) {
  auto run_round = [] {
    std::vector<std::thread> threads;
    for (int t = 0; t < 16; ++t) {
      threads.emplace_back([t] {
        std::vector<void*> v;
        for (int i = 0; i < 2000; ++i) v.push_back(Allocate(16 + (i * 37 + t) % 2000));
        for (void* p : v) Free(p);
      });
    }
    for (auto& th : threads) th.join();
  };
  for (int i = 0; i < 5; ++i) run_round();
  Stats warm = GetStats();
  for (int i = 0; i < 40 / static_cast<int>(testing::kScale) + 2; ++i) run_round();
  Stats after = GetStats();
  EXPECT_LE(after.committed_bytes, warm.committed_bytes + (8u << 20));
  // Exited threads left nothing cached: only this thread's cache remains.
  EXPECT_LE(after.threads_with_cache, 2u);
}

}  // namespace
}  // namespace strata
