// alloc/pool/pool_core.h: the type-erased engine of strata's object and
// buffer pools (ObjectPool<T> and BufferPool in alloc/pool/pool.h). Users
// include alloc/pool.h; this header is an implementation detail.
//
// A PoolCore caches opaque items (void*) for reuse:
//
//   Get()/Put() ──> this thread's LocalCache (a small array, no lock)
//                        │ empty: refill half   │ full: spill half
//                        ▼                      ▼
//                   shared stack (bounded array under a spin lock)
//                        │ full: the excess is destroyed (DestroyFn)
//
// Per-thread caches: each thread keeps, in a thread-local table of up to
// kMaxPoolsPerThread entries, one LocalCache per pool it uses, found by the
// pool's unique id (ids are never reused, so a stale entry for a destroyed
// pool never matches). A thread that uses more pools than that, or that is
// exiting, goes straight to the shared stack.
//
// Lifetimes: a LocalCache is owned jointly by its thread and its pool
// (reference count 2). At thread exit the thread moves its items to the
// shared stack (destroying what does not fit) and marks the cache orphaned;
// the pool folds an orphaned cache's counters into its own and frees it
// lazily (when another thread registers).
// When the pool is destroyed it destroys the items of every cache still
// attached to a live thread and detaches it; the thread frees it at exit.
// Lock order: registry_lock_ -> LocalCache::lock -> shared_lock_.
//
// Thread-safety: Get/Put/GetStats/Trim are thread-safe. The destructor must
// not run concurrently with Get/Put on the same pool (threads that merely
// used the pool earlier may be alive, or exiting, concurrently).
// Bound: at most shared_capacity items in the shared stack plus
// per_thread_capacity per thread; an item that does not fit is destroyed.
#ifndef STRATA_ALLOC_POOL_POOL_CORE_H_
#define STRATA_ALLOC_POOL_POOL_CORE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "concurrency/base/macros.h"
#include "concurrency/base/spin_lock.h"

namespace strata::pool_internal {

struct PoolCoreStats {
  std::uint64_t gets = 0;    // Get() calls
  std::uint64_t hits = 0;    // Get() served from a cache
  std::uint64_t misses = 0;  // Get() found nothing (the caller creates)
  std::uint64_t puts = 0;    // Put() calls
  std::uint64_t drops = 0;   // items destroyed because every cache was full
  std::size_t shared = 0;    // items in the shared stack now
};

class PoolCore {
 public:
  // Destroys an item the pool will not keep. Must not throw.
  using DestroyFn = void (*)(void* item, void* context) noexcept;

  // Threads use at most this many pools with a thread cache each.
  static constexpr int kMaxPoolsPerThread = 16;

  PoolCore(std::size_t per_thread_capacity, std::size_t shared_capacity, DestroyFn destroy,
           void* context) noexcept;
  PoolCore(const PoolCore&) = delete;
  PoolCore& operator=(const PoolCore&) = delete;
  // Destroys every cached item (shared stack and every thread cache).
  ~PoolCore();

  // A cached item, or nullptr if there is none.
  void* Get() noexcept;
  // Caches `item` (non-null), or destroys it when the caches are full.
  void Put(void* item) noexcept;
  // Destroys every item in the shared stack (thread caches are kept).
  void Trim() noexcept;
  PoolCoreStats GetStats() const noexcept;

  struct LocalCache;  // defined in pool_core.cc

  // Called by a thread's exit hook with cache->lock held.
  void OrphanLocked(LocalCache* cache) noexcept;

 private:
  LocalCache* Local() noexcept;
  STRATA_NOINLINE LocalCache* LocalSlow() noexcept;
  STRATA_NOINLINE void* Refill(LocalCache* cache) noexcept;
  STRATA_NOINLINE void Spill(LocalCache* cache, void* item) noexcept;
  // Adds a detached cache's counters to the pool's (under registry_lock_).
  void FoldCounters(const LocalCache* cache) noexcept;
  void* GetShared() noexcept;
  void PutShared(void* item) noexcept;
  // Pushes up to `n` items into the shared stack; returns how many fit.
  std::size_t PushShared(void* const* items, std::size_t n) noexcept;

  const std::uint64_t id_;
  const std::size_t per_thread_capacity_;
  const std::size_t shared_capacity_;
  const DestroyFn destroy_;
  void* const context_;

  alignas(kCacheLineSize) mutable SpinLock shared_lock_;
  void** shared_items_ STRATA_GUARDED_BY(shared_lock_);
  std::size_t shared_count_ STRATA_GUARDED_BY(shared_lock_) = 0;

  alignas(kCacheLineSize) mutable SpinLock registry_lock_;
  LocalCache* caches_ STRATA_GUARDED_BY(registry_lock_) = nullptr;

  // Counters of operations that bypassed a thread cache, and of the caches
  // of exited threads once swept (folded under registry_lock_).
  alignas(kCacheLineSize) std::atomic<std::uint64_t> gets_{0};
  std::atomic<std::uint64_t> hits_{0};
  std::atomic<std::uint64_t> misses_{0};
  std::atomic<std::uint64_t> puts_{0};
  std::atomic<std::uint64_t> drops_{0};
};

}  // namespace strata::pool_internal

#endif  // STRATA_ALLOC_POOL_POOL_CORE_H_
