// tests/heapdump/profile_fixtures.cc: see profile_fixtures.h.
#include "tests/heapdump/profile_fixtures.h"

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "alloc/profile/pprof_writer.h"

namespace strata::heapdump::testing {
namespace {

using profile::HeapSample;

// Fake return addresses; the symbolizer sees them minus one.
constexpr std::uintptr_t kMain = 0x401000;
constexpr std::uintptr_t kWork = 0x402000;
constexpr std::uintptr_t kAllocA = 0x403000;
constexpr std::uintptr_t kAllocB = 0x404000;
constexpr std::uintptr_t kInsert = 0x405000;
constexpr std::uintptr_t kLeak = 0x406000;

bool TableSymbolizer(const void* pc, char* out, int out_size, void*) {
  struct Entry {
    std::uintptr_t pc;
    const char* name;
  };
  static constexpr Entry kTable[] = {
      {kMain - 1, "main"},
      {kWork - 1, "Work"},
      {kAllocA - 1, "AllocA"},
      {kAllocB - 1, "AllocB"},
      {kInsert - 1, "Cache<int, std::string>::Insert(K const&)"},
      {kLeak - 1, "Leak"},
  };
  for (const Entry& e : kTable) {
    if (e.pc == reinterpret_cast<std::uintptr_t>(pc)) {
      std::snprintf(out, static_cast<std::size_t>(out_size), "%s", e.name);
      return true;
    }
  }
  return false;
}

struct Site {
  std::vector<std::uintptr_t> leaf_first;
  std::uint64_t inuse_objects, inuse_bytes;
};

}  // namespace

int WriteFixture(const std::string& kind, const std::string& path, bool gzip) {
  std::vector<Site> sites;
  if (kind == "a") {
    sites = {{{kAllocA, kWork, kMain}, 3, 3072},
             {{kAllocB, kWork, kMain}, 2, 1024},
             {{kAllocA, kMain}, 1, 1024},
             {{kInsert, kMain}, 4, 4096}};
  } else if (kind == "b") {
    sites = {{{kAllocA, kWork, kMain}, 30, 30720},
             {{kAllocB, kWork, kMain}, 2, 1024},
             {{kInsert, kMain}, 5, 5120},
             {{kLeak, kWork, kMain}, 100, 102400}};
  } else if (kind != "empty") {
    return EINVAL;
  }
  std::vector<std::vector<const void*>> stacks;
  std::vector<HeapSample> samples;
  for (const Site& s : sites) {
    std::vector<const void*> st;
    for (std::uintptr_t pc : s.leaf_first) {
      st.push_back(reinterpret_cast<const void*>(pc));
    }
    stacks.push_back(st);
  }
  for (std::size_t i = 0; i < sites.size(); ++i) {
    HeapSample h;
    h.stack = stacks[i].data();
    h.depth = static_cast<int>(stacks[i].size());
    h.inuse_objects = sites[i].inuse_objects;
    h.inuse_bytes = sites[i].inuse_bytes;
    h.alloc_objects = 2 * sites[i].inuse_objects;
    h.alloc_bytes = 2 * sites[i].inuse_bytes;
    samples.push_back(h);
  }
  profile::ArraySampleSource source(samples.data(), samples.size());
  profile::WriteOptions opts;
  opts.sample_period = 1;
  opts.time_nanos = 1700000000000000000;
  opts.gzip = gzip;
  opts.symbolizer = &TableSymbolizer;
  return profile::WriteHeapProfile(path.c_str(), source, opts);
}

}  // namespace strata::heapdump::testing
