// False sharing between threads' small objects (Hoard's cache-thrash and
// cache-scratch patterns): two threads' objects must not share a 64-byte
// line when
//   * several fresh threads allocate the same classes at the same time
//     (active: their refills carve the same span), and
//   * each fresh thread first frees an object another thread allocated,
//     next to the other threads' objects, and then allocates (passive: a
//     cache that kept the foreign object would hand it straight back);
// and few lines hold two threads' objects after threads tore down working
// sets at the same moments (what one hands back in slow start, others
// take).
// Every thread keeps what it allocated until all are checked, so no object
// is reused between threads during a round.
//
// Fresh threads' first objects are also kept apart by more than a line
// (central_pool.h kCarveSeparation, 256 bytes): lines a few apart still
// interfere through the cores' prefetchers.
#include <algorithm>
#include <barrier>
#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "alloc/strata.h"

namespace strata {
namespace {

constexpr std::size_t kLine = 64;
constexpr std::size_t kSeparation = 256;
constexpr std::size_t kSizes[] = {8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 160};
constexpr int kNumSizes = sizeof(kSizes) / sizeof(kSizes[0]);
constexpr int kThreads = 4;
constexpr int kRounds = 4;

// The aligned blocks of `unit` bytes that the object of `size` bytes at
// `p` touches.
std::set<std::uintptr_t> Blocks(const void* p, std::size_t size, std::size_t unit = kLine) {
  const auto start = reinterpret_cast<std::uintptr_t>(p);
  std::set<std::uintptr_t> blocks;
  for (std::uintptr_t l = start / unit; l <= (start + size - 1) / unit; ++l) blocks.insert(l);
  return blocks;
}

std::set<std::uintptr_t> Lines(const void* p, std::size_t size) { return Blocks(p, size); }

// Fails the test for every pair of objects of different owners that share
// an aligned block of `unit` bytes (a line by default). objects[t][k]:
// thread t's object of size kSizes[k].
void ExpectNoSharedLines(const std::vector<std::vector<void*>>& objects, const char* what,
                         std::size_t unit = kLine) {
  for (int k = 0; k < kNumSizes; ++k) {
    for (std::size_t a = 0; a < objects.size(); ++a) {
      for (std::size_t b = a + 1; b < objects.size(); ++b) {
        std::set<std::uintptr_t> la = Blocks(objects[a][k], kSizes[k], unit);
        for (std::uintptr_t l : Blocks(objects[b][k], kSizes[k], unit)) {
          EXPECT_EQ(la.count(l), 0u) << what << ": size " << kSizes[k] << ": threads " << a << " and "
                                     << b << " share a " << unit << "-byte block (" << objects[a][k]
                                     << ", " << objects[b][k] << ")";
        }
      }
    }
  }
}

// Runs fn(t) on kThreads fresh threads that start together, and joins them.
template <typename Fn>
void OnFreshThreads(Fn fn) {
  std::barrier start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      fn(t);
    });
  }
  for (auto& th : threads) th.join();
}

void FreeAll(std::vector<std::vector<void*>>& objects) {
  for (auto& per_thread : objects) {
    for (void* p : per_thread) Free(p);
  }
}

TEST(FalseSharingTest, ConcurrentFreshThreadsGetTheirOwnLines) {
  // The main thread takes a few objects of every size first, so that the
  // carving position in each span is not at a line boundary.
  std::vector<void*> mine;
  for (std::size_t size : kSizes) {
    for (int i = 0; i < 3; ++i) mine.push_back(Allocate(size));
  }
  for (int round = 0; round < kRounds; ++round) {
    std::vector<std::vector<void*>> objects(kThreads, std::vector<void*>(kNumSizes));
    OnFreshThreads([&](int t) {
      for (int k = 0; k < kNumSizes; ++k) {
        objects[t][(k + t) % kNumSizes] = Allocate(kSizes[(k + t) % kNumSizes]);
      }
    });
    ExpectNoSharedLines(objects, "concurrent allocation");
    ExpectNoSharedLines(objects, "concurrent allocation", kSeparation);
    FreeAll(objects);
  }
  for (void* p : mine) Free(p);
}

