#include <errno.h>
#include <sys/mman.h>

#include <atomic>
#include <cstdint>

#include "alloc/os/os.h"

namespace strata::os {
namespace {

constinit std::atomic<int> g_faults[kNumFaultKinds] = {};
constinit std::atomic<std::uint64_t> g_failures[kNumFaultKinds] = {};

std::atomic<int>& Faults(FaultKind kind) { return g_faults[static_cast<int>(kind)]; }
void CountFailure(FaultKind kind) { g_failures[static_cast<int>(kind)].fetch_add(1, std::memory_order_relaxed); }

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

void* ReserveImpl(std::size_t size, std::size_t alignment) {
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

}  // namespace

void* Reserve(std::size_t size, std::size_t alignment) noexcept {
  void* p = nullptr;
  if (TakeFault(Faults(FaultKind::kReserve))) {
    errno = ENOMEM;
  } else {
    p = ReserveImpl(size, alignment);
  }
  if (p == nullptr) CountFailure(FaultKind::kReserve);
  return p;
}

bool Release(void* ptr, std::size_t size) noexcept {
  if (!TakeFault(Faults(FaultKind::kRelease)) && munmap(ptr, size) == 0) return true;
  CountFailure(FaultKind::kRelease);
  return false;
}

bool Decommit(void* ptr, std::size_t size) noexcept {
  if (!TakeFault(Faults(FaultKind::kDecommit)) && madvise(ptr, size, MADV_DONTNEED) == 0) return true;
  CountFailure(FaultKind::kDecommit);
  return false;
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
  Faults(kind).store(count, std::memory_order_relaxed);
}

std::uint64_t FailureCount(FaultKind kind) noexcept {
  return g_failures[static_cast<int>(kind)].load(std::memory_order_relaxed);
}

}  // namespace strata::os
