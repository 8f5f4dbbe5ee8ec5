// Hardened mode (see hardening.h for what and why): the mode decision, the
// block layout (bitmap bit, trailer, canary, free record), the hardened
// allocation and free slow paths, and stack capture for error reports.
//
// Call tree in hardened mode (the fast paths always miss):
//   AllocateSlow -> HardenedAllocate -> PopChecked -> central Remove (refill)
//                                    |             `-> HardenedValidLink
//                                    `-> HardenedPrepareSmall (bit, trailer)
//                                    `-> AllocateLargeChecked (page heap)
//   FreeSlow     -> HardenedFree -> LookupBlock
//                                `-> FreeSmallChecked (bit, trailer, canary,
//                                    kind, size) -> junk + free record ->
//                                    cache push / ReleaseFromList
//                                `-> FreeLargeChecked -> page heap
#include "alloc/internal/hardening.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
#include <time.h>

#include <cstring>

#include "alloc/internal/block_lookup.h"
#include "alloc/internal/errors.h"
#include "alloc/internal/globals.h"
#include "alloc/internal/hooks.h"
#include "alloc/internal/page_map.h"
#include "alloc/internal/thread_cache.h"
#include "alloc/os/os.h"

namespace strata::internal {

constinit std::atomic<bool> g_hardened{false};
constinit std::uintptr_t g_link_key = 0;

namespace {

constinit std::uint64_t g_secret = 0;
constinit unsigned char g_canary = 0;

// Largest request served (as the public API; larger fails before any
// arithmetic can overflow).
constexpr std::size_t kMaxRequest = std::size_t{1} << 46;
// The trailer's check value (16 bits): a random overwrite keeps it with
// probability 2^-16.
constexpr std::uint64_t kTrailerCheck = 0xa5c3;
// Freed blocks (hardened) record who freed them: [8, 16) magic, [16, 24)
// frame count, then frames. Only blocks with room for a frame get one.
constexpr std::size_t kRecordHeader = 24;
// Bytes of canary checked after a large block's request.
constexpr std::size_t kLargeCanaryChecked = 64;

std::uint64_t Mix(std::uint64_t x) {
  // splitmix64's finaliser: every input bit affects every output bit.
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

bool EnvFlagOn(const char* name) {
  const char* v = getenv(name);
  return v != nullptr && v[0] != '\0' && !(v[0] == '0' && v[1] == '\0');
}

std::uint64_t TrailerMask(std::uintptr_t block) { return Mix(g_secret ^ block); }
std::uint64_t RecordMagic(std::uintptr_t block) { return Mix(g_secret ^ block ^ 0xf7eeull); }

void StoreWord(std::uintptr_t addr, std::uint64_t v) { std::memcpy(reinterpret_cast<void*>(addr), &v, 8); }
std::uint64_t LoadWord(std::uintptr_t addr) {
  std::uint64_t v;
  std::memcpy(&v, reinterpret_cast<const void*>(addr), 8);
  return v;
}

// True when the `n` bytes at `p` all equal `byte`.
bool CheckFill(std::uintptr_t p, std::size_t n, unsigned char byte) {
  const std::uint64_t pattern = 0x0101010101010101ull * byte;
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    if (LoadWord(p + i) != pattern) return false;
  }
  for (; i < n; ++i) {
    if (*reinterpret_cast<const unsigned char*>(p + i) != byte) return false;
  }
  return true;
}

// The alignment an allocation named, kept in a byte (AlignCode, hardening.h).
std::size_t AlignmentOf(std::uint8_t code) { return code == 0 ? 0 : std::size_t{1} << (code - 1); }

// --- free records ---

// Junk-fills [8, avail) of a freed block and records the freeing stack in
// it. `avail` is how many bytes from `block` may be written.
// glibc's memset, called: GCC would otherwise inline a `rep stos` here,
// whose start-up cost dominates for the small blocks that are most freed.
void* (*volatile g_memset)(void*, int, std::size_t) = &std::memset;

void WriteFreeRecord(std::uintptr_t block, std::size_t avail) {
  if (avail > 8) g_memset(reinterpret_cast<void*>(block + 8), kFreeJunk, avail - 8);
  if (avail < kRecordHeader + 8) return;
  void* frames[kFreeRecordFrames];
  std::size_t room = (avail - kRecordHeader) / 8;
  int max = room < static_cast<std::size_t>(kFreeRecordFrames) ? static_cast<int>(room) : kFreeRecordFrames;
  // Skip this function and the hardened free itself.
  int n = CaptureStack(frames, max, 2);
  StoreWord(block + 8, RecordMagic(block));
  StoreWord(block + 16, static_cast<std::uint64_t>(n));
  std::memcpy(reinterpret_cast<void*>(block + kRecordHeader), frames, static_cast<std::size_t>(n) * 8);
}

// Reads the free record of a freed block (0 frames when there is none).
int ReadFreeRecord(std::uintptr_t block, std::size_t avail, void** frames) {
  if (avail < kRecordHeader + 8 || LoadWord(block + 8) != RecordMagic(block)) return 0;
  std::uint64_t n = LoadWord(block + 16);
  if (n == 0 || n > static_cast<std::uint64_t>(kFreeRecordFrames) || kRecordHeader + 8 * n > avail) return 0;
  std::memcpy(frames, reinterpret_cast<const void*>(block + kRecordHeader), n * 8);
  return static_cast<int>(n);
}

void ReportDoubleFree(ErrorKind kind, const void* ptr, std::size_t size, std::uintptr_t block, std::size_t avail) {
  void* frames[kFreeRecordFrames];
  ErrorReport r{kind, ptr};
  r.size = size;
  r.free_frames = ReadFreeRecord(block, avail, frames);
  r.free_stack = frames;
  ReportError(r);
}

// Bytes of a freed (or live) block that may be read for its record.
std::size_t RecordSpan(const BlockInfo& info, std::uintptr_t addr) {
  if (info.span != nullptr) {
    std::uintptr_t end = info.span->start() + info.span->bytes();
    std::size_t left = end > addr ? end - addr : 0;
    return left < kLargeJunkBytes ? left : kLargeJunkBytes;
  }
  if (info.segment != nullptr && info.segment->kind == SegmentKind::kHuge) {
    std::uintptr_t end = info.segment->base() + info.segment->mapping_size;
    std::size_t left = end > addr ? end - addr : 0;
    return left < kLargeJunkBytes ? left : kLargeJunkBytes;
  }
  return 0;
}

// --- kind and claim checks ---

void ReportMismatch(const void* ptr, std::size_t size, AllocKind allocated, AllocKind freed) {
  raw::Buffer detail;
  detail.Str("allocated with ").Str(AllocKindName(allocated)).Str(", freed with ").Str(FreeKindName(freed));
  char text[160];
  std::size_t n = detail.size() < sizeof(text) - 1 ? detail.size() : sizeof(text) - 1;
  std::memcpy(text, detail.data(), n);
  text[n] = '\0';
  ErrorReport r{ErrorKind::kAllocDeallocMismatch, ptr};
  r.size = size;
  r.detail = text;
  ReportError(r);
}

// `named` is the alignment the allocation named (0: none).
void ReportClaim(ErrorKind kind, const void* ptr, const FreeClaim& claim, std::size_t named) {
  ErrorReport r{kind, ptr};
  r.size = claim.size == kNoSize ? 0 : claim.size;
  r.alignment = claim.alignment;
  char text[96];
  raw::Buffer detail;
  if (kind == ErrorKind::kAlignmentMismatch) {
    if (named == 0) {
      detail.Str("allocated without an alignment");
    } else {
      detail.Str("allocated with alignment ").Udec(named);
      if (claim.alignment == 0) detail.Str(", freed without one");
    }
    std::size_t n = detail.size() < sizeof(text) - 1 ? detail.size() : sizeof(text) - 1;
    std::memcpy(text, detail.data(), n);
    text[n] = '\0';
    r.detail = text;
  }
  ReportError(r);
}

// Checks the alignment and size a free claims against a block of `kind`
// that was allocated for `requested` bytes naming `named` (0: no
// alignment). Reports and returns false on a mismatch.
//
// Alignment: operator new and delete pair exactly ([new.delete]: an aligned
// delete names the alignment its new named, a plain delete frees a plain
// new's block), so for those kinds any difference is reported, smaller,
// larger, named on one side only, 16 or less included. The malloc family
// and the strata API (free_aligned_sized, FreeAlignedSized) only record
// alignments above 16, the one every block has, so there a claim of 16 or
// less names "no alignment" and an unaligned free (free) is always right.
//
// Size: by class. A small block's claimed size must map to its class (with
// its alignment), a large block's to the same number of slices.
bool ClaimMatches(const void* ptr, const FreeClaim& claim, AllocKind kind, int size_class,
                  std::size_t requested, std::size_t named) {
  const bool exact = kind != AllocKind::kMalloc;
  auto over = [](std::size_t a) { return a > 16 ? a : std::size_t{0}; };
  if (exact ? claim.alignment != named : claim.alignment != 0 && over(claim.alignment) != over(named)) {
    ReportClaim(ErrorKind::kAlignmentMismatch, ptr, claim, named);
    return false;
  }
  if (claim.size == kNoSize) return true;
  auto slices = [](std::size_t n) { return (n + kLargeCanaryBytes + kSliceSize - 1) >> kSliceShift; };
  bool ok = size_class != 0 ? HardenedClass(claim.size, named) == size_class
                            : claim.size <= kMaxRequest && slices(claim.size) == slices(requested);
  if (!ok) ReportClaim(ErrorKind::kSizeMismatch, ptr, claim, named);
  return ok;
}

// --- sampling ---

// As thread_cache.cc's CrossesSampleCountdown, on the hardened countdown.
bool CrossesSample(ThreadCache& tc, std::size_t size, bool* sampled) {
  tc.hardened_countdown -= static_cast<std::int64_t>(size);
  if (STRATA_PREDICT_TRUE(tc.hardened_countdown >= 0)) return false;
  tc.hardened_countdown = NextSampleCountdown();
  if (InstalledTrackingHooks() == nullptr) return false;
  if (TrackAll()) {
    *sampled = false;
    return true;
  }
  *sampled = true;
  return SampleRate() > 0;
}

// --- small blocks ---

// Pops a block of class `size_class` from the calling thread's hardened
// list, refilling it from the central pool. Validates every link.
FreeObject* PopChecked(ThreadCache& tc, int size_class) {
  FreeList& list = tc.lists[size_class];
  if (list.base == nullptr) {
    // No slot region (the OS refused it): a block at a time.
    FreeObject* one = nullptr;
    if (g_central[size_class].Remove(size_class, 1, &one) == 0) return nullptr;
    RelaxedStore(list.allocs, list.allocs + 1);
    return one;
  }
  if (list.top == list.base) {
    FreeObject* head = nullptr;
    int got = g_central[size_class].Remove(size_class, ClassInfo(size_class).batch, &head);
    if (got == 0) return nullptr;
    if (!HardenedValidLink(head, size_class)) {
      ReportError(ErrorKind::kFreeListCorruption, head, ClassSize(size_class));
      return nullptr;
    }
    // The chain's links are checked as it is copied into the array, the
    // first to come out last. A link written after free ends the chain
    // there: the objects before it are kept (each was validated when it
    // came back), the rest dropped (leaked, never handed out).
    FreeObject* chain[kMaxRefillObjects];
    int n = 0;
    for (FreeObject* o = head; o != nullptr && n < got && n < static_cast<int>(kMaxRefillObjects);) {
      chain[n++] = o;
      FreeObject* next = GetNext(o);
      if (STRATA_PREDICT_FALSE(!HardenedValidLink(next, size_class))) {
        ErrorReport r{ErrorKind::kFreeListCorruption, o};
        r.size = ClassSize(size_class);
        r.detail = "a freed block's link was overwritten (write after free?)";
        ReportError(r);
        break;
      }
      o = next;
    }
    // Each cached block's first word holds an encoded null (as a pushed
    // one does, FreeSmallChecked), checked when it is popped.
    for (int i = 0; i < n; ++i) {
      SetNext(chain[n - 1 - i], nullptr);
      list.base[i] = chain[n - 1 - i];
    }
    RelaxedStore(list.top, list.base + n);
  }
  FreeObject* object = static_cast<FreeObject*>(list.top[-1]);
  RelaxedStore(list.top, list.top - 1);
  RelaxedStore(list.allocs, list.allocs + 1);
  if (STRATA_PREDICT_FALSE(GetNext(object) != nullptr)) {
    // The encoded null written when the block was cached was overwritten
    // (a write after free, or a forged pointer).
    ErrorReport r{ErrorKind::kFreeListCorruption, object};
    r.size = ClassSize(size_class);
    r.detail = "a freed block's link was overwritten (write after free?)";
    ReportError(r);
  }
  return object;
}

void* AllocateLargeChecked(ThreadCache& tc, std::size_t size, std::size_t alignment, AllocKind kind,
                           bool zero) {
  if (size > kMaxRequest) return nullptr;
  bool sampled = false;
  bool track = tc.state == CacheState::kActive && CrossesSample(tc, size, &sampled);
  bool zeroed = false;
  void* p = g_page_heap.AllocLarge(size + kLargeCanaryBytes, alignment, &zeroed);
  if (p == nullptr) return nullptr;
  auto addr = reinterpret_cast<std::uintptr_t>(p);
  BlockInfo info = LookupBlock(addr);
  if (info.kind == BlockKind::kHuge) {
    info.segment->huge_size = size;
    info.segment->alloc_kind = static_cast<std::uint8_t>(kind);
    info.segment->align_code = AlignCode(alignment);
  } else {
    info.span->large_size = size;
    info.span->alloc_kind = static_cast<std::uint8_t>(kind);
    info.span->align_code = AlignCode(alignment);
  }
  std::size_t slack = info.usable - size;
  std::memset(reinterpret_cast<void*>(addr + size), g_canary,
              slack < kLargeCanaryChecked ? slack : kLargeCanaryChecked);
  if (zero && !zeroed) std::memset(p, 0, size);
  if (track) {
    if (info.kind == BlockKind::kHuge) {
      info.segment->tracked = true;
    } else {
      info.span->tracked = true;
    }
    InstalledTrackingHooks()->on_allocate(p, size, size, sampled);
  }
  return p;
}

void FreeSmallChecked(void* ptr, const BlockInfo& info, const FreeClaim& claim) {
  const auto addr = reinterpret_cast<std::uintptr_t>(ptr);
  const int c = info.size_class;
  const std::size_t cs = ClassSize(c);
  if (addr != info.start) {
    ReportError((addr & 15) != 0 ? ErrorKind::kMisalignedFree : ErrorKind::kInteriorFree, ptr, 0);
    return;
  }
  // The bit decides, atomically, which of two racing frees is the double
  // one. acq_rel: pairs with the RMW that set it (the allocation).
  std::atomic<std::uint64_t>& word = info.segment->BitWord(addr);
  const std::uint64_t mask = Segment::BitMask(addr);
  if ((word.fetch_and(~mask, std::memory_order_acq_rel) & mask) == 0) {
    ReportDoubleFree(ErrorKind::kDoubleFree, ptr, cs, addr, cs);
    return;
  }
  auto undo = [&] { word.fetch_or(mask, std::memory_order_acq_rel); };
  Trailer t = ReadTrailer(addr, c);
  if (!t.valid) {
    undo();
    ErrorReport r{ErrorKind::kHeapOverflow, ptr};
    r.size = cs;
    r.detail = "block trailer overwritten";
    ReportError(r);
    return;
  }
  if (!CheckFill(addr + t.size, cs - kTrailerBytes - t.size, g_canary)) {
    undo();
    ReportError(ErrorKind::kHeapOverflow, ptr, t.size);
    return;
  }
  if (t.kind != claim.kind) {
    undo();
    ReportMismatch(ptr, t.size, t.kind, claim.kind);
    return;
  }
  if (!ClaimMatches(ptr, claim, t.kind, c, t.size, AlignmentOf(t.align_code))) {
    undo();
    return;
  }
  WriteFreeRecord(addr, cs < kLargeJunkBytes ? cs : kLargeJunkBytes);
  auto* object = static_cast<FreeObject*>(ptr);
  if (info.kind == BlockKind::kTrackedSmall) {
    // The block bitmap has ruled out a double free: the record just ends.
    void* record = nullptr;
    InstalledTrackingHooks()->on_small_free(ptr, c, false, &record);
    SetNext(object, nullptr);
    g_tracked_central[c].Insert(c, object, 1);
    return;
  }
  ThreadCache& tc = CurrentThreadCache();
  if (tc.state != CacheState::kActive) {
    SetNext(object, nullptr);
    g_central[c].Insert(c, object, 1);
    return;
  }
  FreeList& list = tc.lists[c];
  if (list.base == nullptr) {
    SetNext(object, nullptr);
    g_central[c].Insert(c, object, 1);
    return;
  }
  // An encoded null in the block's first word: a write after free there
  // is seen when the block is popped (PopChecked).
  SetNext(object, nullptr);
  *list.top = object;
  RelaxedStore(list.top, list.top + 1);
  // Bounded: at most two batches per class wait here (the near slots have
  // room for them and the push that overflows them, cache_slots.h).
  const std::uint32_t batch = ClassInfo(c).batch;
  if (ListLength(list) > 2 * batch) ReleaseFromList(list, c, batch);
}

void FreeLargeChecked(void* ptr, const BlockInfo& info, const FreeClaim& claim) {
  const auto addr = reinterpret_cast<std::uintptr_t>(ptr);
  if (addr != info.start) {
    ReportError((addr & 15) != 0 ? ErrorKind::kMisalignedFree : ErrorKind::kInteriorFree, ptr, 0);
    return;
  }
  const bool huge = info.kind == BlockKind::kHuge;
  const std::size_t requested = huge ? info.segment->huge_size : info.span->large_size;
  const auto kind = static_cast<AllocKind>(huge ? info.segment->alloc_kind : info.span->alloc_kind);
  const std::uint8_t align_code = huge ? info.segment->align_code : info.span->align_code;
  std::size_t slack = info.usable - requested;
  if (requested > info.usable ||
      !CheckFill(addr + requested, slack < kLargeCanaryChecked ? slack : kLargeCanaryChecked, g_canary)) {
    ReportError(ErrorKind::kHeapOverflow, ptr, requested);
    return;
  }
  if (kind != claim.kind) {
    ReportMismatch(ptr, requested, kind, claim.kind);
    return;
  }
  if (!ClaimMatches(ptr, claim, kind, 0, requested, AlignmentOf(align_code))) return;
  bool tracked = huge ? info.segment->tracked : info.span->tracked;
  // Record before handing the block back: afterwards it may be reused.
  WriteFreeRecord(addr, requested < kLargeJunkBytes ? requested : kLargeJunkBytes);
  if (tracked) InstalledTrackingHooks()->on_free(ptr);
  if (!g_page_heap.FreeLarge(info.segment, info.span)) {
    // Another thread freed it first (checked under the page heap's lock).
    ReportError(ErrorKind::kDoubleFree, ptr, requested);
  }
}

// The live block at `ptr` (for realloc and usable size), or reports with
// `freed_kind` / `invalid_kind` and returns false.
struct LiveBlock {
  std::size_t size;
  AllocKind kind;
};
bool FindLive(const void* ptr, ErrorKind invalid_kind, ErrorKind freed_kind, LiveBlock* out) {
  auto addr = reinterpret_cast<std::uintptr_t>(ptr);
  BlockInfo info = LookupBlock(addr);
  switch (info.kind) {
    case BlockKind::kNone:
      if (info.freed) {
        ReportDoubleFree(freed_kind, ptr, 0, addr, RecordSpan(info, addr));
      } else {
        ReportError(invalid_kind, ptr, 0);
      }
      return false;
    case BlockKind::kSmall:
    case BlockKind::kTrackedSmall: {
      if (addr != info.start) break;
      std::size_t cs = ClassSize(info.size_class);
      if ((info.segment->BitWord(addr).load(std::memory_order_acquire) & Segment::BitMask(addr)) == 0) {
        ReportDoubleFree(freed_kind, ptr, cs, addr, cs);
        return false;
      }
      Trailer t = ReadTrailer(addr, info.size_class);
      if (!t.valid) {
        ReportError(ErrorKind::kHeapOverflow, ptr, cs);
        return false;
      }
      *out = {t.size, t.kind};
      return true;
    }
    case BlockKind::kLarge:
    case BlockKind::kHuge: {
      if (addr != info.start) break;
      bool huge = info.kind == BlockKind::kHuge;
      *out = {huge ? info.segment->huge_size : info.span->large_size,
              static_cast<AllocKind>(huge ? info.segment->alloc_kind : info.span->alloc_kind)};
      return true;
    }
  }
  ReportError(invalid_kind, ptr, 0);
  return false;
}

}  // namespace

const char* AllocKindName(AllocKind kind) {
  switch (kind) {
    case AllocKind::kMalloc: return "malloc";
    case AllocKind::kNew: return "operator new";
    case AllocKind::kNewArray: return "operator new[]";
  }
  return "?";
}

const char* FreeKindName(AllocKind kind) {
  switch (kind) {
    case AllocKind::kMalloc: return "free";
    case AllocKind::kNew: return "operator delete";
    case AllocKind::kNewArray: return "operator delete[]";
  }
  return "?";
}

void InitHardening() {
  if (!kHardenedBuild && !EnvFlagOn("STRATA_HARDENED")) {
    // Normal mode (also in a fork child that redoes the init its parent
    // left unfinished, possibly after this store: what that run set goes).
    g_hardened.store(false, std::memory_order_relaxed);
    return;
  }
  // Entropy without allocating or blocking: the kernel's AT_RANDOM bytes,
  // the clock, the TSC and an address (ASLR).
  std::uint64_t seed = 0;
  const auto* random = reinterpret_cast<const unsigned char*>(getauxval(AT_RANDOM));
  if (random != nullptr) std::memcpy(&seed, random + 8, 8);
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  seed ^= Mix(static_cast<std::uint64_t>(ts.tv_nsec) ^ __builtin_ia32_rdtsc() ^
              reinterpret_cast<std::uintptr_t>(&seed));
  g_secret = Mix(seed) | 1;
  g_link_key = Mix(g_secret ^ 0x5deece66dull) | 1;  // never 0 (0 means "off")
  unsigned char canary = static_cast<unsigned char>(g_secret >> 40);
  g_canary = (canary == 0 || canary == kFreeJunk) ? 0xcb : canary;
  // Release: pairs with EnsureProcessInit's acquire (via its state) and with
  // Hardened()'s readers through the blocks they were handed.
  g_hardened.store(true, std::memory_order_release);
}

int HardenedClass(std::size_t size, std::size_t alignment) {
  if (size > kMaxSmallSize) return 0;
  std::size_t need = size + kTrailerBytes;
  // The API promises natural alignment to power-of-two requests up to the
  // page size; with the trailer they no longer fit their own class, so ask
  // for the alignment explicitly (such blocks take the next power of two).
  if (alignment < size && size > 16 && size <= os::kPageSize && (size & (size - 1)) == 0) alignment = size;
  if (alignment > 16) return AlignedClass(need, alignment);
  return need <= kMaxSmallSize ? SizeToClass(need) : 0;
}

Trailer ReadTrailer(std::uintptr_t block, int size_class) {
  const std::size_t cs = ClassSize(size_class);
  std::uint64_t w = LoadWord(block + cs - kTrailerBytes) ^ TrailerMask(block);
  Trailer t;
  t.size = static_cast<std::size_t>(w & 0xffffffffu);
  t.kind = static_cast<AllocKind>((w >> 32) & 0xff);
  t.align_code = static_cast<std::uint8_t>((w >> 40) & 0xff);
  t.valid = (w >> 48) == kTrailerCheck && t.size + kTrailerBytes <= cs && t.kind >= AllocKind::kMalloc &&
            t.kind <= AllocKind::kNewArray && t.align_code <= kSliceShift + 1;
  return t;
}

bool HardenedPrepareSmall(FreeObject* block, int size_class, std::size_t size, std::size_t alignment,
                          AllocKind kind) {
  auto addr = reinterpret_cast<std::uintptr_t>(block);
  Segment* seg = g_segment_map.Get(addr);
  std::atomic<std::uint64_t>& word = seg->BitWord(addr);
  const std::uint64_t mask = Segment::BitMask(addr);
  // acq_rel: pairs with the RMW of the free that cleared the bit.
  if ((word.fetch_or(mask, std::memory_order_acq_rel) & mask) != 0) {
    ErrorReport r{ErrorKind::kCorruption, block};
    r.size = ClassSize(size_class);
    r.detail = "a block on a free list is allocated (handed out twice)";
    ReportError(r);
    return false;
  }
  const std::size_t cs = ClassSize(size_class);
  std::memset(reinterpret_cast<void*>(addr + size), g_canary, cs - kTrailerBytes - size);
  std::uint64_t w = static_cast<std::uint64_t>(size) | (static_cast<std::uint64_t>(kind) << 32) |
                    (static_cast<std::uint64_t>(AlignCode(alignment)) << 40) | (kTrailerCheck << 48);
  StoreWord(addr + cs - kTrailerBytes, w ^ TrailerMask(addr));
  return true;
}

bool HardenedValidLink(const FreeObject* next, int size_class) {
  if (next == nullptr) return true;
  auto addr = reinterpret_cast<std::uintptr_t>(next);
  if ((addr & 15) != 0) return false;
  const SizeClassInfo& info = ClassInfo(size_class);
  // Common case, without touching span metadata: the class map names the
  // class and the class's spans are one slice, so the span starts at the
  // slice boundary. (That the block is free is checked when it is popped,
  // by HardenedPrepareSmall's bitmap RMW.)
  if (info.span_slices == 1 && g_class_map.Get(addr) == size_class) {
    std::uint64_t offset = addr & (kSliceSize - 1);
    std::uint64_t index = BlockIndex(offset, size_class);
    return index * info.size == offset && index < info.objects;
  }
  // Multi-slice spans and tracked pools (invisible to the class map).
  Segment* seg = g_segment_map.Get(addr);
  if (seg == nullptr || seg->kind != SegmentKind::kNormal || addr - seg->base() < kSliceSize) return false;
  Span* span = seg->SpanOf(addr);
  if (span->state != SpanState::kSmall || span->size_class != size_class) return false;
  std::size_t offset = addr - span->start();
  std::uint64_t index = BlockIndex(offset, size_class);
  return index * info.size == offset && index < SpanObjects(size_class, span->tracked);
}

void* HardenedAllocate(std::size_t size, std::size_t alignment, AllocKind kind, bool zero) {
  // A 0-byte request gets one usable byte, as in normal mode (the canary
  // starts right after it).
  if (size == 0) size = 1;
  ThreadCache& tc = CurrentThreadCache();
  int c = HardenedClass(size, alignment);
  if (c == 0) return AllocateLargeChecked(tc, size, alignment, kind, zero);
  bool sampled = false;
  bool track = tc.state == CacheState::kActive && CrossesSample(tc, size, &sampled);
  FreeObject* object = nullptr;
  if (track) {
    if (g_tracked_central[c].Remove(c, 1, &object) == 0) return nullptr;
    RelaxedStore(tc.lists[c].allocs, tc.lists[c].allocs + 1);
  } else if (tc.state != CacheState::kActive) {
    // The thread is exiting: no cache.
    if (g_central[c].Remove(c, 1, &object) == 0) return nullptr;
    CountCachelessAllocation(c);
  } else {
    object = PopChecked(tc, c);
    if (object == nullptr) return nullptr;
  }
  if (!HardenedPrepareSmall(object, c, size, alignment, kind)) return nullptr;
  if (zero) std::memset(object, 0, size);
  if (track) InstalledTrackingHooks()->on_small_allocate(object, c, size, sampled, nullptr);
  return object;
}

void HardenedFree(void* ptr, const FreeClaim& claim) {
  if (ptr == nullptr) return;
  auto addr = reinterpret_cast<std::uintptr_t>(ptr);
  BlockInfo info = LookupBlock(addr);
  switch (info.kind) {
    case BlockKind::kNone:
      if (info.freed) {
        ReportDoubleFree(ErrorKind::kDoubleFree, ptr, 0, addr, RecordSpan(info, addr));
      } else {
        ReportError(info.segment != nullptr && (addr & 15) != 0 ? ErrorKind::kMisalignedFree
                                                                 : ErrorKind::kInvalidFree,
                    ptr, 0);
      }
      return;
    case BlockKind::kSmall:
    case BlockKind::kTrackedSmall:
      FreeSmallChecked(ptr, info, claim);
      return;
    case BlockKind::kLarge:
    case BlockKind::kHuge:
      FreeLargeChecked(ptr, info, claim);
      return;
  }
}

std::size_t HardenedUsableSize(const void* ptr, bool for_realloc) {
  LiveBlock block;
  if (!FindLive(ptr, for_realloc ? ErrorKind::kInvalidRealloc : ErrorKind::kInvalidUsableSize,
                for_realloc ? ErrorKind::kReallocFreed : ErrorKind::kInvalidUsableSize, &block)) {
    return kNoSize;
  }
  return block.size;
}

void* HardenedReallocate(void* ptr, std::size_t new_size) {
  LiveBlock block;
  if (!FindLive(ptr, ErrorKind::kInvalidRealloc, ErrorKind::kReallocFreed, &block)) return nullptr;
  if (block.kind != AllocKind::kMalloc) {
    ReportMismatch(ptr, block.size, block.kind, AllocKind::kMalloc);
    return nullptr;
  }
  // In place when the new size maps to the same class (small) or the same
  // slices (large): the trailer and canary are rewritten for the new size,
  // after checking the old ones.
  auto addr = reinterpret_cast<std::uintptr_t>(ptr);
  BlockInfo info = LookupBlock(addr);
  if (info.kind == BlockKind::kSmall || info.kind == BlockKind::kTrackedSmall) {
    const int c = info.size_class;
    const std::size_t cs = ClassSize(c);
    Trailer t = ReadTrailer(addr, c);
    if (!CheckFill(addr + t.size, cs - kTrailerBytes - t.size, g_canary)) {
      ReportError(ErrorKind::kHeapOverflow, ptr, t.size);
      return nullptr;
    }
    if (HardenedClass(new_size, AlignmentOf(t.align_code)) == c) {
      std::memset(reinterpret_cast<void*>(addr + new_size), g_canary, cs - kTrailerBytes - new_size);
      std::uint64_t w = static_cast<std::uint64_t>(new_size) | (static_cast<std::uint64_t>(t.kind) << 32) |
                        (static_cast<std::uint64_t>(t.align_code) << 40) | (kTrailerCheck << 48);
      StoreWord(addr + cs - kTrailerBytes, w ^ TrailerMask(addr));
      return ptr;
    }
  } else if ((info.kind == BlockKind::kLarge || info.kind == BlockKind::kHuge) && new_size > kMaxSmallSize) {
    const bool huge = info.kind == BlockKind::kHuge;
    std::size_t& stored = huge ? info.segment->huge_size : info.span->large_size;
    std::size_t slack = info.usable - stored;
    if (!CheckFill(addr + stored, slack < kLargeCanaryChecked ? slack : kLargeCanaryChecked, g_canary)) {
      ReportError(ErrorKind::kHeapOverflow, ptr, stored);
      return nullptr;
    }
    if (new_size + kLargeCanaryBytes <= info.usable && 2 * new_size >= stored) {
      std::size_t room = info.usable - new_size;
      std::memset(reinterpret_cast<void*>(addr + new_size), g_canary,
                  room < kLargeCanaryChecked ? room : kLargeCanaryChecked);
      stored = new_size;
      return ptr;
    }
  }
  void* fresh = HardenedAllocate(new_size, 0, AllocKind::kMalloc, false);
  if (fresh == nullptr) return nullptr;
  std::memcpy(fresh, ptr, block.size < new_size ? block.size : new_size);
  FreeClaim claim;
  HardenedFree(ptr, claim);
  return fresh;
}

namespace {

// Whether the 8 bytes at `addr` (8-aligned) can be read, asked of the
// kernel, which answers EFAULT instead of faulting: 1 yes, 0 no, -1 when it
// cannot be asked. First process_vm_readv on this process. Seccomp filters
// (containers, sandboxes) often refuse it; then rt_sigprocmask with an
// invalid `how`: the kernel copies the new mask from `addr` before it looks
// at `how`, so the call fails with EFAULT when the memory cannot be read
// and with EINVAL when it can, and changes nothing either way. (Not first:
// valgrind's memcheck reports that call's unreadable argument as an error
// in the program.)
constinit std::atomic<std::uint64_t> g_stack_probes{0};

int Readable(std::uintptr_t addr) {
  g_stack_probes.fetch_add(1, std::memory_order_relaxed);
  static std::atomic<bool> readv_refused{false};
  if (!readv_refused.load(std::memory_order_relaxed)) {
    char byte;
    iovec local{&byte, 1};
    iovec remote{reinterpret_cast<void*>(addr), 1};
    if (process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == 1) return 1;
    if (errno == EFAULT) return 0;
    readv_refused.store(true, std::memory_order_relaxed);  // a hint, relaxed
  }
  if (syscall(SYS_rt_sigprocmask, ~0, reinterpret_cast<void*>(addr), nullptr, 8) != 0) {
    if (errno == EINVAL) return 1;
    if (errno == EFAULT) return 0;
  }
  return -1;
}

constexpr std::uintptr_t kProbePage = 4096;

// Walks pages upward from `page` (page-aligned) while Readable says yes,
// up to `limit`: returns the first page that is not readable, or `limit`
// when every page below it is; *answer is Readable's answer for the page
// returned (1 at `limit`). Preserves errno.
std::uintptr_t ScanReadable(std::uintptr_t page, std::uintptr_t limit, int* answer) {
  const int saved_errno = errno;
  *answer = 1;
  while (page < limit && (*answer = Readable(page)) == 1) page += kProbePage;
  if (page >= limit) *answer = 1;
  errno = saved_errno;
  return page;
}

// As ScanReadable, up to the first page that cannot be read. A thread's
// stack can end right below another thread's guard page, which is mapped
// (mincore accepts it) but not readable: the scan must stop there. Where
// the kernel cannot be asked (Readable's -1), mapped pages as mincore sees
// them. Preserves errno.
std::uintptr_t ScanStack(std::uintptr_t page, std::uintptr_t limit) {
  int answer;
  std::uintptr_t end = ScanReadable(page, limit, &answer);
  if (end < limit && answer == -1) {
    const int saved_errno = errno;
    unsigned char vec;
    while (end < limit && mincore(reinterpret_cast<void*>(end), kProbePage, &vec) == 0) end += kProbePage;
    errno = saved_errno;
  }
  return end;
}

}  // namespace

std::uint64_t StackProbes() { return g_stack_probes.load(std::memory_order_relaxed); }

std::uintptr_t ProbeStackTop(std::uintptr_t from) {
  const std::uintptr_t page = from & ~(kProbePage - 1);
  return ScanStack(page, page + (std::uintptr_t{1} << 20) + kProbePage);
}

namespace {

// Walks further below the thread's verified range than this probe afresh
// (the pages between would cost a system call each).
constexpr std::uintptr_t kMaxStackExtension = std::uintptr_t{1} << 20;

// The readable range a walk may read, grown page by page as the walk
// climbs: a page is probed once, when a frame first lies on it, so a walk
// costs system calls only for pages it has not been shown before (a
// thread's first walk: one per page its frames span, typically one to
// three), never for the memory above the stack's top that no frame uses.
// A walk on the thread's own stack keeps what it verified in the cache
// ([stack_lo, stack_hi)); a walk on another stack (a signal stack, a
// fiber) starts from its own page each time and leaves the cache alone.
struct WalkRange {
  ThreadCache* owner;  // the cache to keep the range in, or null
  std::uintptr_t hi;   // [.., hi) is readable

