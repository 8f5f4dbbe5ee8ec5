// Tests for concurrency/epoch/collector.h: the EBR invariants, one at a
// time, with deterministic interleavings.
#include "concurrency/epoch/collector.h"

#include <atomic>
#include <cstdint>
#include <memory>
#include <new>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "tests/concurrency/test_util.h"

namespace strata::epoch {
namespace {

using internal::kBagCapacity;

static_assert(std::is_trivially_destructible_v<Collector>);
static_assert(!std::is_copy_constructible_v<Collector::Guard>);
static_assert(std::is_nothrow_move_constructible_v<Collector::Guard>);
static_assert(std::is_nothrow_move_assignable_v<Collector::Guard>);

constinit Collector g_constinit_collector;  // must compile: constinit

// Deleter that counts into the std::atomic<int> passed as ctx.
void CountFree(void*, void* ctx) { static_cast<std::atomic<int>*>(ctx)->fetch_add(1); }

// Runs Collect() a few times (each tries two advances).
void CollectN(Collector& c, int n = 4) {
  for (int i = 0; i < n; ++i) c.Collect();
}

// A thread that pins `c` and holds the pin until told to let go.
class PinnedThread {
 public:
  explicit PinnedThread(Collector& c) {
    thread_ = std::thread([this, &c] {
      auto guard = c.Pin();
      pinned_epoch_ = c.CurrentEpoch();
      pinned_.store(true);
      while (!unpin_.load()) std::this_thread::yield();
      guard.Unpin();
      unpinned_.store(true);
      while (!exit_.load()) std::this_thread::yield();
    });
    while (!pinned_.load()) std::this_thread::yield();
  }
  ~PinnedThread() {
    Unpin();
    exit_.store(true);
    thread_.join();
  }
  void Unpin() {
    unpin_.store(true);
    while (!unpinned_.load()) std::this_thread::yield();
  }
  std::uint64_t pinned_epoch() const { return pinned_epoch_; }

