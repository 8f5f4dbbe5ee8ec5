// mstress: a mix of object lifetimes, sizes and owners, with thread churn.
//
// Modelled on the idea of mimalloc-bench's "mstress" (mimalloc's
// test/test-stress.c): threads allocate objects with very different
// lifetimes; some die almost at once, some live for the rest of the thread,
// and some are parked in a global table where any thread, including threads
// started much later, may pick them up and free them. Threads come and go
// in rounds, so allocators must cope with heaps whose owner has exited.
//
// How it differs from mstress:
//   * our own lifetime classes and probabilities (per step): 50% short-lived
//     (a per-thread ring of 16, freed 16 steps later), 32% medium (a
//     per-thread table of 1024 slots, replaced at random, the rest freed
//     when the thread exits), 10% long-lived and shared (exchanged into one
//     of 4096 global slots, possibly freeing another thread's object),
//     8% realloc of a medium object to a new size;
//   * sizes: 70% in [16, 128] B, 25% in [128 B, 2 KiB], 4.9% in
//     [2 KiB, 64 KiB], 0.1% in [64 KiB, 1 MiB];
//   * a fixed number of steps (not a time limit), 8 rounds of fresh threads;
//   * each object holds its tag and size in its first 16 bytes and the tag
//     in its last byte (if beyond the header), checked before every free
//     and after every realloc;
//     the checksum (sum of the tags freed) does not depend on scheduling
//     because every object is freed exactly once, whoever frees it.
//
// Work: --scale 1.0 is 10M steps split over the rounds and threads.
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "bench/workloads/common.h"

namespace {

using strata_bench::Mix;
using strata_bench::Rng;

constexpr long kBaseSteps = 10'000'000;
constexpr int kRounds = 8;
constexpr size_t kRing = 16;
constexpr size_t kRetained = 1024;
constexpr size_t kTransfer = 4096;

struct Header {
  uint64_t tag;
  uint64_t size;
};

// One slot per global transfer entry: objects survive their thread here.
std::atomic<void*> g_transfer[kTransfer];

size_t PickSize(Rng& rng) {
  uint64_t r = rng.Below(1000);
  if (r < 700) return rng.Range(16, 128);
  if (r < 950) return rng.Range(129, 2048);
  if (r < 999) return rng.Range(2049, 64 * 1024);
  return rng.Range(64 * 1024 + 1, 1024 * 1024);
}

// The tag's low byte in the last byte, when that byte is not in the header.
void SetTail(void* p, size_t size, uint64_t tag) {
  if (size > sizeof(Header)) {
    static_cast<unsigned char*>(p)[size - 1] = static_cast<unsigned char>(tag);
  }
}

bool TailOk(const void* p, size_t size, uint64_t tag) {
  return size <= sizeof(Header) ||
         static_cast<const unsigned char*>(p)[size - 1] ==
             static_cast<unsigned char>(tag);
}

void* NewObject(size_t size, uint64_t tag) {
  void* p = std::malloc(size);
  if (p == nullptr) strata_bench::Die("mstress: malloc(%zu) failed", size);
  Header h{tag, size};
  std::memcpy(p, &h, sizeof h);
  SetTail(p, size, tag);
  return p;
}

Header Check(const void* p) {
  Header h;
  std::memcpy(&h, p, sizeof h);
  if (h.size < sizeof(Header) || h.size > 1024 * 1024 ||
      !TailOk(p, h.size, h.tag)) {
    strata_bench::Die("mstress: object corrupted (size field %llu)",
                      static_cast<unsigned long long>(h.size));
  }
  return h;
}

// Frees a checked object; returns its tag for the checksum.
uint64_t FreeObject(void* p) {
  if (p == nullptr) return 0;
  uint64_t tag = Check(p).tag;
  std::free(p);
  return tag;
}

uint64_t Worker(int round, int t, long steps) {
  Rng rng(Mix(static_cast<uint64_t>(round) << 20 | static_cast<uint64_t>(t)));
  const uint64_t id = (static_cast<uint64_t>(round) << 48) |
                      (static_cast<uint64_t>(t) << 36);
  uint64_t serial = 0;
  uint64_t sum = 0;
  void* ring[kRing] = {};
  size_t ring_pos = 0;
  std::vector<void*> retained(kRetained, nullptr);

  for (long i = 0; i < steps; ++i) {
    uint64_t r = rng.Below(100);
    if (r < 50) {  // short-lived
      sum += FreeObject(ring[ring_pos]);
      ring[ring_pos] = NewObject(PickSize(rng), Mix(id | ++serial));
      ring_pos = (ring_pos + 1) % kRing;
    } else if (r < 82) {  // medium: lives until replaced or thread exit
      void*& slot = retained[rng.Below(kRetained)];
      sum += FreeObject(slot);
      slot = NewObject(PickSize(rng), Mix(id | ++serial));
    } else if (r < 92) {  // long-lived, freed by whoever comes next
      void* p = NewObject(PickSize(rng), Mix(id | ++serial));
      void* old = g_transfer[rng.Below(kTransfer)].exchange(
          p, std::memory_order_acq_rel);
      sum += FreeObject(old);
    } else {  // realloc a medium object (grow or shrink)
      void*& slot = retained[rng.Below(kRetained)];
      if (slot == nullptr) continue;
      Header h = Check(slot);
      size_t size = PickSize(rng);
      void* q = std::realloc(slot, size);
      if (q == nullptr) strata_bench::Die("mstress: realloc failed");
      Header seen;
      std::memcpy(&seen, q, sizeof seen);
      if (seen.tag != h.tag) strata_bench::Die("mstress: realloc lost data");
      seen.size = size;
      std::memcpy(q, &seen, sizeof seen);
      SetTail(q, size, h.tag);
      slot = q;
    }
  }
  for (void* p : ring) sum += FreeObject(p);
  for (void* p : retained) sum += FreeObject(p);
  // Count of objects made, so a lost object changes the checksum too.
  return sum + serial;
}

}  // namespace

int main(int argc, char** argv) {
  const strata_bench::Options opt = strata_bench::ParseArgs(argc, argv);
  const int n = opt.threads;
  const long total = strata_bench::Scaled(kBaseSteps, opt, kRounds * n);
  std::vector<uint64_t> sums(static_cast<size_t>(n) * kRounds, 0);
  for (int round = 0; round < kRounds; ++round) {
    const long round_steps = strata_bench::ShareOf(total, kRounds, round);
    strata_bench::RunFreshThreads(n, [&](int t) {
      sums[static_cast<size_t>(round) * n + t] =
          Worker(round, t, strata_bench::ShareOf(round_steps, n, t));
    });
  }
  uint64_t sum = 0;
  for (uint64_t s : sums) sum += s;
  for (auto& slot : g_transfer) sum += FreeObject(slot.exchange(nullptr));
  strata_bench::PrintChecksum(sum);
  return 0;
}
