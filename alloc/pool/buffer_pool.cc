// alloc/pool/buffer_pool.cc: strata::BufferPool.
#include <algorithm>
#include <cstddef>
#include <memory>
#include <new>
#include <vector>

#include "alloc/pool/pool.h"
#include "alloc/strata.h"

namespace strata {

// One tier: buffers of exactly `size` bytes from strata::Allocate, cached by
// a PoolCore whose context is the Tier itself.
struct BufferPool::Tier {
  Tier(std::size_t tier_size, const Options& options)
      : size(tier_size),
        core(options.per_thread, options.max_per_tier, &BufferPool::DestroyBuffer, this) {}
  const std::size_t size;
  pool_internal::PoolCore core;
};

BufferPool::BufferPool(Options options) {
  std::vector<std::size_t> sizes;
  for (std::size_t s : options.tier_sizes) {
    if (s != 0) sizes.push_back(s);
  }
  std::sort(sizes.begin(), sizes.end());
  sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
  if (sizes.size() > kMaxTiers) sizes.resize(kMaxTiers);
  for (std::size_t s : sizes) {
    tier_sizes_[num_tiers_] = s;
    tiers_[num_tiers_] = std::make_unique<Tier>(s, options);
    ++num_tiers_;
  }
}

BufferPool::~BufferPool() = default;

void BufferPool::DestroyBuffer(void* item, void* context) noexcept {
  strata::FreeSized(item, static_cast<Tier*>(context)->size);
}

BufferPool::Buffer BufferPool::Get(std::size_t n) {
  Buffer buffer;
  std::size_t tier = 0;
  while (tier < num_tiers_ && tier_sizes_[tier] < n) ++tier;
  if (tier < num_tiers_) {
    const std::size_t size = tier_sizes_[tier];
    void* data = tiers_[tier]->core.Get();
    if (data == nullptr) data = strata::Allocate(size);
    if (data == nullptr) throw std::bad_alloc();
    buffer.capacity_ = size;
    buffer.tier_ = static_cast<int>(tier);
    buffer.data_ = static_cast<std::byte*>(data);
  } else {
    oversize_.fetch_add(1, std::memory_order_relaxed);
    void* data = strata::Allocate(n);
    if (data == nullptr) throw std::bad_alloc();
    buffer.capacity_ = n;
    buffer.tier_ = -1;
    buffer.data_ = static_cast<std::byte*>(data);
  }
  buffer.pool_ = this;
  buffer.size_ = n;
  return buffer;
}

void BufferPool::Return(std::byte* data, std::size_t capacity, int tier) noexcept {
  if (tier < 0) {
    strata::FreeSized(data, capacity);
    return;
  }
  tiers_[tier]->core.Put(data);
}

void BufferPool::Trim() noexcept {
  for (std::size_t i = 0; i < num_tiers_; ++i) tiers_[i]->core.Trim();
}

BufferPool::Stats BufferPool::GetStats() const {
  Stats s;
  s.oversize = oversize_.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < num_tiers_; ++i) {
    const pool_internal::PoolCoreStats core = tiers_[i]->core.GetStats();
    TierStats t;
    t.size = tier_sizes_[i];
    t.hits = core.hits;
    t.misses = core.misses;
    t.puts = core.puts;
    t.drops = core.drops;
    t.shared = core.shared;
    s.hits += t.hits;
    s.misses += t.misses;
    s.tiers.push_back(t);
  }
  return s;
}

}  // namespace strata
