// alloc/internal/central_pool.h: one central pool per size class.
//
// Two tiers:
//   1. A lock-free LIFO transfer stack of batches (2 up to ClassInfo.batch
//      objects, each with its count; see transfer_stack.h): a thread cache
//      that overflows pushes a batch, one that runs dry pops the most
//      recently pushed (still cache-warm) one. In steady state (including
//      producer/consumer programs, where the consumer's frees flow back to
//      the producer as batches) objects move between threads through this
//      tier alone, two CASes per batch. A thread cache's batch is its
//      objects' addresses, kept in the stack's slot (InsertBatch, "unlinked":
//      the objects are not touched, cache_slots.h); the thread that takes
//      it copies them into its array (RemoveForCache). A chain (Insert:
//      single frees, an owner-frees build's messages) is linked through
//      FreeObject::next; a caller that wants a chain (Remove) gets an
//      unlinked batch linked on the way out. A partial batch takes this
//      tier too when it is to be reused soon: a list in slow start that
//      overflows hands over the newest half of what it holds, and its next
//      refill takes it back; through the spans every object would be
//      checked and relinked under the lock and unlinked again. What a thread gives back to return memory (a flush
//      at exit, an idle list shrinking) goes to the spans unless it is a
//      whole batch, so that spans can empty and go back to the page heap,
//      and so do single objects (where they are checked, and where a block
//      freed by a thread that never allocates its class belongs). The tier
//      is bounded (kMaxTransferBytes of full batches per class); past it
//      batches go to tier 2, unless batches flow through the tier (others
//      took half its bound since it last grew: a consumer that ran ahead
//      of its producer, as 4 threads on 2 cores do in turns of a time
//      slice), when the bound doubles, up to kMaxFlowTransferBytes, and
//      kFlowGrowthBudgetBytes over all classes (GrowForFlow). So a program
//      whose frees and allocations of a class flow between threads may
//      keep up to 8 MiB of the class free in this tier after the flow
//      stops (32 MiB over all classes), until strata::ReleaseMemory
//      (Drain).
//      Batches cut out of an order: blocks a program allocated one after
//      another and frees in that order come back as long runs of
//      neighbours, and a batch of them, refilled into a thread, hands them
//      out in address order again: a program that writes or reads them in
//      turn (a producer filling a batch of objects, its consumer checking
//      them) reads a stream the hardware prefetches. But a thread's
//      batches do not line up with the runs: each move cuts some, the
//      first tier never joins pieces, and in a producer/consumer flow
//      between several threads the runs shrink to a few blocks within
//      seconds (`xmalloc_test` at 4 threads: 5-40 runs a batch of 256,
//      against 2 where they stay whole, at 1.3-2x the time per object).
//      So a batch made of many shorter runs (IsCutOrder: 8 runs or more,
//      8 blocks a run on average or more) goes to the spans instead, whose
//      bitmaps hand the pieces out again in address order; batches of
//      whole runs, and unordered ones (a program freeing in no particular
//      order: a run a block), stay in this tier. The count is an SSE2 pass
//      over the batch's addresses (address_runs.h): no block is touched.
//   2. Spans: partly used spans of the class on a list guarded by the
//      pool's lock (taken once per batch, only when tier 1 is empty or
//      full; never held while the page heap's lock is taken, see
//      engine_lock.h). Objects come from those that came back to a span,
//      then from its uncarved tail. In normal mode the objects that came
//      back are the span's set bits in the block bitmap (span.h), not a
//      list: returning an object sets its bit, a refill takes set bits a
//      bitmap word at a time from the span's scan_word on. A batch's run
//      of neighbouring blocks (what a program that frees in allocation
//      order gives back) is returned a word at a time too: one span check,
//      its carved bound from its first block, and one load and store per
//      1 KiB of blocks, a block freed twice still reported by address. Neither reads
//      or writes the objects (a list linked through them cost a cache miss
//      per object on each side, on lines the program's cores own), and a
//      refill gets the span's objects in address order (starting at the
//      span's colour and wrapping, as its carving does: see Colour), so a
//      program that reads what it allocated in order reads a stream.
//      Hardened mode
//      keeps a list per span (encoded links, checked as followed): its
//      bitmap means "allocated to a user". Returning objects finds each
//      one's span through the page maps, and a span whose objects have
//      all come back goes to the page heap.
//      A new span's carving starts at an offset of its own and wraps
//      (Colour, Span::carve_start), so that the most used objects of
//      different spans do not compete for the same cache sets.
//
// Checks at this tier (always on, see hardening.h): every object that comes
// back to its span is checked against the span (a block of this class,
// at a block boundary, within the carved part) and against the block
// bitmap (normal mode: not back already, i.e. not freed twice; hardened
// mode: not allocated to a user). Bad objects are reported
// after the lock is released and left out, so the pool stays consistent.
// In hardened mode links are encoded and every link popped from a span's
// free list is validated.
//
// The tracked pools (sampled or leak-checked blocks, one object at a time,
// on the slow path) have no first tier: their objects go straight back to
// their spans, so that a freed sampled block is not parked per class (up
// to kMaxTransferBytes each) beside the normal pool's own. Their spans are
// the fewest slices that hold one object (SpanSlices/SpanObjects in
// size_classes.h), not the class's packing span. A tracked pool keeps
// spans that empty, up to kTrackedIdleBytes of them per class (at least
// one span), instead of handing each back to the page heap.
//
// Thread-safety: all methods are thread-safe. The pool is cache-line
// padded so that pools of neighbouring classes do not share lines. The
// pools' fields sit together (about 200 bytes per class); the first tier's
// slots (1,048 bytes each, 1 MiB of address space per class) are kept
// apart, so that the classes a program never uses cost it no memory and a
// class costs only the slots its batches use.
#ifndef STRATA_ALLOC_INTERNAL_CENTRAL_POOL_H_
#define STRATA_ALLOC_INTERNAL_CENTRAL_POOL_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "alloc/internal/cache_slots.h"
#include "alloc/internal/engine_lock.h"
#include "alloc/internal/page_heap.h"
#include "alloc/internal/span.h"
#include "alloc/internal/transfer_stack.h"

