// concurrency/thread_registry.h: per-(thread, instance) records that are
// claimed on first use, released at thread exit, reused by later threads and
// never freed. The common machinery behind sharded counters (one slot per
// thread) and epoch collectors (one participant per thread).
//
// Purpose: give each thread its own record in a shared object without
// malloc, without thread_local destructors, and with a fast lookup.
//
// Contract:
//   - A ThreadRegistry lives in GlobalRecordArena() (Create()) and is never
//     destroyed: exit hooks and the fork handler reach it through its records
//     long after the object that created it may be gone. Records live in the
//     same arena and are never freed either; the memory of an abandoned
//     registry (its owner object destroyed) is leaked, which is bounded by
//     (#threads that used it) * record size.
//   - Current() returns the calling thread's record, claiming a free record
//     or creating one on first use (nullptr only if the kernel refuses
//     memory). The record stays the thread's until its exit hook runs.
//   - On thread exit (see thread_exit.h) each record the thread owns is
//     handed to the registry's ReleaseFn on the owning thread, evicted from
//     the thread's lookup cache, then marked free for reuse. Code that runs
//     later in the same thread's exit simply claims a record again.
//   - After fork(), in the child, every record owned by a thread other than
//     the forking one (those threads do not exist in the child) goes through
//     ReleaseFn and is freed. The forking thread keeps its records.
//   - ForEach visits every record ever created (owned or free), in no
//     particular order, while other threads add records concurrently.
//
// Lookup: a constinit, initial-exec thread_local direct-mapped cache of
// kCacheEntries (registry -> record) pairs. A hit costs a TLS load and a
// compare. A miss walks the registry's record list (short: one record per
// concurrently live thread) before claiming or creating.
//
// Thread-safety: all functions are thread-safe. Record claim and release go
// through `owner` (acquire CAS / release store), so a new owner sees every
// write of the previous one.
//
// Invariants:
//   - A record is in exactly one registry list and in the global list (for
//     fork), both append-only with immutable links after publication.
//   - owner == 0 (free) or the token of exactly one live thread, except for
//     records whose owner claimed them after its last exit-hook iteration
//     (see thread_exit.h); such records stay owned until a new thread with
//     the same token adopts them.
//   - A thread's lookup cache only holds records that thread owns.
#ifndef STRATA_CONCURRENCY_THREAD_REGISTRY_H_
#define STRATA_CONCURRENCY_THREAD_REGISTRY_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "concurrency/base/macros.h"
#include "concurrency/base/thread_exit.h"

namespace strata {

class ThreadRegistry;

// Header of every per-thread record; a registry's records derive from it.
struct ThreadRecord {
  // Token of the owning thread (see CurrentThreadToken()), 0 when free.
  std::atomic<std::uintptr_t> owner{0};
  // Immutable after publication.
  ThreadRecord* next_in_registry = nullptr;
  ThreadRecord* next_global = nullptr;
  ThreadRegistry* registry = nullptr;
  // Linked into the owner's exit list while owned.
  ThreadExitHook exit_hook{};
};

namespace thread_registry_internal {

inline constexpr int kCacheEntries = 32;

struct Cache {
  const ThreadRegistry* key[kCacheEntries];
  ThreadRecord* record[kCacheEntries];
};

// The calling thread's lookup cache. Trivially destructible.
extern constinit thread_local Cache t_cache STRATA_INITIAL_EXEC;

STRATA_ALWAYS_INLINE std::size_t CacheIndex(const ThreadRegistry* registry) {
  // Registries are kCacheLineSize-aligned: drop those zero bits.
  return (reinterpret_cast<std::uintptr_t>(registry) / kCacheLineSize) % kCacheEntries;
}

}  // namespace thread_registry_internal

// A non-zero value unique among live threads (the address of the thread's
// lookup cache). A new thread may reuse the token of a dead one.
inline std::uintptr_t CurrentThreadToken() noexcept {
  return reinterpret_cast<std::uintptr_t>(&thread_registry_internal::t_cache);
}

class alignas(kCacheLineSize) ThreadRegistry {
 public:
  // Constructs a record in `memory` (record size bytes, zeroed, aligned) and
  // returns it. `registry` is the registry the record will belong to (its
  // context() identifies the owning object).
  using ConstructFn = ThreadRecord* (*)(void* memory, ThreadRegistry* registry);
  // Prepares a record for a new owner; called on the owning thread at its
  // exit, or in a fork child for records of threads that do not exist there.
  // May be null.
  using ReleaseFn = void (*)(ThreadRecord* record);

  constexpr ThreadRegistry(std::size_t record_size, std::size_t record_align,
                           ConstructFn construct, ReleaseFn release,
                           void* context = nullptr) noexcept
      : record_size_(record_size),
        record_align_(record_align),
        construct_(construct),
        release_(release),
        context_(context) {}
  ThreadRegistry(const ThreadRegistry&) = delete;
  ThreadRegistry& operator=(const ThreadRegistry&) = delete;

  // A new immortal registry in GlobalRecordArena(); nullptr on OOM.
  static ThreadRegistry* Create(std::size_t record_size, std::size_t record_align,
                                ConstructFn construct, ReleaseFn release,
                                void* context = nullptr) noexcept;

  // The opaque pointer given at construction (immutable).
  void* context() const noexcept { return context_; }

  // The calling thread's record (claimed or created on first use); nullptr
  // only when no memory can be mapped.
  STRATA_ALWAYS_INLINE ThreadRecord* Current() noexcept {
    auto& cache = thread_registry_internal::t_cache;
    const std::size_t i = thread_registry_internal::CacheIndex(this);
    if (STRATA_PREDICT_TRUE(cache.key[i] == this)) return cache.record[i];
    return CurrentSlow(/*create=*/true);
  }

  // The calling thread's record if it has one, else nullptr (never creates).
  ThreadRecord* FindCurrent() noexcept {
    auto& cache = thread_registry_internal::t_cache;
    const std::size_t i = thread_registry_internal::CacheIndex(this);
    if (cache.key[i] == this) return cache.record[i];
    return CurrentSlow(/*create=*/false);
  }

  // The most recently created record; follow next_in_registry for the rest
  // (every record ever created, owned or free, ends with nullptr).
  ThreadRecord* First() const noexcept {
    // Acquire: pairs with the release CAS publishing each record, so its
    // construction and link are visible (older records are covered by the
    // release sequence that head_'s later RMWs continue).
    return head_.load(std::memory_order_acquire);
  }

  // Calls fn(ThreadRecord*) for every record ever created.
  template <typename Fn>
  void ForEach(Fn&& fn) const {
    for (ThreadRecord* r = First(); r != nullptr; r = r->next_in_registry) fn(r);
  }

  // Records ever created in this registry.
  std::size_t RecordCount() const noexcept {
    // Statistic; pairs with the relaxed fetch_add in CurrentSlow.
    return count_.load(std::memory_order_relaxed);
  }

 private:
  friend void ThreadRegistryOnThreadExit(void* record) noexcept;
  friend void ThreadRegistryAfterForkChild() noexcept;

  STRATA_NOINLINE ThreadRecord* CurrentSlow(bool create) noexcept;

  std::atomic<ThreadRecord*> head_{nullptr};
  std::atomic<std::size_t> count_{0};
  const std::size_t record_size_;
  const std::size_t record_align_;
  const ConstructFn construct_;
  const ReleaseFn release_;
  void* const context_;
};

}  // namespace strata

#endif  // STRATA_CONCURRENCY_THREAD_REGISTRY_H_
