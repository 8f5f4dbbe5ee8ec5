// alloc/internal/page_map.cc: choosing the class map's form (page_map.h).
#include "alloc/internal/page_map.h"

#include "alloc/os/os.h"

namespace strata::internal {

bool ClassMap::Ensure(std::uintptr_t addr, std::size_t size) {
  if (Flat() == nullptr && !radix_chosen_) {
    // The first segment: try the flat array. Reserve the whole array at
    // once; a refusal settles on the radix map for the process's life
    // (both forms cannot be mixed: entries already set would be missed).
    void* cells = os::Reserve(kFlatBytes, os::kPageSize);
    if (cells != nullptr) {
      flat_base_ = static_cast<SliceCell*>(cells);
      // Release: a reader that sees the bound sees the base.
      std::atomic_ref<std::uintptr_t>(flat_limit_).store(kSlices, std::memory_order_release);
    } else {
      radix_chosen_ = true;
    }
  }
  if (radix_chosen_) return radix_.Ensure(addr, size);
  const std::uintptr_t first = addr >> kSliceShift;
  const std::uintptr_t last = (addr + size - 1) >> kSliceShift;
  if (last >= kSlices) return false;
  constexpr std::uintptr_t kCellsPerPage = 4096 / sizeof(SliceCell);
  for (std::uintptr_t page = first / kCellsPerPage; page <= last / kCellsPerPage; ++page) {
    const std::uint64_t bit = std::uint64_t{1} << (page % 64);
    if ((flat_pages_[page / 64].fetch_or(bit, std::memory_order_relaxed) & bit) == 0) {
      flat_bytes_.fetch_add(4096, std::memory_order_relaxed);
    }
  }
  return true;
}

}  // namespace strata::internal