namespace strata::internal {

class alignas(kCacheLineSize) CentralPool {
  static constexpr int kMaxTransferBatches = 1024;  // the first tier's capacity in slots

 public:
  // Each batch keeps its objects' addresses beside it (see RemoveChain).
  using Transfer = TransferStack<FreeObject, kMaxTransferBatches, kMaxBatch>;

  constexpr CentralPool() = default;
  // A pool apart from the engine's g_central (tests): its first tier keeps
  // its batches in `slots`, not in the slots of the class that the engine's
  // pool of the class uses (two stacks on one slot array would hand out the
  // same slots). Such a pool serves one class.
  constexpr explicit CentralPool(Transfer::Slots* slots) : own_slots_(slots) {}

  // Removes up to `n` objects (n <= batch) as a chain linked through
  // FreeObject::next; returns how many (0 when out of memory).
  int Remove(int size_class, int n, FreeObject** head);
  // For a thread cache's refill: the batch on top of the first tier when
  // there is one (it may hold more than `n`: the objects are free and warm
  // already, and a cache in slow start would otherwise take them from the
  // spans a few at a time, under the lock), else as Remove, with the
  // objects carved to end on a line boundary (up to a line's worth more
  // than `n`). The objects' addresses go to out[0, returned) in the order
  // of a thread cache's array (cache_slots.h: the one to hand out first
  // last); `out` has room for RefillBound(size_class) (cache_slots.h). A first-tier batch that a
  // cache handed back (InsertBatch) is copied without touching its objects.
  // `first_refill` (the thread has never allocated this class): fresh
  // lines from the current span's uncarved tail when it has one, so that
  // a new thread's hot objects share no line with other threads' objects,
  // however they were freed (passive false sharing), and lie
  // kCarveSeparation bytes or more past the previous carve's. `owner` (the cache's
  // owner slot, remote_free.h; 0 for none) becomes the owner of every span
  // objects are taken from (not of a first-tier batch's, which may mix
  // spans): the blocks' frees by other threads then come back to it.
  int RemoveForCache(int size_class, int n, bool first_refill, std::uint32_t owner, FreeObject** out);
  // A thread cache's batch of `n` objects (1 <= n <= kMaxBatch), given by
  // their addresses and not linked: a whole batch goes to the first tier
  // as addresses only (the objects are not touched, see cache_slots.h), a
  // partial one when `reuse_soon`, as Insert; otherwise they are linked
  // and go to the spans.
  void InsertBatch(int size_class, FreeObject* const* objects, int n, bool reuse_soon);
  // Inserts a chain of `n` objects (any n >= 1) linked through next. A
  // whole batch goes to the first tier when it has room; a partial one
  // (2 <= n < batch) only when `reuse_soon` (see the header comment).
  // `objects`, when given, holds the chain's n objects in order (n <=
  // kMaxBatch): a first-tier batch keeps them, so that a thread cache that
  // takes it copies them instead of walking the chain.
  void Insert(int size_class, FreeObject* head, int n, bool reuse_soon = false,
              FreeObject* const* objects = nullptr);
  // Moves every batch of tier 1 to the spans (so empty spans can go back).
  void Drain(int size_class);

