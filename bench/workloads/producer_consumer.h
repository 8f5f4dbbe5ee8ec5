// bench/workloads/producer_consumer.h: the engine of the fixed-duration
// producer/consumer workloads (xmalloc_test, xmalloc_pairs): producer
// threads malloc objects in batches and hand each batch to consumer
// threads, which check and free every object. Every free is therefore made
// by a thread other than the one that allocated the object, and memory
// flows one way: from the consumers' frees back to the producers' mallocs
// only through the allocator.
//
// Contract: RunProducerConsumer(config) runs for config.seconds, prints the
// checksum (a function of the config only) on stdout and a
// `bench-throughput: ops=<objects freed by consumers> seconds=<S>` line on
// stderr (common.h), where S runs from the workers' release to the moment
// the last consumer finished its last batch, so it covers every counted
// free. It dies (exit 3) if an object's contents changed between producer
// and consumer, or if an object was lost (produced != freed by consumers +
// drained after the run + discarded by producers at the stop).
// Thread-safety: called once, from main.
#ifndef STRATA_BENCH_WORKLOADS_PRODUCER_CONSUMER_H_
#define STRATA_BENCH_WORKLOADS_PRODUCER_CONSUMER_H_

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "bench/workloads/common.h"
#include "bench/workloads/handoff.h"

