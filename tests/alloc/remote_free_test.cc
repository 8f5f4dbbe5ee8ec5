// Owner-returned frees (alloc/internal/remote_free.h), in a build with them
// (--config=owner_frees; elsewhere every test skips): a block freed by a thread that does not own
// it goes back to its owner; to an exited owner it stays with the freeing
// thread; nothing is lost when owners exit or the process forks while
// frees are in flight; statistics stay exact throughout; a double free
// into a remote batch is reported.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <set>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "alloc/internal/errors.h"
#include "alloc/internal/remote_free.h"
#include "alloc/internal/thread_cache.h"
#include "alloc/stats.h"
#include "alloc/strata.h"
#include "tests/alloc/test_util.h"

namespace strata {
namespace {

using internal::ClassSize;
using internal::SizeToClass;

constexpr std::size_t kSize = 48;

using SpscRing = testing::SpscRing<512>;

SizeClassStats ClassStats(std::size_t size) {
  const Stats s = GetStats();
  return s.size_classes[SizeToClass(size) - 1];
}

class RemoteFree : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!internal::kOwnerFreesBuilt) GTEST_SKIP() << "owner frees are not built in: bazel test --config=owner_frees";
  }
};

TEST_F(RemoteFree, OnInThisBuild) {
  Free(Allocate(16));  // process init
  ASSERT_TRUE(internal::g_owner_frees);
  EXPECT_NE(internal::tls_cache.owner_slot, 0u);
}

// A live owner gets its blocks back: after another thread frees them, the
// owner's next allocations of the class return exactly those blocks (the
// tcmalloc-style design would have left them in the freeing thread).
TEST_F(RemoteFree, ToLiveOwnerComesBack) {
  constexpr int kBlocks = 2000;
  std::vector<void*> blocks;
  std::atomic<int> phase{0};
  std::vector<void*> again;
  std::set<void*> owned;  // blocks whose slice names the owner when freed
  std::thread owner([&] {
    FlushThreadCache();
    for (int i = 0; i < kBlocks; ++i) blocks.push_back(Allocate(kSize));
    for (void* p : blocks) {
      const auto entry = internal::g_class_map.GetEntry(reinterpret_cast<std::uintptr_t>(p));
      if (internal::EntryOwner(entry) == internal::tls_cache.owner_slot) owned.insert(p);
    }
    phase.store(1);
    while (phase.load() != 2) std::this_thread::yield();
    // Empty the list of the class first, so the next allocations drain the
    // inbox rather than pop what the list held before.
    FlushThreadCache();
    for (int i = 0; i < kBlocks; ++i) again.push_back(Allocate(kSize));
    phase.store(3);
    while (phase.load() != 4) std::this_thread::yield();
    for (void* p : again) Free(p);
  });
  while (phase.load() != 1) std::this_thread::yield();
  std::thread freer([&] {
    const int c = SizeToClass(kSize);
    const std::uint64_t sent_before = internal::tls_cache.remote[c].sent;
    for (void* p : blocks) Free(p);
    // Every block the owner owned left this thread for its owner (a
    // default build would have kept them in this thread's list).
    EXPECT_GE(internal::tls_cache.remote[c].sent - sent_before, owned.size());
    FlushThreadCache();  // posts the last partial batch
  });
  freer.join();
  phase.store(2);
  while (phase.load() != 3) std::this_thread::yield();
  int returned = 0;
  for (void* p : again) returned += owned.count(p) != 0 ? 1 : 0;
  // Most blocks come from spans the refills gave the owner (a first-tier
  // batch another thread left may hold blocks of other owners').
  EXPECT_GE(owned.size(), static_cast<std::size_t>(kBlocks) * 9 / 10);
  // FlushThreadCache drained the inbox into the lists before flushing them
  // to the central pool, whose first tier hands the whole batches back; the
  // partial remainder goes to the spans, which may hand out other free
  // blocks first: nearly every owned block comes back.
  EXPECT_GE(returned, static_cast<int>(owned.size()) * 95 / 100);
  phase.store(4);
  owner.join();
}