  // Objects handed out to caches and users (removed minus inserted) by
  // this pool of class `size_class`. Exact when no thread works on the
  // pool, else an estimate.
  std::int64_t objects_out(int size_class) const;
  // Free objects held by the pool (both tiers; uncarved space excluded).
  std::size_t free_objects(int size_class) const;
  std::uint64_t spans_allocated() const { return spans_allocated_.load(std::memory_order_relaxed); }
  // The first tier's batches (exact when quiescent) and its current bound
  // in batches (see GrowForFlow); for statistics and tests.
  std::uint32_t first_tier_batches(int size_class) const;
  std::uint32_t first_tier_bound(int size_class) const;

  // The engine's pthread_atfork handlers drive this lock (engine_lock.h).
  EngineLock& fork_lock() { return lock_; }

 private:
  static constexpr std::size_t kMaxTransferBytes = 256 * 1024;
  // What the first tier may grow to while batches flow through it (see
  // GrowForFlow), per class and over all classes' growth together.
  static constexpr std::size_t kMaxFlowTransferBytes = std::size_t{8} << 20;
  static constexpr std::size_t kFlowGrowthBudgetBytes = std::size_t{32} << 20;
  // Idle spans a tracked pool keeps per class (at least one span): sampled
  // blocks are few and short-lived, and a span handed back on each free
  // made samples take spans from the page heap (its lock, the bitmap
  // words, fresh pages the program then faults in).
  static constexpr std::size_t kTrackedIdleBytes = 256 * 1024;
  // A batch of at least kMinCutOrderBatch blocks made of at least
  // kMinCutOrderRuns runs of neighbours (address_runs.h) averaging
  // kMinCutOrderRunLength blocks or more is an allocation order cut into
  // pieces: it goes to the spans, which put the pieces back in address
  // order (see "Batches cut out of an order" above).
  static constexpr int kMinCutOrderBatch = 64;
  static constexpr std::uint32_t kMinCutOrderRuns = 8;
  static constexpr std::uint32_t kMinCutOrderRunLength = 8;

