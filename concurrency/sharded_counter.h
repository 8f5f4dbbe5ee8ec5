// concurrency/sharded_counter.h: counters that threads bump without any
// shared write, and that readers sum without a lock.
//
// Purpose: allocator statistics (allocations, frees, live bytes per size
// class) updated on the fast path. A shared atomic counter costs a locked
// RMW and a contended cache line per update; here each thread owns a slot
// and updates it with a relaxed load + relaxed store (no RMW, no lock
// prefix), and readers sum every slot.
//
// Contract:
//   - ShardedCounterArray<N> holds N int64 counters per thread;
//     ShardedCounter is the N == 1 case. Both are constexpr-constructible
//     and trivially destructible (usable as constinit globals). Their slots
//     live in GlobalRecordArena() and are never freed (see
//     thread_registry.h: destroying a counter leaks its slots; exit hooks
//     stay valid).
//   - Add(i, delta) adds to counter i in the calling thread's slot. It never
//     allocates through malloc; the first call in a thread claims a slot
//     (from a previous, exited thread if one is free, else a new one from
//     the arena). If no slot can be mapped the update is dropped.
//   - Sum(i)/SumAll read every slot. Values of exited threads stay in their
//     slots when the slots are released, and a thread that reuses a slot
//     keeps adding to what is there, so the exited-threads total is part of
//     the slot sum itself. (This replaces a separate "exited total": folding
//     a slot into a shared total at exit would let a concurrent reader count
//     the value twice or not at all.) Hence:
//       * Sum is EXACT whenever no thread is updating concurrently (e.g.
//         after joining the writers), including for exited threads.
//       * While writers run, each slot read is a value that slot really had;
//         the sum is not one instant (like any unlocked aggregate).
//   - CurrentSlot() returns the calling thread's slot for hot loops. It
//     stays the thread's until the thread's exit hooks run; code that runs
//     inside thread-exit hooks must use Add() (which re-claims a slot if
//     needed), not a cached Slot*.
//
// Thread-safety: Add/CurrentSlot touch only the caller's slot; Sum/SumAll
// may run concurrently with anything.
//
// Invariants: a slot's counters are written only by its current owner (the
// claim/release protocol gives happens-before between successive owners);
// each slot is alone on its cache lines (no false sharing between owners).
#ifndef STRATA_CONCURRENCY_SHARDED_COUNTER_H_
#define STRATA_CONCURRENCY_SHARDED_COUNTER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>

#include "concurrency/base/macros.h"
#include "concurrency/thread_registry.h"

namespace strata {

template <std::size_t N>
class ShardedCounterArray {
  static_assert(N > 0);

 public:
  struct alignas(kCacheLineSize) Slot : ThreadRecord {
    // Owner thread only.
    STRATA_ALWAYS_INLINE void Add(std::size_t i, std::int64_t delta) noexcept {
      // Relaxed load + relaxed store, no RMW: only the owner writes this
      // word; readers pair with nothing (they read any recent value). The
      // handover to the next owner is ordered by ThreadRecord::owner.
      values[i].store(values[i].load(std::memory_order_relaxed) + delta,
                      std::memory_order_relaxed);
    }
    std::int64_t Get(std::size_t i) const noexcept {
      // Relaxed: a statistic (see Add).
      return values[i].load(std::memory_order_relaxed);
    }

    std::atomic<std::int64_t> values[N] = {};
  };

  constexpr ShardedCounterArray() noexcept = default;
  ShardedCounterArray(const ShardedCounterArray&) = delete;
  ShardedCounterArray& operator=(const ShardedCounterArray&) = delete;

  STRATA_ALWAYS_INLINE void Add(std::size_t i, std::int64_t delta) noexcept {
    if (Slot* slot = CurrentSlot(); STRATA_PREDICT_TRUE(slot != nullptr)) slot->Add(i, delta);
  }
  void Increment(std::size_t i) noexcept { Add(i, 1); }
  void Decrement(std::size_t i) noexcept { Add(i, -1); }

  // The calling thread's slot (nullptr only if no memory can be mapped).
  STRATA_ALWAYS_INLINE Slot* CurrentSlot() noexcept {
    ThreadRegistry* registry = Registry();
    if (STRATA_PREDICT_FALSE(registry == nullptr)) return nullptr;
    return static_cast<Slot*>(registry->Current());
  }

  std::int64_t Sum(std::size_t i) const noexcept {
    std::int64_t sum = 0;
    if (const ThreadRegistry* registry = LoadRegistry()) {
      registry->ForEach([&](ThreadRecord* r) { sum += static_cast<Slot*>(r)->Get(i); });
    }
    return sum;
  }

  void SumAll(std::int64_t (&out)[N]) const noexcept {
    for (std::size_t i = 0; i < N; ++i) out[i] = 0;
    if (const ThreadRegistry* registry = LoadRegistry()) {
      registry->ForEach([&](ThreadRecord* r) {
        const Slot* slot = static_cast<Slot*>(r);
        for (std::size_t i = 0; i < N; ++i) out[i] += slot->Get(i);
      });
    }
  }

  // Slots ever created (live threads plus free, reusable slots).
  std::size_t SlotCount() const noexcept {
    const ThreadRegistry* registry = LoadRegistry();
    return registry == nullptr ? 0 : registry->RecordCount();
  }

 private:
  static ThreadRecord* ConstructSlot(void* memory, ThreadRegistry*) noexcept {
    return new (memory) Slot();
  }

  const ThreadRegistry* LoadRegistry() const noexcept {
    // Acquire: pairs with the acq_rel CAS that installed the registry.
    return registry_.load(std::memory_order_acquire);
  }

  STRATA_ALWAYS_INLINE ThreadRegistry* Registry() noexcept {
    // Acquire: pairs with the acq_rel CAS in RegistrySlow (registry fields).
    ThreadRegistry* registry = registry_.load(std::memory_order_acquire);
    if (STRATA_PREDICT_TRUE(registry != nullptr)) return registry;
    return RegistrySlow();
  }

  STRATA_NOINLINE ThreadRegistry* RegistrySlow() noexcept {
    ThreadRegistry* fresh =
        ThreadRegistry::Create(sizeof(Slot), alignof(Slot), &ConstructSlot, /*release=*/nullptr);
    if (fresh == nullptr) return nullptr;
    ThreadRegistry* expected = nullptr;
    // acq_rel: release publishes `fresh`; acquire (also on failure) lets us
    // use the winner's registry. A losing `fresh` stays unused in the arena
    // (one small record per lost race, at most once per racing thread).
    if (registry_.compare_exchange_strong(expected, fresh, std::memory_order_acq_rel,
                                          std::memory_order_acquire)) {
      return fresh;
    }
    return expected;
  }

  std::atomic<ThreadRegistry*> registry_{nullptr};
};

// One counter.
class ShardedCounter {
 public:
  constexpr ShardedCounter() noexcept = default;
  STRATA_ALWAYS_INLINE void Add(std::int64_t delta) noexcept { impl_.Add(0, delta); }
  void Increment() noexcept { impl_.Add(0, 1); }
  void Decrement() noexcept { impl_.Add(0, -1); }
  std::int64_t Sum() const noexcept { return impl_.Sum(0); }
  std::size_t SlotCount() const noexcept { return impl_.SlotCount(); }

 private:
  ShardedCounterArray<1> impl_;
};

}  // namespace strata

#endif  // STRATA_CONCURRENCY_SHARDED_COUNTER_H_