// Without the flush, the owner's next miss drains its inbox directly.
TEST_F(RemoteFree, OwnerDrainsInboxOnMiss) {
  constexpr int kBlocks = 256;
  std::vector<void*> blocks;
  std::atomic<int> phase{0};
  int returned = 0;
  std::thread owner([&] {
    FlushThreadCache();
    for (int i = 0; i < kBlocks; ++i) blocks.push_back(Allocate(kSize));
    phase.store(1);
    while (phase.load() != 2) std::this_thread::yield();
    std::set<void*> freed(blocks.begin(), blocks.end());
    std::vector<void*> again;
    for (int i = 0; i < kBlocks; ++i) again.push_back(Allocate(kSize));
    for (void* p : again) returned += freed.count(p) != 0 ? 1 : 0;
    for (void* p : again) Free(p);
  });
  while (phase.load() != 1) std::this_thread::yield();
  std::thread freer([&] {
    for (void* p : blocks) Free(p);
    FlushThreadCache();
  });
  freer.join();
  phase.store(2);
  owner.join();
  // The owner's list of the class was empty after its allocations (it held
  // only what its refills carved), so its first miss takes the inbox.
  EXPECT_GE(returned, kBlocks - static_cast<int>(internal::ClassInfo(SizeToClass(kSize)).batch));
}

// A thread that allocates the class itself keeps another thread's blocks
// it frees (sending them back would only make it refill: larson, mstress),
// and takes their slices, so its next frees there are fast.
TEST_F(RemoteFree, AllocatingThreadKeepsAndAdopts) {
  constexpr int kBlocks = 500;
  std::vector<void*> blocks;
  std::atomic<int> phase{0};
  std::thread owner([&] {
    for (int i = 0; i < kBlocks; ++i) blocks.push_back(Allocate(kSize));
    phase.store(1);
    while (phase.load() != 2) std::this_thread::yield();
  });
  while (phase.load() != 1) std::this_thread::yield();
  std::thread other([&] {
    void* mine = Allocate(kSize);  // this thread allocates the class
    for (void* p : blocks) Free(p);
    for (void* p : blocks) {
      const auto entry = internal::g_class_map.GetEntry(reinterpret_cast<std::uintptr_t>(p));
      EXPECT_EQ(internal::EntryOwner(entry), internal::tls_cache.owner_slot);
    }
    // Nothing was sent: the blocks are in this thread's list.
    EXPECT_EQ(internal::tls_cache.remote[SizeToClass(kSize)].sent, 0u);
    Free(mine);
  });
  other.join();
  phase.store(2);
  owner.join();
}

// An exited owner: its blocks, freed later by another thread, stay with
// that thread (adopted), are reusable, and are counted as freed.
TEST_F(RemoteFree, ToExitedOwnerIsAdopted) {
  constexpr int kBlocks = 3000;
  const SizeClassStats before = ClassStats(kSize);
  std::vector<void*> blocks;
  std::thread owner([&] {
    for (int i = 0; i < kBlocks; ++i) {
      void* p = Allocate(kSize);
      testing::Fill(p, kSize, static_cast<std::uint64_t>(i));
      blocks.push_back(p);
    }
  });
  owner.join();
  EXPECT_EQ(ClassStats(kSize).live_objects - before.live_objects, kBlocks);
  std::thread freer([&] {
    for (int i = 0; i < kBlocks; ++i) {
      ASSERT_TRUE(testing::Check(blocks[i], kSize, static_cast<std::uint64_t>(i)));
      Free(blocks[i]);
    }
    FlushThreadCache();
    EXPECT_EQ(ClassStats(kSize).live_objects, before.live_objects);
    // The adopted slices are this thread's now: a block freed again takes
    // the fast path (its entry names this thread).
    void* p = Allocate(kSize);
    const auto entry = internal::g_class_map.GetEntry(reinterpret_cast<std::uintptr_t>(p));
    EXPECT_EQ(internal::EntryOwner(entry), internal::tls_cache.owner_slot);
    Free(p);
  });
  freer.join();
  EXPECT_EQ(ClassStats(kSize).live_objects, before.live_objects);
}

