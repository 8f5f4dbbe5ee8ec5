// EBR under stress: readers traverse lock-free linked structures while
// writers unlink nodes and retire them. A reclaimed node is poisoned (its
// memory is kept, so a late reader sees the poison instead of crashing);
// every read checks the node, so a premature free shows up as a poisoned or
// inconsistent node. Under TSan the poisoning writes also race with any
// unprotected read, so TSan checks the same property through
// happens-before.
#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "concurrency/base/spin_lock.h"
#include "concurrency/epoch/collector.h"
#include "gtest/gtest.h"
#include "tests/concurrency/test_util.h"

namespace strata::epoch {
namespace {

constexpr std::uint64_t kLive = 0x11fe11fe11fe11feull;
constexpr std::uint64_t kDead = 0xdeaddeaddeaddeadull;
constexpr std::uint64_t kSalt = 0x5bd1e9955bd1e995ull;

struct Node {
  std::atomic<Node*> next{nullptr};
  // Plain fields: written before publication and by the poisoning deleter
  // only; read by readers under a pin.
  std::uint64_t magic = kLive;
  std::uint64_t value = 0;
  std::uint64_t check = kSalt;
};

// Owns every node ever allocated (nodes are never returned to malloc during
// a test, so poison stays visible) and counts reclamations.
class NodePool {
 public:
  explicit NodePool(std::size_t capacity)
      : nodes_(std::make_unique<Node[]>(capacity)), capacity_(capacity) {}

  Node* New(std::uint64_t value) {
    const std::size_t i = used_.fetch_add(1, std::memory_order_relaxed);
    if (i >= capacity_) return nullptr;
    Node* n = &nodes_[i];
    n->value = value;
    n->check = value ^ kSalt;
    n->magic = kLive;
    return n;
  }

  static void Poison(void* p, void* ctx) {
    auto* n = static_cast<Node*>(p);
    n->magic = kDead;
    n->value = ~std::uint64_t{0};
    n->check = 0;
    static_cast<NodePool*>(ctx)->freed_.fetch_add(1, std::memory_order_relaxed);
  }

  std::int64_t freed() const { return freed_.load(); }
  std::size_t used() const { return used_.load(); }

