// alloc/pmr/pool_resource.cc: strata::pmr::PoolResource.
//
// Block layout (one engine block per allocation):
//
//   base                       base + offset - 32      base + offset
//   | padding (alignment > 32) | BlockHeader (32 B)     | user bytes ...
//
// offset = max(32, alignment). base comes from strata::Allocate when the
// alignment is <= 16 (engine blocks are 16-aligned), else from
// AllocateAligned(total, alignment); the user pointer is then aligned too.
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory_resource>
#include <new>

#include "alloc/pmr/pmr.h"
#include "alloc/strata.h"
#include "concurrency/base/raw_log.h"

namespace strata::pmr {

struct PoolResource::BlockHeader {
  BlockHeader* prev;  // guarded by the lock of shards_[shard]
  BlockHeader* next;
  std::size_t bytes;  // as asked for by the caller
  std::uint32_t shard;
  std::uint32_t alignment_log2;
};

namespace {

constexpr std::size_t kHeaderSize = 32;
constexpr std::size_t kEngineAlignment = 16;

std::size_t OffsetFor(std::size_t alignment) {
  return alignment <= kHeaderSize ? kHeaderSize : alignment;
}

// Threads are spread over the shards round-robin, in order of first use.
constinit std::atomic<unsigned> g_next_thread_index{0};
thread_local constinit unsigned t_thread_index = ~0u;

unsigned ThreadIndex() {
  unsigned index = t_thread_index;
  if (STRATA_PREDICT_FALSE(index == ~0u)) {
    index = g_next_thread_index.fetch_add(1, std::memory_order_relaxed);
    t_thread_index = index;
  }
  return index;
}

// Single-writer increment (the writer holds the shard lock): cheaper than an
// atomic read-modify-write, and readers without the lock see a valid value.
template <typename T>
void Bump(std::atomic<T>& counter, T delta) {
  counter.store(counter.load(std::memory_order_relaxed) + delta, std::memory_order_relaxed);
}

}  // namespace

PoolResource::PoolResource(Options options) noexcept : byte_limit_(options.byte_limit) {
  static_assert(sizeof(BlockHeader) == kHeaderSize);
}

PoolResource::~PoolResource() { release(); }

void PoolResource::AddToTotal(std::int64_t delta) noexcept {
  const std::int64_t now = total_bytes_.fetch_add(delta, std::memory_order_relaxed) + delta;
  std::int64_t peak = peak_bytes_.load(std::memory_order_relaxed);
  while (now > peak && !peak_bytes_.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}

bool PoolResource::Charge(std::size_t bytes) noexcept {
  // A CAS loop rather than add-then-undo: a refused request must never make
  // a concurrent one fail.
  std::int64_t current = total_bytes_.load(std::memory_order_relaxed);
  std::int64_t now;
  do {
    if (static_cast<std::uint64_t>(current) + bytes > byte_limit_) return false;
    now = current + static_cast<std::int64_t>(bytes);
  } while (!total_bytes_.compare_exchange_weak(current, now, std::memory_order_relaxed));
  std::int64_t peak = peak_bytes_.load(std::memory_order_relaxed);
  while (now > peak && !peak_bytes_.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
  return true;
}

void PoolResource::Link(BlockHeader* header) noexcept {
  const auto bytes = static_cast<std::int64_t>(header->bytes);
  Shard& shard = shards_[header->shard];
  SpinLockHolder hold(&shard.lock);
  header->prev = nullptr;
  header->next = shard.head;
  if (shard.head != nullptr) shard.head->prev = header;
  shard.head = header;
  Bump(shard.allocations, std::uint64_t{1});
  Bump(shard.live_blocks, std::int64_t{1});
  const std::int64_t live = shard.live_bytes.load(std::memory_order_relaxed) + bytes;
  shard.live_bytes.store(live, std::memory_order_relaxed);
  if (live > shard.peak_bytes.load(std::memory_order_relaxed)) {
    shard.peak_bytes.store(live, std::memory_order_relaxed);
  }
  if (byte_limit_ == 0) {
    shard.unflushed += bytes;
    if (STRATA_PREDICT_FALSE(shard.unflushed >= kFlushBytes)) {
      AddToTotal(shard.unflushed);
      shard.unflushed = 0;
    }
  }
}

void PoolResource::Unlink(BlockHeader* header) noexcept {
  const auto bytes = static_cast<std::int64_t>(header->bytes);
  Shard& shard = shards_[header->shard];
  SpinLockHolder hold(&shard.lock);
  if (header->prev != nullptr) {
    header->prev->next = header->next;
  } else {
    shard.head = header->next;
  }
  if (header->next != nullptr) header->next->prev = header->prev;
  Bump(shard.deallocations, std::uint64_t{1});
  Bump(shard.live_blocks, std::int64_t{-1});
  Bump(shard.live_bytes, -bytes);
  if (byte_limit_ == 0) {
    shard.unflushed -= bytes;
    if (STRATA_PREDICT_FALSE(shard.unflushed < 0)) {
      // Take the shrinkage, and half a step more, out of the total now, so
      // that the total never exceeds the true live bytes.
      AddToTotal(shard.unflushed - kFlushBytes / 2);
      shard.unflushed = kFlushBytes / 2;
    }
  } else {
    total_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
  }
}

void PoolResource::FreeBlock(BlockHeader* header) noexcept {
  const std::size_t alignment = std::size_t{1} << header->alignment_log2;
  const std::size_t offset = OffsetFor(alignment);
  char* base = reinterpret_cast<char*>(header) + kHeaderSize - offset;
  const std::size_t total = header->bytes + offset;
  if (alignment <= kEngineAlignment) {
    strata::FreeSized(base, total);
  } else {
    strata::FreeAlignedSized(base, total, alignment);
  }
}

void* PoolResource::do_allocate(std::size_t bytes, std::size_t alignment) {
  if (STRATA_PREDICT_FALSE(bytes > static_cast<std::size_t>(PTRDIFF_MAX))) throw std::bad_alloc();
  if (byte_limit_ != 0 && !Charge(bytes)) {
    limit_failures_.fetch_add(1, std::memory_order_relaxed);
    throw std::bad_alloc();
  }
  const std::size_t offset = OffsetFor(alignment);
  std::size_t total;
  char* base = nullptr;
  if (STRATA_PREDICT_TRUE(!__builtin_add_overflow(bytes, offset, &total))) {
    base = static_cast<char*>(alignment <= kEngineAlignment
                                  ? strata::Allocate(total)
                                  : strata::AllocateAligned(total, alignment));
  }
  if (STRATA_PREDICT_FALSE(base == nullptr)) {
    if (byte_limit_ != 0) {
      total_bytes_.fetch_sub(static_cast<std::int64_t>(bytes), std::memory_order_relaxed);
    }
    throw std::bad_alloc();
  }
  char* user = base + offset;
  auto* header = reinterpret_cast<BlockHeader*>(user - kHeaderSize);
  header->bytes = bytes;
  header->shard = ThreadIndex() % kShards;
  header->alignment_log2 = static_cast<std::uint32_t>(__builtin_ctzll(alignment));
  Link(header);
  return user;
}

void PoolResource::do_deallocate(void* p, std::size_t bytes, std::size_t alignment) {
  auto* header = reinterpret_cast<BlockHeader*>(static_cast<char*>(p) - kHeaderSize);
  STRATA_DCHECK(header->bytes == bytes, "PoolResource: deallocate size does not match");
  STRATA_DCHECK(header->alignment_log2 == static_cast<std::uint32_t>(__builtin_ctzll(alignment)),
                "PoolResource: deallocate alignment does not match");
  (void)bytes;
  (void)alignment;
  Unlink(header);
  FreeBlock(header);
}

void PoolResource::release() noexcept {
  for (Shard& shard : shards_) {
    SpinLockHolder hold(&shard.lock);
    std::int64_t freed = 0;
    for (BlockHeader* h = shard.head; h != nullptr;) {
      BlockHeader* next = h->next;
      FreeBlock(h);
      ++freed;
      h = next;
    }
    shard.head = nullptr;
    // The total holds this shard's live bytes minus what it has not flushed.
    const std::int64_t live = shard.live_bytes.load(std::memory_order_relaxed);
    total_bytes_.fetch_sub(live - shard.unflushed, std::memory_order_relaxed);
    shard.unflushed = 0;
    Bump(shard.deallocations, static_cast<std::uint64_t>(freed));
    shard.live_blocks.store(0, std::memory_order_relaxed);
    shard.live_bytes.store(0, std::memory_order_relaxed);
  }
}

PoolResourceStats PoolResource::stats() const noexcept {
  PoolResourceStats s;
  std::int64_t shard_peak = 0;
  for (const Shard& shard : shards_) {
    s.allocations += shard.allocations.load(std::memory_order_relaxed);
    s.deallocations += shard.deallocations.load(std::memory_order_relaxed);
    s.live_blocks += shard.live_blocks.load(std::memory_order_relaxed);
    s.live_bytes += shard.live_bytes.load(std::memory_order_relaxed);
    shard_peak = std::max(shard_peak, shard.peak_bytes.load(std::memory_order_relaxed));
  }
  // Every term is a lower bound of the true peak (see the class comment);
  // with a limit, peak_bytes_ is exact and the others never exceed it.
  s.peak_live_bytes =
      std::max({peak_bytes_.load(std::memory_order_relaxed), shard_peak, s.live_bytes});
  s.limit_failures = limit_failures_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace strata::pmr
