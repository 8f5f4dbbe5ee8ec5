// alloc/pool/pool_core.cc: PoolCore (see pool_core.h for the design).
#include "alloc/pool/pool_core.h"

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>

#include "alloc/strata.h"
#include "concurrency/base/raw_log.h"

namespace strata::pool_internal {

// One thread's cache for one pool. `items`/`count` are touched only by the
// owning thread, except under `lock` by the pool's destructor (after the
// owner stopped using the pool) and by the owner's exit hook.
struct PoolCore::LocalCache {
  SpinLock lock;                // exit hook vs pool destructor
  std::atomic<PoolCore*> pool;  // nullptr once detached (under lock)
  std::atomic<int> refs{2};     // the thread's and the pool's
  LocalCache* next = nullptr;   // in the pool's registry
  std::size_t count = 0;
  std::size_t capacity = 0;
  // Single-writer counters (the owner), read by GetStats().
  std::atomic<std::uint64_t> gets{0};
  std::atomic<std::uint64_t> hits{0};
  std::atomic<std::uint64_t> misses{0};
  std::atomic<std::uint64_t> puts{0};
  std::atomic<std::uint64_t> drops{0};
  void* items[];  // capacity entries (flexible array member, GNU extension)
};

namespace {

using LocalCache = PoolCore::LocalCache;

constinit std::atomic<std::uint64_t> g_next_pool_id{1};

template <typename T>
void Bump(std::atomic<T>& counter, T delta = 1) {
  counter.store(counter.load(std::memory_order_relaxed) + delta, std::memory_order_relaxed);
}

void Unref(LocalCache* cache) noexcept {
  // acq_rel: the last owner must see every write of the other before freeing.
  if (cache->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    const std::size_t bytes = sizeof(LocalCache) + cache->capacity * sizeof(void*);
    cache->~LocalCache();
    strata::FreeSized(cache, bytes);
  }
}

// The calling thread's table of caches, allocated on first use.
struct ThreadCaches {
  int used = 0;
  std::uint64_t ids[PoolCore::kMaxPoolsPerThread];
  LocalCache* caches[PoolCore::kMaxPoolsPerThread];
};

thread_local constinit ThreadCaches* t_caches = nullptr;
thread_local constinit bool t_exiting = false;

// Its destructor runs at thread exit (C++ thread_local destructors, also for
// the main thread at exit()) and returns every thread cache to its pool.
struct ThreadExitHook {
  bool armed = false;
  ~ThreadExitHook() {
    t_exiting = true;
    ThreadCaches* table = t_caches;
    t_caches = nullptr;
    if (table == nullptr) return;
    for (int i = 0; i < table->used; ++i) {
      LocalCache* cache = table->caches[i];
      cache->lock.Lock();
      if (PoolCore* pool = cache->pool.load(std::memory_order_relaxed)) pool->OrphanLocked(cache);
      cache->lock.Unlock();
      Unref(cache);
    }
    table->~ThreadCaches();
    strata::FreeSized(table, sizeof(ThreadCaches));
  }
};
thread_local ThreadExitHook t_exit_hook;

// Drops entries whose pool is gone; returns true if a slot is free.
bool CompactTable(ThreadCaches* table) {
  int kept = 0;
  for (int i = 0; i < table->used; ++i) {
    LocalCache* cache = table->caches[i];
    cache->lock.Lock();
    const bool dead = cache->pool.load(std::memory_order_relaxed) == nullptr;
    cache->lock.Unlock();
    if (dead) {
      Unref(cache);
    } else {
      table->ids[kept] = table->ids[i];
      table->caches[kept] = cache;
      ++kept;
    }
  }
  table->used = kept;
  return kept < PoolCore::kMaxPoolsPerThread;
}

}  // namespace

void PoolCore::FoldCounters(const LocalCache* cache) noexcept {
  gets_.fetch_add(cache->gets.load(std::memory_order_relaxed), std::memory_order_relaxed);
  hits_.fetch_add(cache->hits.load(std::memory_order_relaxed), std::memory_order_relaxed);
  misses_.fetch_add(cache->misses.load(std::memory_order_relaxed), std::memory_order_relaxed);
  puts_.fetch_add(cache->puts.load(std::memory_order_relaxed), std::memory_order_relaxed);
  drops_.fetch_add(cache->drops.load(std::memory_order_relaxed), std::memory_order_relaxed);
}

PoolCore::PoolCore(std::size_t per_thread_capacity, std::size_t shared_capacity, DestroyFn destroy,
                   void* context) noexcept
    : id_(g_next_pool_id.fetch_add(1, std::memory_order_relaxed)),
      per_thread_capacity_(per_thread_capacity),
      shared_capacity_(shared_capacity),
      destroy_(destroy),
      context_(context) {
  shared_items_ = nullptr;
  if (shared_capacity_ > 0) {
    shared_items_ = static_cast<void**>(strata::Allocate(shared_capacity_ * sizeof(void*)));
    STRATA_CHECK(shared_items_ != nullptr, "PoolCore: out of memory");
  }
}

PoolCore::~PoolCore() {
  {
    SpinLockHolder registry(&registry_lock_);
    for (LocalCache* cache = caches_; cache != nullptr;) {
      LocalCache* next = cache->next;
      cache->lock.Lock();
      if (cache->pool.load(std::memory_order_relaxed) == this) {
        for (std::size_t i = 0; i < cache->count; ++i) destroy_(cache->items[i], context_);
        cache->count = 0;
        cache->pool.store(nullptr, std::memory_order_relaxed);
      }
      cache->lock.Unlock();
      Unref(cache);
      cache = next;
    }
    caches_ = nullptr;
  }
  Trim();
  if (shared_items_ != nullptr) strata::FreeSized(shared_items_, shared_capacity_ * sizeof(void*));
}

PoolCore::LocalCache* PoolCore::Local() noexcept {
  if (ThreadCaches* table = t_caches) {
    for (int i = 0; i < table->used; ++i) {
      if (table->ids[i] == id_) return table->caches[i];
    }
  }
  return LocalSlow();
}

PoolCore::LocalCache* PoolCore::LocalSlow() noexcept {
  if (per_thread_capacity_ == 0 || t_exiting) return nullptr;
  ThreadCaches* table = t_caches;
  if (table == nullptr) {
    void* mem = strata::Allocate(sizeof(ThreadCaches));
    if (mem == nullptr) return nullptr;
    table = new (mem) ThreadCaches;
    t_caches = table;
    t_exit_hook.armed = true;  // constructs the hook: its destructor will run
  }
  // Registering a new pool is rare: drop the entries of dead pools now, so
  // their caches do not wait for thread exit.
  if (!CompactTable(table)) return nullptr;

  const std::size_t bytes = sizeof(LocalCache) + per_thread_capacity_ * sizeof(void*);
  void* mem = strata::Allocate(bytes);
  if (mem == nullptr) return nullptr;
  auto* cache = new (mem) LocalCache;
  cache->pool.store(this, std::memory_order_relaxed);
  cache->capacity = per_thread_capacity_;
  {
    SpinLockHolder registry(&registry_lock_);
    // Free the caches of exited threads on the way.
    LocalCache** link = &caches_;
    while (*link != nullptr) {
      LocalCache* c = *link;
      if (c->pool.load(std::memory_order_acquire) == nullptr) {
        *link = c->next;
        FoldCounters(c);
        Unref(c);
      } else {
        link = &c->next;
      }
    }
    cache->next = caches_;
    caches_ = cache;
  }
  table->ids[table->used] = id_;
  table->caches[table->used] = cache;
  ++table->used;
  return cache;
}

void* PoolCore::Get() noexcept {
  LocalCache* cache = Local();
  if (STRATA_PREDICT_FALSE(cache == nullptr)) return GetShared();
  Bump(cache->gets);
  if (STRATA_PREDICT_TRUE(cache->count > 0)) {
    Bump(cache->hits);
    return cache->items[--cache->count];
  }
  return Refill(cache);
}

void* PoolCore::Refill(LocalCache* cache) noexcept {
  std::size_t n;
  {
    SpinLockHolder hold(&shared_lock_);
    n = std::min(shared_count_, std::max<std::size_t>(1, cache->capacity / 2));
    shared_count_ -= n;
    std::memcpy(cache->items, shared_items_ + shared_count_, n * sizeof(void*));
  }
  if (n == 0) {
    Bump(cache->misses);
    return nullptr;
  }
  Bump(cache->hits);
  cache->count = n - 1;
  return cache->items[n - 1];
}

void PoolCore::Put(void* item) noexcept {
  LocalCache* cache = Local();
  if (STRATA_PREDICT_FALSE(cache == nullptr)) return PutShared(item);
  Bump(cache->puts);
  if (STRATA_PREDICT_TRUE(cache->count < cache->capacity)) {
    cache->items[cache->count++] = item;
    return;
  }
  Spill(cache, item);
}

void PoolCore::Spill(LocalCache* cache, void* item) noexcept {
  // Moves the older half to the shared stack; what does not fit is
  // destroyed.
  const std::size_t half = std::max<std::size_t>(1, cache->capacity / 2);
  const std::size_t moved = PushShared(cache->items, half);
  for (std::size_t i = moved; i < half; ++i) destroy_(cache->items[i], context_);
  Bump(cache->drops, static_cast<std::uint64_t>(half - moved));
  std::memmove(cache->items, cache->items + half, (cache->count - half) * sizeof(void*));
  cache->count -= half;
  cache->items[cache->count++] = item;
}

std::size_t PoolCore::PushShared(void* const* items, std::size_t n) noexcept {
  SpinLockHolder hold(&shared_lock_);
  const std::size_t fit = std::min(n, shared_capacity_ - shared_count_);
  std::memcpy(shared_items_ + shared_count_, items, fit * sizeof(void*));
  shared_count_ += fit;
  return fit;
}

void* PoolCore::GetShared() noexcept {
  gets_.fetch_add(1, std::memory_order_relaxed);
  void* item = nullptr;
  {
    SpinLockHolder hold(&shared_lock_);
    if (shared_count_ > 0) item = shared_items_[--shared_count_];
  }
  (item != nullptr ? hits_ : misses_).fetch_add(1, std::memory_order_relaxed);
  return item;
}

void PoolCore::PutShared(void* item) noexcept {
  puts_.fetch_add(1, std::memory_order_relaxed);
  if (PushShared(&item, 1) == 0) {
    drops_.fetch_add(1, std::memory_order_relaxed);
    destroy_(item, context_);
  }
}

void PoolCore::OrphanLocked(LocalCache* cache) noexcept {
  const std::size_t moved = PushShared(cache->items, cache->count);
  for (std::size_t i = moved; i < cache->count; ++i) destroy_(cache->items[i], context_);
  Bump(cache->drops, static_cast<std::uint64_t>(cache->count - moved));
  cache->count = 0;
  // The counters stay in the cache until the registry sweep folds them in.
  // Pairs with the acquire load in the sweep (LocalSlow()).
  cache->pool.store(nullptr, std::memory_order_release);
}

void PoolCore::Trim() noexcept {
  // Destroy outside the lock: a destructor may use other pools.
  constexpr std::size_t kBatch = 64;
  void* batch[kBatch];
  for (;;) {
    std::size_t n;
    {
      SpinLockHolder hold(&shared_lock_);
      n = std::min(shared_count_, kBatch);
      shared_count_ -= n;
      std::memcpy(batch, shared_items_ + shared_count_, n * sizeof(void*));
    }
    if (n == 0) return;
    for (std::size_t i = 0; i < n; ++i) destroy_(batch[i], context_);
  }
}

PoolCoreStats PoolCore::GetStats() const noexcept {
  PoolCoreStats s;
  {
    SpinLockHolder registry(&registry_lock_);
    s.gets = gets_.load(std::memory_order_relaxed);
    s.hits = hits_.load(std::memory_order_relaxed);
    s.misses = misses_.load(std::memory_order_relaxed);
    s.puts = puts_.load(std::memory_order_relaxed);
    s.drops = drops_.load(std::memory_order_relaxed);
    // The registry lock keeps the sweep from folding a cache's counters
    // into the pool's while we read both. A cache orphaned by its exited
    // thread is still listed (its counters are final).
    for (LocalCache* cache = caches_; cache != nullptr; cache = cache->next) {
      s.gets += cache->gets.load(std::memory_order_relaxed);
      s.hits += cache->hits.load(std::memory_order_relaxed);
      s.misses += cache->misses.load(std::memory_order_relaxed);
      s.puts += cache->puts.load(std::memory_order_relaxed);
      s.drops += cache->drops.load(std::memory_order_relaxed);
    }
  }
  SpinLockHolder hold(&shared_lock_);
  s.shared = shared_count_;
  return s;
}

}  // namespace strata::pool_internal
