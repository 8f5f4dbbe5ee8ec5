// large_blocks: large allocations (256 KiB - 32 MiB) that are really used.
//
// Not modelled on one classic benchmark; it covers what the small-object
// benchmarks leave out and what image, column-store and compression code
// does: allocate big buffers, write every page, read some back, free them,
// and soon allocate more of a similar size. It rewards allocators that reuse
// large blocks (or at least their pages) instead of unmapping them at once
// and faulting them back in (each fault costs about 2 us in these VMs), and
// shows in peak RSS what that reuse costs.
//
// Each thread keeps a window of 4 live blocks and repeatedly replaces a
// random one with a block of log-uniform size in [256 KiB, 32 MiB]; one in
// four comes from calloc and is checked to read as zero at sampled pages
// before it is written. Every 4 KiB page of a new block is written (a tag
// and the page number), and 16 sampled pages are checked before the free.
//
// Work: --scale 1.0 is 560 blocks in total, split over the threads.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "bench/workloads/common.h"

namespace {

using strata_bench::Mix;
using strata_bench::Rng;

constexpr long kBaseBlocks = 560;
constexpr size_t kWindow = 4;
constexpr size_t kPage = 4096;
constexpr size_t kMinSize = 256 << 10;
constexpr size_t kMaxSize = 32 << 20;
constexpr int kChecks = 16;

struct Block {
  unsigned char* p = nullptr;
  size_t size = 0;
  uint64_t tag = 0;
};

inline uint64_t PageWord(const Block& b, size_t page) { return b.tag ^ page; }

uint64_t Release(Block& b, Rng& rng) {
  if (b.p == nullptr) return 0;
  const size_t pages = b.size / kPage;
  uint64_t sum = 0;
  for (int k = 0; k < kChecks; ++k) {
    size_t page = k == 0 ? pages - 1 : rng.Below(pages);
    uint64_t w;
    std::memcpy(&w, b.p + page * kPage, sizeof w);
    if (w != PageWord(b, page)) {
      strata_bench::Die("large_blocks: page %zu of %zu corrupted", page, pages);
    }
    sum += w;
  }
  if (b.p[b.size - 1] != static_cast<unsigned char>(b.tag)) {
    strata_bench::Die("large_blocks: last byte corrupted");
  }
  std::free(b.p);
  b.p = nullptr;
  return sum + b.size;
}

uint64_t Worker(int t, long blocks) {
  Rng rng(Mix(0x1A26E + static_cast<uint64_t>(t)));
  std::vector<Block> window(kWindow);
  uint64_t sum = 0, serial = 0;
  for (long i = 0; i < blocks; ++i) {
    Block& b = window[rng.Below(kWindow)];
    sum += Release(b, rng);
    b.size = rng.LogRange(kMinSize, kMaxSize) / 8 * 8;
    const bool zeroed = rng.Below(4) == 0;
    b.p = static_cast<unsigned char*>(zeroed ? std::calloc(1, b.size)
                                             : std::malloc(b.size));
    if (b.p == nullptr) strata_bench::Die("large_blocks: allocation failed");
    const size_t pages = b.size / kPage;
    if (zeroed) {
      for (int k = 0; k < kChecks; ++k) {
        size_t at = rng.Below(b.size / 8) * 8;
        uint64_t w;
        std::memcpy(&w, b.p + at, sizeof w);
        if (w != 0) strata_bench::Die("large_blocks: calloc memory not zero");
      }
    }
    b.tag = Mix((static_cast<uint64_t>(t) << 32) ^ ++serial);
    for (size_t page = 0; page < pages; ++page) {
      uint64_t w = PageWord(b, page);
      std::memcpy(b.p + page * kPage, &w, sizeof w);
    }
    b.p[b.size - 1] = static_cast<unsigned char>(b.tag);
  }
  for (Block& b : window) sum += Release(b, rng);
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  const strata_bench::Options opt = strata_bench::ParseArgs(argc, argv);
  const int n = opt.threads;
  const long total = strata_bench::Scaled(kBaseBlocks, opt, n);
  std::vector<uint64_t> sums(static_cast<size_t>(n), 0);
  strata_bench::RunThreads(n, [&](int t) {
    sums[t] = Worker(t, strata_bench::ShareOf(total, n, t));
  });
  uint64_t sum = 0;
  for (uint64_t s : sums) sum += s;
  strata_bench::PrintChecksum(sum);
  return 0;
}
