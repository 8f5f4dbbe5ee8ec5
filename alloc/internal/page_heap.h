// alloc/internal/page_heap.h: the bump arena and the page heap.
//
// The arena reserves large 4 MiB-aligned regions from the OS (16 MiB at
// first, doubling up to 256 MiB: modest reservations, so strata runs under
// valgrind) and bump-allocates 4 MiB segments from them. The page heap hands
// out spans (runs of 64 KiB slices) from those segments: first fit over
// free lists bucketed by length, splitting and coalescing with neighbours.
// Free spans stay committed for a decay delay (STRATA_DECAY_MS, default
// 200 ms) so that a program that frees and reallocates does not pay page
// faults again (about 2 us each here); after the delay their pages are
// decommitted (MADV_DONTNEED) and the span is known to be zero. Segments
// stay reserved for the life of the process (free ones are fully
// decommitted): addresses never go back to the OS, so a stale reader of a
// free list can never fault.
//
// Blocks too big for a segment are "huge", and so are blocks of 2 MiB or
// more while huge pages are on (kMinHugeBlockBytes): each gets its own mapping of
// whole 4 MiB chunks with a Segment header in its first slice, registered
// in the segment map; the whole 2 MiB pages a fresh huge block uses are
// advised MADV_HUGEPAGE (transparent huge pages where the system allows
// them: one fault per 2 MiB instead of 512; STRATA_HUGE_PAGES=0 turns it
// off). When the OS refuses the mapping (address space
// exhausted), a run of entirely free segments of the regions is lent to
// the block instead, and given back to the page heap when it is freed: the
// address space the regions keep is never lost to huge blocks. Freed huge blocks are kept (up to kHugeCacheBytes and
// kHugeCacheEntries, for the decay delay) for reuse, then unmapped. Cached
// blocks split (a request takes the chunks it needs of a bigger one, the
// rest stays cached) and merge with cached neighbours (adjacent mappings,
// or the parts of an earlier split), so huge blocks of varying sizes are
// served from memory that is already faulted in, as a page heap would.
//
// Thread-safety: every public method takes the page heap's lock (spans are
// allocated a batch at a time, so the lock is rare). It is last in the
// engine's lock order (engine_lock.h). Fork: the engine's pthread_atfork
// handlers hold the lock across fork() (fork_lock()).
#ifndef STRATA_ALLOC_INTERNAL_PAGE_HEAP_H_
#define STRATA_ALLOC_INTERNAL_PAGE_HEAP_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "alloc/internal/span.h"
#include "alloc/internal/engine_lock.h"

namespace strata::internal {

struct PageHeapStats {
  std::size_t reserved_bytes;
  std::size_t committed_bytes;
  std::size_t decommitted_bytes;  // cumulative
  std::size_t free_committed_bytes;
  std::size_t huge_cache_bytes;
  std::size_t large_live_bytes;
  std::uint64_t large_allocations;
  std::uint64_t large_frees;
  std::size_t metadata_bytes;
};

class PageHeap {
 public:
  constexpr PageHeap() = default;

  // A span for objects of class `size_class` (SpanSlices long). Sets the
  // class map to the class, or to 0 for a tracked span (so that every free
  // of its objects takes the slow path). nullptr when the OS refuses
  // memory.
  Span* AllocSmallSpan(int size_class, bool tracked);
  // Returns an empty small span (all objects back).
  void FreeSmallSpan(Span* span);

  // A block of more than kMaxSmallSize bytes aligned to `alignment`
  // (power of two). *zeroed tells whether its memory is known to be zero.
  // With `tracked_usable` not null the block is a tracked one: its span (or
  // huge segment) is marked tracked, so that its free calls the tracking
  // hooks (hooks.h), and *tracked_usable is its usable size (what
  // LookupBlock says): the caller records it without a lookup of its own
  // (a sample's lookup found the span's lines cold again, some 3.3 cache
  // misses a sampled large block: bench/RESULTS.md, "Sampling cost").
  void* AllocLarge(std::size_t size, std::size_t alignment, bool* zeroed, std::size_t* tracked_usable = nullptr);
  // Frees a large or huge block; `ptr` must be the block's start. False
  // (and nothing done) when the block is not allocated: a double free that
  // raced past the caller's lock-free lookup.
  bool FreeLarge(Segment* segment, Span* span);

  // Grows the large or huge block at `ptr` (its start; `segment`/`span` as
  // LookupBlock found them, span nullptr for huge) to `new_size` bytes
  // without moving it, when the space after it is free: the rest of a huge
  // block's mapping or a cached huge block right after it, the free span
  // right after a large span in its segment. False (nothing changed) when
  // it cannot. A tracked block stays tracked: the caller tells the
  // tracking hooks its new size (hooks.h, on_resize).
  bool GrowInPlace(Segment* segment, Span* span, std::uintptr_t ptr, std::size_t new_size);

