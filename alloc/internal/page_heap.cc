#include "alloc/internal/page_heap.h"

#include <time.h>

#include <atomic>

#include "alloc/internal/page_map.h"
#include "alloc/os/os.h"

namespace strata::internal {

constinit ClassMap g_class_map;
constinit SegmentMap g_segment_map;

namespace page_map_detail {
void* AllocateLeaf(std::size_t bytes) noexcept { return os::Reserve(bytes, os::kPageSize); }
}  // namespace page_map_detail

std::uint64_t NowNanos() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

namespace {

constexpr std::size_t RoundUp(std::size_t n, std::size_t to) { return (n + to - 1) & ~(to - 1); }

}  // namespace

// ---- free lists ----

void PageHeap::InsertFree(Span* span) {
  Span*& head = free_[span->num_slices];
  span->prev = nullptr;
  span->next = head;
  if (head != nullptr) head->prev = span;
  head = span;
}

void PageHeap::RemoveFree(Span* span) {
  if (span->prev != nullptr) {
    span->prev->next = span->next;
  } else {
    free_[span->num_slices] = span->next;
  }
  if (span->next != nullptr) span->next->prev = span->prev;
  span->next = span->prev = nullptr;
}

void PageHeap::SetHeads(Span* span) {
  Segment* seg = span->segment;
  for (int i = 0; i < span->num_slices; ++i) {
    seg->slice_head[span->first_slice + i] = static_cast<std::uint8_t>(span->first_slice);
  }
}

// ---- segments from the bump arena ----

Segment* PageHeap::NewSegmentLocked() {
  if (region_next_ == region_end_) {
    std::size_t size = next_region_size_;
    void* region = os::Reserve(size, kSegmentSize);
    // Address space is tight (RLIMIT_AS): ask for less, down to one
    // segment, rather than give up the space a smaller region would use.
    while (region == nullptr && size > kSegmentSize) {
      size /= 2;
      region = os::Reserve(size, kSegmentSize);
    }
    if (region == nullptr) return nullptr;
    region_next_ = reinterpret_cast<std::uintptr_t>(region);
    region_end_ = region_next_ + size;
    reserved_bytes_ += size;
    if (next_region_size_ < kMaxRegion) next_region_size_ *= 2;
  }
  std::uintptr_t base = region_next_;
  if (!g_segment_map.Ensure(base, kSegmentSize) || !g_class_map.Ensure(base, kSegmentSize)) {
    return nullptr;
  }
  region_next_ += kSegmentSize;
  auto* seg = reinterpret_cast<Segment*>(base);  // zero-filled by the OS
  seg->kind = SegmentKind::kNormal;
  committed_bytes_ += RoundUp(kSegmentHeaderBytes, os::kPageSize);
  InitWholeFreeSpanLocked(seg);
  // Publish last: a lookup that finds the segment sees it initialised.
  g_segment_map.Set(base, kSegmentSize, seg);
  return seg;
}

void PageHeap::InitWholeFreeSpanLocked(Segment* seg) {
  Span* span = &seg->spans[1];
  span->segment = seg;
  span->first_slice = 1;
  span->num_slices = kSlicesPerSegment - 1;
  span->state = SpanState::kFree;
  span->committed = false;
  span->zeroed = true;
  span->free_since_ns = NowNanos();
  SetHeads(span);
  InsertFree(span);
}

Segment* PageHeap::BorrowSegmentsLocked(std::size_t mapping, std::size_t align) {
  const std::size_t count = mapping / kSegmentSize;
  // Free spans of a segment in different commit states do not merge as
  // they are freed: merge them now, so entirely free segments show.
  CoalesceLocked();
  // The whole free span of segment `base`, or nullptr.
  auto whole_free = [](std::uintptr_t base) -> Span* {
    Segment* s = g_segment_map.Get(base);
    if (s == nullptr || s->base() != base || s->kind != SegmentKind::kNormal) return nullptr;
    Span* span = &s->spans[1];
    return span->state == SpanState::kFree && span->num_slices == kSlicesPerSegment - 1 ? span : nullptr;
  };
  for (Span* first = free_[kSlicesPerSegment - 1]; first != nullptr; first = first->next) {
    const std::uintptr_t base = first->segment->base();
    if ((base & (align - 1)) != 0) continue;
    std::size_t run = 1;
    while (run < count && whole_free(base + run * kSegmentSize) != nullptr) ++run;
    if (run < count) continue;
    // Off the free lists, decommitted (accounting as for any decommit);
    // the headers of all but the first are part of the block from now on.
    bool decommitted = true;
    for (std::size_t i = 0; i < count && decommitted; ++i) {
      Span* span = whole_free(base + i * kSegmentSize);
      if (span->committed) Decommit(span);
      decommitted = !span->committed;  // madvise failed: leave the run as it is
    }
    if (!decommitted) continue;
    for (std::size_t i = 0; i < count; ++i) {
      Span* span = whole_free(base + i * kSegmentSize);
      RemoveFree(span);
      span->state = SpanState::kUnused;
    }
    auto* seg = reinterpret_cast<Segment*>(base);
    // Lookups of the borrowed range find the huge header from here on.
    seg->kind = SegmentKind::kHuge;
    seg->huge_live = false;
    seg->borrowed = true;
    seg->mapping_size = mapping;
    g_segment_map.Set(base, mapping, seg);
    // The other segments' headers: zero, like the rest of the block.
    for (std::size_t i = 1; i < count; ++i) {
      os::Decommit(reinterpret_cast<void*>(base + i * kSegmentSize), kSliceSize);
    }
    return seg;
  }
  return nullptr;
}

void PageHeap::ReturnSegmentsLocked(Segment* seg) {
  const std::uintptr_t base = seg->base();
  const std::size_t count = seg->mapping_size / kSegmentSize;
  const std::size_t committed = seg->committed_in;
  // Lookups find nothing while the headers are rebuilt (only a racing
  // misuse looks here: the block is free).
  g_segment_map.Set(base, seg->mapping_size, nullptr);
  // Everything past the first header slice goes back to the OS's zero
  // pages; the other segments' headers are rebuilt on zero memory, as new
  // segments are.
  if (!os::Decommit(reinterpret_cast<void*>(base + kSliceSize), seg->mapping_size - kSliceSize)) {
    // Pages the madvise left hold the block's bytes: rebuild on zeroes.
    for (std::size_t i = 1; i < count; ++i) {
      __builtin_memset(reinterpret_cast<void*>(base + i * kSegmentSize), 0, kSegmentHeaderBytes);
    }
  }
  committed_bytes_ -= committed < committed_bytes_ ? committed : committed_bytes_;
  decommitted_bytes_ += committed;
  seg->borrowed = false;
  seg->mapping_size = 0;
  seg->committed_in = 0;
  for (std::size_t i = 0; i < count; ++i) {
    auto* s = reinterpret_cast<Segment*>(base + i * kSegmentSize);
    s->kind = SegmentKind::kNormal;
    InitWholeFreeSpanLocked(s);
    g_segment_map.Set(s->base(), kSegmentSize, s);
  }
}

// ---- spans ----

bool PageHeap::WithinHardLimitLocked(std::size_t bytes) const {
  // Relaxed: pairs with the relaxed store in set_hard_limit().
  std::size_t limit = hard_limit_.load(std::memory_order_relaxed);
  return limit == 0 || (committed_bytes_ <= limit && bytes <= limit - committed_bytes_);
}

void PageHeap::InsertFreePiece(Segment* seg, int from, int to, bool committed, bool zeroed,
                               std::uint64_t since) {
  if (from >= to) return;
  Span* piece = &seg->spans[from];
  piece->segment = seg;
  piece->first_slice = static_cast<std::uint16_t>(from);
  piece->num_slices = static_cast<std::uint16_t>(to - from);
  piece->state = SpanState::kFree;
  piece->committed = committed;
  piece->zeroed = zeroed;
  piece->free_since_ns = since;
  SetHeads(piece);
  InsertFree(piece);
}

Span* PageHeap::AllocSpanLocked(int slices, int align_slices) {
  bool coalesced = false;
  // Hard limit (alloc/monitor.h): fits that would commit memory beyond it
  // are skipped; then free committed spans and cached huge blocks are given
  // back once and the search repeats; then the allocation fails.
  const std::size_t span_bytes = static_cast<std::size_t>(slices) << kSliceShift;
  bool purged_for_limit = false;
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool over_limit = false;
    // Pass 0 takes only committed spans (already faulted in: reusing them
    // costs no page faults); pass 1 takes any. Between them, a committed
    // span too short on its own may be extended into the decommitted free
    // span right after it (ExtendCommittedLocked): without that, a program
    // whose blocks keep growing (realloc loops, doubling buffers) leaves
    // every freed block's pages committed and unused while the heap grows
    // into fresh memory.
    for (int pass = 0; pass < 2; ++pass)
    for (int b = slices; b <= kBuckets; ++b) {
      if (pass == 1 && b == slices && align_slices == 1 && ExtendCommittedLocked(slices)) {
        pass = 0;  // the extended span is committed and long enough: take it
      }
      for (Span* span = free_[b]; span != nullptr; span = span->next) {
        if (pass == 0 && !span->committed) continue;
        int first = span->first_slice;
        int end = first + span->num_slices;
        int start = (first + align_slices - 1) & ~(align_slices - 1);
        if (start + slices > end) continue;
        if (!span->committed && !WithinHardLimitLocked(span_bytes)) {  // hard limit
          over_limit = true;
          continue;
        }
        RemoveFree(span);
        Segment* seg = span->segment;
        bool committed = span->committed;
        bool zeroed = span->zeroed;
        std::uint64_t since = span->free_since_ns;
        span->state = SpanState::kUnused;
        InsertFreePiece(seg, first, start, committed, zeroed, since);
        InsertFreePiece(seg, start + slices, end, committed, zeroed, since);
        Span* out = &seg->spans[start];
        *out = Span{};
        out->segment = seg;
        out->first_slice = static_cast<std::uint16_t>(start);
        out->num_slices = static_cast<std::uint16_t>(slices);
        out->committed = true;
        out->zeroed = zeroed;
        SetHeads(out);
        std::size_t bytes = out->bytes();
        if (committed) {
          free_committed_bytes_ -= bytes < free_committed_bytes_ ? bytes : free_committed_bytes_;
        } else {
          committed_bytes_ += bytes;
          // Growing into fresh pages while free committed spans sit unused
          // (too short for the requests that come): give back as much of
          // them as is now faulted in anew, so that resident memory tracks
          // what is in use instead of growing with the fragmentation.
          TrimFreeCommittedLocked(bytes, out);
        }
        return out;
      }
    }
    // Hard limit: a new segment commits its header, then the span.
    if (!WithinHardLimitLocked(RoundUp(kSegmentHeaderBytes, os::kPageSize) + span_bytes)) over_limit = true;
    if (over_limit) {
      if (purged_for_limit) return nullptr;
      purged_for_limit = true;
      PurgeLocked(NowNanos(), true);
      --attempt;  // bounded: purged_for_limit allows one extra pass
      continue;
    }
    if (!coalesced) {  // merged free spans may fit before growing the heap
      coalesced = true;
      CoalesceLocked();
      --attempt;
      continue;
    }
    if (NewSegmentLocked() == nullptr) return nullptr;
  }
  return nullptr;
}

