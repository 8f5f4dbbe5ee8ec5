// alloc/pmr/monotonic_arena.cc: MonotonicArena and ConcurrentMonotonicArena.
//
// Chunk layout (both arenas):
//
//   base                              base + header_space
//   | Chunk header | padding          | bump space ...               | end
//
// header_space = max(kChunkHeader, alignment of the request that created
// the chunk); a chunk is aligned to that alignment when it exceeds the
// engine's 16 bytes. A request larger than the next regular chunk gets a
// dedicated chunk of exactly header_space + bytes, which never becomes the
// bump chunk.
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory_resource>
#include <new>

#include "alloc/pmr/pmr.h"
#include "alloc/strata.h"

namespace strata::pmr {
namespace {

constexpr std::size_t kEngineAlignment = 16;
// Smallest chunk worth asking the engine for.
constexpr std::size_t kMinChunkSize = 256;

char* EngineChunk(std::size_t size, std::size_t alignment) {
  void* p = alignment <= kEngineAlignment ? strata::Allocate(size)
                                          : strata::AllocateAligned(size, alignment);
  if (p == nullptr) throw std::bad_alloc();
  return static_cast<char*>(p);
}

void FreeEngineChunk(void* base, std::size_t size, std::size_t alignment) {
  if (alignment <= kEngineAlignment) {
    strata::FreeSized(base, size);
  } else {
    strata::FreeAlignedSized(base, size, alignment);
  }
}

std::uintptr_t AlignUp(std::uintptr_t p, std::size_t alignment) {
  return (p + alignment - 1) & ~static_cast<std::uintptr_t>(alignment - 1);
}

std::size_t ClampOptions(std::size_t initial, std::size_t max) {
  return std::max(kMinChunkSize, std::min(initial, std::max(max, kMinChunkSize)));
}

}  // namespace

// ---------------------------------------------------------------------------
// MonotonicArena
// ---------------------------------------------------------------------------

struct MonotonicArena::Chunk {
  Chunk* next;
  std::size_t size;       // bytes obtained from the engine
  std::size_t alignment;  // alignment asked of the engine
};

namespace {
constexpr std::size_t kArenaChunkHeader = 32;
}  // namespace

MonotonicArena::MonotonicArena(ArenaOptions options) noexcept
    : MonotonicArena(nullptr, 0, options) {}

MonotonicArena::MonotonicArena(void* buffer, std::size_t size, ArenaOptions options) noexcept
    : options_(options),
      initial_buffer_(static_cast<char*>(buffer)),
      initial_size_(buffer != nullptr ? size : 0),
      next_chunk_size_(ClampOptions(options.initial_chunk_size, options.max_chunk_size)) {
  static_assert(sizeof(Chunk) <= kArenaChunkHeader);
  if (initial_buffer_ != nullptr && initial_size_ > 0) {
    cursor_ = reinterpret_cast<std::uintptr_t>(initial_buffer_);
    end_ = cursor_ + initial_size_;
  }
}

MonotonicArena::~MonotonicArena() { Reset(); }

void* MonotonicArena::do_allocate(std::size_t bytes, std::size_t alignment) {
  if (STRATA_PREDICT_FALSE(bytes == 0)) bytes = 1;  // distinct pointers
  const std::uintptr_t aligned = AlignUp(cursor_, alignment);
  if (STRATA_PREDICT_TRUE(aligned >= cursor_ && aligned <= end_ && end_ - aligned >= bytes)) {
    cursor_ = aligned + bytes;
    allocated_bytes_ += bytes;
    return reinterpret_cast<void*>(aligned);
  }
  return AllocateSlow(bytes, alignment);
}

void* MonotonicArena::AllocateSlow(std::size_t bytes, std::size_t alignment) {
  const std::size_t header_space = std::max(kArenaChunkHeader, alignment);
  std::size_t need;
  if (__builtin_add_overflow(header_space, bytes, &need) ||
      need > static_cast<std::size_t>(PTRDIFF_MAX)) {
    throw std::bad_alloc();
  }
  const bool dedicated = need > next_chunk_size_;
  const std::size_t size = dedicated ? need : next_chunk_size_;
  char* base = EngineChunk(size, alignment);
  auto* chunk = reinterpret_cast<Chunk*>(base);
  chunk->next = chunks_;
  chunk->size = size;
  chunk->alignment = alignment;
  chunks_ = chunk;
  chunk_bytes_ += size;
  ++num_chunks_;
  allocated_bytes_ += bytes;
  char* user = base + header_space;
  if (!dedicated) {
    cursor_ = reinterpret_cast<std::uintptr_t>(user) + bytes;
    end_ = reinterpret_cast<std::uintptr_t>(base) + size;
    next_chunk_size_ =
        std::min(next_chunk_size_ * 2, std::max(options_.max_chunk_size, next_chunk_size_));
  }
  return user;
}

void MonotonicArena::Reset() noexcept {
  for (Chunk* c = chunks_; c != nullptr;) {
    Chunk* next = c->next;
    FreeEngineChunk(c, c->size, c->alignment);
    c = next;
  }
  chunks_ = nullptr;
  chunk_bytes_ = 0;
  num_chunks_ = 0;
  allocated_bytes_ = 0;
  next_chunk_size_ = ClampOptions(options_.initial_chunk_size, options_.max_chunk_size);
  if (initial_buffer_ != nullptr && initial_size_ > 0) {
    cursor_ = reinterpret_cast<std::uintptr_t>(initial_buffer_);
    end_ = cursor_ + initial_size_;
  } else {
    cursor_ = end_ = 0;
  }
}

ArenaStats MonotonicArena::stats() const noexcept {
  return ArenaStats{allocated_bytes_, chunk_bytes_, num_chunks_};
}

// ---------------------------------------------------------------------------
// ConcurrentMonotonicArena
// ---------------------------------------------------------------------------

struct ConcurrentMonotonicArena::Chunk {
  // Next free byte. Claimed with compare_exchange (relaxed: the CAS only
  // partitions the range; nothing else is published through it).
  std::atomic<std::uintptr_t> cursor;
  std::uintptr_t begin;   // first byte of bump space
  std::uintptr_t end;     // one past the last
  Chunk* next;            // every chunk, newest first (under grow_lock_)
  std::size_t size;       // bytes obtained from the engine (0: not owned)
  std::size_t alignment;  // alignment asked of the engine
};

namespace {
constexpr std::size_t kConcurrentChunkHeader = 64;
}  // namespace

ConcurrentMonotonicArena::ConcurrentMonotonicArena(ArenaOptions options) noexcept
    : ConcurrentMonotonicArena(nullptr, 0, options) {}

ConcurrentMonotonicArena::ConcurrentMonotonicArena(void* buffer, std::size_t size,
                                                   ArenaOptions options) noexcept
    : options_(options),
      initial_buffer_(buffer),
      initial_size_(buffer != nullptr ? size : 0),
      next_chunk_size_(ClampOptions(options.initial_chunk_size, options.max_chunk_size)) {
  static_assert(sizeof(Chunk) <= kConcurrentChunkHeader);
  SpinLockHolder hold(&grow_lock_);
  InitBuffer();
}

ConcurrentMonotonicArena::~ConcurrentMonotonicArena() { Reset(); }

void ConcurrentMonotonicArena::InitBuffer() noexcept {
  if (initial_buffer_ == nullptr) return;
  const auto start = reinterpret_cast<std::uintptr_t>(initial_buffer_);
  const std::uintptr_t header = AlignUp(start, alignof(Chunk));
  const std::uintptr_t limit = start + initial_size_;
  if (header < start || header > limit || limit - header < sizeof(Chunk)) return;  // too small
  auto* chunk = new (reinterpret_cast<void*>(header)) Chunk;
  chunk->begin = header + sizeof(Chunk);
  chunk->end = limit;
  chunk->cursor.store(chunk->begin, std::memory_order_relaxed);
  chunk->next = chunks_;
  chunk->size = 0;
  chunk->alignment = 0;
  chunks_ = chunk;
  // Pairs with the acquire load in do_allocate().
  current_.store(chunk, std::memory_order_release);
}

void* ConcurrentMonotonicArena::TryBump(Chunk* chunk, std::size_t bytes,
                                        std::size_t alignment) noexcept {
  std::uintptr_t cursor = chunk->cursor.load(std::memory_order_relaxed);
  for (;;) {
    const std::uintptr_t aligned = AlignUp(cursor, alignment);
    if (aligned < cursor || aligned > chunk->end || chunk->end - aligned < bytes) return nullptr;
    if (chunk->cursor.compare_exchange_weak(cursor, aligned + bytes, std::memory_order_relaxed,
                                            std::memory_order_relaxed)) {
      return reinterpret_cast<void*>(aligned);
    }
  }
}

void* ConcurrentMonotonicArena::do_allocate(std::size_t bytes, std::size_t alignment) {
  if (STRATA_PREDICT_FALSE(bytes == 0)) bytes = 1;
  // Pairs with the release stores in AllocateSlow()/InitBuffer(): the chunk's
  // fields are initialised before it becomes visible here.
  Chunk* chunk = current_.load(std::memory_order_acquire);
  if (STRATA_PREDICT_TRUE(chunk != nullptr)) {
    if (void* p = TryBump(chunk, bytes, alignment)) return p;
  }
  return AllocateSlow(chunk, bytes, alignment);
}

void* ConcurrentMonotonicArena::AllocateSlow(Chunk* seen, std::size_t bytes,
                                             std::size_t alignment) {
  SpinLockHolder hold(&grow_lock_);
  // Another thread may have added a chunk while we waited for the lock.
  Chunk* current = current_.load(std::memory_order_acquire);
  if (current != nullptr && current != seen) {
    if (void* p = TryBump(current, bytes, alignment)) return p;
  }
  const std::size_t header_space = std::max(kConcurrentChunkHeader, alignment);
  std::size_t need;
  if (__builtin_add_overflow(header_space, bytes, &need) ||
      need > static_cast<std::size_t>(PTRDIFF_MAX)) {
    throw std::bad_alloc();
  }
  const bool dedicated = need > next_chunk_size_;
  const std::size_t size = dedicated ? need : next_chunk_size_;
  char* base = EngineChunk(size, alignment);
  auto* chunk = new (base) Chunk;
  const auto user = reinterpret_cast<std::uintptr_t>(base) + header_space;
  chunk->begin = user;
  chunk->end = reinterpret_cast<std::uintptr_t>(base) + size;
  // The first request is served before the chunk is published.
  chunk->cursor.store(user + bytes, std::memory_order_relaxed);
  chunk->next = chunks_;
  chunk->size = size;
  chunk->alignment = alignment;
  chunks_ = chunk;
  chunk_bytes_.store(chunk_bytes_.load(std::memory_order_relaxed) + size,
                     std::memory_order_relaxed);
  num_chunks_.store(num_chunks_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  if (!dedicated) {
    // Pairs with the acquire load in do_allocate().
    current_.store(chunk, std::memory_order_release);
    next_chunk_size_ =
        std::min(next_chunk_size_ * 2, std::max(options_.max_chunk_size, next_chunk_size_));
  }
  return reinterpret_cast<void*>(user);
}

void ConcurrentMonotonicArena::Reset() noexcept {
  SpinLockHolder hold(&grow_lock_);
  for (Chunk* c = chunks_; c != nullptr;) {
    Chunk* next = c->next;
    if (c->size != 0) {
      const std::size_t size = c->size;
      const std::size_t alignment = c->alignment;
      c->~Chunk();
      FreeEngineChunk(c, size, alignment);
    }
    c = next;
  }
  chunks_ = nullptr;
  current_.store(nullptr, std::memory_order_relaxed);
  chunk_bytes_.store(0, std::memory_order_relaxed);
  num_chunks_.store(0, std::memory_order_relaxed);
  next_chunk_size_ = ClampOptions(options_.initial_chunk_size, options_.max_chunk_size);
  InitBuffer();
}

ArenaStats ConcurrentMonotonicArena::stats() const noexcept {
  ArenaStats s;
  SpinLockHolder hold(&grow_lock_);
  for (Chunk* c = chunks_; c != nullptr; c = c->next) {
    s.allocated_bytes += c->cursor.load(std::memory_order_relaxed) - c->begin;
  }
  s.chunk_bytes = chunk_bytes_.load(std::memory_order_relaxed);
  s.chunks = num_chunks_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace strata::pmr