  // Decommits every free span and unmaps cached huge blocks. Returns bytes.
  std::size_t ReleaseAll();
  // Decommits what has been free longer than the decay delay.
  void MaybePurge();

  PageHeapStats Stats();
  void set_decay_ns(std::uint64_t ns) { decay_ns_ = ns; }
  // Whether fresh huge mappings ask for transparent huge pages (default
  // on; STRATA_HUGE_PAGES=0 turns it off). Set once at process init.
  void set_huge_pages(bool on) { huge_pages_ = on; }

  // Hard memory limit (set through strata::SetHardMemoryLimit in
  // alloc/monitor.h; 0 = none). A span or huge block that would take
  // committed_bytes beyond it first makes the heap give back its free
  // committed spans and cached huge blocks, then fails with nullptr.
  // Relaxed: a limit change need not order with anything (pairs with the
  // relaxed load in WithinHardLimitLocked).
  void set_hard_limit(std::size_t bytes) { hard_limit_.store(bytes, std::memory_order_relaxed); }
  std::size_t hard_limit() const { return hard_limit_.load(std::memory_order_relaxed); }

  // The engine's pthread_atfork handlers drive this lock (engine_lock.h).
  EngineLock& fork_lock() { return lock_; }

 private:
  static constexpr int kBuckets = kSlicesPerSegment;  // by length 1..63
  static constexpr std::size_t kFirstRegion = std::size_t{16} << 20;
  static constexpr std::size_t kMaxRegion = std::size_t{256} << 20;
  static constexpr std::size_t kHugeCacheBytes = std::size_t{256} << 20;
  // Freed huge blocks bigger than this are unmapped at once, not cached.
  static constexpr std::size_t kHugeCacheMaxBlock = std::size_t{64} << 20;
  // Free committed spans kept however the heap grows (decay still applies).
  static constexpr std::size_t kFreeCommittedFloor = std::size_t{4} << 20;
  static constexpr int kHugeCacheEntries = 32;
  // While huge pages are on, blocks of this size or more are huge blocks
  // even when a segment could hold them (up to 4 MiB less a slice): in a
  // segment their pages fault in 4 KiB at a time (a segment's 2 MiB
  // halves are shared with small spans and the segment's header, so they
  // cannot be advised), in a mapping of their own the whole 2 MiB pages
  // they use can be (one fault each instead of 512).
  static constexpr std::size_t kMinHugeBlockBytes = std::size_t{2} << 20;