void PageHeap::TrimFreeCommittedLocked(std::size_t bytes, const Span* keep) {
  if (free_committed_bytes_ <= kFreeCommittedFloor) return;
  std::size_t want = free_committed_bytes_ - kFreeCommittedFloor;
  if (want > bytes) want = bytes;
  std::size_t released = 0;
  // Shortest spans first: they are the ones the requests could not use.
  for (int b = 1; b <= kBuckets && released < want; ++b) {
    for (Span* span = free_[b]; span != nullptr && released < want; span = span->next) {
      if (!span->committed || span == keep) continue;
      released += span->bytes();
      Decommit(span);
    }
  }
}

bool PageHeap::ExtendCommittedLocked(int slices) {
  const std::size_t limit = hard_limit_.load(std::memory_order_relaxed);
  for (int b = 1; b < slices; ++b) {
    for (Span* span = free_[b]; span != nullptr; span = span->next) {
      if (!span->committed) continue;
      Segment* seg = span->segment;
      const int end = span->first_slice + span->num_slices;
      if (end >= kSlicesPerSegment) continue;
      Span* next = &seg->spans[end];
      if (next->state != SpanState::kFree || next->committed || span->num_slices + next->num_slices < slices) {
        continue;
      }
      const int take = slices - span->num_slices;
      const std::size_t take_bytes = static_cast<std::size_t>(take) << kSliceShift;
      if (limit != 0 && !WithinHardLimitLocked(take_bytes)) continue;
      RemoveFree(span);
      RemoveFree(next);
      const int next_end = next->first_slice + next->num_slices;
      const bool next_zeroed = next->zeroed;
      const std::uint64_t next_since = next->free_since_ns;
      next->state = SpanState::kUnused;
      InsertFreePiece(seg, end + take, next_end, false, next_zeroed, next_since);  // stays decommitted
      // The taken slices count as committed from now on (the allocation
      // that follows faults them in), so committed_bytes_ stays exact.
      span->num_slices = static_cast<std::uint16_t>(slices);
      span->zeroed = false;
      committed_bytes_ += take_bytes;
      free_committed_bytes_ += take_bytes;
      SetHeads(span);
      InsertFree(span);
      return true;
    }
  }
  return false;
}

