#include "concurrency/thread_registry.h"

#include <pthread.h>

#include <new>

#include "concurrency/base/raw_log.h"
#include "concurrency/base/raw_memory.h"

namespace strata {

namespace thread_registry_internal {
constinit thread_local Cache t_cache STRATA_INITIAL_EXEC = {};
}  // namespace thread_registry_internal

namespace {

using thread_registry_internal::CacheIndex;
using thread_registry_internal::kCacheEntries;
using thread_registry_internal::t_cache;

// Every record of every registry, for the fork child handler.
constinit std::atomic<ThreadRecord*> g_all_records{nullptr};
constinit std::atomic<bool> g_atfork_registered{false};

void EvictFromCache(const ThreadRecord* record) noexcept {
  for (int i = 0; i < kCacheEntries; ++i) {
    if (t_cache.record[i] == record) {
      t_cache.key[i] = nullptr;
      t_cache.record[i] = nullptr;
    }
  }
}

void RegisterAtFork() noexcept;

}  // namespace

// Exit hook of every record (runs on the owning thread).
void ThreadRegistryOnThreadExit(void* arg) noexcept {
  auto* record = static_cast<ThreadRecord*>(arg);
  ThreadRegistry* registry = record->registry;
  if (registry->release_ != nullptr) registry->release_(record);
  EvictFromCache(record);
  // Release: the next owner's acquire CAS in CurrentSlow sees every write we
  // (and release_) made to the record.
  record->owner.store(0, std::memory_order_release);
}

// pthread_atfork child handler: the child has one thread (the forking one).
void ThreadRegistryAfterForkChild() noexcept {
  const std::uintptr_t me = CurrentThreadToken();
  // Acquire: pairs with the release CAS publishing each record.
  for (ThreadRecord* r = g_all_records.load(std::memory_order_acquire); r != nullptr;
       r = r->next_global) {
    // Relaxed: single-threaded child; the value is whatever the fork copied.
    const std::uintptr_t owner = r->owner.load(std::memory_order_relaxed);
    if (owner == 0 || owner == me) continue;
    if (r->registry->release_ != nullptr) r->registry->release_(r);
    r->exit_hook.next = nullptr;  // the dead thread's exit list is gone
    // Release: pairs with the acquire CAS of the next owner (single-threaded
    // here, but keeps the claim protocol uniform).
    r->owner.store(0, std::memory_order_release);
  }
}

namespace {

void AfterForkChildTrampoline() { ThreadRegistryAfterForkChild(); }

void RegisterAtFork() noexcept {
  // Relaxed fast check; the exchange below decides (acq_rel so only one
  // thread registers; pairs with itself).
  if (g_atfork_registered.load(std::memory_order_relaxed)) return;
  if (g_atfork_registered.exchange(true, std::memory_order_acq_rel)) return;
  if (pthread_atfork(nullptr, nullptr, &AfterForkChildTrampoline) != 0) {
    raw::Log("thread_registry: pthread_atfork failed; fork children keep dead threads' records");
  }
}

// Register while the process starts (pthread_atfork may allocate once its
// static table is full; at load time that is harmless). Create() repeats the
// call for the rare case of a registry built before constructors run.
__attribute__((constructor(101))) void RegisterAtForkAtLoad() { RegisterAtFork(); }

}  // namespace

ThreadRegistry* ThreadRegistry::Create(std::size_t record_size, std::size_t record_align,
                                       ConstructFn construct, ReleaseFn release,
                                       void* context) noexcept {
  RegisterAtFork();
  void* mem = GlobalRecordArena().Allocate(sizeof(ThreadRegistry), alignof(ThreadRegistry));
  if (mem == nullptr) return nullptr;
  return new (mem) ThreadRegistry(record_size, record_align, construct, release, context);
}

ThreadRecord* ThreadRegistry::CurrentSlow(bool create) noexcept {
  const std::uintptr_t me = CurrentThreadToken();
  ThreadRecord* record = nullptr;
  // 1. A record we already own (evicted from the cache by a collision, or
  //    adopted from a dead thread with our token). Relaxed: only this thread
  //    ever stores `me`, so reading it means we stored it.
  ForEach([&](ThreadRecord* r) {
    if (record == nullptr && r->owner.load(std::memory_order_relaxed) == me) record = r;
  });
  if (record == nullptr && !create) return nullptr;
  // 2. A free record.
  if (record == nullptr) {
    ForEach([&](ThreadRecord* r) {
      if (record != nullptr) return;
      // Relaxed pre-check; the CAS decides.
      std::uintptr_t expected = r->owner.load(std::memory_order_relaxed);
      // Acquire on success: pairs with the release store of the previous
      // owner's release (exit hook or fork handler), so we see its writes.
      if (expected == 0 && r->owner.compare_exchange_strong(expected, me, std::memory_order_acquire,
                                                            std::memory_order_relaxed)) {
        record = r;
      }
    });
  }
  // 3. A new record.
  if (record == nullptr) {
    void* mem = GlobalRecordArena().Allocate(record_size_, record_align_);
    if (mem == nullptr) return nullptr;
    record = construct_(mem, this);
    record->registry = this;
    record->exit_hook.fn = &ThreadRegistryOnThreadExit;
    record->exit_hook.arg = record;
    record->exit_hook.next = nullptr;
    // Relaxed: the record is private until the release CAS below.
    record->owner.store(me, std::memory_order_relaxed);
    // Release on success: publishes the record's construction to ForEach's
    // acquire load. Relaxed on failure: we only retry with the new head.
    ThreadRecord* head = head_.load(std::memory_order_relaxed);
    do {
      record->next_in_registry = head;
    } while (!head_.compare_exchange_weak(head, record, std::memory_order_release,
                                          std::memory_order_relaxed));
    // Same protocol for the global list: release pairs with the fork
    // handler's acquire load; relaxed load/failure only feed the retry.
    ThreadRecord* all = g_all_records.load(std::memory_order_relaxed);
    do {
      record->next_global = all;
    } while (!g_all_records.compare_exchange_weak(all, record, std::memory_order_release,
                                                  std::memory_order_relaxed));
    // Statistic only (pairs with the relaxed load in RecordCount()).
    count_.fetch_add(1, std::memory_order_relaxed);
  }
  // No-op if the hook is already in our exit list.
  RegisterThreadExitHook(&record->exit_hook);
  const std::size_t i = CacheIndex(this);
  t_cache.key[i] = this;
  t_cache.record[i] = record;
  return record;
}

}  // namespace strata
