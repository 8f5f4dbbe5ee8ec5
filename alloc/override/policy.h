// alloc/override/policy.h: what each replaced entry point does around the
// engine, in one place (the "policy layer").
//
// The override files (new_delete.cc, malloc.cc) hold no logic: every
// operator new/delete and malloc-family function is a one-line forward to a
// function here. This header decides, per entry point:
//   - the largest request accepted (kMaxRequest: PTRDIFF_MAX, as glibc);
//   - which engine call serves an alignment (Allocate up to kMinAlignment,
//     AllocateAligned above it) and the matching free;
//   - the allocation kind (hardening.h): operator new passes kNew, new[]
//     kNewArray, their deletes the same, the malloc family kMalloc. The kind
//     is a template argument: it only materialises as an immediate argument
//     of the slow-path calls (AllocateSlow, FreeSlowPreservingErrno's
//     instantiation), so the fast paths are the same instructions for every
//     kind and hardened mode can report a malloc/delete or new[]/delete
//     mismatch through the real override;
//   - what failure means, through an OOM policy type:
//       CppThrowPolicy    operator new: run the std::new_handler and retry
//                         while one is installed, then throw std::bad_alloc;
//       CppNothrowPolicy  nothrow new: the same retry loop, then nullptr
//                         (a handler that throws bad_alloc also yields
//                         nullptr);
//       MallocPolicy      malloc family: errno = ENOMEM, nullptr.
//
// Fast path: the engine's inline fast path, one null test. Every failure leaves through a predicted-false branch into a
// noinline function (policy.cc), so the inline code stays small.
//
// Thread-safety: every function is thread-safe (the engine is). Nothing
// here allocates except through the engine, and nothing takes a lock.
#ifndef STRATA_ALLOC_OVERRIDE_POLICY_H_
#define STRATA_ALLOC_OVERRIDE_POLICY_H_

#include <cerrno>
#include <cstddef>
#include <cstdint>

#include "alloc/internal/thread_cache.h"
#include "alloc/strata.h"
#include "concurrency/base/macros.h"