namespace strata_bench {

struct ProducerConsumerConfig {
  const char* name;     // for error messages
  int producers;
  int consumers;        // == producers when per_pair
  bool per_pair;        // producer i feeds consumer i through its own queue
  int batch_objects;    // objects per batch
  size_t fixed_size;    // bytes per object; 0: each drawn from kPcSizes
  double seconds;       // run time
};

// The config's common part from the flags: the name, the run time
// (--scale seconds), and --threads, which must be 2 or more.
inline ProducerConsumerConfig PcConfigFromFlags(const char* name,
                                                const Options& o) {
  if (o.threads < 2) {
    Die("%s: needs --threads >= 2 (producers and consumers), got %d", name,
        o.threads);
  }
  ProducerConsumerConfig c{};
  c.name = name;
  c.seconds = o.scale;
  return c;
}

// xmalloc-test's size set when it is given no fixed size: powers of two and
// the midpoints between them, 8 B..2 KiB.
inline constexpr size_t kPcSizes[] = {8,   12,  16,  24,  32,   48,   64,  96,
                                      128, 192, 256, 384, 512, 768, 1024,
                                      1536, 2048};

struct PcBatch {
  uint64_t seed;  // object i's tag is Mix(seed + i)
  int count;
  void** obj;      // points into this allocation, after the header
  uint32_t* size;  // likewise
};

inline PcBatch* PcMakeBatch(const ProducerConsumerConfig& c, Rng& rng,
                            uint64_t seed) {
  const size_t n = static_cast<size_t>(c.batch_objects);
  void* raw = std::malloc(sizeof(PcBatch) + n * (sizeof(void*) + 4));
  if (raw == nullptr) Die("%s: malloc(batch) failed", c.name);
  auto* b = static_cast<PcBatch*>(raw);
  b->seed = seed;
  b->count = c.batch_objects;
  b->obj = reinterpret_cast<void**>(b + 1);
  b->size = reinterpret_cast<uint32_t*>(b->obj + n);
  constexpr size_t kNumSizes = sizeof(kPcSizes) / sizeof(kPcSizes[0]);
  for (size_t i = 0; i < n; ++i) {
    const size_t size =
        c.fixed_size ? c.fixed_size : kPcSizes[rng.Below(kNumSizes)];
    void* p = std::malloc(size);
    if (p == nullptr) Die("%s: malloc(%zu) failed", c.name, size);
    // Touch the object as xmalloc-test does (up to 128 bytes), then tag it.
    std::memset(p, static_cast<int>(i & 0xff), size < 128 ? size : 128);
    Stamp(p, size, Mix(seed + i));
    b->obj[i] = p;
    b->size[i] = static_cast<uint32_t>(size);
  }
  return b;
}

// Checks and frees every object of `b`, then `b`; returns the count.
inline uint64_t PcConsume(const ProducerConsumerConfig& c, PcBatch* b) {
  const int n = b->count;
  for (int i = 0; i < n; ++i) {
    if (!StampOk(b->obj[i], b->size[i], Mix(b->seed + static_cast<uint64_t>(i)))) {
      Die("%s: an object of %u bytes changed between producer and consumer",
          c.name, b->size[i]);
    }
    std::free(b->obj[i]);
  }
  std::free(b);
  return static_cast<uint64_t>(n);
}

struct alignas(64) PcCounts {
  uint64_t produced = 0;
  uint64_t freed = 0;      // by a consumer, inside the timed window
  uint64_t discarded = 0;  // by a producer whose push met the stop
};

template <size_t kQueueDepth>
int RunProducerConsumer(const ProducerConsumerConfig& c) {
  using Queue = Handoff<PcBatch, kQueueDepth>;
  const int queues = c.per_pair ? c.producers : 1;
  std::vector<std::unique_ptr<Queue>> q;
  for (int i = 0; i < queues; ++i) q.push_back(std::make_unique<Queue>());
  std::vector<PcCounts> prod(static_cast<size_t>(c.producers));
  std::vector<PcCounts> cons(static_cast<size_t>(c.consumers));
  RunClock clock;

  std::vector<std::thread> consumers, producers;
  for (int t = 0; t < c.consumers; ++t) {
    consumers.emplace_back([&, t] {
      Queue& mine = *q[c.per_pair ? t : 0];
      clock.WaitForStart();
      uint64_t freed = 0;
      while (!mine.stopped()) {
        PcBatch* b = mine.Pop();
        if (b == nullptr) break;
        freed += PcConsume(c, b);
      }
      cons[t].freed = freed;
    });
  }
  for (int t = 0; t < c.producers; ++t) {
    producers.emplace_back([&, t] {
      Queue& out = *q[c.per_pair ? t : 0];
      Rng rng(7000 + static_cast<uint64_t>(t));
      clock.WaitForStart();
      uint64_t serial = 0, produced = 0, discarded = 0;
      while (!out.stopped()) {
        PcBatch* b = PcMakeBatch(
            c, rng, (static_cast<uint64_t>(t) << 44) + serial);
        serial += static_cast<uint64_t>(c.batch_objects);
        produced += static_cast<uint64_t>(b->count);
        if (!out.Push(b)) {
          discarded += PcConsume(c, b);
          break;
        }
      }
      prod[t].produced = produced;
      prod[t].discarded = discarded;
    });
  }
  clock.Run(c.seconds, [&] {
    for (auto& queue : q) queue->Stop();
  });
  for (auto& th : consumers) th.join();
  const double elapsed = clock.Elapsed();
  for (auto& th : producers) th.join();

  uint64_t produced = 0, freed = 0, rest = 0;
  for (const PcCounts& p : prod) produced += p.produced, rest += p.discarded;
  for (const PcCounts& k : cons) freed += k.freed;
  for (auto& queue : q) {
    while (PcBatch* b = queue->Drain()) rest += PcConsume(c, b);
  }
  if (produced != freed + rest) {
    Die("%s: %llu objects produced but %llu freed by consumers and %llu "
        "after the run", c.name, static_cast<unsigned long long>(produced),
        static_cast<unsigned long long>(freed),
        static_cast<unsigned long long>(rest));
  }
  if (freed == 0) Die("%s: no object reached a consumer", c.name);
  ReportThroughput(freed, elapsed);
  PrintChecksum(Mix((static_cast<uint64_t>(c.producers) << 48) ^
                    (static_cast<uint64_t>(c.consumers) << 32) ^
                    (static_cast<uint64_t>(c.batch_objects) << 16) ^
                    (c.per_pair ? 1u : 0u) ^ (c.fixed_size << 1)));
  return 0;
}

}  // namespace strata_bench

#endif  // STRATA_BENCH_WORKLOADS_PRODUCER_CONSUMER_H_
