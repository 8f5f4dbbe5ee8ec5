// alloc/pmr/pmr.h: std::pmr memory resources over strata (namespace
// strata::pmr). Include it as "alloc/pmr.h" (target //alloc:pmr).
//
//   GlobalResource()          the engine itself as a memory_resource, fit
//                             for std::pmr::set_default_resource.
//   PoolResource              the engine plus per-resource accounting: live
//                             bytes, peak, counts, an optional byte limit,
//                             and release() of everything it handed out.
//   MonotonicArena            bump allocation from geometrically growing
//                             chunks; Reset() frees everything at once.
//   ConcurrentMonotonicArena  the same, thread-safe (lock-free bump).
//
// Common contract:
// - Every resource honours any power-of-two alignment and the exact size
//   asked for; a non-power-of-two alignment is a precondition violation
//   (std::pmr's rule).
// - allocate() throws std::bad_alloc on failure (the engine returned null,
//   a size overflowed, or a PoolResource limit was hit); no resource ever
//   returns nullptr.
// - is_equal() is identity: memory from one resource may only be returned
//   to that same object.
// - None of these objects may be destroyed while memory from it is in use
//   (except that PoolResource's destructor and the arenas' destructors free
//   the memory still outstanding, like release()/Reset()).
#ifndef STRATA_ALLOC_PMR_PMR_H_
#define STRATA_ALLOC_PMR_PMR_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory_resource>

#include "concurrency/base/macros.h"
#include "concurrency/base/spin_lock.h"

namespace strata::pmr {

// The strata engine as a memory_resource: allocate() is
// strata::Allocate (alignment <= 16) or strata::AllocateAligned, and
// deallocate() the matching sized free. A process-lifetime singleton that is
// never destroyed, so it stays usable from static destructors.
// Thread-safe (the engine is). Throws std::bad_alloc on failure.
std::pmr::memory_resource* GlobalResource() noexcept;

// ---------------------------------------------------------------------------
// PoolResource
// ---------------------------------------------------------------------------

// Counters of one PoolResource. Bytes are the sizes asked for by callers.
struct PoolResourceStats {
  std::int64_t live_bytes = 0;       // handed out and not yet returned
  std::int64_t peak_live_bytes = 0;  // high-water mark of live_bytes
  std::int64_t live_blocks = 0;
  std::uint64_t allocations = 0;     // cumulative successful allocations
  std::uint64_t deallocations = 0;   // cumulative (release() counts too)
  std::uint64_t limit_failures = 0;  // allocations refused by the limit
};

// A memory_resource served by strata's thread caches, with its own
// accounting.
//
// Design: every block carries a 32-byte header just below the pointer it
// hands out, linking it into one of kShards intrusive doubly-linked lists.
// A thread always inserts into "its" shard (threads are assigned shards
// round-robin), so threads rarely share a shard lock; a block freed by
// another thread is unlinked from the shard recorded in its header. Each
// shard is cache-line padded and keeps its own counts, live bytes and peak.
//
// Accounting without a limit: a shard adds its net byte growth to the
// resource-wide total only in steps of kFlushBytes (and takes shrinkage out
// ahead of time), so threads do not contend on one counter and the total
// never exceeds the true live bytes. live_bytes is exact (the sum of the
// shards' exact counts). peak_live_bytes is a lower bound of the true peak,
// at most kShards * kFlushBytes below it, and exact when only one thread
// has ever allocated from the resource.
//
// Limit: with byte_limit > 0 every allocation is charged to one exact
// resource-wide counter (a compare-and-swap loop); an allocation that would
// take live bytes above the limit throws std::bad_alloc and changes nothing
// (no block, counter or other thread is affected, except limit_failures).
// The peak is then exact.
//
// Thread-safety: allocate/deallocate/stats are thread-safe and take no
// resource-wide lock (one shard spin lock, uncontended in the common case,
// plus the engine's lock-free fast path). release() and the destructor must
// not run concurrently with any other use of the resource.
//
// Overhead: 32 bytes per block (alignment <= 32), or `alignment` bytes for
// larger alignments.
class PoolResource final : public std::pmr::memory_resource {
 public:
  struct Options {
    // 0: no limit. Otherwise the most bytes (as asked by callers) that may be
    // live at once.
    std::size_t byte_limit = 0;
  };