void PageHeap::FreeSpanLocked(Span* span) {
  Segment* seg = span->segment;
  span->state = SpanState::kFree;
  span->committed = true;
  span->zeroed = false;
  span->in_partial = false;
  span->free_since_ns = NowNanos();
  free_committed_bytes_ += span->bytes();
  int first = span->first_slice;
  if (first > 1) {
    Span* prev = &seg->spans[seg->slice_head[first - 1]];
    // Only spans in the same commit state merge, so committed_bytes_ stays
    // exact; decommitted neighbours merge after a purge (CoalesceLocked).
    if (prev->state == SpanState::kFree && prev->committed) {
      RemoveFree(prev);
      prev->num_slices = static_cast<std::uint16_t>(prev->num_slices + span->num_slices);
      prev->committed = true;
      prev->zeroed = false;
      prev->free_since_ns = span->free_since_ns;
      span->state = SpanState::kUnused;
      span = prev;
    }
  }
  int end = span->first_slice + span->num_slices;
  if (end < kSlicesPerSegment) {
    Span* next = &seg->spans[end];
    if (next->state == SpanState::kFree && next->committed) {
      RemoveFree(next);
      span->num_slices = static_cast<std::uint16_t>(span->num_slices + next->num_slices);
      span->committed = true;
      span->zeroed = false;
      next->state = SpanState::kUnused;
    }
  }
  SetHeads(span);
  InsertFree(span);
}

