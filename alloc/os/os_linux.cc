#include <errno.h>
#include <sys/mman.h>

#include <atomic>
#include <cstdint>

#include "alloc/os/os.h"

namespace strata::os {
namespace {

constinit std::atomic<int> g_reserve_faults{0};
constinit std::atomic<int> g_decommit_faults{0};

// Consumes one injected fault if any is pending.
bool TakeFault(std::atomic<int>& faults) {
  int n = faults.load(std::memory_order_relaxed);
  while (n > 0) {
    if (faults.compare_exchange_weak(n, n - 1, std::memory_order_relaxed)) return true;
  }
  return false;
}

void* MapAnonymous(std::size_t size) {
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

}  // namespace

void* Reserve(std::size_t size, std::size_t alignment) noexcept {
  if (TakeFault(g_reserve_faults)) {
    errno = ENOMEM;
    return nullptr;
  }
  if (alignment < kPageSize) alignment = kPageSize;
  size = (size + kPageSize - 1) & ~(kPageSize - 1);
  if (size == 0 || size > (std::size_t{1} << 46)) return nullptr;
  // Try an exact mapping first: it is often aligned already.
  void* p = MapAnonymous(size);
  if (p == nullptr) return nullptr;
  auto addr = reinterpret_cast<std::uintptr_t>(p);
  if ((addr & (alignment - 1)) == 0) return p;
  munmap(p, size);
  // Over-reserve and trim both ends.
  std::size_t padded = size + alignment;
  if (padded < size) return nullptr;
  p = MapAnonymous(padded);
  if (p == nullptr) return nullptr;
  addr = reinterpret_cast<std::uintptr_t>(p);
  std::uintptr_t aligned = (addr + alignment - 1) & ~(alignment - 1);
  std::size_t head = aligned - addr;
  std::size_t tail = padded - head - size;
  if (head != 0) munmap(p, head);
  if (tail != 0) munmap(reinterpret_cast<void*>(aligned + size), tail);
  return reinterpret_cast<void*>(aligned);
}

bool Release(void* ptr, std::size_t size) noexcept {
  return munmap(ptr, size) == 0;
}

bool Decommit(void* ptr, std::size_t size) noexcept {
  if (TakeFault(g_decommit_faults)) return false;
  return madvise(ptr, size, MADV_DONTNEED) == 0;
}

void AdviseHugePages(void* ptr, std::size_t size) noexcept {
#ifdef MADV_HUGEPAGE
  int saved = errno;
  madvise(ptr, size, MADV_HUGEPAGE);
  errno = saved;
#else
  (void)ptr;
  (void)size;
#endif
}

void InjectFaultsForTesting(FaultKind kind, int count) noexcept {
  (kind == FaultKind::kReserve ? g_reserve_faults : g_decommit_faults)
      .store(count, std::memory_order_relaxed);
}

}  // namespace strata::os