 private:
  std::unique_ptr<Node[]> nodes_;
  const std::size_t capacity_;
  std::atomic<std::size_t> used_{0};
  std::atomic<std::int64_t> freed_{0};
};

// True if `n` is a live, consistent node.
bool Valid(const Node* n) { return n->magic == kLive && (n->value ^ kSalt) == n->check; }

// The detector itself must be able to fail: free a node while a reader
// still holds it (what a broken collector would do) and check that the
// reader's check trips. Single-threaded, deterministic.
TEST(EpochStressTest, DetectorCatchesAPrematureFree) {
  NodePool pool(4);
  Collector c;
  std::atomic<Node*> head{pool.New(7)};
  auto guard = c.Pin();
  Node* seen = head.load(std::memory_order_acquire);
  EXPECT_TRUE(Valid(seen));
  head.store(nullptr, std::memory_order_release);  // unlink
  NodePool::Poison(seen, &pool);                     // premature free
  EXPECT_FALSE(Valid(seen));
}

// Writers serialised by a spin lock replace random nodes of a linked list
// with fresh copies (RCU style) and retire the old node; readers traverse
// the whole list without locks, sometimes yielding mid-traversal so they
// are preempted while holding references (2 cores, 8 threads).
//
// The run is split into rounds so memory stays bounded (nodes are never
// reused within a round, so that poison stays visible); the collector
// carries over from round to round.
void RunListRound(Collector& c, std::int64_t writes_per_writer) {
  constexpr int kReaders = 4;
  constexpr int kWriters = 4;
  constexpr int kLength = 32;
  NodePool pool(kLength + kWriters * writes_per_writer + 16);
  std::atomic<Node*> head{nullptr};
  for (int i = 0; i < kLength; ++i) {
    Node* n = pool.New(i);
    n->next.store(head.load(std::memory_order_relaxed), std::memory_order_relaxed);
    head.store(n, std::memory_order_release);
  }
  SpinLock writer_lock;
  std::atomic<bool> stop{false};
  std::atomic<std::int64_t> bad_reads{0}, reads{0};
  testing::StartGate gate;
  std::vector<std::thread> threads;
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&, r] {
      gate.Wait();
      std::uint64_t k = r;
      while (!stop.load(std::memory_order_relaxed)) {
        auto guard = c.Pin();
        int length = 0;
        for (Node* n = head.load(std::memory_order_acquire); n != nullptr;
             n = n->next.load(std::memory_order_acquire)) {
          if (!Valid(n)) bad_reads.fetch_add(1, std::memory_order_relaxed);
          ++length;
          if ((++k & 63) == 0) std::this_thread::yield();  // get preempted holding n
        }
        if (length != kLength) bad_reads.fetch_add(1, std::memory_order_relaxed);
        reads.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  std::atomic<std::int64_t> retired{0};
  std::atomic<int> writers_left{kWriters};
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      gate.Wait();
      std::uint64_t rng = 0x2545f4914f6cdd1dull * (w + 1);
      for (std::int64_t i = 0; i < writes_per_writer; ++i) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        const int pos = static_cast<int>(rng % kLength);
        Node* fresh = pool.New(rng);
        Node* old;
        {
          SpinLockHolder hold(&writer_lock);
          std::atomic<Node*>* link = &head;
          for (int p = 0; p < pos; ++p) link = &link->load(std::memory_order_relaxed)->next;
          old = link->load(std::memory_order_relaxed);
          fresh->next.store(old->next.load(std::memory_order_relaxed), std::memory_order_relaxed);
          // Release: publishes fresh's fields to readers' acquire loads.
          link->store(fresh, std::memory_order_release);  // old is unlinked
        }
        c.Retire(old, &NodePool::Poison, &pool);
        retired.fetch_add(1, std::memory_order_relaxed);
      }
      writers_left.fetch_sub(1);
    });
  }
  gate.Release();
  while (writers_left.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  stop = true;
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad_reads.load(), 0);
  EXPECT_GT(reads.load(), 0);
  // Everything retired is eventually reclaimed once threads are gone.
  for (int i = 0; i < 4; ++i) c.Collect();
  EXPECT_EQ(c.PendingForTesting(), 0u);
  EXPECT_EQ(pool.freed(), retired.load());
  // And nothing still linked was reclaimed.
  int length = 0;
  for (Node* n = head.load(); n != nullptr; n = n->next.load()) {
    EXPECT_TRUE(Valid(n));
    ++length;
  }
  EXPECT_EQ(length, kLength);
}

TEST(EpochStressTest, ReadersTraverseListWhileWritersReplaceAndRetire) {
  Collector c;
  const std::int64_t rounds = testing::Scaled(30);
  for (std::int64_t r = 0; r < rounds && !::testing::Test::HasFailure(); ++r) {
    RunListRound(c, 150000);
  }
}

