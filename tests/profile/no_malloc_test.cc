// tests/profile/no_malloc_test.cc: the writer never calls malloc.
//
// This binary interposes the malloc family (forwarding to glibc's
// __libc_* entry points) and counts calls made by the test thread while
// "armed". Writing a profile - real stacks, Abseil symbolization, mapping
// discovery, gzip, file rename - must make zero calls. Not run under
// sanitizers (they own malloc): tagged no-sanitizer.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/debugging/stacktrace.h"
#include "absl/debugging/symbolize.h"
#include "alloc/profile/pprof_writer.h"
#include "alloc/profile/system_libraries.h"
#include "gtest/gtest.h"
#include "tools/heapdump/profile_reader.h"

#include "tests/util/malloc_counter.h"

namespace strata::profile {
namespace {

struct Site {
  const void* pcs[64];
  int depth;
};

__attribute__((noinline)) void Capture(Site* site) {
  site->depth = absl::GetStackTrace(const_cast<void**>(site->pcs), 64, 0);
}

__attribute__((noinline)) void Level2(Site* site) {
  Capture(site);
  asm volatile("" ::: "memory");  // not a tail call
}

__attribute__((noinline)) void Level1(Site* site) {
  Level2(site);
  asm volatile("" ::: "memory");
}

TEST(NoMallocTest, InterposerCountsCalls) {
  strata::testing::t_malloc_armed = true;
  void* volatile p = malloc(10);
  free(p);
  strata::testing::t_malloc_armed = false;
  EXPECT_EQ(strata::testing::t_malloc_calls, 2);
  strata::testing::t_malloc_calls = 0;
}

TEST(NoMallocTest, WritingAProfileNeverCallsMalloc) {
  Site sites[3];
  for (Site& s : sites) Level1(&s);
  HeapSample samples[3];
  for (int i = 0; i < 3; ++i) {
    samples[i].stack = sites[i].pcs;
    samples[i].depth = sites[i].depth;
    samples[i].alloc_objects = samples[i].inuse_objects = 1;
    samples[i].alloc_bytes = samples[i].inuse_bytes = 100;
    samples[i].requested_size = 100;
  }
  ArraySampleSource source(samples, 3);
  const char* dir = std::getenv("TEST_TMPDIR");
  const std::string path = std::string(dir != nullptr ? dir : "/tmp") +
                           "/no_malloc.pb.gz";
  LoadProfilerLibraries();  // opening zlib and the symbolizer allocates, once
  for (bool gzip : {true, false}) {
    WriteOptions opts;
    opts.sample_period = 524288;
    opts.gzip = gzip;
    strata::testing::t_malloc_calls = 0;
    strata::testing::t_malloc_armed = true;
    const int rc = WriteHeapProfile(path.c_str(), source, opts);
    strata::testing::t_malloc_armed = false;
    ASSERT_EQ(rc, 0);
    EXPECT_EQ(strata::testing::t_malloc_calls, 0) << "malloc-family calls while writing (gzip="
                          << gzip << ")";
  }
  // And the result is a real profile naming our functions.
  heapdump::Profile p;
  std::string error;
  ASSERT_TRUE(heapdump::ReadProfileFile(path, &p, &error)) << error;
  std::int64_t objects = 0;
  for (const auto& s : p.samples) objects += s.values[2];
  EXPECT_EQ(objects, 3);
  bool saw_level1 = false;
  for (const auto& f : p.functions) {
    if (f.name.find("Level1") != std::string::npos) saw_level1 = true;
  }
  EXPECT_TRUE(saw_level1);
}

}  // namespace
}  // namespace strata::profile
