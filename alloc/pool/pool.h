// alloc/pool/pool.h: object and buffer pools over strata (namespace strata),
// the C++ counterparts of Go's sync.Pool, BufferPool and TieredPool. Include
// it as "alloc/pool.h" (target //alloc:pool).
//
//   ObjectPool<T>  reuses constructed T objects; a reset hook runs on Put.
//   BufferPool     reuses byte buffers in size tiers (1 KiB / 64 KiB / 1 MiB
//                  by default).
//
// Both put a small per-thread cache (no lock on the fast path) in front of a
// bounded shared stack (a spin-locked array); an object that fits in neither
// is destroyed, so a pool never grows without bound: it keeps at most
// max_shared + threads * per_thread_capacity idle objects per pool (per tier
// for BufferPool). Objects handed out are not counted against the bound.
// Storage comes from the strata engine (strata::Allocate*), not from
// operator new, so the pools behave the same with or without the malloc
// override.
//
// Thread-safety: every member function is thread-safe, except that a pool
// must not be destroyed while another thread calls Get/Put on it. Objects
// may be returned by a different thread than the one that took them.
// Objects (and buffers) still handed out when the pool is destroyed must not
// be returned to it afterwards.
#ifndef STRATA_ALLOC_POOL_POOL_H_
#define STRATA_ALLOC_POOL_POOL_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <new>
#include <span>
#include <utility>
#include <vector>

#include "alloc/pool/pool_core.h"
#include "alloc/strata.h"
#include "concurrency/base/raw_log.h"

namespace strata {

struct ObjectPoolStats {
  std::uint64_t gets = 0;       // Get()/GetRaw() calls
  std::uint64_t hits = 0;       // served by a cached object
  std::uint64_t created = 0;    // objects constructed
  std::uint64_t destroyed = 0;  // objects destroyed (bound exceeded, or the pool died)
  std::uint64_t puts = 0;       // Put() calls
  std::size_t shared = 0;       // idle objects in the shared stack now
};

// A pool of reusable T objects.
//
//   strata::ObjectPool<Conn> pool({}, [](Conn& c) { c.Clear(); });
//   {
//     auto conn = pool.Get();   // a Handle: returns conn to the pool when
//     conn->Send(...);          // it goes out of scope
//   }
//   Conn* raw = pool.GetRaw();  // or manage it by hand
//   pool.Put(raw);
//
// Construction: by default `new (storage) T()`; a custom Constructor
// receives suitably aligned storage of sizeof(T) bytes and must construct
// the object in it and return that same pointer (it may throw; the storage
// is then released). The Resetter runs in Put() before the object is cached
// (it must not throw). Objects are destroyed with ~T().
template <typename T>
class ObjectPool {
 public:
  struct Options {
    // Idle objects each thread keeps for itself (0: no thread cache).
    std::size_t per_thread_capacity = 32;
    // Idle objects kept in the shared stack.
    std::size_t max_shared = 1024;
  };
  using Constructor = std::function<T*(void* storage)>;
  using Resetter = std::function<void(T&)>;

  // Owns one pooled object and returns it to its pool on destruction.
  class Handle {
   public:
    Handle() = default;
    Handle(Handle&& other) noexcept
        : pool_(std::exchange(other.pool_, nullptr)),
          object_(std::exchange(other.object_, nullptr)) {}
    Handle& operator=(Handle&& other) noexcept {
      if (this != &other) {
        reset();
        pool_ = std::exchange(other.pool_, nullptr);
        object_ = std::exchange(other.object_, nullptr);
      }
      return *this;
    }
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    ~Handle() { reset(); }

    T* get() const noexcept { return object_; }
    T& operator*() const noexcept { return *object_; }
    T* operator->() const noexcept { return object_; }
    explicit operator bool() const noexcept { return object_ != nullptr; }

    // Returns the object to the pool now.
    void reset() noexcept {
      if (object_ != nullptr) pool_->Put(std::exchange(object_, nullptr));
    }
    // Gives up ownership; the caller must Put() the object back.
    T* release() noexcept { return std::exchange(object_, nullptr); }

