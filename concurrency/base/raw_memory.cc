#include "concurrency/base/raw_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <new>

#include "concurrency/base/macros.h"
#include "concurrency/base/raw_log.h"

namespace strata {

namespace {

// Cached page size; 0 until first use. Racing initialisers store the same
// value, so relaxed is enough.
constinit std::atomic<std::size_t> g_page_size{0};

constexpr std::size_t AlignUp(std::size_t v, std::size_t align) {
  return (v + align - 1) & ~(align - 1);
}

}  // namespace

std::size_t RawPageSize() noexcept {
  // Relaxed: an idempotent cache of a constant (pairs with the relaxed store
  // below; either value a thread sees is correct).
  std::size_t p = g_page_size.load(std::memory_order_relaxed);
  if (STRATA_PREDICT_FALSE(p == 0)) {
    long r = sysconf(_SC_PAGESIZE);
    p = r > 0 ? static_cast<std::size_t>(r) : 4096;
    g_page_size.store(p, std::memory_order_relaxed);  // pairs with the load above
  }
  return p;
}

void* RawMap(std::size_t bytes) noexcept {
  if (bytes == 0) return nullptr;
  void* p = mmap(nullptr, AlignUp(bytes, RawPageSize()), PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

void RawUnmap(void* ptr, std::size_t bytes) noexcept {
  if (ptr == nullptr || bytes == 0) return;
  munmap(ptr, AlignUp(bytes, RawPageSize()));
}

// The header sits at the start of each chunk; records follow it.
struct RawRecordArena::Chunk {
  // Byte offset (from the chunk base) of the first free byte.
  std::atomic<std::size_t> used;
};

void* RawRecordArena::Allocate(std::size_t size, std::size_t align) noexcept {
  if (size == 0) return nullptr;
  if (align == 0) align = alignof(std::max_align_t);
  STRATA_CHECK((align & (align - 1)) == 0 && align <= kMaxAlign,
               "RawRecordArena: alignment must be a power of two <= 4096");
  if (AlignUp(sizeof(Chunk), align) + size > kChunkBytes) return AllocateLarge(size, align);

  // Acquire: pairs with the acq_rel CAS that installed the chunk, so its
  // header initialisation is visible.
  Chunk* chunk = current_.load(std::memory_order_acquire);
  for (;;) {
    if (chunk != nullptr) {
      // Relaxed: `used` only hands out disjoint byte ranges; the records'
      // contents are published by whatever structure the caller puts them in.
      std::size_t used = chunk->used.load(std::memory_order_relaxed);
      for (;;) {
        std::size_t begin = AlignUp(used, align);
        std::size_t end = begin + size;
        if (end > kChunkBytes) break;  // full: map another chunk
        // Relaxed on both paths: see above (pairs with the relaxed load).
        if (chunk->used.compare_exchange_weak(used, end, std::memory_order_relaxed,
                                              std::memory_order_relaxed)) {
          return reinterpret_cast<char*>(chunk) + begin;
        }
      }
    }
    // Map a fresh chunk and try to install it in place of the full one.
    void* mem = RawMap(kChunkBytes);
    if (mem == nullptr) return nullptr;
    Chunk* fresh = new (mem) Chunk{};
    std::size_t begin = AlignUp(sizeof(Chunk), align);
    // Relaxed: the chunk is still private; the CAS below publishes it.
    fresh->used.store(begin + size, std::memory_order_relaxed);
    // acq_rel on success: release publishes `fresh`'s header to the acquire
    // load above; acquire on failure pairs with the winner's release so we
    // may use its chunk.
    if (current_.compare_exchange_strong(chunk, fresh, std::memory_order_acq_rel,
                                         std::memory_order_acquire)) {
      // Statistic only (pairs with the relaxed load in BytesMapped()).
      bytes_mapped_.fetch_add(kChunkBytes, std::memory_order_relaxed);
      return reinterpret_cast<char*>(fresh) + begin;
    }
    // Another thread installed a chunk first: give ours back and retry in
    // theirs (`chunk` now holds the winner).
    RawUnmap(mem, kChunkBytes);
  }
}

void* RawRecordArena::AllocateLarge(std::size_t size, std::size_t align) noexcept {
  // A dedicated mapping is page-aligned, which satisfies any align <=
  // kMaxAlign.
  (void)align;
  std::size_t bytes = AlignUp(size, RawPageSize());
  void* mem = RawMap(bytes);
  // Statistic only (pairs with the relaxed load in BytesMapped()).
  if (mem != nullptr) bytes_mapped_.fetch_add(bytes, std::memory_order_relaxed);
  return mem;
}

namespace {
constinit RawRecordArena g_record_arena;
}  // namespace

RawRecordArena& GlobalRecordArena() noexcept { return g_record_arena; }

}  // namespace strata