// Live bytes and per-class counts are exact at every step: blocks in a
// remote batch, in an inbox, and drained.
TEST_F(RemoteFree, StatsExactAcrossRemoteFrees) {
  constexpr int kBlocks = 1000;
  const std::size_t sizes[] = {16, 48, 200, 1024, 5000};
  std::vector<SizeClassStats> before;
  for (std::size_t s : sizes) before.push_back(ClassStats(s));
  const std::int64_t live_before = GetStats().live_bytes;
  std::vector<void*> blocks;
  std::atomic<int> phase{0};
  std::thread owner([&] {
    for (std::size_t s : sizes)
      for (int i = 0; i < kBlocks; ++i) blocks.push_back(Allocate(s));
    phase.store(1);
    while (phase.load() != 2) std::this_thread::yield();
  });
  while (phase.load() != 1) std::this_thread::yield();
  std::int64_t expected_bytes = 0;
  for (std::size_t s : sizes) expected_bytes += static_cast<std::int64_t>(ClassSize(SizeToClass(s))) * kBlocks;
  EXPECT_EQ(GetStats().live_bytes - live_before, expected_bytes);
  std::thread freer([&] {
    // Half freed, not flushed: part in remote batches, part posted.
    for (std::size_t i = 0; i < blocks.size(); i += 2) Free(blocks[i]);
    for (std::size_t k = 0; k < std::size(sizes); ++k) {
      EXPECT_EQ(ClassStats(sizes[k]).live_objects - before[k].live_objects, kBlocks / 2) << sizes[k];
    }
    for (std::size_t i = 1; i < blocks.size(); i += 2) Free(blocks[i]);
    for (std::size_t k = 0; k < std::size(sizes); ++k) {
      const SizeClassStats now = ClassStats(sizes[k]);
      EXPECT_EQ(now.live_objects, before[k].live_objects) << sizes[k];
      EXPECT_EQ(now.live_bytes, before[k].live_bytes) << sizes[k];
    }
  });
  freer.join();
  EXPECT_EQ(GetStats().live_bytes, live_before);
  phase.store(2);
  owner.join();  // drains nothing, closes its slot: the inbox goes central
  EXPECT_EQ(GetStats().live_bytes, live_before);
  for (std::size_t k = 0; k < std::size(sizes); ++k) {
    EXPECT_EQ(ClassStats(sizes[k]).live_objects, before[k].live_objects) << sizes[k];
  }
}

// Owners exit while others free their blocks, round after round: no block
// is lost (live counts return to the start) and memory does not grow.
TEST_F(RemoteFree, OwnersExitWithFreesInFlight) {
  constexpr int kRounds = 40;
  constexpr int kOwners = 4;
  const int kBlocks = static_cast<int>(4000 / testing::kScale);
  const std::int64_t live_before = GetStats().live_bytes;
  std::size_t committed_mid = 0;
  for (int round = 0; round < kRounds; ++round) {
    std::vector<std::vector<void*>> owned(kOwners);
    std::atomic<int> ready{0};
    std::vector<std::thread> owners;
    for (int o = 0; o < kOwners; ++o) {
      owners.emplace_back([&, o] {
        testing::Rng rng(static_cast<std::uint64_t>(round * 31 + o + 1));
        for (int i = 0; i < kBlocks; ++i) owned[o].push_back(Allocate(16 + rng.Next() % 2000));
        ready.fetch_add(1);
        // Exit at once: the freers race with this thread's exit.
      });
    }
    while (ready.load() != kOwners) std::this_thread::yield();
    std::vector<std::thread> freers;
    for (int f = 0; f < kOwners; ++f) {
      freers.emplace_back([&, f] {
        for (void* p : owned[(f + 1) % kOwners]) Free(p);
      });
    }
    for (auto& t : owners) t.join();
    for (auto& t : freers) t.join();
    if (round == kRounds / 2) committed_mid = GetStats().committed_bytes;
  }
  EXPECT_EQ(GetStats().live_bytes, live_before);
  // Rounds repeat the same work: the second half needs no more memory than
  // the first half settled on (slack for one round's worth).
  EXPECT_LE(GetStats().committed_bytes, committed_mid + (std::size_t{16} << 20));
}

// fork() while threads post remote frees: the child keeps working (its own
// allocations and frees, including blocks whose owner is gone in the
// child), and the parent loses nothing.
TEST_F(RemoteFree, ForkWhileFreesInFlight) {
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  constexpr int kPairs = 2;
  std::vector<SpscRing> rings(kPairs);
  for (int i = 0; i < kPairs; ++i) {
    threads.emplace_back([&, i] {  // producer (owner)
      while (!stop.load(std::memory_order_relaxed)) {
        void* p = Allocate(64);
        while (!rings[i].Push(p)) {
          if (stop.load(std::memory_order_relaxed)) {
            Free(p);
            return;
          }
          std::this_thread::yield();
        }
      }
    });
    threads.emplace_back([&, i] {  // consumer (remote freer)
      for (;;) {
        void* p = rings[i].Pop();
        if (p != nullptr) {
          Free(p);
        } else if (stop.load(std::memory_order_relaxed)) {
          return;
        } else {
          std::this_thread::yield();
        }
      }
    });
  }
  for (int f = 0; f < 5; ++f) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    // Blocks of a live thread's, freed in the child, where that thread (and
    // its inbox) does not exist.
    std::vector<void*> foreign;
    std::thread owner([&] {
      for (int i = 0; i < 100; ++i) foreign.push_back(Allocate(16 + i * 8));
    });
    owner.join();
    std::vector<void*> foreign_live;
    std::atomic<int> phase{0};
    std::thread live_owner([&] {
      for (int i = 0; i < 100; ++i) foreign_live.push_back(Allocate(16 + i * 8));
      phase.store(1);
      while (phase.load() != 2) std::this_thread::yield();
    });
    while (phase.load() != 1) std::this_thread::yield();
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      // No threads here (a sanitizer refuses them after a threaded fork).
      for (void* p : foreign) Free(p);
      for (void* p : foreign_live) Free(p);
      std::vector<void*> mine;
      for (int i = 0; i < 20000; ++i) mine.push_back(Allocate(16 + i % 3000));
      for (void* p : mine) Free(p);
      for (int i = 0; i < 20000; ++i) Free(Allocate(64));
      FlushThreadCache();
      _exit(GetStats().live_bytes >= 0 ? 0 : 1);
    }
    for (void* p : foreign) Free(p);
    for (void* p : foreign_live) Free(p);
    phase.store(2);
    live_owner.join();
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status)) << status;
    EXPECT_EQ(WEXITSTATUS(status), 0);
  }
  stop.store(true);
  for (auto& t : threads) t.join();
  for (auto& r : rings) {
    while (void* p = r.Pop()) Free(p);
  }
}