   private:
    friend class ObjectPool;
    Handle(ObjectPool* pool, T* object) noexcept : pool_(pool), object_(object) {}
    ObjectPool* pool_ = nullptr;
    T* object_ = nullptr;
  };

  ObjectPool() : ObjectPool(Options{}) {}
  explicit ObjectPool(Options options, Resetter reset = nullptr, Constructor construct = nullptr)
      : reset_(std::move(reset)),
        construct_(std::move(construct)),
        core_(options.per_thread_capacity, options.max_shared, &ObjectPool::Destroy, this) {}
  ObjectPool(const ObjectPool&) = delete;
  ObjectPool& operator=(const ObjectPool&) = delete;
  // Destroys every idle object (members are destroyed in reverse order:
  // core_ first, while the counters below are still alive).
  ~ObjectPool() = default;

  // A pooled object (or a new one). Throws std::bad_alloc, or what the
  // Constructor throws.
  Handle Get() { return Handle(this, GetRaw()); }

  T* GetRaw() {
    if (void* cached = core_.Get()) return static_cast<T*>(cached);
    return Create();
  }

  // Returns an object obtained from this pool. nullptr is ignored.
  void Put(T* object) noexcept {
    if (object == nullptr) return;
    if (reset_) reset_(*object);
    core_.Put(object);
  }

  // Destroys the idle objects of the shared stack.
  void Trim() noexcept { core_.Trim(); }

  ObjectPoolStats stats() const noexcept {
    const pool_internal::PoolCoreStats core = core_.GetStats();
    ObjectPoolStats s;
    s.gets = core.gets;
    s.hits = core.hits;
    s.puts = core.puts;
    s.shared = core.shared;
    s.created = created_.load(std::memory_order_relaxed);
    s.destroyed = destroyed_.load(std::memory_order_relaxed);
    return s;
  }

 private:
  static constexpr bool kEngineAligned = alignof(T) <= 16;

  static void* AllocateStorage() noexcept {
    return kEngineAligned ? strata::Allocate(sizeof(T))
                          : strata::AllocateAligned(sizeof(T), alignof(T));
  }
  static void FreeStorage(void* storage) noexcept {
    if constexpr (kEngineAligned) {
      strata::FreeSized(storage, sizeof(T));
    } else {
      strata::FreeAlignedSized(storage, sizeof(T), alignof(T));
    }
  }

  T* Create() {
    void* storage = AllocateStorage();
    if (storage == nullptr) throw std::bad_alloc();
    T* object;
    try {
      object = construct_ ? construct_(storage) : new (storage) T();
    } catch (...) {
      FreeStorage(storage);
      throw;
    }
    STRATA_CHECK(object == storage, "ObjectPool: the Constructor must build in the storage given");
    created_.fetch_add(1, std::memory_order_relaxed);
    return object;
  }

  static void Destroy(void* item, void* context) noexcept {
    auto* self = static_cast<ObjectPool*>(context);
    T* object = static_cast<T*>(item);
    object->~T();
    FreeStorage(object);
    self->destroyed_.fetch_add(1, std::memory_order_relaxed);
  }

  const Resetter reset_;
  const Constructor construct_;
  std::atomic<std::uint64_t> created_{0};
  std::atomic<std::uint64_t> destroyed_{0};
  pool_internal::PoolCore core_;  // last: destroyed first
};

// ---------------------------------------------------------------------------
// BufferPool
// ---------------------------------------------------------------------------

// Byte buffers in size tiers. Get(n) hands out a buffer of the smallest tier
// whose size is >= n (capacity() is the tier size, size() is n); a request
// above the largest tier is a plain engine allocation of exactly n bytes,
// freed when returned. Returned buffers keep their capacity for the next
// Get() of that tier. Buffer contents are not cleared.
//
//   strata::BufferPool pool;
//   strata::BufferPool::Buffer buf = pool.Get(3000);   // a 64 KiB tier buffer
//   std::memcpy(buf.data(), src, 3000);
//   // ~Buffer returns it (or pool.Put(std::move(buf)))
class BufferPool {
 public:
  struct Options {
    // Tier sizes in bytes (sorted and de-duplicated by the constructor;
    // zeros are ignored). At most kMaxTiers.
    std::vector<std::size_t> tier_sizes = {std::size_t{1} << 10, std::size_t{64} << 10,
                                           std::size_t{1} << 20};
    // Idle buffers kept in each tier's shared stack.
    std::size_t max_per_tier = 64;
    // Idle buffers each thread keeps per tier.
    std::size_t per_thread = 4;
  };
  static constexpr std::size_t kMaxTiers = 16;