void PageHeap::CoalesceLocked() {
restart:
  for (int b = 1; b <= kBuckets; ++b) {
    for (Span* span = free_[b]; span != nullptr; span = span->next) {
      int end = span->first_slice + span->num_slices;
      if (end >= kSlicesPerSegment) continue;
      Span* next = &span->segment->spans[end];
      if (next->state != SpanState::kFree || next->committed != span->committed) continue;
      RemoveFree(span);
      RemoveFree(next);
      span->num_slices = static_cast<std::uint16_t>(span->num_slices + next->num_slices);
      span->zeroed = span->zeroed && next->zeroed;
      if (next->free_since_ns > span->free_since_ns) span->free_since_ns = next->free_since_ns;
      next->state = SpanState::kUnused;
      SetHeads(span);
      InsertFree(span);
      goto restart;  // the lists changed under the iteration
    }
  }
}

void PageHeap::Decommit(Span* span) {
  std::size_t bytes = span->bytes();
  if (!os::Decommit(reinterpret_cast<void*>(span->start()), bytes)) return;  // survive: stays committed
  span->committed = false;
  span->zeroed = true;
  free_committed_bytes_ -= bytes < free_committed_bytes_ ? bytes : free_committed_bytes_;
  committed_bytes_ -= bytes < committed_bytes_ ? bytes : committed_bytes_;
  decommitted_bytes_ += bytes;
}

Span* PageHeap::AllocSmallSpan(int size_class, bool tracked) {
  Locked h(this);
  Span* span = AllocSpanLocked(static_cast<int>(SpanSlices(size_class, tracked)), 1);
  if (span == nullptr) return nullptr;
  span->state = SpanState::kSmall;
  span->size_class = static_cast<std::uint8_t>(size_class);
  span->tracked = tracked;
  span->owner = 0;
  // The block bits are clear: a small span's pool cleared them when its
  // objects all came back (span.h); large spans and fresh segments set none.
  if (!tracked) g_class_map.Set(span->start(), span->bytes(), static_cast<std::uint8_t>(size_class));
  return span;
}

void PageHeap::FreeSmallSpan(Span* span) {
  Locked h(this);
  g_class_map.Set(span->start(), span->bytes(), 0);
  FreeSpanLocked(span);
  std::uint64_t now = NowNanos();
  if (now - last_purge_ns_ >= decay_ns_ / 2) PurgeLocked(now, false);
}

// ---- large and huge blocks ----