  // 16 shards: 8 threads on a few cores rarely collide, and 16 padded
  // shards (2 KiB) keep the object small.
  static constexpr int kShards = 16;
  // A shard publishes its net byte change to the resource-wide total in
  // steps of at least this much (no limit only).
  static constexpr std::int64_t kFlushBytes = 64 << 10;

  PoolResource() noexcept : PoolResource(Options{}) {}
  explicit PoolResource(Options options) noexcept;
  PoolResource(const PoolResource&) = delete;
  PoolResource& operator=(const PoolResource&) = delete;
  // Frees every block still outstanding (as release()).
  ~PoolResource() override;

  // Returns every block this resource handed out and has not yet been given
  // back to the engine; the counters of live bytes/blocks return to zero
  // (cumulative counts and the peak are kept). Not thread-safe: no other
  // thread may use the resource during release().
  void release() noexcept;

  PoolResourceStats stats() const noexcept;
  std::size_t byte_limit() const noexcept { return byte_limit_; }

 protected:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override;
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override;
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override {
    return this == &other;
  }

 private:
  struct BlockHeader;

  struct alignas(kCacheLineSize) Shard {
    SpinLock lock;
    BlockHeader* head STRATA_GUARDED_BY(lock) = nullptr;
    // Live bytes of this shard not yet added to total_bytes_, in
    // [0, kFlushBytes) (no limit only).
    std::int64_t unflushed STRATA_GUARDED_BY(lock) = 0;
    // Written under `lock`, read by stats() without it.
    std::atomic<std::uint64_t> allocations{0};
    std::atomic<std::uint64_t> deallocations{0};
    std::atomic<std::int64_t> live_blocks{0};
    std::atomic<std::int64_t> live_bytes{0};
    std::atomic<std::int64_t> peak_bytes{0};
  };

  void Link(BlockHeader* header) noexcept;
  void Unlink(BlockHeader* header) noexcept;
  // Limit mode: charges `bytes` to total_bytes_; false if over the limit.
  bool Charge(std::size_t bytes) noexcept;
  // Adds `delta` to total_bytes_ and raises peak_bytes_ if needed.
  void AddToTotal(std::int64_t delta) noexcept;
  static void FreeBlock(BlockHeader* header) noexcept;

  const std::size_t byte_limit_;
  Shard shards_[kShards];
  // With a limit: exact live bytes. Without: the sum of flushed changes.
  alignas(kCacheLineSize) std::atomic<std::int64_t> total_bytes_{0};
  std::atomic<std::int64_t> peak_bytes_{0};
  std::atomic<std::uint64_t> limit_failures_{0};
};

// ---------------------------------------------------------------------------
// MonotonicArena and ConcurrentMonotonicArena
// ---------------------------------------------------------------------------

struct ArenaOptions {
  // Size of the first chunk obtained from the engine (after the optional
  // initial buffer is exhausted). Each further chunk doubles, up to
  // max_chunk_size. A request that does not fit a regular chunk gets a chunk
  // of its own (which does not disturb the growth).
  std::size_t initial_chunk_size = 4096;
  std::size_t max_chunk_size = std::size_t{64} << 20;
};

struct ArenaStats {
  std::size_t allocated_bytes = 0;  // sum of the sizes asked for since Reset
  std::size_t chunk_bytes = 0;      // bytes held in engine chunks
  std::size_t chunks = 0;           // engine chunks held
};

// A bump allocator (the seed's Arena): allocate() moves a pointer through
// the current chunk; deallocate() does nothing; Reset() frees every chunk at
// once and starts over (from the initial buffer, if one was given, and with
// the initial chunk size).
//
// Thread-safety: none. One thread at a time (use ConcurrentMonotonicArena to
// share one).
class MonotonicArena final : public std::pmr::memory_resource {
 public:
  MonotonicArena() noexcept : MonotonicArena(ArenaOptions{}) {}
  explicit MonotonicArena(ArenaOptions options) noexcept;
  // Serves requests from [buffer, buffer + size) first. The buffer is not
  // owned and must outlive the arena (or the next Reset()).
  MonotonicArena(void* buffer, std::size_t size, ArenaOptions options = {}) noexcept;
  MonotonicArena(const MonotonicArena&) = delete;
  MonotonicArena& operator=(const MonotonicArena&) = delete;
  ~MonotonicArena() override;