  struct TierStats {
    std::size_t size = 0;
    std::uint64_t hits = 0;    // served by an idle buffer
    std::uint64_t misses = 0;  // a new buffer was allocated
    std::uint64_t puts = 0;
    std::uint64_t drops = 0;  // returned buffers freed because the tier was full
    std::size_t shared = 0;   // idle buffers in the shared stack now
  };
  struct Stats {
    std::uint64_t hits = 0;      // over all tiers
    std::uint64_t misses = 0;    // over all tiers
    std::uint64_t oversize = 0;  // requests above the largest tier
    std::vector<TierStats> tiers;
  };

  // A move-only buffer; returns itself to its pool when destroyed.
  class Buffer {
   public:
    Buffer() = default;
    Buffer(Buffer&& other) noexcept { *this = std::move(other); }
    Buffer& operator=(Buffer&& other) noexcept {
      if (this != &other) {
        Reset();
        pool_ = std::exchange(other.pool_, nullptr);
        data_ = std::exchange(other.data_, nullptr);
        size_ = std::exchange(other.size_, 0);
        capacity_ = std::exchange(other.capacity_, 0);
        tier_ = std::exchange(other.tier_, -1);
      }
      return *this;
    }
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;
    ~Buffer() { Reset(); }

    std::byte* data() const noexcept { return data_; }
    std::size_t size() const noexcept { return size_; }
    std::size_t capacity() const noexcept { return capacity_; }
    bool empty() const noexcept { return size_ == 0; }
    std::span<std::byte> bytes() const noexcept { return {data_, size_}; }
    // True if the buffer came from a tier (false for oversize requests).
    bool pooled() const noexcept { return tier_ >= 0; }
    // Changes size() within capacity(); returns false (and changes nothing)
    // if n > capacity().
    bool Resize(std::size_t n) noexcept {
      if (n > capacity_) return false;
      size_ = n;
      return true;
    }
    // Returns the buffer to its pool now; the Buffer becomes empty.
    void Reset() noexcept {
      if (data_ != nullptr) pool_->Return(data_, capacity_, tier_);
      pool_ = nullptr;
      data_ = nullptr;
      size_ = capacity_ = 0;
      tier_ = -1;
    }

   private:
    friend class BufferPool;
    BufferPool* pool_ = nullptr;
    std::byte* data_ = nullptr;
    std::size_t size_ = 0;
    std::size_t capacity_ = 0;
    int tier_ = -1;
  };

  BufferPool() : BufferPool(Options{}) {}
  explicit BufferPool(Options options);
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;
  ~BufferPool();

  // At least n bytes (size() == n). Throws std::bad_alloc on failure.
  Buffer Get(std::size_t n);
  // Same as buffer.Reset(); a buffer from another pool goes back to that one.
  void Put(Buffer&& buffer) noexcept { buffer.Reset(); }
  // Frees the idle buffers of every tier's shared stack.
  void Trim() noexcept;
  Stats GetStats() const;
  // The tier sizes in use (sorted).
  std::span<const std::size_t> tier_sizes() const noexcept { return {tier_sizes_, num_tiers_}; }

 private:
  struct Tier;
  void Return(std::byte* data, std::size_t capacity, int tier) noexcept;
  static void DestroyBuffer(void* item, void* context) noexcept;

  std::size_t tier_sizes_[kMaxTiers] = {};
  std::size_t num_tiers_ = 0;
  std::unique_ptr<Tier> tiers_[kMaxTiers];
  std::atomic<std::uint64_t> oversize_{0};
};

}  // namespace strata

#endif  // STRATA_ALLOC_POOL_POOL_H_