  Span* AllocSpanLocked(int slices, int align_slices) STRATA_REQUIRES(lock_);
  void FreeSpanLocked(Span* span) STRATA_REQUIRES(lock_);
  // Extends a committed free span shorter than `slices` with the
  // decommitted free span right after it, to exactly `slices` (the rest
  // stays free and decommitted). False when no such pair exists.
  bool ExtendCommittedLocked(int slices) STRATA_REQUIRES(lock_);
  // Decommits free committed spans (shortest first, not `keep`) worth up
  // to `bytes`, keeping kFreeCommittedFloor of them.
  void TrimFreeCommittedLocked(std::size_t bytes, const Span* keep) STRATA_REQUIRES(lock_);
  Segment* NewSegmentLocked() STRATA_REQUIRES(lock_);
  // Makes slices 1..63 of `seg` (a normal segment, header in place) one
  // free, decommitted, zeroed span and lists it.
  void InitWholeFreeSpanLocked(Segment* seg) STRATA_REQUIRES(lock_);
  // A huge block's home when the OS refuses a mapping: `mapping` bytes
  // (whole segments; its mapping_size) of consecutive, entirely free segments of the
  // regions, starting at a multiple of `align`, taken off the free lists
  // and decommitted; the first one's header becomes the huge header.
  // nullptr when no such run exists.
  Segment* BorrowSegmentsLocked(std::size_t mapping, std::size_t align) STRATA_REQUIRES(lock_);
  // Gives a freed borrowed huge block's segments back to the free lists
  // (decommitted, headers rebuilt).
  void ReturnSegmentsLocked(Segment* seg) STRATA_REQUIRES(lock_);
  void InsertFree(Span* span) STRATA_REQUIRES(lock_);
  void RemoveFree(Span* span) STRATA_REQUIRES(lock_);
  void SetHeads(Span* span) STRATA_REQUIRES(lock_);
  // Makes slices [from, to) of `seg` one free span in the given state and
  // lists it (nothing when from >= to). Accounting is the caller's.
  void InsertFreePiece(Segment* seg, int from, int to, bool committed, bool zeroed, std::uint64_t since)
      STRATA_REQUIRES(lock_);
  void Decommit(Span* span) STRATA_REQUIRES(lock_);
  // Merges adjacent free spans of the same commit state (after a purge,
  // and before growing the heap).
  void CoalesceLocked() STRATA_REQUIRES(lock_);
  void PurgeLocked(std::uint64_t now, bool everything) STRATA_REQUIRES(lock_);
  // True when committing `bytes` more stays within the hard limit.
  bool WithinHardLimitLocked(std::size_t bytes) const STRATA_REQUIRES(lock_);
  void* AllocHugeLocked(std::size_t size, std::size_t alignment, bool* zeroed, std::size_t* tracked_usable)
      STRATA_REQUIRES(lock_);
  void FreeHugeLocked(Segment* segment) STRATA_REQUIRES(lock_);
  // Cuts a cached huge block after its first `head_bytes` (a multiple of
  // 4 MiB); the rest becomes a cached block of its own.
  void SplitHugeLocked(Segment* segment, std::size_t head_bytes) STRATA_REQUIRES(lock_);
  // Removes `segment` from the huge cache; false when it is not there.
  bool TakeCachedHugeLocked(Segment* segment) STRATA_REQUIRES(lock_);
  // The cached (free) huge block that starts where `segment` ends, or
  // nullptr.
  Segment* FreeHugeAfterLocked(const Segment* segment) const STRATA_REQUIRES(lock_);
  // Takes cached `next` (right after `segment`) out of the cache and into
  // `segment`: mapping, commit count and segment map. False when `next`
  // is not cached.
  bool AbsorbHugeLocked(Segment* segment, Segment* next) STRATA_REQUIRES(lock_);
  // Absorbs the cached huge blocks adjacent to a freed one; returns the
  // merged block (not in the cache).
  Segment* MergeFreeHugeLocked(Segment* segment) STRATA_REQUIRES(lock_);
  // Takes a huge mapping out of the segment map and the accounting and
  // queues it on detached_ for its munmap.
  void UnmapHugeLocked(Segment* segment) STRATA_REQUIRES(lock_);
  // Unmaps a detached list (without the lock held: munmap of a big,
  // faulted-in mapping takes milliseconds, which other threads would spend
  // spinning on the lock).
  void ReleaseDetached(Segment* list) STRATA_EXCLUDES(lock_);
  // Unmaps detached_ at once (a retry that needs the address space now).
  void ReleaseDetachedLocked() STRATA_REQUIRES(lock_);
  // Gives a detached mapping's accounting back after its munmap failed.
  void UndoDetachLocked(std::size_t mapping, std::size_t committed) STRATA_REQUIRES(lock_);

  // Holds lock_; on destruction releases it, then unmaps what the locked
  // section detached. Detached mappings of a thread that forks between the
  // two steps stay mapped, unreachable, in the child.
  class STRATA_SCOPED_CAPABILITY Locked {
   public:
    explicit Locked(PageHeap* heap) STRATA_ACQUIRE(heap->lock_) : heap_(heap) { heap_->lock_.Lock(); }
    ~Locked() STRATA_RELEASE() {
      Segment* detached = heap_->detached_;
      heap_->detached_ = nullptr;
      heap_->lock_.Unlock();
      heap_->ReleaseDetached(detached);
    }
    Locked(const Locked&) = delete;
    Locked& operator=(const Locked&) = delete;

   private:
    PageHeap* heap_;
  };

  EngineLock lock_;
  Span* free_[kBuckets + 1] STRATA_GUARDED_BY(lock_) = {};
  std::uintptr_t region_next_ STRATA_GUARDED_BY(lock_) = 0;
  std::uintptr_t region_end_ STRATA_GUARDED_BY(lock_) = 0;
  std::size_t next_region_size_ STRATA_GUARDED_BY(lock_) = kFirstRegion;
  Segment* huge_cache_ STRATA_GUARDED_BY(lock_) = nullptr;
  Segment* detached_ STRATA_GUARDED_BY(lock_) = nullptr;  // to unmap (next_cached links)
  std::uint64_t last_purge_ns_ STRATA_GUARDED_BY(lock_) = 0;
  std::uint64_t decay_ns_ = 200'000'000;
  bool huge_pages_ = true;
  std::atomic<std::size_t> hard_limit_{0};  // bytes; 0 = none
  // Accounting (under lock_).
  std::size_t reserved_bytes_ = 0;
  std::size_t committed_bytes_ = 0;
  std::size_t decommitted_bytes_ = 0;
  std::size_t free_committed_bytes_ = 0;
  std::size_t huge_cache_bytes_ = 0;
  int huge_cache_entries_ = 0;
  std::size_t large_live_bytes_ = 0;
  std::uint64_t large_allocations_ = 0;
  std::uint64_t large_frees_ = 0;
};

// Monotonic clock in nanoseconds (coarse, vDSO; never allocates).
std::uint64_t NowNanos() noexcept;

}  // namespace strata::internal

#endif  // STRATA_ALLOC_INTERNAL_PAGE_HEAP_H_