  // Extends the range to cover [.., need); false when a page up to there
  // is not readable (the walk stops).
  bool Cover(std::uintptr_t need) {
    if (need <= hi) return true;
    const std::uintptr_t limit = (need + kProbePage - 1) & ~(kProbePage - 1);
    const std::uintptr_t end = ScanStack(hi, limit);
    hi = end;
    if (owner != nullptr) owner->stack_hi = end;
    return end >= limit;
  }
};

// The range a walk starting at `fp` (the walker's own frame, so its page
// is readable) begins with.
WalkRange StartWalk(ThreadCache& tc, std::uintptr_t fp) {
  const std::uintptr_t page = fp & ~(kProbePage - 1);
  if (tc.stack_hi == 0) {
    // The thread's first walk.
    tc.stack_lo = page;
    tc.stack_hi = page + kProbePage;
    return {&tc, tc.stack_hi};
  }
  if (fp >= tc.stack_lo && fp < tc.stack_hi) return {&tc, tc.stack_hi};
  if (fp < tc.stack_lo && tc.stack_lo - page <= kMaxStackExtension) {
    // Deeper in the thread's stack (or on a stack just below it): the range
    // grows down when every page between is readable.
    int answer;
    const std::uintptr_t end = ScanReadable(page, tc.stack_lo, &answer);
    if (end == tc.stack_lo) {
      tc.stack_lo = page;
      return {&tc, tc.stack_hi};
    }
  }
  return {nullptr, page + kProbePage};
}

}  // namespace

int CaptureStack(void** frames, int max, int skip) {
  auto fp = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
  WalkRange range = StartWalk(tls_cache, fp);
  int n = 0;
  while (n < max) {
    // A frame is [saved fp, return address]; both words must be readable,
    // and the chain must go up by less than 1 MiB per frame.
    if (fp == 0 || (fp & 7) != 0 || !range.Cover(fp + 16)) break;
    const auto* frame = reinterpret_cast<const std::uintptr_t*>(fp);
    std::uintptr_t next = frame[0];
    std::uintptr_t ret = frame[1];
    if (ret < 4096) break;
    if (skip > 0) {
      --skip;
    } else {
      frames[n++] = reinterpret_cast<void*>(ret);
    }
    if (next <= fp || next - fp > (std::uintptr_t{1} << 20)) break;
    fp = next;
  }
  return n;
}

}  // namespace strata::internal