// Normal mode: a block freed twice in a row into one remote batch is
// reported at once, and the batch stays intact.
std::atomic<int> g_double_frees{0};
void CountDoubleFree(internal::ErrorKind kind, const void*, std::size_t, const char*) {
  if (kind == internal::ErrorKind::kDoubleFree) g_double_frees.fetch_add(1);
}

TEST_F(RemoteFree, DoubleFreeIntoBatchReported) {
  std::vector<void*> blocks;
  std::thread owner([&] {
    for (int i = 0; i < 8; ++i) blocks.push_back(Allocate(kSize));
  });
  owner.join();  // exited: the batch will be adopted when posted
  std::atomic<bool> live{true};
  std::vector<void*> live_blocks;
  std::atomic<int> phase{0};
  std::thread live_owner([&] {
    for (int i = 0; i < 8; ++i) live_blocks.push_back(Allocate(kSize));
    phase.store(1);
    while (live.load()) std::this_thread::yield();
  });
  while (phase.load() != 1) std::this_thread::yield();
  g_double_frees.store(0);
  internal::ErrorHook old = internal::SetErrorHook(&CountDoubleFree);
  std::thread freer([&] {
    Free(live_blocks[0]);
    Free(live_blocks[1]);
    Free(live_blocks[1]);  // the batch's head, freed again
    for (int i = 2; i < 8; ++i) Free(live_blocks[i]);
    FlushThreadCache();
  });
  freer.join();
  internal::SetErrorHook(old);
  EXPECT_EQ(g_double_frees.load(), 1);
  live.store(false);
  live_owner.join();
  for (void* p : blocks) Free(p);
}

// Many threads free each other's blocks at random, with contents checked:
// the stress for the inboxes (every thread is owner and poster at once).
TEST_F(RemoteFree, ManyThreadsCrossFreeStress) {
  constexpr int kThreads = 8;
  const int kOps = static_cast<int>(200000 / testing::kScale);
  std::vector<SpscRing> rings(kThreads * kThreads);
  std::atomic<int> failures{0};
  std::atomic<int> done{0};
  const std::int64_t live_before = GetStats().live_bytes;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      testing::Rng rng(static_cast<std::uint64_t>(t) + 7);
      auto drain = [&] {
        for (int from = 0; from < kThreads; ++from) {
          SpscRing& r = rings[from * kThreads + t];
          while (void* p = r.Pop()) {
            auto* h = static_cast<std::uint64_t*>(p);
            if (!testing::Check(h + 2, h[0] - 16, h[1])) failures.fetch_add(1);
            Free(p);
          }
        }
      };
      for (int i = 0; i < kOps; ++i) {
        const std::size_t size = 32 + rng.Next() % 700;
        auto* h = static_cast<std::uint64_t*>(Allocate(size));
        h[0] = size;
        h[1] = rng.Next();
        testing::Fill(h + 2, size - 16, h[1]);
        const int to = static_cast<int>(rng.Next() % kThreads);
        if (to == t || !rings[t * kThreads + to].Push(h)) {
          Free(h);
        }
        if (i % 64 == 0) drain();
      }
      done.fetch_add(1);
      while (done.load() != kThreads) {
        drain();
        std::this_thread::yield();
      }
      drain();
    });
  }
  for (auto& t : threads) t.join();
  for (auto& r : rings) {
    while (void* p = r.Pop()) Free(p);
  }
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(GetStats().live_bytes, live_before);
}

}  // namespace
}  // namespace strata
