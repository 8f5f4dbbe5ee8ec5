// alloc/internal/hardening.h: misuse detection and hardened mode.
//
// TWO LEVELS
//
// Always on (normal mode), where it costs the fast paths nothing:
//   - free of a pointer strata never returned (stack, global, garbage): the
//     class map says 0, the slow path's LookupBlock finds no block;
//   - interior, misaligned or double free of a large or huge block, and
//     realloc of one: LookupBlock on the slow path (huge blocks carry a
//     live flag, free spans their state);
//   - sized free with a size of another class, aligned free with a wrong
//     alignment: FreeSized/FreeAlignedSized compare the size with the
//     block's class (a range check against a per-class table, ~4
//     instructions, in those entry points only; Free is unchanged);
//   - double, interior and misaligned frees of small blocks *at flush
//     time*: when a thread cache hands blocks back (overflow, flush,
//     thread exit), each batch's addresses are compared with their next
//     few neighbours in the list (ReleaseFromList: a block freed twice
//     within a few frees shows twice there), and every block that reaches
//     its span is checked against the span's layout and the block bitmap
//     ("already on the span's free list" = freed twice). Detection is
//     eventual and best-effort: a duplicate that is handed out again from
//     a thread cache before any flush, one whose copies lie further apart
//     in the list, or one in a batch waiting in the central pool's first
//     tier (whole batches, and the partial batches of a cache's overflow,
//     see central_pool.h) before it reaches its span, is not seen. That is
//     the price of a free fast path of a few instructions with no
//     per-block state.
//
// Hardened mode (STRATA_HARDENED=1 in the environment, read once at process
// init; or built with --config=hardened, which defines
// STRATA_HARDENED_BUILD and makes it the default), for everything else:
//   - every allocation and free takes the slow path. How: the thread cache
//     lists keep max_length 0 (the free fast path's length test fails) and
//     bytes_until_sample stays far below zero (the allocation fast path's
//     countdown test fails), the same trick the tracking hooks use. So the
//     fast paths contain no hardened-mode test at all. The slow path keeps
//     a per-thread cache of its own in the same lists (bounded to one
//     batch per class) so that hardened mode still avoids the central pool
//     on most operations, and a separate sample countdown so sampling and
//     leak checking keep working.
//     Chosen over a flag test on the fast paths (one load and branch per
//     operation, paid by everybody) and over separate hardened entry
//     points (would need every caller, the overrides included, to switch).
//   - a block bitmap bit per small block, set on allocation and cleared on
//     free with atomic RMWs: double free from any thread, free of a block
//     that is not allocated, realloc of a freed block -- detected at once.
//     Freed blocks record (in their own memory) the stack that freed them,
//     printed with a later double free.
//   - interior and misaligned small frees at once (block boundary check).
//   - free-list pointer encoding: links are XORed with a per-process secret
//     and their own address (span.h GetNext/SetNext), and every pop from a
//     span's free list checks that the decoded link is null or the start
//     of a free block of the same class; a block waiting in a thread's
//     hardened list (an array of addresses, outside the block) keeps an
//     encoded null in its first word, checked when it is handed out: a
//     use-after-free write to a freed block's first word is reported
//     instead of handing out an attacker-chosen address.
//   - canaries: a small block of a request of n bytes comes from the class
//     of n + 8; its last 8 bytes hold a trailer (n, the allocation kind,
//     the alignment, a check value; XORed with a secret derived from the
//     block address) and the bytes between n and the trailer hold a canary
//     byte. Large blocks get 16 extra bytes of canary after n and keep n,
//     the kind and the alignment in their span. Checked on free: a write
//     past the end is reported as a heap overflow. UsableSize() returns n
//     exactly, so code that trusts malloc_usable_size stays within bounds.
//   - allocation kinds: every block remembers whether it came from
//     malloc/strata::Allocate, operator new or operator new[]; a free of
//     another kind is reported (the override calls the *As entry points
//     below).
//   - aligned frees are checked against the alignment the allocation
//     named: for operator new/delete exactly (an aligned delete of a
//     block from an aligned new of another alignment, smaller or larger,
//     16 or less included; an aligned delete of a plain new's block; a
//     plain delete of an aligned new's block), small, large and huge
//     blocks alike; for the malloc family and the strata API, alignments
//     above 16 (the one every block has).
//   - sized frees are checked against the exact class of the requested
//     size (normal mode also accepts what an in-place Reallocate may leave:
//     sizes down to half the block).
//   - junk fill: freed blocks are filled with 0xdf (the first 4 KiB: all of
//     most blocks; large ones are not faulted in page by page), so
//     use-after-free reads see junk, not stale data.
//   - Reallocate stays in place only within the block's class (small) or
//     slices (large), rewriting trailer and canary for the new size; it
//     checks the old canary first. (Normal mode also keeps a block when
//     shrinking by less than half.) UsableSize() is the request exactly
//     (a 0-byte request counts as 1).
//
// ERROR REPORTS: errors.h. One line "strata: <kind>: pointer 0x..., size N"
// then, on following lines, the current stack and, when known, the stack
// that freed the block (hardened) and whatever the error describer (the
// tracking layer) knows, e.g. the allocation stack of a tracked block.
//
// Thread-safety: the mode, the secret and the link key are written once in
// process init, before any thread cache is initialised (EnsureProcessInit
// makes other threads wait for the decision), and read-only afterwards.
#ifndef STRATA_ALLOC_INTERNAL_HARDENING_H_
#define STRATA_ALLOC_INTERNAL_HARDENING_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "alloc/internal/span.h"
#include "concurrency/base/macros.h"

