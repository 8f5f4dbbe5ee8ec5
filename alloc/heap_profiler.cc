// Builds pprof samples from the tracking layer's tables: one sample per
// interned stack, in-use values from the live table, cumulative values from
// the stack's counters, scaled for sampling; then hands them to the writer.
#include "alloc/heap_profiler.h"

#include <errno.h>

#include <algorithm>

#include "alloc/profile/pprof_writer.h"
#include "alloc/profile/scratch_arena.h"
#include "alloc/tracking/live_table.h"
#include "alloc/tracking/stack_table.h"
#include "alloc/tracking/symbolize.h"
#include "alloc/tracking/tracker.h"

namespace strata {
namespace {

using profile::ArenaVector;
using profile::HeapSample;
using profile::ScratchArena;
using tracking::LiveRecord;
using tracking::StackEntry;

struct SiteTotals {
  StackEntry* stack;
  double inuse_objects;
  double inuse_bytes;
};

struct Collected {
  ArenaVector<SiteTotals>* sites;
  std::int64_t rate;
  bool ok = true;
};

void AddStack(StackEntry* entry, void* arg) {
  auto* c = static_cast<Collected*>(arg);
  if (!c->sites->PushBack(SiteTotals{entry, 0, 0})) c->ok = false;
}

SiteTotals* FindSite(ArenaVector<SiteTotals>& sites, StackEntry* stack) {
  auto* it = std::lower_bound(sites.begin(), sites.end(), stack,
                              [](const SiteTotals& s, StackEntry* e) { return s.stack < e; });
  return it != sites.end() && it->stack == stack ? it : nullptr;
}

void AddLive(LiveRecord& r, void* arg) {
  auto* c = static_cast<Collected*>(arg);
  SiteTotals* site = FindSite(*c->sites, r.stack);
  if (site == nullptr) return;  // a stack interned after the snapshot
  if ((r.flags & tracking::kSampled) != 0 && c->rate > 1) {
    profile::ScaledCounts s = profile::ScaleSample(1, r.size.load(std::memory_order_relaxed), c->rate);
    site->inuse_objects += static_cast<double>(s.objects);
    site->inuse_bytes += static_cast<double>(s.bytes);
  } else {
    site->inuse_objects += 1;
    site->inuse_bytes += static_cast<double>(r.size.load(std::memory_order_relaxed));
  }
}

// Cumulative (alloc_*) values of a stack, unsampled.
void AllocTotals(const StackEntry& e, std::int64_t rate, std::uint64_t* objects, std::uint64_t* bytes) {
  std::uint64_t count = e.alloc_count.load(std::memory_order_relaxed);
  std::uint64_t total = e.alloc_bytes.load(std::memory_order_relaxed);
  std::uint64_t s_count = e.sampled_alloc_count.load(std::memory_order_relaxed);
  std::uint64_t s_bytes = e.sampled_alloc_bytes.load(std::memory_order_relaxed);
  if (s_count > count) s_count = count;
  if (s_bytes > total) s_bytes = total;
  profile::ScaledCounts scaled{s_count, s_bytes};
  if (rate > 1 && s_count > 0) scaled = profile::ScaleSample(s_count, s_bytes, rate);
  *objects = scaled.objects + (count - s_count);
  *bytes = scaled.bytes + (total - s_bytes);
}

// Collects every site; false when scratch memory ran out.
bool CollectSites(ScratchArena* arena, ArenaVector<SiteTotals>* sites, std::int64_t rate) {
  Collected c{sites, rate};
  tracking::GlobalStackTable().ForEach(&AddStack, &c);
  if (!c.ok) return false;
  std::sort(sites->begin(), sites->end(), [](const SiteTotals& a, const SiteTotals& b) { return a.stack < b.stack; });
  tracking::GlobalLiveTable().ForEach(&AddLive, &c);
  (void)arena;
  return true;
}

class SiteSource final : public profile::SampleSource {
 public:
  SiteSource(const ArenaVector<SiteTotals>* sites, std::int64_t rate) : sites_(sites), rate_(rate) {}
  void ForEach(Visitor fn, void* arg) const override {
    for (const SiteTotals& s : *sites_) {
      HeapSample sample;
      AllocTotals(*s.stack, rate_, &sample.alloc_objects, &sample.alloc_bytes);
      sample.inuse_objects = static_cast<std::uint64_t>(s.inuse_objects + 0.5);
      sample.inuse_bytes = static_cast<std::uint64_t>(s.inuse_bytes + 0.5);
      if (sample.alloc_objects == 0 && sample.inuse_objects == 0) continue;
      int first = tracking::FirstUserFrame(s.stack->frames, s.stack->depth);
      sample.stack = s.stack->frames + first;
      sample.depth = s.stack->depth - first;
      fn(sample, arg);
    }
  }

 private:
  const ArenaVector<SiteTotals>* sites_;
  std::int64_t rate_;
};

std::int64_t EffectiveRate() {
  if (tracking::TrackAll()) return 1;
  std::int64_t rate = tracking::SampleRate();
  return rate <= 0 ? 1 : rate;
}

template <typename WriteFn>
int WriteProfile(WriteFn&& write) {
  tracking::EnsureTrackingInstalled();
  tracking::InitSymbolizer();
  ScratchArena arena;
  ArenaVector<SiteTotals> sites(&arena);
  std::int64_t rate = EffectiveRate();
  if (!CollectSites(&arena, &sites, rate)) return ENOMEM;
  SiteSource source(&sites, rate);
  profile::WriteOptions options;
  options.sample_period = rate;
  return write(source, options);
}

}  // namespace

int WriteHeapProfile(const char* path) noexcept {
  return WriteProfile([path](const SiteSource& source, const profile::WriteOptions& options) {
    return profile::WriteHeapProfile(path, source, options);
  });
}

int WriteHeapProfileToFd(int fd) noexcept {
  return WriteProfile([fd](const SiteSource& source, const profile::WriteOptions& options) {
    return profile::WriteHeapProfileToFd(fd, source, options);
  });
}

void SetProfileSampleRate(std::int64_t bytes) noexcept { tracking::SetSampleRate(bytes); }
std::int64_t ProfileSampleRate() noexcept { return tracking::SampleRate(); }

HeapProfileSummary GetHeapProfileSummary() noexcept {
  HeapProfileSummary summary{};
  ScratchArena arena;
  ArenaVector<SiteTotals> sites(&arena);
  std::int64_t rate = EffectiveRate();
  if (!CollectSites(&arena, &sites, rate)) return summary;
  summary.sites = sites.size();
  summary.live_records = tracking::GlobalLiveTable().size();
  for (const SiteTotals& s : sites) {
    summary.inuse_objects += static_cast<std::uint64_t>(s.inuse_objects + 0.5);
    summary.inuse_bytes += static_cast<std::uint64_t>(s.inuse_bytes + 0.5);
    std::uint64_t objects, bytes;
    AllocTotals(*s.stack, rate, &objects, &bytes);
    summary.alloc_objects += objects;
    summary.alloc_bytes += bytes;
  }
  return summary;
}

}  // namespace strata