void* PageHeap::AllocLarge(std::size_t size, std::size_t alignment, bool* zeroed, std::size_t* tracked_usable) {
  if (size > (std::size_t{1} << 46) || alignment > (std::size_t{1} << 40)) return nullptr;
  // A zero-byte request aligned beyond any size class lands here: it still
  // needs a (one-slice) block of its own (found by tests/fuzz/ops_fuzz).
  if (size == 0) size = 1;
  std::size_t bytes = RoundUp(size, kSliceSize);
  int slices = static_cast<int>(bytes >> kSliceShift);
  int align_slices = alignment <= kSliceSize ? 1 : static_cast<int>(alignment >> kSliceShift);
  Locked h(this);
  std::uint64_t now = NowNanos();
  if (now - last_purge_ns_ >= decay_ns_ / 2) PurgeLocked(now, false);
  // A block of a whole huge page or more takes the huge path while huge
  // pages are on (kMinHugeBlockBytes), even when a segment could hold it.
  const bool huge_by_size = huge_pages_ && bytes >= kMinHugeBlockBytes;
  if (!huge_by_size && align_slices < kSlicesPerSegment / 2 && slices + align_slices <= kSlicesPerSegment) {
    Span* span = AllocSpanLocked(slices, align_slices);
    if (span == nullptr) return nullptr;
    span->state = SpanState::kLarge;
    span->large_size = size;
    span->large_ptr = span->start();
    span->tracked = tracked_usable != nullptr;
    if (tracked_usable != nullptr) *tracked_usable = span->bytes();  // LookupBlock's: from large_ptr, the start
    span->alloc_kind = 0;
    span->align_code = 0;
    span->align_log2 = alignment > 16 ? static_cast<std::uint8_t>(__builtin_ctzll(alignment)) : 0;
    large_live_bytes_ += span->bytes();
    ++large_allocations_;
    *zeroed = span->zeroed;
    span->zeroed = false;
    return reinterpret_cast<void*>(span->large_ptr);
  }
  return AllocHugeLocked(size, alignment, zeroed, tracked_usable);
}

void* PageHeap::AllocHugeLocked(std::size_t size, std::size_t alignment, bool* zeroed, std::size_t* tracked_usable) {
  std::size_t offset = alignment > kSliceSize ? alignment : kSliceSize;
  // Whole 4 MiB chunks of address space (the pages past the request are
  // never touched, so they cost no memory): a huge mapping then ends where
  // the next 4 MiB-aligned mapping may begin, which is what lets freed
  // neighbours merge and big cached blocks split (FreeHugeLocked).
  const std::size_t chunks = RoundUp(offset + size, kSegmentSize);
  std::size_t mapping = chunks;
  // What the block uses, and what counts as committed (hard limit, stats):
  // the chunk-rounded tail is address space only.
  const std::size_t used = RoundUp(offset + size, kSliceSize);
  // Reuse the smallest cached block that is big enough and has a base
  // aligned for this request (its pages are already faulted in: reusing
  // beats a fresh mapping by about 2 us per page here). A bigger block is
  // split: the chunks this request leaves stay cached as a block of their
  // own, still faulted in, for the next request.
  Segment** best_link = nullptr;
  for (Segment** link = &huge_cache_; *link != nullptr; link = &(*link)->next_cached) {
    Segment* s = *link;
    if (s->mapping_size < mapping) continue;
    if ((s->base() & (offset - 1)) != 0) continue;
    if (best_link == nullptr || s->mapping_size < (*best_link)->mapping_size) best_link = link;
  }
  // A cached block may count less as committed than this request uses;
  // when the difference would cross the hard limit, take the fresh path
  // (which gives the cache back first).
  if (best_link != nullptr) {
    Segment* s = *best_link;
    const std::size_t head_committed = s->committed_in < mapping ? s->committed_in : mapping;
    if (used > head_committed && !WithinHardLimitLocked(used - head_committed)) best_link = nullptr;
  }
  Segment* seg;
  if (best_link != nullptr) {
    seg = *best_link;
    *best_link = seg->next_cached;
    huge_cache_bytes_ -= seg->mapping_size;
    --huge_cache_entries_;
    if (seg->mapping_size > mapping) SplitHugeLocked(seg, mapping);
    if (used > seg->committed_in) {
      committed_bytes_ += used - seg->committed_in;
      seg->committed_in = used;
    }
    *zeroed = false;
  } else {
    std::size_t align = offset > kSegmentSize ? offset : kSegmentSize;
    if (!WithinHardLimitLocked(used)) {  // hard limit: give back, then fail
      PurgeLocked(NowNanos(), true);
      if (!WithinHardLimitLocked(used)) return nullptr;
    }
    void* base = os::Reserve(mapping, align);
    if (base == nullptr) {
      // Memory is tight: give back what the cache holds (now, not when the
      // lock is released) and try once more.
      PurgeLocked(NowNanos(), true);
      ReleaseDetachedLocked();
      base = os::Reserve(mapping, align);
    }
    if (base == nullptr && used < mapping) {
      // Address space is tight (RLIMIT_AS): no chunk rounding. Such a block
      // still splits when reused; it only cannot merge with what follows.
      mapping = used;
      base = os::Reserve(mapping, align);
    }
    if (base == nullptr) {
      // The address space is gone, much of it perhaps to the regions:
      // borrow free segments from them.
      seg = BorrowSegmentsLocked(chunks, align);
      if (seg == nullptr) return nullptr;
    } else {
      auto addr = reinterpret_cast<std::uintptr_t>(base);
      if (!g_segment_map.Ensure(addr, mapping)) {
        os::Release(base, mapping);
        return nullptr;
      }
      // Transparent huge pages for the whole 2 MiB pages the block uses
      // (not its partial last one, nor the chunk-rounded tail): a huge
      // block is written in bulk, and one fault per 2 MiB instead of 512
      // is what the program pays for it (about 2 us a fault here).
      const std::size_t advised = used & ~(os::kHugePageSize - 1);
      if (huge_pages_ && advised != 0) os::AdviseHugePages(base, advised);
      seg = static_cast<Segment*>(base);
      seg->kind = SegmentKind::kHuge;
      seg->borrowed = false;
      seg->mapping_size = mapping;
      reserved_bytes_ += mapping;
      g_segment_map.Set(addr, mapping, seg);
    }
    seg->committed_in = used;
    committed_bytes_ += used;
    *zeroed = true;
  }
  seg->next_cached = nullptr;
  seg->tracked = tracked_usable != nullptr;
  seg->alloc_kind = 0;
  seg->align_code = 0;
  seg->align_log2 = alignment > 16 ? static_cast<std::uint8_t>(__builtin_ctzll(alignment)) : 0;
  // Relaxed: LookupBlock's readers race only with misuse (a free of a block
  // being reallocated); the pointer's hand-off orders everything else.
  std::atomic_ref<bool>(seg->huge_live).store(true, std::memory_order_relaxed);
  seg->huge_ptr = seg->base() + offset;
  seg->huge_size = size;
  seg->huge_usable = used - offset;
  if (tracked_usable != nullptr) *tracked_usable = seg->huge_usable;
  large_live_bytes_ += seg->huge_usable;
  ++large_allocations_;
  return reinterpret_cast<void*>(seg->huge_ptr);
}

