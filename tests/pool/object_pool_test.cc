// tests/pool/object_pool_test.cc: strata::ObjectPool<T>.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "alloc/pool.h"
#include "gtest/gtest.h"

namespace {

using strata::ObjectPool;

// Counts live instances so that tests can prove nothing leaks.
std::atomic<int> g_live{0};

struct Conn {
  Conn() { g_live.fetch_add(1); }
  explicit Conn(int id_in) : id(id_in) { g_live.fetch_add(1); }
  ~Conn() { g_live.fetch_sub(1); }
  int id = 0;
  std::string buffer;
  std::atomic<int> in_use{0};
  std::uint64_t uses = 0;
};

TEST(ObjectPoolTest, ReusesObjectsAndRunsTheResetHook) {
  {
    int resets = 0;
    ObjectPool<Conn> pool({}, [&resets](Conn& c) {
      ++resets;
      c.buffer.clear();
    });
    Conn* first;
    {
      auto h = pool.Get();
      ASSERT_TRUE(h);
      h->buffer = "dirty";
      first = h.get();
    }
    EXPECT_EQ(resets, 1);
    auto h2 = pool.Get();
    EXPECT_EQ(h2.get(), first);  // same thread: LIFO reuse
    EXPECT_TRUE(h2->buffer.empty());
    const strata::ObjectPoolStats s = pool.stats();
    EXPECT_EQ(s.gets, 2u);
    EXPECT_EQ(s.hits, 1u);
    EXPECT_EQ(s.created, 1u);
    EXPECT_EQ(s.puts, 1u);
  }
  EXPECT_EQ(g_live.load(), 0);
}

TEST(ObjectPoolTest, CustomConstructorAndRawInterface) {
  {
    int next_id = 100;
    ObjectPool<Conn> pool({}, nullptr,
                          [&next_id](void* storage) { return new (storage) Conn(next_id++); });
    Conn* a = pool.GetRaw();
    Conn* b = pool.GetRaw();
    EXPECT_EQ(a->id, 100);
    EXPECT_EQ(b->id, 101);
    pool.Put(a);
    pool.Put(b);
    pool.Put(nullptr);  // ignored
    Conn* c = pool.GetRaw();
    EXPECT_EQ(c->id, 101);
    pool.Put(c);
  }
  EXPECT_EQ(g_live.load(), 0);
}

TEST(ObjectPoolTest, HandleMovesAndReleases) {
  ObjectPool<Conn> pool;
  auto a = pool.Get();
  Conn* raw = a.get();
  ObjectPool<Conn>::Handle b = std::move(a);
  EXPECT_FALSE(a);
  EXPECT_EQ(b.get(), raw);
  Conn* released = b.release();
  EXPECT_FALSE(b);
  EXPECT_EQ(released, raw);
  pool.Put(released);
  auto c = pool.Get();
  EXPECT_EQ(c.get(), raw);
  c.reset();
  EXPECT_FALSE(c);
}

TEST(ObjectPoolTest, IsBounded) {
  {
    ObjectPool<Conn> pool({.per_thread_capacity = 4, .max_shared = 8});
    std::vector<Conn*> objects;
    for (int i = 0; i < 100; ++i) objects.push_back(pool.GetRaw());
    for (Conn* c : objects) pool.Put(c);
    const strata::ObjectPoolStats s = pool.stats();
    EXPECT_EQ(s.created, 100u);
    EXPECT_LE(s.created - s.destroyed, 4u + 8u);  // idle objects kept
    EXPECT_EQ(g_live.load(), static_cast<int>(s.created - s.destroyed));
  }
  EXPECT_EQ(g_live.load(), 0);
}

TEST(ObjectPoolTest, NoThreadCache) {
  ObjectPool<Conn> pool({.per_thread_capacity = 0, .max_shared = 2});
  Conn* a = pool.GetRaw();
  pool.Put(a);
  EXPECT_EQ(pool.GetRaw(), a);
  pool.Put(a);
  EXPECT_EQ(pool.stats().shared, 1u);
}

TEST(ObjectPoolTest, AlignedType) {
  struct alignas(256) Wide {
    char bytes[300];
  };
  ObjectPool<Wide> pool;
  std::vector<Wide*> v;
  for (int i = 0; i < 50; ++i) {
    v.push_back(pool.GetRaw());
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(v.back()) % 256, 0u);
  }
  for (Wide* w : v) pool.Put(w);
}

