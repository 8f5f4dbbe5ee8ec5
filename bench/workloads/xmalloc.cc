// xmalloc: producer/consumer with every free made by a thread other than the
// allocating one.
//
// Modelled on xmalloc-test (Lever & Boreham, "malloc() Performance in a
// Multithreaded Linux Environment", USENIX 2000), as used by mimalloc-bench:
// some threads allocate objects and hand them over, other threads free them.
//
// How it differs from the original:
//   * the threads form a ring instead of fixed producer and consumer roles:
//     each thread both allocates batches (for its successor) and frees the
//     batches its predecessor sent, so all threads stay busy and every free
//     is a remote free when N > 1 (with N = 1 the thread feeds itself);
//   * a fixed number of objects instead of a fixed duration;
//   * hand-over goes through a bounded mailbox (mutex-protected ring of
//     batch pointers, 16 deep) with a semaphore per thread to sleep on, so
//     oversubscribed runs block instead of spinning;
//   * the batch descriptors themselves are malloc'ed, objects are filled
//     with a tag and checked by the consumer before they are freed, and the
//     checksum (sum of the tags) does not depend on scheduling.
//
// Work: --scale 1.0 is 14M objects (sizes uniform in [8, 256] bytes) in
// batches of 64, split over the threads.
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <semaphore>
#include <vector>

#include "bench/workloads/common.h"

namespace {

using strata_bench::Mix;
using strata_bench::Rng;

constexpr long kBaseObjects = 14'000'000;
constexpr int kBatch = 64;
constexpr int kMailboxDepth = 16;
constexpr size_t kMinSize = 8;
constexpr size_t kMaxSize = 256;

struct Batch {
  int count;
  void* obj[kBatch];
  uint32_t size[kBatch];
  uint64_t tag[kBatch];
};

struct Mailbox {
  std::mutex mu;
  Batch* ring[kMailboxDepth];
  int head = 0;  // next to pop
  int count = 0;
  // Released whenever something this thread may be waiting for happens: a
  // batch arrives in its mailbox or its successor's mailbox gets room.
  std::counting_semaphore<> wake{0};

  bool TryPush(Batch* b) {
    std::lock_guard<std::mutex> lock(mu);
    if (count == kMailboxDepth) return false;
    ring[(head + count) % kMailboxDepth] = b;
    ++count;
    return true;
  }
  Batch* TryPop() {
    std::lock_guard<std::mutex> lock(mu);
    if (count == 0) return nullptr;
    Batch* b = ring[head];
    head = (head + 1) % kMailboxDepth;
    --count;
    return b;
  }
};

Batch* Produce(Rng& rng, uint64_t thread_id, uint64_t& serial, int count) {
  auto* b = static_cast<Batch*>(std::malloc(sizeof(Batch)));
  if (b == nullptr) strata_bench::Die("xmalloc: malloc(batch) failed");
  b->count = count;
  for (int i = 0; i < count; ++i) {
    size_t size = rng.Range(kMinSize, kMaxSize);
    void* p = std::malloc(size);
    if (p == nullptr) strata_bench::Die("xmalloc: malloc(%zu) failed", size);
    uint64_t tag = Mix((thread_id << 40) ^ ++serial);
    strata_bench::Stamp(p, size, tag);
    b->obj[i] = p;
    b->size[i] = static_cast<uint32_t>(size);
    b->tag[i] = tag;
  }
  return b;
}

uint64_t Consume(Batch* b) {
  uint64_t sum = 0;
  for (int i = 0; i < b->count; ++i) {
    if (!strata_bench::StampOk(b->obj[i], b->size[i], b->tag[i])) {
      strata_bench::Die("xmalloc: received object of %u bytes corrupted",
                        b->size[i]);
    }
    sum += b->tag[i];
    std::free(b->obj[i]);
  }
  std::free(b);
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  const strata_bench::Options opt = strata_bench::ParseArgs(argc, argv);
  const int n = opt.threads;
  const long total = strata_bench::Scaled(kBaseObjects, opt, n);

  std::vector<Mailbox> boxes(static_cast<size_t>(n));
  // Objects each thread produces; thread t consumes what t-1 produces.
  std::vector<long> to_produce(static_cast<size_t>(n));
  for (int t = 0; t < n; ++t) to_produce[t] = strata_bench::ShareOf(total, n, t);
  std::vector<uint64_t> sums(static_cast<size_t>(n), 0);

  strata_bench::RunThreads(n, [&](int t) {
    Mailbox& mine = boxes[t];
    Mailbox& next = boxes[(t + 1) % n];
    Mailbox& prev = boxes[(t + n - 1) % n];
    Rng rng(1000 + t);
    uint64_t serial = 0;
    long produce_left = to_produce[t];
    long consume_left = to_produce[(t + n - 1) % n];
    Batch* pending = nullptr;  // produced, not yet accepted by `next`
    uint64_t sum = 0;
    while (produce_left > 0 || consume_left > 0 || pending != nullptr) {
      bool progress = false;
      if (pending == nullptr && produce_left > 0) {
        int count = produce_left < kBatch ? static_cast<int>(produce_left)
                                          : kBatch;
        pending = Produce(rng, static_cast<uint64_t>(t) + 1, serial, count);
        produce_left -= count;
      }
      if (pending != nullptr && next.TryPush(pending)) {
        pending = nullptr;
        next.wake.release();
        progress = true;
      }
      while (Batch* b = mine.TryPop()) {
        consume_left -= b->count;
        sum += Consume(b);
        progress = true;
        prev.wake.release();  // room in our mailbox: prev may be blocked
      }
      if (!progress) mine.wake.acquire();
    }
    sums[t] = sum;
  });

  uint64_t sum = 0;
  for (uint64_t s : sums) sum += s;
  strata_bench::PrintChecksum(sum);
  return 0;
}