bool PageHeap::FreeLarge(Segment* segment, Span* span) {
  Locked h(this);
  if (segment->kind == SegmentKind::kHuge ? !segment->huge_live : span->state != SpanState::kLarge) {
    return false;
  }
  ++large_frees_;
  if (segment->kind == SegmentKind::kHuge) {
    FreeHugeLocked(segment);
  } else {
    std::size_t bytes = span->bytes();
    large_live_bytes_ -= bytes < large_live_bytes_ ? bytes : large_live_bytes_;
    FreeSpanLocked(span);
  }
  std::uint64_t now = NowNanos();
  if (now - last_purge_ns_ >= decay_ns_ / 2) PurgeLocked(now, false);
  return true;
}

void PageHeap::SplitHugeLocked(Segment* seg, std::size_t head_bytes) {
  const std::uintptr_t tail_base = seg->base() + head_bytes;
  auto* tail = reinterpret_cast<Segment*>(tail_base);
  tail->kind = SegmentKind::kHuge;
  tail->mapping_size = seg->mapping_size - head_bytes;
  tail->huge_ptr = 0;
  tail->huge_size = 0;
  tail->huge_usable = 0;
  tail->tracked = false;
  tail->huge_live = false;
  tail->borrowed = false;
  tail->alloc_kind = 0;
  tail->align_code = 0;
  tail->align_log2 = 0;
  tail->free_since_ns = seg->free_since_ns;
  // Committed bytes are assumed to be at the front (they were used from
  // the front); the sum over both parts stays what the whole counted.
  tail->committed_in = seg->committed_in > head_bytes ? seg->committed_in - head_bytes : 0;
  seg->committed_in -= tail->committed_in;
  seg->mapping_size = head_bytes;
  g_segment_map.Set(tail_base, tail->mapping_size, tail);
  tail->next_cached = huge_cache_;
  huge_cache_ = tail;
  huge_cache_bytes_ += tail->mapping_size;
  ++huge_cache_entries_;
}

bool PageHeap::TakeCachedHugeLocked(Segment* seg) {
  for (Segment** link = &huge_cache_; *link != nullptr; link = &(*link)->next_cached) {
    if (*link != seg) continue;
    *link = seg->next_cached;
    huge_cache_bytes_ -= seg->mapping_size;
    --huge_cache_entries_;
    return true;
  }
  return false;
}

Segment* PageHeap::FreeHugeAfterLocked(const Segment* seg) const {
  const std::uintptr_t end = seg->base() + seg->mapping_size;
  Segment* next = g_segment_map.Get(end);
  if (next == nullptr || next->base() != end || next->kind != SegmentKind::kHuge || next->huge_live) return nullptr;
  return next;
}

