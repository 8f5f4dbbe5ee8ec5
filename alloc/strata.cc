// The public API (alloc/strata.h): one-line forwards to the fast paths in
// alloc/internal/thread_cache.h plus the size arithmetic of aligned, zeroed
// and resized allocations.
#include "alloc/strata.h"

#include <cstdint>
#include <cstring>

#include "alloc/internal/block_lookup.h"
#include "alloc/internal/errors.h"
#include "alloc/internal/globals.h"
#include "alloc/internal/page_map.h"
#include "alloc/internal/thread_cache.h"

namespace strata {
namespace {

using internal::ClassSize;
using internal::g_class_map;
using internal::kMaxSmallSize;
using internal::kNumClasses;
using internal::kSliceSize;

// Larger requests fail at once (no size arithmetic can overflow below it).
constexpr std::size_t kMaxRequest = std::size_t{1} << 46;

// The smallest class at least `size` bytes whose blocks are `alignment`
// aligned, 0 if none. Blocks sit at multiples of the class size from a
// 64 KiB-aligned span start, so a class size that is a multiple of the
// alignment gives aligned blocks.
int AlignedClass(std::size_t size, std::size_t alignment) {
  std::size_t n = size < alignment ? alignment : size;
  if (n > kMaxSmallSize || alignment > kSliceSize) return 0;
  for (int c = internal::SizeToClass(n); c < kNumClasses; ++c) {
    if (ClassSize(c) % alignment == 0) return c;
  }
  return 0;
}

// Usable bytes of a block the class map does not know (tracked, large or
// huge), or 0 after reporting `error` for a pointer that is not a block.
std::size_t SlowUsableSize(const void* ptr, internal::ErrorKind error) {
  auto addr = reinterpret_cast<std::uintptr_t>(ptr);
  internal::BlockInfo info = internal::LookupBlock(addr);
  if (info.kind != internal::BlockKind::kNone && info.kind != internal::BlockKind::kSmall &&
      info.start == addr) {
    return info.usable;
  }
  internal::ReportError(error, ptr, 0);
  return 0;
}

}  // namespace

void* Allocate(std::size_t size) noexcept { return internal::AllocateFast(size); }

void* AllocateAligned(std::size_t size, std::size_t alignment) noexcept {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) return nullptr;
  if (alignment <= 16) return internal::AllocateFast(size);
  if (size > kMaxRequest) return nullptr;
  int c = AlignedClass(size, alignment);
  if (c != 0) return internal::AllocateSmall(size, alignment, c);
  return internal::AllocateSlow(size, alignment, 0);
}

void* AllocateZeroed(std::size_t count, std::size_t size) noexcept {
  std::size_t bytes;
  if (__builtin_mul_overflow(count, size, &bytes) || bytes > kMaxRequest) return nullptr;
  if (bytes <= kMaxSmallSize) {
    void* p = internal::AllocateFast(bytes);
    if (p != nullptr) std::memset(p, 0, bytes);
    return p;
  }
  return internal::AllocateZeroedLarge(bytes);
}

void Free(void* ptr) noexcept { internal::FreeFast(ptr); }

void FreeSized(void* ptr, std::size_t size) noexcept {
  (void)size;
  internal::FreeFast(ptr);
}

void FreeAlignedSized(void* ptr, std::size_t size, std::size_t alignment) noexcept {
  (void)size;
  (void)alignment;
  internal::FreeFast(ptr);
}

std::size_t UsableSize(const void* ptr) noexcept {
  if (ptr == nullptr) return 0;
  int c = g_class_map.Get(reinterpret_cast<std::uintptr_t>(ptr));
  if (c != 0) return ClassSize(c);
  return SlowUsableSize(ptr, internal::ErrorKind::kInvalidUsableSize);
}

void* Reallocate(void* ptr, std::size_t new_size) noexcept {
  if (ptr == nullptr) return Allocate(new_size);
  if (new_size == 0) {
    Free(ptr);
    return nullptr;
  }
  if (new_size > kMaxRequest) return nullptr;
  std::size_t old;
  int c = g_class_map.Get(reinterpret_cast<std::uintptr_t>(ptr));
  if (c != 0) {
    old = ClassSize(c);
    // Same class, or shrinking by less than half: keep the block.
    if (new_size <= old && (new_size > kMaxSmallSize || internal::SizeToClass(new_size) == c ||
                            new_size >= old / 2)) {
      return ptr;
    }
  } else {
    old = SlowUsableSize(ptr, internal::ErrorKind::kInvalidRealloc);
    if (old == 0) return nullptr;
    if (new_size <= old && new_size >= old / 2) return ptr;
  }
  void* fresh = Allocate(new_size);
  if (fresh == nullptr) return nullptr;
  std::memcpy(fresh, ptr, old < new_size ? old : new_size);
  Free(ptr);
  return fresh;
}

std::size_t GoodSize(std::size_t size) noexcept {
  if (size <= kMaxSmallSize) return ClassSize(internal::SizeToClass(size));
  if (size > kMaxRequest) return size;
  return (size + kSliceSize - 1) & ~(kSliceSize - 1);
}

bool Owns(const void* ptr) noexcept {
  auto addr = reinterpret_cast<std::uintptr_t>(ptr);
  internal::BlockInfo info = internal::LookupBlock(addr);
  return info.kind != internal::BlockKind::kNone && info.start == addr;
}

void FlushThreadCache() noexcept { internal::FlushCurrentThread(); }

std::size_t ReleaseMemory() noexcept {
  internal::FlushCurrentThread();
  for (int c = 1; c < kNumClasses; ++c) internal::g_central[c].Drain(c);
  return internal::g_page_heap.ReleaseAll();
}

}  // namespace strata