  // A tracked pool (one of g_tracked_central) hands out spans that are
  // invisible to the class map: every free of their objects reaches the
  // slow path, where the tracking hooks see it. Told by address, not by a
  // flag: a flag set at compile time would put the whole array in .data
  // (file-backed, 435 KiB) instead of .bss.
  bool tracked() const;
  // The first tier's bound in batches, and what it may grow to.
  int MaxBatches(int size_class) const;
  int MaxFlowBatches(int size_class) const;
  // The bytes of a whole batch of the class.
  static std::size_t BatchBytes(int size_class);
  // Called when a whole batch found the first tier full: when other
  // threads took at least half the tier's bound in batches since it last
  // grew (a flow: batches pushed are being popped, but the pushers ran
  // ahead, as a consumer does in its time slice while its producer
  // waits for a core), doubles the bound, up to kMaxFlowTransferBytes
  // worth, while the growth of all classes' first tiers stays within
  // kFlowGrowthBudgetBytes; true when it grew. Otherwise the batch goes to the spans. The
  // bound goes back to kMaxTransferBytes worth on Drain, which also
  // starts the count of pops afresh.
  bool GrowForFlow(int size_class);
  // Whether objects[0, n) is an allocation order cut into pieces (see
  // kMinCutOrderRuns), which the first tier does not take.
  static bool IsCutOrder(int size_class, FreeObject* const* objects, int n);
  // Pops a first-tier batch as a chain (an unlinked batch, InsertBatch,
  // is linked here), its object count in *count; nullptr when the tier
  // holds none.
  FreeObject* PopChain(int size_class, std::uint32_t* count);
  // Objects in the first tier's batches (transfer_stack.h HeldCount).
  std::uint64_t TransferObjects(int size_class) const;
  // The first tier's slots for this (normal, not tracked) pool, on a page
  // of their own (see transfer_stack.h).
  Transfer::Slots& transfer_slots(int size_class) const;
  // The batch on top of the first tier (2 up to batch objects) when
  // `whole_batch_ok` and one is there, else up to `n` objects from the
  // spans.
  // The coherence unit two threads' objects must not share.
  static constexpr std::size_t kCoherenceLine = 64;
  // The least distance between the head of a thread's first carve
  // (CarveFreshLines) and other threads' carves, before and after it.
  // Lines a few apart still interfere: a core's prefetchers pull its
  // neighbours' lines while they write them (cache_thrash and
  // cache_scratch at 4 threads on 2 cores: 8-12% more CPU time with
  // 64-byte or 128-byte separation than with 256 bytes or more).
  static constexpr std::size_t kCarveSeparation = 256;
  // Objects per run that starts and ends on a line boundary.
  static int ObjectsPerLineRun(int size_class);
  int RemoveChain(int size_class, int n, bool whole_batch_ok, std::uint32_t owner, FreeObject** head);
  // `align_carve`: carving ends on a line boundary (see RemoveForCache).
  // Objects go to out[0, returned) in the order to hand them out (out[0]
  // first); `out` has room for n, and for RefillBound when `align_carve`.
  int RemoveFromSpans(int size_class, int n, bool align_carve, std::uint32_t owner, FreeObject** out);
  // At least `n` objects (at most RefillBound) from fresh lines of
  // the current span's uncarved tail, 0 when it has none, their addresses
  // in out[] as RemoveForCache gives them. The head (handed out first) is
  // the first object at or past the next kCarveSeparation boundary; the
  // objects before it (near the previous carve) are handed out last.
  int CarveFreshLines(int size_class, int n, std::uint32_t owner, FreeObject** out);
  // Makes `owner` (non-zero) the owner of `span`, a span of this normal pool.
  void ClaimLocked(int size_class, Span* span, std::uint32_t owner) STRATA_REQUIRES(lock_);
  // Puts `span` at the head of the partial list (a new span, or one that
  // gets an object back while off the list).
  void LinkPartialLocked(Span* span) STRATA_REQUIRES(lock_);
  // Takes `span` off the partial list (no object left to hand out, or
  // every object back and the span leaving).
  void UnlinkExhaustedLocked(Span* span) STRATA_REQUIRES(lock_);
  // After objects were taken from `span` (of `objects` objects) for
  // `owner`: the span becomes the owner's (owner frees), and leaves the
  // partial list when it has nothing left to give.
  void TookFromSpanLocked(int size_class, Span* span, std::uint32_t owner, std::uint32_t objects)
      STRATA_REQUIRES(lock_);
  // The carve start of a new span of the class (see Span::carve_start).
  // A program's hot objects of a class are the first ones carved from its
  // spans; were every span carved from its start, the hot objects of all
  // classes would sit at the same low offsets of 64 KiB-aligned spans,
  // which map to the same sets of a cache indexed by the address bits
  // below its way size (64-128 KiB on the 8-way L2 caches of current x86
  // cores), and evict each other while most sets stay unused. The offset
  // comes from the span's address (its slice number, by the golden
  // ratio), so neighbouring spans spread evenly over the span and a span
  // that comes back at the same address starts where it did before; it is
  // rounded to a line run (so that carves stay line-aligned).
  static std::uint32_t Colour(int size_class, const Span* span);
  // The index of the object carved `k`-th from `span`, and the inverse.
  static std::uint32_t CarvedObject(const Span* span, std::uint32_t k, std::uint32_t objects) {
    std::uint32_t i = span->carve_start + k;
    return i >= objects ? i - objects : i;
  }
  static std::uint32_t CarveOrder(const Span* span, std::uint32_t index, std::uint32_t objects) {
    return index >= span->carve_start ? index - span->carve_start : index + objects - span->carve_start;
  }
  // Returns `n` objects to their spans: batch[0, n) when `batch` is
  // given (they are not read or written), else the chain from `head`.
  void InsertToSpans(int size_class, FreeObject* const* batch, FreeObject* head, int n);

  Transfer transfer_;
  // Objects the span tier handed out, net of those that came back to it:
  // objects out plus those in the first tier. The first tier itself keeps
  // no counter beside its stack (a batch moves through it with the
  // stack's two CASes alone: a shared counter would be one more line
  // moving between the cores of a producer and a consumer per batch).
  std::atomic<std::int64_t> span_out_{0};
  // The first tier's pop count (TransferStack::pops) when it last grew.
  std::atomic<std::uint64_t> flow_mark_{0};
  std::atomic<std::size_t> span_free_objects_{0};
  std::atomic<std::uint64_t> spans_allocated_{0};
  EngineLock lock_;
  Span* partial_ STRATA_GUARDED_BY(lock_) = nullptr;
  Transfer::Slots* own_slots_ = nullptr;  // null: g_transfer_slots of the class
  // Tracked pools: spans kept on the partial list with every object back
  // (at most kTrackedIdleBytes of them; see InsertToSpans).
  std::uint32_t idle_spans_ STRATA_GUARDED_BY(lock_) = 0;
};

// The pools behind tracked allocations (sampled or leak-checked blocks).
struct TrackedCentralPool : CentralPool {};

}  // namespace strata::internal

#endif  // STRATA_ALLOC_INTERNAL_CENTRAL_POOL_H_