bool PageHeap::AbsorbHugeLocked(Segment* seg, Segment* next) {
  if (!TakeCachedHugeLocked(next)) return false;
  g_segment_map.Set(next->base(), next->mapping_size, seg);
  seg->mapping_size += next->mapping_size;
  seg->committed_in += next->committed_in;
  return true;
}

Segment* PageHeap::MergeFreeHugeLocked(Segment* seg) {
  // The neighbour after: the mapping that starts where this one ends.
  if (Segment* next = FreeHugeAfterLocked(seg)) AbsorbHugeLocked(seg, next);
  // The neighbour before: the mapping that covers the byte before this one.
  Segment* prev = g_segment_map.Get(seg->base() - 1);
  if (prev != nullptr && FreeHugeAfterLocked(prev) == seg && TakeCachedHugeLocked(prev)) {
    // seg is not cached (it is being freed): absorb it by hand.
    g_segment_map.Set(seg->base(), seg->mapping_size, prev);
    prev->mapping_size += seg->mapping_size;
    prev->committed_in += seg->committed_in;
    seg = prev;
  }
  return seg;
}

void PageHeap::FreeHugeLocked(Segment* seg) {
  std::atomic_ref<bool>(seg->huge_live).store(false, std::memory_order_relaxed);
  large_live_bytes_ -= seg->huge_usable < large_live_bytes_ ? seg->huge_usable : large_live_bytes_;
  if (seg->borrowed) {
    ReturnSegmentsLocked(seg);
    return;
  }
  if (seg->mapping_size > kHugeCacheMaxBlock) {
    UnmapHugeLocked(seg);
    return;
  }
  // Cached neighbours (adjacent mappings, or the parts of a split block)
  // merge into one block, so a later request bigger than either fits.
  seg = MergeFreeHugeLocked(seg);
  seg->free_since_ns = NowNanos();
  seg->next_cached = huge_cache_;
  huge_cache_ = seg;
  huge_cache_bytes_ += seg->mapping_size;
  ++huge_cache_entries_;
  // Bounded retention: evict the oldest (the list's tail) while over.
  while (huge_cache_bytes_ > kHugeCacheBytes || huge_cache_entries_ > kHugeCacheEntries) {
    Segment** link = &huge_cache_;
    while ((*link)->next_cached != nullptr) link = &(*link)->next_cached;
    Segment* victim = *link;
    *link = nullptr;
    huge_cache_bytes_ -= victim->mapping_size;
    --huge_cache_entries_;
    UnmapHugeLocked(victim);
  }
}

void PageHeap::UnmapHugeLocked(Segment* seg) {
  const std::size_t mapping = seg->mapping_size;
  const std::size_t committed = seg->committed_in;
  g_segment_map.Set(seg->base(), mapping, nullptr);
  reserved_bytes_ -= mapping < reserved_bytes_ ? mapping : reserved_bytes_;
  committed_bytes_ -= committed < committed_bytes_ ? committed : committed_bytes_;
  decommitted_bytes_ += committed;
  // Detached: nothing reaches it any more. Unmapped when the lock is
  // released (Locked), or at once by ReleaseDetachedLocked.
  seg->next_cached = detached_;
  detached_ = seg;
}

void PageHeap::UndoDetachLocked(std::size_t mapping, std::size_t committed) {
  // Survive a failed munmap: the block stays mapped and is simply lost to
  // reuse; the accounting says so.
  reserved_bytes_ += mapping;
  committed_bytes_ += committed;
  decommitted_bytes_ -= committed < decommitted_bytes_ ? committed : decommitted_bytes_;
}

void PageHeap::ReleaseDetached(Segment* list) {
  while (list != nullptr) {
    Segment* next = list->next_cached;  // read before the unmap
    const std::size_t mapping = list->mapping_size, committed = list->committed_in;
    if (!os::Release(list, mapping)) {
      EngineLockHolder h(&lock_);
      UndoDetachLocked(mapping, committed);
    }
    list = next;
  }
}

void PageHeap::ReleaseDetachedLocked() {
  while (detached_ != nullptr) {
    Segment* seg = detached_;
    detached_ = seg->next_cached;
    const std::size_t mapping = seg->mapping_size, committed = seg->committed_in;
    if (!os::Release(seg, mapping)) UndoDetachLocked(mapping, committed);
  }
}

