// alloc/override/policy.cc: the slow paths and the aligned entry points of
// the policy layer (see policy.h for the contract of each function).
#include "alloc/override/policy.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <new>

#include "alloc/strata.h"

namespace strata::override_internal {
namespace {

// Retries `size`/`alignment` after each call of the installed new_handler,
// as [new.delete.single] prescribes. Returns nullptr when no handler is
// installed (the caller then throws or returns null).
template <AllocKind kKind>
void* RetryWithNewHandler(std::size_t size, std::size_t alignment) {
  for (;;) {
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) return nullptr;
    handler();  // may free memory, install another handler, throw, abort
    if (size <= kMaxRequest) {
      if (void* p = EngineAllocate<kKind>(size, alignment)) return p;
    }
  }
}

// Returns the smallest power of two >= x (x <= SIZE_MAX / 2 + 1).
std::size_t RoundUpToPowerOfTwo(std::size_t x) {
  if (x <= 1) return 1;
  return std::size_t{1} << (64 - __builtin_clzll(x - 1));
}

// Serves an already validated power-of-two alignment: ENOMEM on failure.
void* AlignedOrErrno(std::size_t alignment, std::size_t size) {
  if (size > kMaxRequest || alignment > kMaxRequest) {
    return MallocPolicy::OnFailure(size, alignment);
  }
  void* p = EngineAllocate(size, alignment);
  if (p == nullptr) return MallocPolicy::OnFailure(size, alignment);
  return p;
}

}  // namespace

std::size_t PageSize() noexcept {
  // Relaxed is enough: every thread computes the same value.
  static constinit std::atomic<std::size_t> cached{0};
  std::size_t page = cached.load(std::memory_order_relaxed);
  if (STRATA_PREDICT_FALSE(page == 0)) {
    const long value = sysconf(_SC_PAGESIZE);
    page = value > 0 ? static_cast<std::size_t>(value) : 4096;
    cached.store(page, std::memory_order_relaxed);
  }
  return page;
}

template <AllocKind kKind>
void* CppThrowPolicy::OnFailure(std::size_t size, std::size_t alignment) {
  if (void* p = RetryWithNewHandler<kKind>(size, alignment)) return p;
  throw std::bad_alloc();
}

template <AllocKind kKind>
void* CppNothrowPolicy::OnFailure(std::size_t size, std::size_t alignment) noexcept {
  try {
    return RetryWithNewHandler<kKind>(size, alignment);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}

template void* CppThrowPolicy::OnFailure<AllocKind::kNew>(std::size_t, std::size_t);
template void* CppThrowPolicy::OnFailure<AllocKind::kNewArray>(std::size_t, std::size_t);
template void* CppNothrowPolicy::OnFailure<AllocKind::kNew>(std::size_t, std::size_t) noexcept;
template void* CppNothrowPolicy::OnFailure<AllocKind::kNewArray>(std::size_t,
                                                                 std::size_t) noexcept;

void* ReallocSlow(void* ptr, std::size_t size) noexcept {
  if (ptr == nullptr) return MallocImpl(size);
  if (size == 0) {
    FreeImpl(ptr);
    return nullptr;
  }
  if (size > kMaxRequest) return MallocPolicy::OnFailure(size, kMinAlignment);
  void* p = strata::Reallocate(ptr, size);
  if (p == nullptr) return MallocPolicy::OnFailure(size, kMinAlignment);
  return p;
}

void* MemalignImpl(std::size_t alignment, std::size_t size) noexcept {
  constexpr std::size_t kMaxAlignment = SIZE_MAX / 2 + 1;
  if (alignment > kMaxAlignment) {
    errno = EINVAL;
    return nullptr;
  }
  if (alignment <= kMinAlignment) return MallocImpl(size);
  return AlignedOrErrno(RoundUpToPowerOfTwo(alignment), size);
}

int PosixMemalignSlow(void** out, std::size_t alignment, std::size_t size) noexcept {
  if (alignment % sizeof(void*) != 0 || !IsPowerOfTwo(alignment / sizeof(void*))) {
    return EINVAL;
  }
  const int saved = errno;
  void* p = AlignedOrErrno(alignment, size);
  errno = saved;
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}

void* AlignedAllocSlow(std::size_t alignment, std::size_t size) noexcept {
  if (!IsPowerOfTwo(alignment)) {
    errno = EINVAL;
    return nullptr;
  }
  return AlignedOrErrno(alignment, size);
}

void* VallocImpl(std::size_t size) noexcept { return AlignedOrErrno(PageSize(), size); }

void* PvallocImpl(std::size_t size) noexcept {
  const std::size_t page = PageSize();
  std::size_t rounded;
  if (__builtin_add_overflow(size, page - 1, &rounded)) {
    return MallocPolicy::OnFailure(size, page);
  }
  rounded &= ~(page - 1);
  if (rounded == 0) rounded = page;
  return AlignedOrErrno(page, rounded);
}

template <AllocKind kKind>
void FreeSlowPreservingErrno(void* ptr) noexcept {
  const strata::internal::SliceEntry entry =
      strata::internal::g_class_map.GetEntry(reinterpret_cast<std::uintptr_t>(ptr));
  if (strata::internal::TryRemoteAppend(ptr, entry)) return;
  const int saved = errno;
  strata::internal::FreeSlow(ptr, strata::internal::EntryClass(entry), kKind);
  errno = saved;
}

template void FreeSlowPreservingErrno<AllocKind::kMalloc>(void*) noexcept;
template void FreeSlowPreservingErrno<AllocKind::kNew>(void*) noexcept;
template void FreeSlowPreservingErrno<AllocKind::kNewArray>(void*) noexcept;

template <AllocKind kKind>
void DeleteSizedSlow(void* ptr, std::size_t size) noexcept {
  // Another thread's block of the size's class: an open remote batch.
  if constexpr (strata::internal::kOwnerFreesBuilt) {
    const strata::internal::SliceEntry entry =
        strata::internal::g_class_map.GetEntry(reinterpret_cast<std::uintptr_t>(ptr));
    // (Class 0's remote batch is never open: TryRemoteAppend refuses it.)
    if (strata::internal::SizedFreeMatches(strata::internal::EntryClass(entry), size) &&
        strata::internal::TryRemoteAppend(ptr, entry)) {
      return;
    }
  }
  if (ptr != nullptr) strata::internal::FreeSizedAs(kKind, ptr, size);
}

template void DeleteSizedSlow<AllocKind::kNew>(void*, std::size_t) noexcept;
template void DeleteSizedSlow<AllocKind::kNewArray>(void*, std::size_t) noexcept;

}  // namespace strata::override_internal