  // Frees every chunk; every pointer handed out becomes invalid.
  void Reset() noexcept;
  ArenaStats stats() const noexcept;

 protected:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override;
  void do_deallocate(void*, std::size_t, std::size_t) override {}
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override {
    return this == &other;
  }

 private:
  struct Chunk;
  STRATA_NOINLINE void* AllocateSlow(std::size_t bytes, std::size_t alignment);

  const ArenaOptions options_;
  char* const initial_buffer_;
  const std::size_t initial_size_;
  std::uintptr_t cursor_ = 0;  // next free byte of the current chunk
  std::uintptr_t end_ = 0;     // end of the current chunk
  Chunk* chunks_ = nullptr;    // every engine chunk, newest first
  std::size_t next_chunk_size_;
  std::size_t allocated_bytes_ = 0;
  std::size_t chunk_bytes_ = 0;
  std::size_t num_chunks_ = 0;
};

// A thread-safe MonotonicArena. allocate() claims space in the current chunk
// with one compare-and-swap on that chunk's cursor (lock-free); only adding a
// chunk takes a spin lock, and threads that find the chunk full while another
// thread adds one retry on the new chunk. Chunks are never freed before
// Reset(), so a thread holding a stale chunk pointer can never touch freed
// memory (no ABA).
//
// Thread-safety: allocate/deallocate/stats are thread-safe. Reset() and the
// destructor must not run concurrently with any other use.
class ConcurrentMonotonicArena final : public std::pmr::memory_resource {
 public:
  ConcurrentMonotonicArena() noexcept : ConcurrentMonotonicArena(ArenaOptions{}) {}
  explicit ConcurrentMonotonicArena(ArenaOptions options) noexcept;
  // Serves requests from the buffer first (not owned; a buffer too small to
  // hold the chunk header, 32 bytes, is ignored).
  ConcurrentMonotonicArena(void* buffer, std::size_t size, ArenaOptions options = {}) noexcept;
  ConcurrentMonotonicArena(const ConcurrentMonotonicArena&) = delete;
  ConcurrentMonotonicArena& operator=(const ConcurrentMonotonicArena&) = delete;
  ~ConcurrentMonotonicArena() override;

  void Reset() noexcept;
  // allocated_bytes counts bytes consumed in chunks (alignment padding
  // included); exact when no allocation is in flight.
  ArenaStats stats() const noexcept;

 protected:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override;
  void do_deallocate(void*, std::size_t, std::size_t) override {}
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override {
    return this == &other;
  }

 private:
  struct Chunk;
  static void* TryBump(Chunk* chunk, std::size_t bytes, std::size_t alignment) noexcept;
  STRATA_NOINLINE void* AllocateSlow(Chunk* seen, std::size_t bytes, std::size_t alignment);
  void InitBuffer() noexcept;

  const ArenaOptions options_;
  void* const initial_buffer_;
  const std::size_t initial_size_;
  // The chunk allocations bump in. Release-stored after the chunk is
  // initialised (in AllocateSlow), acquire-loaded by allocate().
  alignas(kCacheLineSize) std::atomic<Chunk*> current_{nullptr};
  alignas(kCacheLineSize) mutable SpinLock grow_lock_;
  // Every chunk, newest first (the initial buffer's too).
  Chunk* chunks_ STRATA_GUARDED_BY(grow_lock_) = nullptr;
  std::size_t next_chunk_size_ STRATA_GUARDED_BY(grow_lock_);
  std::atomic<std::size_t> chunk_bytes_{0};
  std::atomic<std::size_t> num_chunks_{0};
};

}  // namespace strata::pmr

#endif  // STRATA_ALLOC_PMR_PMR_H_
