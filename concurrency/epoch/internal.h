// concurrency/epoch/internal.h: the data behind epoch::Collector. Include
// concurrency/epoch/collector.h instead; this header exists so that Pin and
// Unpin can be inlined.
//
// Contract and invariants: see collector.h. In short:
//   - CollectorCore is immortal (GlobalRecordArena), so exit hooks and the
//     fork handler may reach it after the Collector object is gone.
//   - Participant::state is (epoch << 1) | 1 while pinned, 0 while not;
//     only the owning thread writes it (or the thread-exit / fork-child
//     release path, when no owner can be running).
//   - Bags in `garbage` are sealed: immutable until popped, stamped with an
//     epoch read after a seq_cst fence that follows every retire in them,
//     and kept in list stamp % kGarbageLists.
//   - Bags are immortal and recycled through a global free pool.
#ifndef STRATA_CONCURRENCY_EPOCH_INTERNAL_H_
#define STRATA_CONCURRENCY_EPOCH_INTERNAL_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "concurrency/base/macros.h"
#include "concurrency/cache_padded.h"
#include "concurrency/thread_registry.h"
#include "concurrency/treiber_stack.h"

namespace strata::epoch::internal {

// Objects per bag. 64 amortises the seal (one fence, one CAS) and the
// collection bookkeeping over many retires, while bounding the garbage an
// idle thread can sit on to 64 objects; a bag is then ~1.6 KiB, 40 per
// arena chunk. (crossbeam-epoch uses the same figure.)
inline constexpr std::uint32_t kBagCapacity = 64;

// A thread tries to collect once every this many outermost pins, so garbage
// is reclaimed even by threads that only read. 128 keeps the amortised cost
// of a collection attempt (a scan of every participant) small per pin.
inline constexpr std::uint32_t kPinsPerCollect = 128;

// Garbage is freed once the global epoch is this far past its bag's stamp.
inline constexpr std::uint64_t kGraceEpochs = 2;

// Sealed bags are kept in kGraceEpochs + 1 lists indexed by stamp modulo
// that count. At epoch g, list (g - kGraceEpochs) % kGarbageLists holds
// stamps g-2, g-5, ...: all expired (bar a rare late push stamped g+1, which
// is put back). So a collection pops only bags it can free, instead of
// walking every pending bag, and a stalled epoch costs nothing.
inline constexpr std::uint64_t kGarbageLists = kGraceEpochs + 1;

// A collection tries this many advances: two let garbage sealed by the
// collection itself be freed at once when no thread is pinned.
inline constexpr int kAdvancesPerCollect = 2;

struct Bag {
  struct Entry {
    void* ptr;
    void (*deleter)(void* ptr, void* ctx);
    void* ctx;
  };

  Bag* next;             // link in the garbage list / free pool
  std::uint64_t epoch;   // stamp, set when sealed
  // Number of valid entries. Written by the bag's owner; read (relaxed) by
  // PendingForTesting on other threads and by the fork child.
  std::atomic<std::uint32_t> count;
  Entry entries[kBagCapacity];
};

struct CollectorCore;

struct alignas(kCacheLineSize) Participant : ThreadRecord {
  // (epoch << 1) | 1 while pinned, 0 while not. Written by the owner with
  // release stores; read by advancers with acquire loads.
  std::atomic<std::uint64_t> state{0};
  // Owner-only.
  std::uint32_t guard_depth = 0;
  std::uint32_t pins_until_collect = kPinsPerCollect;
  bool in_collect = false;
  // The owner's open bag (nullptr if none). Written by the owner only; read
  // by PendingForTesting (relaxed) from other threads.
  std::atomic<Bag*> bag{nullptr};
  CollectorCore* core = nullptr;  // immutable
};

struct alignas(kCacheLineSize) CollectorCore {
  CollectorCore() noexcept;

  ThreadRegistry registry;
  // The global epoch. Advanced by one with an acq_rel CAS.
  alignas(kCacheLineSize) std::atomic<std::uint64_t> epoch{0};
  // Sealed bags waiting for their grace period, by stamp % kGarbageLists,
  // including bags handed over by exiting threads and by the fork handler
  // (these lists are the global orphan list).
  CachePadded<TreiberStack<Bag>> garbage[kGarbageLists];
  // Objects in `garbage` (statistic).
  alignas(kCacheLineSize) std::atomic<std::int64_t> garbage_objects{0};
  // Objects retired when no bag could be mapped: never freed (statistic).
  std::atomic<std::uint64_t> leaked_objects{0};
};

// Out of line: claims a record failed (no memory). Fatal: pinning cannot be
// done safely without a record.
[[noreturn]] void PinFailed() noexcept;
// The periodic collection attempt from Pin (out of line, cold).
void CollectFromPin(Participant* p) noexcept;

STRATA_ALWAYS_INLINE void PinParticipant(Participant* p) noexcept {
  if (p->guard_depth++ != 0) return;  // nested: already pinned
  CollectorCore* core = p->core;
  // Relaxed: pinning at a stale epoch is safe; it only delays the next
  // advance (see the safety argument in collector.h).
  const std::uint64_t e = core->epoch.load(std::memory_order_relaxed);
#if defined(STRATA_TSAN)
  // TSan does not model fences. A seq_cst store is a full barrier on x86
  // (xchg), and as a release store it carries this thread's history to the
  // advancer's acquire load, which is the edge TSan checks.
  p->state.store((e << 1) | 1, std::memory_order_seq_cst);
#else
  // Release: a later advancer that reads this value (acquire) also
  // inherits this thread's earlier critical sections. The seq_cst fence
  // (F_T in the argument) orders the store before every read this thread
  // makes under the guard.
  p->state.store((e << 1) | 1, std::memory_order_release);
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
  if (STRATA_PREDICT_FALSE(--p->pins_until_collect == 0)) CollectFromPin(p);
}

STRATA_ALWAYS_INLINE void UnpinParticipant(Participant* p) noexcept {
  if (--p->guard_depth != 0) return;  // still nested
  // Release: pairs with the advancers' acquire loads of `state`: every read
  // made under the guard happens-before an advance that sees us unpinned,
  // hence before any free that the advance enables.
  p->state.store(0, std::memory_order_release);
}

}  // namespace strata::epoch::internal

#endif  // STRATA_CONCURRENCY_EPOCH_INTERNAL_H_
