// concurrency/base/raw_memory.h: memory straight from the kernel, for code
// that runs inside malloc.
//
// Purpose: RawMap/RawUnmap wrap anonymous mmap/munmap; RawRecordArena is a
// bump allocator over 64 KiB mmap'd chunks for small, fixed-size metadata
// records that live for the rest of the process (per-thread records, EBR
// bags, registry cores).
//
// Contract:
//   - Nothing here calls malloc, new, or any libc function that may.
//   - RawMap returns zeroed, page-aligned memory or nullptr (never
//     MAP_FAILED); RawUnmap(nullptr, n) is a no-op.
//   - RawRecordArena::Allocate returns zeroed memory aligned to `align`
//     (a power of two, at most kMaxAlign), or nullptr when the kernel refuses
//     more memory. Records are never freed: callers recycle them themselves.
//   - RawRecordArena is constinit-constructible and trivially destructible,
//     so it can be a global used before main() and after exit(), and it
//     works in a fork child (it holds no lock).
//
// Thread-safety: everything is thread-safe. Allocate is lock-free: a CAS on
// the current chunk's bump offset; a thread that finds the chunk full maps a
// new one and installs it with a CAS (a loser unmaps its spare chunk).
//
// Invariants (RawRecordArena):
//   - current_ is null or points to a chunk whose header's `used` is the
//     byte offset of the first unallocated byte; `used` only grows, by a
//     successful CAS that keeps it <= kChunkBytes.
//   - Chunks are never unmapped once installed, so pointers handed out stay
//     valid forever.
#ifndef STRATA_CONCURRENCY_BASE_RAW_MEMORY_H_
#define STRATA_CONCURRENCY_BASE_RAW_MEMORY_H_

#include <atomic>
#include <cstddef>

namespace strata {

// Maps `bytes` (rounded up to the page size) of zeroed, read-write, private
// anonymous memory. Returns nullptr when bytes == 0 or mmap fails.
void* RawMap(std::size_t bytes) noexcept;

// Unmaps memory obtained from RawMap(bytes). No-op for nullptr.
void RawUnmap(void* ptr, std::size_t bytes) noexcept;

// The system page size (cached after the first call; 4096 on x86-64 Linux).
std::size_t RawPageSize() noexcept;

class RawRecordArena {
 public:
  // 64 KiB: large enough that a chunk holds dozens of per-thread records
  // (so mmap calls stay rare), small enough that a process using strata for
  // one thread wastes little. Requests that do not fit in a fresh chunk get
  // their own mapping.
  static constexpr std::size_t kChunkBytes = std::size_t{64} << 10;
  // Offsets are computed relative to the page-aligned chunk base, so any
  // power of two up to a page is honoured.
  static constexpr std::size_t kMaxAlign = 4096;

  constexpr RawRecordArena() noexcept = default;
  RawRecordArena(const RawRecordArena&) = delete;
  RawRecordArena& operator=(const RawRecordArena&) = delete;

  // Returns `size` zeroed bytes aligned to `align` (power of two <=
  // kMaxAlign; 0 means alignof(std::max_align_t)), or nullptr when mmap
  // fails or size == 0. Never freed.
  void* Allocate(std::size_t size, std::size_t align) noexcept;

  // Bytes obtained from the kernel so far (chunk and dedicated mappings),
  // for metadata accounting.
  std::size_t BytesMapped() const noexcept {
    // Statistic only; pairs with the relaxed fetch_add in Allocate*.
    return bytes_mapped_.load(std::memory_order_relaxed);
  }

 private:
  struct Chunk;

  void* AllocateLarge(std::size_t size, std::size_t align) noexcept;

  std::atomic<Chunk*> current_{nullptr};
  std::atomic<std::size_t> bytes_mapped_{0};
};

// The arena concurrency/ uses for its own records (thread registries,
// per-thread records, EBR bags). Constant-initialised; never destroyed.
RawRecordArena& GlobalRecordArena() noexcept;

}  // namespace strata

#endif  // STRATA_CONCURRENCY_BASE_RAW_MEMORY_H_