bool PageHeap::GrowInPlace(Segment* seg, Span* span, std::uintptr_t ptr, std::size_t new_size) {
  if (new_size > (std::size_t{1} << 46)) return false;
  Locked h(this);
  if (seg->kind == SegmentKind::kHuge) {
    if (!seg->huge_live || seg->huge_ptr != ptr) return false;
    const std::size_t offset = ptr - seg->base();
    const std::size_t used = RoundUp(offset + new_size, kSliceSize);
    if (used > seg->mapping_size) {
      // A borrowed block has only its segments.
      if (seg->borrowed) return false;
      // The chunk-rounded mapping is too short: absorb a cached block that
      // starts where it ends, if that is enough.
      Segment* next = FreeHugeAfterLocked(seg);
      if (next == nullptr || used > seg->mapping_size + next->mapping_size) return false;
      if (used > seg->committed_in && !WithinHardLimitLocked(used - seg->committed_in)) return false;
      if (!AbsorbHugeLocked(seg, next)) return false;
      // Chunks beyond what the block now needs stay cached.
      const std::size_t keep = RoundUp(used, kSegmentSize);
      if (seg->mapping_size > keep) SplitHugeLocked(seg, keep);
    }
    if (used > seg->committed_in) {
      if (!WithinHardLimitLocked(used - seg->committed_in)) return false;
      committed_bytes_ += used - seg->committed_in;
      seg->committed_in = used;
    }
    large_live_bytes_ += (used - offset) - seg->huge_usable;
    seg->huge_usable = used - offset;
    seg->huge_size = new_size;
    return true;
  }
  if (span == nullptr || span->state != SpanState::kLarge || span->large_ptr != ptr) return false;
  const std::size_t offset = ptr - span->start();
  const int need = static_cast<int>(RoundUp(offset + new_size, kSliceSize) >> kSliceShift);
  if (need <= span->num_slices) {
    span->large_size = new_size;
    return true;
  }
  const int end = span->first_slice + span->num_slices;
  if (end >= kSlicesPerSegment) return false;
  Span* next = &seg->spans[end];
  const int extra = need - span->num_slices;
  if (next->state != SpanState::kFree || next->num_slices < extra) return false;
  const std::size_t extra_bytes = static_cast<std::size_t>(extra) << kSliceShift;
  if (!next->committed && !WithinHardLimitLocked(extra_bytes)) return false;
  RemoveFree(next);
  const bool committed = next->committed;
  const bool zeroed = next->zeroed;
  const std::uint64_t since = next->free_since_ns;
  const int next_end = next->first_slice + next->num_slices;
  next->state = SpanState::kUnused;
  InsertFreePiece(seg, end + extra, next_end, committed, zeroed, since);  // what the block does not take
  if (committed) {
    free_committed_bytes_ -= extra_bytes < free_committed_bytes_ ? extra_bytes : free_committed_bytes_;
  } else {
    committed_bytes_ += extra_bytes;
  }
  span->num_slices = static_cast<std::uint16_t>(need);
  SetHeads(span);
  span->large_size = new_size;
  large_live_bytes_ += extra_bytes;
  return true;
}

// ---- decay ----

void PageHeap::PurgeLocked(std::uint64_t now, bool everything) {
  last_purge_ns_ = now;
  for (int b = 1; b <= kBuckets; ++b) {
    for (Span* span = free_[b]; span != nullptr; span = span->next) {
      if (span->committed && (everything || now - span->free_since_ns >= decay_ns_)) Decommit(span);
    }
  }
  CoalesceLocked();
  Segment** link = &huge_cache_;
  while (*link != nullptr) {
    Segment* s = *link;
    if (everything || now - s->free_since_ns >= decay_ns_) {
      *link = s->next_cached;
      huge_cache_bytes_ -= s->mapping_size;
      --huge_cache_entries_;
      UnmapHugeLocked(s);
    } else {
      link = &s->next_cached;
    }
  }
}

void PageHeap::MaybePurge() {
  Locked h(this);
  std::uint64_t now = NowNanos();
  if (now - last_purge_ns_ >= decay_ns_ / 2) PurgeLocked(now, false);
}

std::size_t PageHeap::ReleaseAll() {
  Locked h(this);
  std::size_t before = decommitted_bytes_;
  PurgeLocked(NowNanos(), true);
  return decommitted_bytes_ - before;
}

PageHeapStats PageHeap::Stats() {
  EngineLockHolder h(&lock_);
  PageHeapStats s;
  s.reserved_bytes = reserved_bytes_;
  s.committed_bytes = committed_bytes_;
  s.decommitted_bytes = decommitted_bytes_;
  s.free_committed_bytes = free_committed_bytes_;
  s.huge_cache_bytes = huge_cache_bytes_;
  s.large_live_bytes = large_live_bytes_;
  s.large_allocations = large_allocations_;
  s.large_frees = large_frees_;
  s.metadata_bytes = g_class_map.metadata_bytes() + g_segment_map.metadata_bytes();
  return s;
}

}  // namespace strata::internal
