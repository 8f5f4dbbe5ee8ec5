// The public API (alloc/strata.h): one-line forwards to the fast paths in
// alloc/internal/thread_cache.h plus the size arithmetic of aligned, zeroed
// and resized allocations, and the checks of sized and aligned frees
// (alloc/internal/hardening.h says what is checked in which mode).
#include "alloc/strata.h"

#include <cstdint>
#include <cstring>

#include "alloc/internal/block_lookup.h"
#include "alloc/internal/errors.h"
#include "alloc/internal/globals.h"
#include "alloc/internal/hardening.h"
#include "alloc/internal/hooks.h"
#include "alloc/internal/page_map.h"
#include "alloc/internal/sampled_slices.h"
#include "alloc/internal/thread_cache.h"
#include "alloc/internal/tracked_cache.h"

namespace strata {
namespace internal {
namespace {

// Larger requests fail at once (no size arithmetic can overflow below it).
constexpr std::size_t kMaxRequest = std::size_t{1} << 46;

bool IsPowerOfTwo(std::size_t x) { return x != 0 && (x & (x - 1)) == 0; }

// Usable bytes of the block `info` (LookupBlock of `ptr`) describes, when
// the class map does not know it (tracked, large or huge, or a small block
// in a slice that holds sampled blocks, sampled_slices.h), or 0 after
// reporting `error` (or `freed_error` for a pointer into freed memory) for
// a pointer that is not such a block.
std::size_t UsableSizeOf(const BlockInfo& info, const void* ptr, ErrorKind error, ErrorKind freed_error) {
  const auto addr = reinterpret_cast<std::uintptr_t>(ptr);
  // A small block the class map does not know: its slice holds sampled
  // blocks, or its mark changed under the reads (sampled_slices.h).
  if (info.kind != BlockKind::kNone && info.start == addr &&
      (info.kind != BlockKind::kSmall || sampled_slices::SettledClass(addr) != 0)) {
    return info.usable;
  }
  ReportError(info.freed ? freed_error : error, ptr, 0);
  return 0;
}

std::size_t SlowUsableSize(const void* ptr, ErrorKind error, ErrorKind freed_error) {
  return UsableSizeOf(LookupBlock(reinterpret_cast<std::uintptr_t>(ptr)), ptr, error, freed_error);
}

// Reallocate grew the large or huge block `info` (LookupBlock of `ptr`) in
// place to `new_size` bytes: a tracked block's record takes the new sizes
// (its usable size read again). Tracked blocks are the sampled few; others
// return at once. (A realloc within the usable size leaves the record as
// it is: its scan range is right, and updating it on every call would put
// a table lookup on every append of a string built by realloc.)
void NoteGrownInPlace(const BlockInfo& info, void* ptr, std::size_t new_size) {
  const bool tracked = info.kind == BlockKind::kHuge ? info.segment->tracked : info.span->tracked;
  if (!tracked) return;
  const TrackingHooks* hooks = InstalledTrackingHooks();
  if (hooks == nullptr) return;
  hooks->on_resize(ptr, new_size, LookupBlock(reinterpret_cast<std::uintptr_t>(ptr)).usable);
}

// Whether an AllocateAligned(size, A) call, for some alignment A > 16 that
// `addr` satisfies, picks class `size_class`: FreeSized's contract accepts
// the requested size of an aligned block too, and normal mode does not
// record alignments. (So for classes of a power-of-two size, a too small
// size is only caught in hardened mode.)
bool AlignedAllocationExplains(int size_class, std::uintptr_t addr, std::size_t size) {
  for (std::size_t a = 32; a <= kSliceSize && (addr & (a - 1)) == 0; a <<= 1) {
    if (AlignedClass(size, a) == size_class) return true;
  }
  return false;
}

// Whether the block at `addr`, of class `size_class` in a slice the class
// map does not know, may be a sampled request of a smaller class that took
// a block of sampled_slices::kSmallSampleClass (its slice's word names it,
// or may): its free may then name any size up to kMinInPlaceSize, and a
// reallocation moves it (a new size is judged as a new request).
bool MaySampleSmaller(std::uintptr_t addr, int size_class) {
  if (size_class != sampled_slices::kSmallSampleClass) return false;
  const std::uint64_t word = sampled_slices::Word(addr);
  return word != 0 && sampled_slices::MayName(word, addr);
}

void ReportClaimError(ErrorKind kind, void* ptr, const FreeClaim& claim) {
  ErrorReport r{kind, ptr};
  r.size = claim.size == kNoSize ? 0 : claim.size;
  r.alignment = claim.alignment;
  ReportError(r);
}

// A free whose claim (size, alignment, kind) could not be accepted on the
// fast path. Normal mode: checks size and alignment against the block (the
// kind is not recorded), then frees. Hardened: HardenedFree checks all.
STRATA_NOINLINE void FreeClaimedSlow(void* ptr, int size_class, const FreeClaim& claim) {
  EnsureProcessInit();
  if (Hardened()) {
    HardenedFree(ptr, claim);
    return;
  }
  if (ptr == nullptr) return;
  auto addr = reinterpret_cast<std::uintptr_t>(ptr);
  int block_class = size_class;
  std::size_t requested = 0, usable = 0, alignment = 0;
  bool tracked_small = false;
  bool sampled_smaller = false;
  if (block_class == 0) {
    BlockInfo info = LookupBlock(addr);
    if (info.kind == BlockKind::kNone || info.start != addr) {
      FreeSlow(ptr, 0);  // reports the invalid, interior or double free
      return;
    }
    if (info.kind == BlockKind::kSmall || info.kind == BlockKind::kTrackedSmall) {
      block_class = info.size_class;
      tracked_small = info.kind == BlockKind::kTrackedSmall;
      sampled_smaller = info.kind == BlockKind::kSmall && MaySampleSmaller(addr, block_class);
    } else {
      bool huge = info.kind == BlockKind::kHuge;
      requested = huge ? info.segment->huge_size : info.span->large_size;
      usable = info.usable;
      std::uint8_t log2 = huge ? info.segment->align_log2 : info.span->align_log2;
      alignment = log2 == 0 ? 0 : std::size_t{1} << log2;
    }
  }
  const bool aligned_claim = claim.alignment > 16;
  if (aligned_claim && (!IsPowerOfTwo(claim.alignment) || (addr & (claim.alignment - 1)) != 0)) {
    ReportClaimError(ErrorKind::kAlignmentMismatch, ptr, claim);
    return;
  }
  if (block_class != 0) {
    // Small: an aligned claim must name the class the aligned allocation
    // chose; an unaligned one a size that maps to the class (or that an
    // in-place Reallocate may have left).
    if (aligned_claim) {
      if (ClassSize(block_class) % claim.alignment != 0) {
        ReportClaimError(ErrorKind::kAlignmentMismatch, ptr, claim);
        return;
      }
      if (claim.size != kNoSize && AlignedClass(claim.size, claim.alignment) != block_class) {
        ReportClaimError(claim.size <= ClassSize(block_class) && SizedFreeMatches(block_class, claim.size)
                             ? ErrorKind::kAlignmentMismatch
                             : ErrorKind::kSizeMismatch,
                         ptr, claim);
        return;
      }
    } else if (claim.size != kNoSize && !SizedFreeMatches(block_class, claim.size) &&
               !(claim.size <= ClassSize(block_class) && AlignedAllocationExplains(block_class, addr, claim.size)) &&
               !(sampled_smaller && claim.size <= sampled_slices::kMinInPlaceSize)) {
      ReportClaimError(ErrorKind::kSizeMismatch, ptr, claim);
      return;
    }
  } else {
    // Large: the size between half the request (in-place shrinking keeps
    // at least half the usable size) and the usable size; an aligned claim
    // must name the alignment the block was allocated with.
    if (claim.size != kNoSize && (claim.size > usable || claim.size < requested / 2)) {
      ReportClaimError(ErrorKind::kSizeMismatch, ptr, claim);
      return;
    }
    if (aligned_claim && claim.alignment != alignment) {
      ReportClaimError(ErrorKind::kAlignmentMismatch, ptr, claim);
      return;
    }
  }
  if (tracked_small) {
    // The lookup is done (every sized delete of full tracking comes here):
    // straight to the tracked cache, as FreeSlow would after a second one.
    tracked_cache::TrackedCacheFree(ptr, block_class);
    return;
  }
  FreeSlow(ptr, size_class);
}

STRATA_ALWAYS_INLINE void FreeSizedWithKind(AllocKind kind, void* ptr, std::size_t size) {
  const SliceEntry entry = g_class_map.GetEntry(reinterpret_cast<std::uintptr_t>(ptr));
  // The class map's answer doubles as the size check: a size that maps to
  // the block's class (a range compare) lets the thread's own block take
  // the fast path.
  const std::uint32_t c = LocalClass(entry);
  if (STRATA_PREDICT_TRUE(IsLocalClass(c) && SizedFreeMatches(static_cast<int>(c), size)) && TryCachePush(ptr, c)) {
    return;
  }
  FreeClaim claim;
  claim.kind = kind;
  claim.size = size;
  FreeClaimedSlow(ptr, EntryClass(entry), claim);
}

STRATA_ALWAYS_INLINE void FreeAlignedWithKind(AllocKind kind, void* ptr, std::size_t size,
                                              std::size_t alignment) {
  FreeClaim claim;
  claim.kind = kind;
  claim.size = size;
  claim.alignment = alignment;
  if (STRATA_PREDICT_FALSE(!IsPowerOfTwo(alignment))) {
    if (ptr != nullptr) ReportClaimError(ErrorKind::kAlignmentMismatch, ptr, claim);
    return;
  }
  if (alignment <= 16) {
    // Hardened mode checks the alignment named against the block's (an
    // operator new may have named this one or another). Rare: aligned
    // deletes of such alignments come from explicit calls and pmr.
    if (STRATA_PREDICT_FALSE(Hardened())) {
      FreeClaimedSlow(ptr, 0, claim);
      return;
    }
    if (size != kNoSize) {
      FreeSizedWithKind(kind, ptr, size);
    } else {
      FreeFast(ptr, kind);
    }
    return;
  }
  // A small block whose class serves the alignment (and the size) claimed:
  // the push. Everything else is checked on the slow path.
  if (STRATA_PREDICT_TRUE(TryAlignedCacheFree(ptr, size, alignment))) return;
  FreeClaimedSlow(ptr, g_class_map.Get(reinterpret_cast<std::uintptr_t>(ptr)), claim);
}

STRATA_ALWAYS_INLINE void* AllocateAlignedWithKind(AllocKind kind, std::size_t size, std::size_t alignment) {
  if (!IsPowerOfTwo(alignment)) return nullptr;
  if (alignment <= 16) return AllocateFast(size, kind);
  if (size > kMaxRequest) return nullptr;
  int c = AlignedClass(size, alignment);
  if (c != 0) return AllocateSmall(size, alignment, c, kind);
  return AllocateSlow(size, alignment, 0, kind);
}

}  // namespace

// --- Entry points for the override layer (hardening.h) ---------------------

void* AllocateAs(AllocKind kind, std::size_t size, std::size_t alignment) noexcept {
  if (alignment == 0) return AllocateFast(size, kind);
  // An alignment every block has, named: the slow path, where hardened mode
  // records it (normal mode serves it as a plain request).
  if (alignment <= 16) {
    return AllocateSlow(size, alignment, size <= kMaxSmallSize ? SizeToClass(size) : 0, kind);
  }
  return AllocateAlignedWithKind(kind, size, alignment);
}

void FreeAs(AllocKind kind, void* ptr) noexcept { FreeFast(ptr, kind); }

void FreeSizedAs(AllocKind kind, void* ptr, std::size_t size) noexcept { FreeSizedWithKind(kind, ptr, size); }

void FreeAlignedAs(AllocKind kind, void* ptr, std::size_t alignment) noexcept {
  FreeAlignedWithKind(kind, ptr, kNoSize, alignment);
}

void FreeAlignedSizedAs(AllocKind kind, void* ptr, std::size_t size, std::size_t alignment) noexcept {
  FreeAlignedWithKind(kind, ptr, size, alignment);
}

}  // namespace internal

using internal::ClassSize;
using internal::g_class_map;
using internal::kMaxSmallSize;
using internal::kSliceSize;

void* Allocate(std::size_t size) noexcept { return internal::AllocateFast(size); }

void* AllocateAligned(std::size_t size, std::size_t alignment) noexcept {
  return internal::AllocateAlignedWithKind(internal::AllocKind::kMalloc, size, alignment);
}

void* AllocateZeroed(std::size_t count, std::size_t size) noexcept {
  std::size_t bytes;
  if (__builtin_mul_overflow(count, size, &bytes) || bytes > internal::kMaxRequest) return nullptr;
  if (bytes <= kMaxSmallSize) {
    void* p = internal::AllocateFast(bytes);
    if (p != nullptr) std::memset(p, 0, bytes);
    return p;
  }
  return internal::AllocateZeroedLarge(bytes);
}

void Free(void* ptr) noexcept { internal::FreeFast(ptr); }

void FreeSized(void* ptr, std::size_t size) noexcept {
  internal::FreeSizedWithKind(internal::AllocKind::kMalloc, ptr, size);
}

void FreeAlignedSized(void* ptr, std::size_t size, std::size_t alignment) noexcept {
  internal::FreeAlignedWithKind(internal::AllocKind::kMalloc, ptr, size, alignment);
}

std::size_t UsableSize(const void* ptr) noexcept {
  if (ptr == nullptr) return 0;
  internal::EnsureProcessInit();
  if (internal::Hardened()) {
    std::size_t n = internal::HardenedUsableSize(ptr, false);
    return n == internal::kNoSize ? 0 : n;
  }
  int c = g_class_map.Get(reinterpret_cast<std::uintptr_t>(ptr));
  if (c != 0) return ClassSize(c);
  return internal::SlowUsableSize(ptr, internal::ErrorKind::kInvalidUsableSize,
                                  internal::ErrorKind::kInvalidUsableSize);
}

namespace {

// A block that must move to grow moves to at least 1.25x its usable
// size (as tcmalloc does): a buffer grown a few bytes at a time (naive
// string building) then moves a logarithmic number of times with
// amortised linear copying, instead of once per size class (or, for a
// large block whose neighbour is taken, once per 64 KiB slice) it
// crosses. The quarter asked in advance is address space until it is
// written (fresh pages are not faulted in). When that much is not
// available, the exact size is tried. `old`: the block's usable size.
void* MoveBlock(void* ptr, std::size_t old, std::size_t new_size) {
  void* fresh = nullptr;
  if (new_size > old) {
    const std::size_t grown = old + old / 4;
    if (new_size < grown) fresh = Allocate(grown);
  }
  if (fresh == nullptr) fresh = Allocate(new_size);
  if (fresh == nullptr) return nullptr;
  std::memcpy(fresh, ptr, old < new_size ? old : new_size);
  Free(ptr);
  return fresh;
}

}  // namespace

void* internal::ReallocateSmallMoving(void* ptr, std::size_t new_size, int size_class) noexcept {
  return MoveBlock(ptr, ClassSize(size_class), new_size);
}

void* Reallocate(void* ptr, std::size_t new_size) noexcept {
  if (ptr == nullptr) return Allocate(new_size);
  if (new_size == 0) {
    Free(ptr);
    return nullptr;
  }
  if (new_size > internal::kMaxRequest) return nullptr;
  internal::EnsureProcessInit();
  if (internal::Hardened()) return internal::HardenedReallocate(ptr, new_size);
  const int c = g_class_map.Get(reinterpret_cast<std::uintptr_t>(ptr));
  if (c != 0) {
    if (internal::SmallBlockKeepsPlace(c, new_size)) return ptr;
    return internal::ReallocateSmallMoving(ptr, new_size, c);  // as realloc's inline path
  }
  const auto addr = reinterpret_cast<std::uintptr_t>(ptr);
  // A block of a slice that holds sampled blocks (sampled_slices.h): the
  // class from the slice's word, as the class map's path above takes it
  // (no lookup, and, as there, no check that `ptr` starts a live block);
  // a block that may hold a smaller sampled request moves (see below). The
  // lookup of the segment and span was what sampling added to these
  // reallocations (a sampled block's and its neighbours': 0.56 cache misses
  // an average sample on mstress, bench/RESULTS.md "Sampling cost").
  if (const std::uint64_t word = sampled_slices::Word(addr); word != 0) {
    const int word_class = sampled_slices::WordClass(word);
    if (internal::SmallBlockKeepsPlace(word_class, new_size) &&
        !(word_class == sampled_slices::kSmallSampleClass && sampled_slices::MayName(word, addr))) {
      return ptr;
    }
    return internal::ReallocateSmallMoving(ptr, new_size, word_class);
  }
  // One lookup serves the check and the growth.
  const internal::BlockInfo info = internal::LookupBlock(addr);
  const std::size_t old = internal::UsableSizeOf(info, ptr, internal::ErrorKind::kInvalidRealloc,
                                                 internal::ErrorKind::kReallocFreed);
  if (old == 0) return nullptr;
  if (info.kind == internal::BlockKind::kSmall) {
    // In a slice that holds sampled blocks: as the class map's path above,
    // but for a block that may hold a smaller sampled request, which moves
    // (its usable size is not what its request's class would have given:
    // kept in place, its record would keep the old size).
    if (internal::SmallBlockKeepsPlace(info.size_class, new_size) &&
        !internal::MaySampleSmaller(addr, info.size_class)) {
      return ptr;
    }
    return internal::ReallocateSmallMoving(ptr, new_size, info.size_class);
  }
  if (new_size <= old && new_size >= old / 2) return ptr;
  // A large or huge block grows into free space right after it when it
  // can: no copy, and no second block alive during the copy (realloc
  // growth loops would otherwise move and fault in a new block each time).
  if (new_size > old && new_size > kMaxSmallSize &&
      (info.kind == internal::BlockKind::kLarge || info.kind == internal::BlockKind::kHuge) &&
      internal::g_page_heap.GrowInPlace(info.segment, info.span, addr, new_size)) {
    internal::NoteGrownInPlace(info, ptr, new_size);
    return ptr;
  }
  return MoveBlock(ptr, old, new_size);
}

std::size_t GoodSize(std::size_t size) noexcept {
  internal::EnsureProcessInit();
  if (internal::Hardened()) return size == 0 ? 1 : size;  // UsableSize is the request exactly
  if (size <= kMaxSmallSize) return ClassSize(internal::SizeToClass(size));
  if (size > internal::kMaxRequest) return size;
  return (size + kSliceSize - 1) & ~(kSliceSize - 1);
}

bool Owns(const void* ptr) noexcept {
  // The mode is decided by the process init (also when this is the
  // program's first call into strata).
  internal::EnsureProcessInit();
  auto addr = reinterpret_cast<std::uintptr_t>(ptr);
  internal::BlockInfo info = internal::LookupBlock(addr);
  if (info.kind == internal::BlockKind::kNone || info.start != addr) return false;
  if (internal::Hardened() &&
      (info.kind == internal::BlockKind::kSmall || info.kind == internal::BlockKind::kTrackedSmall)) {
    // Hardened mode knows whether a small block is allocated.
    return (info.segment->BitWord(addr).load(std::memory_order_acquire) & internal::Segment::BitMask(addr)) != 0;
  }
  return true;
}

void FlushThreadCache() noexcept {
  internal::EnsureProcessInit();
  internal::FlushCurrentThread();
}

std::size_t ReleaseMemory() noexcept {
  // The engine's locks are taken below: the process init registers their
  // fork handlers first (this may be the program's first call into strata,
  // or a fork child's whose parent was inside the init: see
  // EnsureProcessInit).
  internal::EnsureProcessInit();
  internal::FlushCurrentThread();
  for (int c = 1; c < internal::kNumClasses; ++c) internal::g_central[c].Drain(c);
  return internal::g_page_heap.ReleaseAll();
}

}  // namespace strata
