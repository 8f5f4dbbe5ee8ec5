#include "alloc/internal/central_pool.h"

#include <algorithm>
#include <cstdint>

#include "alloc/internal/address_runs.h"
#include "alloc/internal/errors.h"
#include "alloc/internal/globals.h"
#include "alloc/internal/hardening.h"
#include "alloc/internal/page_map.h"

namespace strata::internal {

constinit PageHeap g_page_heap;
constinit CentralPool g_central[kNumClasses];
constinit TrackedCentralPool g_tracked_central[kNumClasses];

namespace {

// First-tier slots per normal pool, apart from the pools (see
// transfer_stack.h); tracked pools have no first tier. A slot is 1,048
// bytes with its batch's object addresses: a class's slots span 1 MiB of
// address space, of which a program touches the slots its batches use.
alignas(4096) constinit CentralPool::Transfer::Slots g_transfer_slots[kNumClasses];

}  // namespace

CentralPool::Transfer::Slots& CentralPool::transfer_slots(int size_class) const {
  // Callers check !tracked().
  return STRATA_PREDICT_TRUE(own_slots_ == nullptr) ? g_transfer_slots[size_class] : *own_slots_;
}

bool CentralPool::tracked() const {
  const auto self = reinterpret_cast<std::uintptr_t>(this);
  return self >= reinterpret_cast<std::uintptr_t>(&g_tracked_central[0]) &&
         self < reinterpret_cast<std::uintptr_t>(&g_tracked_central[kNumClasses]);
}

int CentralPool::MaxBatches(int size_class) const {
  std::size_t n = kMaxTransferBytes / BatchBytes(size_class);
  if (n < 2) n = 2;
  if (n > kMaxTransferBatches) n = kMaxTransferBatches;
  return static_cast<int>(n);
}

int CentralPool::MaxFlowBatches(int size_class) const {
  std::size_t n = kMaxFlowTransferBytes / BatchBytes(size_class);
  const auto base = static_cast<std::size_t>(MaxBatches(size_class));
  if (n < base) n = base;
  if (n > kMaxTransferBatches) n = kMaxTransferBatches;
  return static_cast<int>(n);
}

std::uint32_t CentralPool::first_tier_batches(int /*size_class*/) const { return tracked() ? 0 : transfer_.depth(); }

std::uint32_t CentralPool::first_tier_bound(int size_class) const {
  if (tracked()) return 0;
  const auto base = static_cast<std::uint32_t>(MaxBatches(size_class));
  const std::uint32_t limit = transfer_.limit();
  return limit > base ? limit : base;
}

namespace {
// Bytes the first tiers of all classes have grown by past their bound
// (CentralPool::GrowForFlow); given back by Drain.
constinit std::atomic<std::size_t> g_flow_growth_bytes{0};
}  // namespace

std::size_t CentralPool::BatchBytes(int size_class) {
  const SizeClassInfo& info = ClassInfo(size_class);
  return static_cast<std::size_t>(info.batch) * info.size;
}

bool CentralPool::GrowForFlow(int size_class) {
  const auto base = static_cast<std::uint32_t>(MaxBatches(size_class));
  const std::uint32_t own = transfer_.limit();
  const std::uint32_t limit = own > base ? own : base;
  const auto most = static_cast<std::uint32_t>(MaxFlowBatches(size_class));
  if (limit >= most) return false;
  const std::uint64_t pops = transfer_.pops();
  if (Transfer::PopsSince(pops, flow_mark_.load(std::memory_order_relaxed)) < limit / 2) return false;
  // Growers of one class may race: the first to move the limit wins, the
  // others find it moved and charge nothing.
  const std::uint32_t grown = limit * 2 < most ? limit * 2 : most;
  const std::size_t extra = static_cast<std::size_t>(grown - limit) * BatchBytes(size_class);
  std::size_t used = g_flow_growth_bytes.load(std::memory_order_relaxed);
  do {
    if (used + extra > kFlowGrowthBudgetBytes) return false;
  } while (!g_flow_growth_bytes.compare_exchange_weak(used, used + extra, std::memory_order_relaxed));
  if (!transfer_.CompareAndSetLimit(own, grown)) {
    g_flow_growth_bytes.fetch_sub(extra, std::memory_order_relaxed);
    return false;
  }
  flow_mark_.store(pops, std::memory_order_relaxed);
  return true;
}

std::uint64_t CentralPool::TransferObjects(int size_class) const {
  return tracked() ? 0 : transfer_.HeldCount(transfer_slots(size_class));
}

std::int64_t CentralPool::objects_out(int size_class) const {
  return span_out_.load(std::memory_order_relaxed) - static_cast<std::int64_t>(TransferObjects(size_class));
}

std::size_t CentralPool::free_objects(int size_class) const {
  return TransferObjects(size_class) + span_free_objects_.load(std::memory_order_relaxed);
}

int CentralPool::Remove(int size_class, int n, FreeObject** head) {
  return RemoveChain(size_class, n, n == ClassInfo(size_class).batch, 0, head);
}

namespace {

// A first-tier batch whose objects are not linked (InsertBatch): its value
// is its first object's address with this bit set, and its hints hold all
// of its objects. A batch pushed as a chain (Insert) has the bit clear.
constexpr std::uintptr_t kUnlinkedBatch = 1;

FreeObject* TagUnlinked(FreeObject* first) {
  return reinterpret_cast<FreeObject*>(reinterpret_cast<std::uintptr_t>(first) | kUnlinkedBatch);
}
bool IsUnlinked(const FreeObject* value) { return (reinterpret_cast<std::uintptr_t>(value) & kUnlinkedBatch) != 0; }

// Links objects[0, n) in that order into a chain; returns its head.
FreeObject* LinkObjects(FreeObject* const* objects, int n) {
  for (int i = 0; i + 1 < n; ++i) SetNext(objects[i], objects[i + 1]);
  SetNext(objects[n - 1], nullptr);
  return objects[0];
}

// Whether objects of `span` came back to it and can be handed out again.
// Normal mode counts them: every carved object that is not out (in a cache
// or with a user) is back, its bit set. Hardened mode keeps them on the
// span's free list (a list whose rest was dropped as corrupt no longer
// holds them all).
bool SpanHasReturned(const Span* span) {
  return Hardened() ? span->free_list != nullptr : span->carved > span->allocated;
}

// The words of a span's part of the block bitmap.
std::uint32_t SpanWords(const Span* span) { return static_cast<std::uint32_t>(span->bytes() >> (kGranuleShift + 6)); }

// A span's scan order over its bitmap words: from the word of the object
// its carving starts at (its colour, CentralPool::Colour) to its last word,
// then from its first. The objects a span hands out again first then lie
// at its colour's offset, as its first carved ones do, and not at the low
// offsets of every span, where the hot objects of all classes would share
// cache sets and page offsets (loads then wait on unrelated stores with
// the same low address bits). ScanWord: the word at position `r` of that
// order (relative to the span's first word); ScanPosition: the inverse.
std::uint32_t ColourWord(const Span* span, std::uint32_t size) {
  return static_cast<std::uint32_t>((static_cast<std::uint64_t>(span->carve_start) * size) >> (kGranuleShift + 6));
}
std::uint32_t ScanWord(const Span* span, std::uint32_t size, std::uint32_t r) {
  const std::uint32_t w = ColourWord(span, size) + r;
  const std::uint32_t words = SpanWords(span);
  return w >= words ? w - words : w;
}
std::uint32_t ScanPosition(const Span* span, std::uint32_t size, std::uint32_t w) {
  const std::uint32_t c = ColourWord(span, size);
  return w >= c ? w - c : w + SpanWords(span) - c;
}

// Writes a chain of `n` objects from `head` into out[0, n) for a thread
// cache's array: the head (handed out first) at out[n - 1].
void ChainToArray(FreeObject* head, int n, FreeObject** out) {
  for (int i = n - 1; i >= 0; --i) {
    out[i] = head;
    head = GetNext(head);
  }
}

}  // namespace

FreeObject* CentralPool::PopChain(int size_class, std::uint32_t* count) {
  FreeObject* objects[Transfer::kMaxHints];
  std::uint32_t n_objects = 0;
  FreeObject* value =
      transfer_.Pop(transfer_slots(size_class), count, objects, &n_objects, ClassInfo(size_class).batch);
  if (value == nullptr) return nullptr;
  return IsUnlinked(value) ? LinkObjects(objects, static_cast<int>(*count)) : value;
}

int CentralPool::RemoveForCache(int size_class, int n, bool first_refill, std::uint32_t owner, FreeObject** out) {
  if (tracked()) owner = 0;  // tracked spans are not in the class map
  if (first_refill) {
    int got = CarveFreshLines(size_class, n, owner, out);
    if (got > 0) {
      span_out_.fetch_add(got, std::memory_order_relaxed);
      return got;
    }
  }
  if (!tracked()) {
    std::uint32_t count = 0;
    std::uint32_t n_objects = 0;
    // The hints land in `out` (room for kMaxBatch): an unlinked batch's are
    // the objects in the order its cache held them, so they are the array.
    if (FreeObject* value = transfer_.Pop(transfer_slots(size_class), &count, out, &n_objects,
                                          ClassInfo(size_class).batch)) {
      if (IsUnlinked(value)) return static_cast<int>(count);
      // A chain (its hints, when it has them all, in chain order).
      if (n_objects == count) {
        std::reverse(out, out + count);
      } else {
        ChainToArray(value, static_cast<int>(count), out);
      }
      return static_cast<int>(count);
    }
  }
  int got = RemoveFromSpans(size_class, n, /*align_carve=*/true, owner, out);
  if (got > 0) {
    span_out_.fetch_add(got, std::memory_order_relaxed);
    // Taken in the order to hand them out: the array hands out its end
    // first.
    std::reverse(out, out + got);
  }
  return got;
}

void CentralPool::ClaimLocked(int size_class, Span* span, std::uint32_t owner) {
  if (span->owner == owner) return;
  span->owner = owner;
  g_class_map.SetOwner(span->start(), span->bytes(), size_class, owner);
}

int CentralPool::RemoveChain(int size_class, int n, bool whole_batch_ok, std::uint32_t owner, FreeObject** head) {
  if (whole_batch_ok && !tracked()) {
    std::uint32_t count = 0;
    if (FreeObject* chain = PopChain(size_class, &count)) {
      *head = chain;
      return static_cast<int>(count);
    }
  }
  if (n > kMaxBatch) n = kMaxBatch;
  FreeObject* objects[kMaxBatch];
  int got = RemoveFromSpans(size_class, n, /*align_carve=*/false, owner, objects);
  if (got > 0) {
    span_out_.fetch_add(got, std::memory_order_relaxed);
    *head = LinkObjects(objects, got);
  }
  return got;
}

void CentralPool::Insert(int size_class, FreeObject* head, int n, bool reuse_soon, FreeObject* const* objects) {
  const int batch = ClassInfo(size_class).batch;
  if ((n == batch || (reuse_soon && n >= 2 && n < batch)) && !tracked()) {
    const auto count = static_cast<std::uint32_t>(n);
    const std::uint32_t n_hints = objects != nullptr ? count : 0;
    const auto limit = static_cast<std::uint32_t>(MaxBatches(size_class));
    if (transfer_.Push(transfer_slots(size_class), head, count, objects, n_hints, limit)) return;
    if (n == batch && GrowForFlow(size_class) &&
        transfer_.Push(transfer_slots(size_class), head, count, objects, n_hints, limit)) {
      return;
    }
  }
  InsertToSpans(size_class, nullptr, head, n);
}

bool CentralPool::IsCutOrder(int size_class, FreeObject* const* objects, int n) {
  if (n < kMinCutOrderBatch) return false;
  const std::uint32_t runs = CountAddressRuns(objects, static_cast<std::uint32_t>(n), ClassSize(size_class));
  return runs >= kMinCutOrderRuns && runs * kMinCutOrderRunLength <= static_cast<std::uint32_t>(n);
}

void CentralPool::InsertBatch(int size_class, FreeObject* const* objects, int n, bool reuse_soon) {
  if (n <= 0) return;
  const int batch = ClassInfo(size_class).batch;
  if ((n == batch || (reuse_soon && n >= 2 && n < batch)) && !tracked() && !IsCutOrder(size_class, objects, n)) {
    const auto count = static_cast<std::uint32_t>(n);
    const auto limit = static_cast<std::uint32_t>(MaxBatches(size_class));
    FreeObject* value = TagUnlinked(objects[0]);
    if (transfer_.Push(transfer_slots(size_class), value, count, objects, count, limit)) return;
    if (n == batch && GrowForFlow(size_class) &&
        transfer_.Push(transfer_slots(size_class), value, count, objects, count, limit)) {
      return;
    }
  }
  InsertToSpans(size_class, objects, nullptr, n);
}

void CentralPool::Drain(int size_class) {
  if (tracked()) return;  // no first tier
  const auto base = static_cast<std::uint32_t>(MaxBatches(size_class));
  const std::uint32_t limit = transfer_.ExchangeLimit(0);
  if (limit > base) {
    g_flow_growth_bytes.fetch_sub(static_cast<std::size_t>(limit - base) * BatchBytes(size_class),
                                  std::memory_order_relaxed);
  }
  flow_mark_.store(transfer_.pops(), std::memory_order_relaxed);
  std::uint32_t count = 0;
  while (FreeObject* head = PopChain(size_class, &count)) {
    InsertToSpans(size_class, nullptr, head, static_cast<int>(count));
  }
}

namespace {

// Errors found under the lock, reported after it is released (a hook may
// call back into the allocator). A few are enough: the first one aborts
// unless a test's hook returns.
struct PendingErrors {
  static constexpr int kMax = 4;
  ErrorKind kind[kMax];
  const void* ptr[kMax];
  int n = 0;
  // Out of line: errors are rare, and the engine's code stays within its
  // window (libstrata_order.txt).
  STRATA_NOINLINE void Add(ErrorKind k, const void* p) {
    if (n < kMax) {
      kind[n] = k;
      ptr[n] = p;
      ++n;
    }
  }
  void Report() const {
    for (int i = 0; i < n; ++i) ReportError(kind[i], ptr[i], 0);
  }
};

}  // namespace

// Objects carved together so that a carve ends on a line boundary: the
// smallest k with k * size a multiple of the line (spans start on a page).
int CentralPool::ObjectsPerLineRun(int size_class) {
  const std::size_t size = ClassInfo(size_class).size;
  std::size_t k = 1;
  while ((k * size) % kCoherenceLine != 0 && k < kCoherenceLine) ++k;
  return static_cast<int>(k);
}

int CentralPool::CarveFreshLines(int size_class, int n, std::uint32_t owner, FreeObject** out) {
  const SizeClassInfo& info = ClassInfo(size_class);
  const std::uint32_t objects = SpanObjects(size_class, tracked());
  const auto run = static_cast<std::uint32_t>(ObjectsPerLineRun(size_class));
  std::uint32_t first = 0;
  std::uint32_t count = 0;
  std::uint32_t lead = 0;
  Span* span = nullptr;
  {
    EngineLockHolder h(&lock_);
    span = partial_;
    if (span == nullptr || span->carved >= objects) return 0;
    first = span->carved;
    // The objects that start before the next kCarveSeparation boundary lie
    // near the previous carve (most likely another thread's hot objects):
    // they go to the end of the chain, so the head (the object the thread
    // uses first and most) starts past the boundary. (The span's start,
    // where the carving wraps to, is a boundary.) The chain ends on a line
    // boundary, so that the next carve shares no line with it.
    const std::uint32_t at_index = CarvedObject(span, first, objects);
    const std::size_t at_offset = static_cast<std::size_t>(at_index) * info.size;
    const std::size_t boundary = (at_offset + kCarveSeparation - 1) / kCarveSeparation * kCarveSeparation;
    std::uint32_t head_index = static_cast<std::uint32_t>((boundary + info.size - 1) / info.size);
    if (head_index > objects) head_index = objects;
    lead = head_index - at_index;
    if (head_index == objects) head_index = 0;  // wraps to the span's start
    // The chain covers kCarveSeparation bytes from the head, so that the
    // next carve (a first refill or not) starts that far from it.
    const std::size_t head_offset = static_cast<std::size_t>(head_index) * info.size;
    const auto past = static_cast<std::uint32_t>((head_offset + kCarveSeparation + info.size - 1) / info.size);
    std::uint32_t want = static_cast<std::uint32_t>(n);
    if (want < past - head_index) want = past - head_index;
    const std::uint32_t end = head_index + want;
    if (end % run != 0) want += run - end % run;
    count = lead + want;
    if (count > RefillBound(size_class)) count = RefillBound(size_class);
    if (count > objects - first) count = objects - first;
    span->carved += count;
    span->allocated += count;
    TookFromSpanLocked(size_class, span, owner, objects);
  }
  // The carved objects are this thread's alone now. Their addresses go to
  // the cache's array (the head, handed out first, at its top); the
  // objects themselves are not touched (fresh pages are faulted in by the
  // program's first write, not by the allocator).
  const std::uintptr_t base = span->start();
  const std::uint32_t fresh = lead < count ? lead : 0;  // index of the head
  for (std::uint32_t k = 0; k < count; ++k) {
    const std::uint32_t index = CarvedObject(span, first + (fresh + k) % count, objects);
    out[count - 1 - k] = reinterpret_cast<FreeObject*>(base + static_cast<std::uintptr_t>(index) * info.size);
  }
  return static_cast<int>(count);
}

int CentralPool::RemoveFromSpans(int size_class, int n, bool align_carve, std::uint32_t owner, FreeObject** out) {
  const SizeClassInfo& info = ClassInfo(size_class);
  const std::uint32_t objects = SpanObjects(size_class, tracked());
  const bool hardened = Hardened();
  int got = 0;
  PendingErrors errors;
  {
    EngineLockHolder h(&lock_);
    // Objects taken back from spans, subtracted from span_free_objects_
    // once (before the lock is let go), not per object.
    std::size_t taken = 0;
    // Counts `o` out of `span` (it leaves for a cache or a user).
    auto took = [&](Span* span, FreeObject* o) __attribute__((always_inline)) STRATA_NO_THREAD_SAFETY_ANALYSIS {
      out[got++] = o;
      // Only a tracked pool keeps a span with every object back (idle).
      if (span->allocated == 0) --idle_spans_;
      ++span->allocated;
      ++taken;
    };
    // Normal mode: the span's objects that came back are those whose bits
    // are set (see the header comment); taken a word of the bitmap at a
    // time, in the span's scan order (ScanWord), from its scan_word (no
    // set bit lies before it in that order). The objects themselves are
    // not touched.
    auto take_returned = [&](Span* span) STRATA_NO_THREAD_SAFETY_ANALYSIS {
      Segment* seg = span->segment;
      std::atomic<std::uint64_t>* const first = &seg->BitWord(span->start());
      const std::uint32_t words = SpanWords(span);
      std::uint32_t r = span->scan_word;
      for (; r < words && got < n && SpanHasReturned(span); ++r) {
        std::atomic<std::uint64_t>* word = first + ScanWord(span, info.size, r);
        std::uint64_t left = word->load(std::memory_order_relaxed);
        if (left == 0) continue;
        const std::uintptr_t word_base =
            seg->base() + (static_cast<std::uintptr_t>(word - seg->block_bits) << (kGranuleShift + 6));
        // The word's objects, counted out of the span together.
        const int first_got = got;
        while (left != 0 && got < n) {
          const int bit = __builtin_ctzll(left);
          left &= left - 1;
          out[got++] = reinterpret_cast<FreeObject*>(word_base + (static_cast<std::uintptr_t>(bit) << kGranuleShift));
        }
        const auto word_took = static_cast<std::uint32_t>(got - first_got);
        // Only a tracked pool keeps a span with every object back (idle).
        if (span->allocated == 0) --idle_spans_;
        span->allocated += word_took;
        taken += word_took;
        word->store(left, std::memory_order_relaxed);
        if (left != 0) break;  // full: the next refill starts at this word
      }
      span->scan_word = static_cast<std::uint16_t>(r);
    };
    // Hardened mode: the span's free list (its links encoded, each one
    // validated as it is followed).
    auto take_linked = [&](Span* span) STRATA_NO_THREAD_SAFETY_ANALYSIS {
      while (got < n && span->free_list != nullptr) {
        FreeObject* o = span->free_list;
        FreeObject* next = GetNext(o);
        if (!HardenedValidLink(next, size_class)) {
          // The link was overwritten after the object came back (a write
          // after free): keep `o` (it was validated when it came back), drop
          // the rest of the list (leaked, never handed out).
          errors.Add(ErrorKind::kFreeListCorruption, o);
          next = nullptr;
        }
        span->free_list = next;
        took(span, o);
      }
    };
    while (got < n) {
      Span* span = partial_;
      if (span == nullptr) {
        span_free_objects_.fetch_sub(taken, std::memory_order_relaxed);
        taken = 0;
        // A new span, without holding this pool's lock while the page heap
        // works: engine locks never nest (engine_lock.h says why fork needs
        // that). Another thread may add a span meanwhile; both are kept.
        lock_.Unlock();
        span = g_page_heap.AllocSmallSpan(size_class, tracked());
        lock_.Lock();
        if (span == nullptr) break;  // out of memory: return what we have
        spans_allocated_.fetch_add(1, std::memory_order_relaxed);
        span->carve_start = Colour(size_class, span);
        span->scan_word = 0;
        LinkPartialLocked(span);
      }
      if (hardened) {
        take_linked(span);
      } else {
        take_returned(span);
      }
      std::uintptr_t base = span->start();
      // A thread cache's refill ends on a line boundary, so that the next
      // refill (often another thread's) starts on a fresh line: two threads'
      // hot objects never share a line through carving (active false
      // sharing). At most run-1 objects more than asked.
      const std::uint32_t run = align_carve ? static_cast<std::uint32_t>(ObjectsPerLineRun(size_class)) : 1u;
      while (span->carved < objects) {
        const std::uint32_t index = CarvedObject(span, span->carved, objects);
        const bool line_unfinished = run > 1 && got < info.batch && index % run != 0;
        if (got >= n && !line_unfinished) break;
        auto* o = reinterpret_cast<FreeObject*>(base + static_cast<std::uintptr_t>(index) * info.size);
        ++span->carved;
        out[got++] = o;
        ++span->allocated;
      }
      TookFromSpanLocked(size_class, span, owner, objects);
    }
    span_free_objects_.fetch_sub(taken, std::memory_order_relaxed);
  }
  errors.Report();
  return got;
}

void CentralPool::TookFromSpanLocked(int size_class, Span* span, std::uint32_t owner, std::uint32_t objects) {
  if (owner != 0) ClaimLocked(size_class, span, owner);
  if (!SpanHasReturned(span) && span->carved == objects) UnlinkExhaustedLocked(span);
}

void CentralPool::LinkPartialLocked(Span* span) {
  span->in_partial = true;
  span->prev = nullptr;
  span->next = partial_;
  if (partial_ != nullptr) partial_->prev = span;
  partial_ = span;
}

void CentralPool::UnlinkExhaustedLocked(Span* span) {
  // Off the partial list until an object comes back.
  if (span->prev != nullptr) {
    span->prev->next = span->next;
  } else {
    partial_ = span->next;
  }
  if (span->next != nullptr) span->next->prev = span->prev;
  span->next = span->prev = nullptr;
  span->in_partial = false;
}

std::uint32_t CentralPool::Colour(int size_class, const Span* span) {
  const SizeClassInfo& info = ClassInfo(size_class);
  const std::uint32_t objects = SpanObjects(size_class, span->tracked);
  if (objects < 2) return 0;
  // Offsets in units of 1/1024 of the span, from the span's address (its
  // slice number): the golden-ratio sequence over slice numbers spreads
  // neighbouring spans evenly over the offsets (low discrepancy), and a
  // span that comes back at the same address starts at the same offset, so
  // that it touches the pages it touched in its earlier life (that are
  // still resident) rather than new ones.
  const auto k = static_cast<std::uint32_t>(span->start() >> kSliceShift);
  const std::uint32_t fraction = static_cast<std::uint32_t>((static_cast<std::uint64_t>(k) * 0x9E3779B9u) >> 22) & 1023u;
  const std::size_t offset = span->bytes() / 1024 * fraction;
  const auto run = static_cast<std::uint32_t>(ObjectsPerLineRun(size_class));
  // The first object that starts at or after the offset, on a line run.
  std::uint32_t index = static_cast<std::uint32_t>((offset + info.size - 1) / info.size);
  index += (run - index % run) % run;
  return index < objects ? index : 0;
}

namespace {

// Clears the bitmap words over bytes [from, to) of `span`'s segment
// (offsets from the span's start), reading each word first: a word that is
// clear already is not written (its page may never have been touched).
void ClearBitWords(Span* span, std::size_t from, std::size_t to) {
  Segment* seg = span->segment;
  const std::size_t base = (span->start() - seg->base()) >> kGranuleShift;  // a multiple of 64
  const std::size_t first = (base + (from >> kGranuleShift)) / 64;
  const std::size_t end = (base + ((to + (std::size_t{1} << kGranuleShift) - 1) >> kGranuleShift) + 63) / 64;
  for (std::size_t w = first; w < end; ++w) {
    if (seg->block_bits[w].load(std::memory_order_relaxed) != 0) {
      seg->block_bits[w].store(0, std::memory_order_relaxed);
    }
  }
}

// A span goes back to the page heap with its block bits clear (span.h).
// Normal mode: every carved object is on the free list, its bit set;
// hardened mode: the bits are clear already (each free cleared its own),
// and clearing is only a check that costs a load per word. Only the words
// over the carved objects can hold a bit: carving took objects carve_start,
// carve_start+1, ... wrapping at `objects` (central_pool.h), so a tracked
// span that served one block clears one word, not the 64 of its slice.
// Called under the pool's lock, the lock normal mode writes the bits under.
void ClearBlockBits(Span* span, std::size_t size, std::uint32_t objects) {
  const std::uint32_t begin = span->carve_start;
  const std::uint32_t carved = span->carved;
  if (carved == 0) return;
  if (carved >= objects) {
    ClearBitWords(span, 0, static_cast<std::size_t>(objects) * size);
  } else if (begin + carved <= objects) {
    ClearBitWords(span, begin * size, (static_cast<std::size_t>(begin) + carved) * size);
  } else {
    ClearBitWords(span, begin * size, static_cast<std::size_t>(objects) * size);
    ClearBitWords(span, 0, (static_cast<std::size_t>(begin) + carved - objects) * size);
  }
}

}  // namespace

void CentralPool::InsertToSpans(int size_class, FreeObject* const* batch, FreeObject* head, int n) {
  // Counted back whether or not each object passes its checks (a bad one
  // is reported and left out: it was never the pool's to hand out).
  span_out_.fetch_sub(n, std::memory_order_relaxed);
  const SizeClassInfo& info = ClassInfo(size_class);
  const bool is_tracked = tracked();
  const std::uint32_t objects = SpanObjects(size_class, is_tracked);
  const bool hardened = Hardened();
  PendingErrors errors;
  Span* empty = nullptr;  // spans whose objects all came back
  {
    EngineLockHolder h(&lock_);
    // The span of the previous object: the objects of a batch mostly share
    // spans, and the span record (its segment and slice) is then checked
    // once, not looked up again per object.
    Segment* seg = nullptr;
    Span* span = nullptr;
    std::uintptr_t span_start = 0;
    std::size_t span_bytes = 0;
    std::int64_t came_back = 0;  // objects now on span free lists (net)
    // `count` objects of `span` came back (their bits are set, or they are
    // on its hardened list): the span joins the partial list, and leaves
    // for the page heap when every object is back (a tracked pool keeps it
    // within its idle budget, kTrackedIdleBytes; RemoveFromSpans counts
    // idle spans out again).
    // Out of line: spans empty rarely, and the engine's code stays within
    // its window (libstrata_order.txt).
    auto span_emptied = [&]() __attribute__((noinline)) STRATA_NO_THREAD_SAFETY_ANALYSIS {
      if (is_tracked && (idle_spans_ == 0 || (idle_spans_ + 1) * span->bytes() <= kTrackedIdleBytes)) {
        ++idle_spans_;
        return;
      }
      // Off the partial list, and queued for the page heap.
      UnlinkExhaustedLocked(span);
      came_back -= span->carved;  // every carved object is on its free list
      span->free_list = nullptr;
      ClearBlockBits(span, info.size, objects);
      span->next = empty;
      empty = span;
      span_bytes = 0;  // the span is leaving: look the next object up
    };
    auto counted_back = [&](std::uint32_t count) __attribute__((always_inline)) STRATA_NO_THREAD_SAFETY_ANALYSIS {
      span->allocated -= count;
      came_back += count;
      if (STRATA_PREDICT_FALSE(!span->in_partial)) LinkPartialLocked(span);
      if (STRATA_PREDICT_FALSE(span->allocated == 0)) span_emptied();
    };
    // Hardened mode's per-object path: rare, out of line.
    auto counted_back_one = [&]() __attribute__((noinline)) { counted_back(1); };
    // The blocks of `twice` (bits of the bitmap word at `word_base`) came
    // back while back already: freed twice. Reported (the pool leaves them
    // out); returns how many. Out of line: rare.
    auto report_twice = [&](std::uint64_t twice, std::uintptr_t word_base) __attribute__((noinline)) {
      std::uint32_t k = 0;
      for (; twice != 0; twice &= twice - 1, ++k) {
        const auto bit = static_cast<std::uintptr_t>(__builtin_ctzll(twice));
        errors.Add(ErrorKind::kDoubleFree, reinterpret_cast<void*>(word_base + (bit << kGranuleShift)));
      }
      return k;
    };
    // Normal mode, a batch of addresses: the run of neighbours that starts
    // at run[0], a checked block of `span` (its `index`-th object): the
    // objects after it that lie one block apart, up to `left` objects (the
    // batch's rest), the span's end and its count of allocated objects (a
    // span cannot get back more than it handed out: the rest goes through
    // the single-object checks). Returns how many objects of the batch it
    // took, each carved (the run ends at the span's carved bound), counted back unless its bit
    // was set already (a double free, reported).
    auto insert_run = [&](FreeObject* const* run, std::uint32_t index, std::uint32_t left)
        __attribute__((always_inline)) STRATA_NO_THREAD_SAFETY_ANALYSIS {
      const std::uint32_t size = info.size;
      // The objects after `index` are carved while their carve order (one
      // more per object) stays below `carved`: the run stops before the
      // first that is not (and at the span's end, where the order wraps).
      std::uint32_t limit = objects - index;
      if (limit > left) limit = left;
      if (limit > span->allocated) limit = span->allocated;
      const std::uint32_t carved_from_here = span->carved - CarveOrder(span, index, objects);
      if (limit > carved_from_here) limit = carved_from_here;
      // A bitmap word covers 64 granules (1 KiB) of the segment: the
      // run's bits are gathered and set a word at a time.
      constexpr std::uintptr_t kWordBytes = std::uintptr_t{64} << kGranuleShift;
      const std::uintptr_t seg_base = seg->base();
      std::uintptr_t a = reinterpret_cast<std::uintptr_t>(run[0]);
      std::uint32_t j = 0;
      std::uint32_t count = 0;
      for (;;) {
        const std::uint32_t word_first = j;
        std::atomic<std::uint64_t>& word = seg->BitWord(a);
        const std::uintptr_t word_base = seg_base + ((a - seg_base) & ~(kWordBytes - 1));
        const std::uintptr_t word_end = word_base + kWordBytes;
        std::uint64_t mask = 0;
        do {
          mask |= Segment::BitMask(a);
          a += size;
          ++j;
        } while (j < limit && a < word_end && reinterpret_cast<std::uintptr_t>(run[j]) == a);
        const std::uint64_t bits = word.load(std::memory_order_relaxed);
        count += j - word_first;
        if (STRATA_PREDICT_FALSE((bits & mask) != 0)) count -= report_twice(bits & mask, word_base);
        word.store(bits | mask, std::memory_order_relaxed);
        const auto w = static_cast<std::uint32_t>(&word - &seg->BitWord(span_start));
        const std::uint32_t pos = ScanPosition(span, size, w);
        if (pos < span->scan_word) span->scan_word = static_cast<std::uint16_t>(pos);
        if (j >= limit || reinterpret_cast<std::uintptr_t>(run[j]) != a) break;
      }
      if (count != 0) counted_back(count);
      return j;
    };
    for (int i = 0; i < n; ++i) {
      FreeObject* o;
      if (batch != nullptr) {
        o = batch[i];
      } else {
        if (head == nullptr) break;
        o = head;
        head = GetNext(o);
      }
      auto addr = reinterpret_cast<std::uintptr_t>(o);
      if (addr - span_start >= span_bytes) {
        // The object must be a block of this pool's class in a span strata
        // owns (a wrong pointer reached a thread cache list: freed by a
        // path that could not check it, or a corrupted list).
        seg = g_segment_map.Get(addr);
        if (seg == nullptr || seg->kind != SegmentKind::kNormal || addr - seg->base() < kSliceSize) {
          errors.Add(ErrorKind::kInvalidFree, o);
          span_bytes = 0;
          continue;
        }
        span = seg->SpanOf(addr);
        if (span->state != SpanState::kSmall || span->size_class != size_class || span->tracked != is_tracked) {
          errors.Add(span->state == SpanState::kFree ? ErrorKind::kDoubleFree : ErrorKind::kInvalidFree, o);
          span_bytes = 0;
          continue;
        }
        span_start = span->start();
        span_bytes = span->bytes();
      }
      auto offset = static_cast<std::uint32_t>(addr - span_start);
      std::uint64_t index = BlockIndex(offset, size_class);
      // Within the span's objects (not its tail), and carved already.
      if ((addr & 15) != 0 || index * info.size != offset || index >= objects ||
          CarveOrder(span, static_cast<std::uint32_t>(index), objects) >= span->carved) {
        errors.Add((addr & 15) != 0 ? ErrorKind::kMisalignedFree : ErrorKind::kInteriorFree, o);
        continue;
      }
      if (!hardened && batch != nullptr && i + 1 < n && span->allocated >= 2 &&
          reinterpret_cast<std::uintptr_t>(batch[i + 1]) == addr + info.size) {
        // A run of neighbours: `o` and the objects after it in the batch
        // that follow it in its span one block apart (a batch cut out of an
        // allocation order is a few such runs; see "Batches cut out of an
        // order"), each a block of the span by construction, their bits
        // set a bitmap word at a time.
        const auto r = static_cast<int>(insert_run(batch + i, static_cast<std::uint32_t>(index),
                                                   static_cast<std::uint32_t>(n - i)));
        i += r - 1;
        continue;
      }
      std::atomic<std::uint64_t>& word = seg->BitWord(addr);
      const std::uint64_t mask = Segment::BitMask(addr);
      const std::uint64_t bits = word.load(std::memory_order_relaxed);
      if ((bits & mask) != 0 || span->allocated == 0) {
        // Normal mode: already on the free list, freed twice. Hardened: the
        // block is allocated to a user (hardened frees clear the bit before
        // the block can reach a list): the list is corrupt.
        errors.Add(hardened ? ErrorKind::kCorruption : ErrorKind::kDoubleFree, o);
        continue;
      }
      if (STRATA_PREDICT_TRUE(!hardened)) {
        // Normal mode: the bit is the object's place among the span's
        // returned ones (RemoveFromSpans finds it there).
        word.store(bits | mask, std::memory_order_relaxed);
        const auto w = static_cast<std::uint32_t>(&word - &seg->BitWord(span_start));
        const std::uint32_t r = ScanPosition(span, info.size, w);
        if (r < span->scan_word) span->scan_word = static_cast<std::uint16_t>(r);
        counted_back(1);
      } else {
        // Hardened mode: the span's list.
        SetNext(o, span->free_list);
        span->free_list = o;
        counted_back_one();
      }
    }
    span_free_objects_.fetch_add(static_cast<std::size_t>(came_back), std::memory_order_relaxed);
  }
  while (empty != nullptr) {
    Span* next = empty->next;
    g_page_heap.FreeSmallSpan(empty);
    empty = next;
  }
  errors.Report();
}

}  // namespace strata::internal