TEST(FalseSharingTest, FreedForeignObjectIsNotReusedByTheFreeingThread) {
  for (int round = 0; round < kRounds; ++round) {
    // Allocated here, size-major and thread-minor: the objects handed to
    // different workers share lines.
    std::vector<std::vector<void*>> given(kThreads, std::vector<void*>(kNumSizes));
    for (int k = 0; k < kNumSizes; ++k) {
      for (int t = 0; t < kThreads; ++t) given[t][k] = Allocate(kSizes[k]);
    }
    std::vector<std::vector<void*>> objects(kThreads, std::vector<void*>(kNumSizes));
    OnFreshThreads([&](int t) {
      for (int k = 0; k < kNumSizes; ++k) Free(given[t][k]);
      for (int k = 0; k < kNumSizes; ++k) objects[t][k] = Allocate(kSizes[k]);
    });
    ExpectNoSharedLines(objects, "after freeing a foreign object");
    // And no worker got a line of the objects handed over (those lines
    // were written by the main thread and by the other workers).
    for (int k = 0; k < kNumSizes; ++k) {
      std::set<std::uintptr_t> given_lines;
      for (int t = 0; t < kThreads; ++t) {
        for (std::uintptr_t l : Lines(given[t][k], kSizes[k])) given_lines.insert(l);
      }
      for (int t = 0; t < kThreads; ++t) {
        for (std::uintptr_t l : Lines(objects[t][k], kSizes[k])) {
          EXPECT_EQ(given_lines.count(l), 0u)
              << "size " << kSizes[k] << ": thread " << t << " reuses a handed-over line";
        }
      }
    }
    FreeAll(objects);
  }
}

TEST(FalseSharingTest, ThreadsTearingDownTogetherKeepTheirOwnLines) {
  // Fresh threads build and tear down working sets of one class at the
  // same moments (a teardown overflows each thread's list while it is in
  // slow start), then take a working set again and keep it. Blocks one
  // thread handed back must not have become another's: a line holding two
  // threads' live objects is written by both for as long as they live.
  constexpr std::size_t kSize = 32;
  constexpr int kCount = 3000;
  constexpr int kTeardowns = 3;
  std::vector<std::vector<void*>> sets(kThreads, std::vector<void*>(kCount));
  std::barrier phase(kThreads);
  OnFreshThreads([&](int t) {
    for (int r = 0; r <= kTeardowns; ++r) {
      for (void*& p : sets[t]) {
        p = Allocate(kSize);
        EXPECT_NE(p, nullptr);  // no ASSERT: the others wait at the barrier
        if (p != nullptr) *static_cast<volatile char*>(p) = static_cast<char>(t);
      }
      phase.arrive_and_wait();
      if (r == kTeardowns) break;  // the last set stays live
      // Torn down in an order unrelated to the allocation's (a tree's, a
      // hash table's), so that neighbours leave in different batches.
      std::shuffle(sets[t].begin(), sets[t].end(), std::mt19937(t * 7919 + r));
      for (void* p : sets[t]) Free(p);
      phase.arrive_and_wait();
    }
  });
  std::map<std::uintptr_t, int> owner;  // line -> thread (-1: two threads)
  for (int t = 0; t < kThreads; ++t) {
    for (void* p : sets[t]) {
      if (p == nullptr) continue;
      for (std::uintptr_t l : Lines(p, kSize)) {
        auto [it, inserted] = owner.emplace(l, t);
        if (!inserted && it->second != t) it->second = -1;
      }
    }
  }
  std::size_t shared = 0;
  for (const auto& [line, t] : owner) shared += t == -1;
  // Some sharing remains (what slow start still hands back, batches
  // ending mid-line): 0-9% of the lines in 12 runs on 2 CPUs. A slow start
  // that handed back the whole list at every overflow shared 33-50%.
  EXPECT_LE(shared, owner.size() / 5) << shared << " of " << owner.size()
                                      << " lines hold live objects of two threads";
  for (auto& set : sets) {
    for (void* p : set) Free(p);
  }
}

}  // namespace
}  // namespace strata
