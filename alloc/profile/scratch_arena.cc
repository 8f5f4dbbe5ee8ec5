// alloc/profile/scratch_arena.cc: see scratch_arena.h.
#include "alloc/profile/scratch_arena.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>

namespace strata::profile {
namespace {

std::size_t PageSize() {
  static const std::size_t page = [] {
    long v = sysconf(_SC_PAGESIZE);
    return v > 0 ? static_cast<std::size_t>(v) : std::size_t{4096};
  }();
  return page;
}

// Rounds `v` up to a multiple of `align` (a power of two); false on overflow.
bool RoundUp(std::size_t v, std::size_t align, std::size_t* out) {
  if (v > SIZE_MAX - (align - 1)) return false;
  *out = (v + align - 1) & ~(align - 1);
  return true;
}

char* AlignPtr(char* p, std::size_t align) {
  auto v = reinterpret_cast<std::uintptr_t>(p);
  v = (v + align - 1) & ~(static_cast<std::uintptr_t>(align) - 1);
  return reinterpret_cast<char*>(v);
}

bool ValidAlign(std::size_t align) {
  return align != 0 && (align & (align - 1)) == 0 && align <= PageSize();
}

}  // namespace

bool ScratchArena::NewChunk(std::size_t bytes, std::size_t align) {
  // Room for the header, worst-case alignment padding and the block.
  std::size_t need = sizeof(ChunkHeader);
  if (bytes > SIZE_MAX - need - align) return false;
  need += bytes + align;
  std::size_t size = next_chunk_bytes_ > need ? next_chunk_bytes_ : need;
  if (!RoundUp(size, PageSize(), &size)) return false;
  void* mem = mmap(nullptr, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return false;
  auto* header = static_cast<ChunkHeader*>(mem);
  header->prev = head_;
  header->mapped_bytes = size;
  head_ = header;
  cursor_ = static_cast<char*>(mem) + sizeof(ChunkHeader);
  limit_ = static_cast<char*>(mem) + size;
  last_block_ = nullptr;
  bytes_reserved_ += size;
  ++chunk_count_;
  if (next_chunk_bytes_ < kMaxChunkBytes) next_chunk_bytes_ *= 2;
  return true;
}

void* ScratchArena::Allocate(std::size_t bytes, std::size_t align) {
  if (!ValidAlign(align)) return nullptr;
  if (head_ != nullptr) {
    char* p = AlignPtr(cursor_, align);
    if (p <= limit_ && bytes <= static_cast<std::size_t>(limit_ - p)) {
      bytes_used_ += static_cast<std::size_t>(p - cursor_) + bytes;
      cursor_ = p + bytes;
      last_block_ = p;
      return p;
    }
  }
  if (!NewChunk(bytes, align)) return nullptr;
  char* p = AlignPtr(cursor_, align);  // fits by construction of NewChunk
  bytes_used_ += static_cast<std::size_t>(p - cursor_) + bytes;
  cursor_ = p + bytes;
  last_block_ = p;
  return p;
}

void* ScratchArena::Reallocate(void* p, std::size_t old_bytes,
                               std::size_t new_bytes, std::size_t align) {
  if (p == nullptr) return Allocate(new_bytes, align);
  if (new_bytes <= old_bytes) return p;
  char* block = static_cast<char*>(p);
  if (block == last_block_ &&
      new_bytes <= static_cast<std::size_t>(limit_ - block)) {
    // The block is the newest one in the current chunk: extend in place.
    // The bytes past its old end were never handed out, so they are zero.
    // The cursor never moves backwards (that would hand bytes out twice).
    if (block + new_bytes <= cursor_) return p;
    bytes_used_ += static_cast<std::size_t>(block + new_bytes - cursor_);
    cursor_ = block + new_bytes;
    return p;
  }
  void* fresh = Allocate(new_bytes, align);
  if (fresh == nullptr) return nullptr;
  std::memcpy(fresh, p, old_bytes);
  return fresh;
}

void ScratchArena::Release() {
  ChunkHeader* c = head_;
  while (c != nullptr) {
    ChunkHeader* prev = c->prev;
    munmap(c, c->mapped_bytes);
    c = prev;
  }
  head_ = nullptr;
  cursor_ = limit_ = last_block_ = nullptr;
  next_chunk_bytes_ = kFirstChunkBytes;
  bytes_reserved_ = bytes_used_ = chunk_count_ = 0;
}

}  // namespace strata::profile
