// xmalloc_pairs: each producer hands batches of mixed-size objects to its
// own consumer through a queue of their own, for a fixed time; every free
// is remote.
//
// The per-pair variant of xmalloc_test (see there for the original,
// xmalloc-test): --threads T makes T/2 producer/consumer pairs (an odd
// thread is left out), and pair i's producer feeds only pair i's consumer
// through a bounded lock-free queue of 16 batches (producer_consumer.h), so
// no two pairs share anything but the allocator. Batches are smaller (256
// objects) and sizes are drawn from 8 B..2 KiB (xmalloc-test's -s -1 set),
// so hand-offs are frequent and every small size class flows from the
// producers' threads to the consumers'.
//
// Each object is tagged and checked by its consumer, and no object may be
// lost. The run lasts --scale seconds (default 1.0); the runner shows
// seconds per 10M objects freed (inverted throughput).
//
// Usage: xmalloc_pairs [--threads T (>= 2)] [--scale SECONDS]
#include "bench/workloads/common.h"
#include "bench/workloads/producer_consumer.h"

int main(int argc, char** argv) {
  const strata_bench::Options opt = strata_bench::ParseArgs(argc, argv);
  strata_bench::ProducerConsumerConfig c =
      strata_bench::PcConfigFromFlags("xmalloc_pairs", opt);
  c.producers = opt.threads / 2;
  c.consumers = c.producers;
  c.per_pair = true;
  c.batch_objects = 256;
  c.fixed_size = 0;
  return strata_bench::RunProducerConsumer<16>(c);
}