namespace strata::internal {

// How a block was allocated; a free must name the same kind (hardened).
// kMalloc covers the strata API (Allocate*, Reallocate) and the malloc
// family; 0 is never a valid tag.
enum class AllocKind : std::uint8_t { kMalloc = 1, kNew = 2, kNewArray = 3 };

const char* AllocKindName(AllocKind kind);
// The deallocation function that matches a kind ("free", "operator
// delete", "operator delete[]").
const char* FreeKindName(AllocKind kind);

#if defined(STRATA_HARDENED_BUILD)
inline constexpr bool kHardenedBuild = true;
#else
inline constexpr bool kHardenedBuild = false;
#endif

extern constinit std::atomic<bool> g_hardened;

// True when hardened mode is on (decided once at process init).
STRATA_ALWAYS_INLINE bool Hardened() { return g_hardened.load(std::memory_order_relaxed); }

// Decides the mode (environment, build) and, when hardened, draws the
// secret. Called once from EnsureProcessInit before anything else (once
// more in a fork child that finishes the init its parent left in this
// step: no block was handed out under the first run's values).
void InitHardening();

// --- Hardened block layout ---------------------------------------------------

// Bytes a hardened small block reserves after the request.
inline constexpr std::size_t kTrailerBytes = 8;
// Extra bytes of canary after a hardened large block.
inline constexpr std::size_t kLargeCanaryBytes = 16;
// Junk written over freed blocks (hardened).
inline constexpr unsigned char kFreeJunk = 0xdf;
// Freed large blocks are junk-filled up to this many bytes.
inline constexpr std::size_t kLargeJunkBytes = 4096;

// The alignment an allocation named, in a byte (trailers, spans, huge
// segments): 0 when it named none, else 1 + log2(alignment) (so the
// alignments 1 to 16 an aligned operator new may name are told apart from
// a plain new's block).
constexpr std::uint8_t AlignCode(std::size_t alignment) {
  return alignment == 0 ? 0 : static_cast<std::uint8_t>(__builtin_ctzll(alignment) + 1);
}

// The size class a hardened request of `size` bytes aligned to `alignment`
// (0 or <= 16: none) is served from, 0 when it is a large block.
int HardenedClass(std::size_t size, std::size_t alignment);

// What the trailer of a hardened small block says.
struct Trailer {
  std::size_t size;       // requested bytes
  AllocKind kind;
  std::uint8_t align_code;  // AlignCode of the alignment the allocation named
  bool valid;             // check value intact and fields plausible
};
Trailer ReadTrailer(std::uintptr_t block, int size_class);

// Prepares a hardened small block just taken from a free list: marks it
// allocated in the bitmap (reports a block that already is), writes trailer
// and canary. False when the block must not be used (corruption reported).
bool HardenedPrepareSmall(FreeObject* block, int size_class, std::size_t size, std::size_t alignment,
                          AllocKind kind);

// Checks a free-list link popped in hardened mode: null, or the start of a
// block of class `size_class` in a span strata owns (whether it is free is
// checked when it is popped in turn: HardenedPrepareSmall).
bool HardenedValidLink(const FreeObject* next, int size_class);

// --- Hardened slow paths (thread_cache.cc routes here) ----------------------

// What a free claims about the block (for sized, aligned and kind checks).
inline constexpr std::size_t kNoSize = ~std::size_t{0};
struct FreeClaim {
  AllocKind kind = AllocKind::kMalloc;
  std::size_t size = kNoSize;  // kNoSize: unsized free
  std::size_t alignment = 0;   // 0: not an aligned free; else the alignment named (16 or less too)
};

// `alignment`: what the allocation named, 0 for none (an aligned operator
// new of 16 or less names its alignment too; the block records it, see
// AlignCode, and an operator delete must name the same).
void* HardenedAllocate(std::size_t size, std::size_t alignment, AllocKind kind, bool zero);
void HardenedFree(void* ptr, const FreeClaim& claim);
// Requested size of a live block (reports and returns kNoSize otherwise;
// `error` is the kind to report for a pointer that is not a live block).
std::size_t HardenedUsableSize(const void* ptr, bool for_realloc);
// Moves a block (hardened Reallocate).
void* HardenedReallocate(void* ptr, std::size_t new_size);

// --- Entry points for the override layer (implemented in strata.cc) ----------
//
// operator new/delete must tag and check the allocation kind. Each is the
// plain API call when hardened mode is off (the kind only travels down the
// slow paths as a constant, so the fast paths are unchanged):
//   operator new(n)                  AllocateAs(kNew, n, 0)
//   operator new[](n)                AllocateAs(kNewArray, n, 0)
//   operator new(n, align_val_t a)   AllocateAs(kNew, n, a)   (kNewArray for [])
//   operator delete(p)               FreeAs(kNew, p)          (kNewArray for [])
//   operator delete(p, n)            FreeSizedAs(kNew, p, n)
//   operator delete(p, align_val_t a)     FreeAlignedAs(kNew, p, a)
//   operator delete(p, n, align_val_t a)  FreeAlignedSizedAs(kNew, p, n, a)
//   malloc family                    the plain API (kind kMalloc)
// `alignment` 0 means none was named; 1 to 16 is served as the default
// alignment, but hardened mode records it (aligned new) and checks it
// (aligned delete): the override's inline paths for those alignments send
// their misses here (or to AllocateSlow with the alignment) for that.
// Nothrow forms are the same calls (the policy layer decides what failure
// means).
void* AllocateAs(AllocKind kind, std::size_t size, std::size_t alignment) noexcept;
void FreeAs(AllocKind kind, void* ptr) noexcept;
void FreeSizedAs(AllocKind kind, void* ptr, std::size_t size) noexcept;
void FreeAlignedAs(AllocKind kind, void* ptr, std::size_t alignment) noexcept;
void FreeAlignedSizedAs(AllocKind kind, void* ptr, std::size_t size, std::size_t alignment) noexcept;
// realloc's rest, normal mode, after its inline page-map lookup found a
// small block of class `size_class` that does not keep its place
// (SmallBlockKeepsPlace): Reallocate without a second lookup.
void* ReallocateSmallMoving(void* ptr, std::size_t new_size, int size_class) noexcept;

// --- Stacks ------------------------------------------------------------------

inline constexpr int kMaxReportFrames = 24;
inline constexpr int kFreeRecordFrames = 4;

// Return addresses of the calling stack, innermost first, skipping `skip`
// frames. Walks frame pointers and never reads a page not shown readable
// first: each page a frame lies on is probed (as ProbeStackTop does) when
// the walk first reaches it, and the calling thread remembers the verified
// range of its stack, so that only a walk over new pages or on another
// stack (a signal stack, a fiber) probes, one system call per page. Never
// allocates. The heap profiler, the leak checker, hardened mode and the
// error reports all capture their stacks here.
int CaptureStack(void** frames, int max, int skip);

// The end of the readable memory that holds `from` (a stack address),
// probed page by page with system calls that answer EFAULT instead of
// faulting (process_vm_readv, or rt_sigprocmask where seccomp refuses that;
// mincore's mapped pages where neither answers), at most 1 MiB up.
std::uintptr_t ProbeStackTop(std::uintptr_t from);

// Pages probed so far (system calls made) by the walks and ProbeStackTop,
// process-wide: what a walk costs, for tests.
std::uint64_t StackProbes();

}  // namespace strata::internal

#endif  // STRATA_ALLOC_INTERNAL_HARDENING_H_