// Fully lock-free: writers pop the head of a stack (CAS) and retire it,
// then push a fresh node; readers walk from the head. Popping reads
// head->next of a node another writer may pop and retire at the same
// moment, so writers pin too. EBR also rules out ABA here: a node is not
// reused before every thread that could hold it has unpinned.
void RunStackRound(Collector& c, std::int64_t ops_per_writer) {
  constexpr int kReaders = 4;
  constexpr int kWriters = 4;
  constexpr int kDepth = 16;
  NodePool pool(kDepth + kWriters * ops_per_writer + 16);
  std::atomic<Node*> head{nullptr};
  for (int i = 0; i < kDepth; ++i) {
    Node* n = pool.New(i);
    n->next.store(head.load(std::memory_order_relaxed), std::memory_order_relaxed);
    head.store(n, std::memory_order_release);
  }
  std::atomic<bool> stop{false};
  std::atomic<std::int64_t> bad_reads{0}, retired{0};
  std::atomic<int> writers_left{kWriters};
  testing::StartGate gate;
  std::vector<std::thread> threads;
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&] {
      gate.Wait();
      int k = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        auto guard = c.Pin();
        int steps = 0;
        for (Node* n = head.load(std::memory_order_acquire); n != nullptr && steps < 4 * kDepth;
             n = n->next.load(std::memory_order_acquire), ++steps) {
          if (!Valid(n)) bad_reads.fetch_add(1, std::memory_order_relaxed);
          if ((++k & 31) == 0) std::this_thread::yield();
        }
      }
    });
  }
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      gate.Wait();
      for (std::int64_t i = 0; i < ops_per_writer; ++i) {
        Node* popped;
        {
          auto guard = c.Pin();
          popped = head.load(std::memory_order_acquire);
          while (popped != nullptr) {
            if (!Valid(popped)) bad_reads.fetch_add(1, std::memory_order_relaxed);
            Node* next = popped->next.load(std::memory_order_acquire);
            // acq_rel: acquire to read the new head's fields on failure
            // (below), release keeps the chain of publications.
            if (head.compare_exchange_weak(popped, next, std::memory_order_acq_rel,
                                           std::memory_order_acquire)) {
              break;
            }
          }
        }
        if (popped != nullptr) {
          c.Retire(popped, &NodePool::Poison, &pool);
          retired.fetch_add(1, std::memory_order_relaxed);
        }
        Node* fresh = pool.New(static_cast<std::uint64_t>(w) << 40 | static_cast<std::uint64_t>(i));
        Node* h = head.load(std::memory_order_relaxed);
        do {
          fresh->next.store(h, std::memory_order_relaxed);
          // Release: publishes fresh to readers' and poppers' acquire loads.
        } while (!head.compare_exchange_weak(h, fresh, std::memory_order_release,
                                             std::memory_order_relaxed));
      }
      writers_left.fetch_sub(1);
    });
  }
  gate.Release();
  while (writers_left.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  stop = true;
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad_reads.load(), 0);
  for (int i = 0; i < 4; ++i) c.Collect();
  EXPECT_EQ(c.PendingForTesting(), 0u);
  EXPECT_EQ(pool.freed(), retired.load());
  int depth = 0;
  for (Node* n = head.load(); n != nullptr; n = n->next.load()) {
    EXPECT_TRUE(Valid(n));
    ++depth;
  }
  EXPECT_EQ(depth, kDepth);
}

TEST(EpochStressTest, LockFreeStackPopAndRetireWithConcurrentReaders) {
  Collector c;
  const std::int64_t rounds = testing::Scaled(30);
  for (std::int64_t r = 0; r < rounds && !::testing::Test::HasFailure(); ++r) {
    RunStackRound(c, 200000);
  }
}

// Many threads pin, retire and exit repeatedly (records are recycled while
// others collect); nothing is lost or freed twice.
TEST(EpochStressTest, ThreadChurnWithRetireAndCollect) {
  const std::int64_t kRounds = testing::Scaled(50);
  constexpr int kThreads = 8;
  const int per_thread = 5000;
  NodePool pool(static_cast<std::size_t>(kRounds) * kThreads * per_thread + 16);
  Collector c;
  std::atomic<std::int64_t> retired{0};
  for (std::int64_t round = 0; round < kRounds; ++round) {
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < per_thread; ++i) {
          Node* n = pool.New(i);
          auto guard = c.Pin();
          c.Retire(n, &NodePool::Poison, &pool);
          retired.fetch_add(1, std::memory_order_relaxed);
          if (t == 0 && (i & 255) == 0) c.Collect();
        }
      });
    }
    for (auto& t : threads) t.join();
  }
  for (int i = 0; i < 4; ++i) c.Collect();
  EXPECT_EQ(c.PendingForTesting(), 0u);
  EXPECT_EQ(pool.freed(), retired.load());
}

}  // namespace
}  // namespace strata::epoch