TEST(ObjectPoolTest, EightThreadsNeverShareAnObject) {
  {
    ObjectPool<Conn> pool({.per_thread_capacity = 8, .max_shared = 64},
                          [](Conn& c) { c.buffer.clear(); });
    constexpr int kThreads = 8;
    constexpr int kRounds = 20000;
    std::atomic<int> violations{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        std::vector<Conn*> held;
        for (int i = 0; i < kRounds; ++i) {
          Conn* c = pool.GetRaw();
          if (c->in_use.exchange(1) != 0) violations.fetch_add(1);
          if (!c->buffer.empty()) violations.fetch_add(1);  // reset hook ran
          c->buffer.assign(10, static_cast<char>('a' + t));
          ++c->uses;
          held.push_back(c);
          if (held.size() > static_cast<std::size_t>((i + t) % 12)) {
            // Return in an order that makes caches spill and refill.
            for (Conn* h : held) {
              h->in_use.store(0);
              pool.Put(h);
            }
            held.clear();
          }
        }
        for (Conn* h : held) {
          h->in_use.store(0);
          pool.Put(h);
        }
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(violations.load(), 0);
    const strata::ObjectPoolStats s = pool.stats();
    EXPECT_EQ(s.gets, static_cast<std::uint64_t>(kThreads) * kRounds);
    EXPECT_EQ(s.puts, s.gets);
    EXPECT_GT(s.hits, s.gets / 2);
    // Idle objects are bounded: shared stack plus each thread's cache. The
    // threads have exited, so their caches went to the shared stack.
    EXPECT_LE(s.created - s.destroyed, 64u);
  }
  EXPECT_EQ(g_live.load(), 0);
}

TEST(ObjectPoolTest, ObjectsReturnedByAnotherThread) {
  {
    ObjectPool<Conn> pool;
    std::vector<Conn*> taken;
    std::thread producer([&] {
      for (int i = 0; i < 1000; ++i) taken.push_back(pool.GetRaw());
    });
    producer.join();
    std::vector<std::thread> consumers;
    for (int t = 0; t < 4; ++t) {
      consumers.emplace_back([&, t] {
        for (std::size_t i = t; i < taken.size(); i += 4) pool.Put(taken[i]);
      });
    }
    for (auto& th : consumers) th.join();
    EXPECT_EQ(pool.stats().puts, 1000u);
  }
  EXPECT_EQ(g_live.load(), 0);
}

TEST(ObjectPoolTest, PoolDestroyedWhileThreadsThatUsedItAreAlive) {
  auto pool = std::make_unique<ObjectPool<Conn>>();
  std::atomic<int> ready{0};
  std::atomic<bool> pool_gone{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10; ++i) {
        auto h = pool->Get();
        h->uses++;
      }
      ready.fetch_add(1);
      while (!pool_gone.load()) std::this_thread::yield();
      // The thread exits now: its exit hook must not touch the dead pool.
    });
  }
  while (ready.load() < 4) std::this_thread::yield();
  pool.reset();  // destroys the objects cached by the 4 threads
  EXPECT_EQ(g_live.load(), 0);
  pool_gone.store(true);
  for (auto& th : threads) th.join();
  EXPECT_EQ(g_live.load(), 0);
}

TEST(ObjectPoolTest, ExitedThreadsHandTheirCachesBack) {
  ObjectPool<Conn> pool({.per_thread_capacity = 8, .max_shared = 100});
  std::atomic<int> holding{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      std::vector<Conn*> v;
      for (int i = 0; i < 8; ++i) v.push_back(pool.GetRaw());
      // Every thread holds its 8 before any returns them: 32 distinct objects.
      holding.fetch_add(1);
      while (holding.load() < 4) std::this_thread::yield();
      for (Conn* c : v) pool.Put(c);
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(pool.stats().shared, 32u);
  const std::uint64_t created = pool.stats().created;
  for (int i = 0; i < 32; ++i) pool.Put(pool.GetRaw());
  EXPECT_EQ(pool.stats().created, created);  // all served from the shared stack
}

TEST(ObjectPoolTest, MorePoolsThanThreadCacheSlots) {
  {
    std::vector<std::unique_ptr<ObjectPool<Conn>>> pools;
    for (int i = 0; i < 40; ++i) pools.push_back(std::make_unique<ObjectPool<Conn>>());
    for (int round = 0; round < 3; ++round) {
      for (auto& p : pools) {
        Conn* c = p->GetRaw();
        p->Put(c);
      }
    }
    for (auto& p : pools) EXPECT_EQ(p->stats().created, 1u);
    // Destroy half, then use fresh pools: dead slots are reclaimed.
    pools.resize(20);
    for (int i = 0; i < 20; ++i) pools.push_back(std::make_unique<ObjectPool<Conn>>());
    for (auto& p : pools) p->Put(p->GetRaw());
  }
  EXPECT_EQ(g_live.load(), 0);
}

}  // namespace