namespace strata::override_internal {

using strata::internal::AllocKind;

// glibc refuses every request above PTRDIFF_MAX (pointer differences within
// an object must be representable); so do we, before the engine sees it.
inline constexpr std::size_t kMaxRequest = static_cast<std::size_t>(PTRDIFF_MAX);

// Every engine block is at least this aligned (alloc/strata.h), so smaller
// alignments are served by plain Allocate.
inline constexpr std::size_t kMinAlignment = 16;

inline constexpr bool IsPowerOfTwo(std::size_t x) { return x != 0 && (x & (x - 1)) == 0; }

// The OS page size, read once (sysconf does not allocate).
std::size_t PageSize() noexcept;

// --- OOM policies ----------------------------------------------------------
// Each provides `template <AllocKind> static void* OnFailure(size,
// alignment)`, called after the engine (or the size check) failed; the kind
// is the one a retry allocates with (kMalloc by default).

struct CppThrowPolicy {
  // Runs the new_handler loop; throws std::bad_alloc when no handler is left.
  // Instantiated in policy.cc for kNew and kNewArray.
  template <AllocKind kKind = AllocKind::kNew>
  STRATA_NOINLINE static void* OnFailure(std::size_t size, std::size_t alignment);
};

struct CppNothrowPolicy {
  // Runs the new_handler loop; nullptr when no handler is left or it throws
  // std::bad_alloc. Instantiated in policy.cc for kNew and kNewArray.
  template <AllocKind kKind = AllocKind::kNew>
  STRATA_NOINLINE static void* OnFailure(std::size_t size, std::size_t alignment) noexcept;
};

struct MallocPolicy {
  template <AllocKind kKind = AllocKind::kMalloc>
  STRATA_NOINLINE static void* OnFailure(std::size_t, std::size_t) noexcept {
    errno = ENOMEM;
    return nullptr;
  }
};

// --- Engine selection ------------------------------------------------------

// The engine's inline fast path (alloc/internal/thread_cache.h) is expanded
// right here, so malloc and operator new cost a pop and no extra call.
// Over-aligned requests take the out-of-line AllocateAs (as AllocateAligned
// would), which tags the block with the kind too.
//
// An over-aligned small request pops inline too, from the class that keeps
// every block so aligned (AlignedClass: 0 for a request too big, an
// alignment above a slice, or an invalid one); any miss leaves through the
// out-of-line AllocateAs (as AllocateAligned would), which also checks the
// alignment and tags the block with the kind in hardened mode.
// The size class whose every block satisfies `alignment` (any value; an
// alignment that is not a power of two gets 0) and holds `size` bytes, or
// 0 when no small class does (the caller's slow path then decides).
STRATA_ALWAYS_INLINE int InlineAlignedClass(std::size_t size, std::size_t alignment) noexcept {
  if (alignment <= kMinAlignment) {
    if (!IsPowerOfTwo(alignment) || size > strata::internal::kMaxSmallSize) return 0;
    return strata::internal::SizeToClass(size);
  }
  return IsPowerOfTwo(alignment) ? strata::internal::AlignedClass(size, alignment) : 0;
}

template <AllocKind kKind = AllocKind::kMalloc>
STRATA_ALWAYS_INLINE void* EngineAllocate(std::size_t size, std::size_t alignment) noexcept {
  if (alignment <= kMinAlignment) return strata::internal::AllocateFast(size, kKind);
  const int size_class = InlineAlignedClass(size, alignment);
  if (STRATA_PREDICT_TRUE(size_class != 0)) {
    if (void* p = strata::internal::TryPopSmall(size, size_class)) return p;
  }
  return strata::internal::AllocateAs(kKind, size, alignment);
}

// The engine's inline free: a page-map lookup (class and owner) and a push. errno is saved only
// around the slow path, where releasing memory may call madvise/munmap. One
// instantiation per kind (policy.cc), so the call needs no kind argument.
// The slow path reads the block's class map entry again (no register has
// to keep it across the fast path). A block of another thread's joins an
// open remote batch here (thread_cache.h TryRemoteAppend) before errno is
// saved.
template <AllocKind kKind>
STRATA_NOINLINE void FreeSlowPreservingErrno(void* ptr) noexcept;

template <AllocKind kKind = AllocKind::kMalloc>
STRATA_ALWAYS_INLINE void EngineFree(void* ptr) noexcept {
  const strata::internal::SliceEntry local =
      strata::internal::LocalClass(strata::internal::g_class_map.GetEntry(reinterpret_cast<std::uintptr_t>(ptr)));
  if (STRATA_PREDICT_TRUE(strata::internal::IsLocalClass(local) && strata::internal::TryCachePush(ptr, local))) {
    return;
  }
  FreeSlowPreservingErrno<kKind>(ptr);
}

// --- Allocation --------------------------------------------------------------

// operator new and malloc: allocates `size` bytes aligned to `alignment`,
// tagged `kKind` (hardened mode checks the matching free).
//
// The plain forms (alignment <= kMinAlignment) pop inline and leave every
// miss to NewSlow by a tail call: the inline part then needs no stack frame
// (no push/pop of the frame pointer on the fast path), and a stack captured
// on the slow path has the caller of malloc/new right above it.
// The class is computed again here: the fast path then keeps no register
// for it.
template <typename OomPolicy, AllocKind kKind>
STRATA_NOINLINE void* NewSlow(std::size_t size) {
  const int size_class = size <= strata::internal::kMaxSmallSize ? strata::internal::SizeToClass(size) : 0;
  void* p = strata::internal::AllocateSlow(size, 0, size_class, kKind);
  if (STRATA_PREDICT_TRUE(p != nullptr)) return p;
  return OomPolicy::template OnFailure<kKind>(size, kMinAlignment);
}

template <typename OomPolicy, AllocKind kKind = AllocKind::kMalloc>
STRATA_ALWAYS_INLINE void* NewImpl(std::size_t size, std::size_t alignment = kMinAlignment) {
  // No separate size check: the engine refuses every request above its
  // own bound (2^46 < PTRDIFF_MAX) on its slow path.
  static_assert(kMaxRequest >= (std::size_t{1} << 46));
  if (STRATA_PREDICT_TRUE(alignment <= kMinAlignment)) {
    // Two size tests, the common one first (each expands SizeToClass's
    // matching branch only). A large request pops from class 0's list,
    // which is always empty (thread_cache.h): one slow-path call site, so
    // the compiler keeps the frame setup off the fast path.
    std::size_t list_offset = 0;
    if (STRATA_PREDICT_TRUE(size <= strata::internal::kSmallLookupMax)) {
      list_offset = strata::internal::SmallListOffset(size);
    } else if (size <= strata::internal::kMaxSmallSize) {
      list_offset = strata::internal::ListOffset(strata::internal::SizeToClass(size));
    }
    if (void* p = strata::internal::TryPopSmallAt(size, list_offset)) return p;
    return NewSlow<OomPolicy, kKind>(size);
  }
  void* p = EngineAllocate<kKind>(size, alignment);
  if (STRATA_PREDICT_TRUE(p != nullptr)) return p;
  return OomPolicy::template OnFailure<kKind>(size, alignment);
}

// Aligned operator new. An alignment every block has (16 or less) pops
// inline as plain new does, but its misses tell the engine the alignment
// named: hardened mode records it, so that the delete must name the same
// (its fast path always misses, so no mode test is needed here).
template <typename OomPolicy, AllocKind kKind>
STRATA_NOINLINE void* NewAlignedSlow(std::size_t size, std::size_t alignment, int size_class) {
  void* p = strata::internal::AllocateSlow(size, alignment, size_class, kKind);
  if (STRATA_PREDICT_TRUE(p != nullptr)) return p;
  return OomPolicy::template OnFailure<kKind>(size, alignment);
}

template <typename OomPolicy, AllocKind kKind>
STRATA_ALWAYS_INLINE void* NewAlignedImpl(std::size_t size, std::size_t alignment) {
  if (STRATA_PREDICT_TRUE(alignment <= kMinAlignment)) {
    const int size_class = size <= strata::internal::kMaxSmallSize ? strata::internal::SizeToClass(size) : 0;
    if (void* p = strata::internal::TryPopSmall(size, size_class)) return p;
    return NewAlignedSlow<OomPolicy, kKind>(size, alignment, size_class);
  }
  return NewImpl<OomPolicy, kKind>(size, alignment);
}

STRATA_ALWAYS_INLINE void* MallocImpl(std::size_t size) noexcept {
  return NewImpl<MallocPolicy>(size);
}

STRATA_ALWAYS_INLINE void* CallocImpl(std::size_t count, std::size_t size) noexcept {
  std::size_t total;
  if (STRATA_PREDICT_FALSE(__builtin_mul_overflow(count, size, &total) || total > kMaxRequest)) {
    return MallocPolicy::OnFailure(total, kMinAlignment);
  }
  void* p = strata::AllocateZeroed(count, size);
  if (STRATA_PREDICT_TRUE(p != nullptr)) return p;
  return MallocPolicy::OnFailure(total, kMinAlignment);
}

// glibc semantics: realloc(nullptr, n) is malloc(n); realloc(p, 0) frees p
// and returns nullptr; on failure the old block is untouched and errno is
// ENOMEM.
STRATA_NOINLINE void* ReallocSlow(void* ptr, std::size_t size) noexcept;

STRATA_ALWAYS_INLINE void* ReallocImpl(void* ptr, std::size_t size) noexcept {
  if (STRATA_PREDICT_FALSE(ptr == nullptr || size == 0 || size > kMaxRequest)) {
    return ReallocSlow(ptr, size);
  }
  // A small block that keeps its place (the commonest realloc: a buffer
  // grown within its class) returns here: one page-map lookup, no call.
  // Normal mode only: hardened mode checks the block's kind and size
  // first. A class-map hit means the process is initialised.
  const int size_class = strata::internal::g_class_map.Get(reinterpret_cast<std::uintptr_t>(ptr));
  void* p;
  if (size_class != 0 && STRATA_PREDICT_TRUE(!strata::internal::Hardened())) {
    if (strata::internal::SmallBlockKeepsPlace(size_class, size)) return ptr;
    p = strata::internal::ReallocateSmallMoving(ptr, size, size_class);
  } else {
    p = strata::Reallocate(ptr, size);
  }
  if (STRATA_PREDICT_TRUE(p != nullptr)) return p;
  return MallocPolicy::OnFailure(size, kMinAlignment);
}

STRATA_ALWAYS_INLINE void* ReallocArrayImpl(void* ptr, std::size_t count,
                                            std::size_t size) noexcept {
  std::size_t total;
  if (STRATA_PREDICT_FALSE(__builtin_mul_overflow(count, size, &total))) {
    return MallocPolicy::OnFailure(0, kMinAlignment);
  }
  return ReallocImpl(ptr, total);
}

// memalign/__libc_memalign: glibc rounds an alignment that is not a power of
// two up to the next one and refuses one above SIZE_MAX / 2 + 1 (EINVAL).
void* MemalignImpl(std::size_t alignment, std::size_t size) noexcept;

// posix_memalign: the alignment must be a power-of-two multiple of
// sizeof(void*), else EINVAL with *out untouched; ENOMEM on failure (*out
// untouched). errno is preserved: the result is the return value. A small
// request pops inline (the pop never touches errno); the rest, errno
// handling included, is PosixMemalignSlow.
STRATA_NOINLINE int PosixMemalignSlow(void** out, std::size_t alignment, std::size_t size) noexcept;

STRATA_ALWAYS_INLINE int PosixMemalignImpl(void** out, std::size_t alignment, std::size_t size) noexcept {
  if (STRATA_PREDICT_TRUE(alignment >= sizeof(void*))) {
    const int size_class = InlineAlignedClass(size, alignment);
    if (STRATA_PREDICT_TRUE(size_class != 0)) {
      if (void* p = strata::internal::TryPopSmall(size, size_class)) {
        *out = p;
        return 0;
      }
    }
  }
  return PosixMemalignSlow(out, alignment, size);
}

// aligned_alloc: a power-of-two alignment, else nullptr with errno EINVAL.
STRATA_NOINLINE void* AlignedAllocSlow(std::size_t alignment, std::size_t size) noexcept;

STRATA_ALWAYS_INLINE void* AlignedAllocImpl(std::size_t alignment, std::size_t size) noexcept {
  const int size_class = InlineAlignedClass(size, alignment);
  if (STRATA_PREDICT_TRUE(size_class != 0)) {
    if (void* p = strata::internal::TryPopSmall(size, size_class)) return p;
  }
  return AlignedAllocSlow(alignment, size);
}

// valloc: page-aligned. pvalloc: page-aligned, size rounded up to whole pages
// (0 becomes one page); overflow of the rounding is ENOMEM.
void* VallocImpl(std::size_t size) noexcept;
void* PvallocImpl(std::size_t size) noexcept;

// --- Deallocation ------------------------------------------------------------

// free() preserves errno (POSIX 2024, glibc >= 2.33): releasing memory to the
// OS may call munmap/madvise, which must not clobber the caller's errno.
STRATA_ALWAYS_INLINE void FreeImpl(void* ptr) noexcept { EngineFree(ptr); }

// C23 free_sized: `size` is the size requested from malloc/calloc/realloc.
STRATA_ALWAYS_INLINE void FreeSizedImpl(void* ptr, std::size_t size) noexcept {
  if (ptr == nullptr) return;
  const int saved = errno;
  strata::FreeSized(ptr, size);
  errno = saved;
}

// C23 free_aligned_sized: the block came from aligned_alloc(alignment, size).
STRATA_ALWAYS_INLINE void FreeAlignedSizedImpl(void* ptr, std::size_t alignment,
                                               std::size_t size) noexcept {
  if (ptr == nullptr) return;
  const int saved = errno;
  if (alignment <= kMinAlignment && !strata::internal::Hardened()) {
    strata::FreeSized(ptr, size);
  } else {
    strata::FreeAlignedSized(ptr, size, alignment);
  }
  errno = saved;
}

// operator delete (kKind kNew) and delete[] (kNewArray). A null pointer may
// reach any form (the compiler may call a sized delete for a null operand),
// so the sized forms test it.
template <AllocKind kKind>
STRATA_ALWAYS_INLINE void DeleteImpl(void* ptr) noexcept { EngineFree<kKind>(ptr); }

// Sized delete is what GCC calls for `delete p` of a complete type, so the
// engine's sized fast path (strata.cc FreeSizedWithKind) is expanded here:
// the class map's answer doubles as the size check (a range compare), then
// the push. Everything else (null, large blocks, a size of another class,
// hardened mode) leaves through DeleteSizedSlow, one instantiation per kind.
template <AllocKind kKind>
STRATA_NOINLINE void DeleteSizedSlow(void* ptr, std::size_t size) noexcept;

template <AllocKind kKind>
STRATA_ALWAYS_INLINE void DeleteSizedImpl(void* ptr, std::size_t size) noexcept {
  // The thread's own block (LocalClass) of a class the size maps to.
  const strata::internal::SliceEntry c =
      strata::internal::LocalClass(strata::internal::g_class_map.GetEntry(reinterpret_cast<std::uintptr_t>(ptr)));
  if (STRATA_PREDICT_TRUE(strata::internal::IsLocalClass(c) &&
                          strata::internal::SizedFreeMatches(static_cast<int>(c), size)) &&
      strata::internal::TryCachePush(ptr, c)) {
    return;
  }
  DeleteSizedSlow<kKind>(ptr, size);
}

// Unsized aligned delete: the alignment is checked against the block (an
// over-aligned free always takes the engine's slow path, as in
// strata::FreeAlignedSized).
template <AllocKind kKind>
STRATA_ALWAYS_INLINE void DeleteAlignedImpl(void* ptr, std::size_t alignment) noexcept {
  // An alignment every block has (std::pmr::new_delete_resource passes
  // alignof(max_align_t) on every call) is a plain delete's push; a miss
  // names the alignment (hardened mode checks it against the block's).
  if (alignment <= kMinAlignment) {
    const int size_class = strata::internal::g_class_map.Get(reinterpret_cast<std::uintptr_t>(ptr));
    if (STRATA_PREDICT_TRUE(strata::internal::TryCacheFree(ptr, size_class))) return;
    if (STRATA_PREDICT_TRUE(ptr != nullptr)) strata::internal::FreeAlignedAs(kKind, ptr, alignment);
    return;
  }
  // A small block whose class serves the alignment: the push (the test
  // strata.cc's FreeAlignedWithKind makes before its slow path).
  if (STRATA_PREDICT_TRUE(strata::internal::TryAlignedCacheFree(ptr, strata::internal::kNoSize, alignment))) {
    return;
  }
  if (STRATA_PREDICT_TRUE(ptr != nullptr)) strata::internal::FreeAlignedAs(kKind, ptr, alignment);
}

// Mirrors EngineAllocate: the block came from Allocate when alignment <=
// kMinAlignment, from AllocateAligned otherwise.
template <AllocKind kKind>
STRATA_ALWAYS_INLINE void DeleteSizedAlignedImpl(void* ptr, std::size_t size,
                                                 std::size_t alignment) noexcept {
  // Such a block came from the plain path (EngineAllocate): the sized
  // delete's inline fast path applies.
  if (alignment <= kMinAlignment) {
    // DeleteSizedImpl's push; a miss names the alignment (as above).
    const int size_class = strata::internal::g_class_map.Get(reinterpret_cast<std::uintptr_t>(ptr));
    if (STRATA_PREDICT_TRUE(size_class != 0 && strata::internal::SizedFreeMatches(size_class, size)) &&
        strata::internal::TryCacheFree(ptr, size_class)) {
      return;
    }
    if (STRATA_PREDICT_TRUE(ptr != nullptr)) strata::internal::FreeAlignedSizedAs(kKind, ptr, size, alignment);
    return;
  }
  if (STRATA_PREDICT_TRUE(strata::internal::TryAlignedCacheFree(ptr, size, alignment))) return;
  if (STRATA_PREDICT_FALSE(ptr == nullptr)) return;
  strata::internal::FreeAlignedSizedAs(kKind, ptr, size, alignment);
}

STRATA_ALWAYS_INLINE std::size_t UsableSizeImpl(void* ptr) noexcept {
  return strata::UsableSize(ptr);
}

}  // namespace strata::override_internal

#endif  // STRATA_ALLOC_OVERRIDE_POLICY_H_