 private:
  std::atomic<bool> pinned_{false}, unpin_{false}, unpinned_{false}, exit_{false};
  std::uint64_t pinned_epoch_ = 0;
  std::thread thread_;
};

TEST(EpochTest, RetireThenCollectFreesWhenNobodyIsPinned) {
  Collector c;
  std::atomic<int> freed{0};
  int obj = 0;
  c.Retire(&obj, &CountFree, &freed);
  EXPECT_EQ(freed.load(), 0);  // never freed inside Retire
  EXPECT_EQ(c.PendingForTesting(), 1u);
  const std::uint64_t e0 = c.CurrentEpoch();
  c.Collect();  // seals, advances twice, frees
  EXPECT_EQ(freed.load(), 1);
  EXPECT_EQ(c.PendingForTesting(), 0u);
  EXPECT_GE(c.CurrentEpoch(), e0 + 2);
}

TEST(EpochTest, DeleterReceivesPointerAndContext) {
  Collector c;
  struct Seen {
    void* ptr = nullptr;
    void* ctx = nullptr;
  };
  static Seen seen;
  int obj = 0, ctx = 0;
  c.Retire(&obj, [](void* p, void* x) { seen = {p, x}; }, &ctx);
  CollectN(c);
  EXPECT_EQ(seen.ptr, &obj);
  EXPECT_EQ(seen.ctx, &ctx);
}

// The core invariant: an object retired while another thread is pinned
// (in an epoch that is now old) is not freed, however often we collect,
// and the epoch moves at most one step past that thread's epoch. Once it
// unpins, the object is freed.
TEST(EpochTest, NotFreedWhileAThreadIsPinnedInAnOlderEpoch) {
  Collector c;
  std::atomic<int> freed{0};
  int obj = 0;
  {
    PinnedThread reader(c);
    const std::uint64_t e = reader.pinned_epoch();
    c.Retire(&obj, &CountFree, &freed);
    CollectN(c, 50);
    EXPECT_EQ(freed.load(), 0);
    EXPECT_LE(c.CurrentEpoch(), e + 1);  // one advance at most
    // Stamped at e or e+1, so it needs e+2 or e+3: unreachable while pinned.
    reader.Unpin();
    CollectN(c);
    EXPECT_EQ(freed.load(), 1);
  }
}

// Two advances are needed, not one: garbage sealed at epoch e survives the
// advance to e+1 (allowed while the reader is pinned at e).
TEST(EpochTest, OneAdvanceIsNotEnough) {
  Collector c;
  std::atomic<int> freed{0};
  int obj = 0;
  c.Collect();  // create the core
  PinnedThread reader(c);
  const std::uint64_t e = c.CurrentEpoch();
  ASSERT_EQ(reader.pinned_epoch(), e);
  c.Retire(&obj, &CountFree, &freed);
  c.Collect();  // seals at e; advances to e+1 only (reader is at e)
  EXPECT_EQ(c.CurrentEpoch(), e + 1);
  EXPECT_EQ(freed.load(), 0);
  reader.Unpin();
  c.Collect();  // e+1 -> e+2 (and e+3): now freed
  EXPECT_EQ(freed.load(), 1);
}

TEST(EpochTest, EpochAdvancesOnlyWhenEveryPinnedThreadHasSeenIt) {
  Collector c;
  c.Collect();
  PinnedThread a(c);
  const std::uint64_t e = c.CurrentEpoch();
  CollectN(c, 10);
  EXPECT_EQ(c.CurrentEpoch(), e + 1);  // a was current at e, not at e+1
  PinnedThread b(c);                   // pinned at e+1
  EXPECT_EQ(b.pinned_epoch(), e + 1);
  CollectN(c, 10);
  EXPECT_EQ(c.CurrentEpoch(), e + 1);  // a blocks
  a.Unpin();
  CollectN(c, 10);
  EXPECT_EQ(c.CurrentEpoch(), e + 2);  // b (at e+1) blocks the next one
  b.Unpin();
  CollectN(c, 1);
  EXPECT_GE(c.CurrentEpoch(), e + 4);
}

TEST(EpochTest, PinningNestsAndGuardsMove) {
  Collector c;
  EXPECT_FALSE(c.IsPinnedForTesting());
  {
    auto outer = c.Pin();
    EXPECT_TRUE(outer.pinned());
    {
      auto inner = c.Pin();
      EXPECT_TRUE(c.IsPinnedForTesting());
    }
    EXPECT_TRUE(c.IsPinnedForTesting());  // inner exit does not unpin
    Collector::Guard moved = std::move(outer);
    EXPECT_FALSE(outer.pinned());
    EXPECT_TRUE(moved.pinned());
    EXPECT_TRUE(c.IsPinnedForTesting());
    Collector::Guard assigned;
    EXPECT_FALSE(assigned.pinned());
    assigned = std::move(moved);
    EXPECT_TRUE(c.IsPinnedForTesting());
    assigned.Unpin();
    EXPECT_FALSE(assigned.pinned());
    EXPECT_FALSE(c.IsPinnedForTesting());
    assigned.Unpin();  // idempotent
  }
  EXPECT_FALSE(c.IsPinnedForTesting());
}

// The collecting thread's own pin also protects: a thread pinned while it
// retires cannot free the object until it unpins.
TEST(EpochTest, OwnPinBlocksTheSecondAdvance) {
  Collector c;
  std::atomic<int> freed{0};
  int obj = 0;
  {
    auto guard = c.Pin();
    c.Retire(&obj, &CountFree, &freed);
    CollectN(c, 10);
    EXPECT_EQ(freed.load(), 0);
  }
  c.Collect();
  EXPECT_EQ(freed.load(), 1);
}

// A thread exiting with a partial bag hands it over; the garbage is freed
// by another thread's collection.
TEST(EpochTest, ThreadExitingWithGarbageHandsItOver) {
  Collector c;
  std::atomic<int> freed{0};
  static int objs[10];
  std::thread t([&] {
    for (int& o : objs) c.Retire(&o, &CountFree, &freed);
  });
  t.join();
  EXPECT_EQ(c.PendingForTesting(), 10u);  // sealed onto the global list
  CollectN(c);
  EXPECT_EQ(freed.load(), 10);
  EXPECT_EQ(c.PendingForTesting(), 0u);
}

// A thread that exits while pinned (its Guard is never destroyed) is
// unpinned by its exit hook, so reclamation does not stall.
TEST(EpochTest, ThreadExitingWhilePinnedDoesNotStallReclamation) {
  Collector c;
  std::atomic<int> freed{0};
  int obj = 0;
  alignas(Collector::Guard) static unsigned char leaked_guard[sizeof(Collector::Guard)];
  std::thread t([&] {
    new (leaked_guard) Collector::Guard(c.Pin());  // never destroyed
    EXPECT_TRUE(c.IsPinnedForTesting());
  });
  t.join();
  const std::uint64_t e = c.CurrentEpoch();
  c.Retire(&obj, &CountFree, &freed);
  CollectN(c);
  EXPECT_EQ(freed.load(), 1);
  EXPECT_GE(c.CurrentEpoch(), e + 2);
}

// Short-lived threads that each retire a little and exit, with nobody
// collecting explicitly (a thread per request that frees one tracked
// block): each new bag first frees what expired, so the garbage handed
// over by exited threads stays bounded instead of growing with every
// thread started.
TEST(EpochTest, ShortLivedThreadsDoNotAccumulateGarbage) {
  constexpr int kThreads = 400;
  Collector c;
  std::atomic<int> freed{0};
  static int objs[kThreads][2];
  for (auto& pair : objs) {
    std::thread t([&] {
      for (int& o : pair) c.Retire(&o, &CountFree, &freed);
    });
    t.join();
  }
  EXPECT_LE(c.PendingForTesting(), 8u);
  EXPECT_GE(freed.load(), 2 * kThreads - 8);
  CollectN(c);
  EXPECT_EQ(freed.load(), 2 * kThreads);
}

// The collection a fresh bag starts with runs deleters; one that retires
// (a structure freeing its children) opens a bag meanwhile, and that bag
// must be the one the first retire then fills, not be replaced and lost.
struct Parent {
  Collector* c;
  std::atomic<int>* freed;
  int child;
};
void FreeParentRetiringChild(void* ptr, void*) {
  auto* parent = static_cast<Parent*>(ptr);
  parent->freed->fetch_add(1);
  parent->c->Retire(&parent->child, &CountFree, parent->freed);
}

TEST(EpochTest, RetireFromADeleterDuringAFreshBagsCollectionIsKept) {
  Collector c;
  std::atomic<int> freed{0};
  static Parent parents[3];
  std::thread t([&] {
    for (Parent& parent : parents) {
      parent = {&c, &freed, 0};
      c.Retire(&parent, &FreeParentRetiringChild);
    }
  });
  t.join();  // the parents are handed over, sealed; this thread has no bag
  // Threads that each retire one object into a fresh bag, until one of
  // their collections has freed the parents.
  static int obj;
  int rounds = 0;
  for (; rounds < 4 && freed.load() < 3; ++rounds) {
    std::thread([&] { c.Retire(&obj, &CountFree, &freed); }).join();
  }
  CollectN(c, 8);
  EXPECT_EQ(c.PendingForTesting(), 0u);
  // The 3 parents, their 3 children, and obj once per round.
  EXPECT_EQ(freed.load(), 6 + rounds);
}

// Records are reused: many short-lived threads do not grow the registry.
TEST(EpochTest, ParticipantRecordsAreReused) {
  Collector c;
  std::atomic<int> freed{0};
  static int objs[50];
  for (int& o : objs) {
    std::thread t([&] {
      auto g = c.Pin();
      c.Retire(&o, &CountFree, &freed);
    });
    t.join();
  }
  CollectN(c);
  EXPECT_EQ(freed.load(), 50);
  // Not observable through the public API beyond "it works"; the registry
  // test checks the record count directly.
}

TEST(EpochTest, CollectorsAreIndependent) {
  Collector c1, c2;
  std::atomic<int> freed1{0}, freed2{0};
  int a = 0, b = 0;
  PinnedThread reader(c1);
  c1.Retire(&a, &CountFree, &freed1);
  c2.Retire(&b, &CountFree, &freed2);
  CollectN(c1);
  CollectN(c2);
  EXPECT_EQ(freed1.load(), 0);  // c1 has a pinned reader
  EXPECT_EQ(freed2.load(), 1);  // c2 does not care about c1's pins
  reader.Unpin();
  CollectN(c1);
  EXPECT_EQ(freed1.load(), 1);
}

TEST(EpochTest, GlobalAndConstinitCollectorsWork) {
  std::atomic<int> freed{0};
  int a = 0, b = 0;
  {
    auto g = GlobalCollector().Pin();
    GlobalCollector().Retire(&a, &CountFree, &freed);
  }
  g_constinit_collector.Retire(&b, &CountFree, &freed);
  CollectN(GlobalCollector());
  CollectN(g_constinit_collector);
  EXPECT_EQ(freed.load(), 2);
}

// Deleters run during collection may retire more garbage (and pin).
struct ChainCtx {
  Collector* c;
  std::atomic<int>* freed;
  int remaining;
};
void RetireNext(void*, void* ctx) {
  auto* chain = static_cast<ChainCtx*>(ctx);
  chain->freed->fetch_add(1);
  if (--chain->remaining > 0) {
    auto g = chain->c->Pin();
    chain->c->Retire(chain, &RetireNext, chain);
  }
}

TEST(EpochTest, DeleterMayRetireAgain) {
  Collector c;
  std::atomic<int> freed{0};
  ChainCtx chain{&c, &freed, 5};
  c.Retire(&chain, &RetireNext, &chain);
  for (int i = 0; i < 20 && freed.load() < 5; ++i) c.Collect();
  EXPECT_EQ(freed.load(), 5);
  EXPECT_EQ(c.PendingForTesting(), 0u);
}

// Retiring more than a bag seals bags and collects automatically, without
// any explicit Collect().
TEST(EpochTest, FullBagsAreCollectedAutomatically) {
  Collector c;
  std::atomic<int> freed{0};
  static int objs[10 * kBagCapacity];
  for (int& o : objs) {
    auto g = c.Pin();
    c.Retire(&o, &CountFree, &freed);
  }
  EXPECT_GT(freed.load(), 0);
  EXPECT_LE(c.PendingForTesting(), 3u * kBagCapacity);
  CollectN(c);
  EXPECT_EQ(freed.load(), static_cast<int>(10 * kBagCapacity));
}

// Readers that only pin (never retire) still drive reclamation: every
// kPinsPerCollect pins a thread tries to collect.
TEST(EpochTest, PinningAloneEventuallyCollects) {
  Collector c;
  std::atomic<int> freed{0};
  int obj = 0;
  std::thread t([&] {
    c.Retire(&obj, &CountFree, &freed);
    c.Collect();  // seal (and free, as nobody is pinned)
  });
  t.join();
  // Already freed by Collect above; now check pin-driven collection with a
  // fresh object sealed by a thread exit.
  EXPECT_EQ(freed.load(), 1);
  std::thread t2([&] { c.Retire(&obj, &CountFree, &freed); });
  t2.join();  // sealed at exit, not freed
  EXPECT_EQ(freed.load(), 1);
  for (std::uint32_t i = 0; i < 4 * internal::kPinsPerCollect && freed.load() < 2; ++i) {
    auto g = c.Pin();
  }
  EXPECT_EQ(freed.load(), 2);
}

// Garbage stays bounded once threads stop retiring: after a collection,
// only the idle threads' partial bags remain; after they exit, nothing.
TEST(EpochTest, GarbageIsBoundedOnceThreadsQuiesce) {
  constexpr int kThreads = 8;
  const int per_thread = static_cast<int>(1000 + kBagCapacity / 2);
  Collector c;
  std::atomic<int> freed{0};
  std::atomic<int> done{0};
  std::atomic<bool> let_go{false};
  auto objs = std::make_unique<int[]>(kThreads * per_thread);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        auto g = c.Pin();
        c.Retire(&objs[t * per_thread + i], &CountFree, &freed);
      }
      done.fetch_add(1);
      while (!let_go.load()) std::this_thread::yield();  // idle, not pinned
    });
  }
  while (done.load() < kThreads) std::this_thread::yield();
  CollectN(c);
  const std::size_t pending = c.PendingForTesting();
  EXPECT_LE(pending, static_cast<std::size_t>(kThreads) * kBagCapacity);
  EXPECT_EQ(pending + freed.load(), static_cast<std::size_t>(kThreads) * per_thread);
  let_go = true;
  for (auto& t : threads) t.join();
  CollectN(c);
  EXPECT_EQ(c.PendingForTesting(), 0u);
  EXPECT_EQ(freed.load(), kThreads * per_thread);
}

}  // namespace
}  // namespace strata::epoch
