// aligned: over-aligned allocation through every standard entry point.
//
// Not modelled on a single classic benchmark; it exercises the paths that
// SIMD buffers, cache-line-padded structures, page-aligned I/O buffers and
// C++17 over-aligned types take (posix_memalign, C11 aligned_alloc, and
// operator new/delete with std::align_val_t), which the classic
// malloc benchmarks do not cover at all.
//
// Each thread keeps a window of 512 live objects and repeatedly replaces a
// random one. Alignments are drawn from 16 (20%), 32 (15%), 64 (25%),
// 128 (10%), 256 (8%), 512 (6%), 1024 (5%), 4096 (10%) and 65536 (1%);
// sizes are uniform in [8, 2048] bytes (up to 16 KiB at 4 KiB alignment and
// above; multiples of the alignment for aligned_alloc, as C11 requires).
// The entry point is chosen at random, and each object is freed through the
// matching call (free, or sized aligned operator delete). Every pointer's
// alignment is checked, and objects are tagged and checked before the free.
//
// Work: --scale 1.0 is 3M replacements split over the threads.
#include <cstdint>
#include <cstdlib>
#include <new>
#include <vector>

#include "bench/workloads/common.h"

namespace {

using strata_bench::Mix;
using strata_bench::Rng;

constexpr long kBaseOps = 3'000'000;
constexpr size_t kWindow = 512;

enum class Api : uint8_t { kPosixMemalign, kAlignedAlloc, kNewAligned };

struct Obj {
  void* p = nullptr;
  uint32_t size = 0;
  uint32_t align = 0;
  Api api = Api::kPosixMemalign;
  uint64_t tag = 0;
};

size_t PickAlign(Rng& rng) {
  uint64_t r = rng.Below(100);
  if (r < 20) return 16;
  if (r < 35) return 32;
  if (r < 60) return 64;
  if (r < 70) return 128;
  if (r < 78) return 256;
  if (r < 84) return 512;
  if (r < 89) return 1024;
  if (r < 99) return 4096;
  return 65536;
}

void Release(Obj& o) {
  if (o.p == nullptr) return;
  if (!strata_bench::StampOk(o.p, o.size, o.tag)) {
    strata_bench::Die("aligned: object of %u bytes (align %u) corrupted",
                      o.size, o.align);
  }
  if (o.api == Api::kNewAligned) {
    ::operator delete(o.p, o.size, std::align_val_t(o.align));
  } else {
    std::free(o.p);
  }
  o.p = nullptr;
}

uint64_t Worker(int t, long ops) {
  Rng rng(Mix(0xA119 + static_cast<uint64_t>(t)));
  std::vector<Obj> window(kWindow);
  uint64_t sum = 0, serial = 0;
  for (long i = 0; i < ops; ++i) {
    Obj& o = window[rng.Below(kWindow)];
    if (o.p != nullptr) sum += o.tag;
    Release(o);
    size_t align = PickAlign(rng);
    size_t size = rng.Range(8, align >= 4096 ? 16384 : 2048);
    Api api = static_cast<Api>(rng.Below(3));
    void* p = nullptr;
    switch (api) {
      case Api::kPosixMemalign:
        if (posix_memalign(&p, align, size) != 0) p = nullptr;
        break;
      case Api::kAlignedAlloc:
        size = (size + align - 1) / align * align;
        p = std::aligned_alloc(align, size);
        break;
      case Api::kNewAligned:
        p = ::operator new(size, std::align_val_t(align));
        break;
    }
    if (p == nullptr) {
      strata_bench::Die("aligned: allocation of %zu at %zu failed", size, align);
    }
    if (reinterpret_cast<uintptr_t>(p) % align != 0) {
      static const char* const kApiName[] = {"posix_memalign", "aligned_alloc",
                                             "operator new(align_val_t)"};
      strata_bench::Die("aligned: %s(size %zu, align %zu) returned %p, not "
                        "%zu-aligned", kApiName[static_cast<int>(api)], size,
                        align, p, align);
    }
    o.p = p;
    o.size = static_cast<uint32_t>(size);
    o.align = static_cast<uint32_t>(align);
    o.api = api;
    o.tag = Mix((static_cast<uint64_t>(t) << 40) ^ ++serial);
    strata_bench::Stamp(p, size, o.tag);
  }
  for (Obj& o : window) {
    if (o.p != nullptr) sum += o.tag;
    Release(o);
  }
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  const strata_bench::Options opt = strata_bench::ParseArgs(argc, argv);
  const int n = opt.threads;
  const long total = strata_bench::Scaled(kBaseOps, opt, n);
  std::vector<uint64_t> sums(static_cast<size_t>(n), 0);
  strata_bench::RunThreads(n, [&](int t) {
    sums[t] = Worker(t, strata_bench::ShareOf(total, n, t));
  });
  uint64_t sum = 0;
  for (uint64_t s : sums) sum += s;
  strata_bench::PrintChecksum(sum);
  return 0;
}
