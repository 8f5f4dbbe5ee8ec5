// Builds pprof samples from the tracking layer's tables: one sample per
// interned stack, in-use values from the live table, cumulative values from
// the stack's counters, scaled for sampling; then hands them to the writer.
// The peak profile takes the same values from the peak tracker's last
// snapshot (alloc/tracking/peak_tracker.h).
#include "alloc/heap_profiler.h"

#include <errno.h>

#include <algorithm>

#include "alloc/profile/pprof_writer.h"
#include "alloc/profile/scratch_arena.h"
#include "alloc/tracking/live_table.h"
#include "alloc/tracking/peak_tracker.h"
#include "alloc/tracking/stack_table.h"
#include "alloc/tracking/symbolize.h"
#include "alloc/tracking/tracker.h"

namespace strata {
namespace {

using profile::ArenaVector;
using profile::HeapSample;
using profile::ScratchArena;
using tracking::LiveInfo;
using tracking::StackEntry;

using tracking::PeakSite;
using tracking::StackCounts;

// One site of a profile: its stack, in-use values (unsampled) and the
// stack's cumulative counters, all as of one moment (now, or the peak).
using SiteTotals = PeakSite;

struct Collected {
  ArenaVector<SiteTotals>* sites;
  std::int64_t rate;
  bool ok = true;
};

void AddStack(StackEntry* entry, void* arg) {
  auto* c = static_cast<Collected*>(arg);
  if (!c->sites->PushBack(SiteTotals{entry, 0, 0, tracking::CountsOf(*entry)})) c->ok = false;
}

SiteTotals* FindSite(ArenaVector<SiteTotals>& sites, StackEntry* stack) {
  auto* it = std::lower_bound(sites.begin(), sites.end(), stack,
                              [](const SiteTotals& s, StackEntry* e) { return s.stack < e; });
  return it != sites.end() && it->stack == stack ? it : nullptr;
}

void AddLive(const LiveInfo& r, void* arg) {
  auto* c = static_cast<Collected*>(arg);
  SiteTotals* site = FindSite(*c->sites, r.stack);
  if (site == nullptr) return;  // a stack interned after the snapshot
  double objects, bytes;
  tracking::RecordWeight(r.size, r.flags, c->rate, &objects, &bytes);
  site->inuse_objects += objects;
  site->inuse_bytes += bytes;
}

// Cumulative (alloc_*) values of a stack, unsampled.
void AllocTotals(const StackCounts& e, std::int64_t rate, std::uint64_t* objects, std::uint64_t* bytes) {
  std::uint64_t count = e.alloc_count;
  std::uint64_t total = e.alloc_bytes;
  std::uint64_t s_count = e.sampled_alloc_count;
  std::uint64_t s_bytes = e.sampled_alloc_bytes;
  if (s_count > count) s_count = count;
  if (s_bytes > total) s_bytes = total;
  profile::ScaledCounts scaled{s_count, s_bytes};
  if (rate > 1 && s_count > 0) scaled = profile::ScaleSample(s_count, s_bytes, rate);
  *objects = scaled.objects + (count - s_count);
  *bytes = scaled.bytes + (total - s_bytes);
}

// Collects every site; false when scratch memory ran out.
bool CollectSites(ArenaVector<SiteTotals>* sites, std::int64_t rate) {
  Collected c{sites, rate};
  tracking::FlushThreadSiteCounts();
  tracking::GlobalStackTable().ForEach(&AddStack, &c);
  if (!c.ok) return false;
  std::sort(sites->begin(), sites->end(), [](const SiteTotals& a, const SiteTotals& b) { return a.stack < b.stack; });
  tracking::ForEachLive(&AddLive, &c);
  return true;
}

double InuseBytes(const ArenaVector<SiteTotals>& sites) {
  double total = 0;
  for (const SiteTotals& s : sites) total += s.inuse_bytes;
  return total;
}

// The peak snapshot's sites, copied out of the tracker.
void CopyPeakSite(const PeakSite& site, void* arg) {
  auto* c = static_cast<Collected*>(arg);
  if (!c->sites->PushBack(site)) c->ok = false;
}

class SiteSource final : public profile::SampleSource {
 public:
  SiteSource(const ArenaVector<SiteTotals>* sites, std::int64_t rate) : sites_(sites), rate_(rate) {}
  void ForEach(Visitor fn, void* arg) const override {
    for (const SiteTotals& s : *sites_) {
      HeapSample sample;
      AllocTotals(s.counts, rate_, &sample.alloc_objects, &sample.alloc_bytes);
      sample.inuse_objects = static_cast<std::uint64_t>(s.inuse_objects + 0.5);
      sample.inuse_bytes = static_cast<std::uint64_t>(s.inuse_bytes + 0.5);
      if (sample.alloc_objects == 0 && sample.inuse_objects == 0) continue;
      const int end = tracking::ModuleFrames(s.stack->frames, s.stack->depth);
      int first = tracking::FirstUserFrame(s.stack->frames, end);
      sample.stack = s.stack->frames + first;
      sample.depth = end - first;
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

// The sites of the profile asked for, in `sites`, and its sampling stride.
// The peak profile is the last peak snapshot, unless the heap holds at
// least as much now (then now is the peak, and fresher). 0 or an errno.
int CollectProfile(bool peak, ArenaVector<SiteTotals>* sites, std::int64_t* rate,
                   tracking::PeakInfo* info = nullptr) {
  *rate = EffectiveRate();
  if (!CollectSites(sites, *rate)) return ENOMEM;
  if (!peak) return 0;
  tracking::PeakInfo local;
  if (info == nullptr) info = &local;
  ScratchArena arena;
  ArenaVector<SiteTotals> snapshot(&arena);
  Collected c{&snapshot, 0};
  if (!tracking::ReadPeakSnapshot(&CopyPeakSite, &c, info)) return EBUSY;
  if (!c.ok) return ENOMEM;
  if (info->snapshots == 0 || InuseBytes(*sites) >= static_cast<double>(info->snapshot_bytes)) return 0;
  sites->Resize(0);
  if (!sites->Append(snapshot.data(), snapshot.size())) return ENOMEM;
  *rate = info->snapshot_rate;
  return 0;
}

template <typename WriteFn>
int WriteProfile(bool peak, WriteFn&& write) {
  tracking::EnsureTrackingInstalled();
  tracking::InitSymbolizer();
  ScratchArena arena;
  ArenaVector<SiteTotals> sites(&arena);
  std::int64_t rate = 1;
  if (int err = CollectProfile(peak, &sites, &rate); err != 0) return err;
  SiteSource source(&sites, rate);
  profile::WriteOptions options;
  options.sample_period = rate;
  return write(source, options);
}

HeapProfileSummary Summarize(const ArenaVector<SiteTotals>& sites, std::int64_t rate) {
  HeapProfileSummary summary{};
  summary.sites = sites.size();
  for (const SiteTotals& s : sites) {
    summary.inuse_objects += static_cast<std::uint64_t>(s.inuse_objects + 0.5);
    summary.inuse_bytes += static_cast<std::uint64_t>(s.inuse_bytes + 0.5);
    std::uint64_t objects, bytes;
    AllocTotals(s.counts, rate, &objects, &bytes);
    summary.alloc_objects += objects;
    summary.alloc_bytes += bytes;
  }
  return summary;
}

}  // namespace

int WriteHeapProfile(const char* path) noexcept {
  return WriteProfile(false, [path](const SiteSource& source, const profile::WriteOptions& options) {
    return profile::WriteHeapProfile(path, source, options);
  });
}

int WriteHeapProfileToFd(int fd) noexcept {
  return WriteProfile(false, [fd](const SiteSource& source, const profile::WriteOptions& options) {
    return profile::WriteHeapProfileToFd(fd, source, options);
  });
}

int WritePeakHeapProfile(const char* path) noexcept {
  return WriteProfile(true, [path](const SiteSource& source, const profile::WriteOptions& options) {
    return profile::WriteHeapProfile(path, source, options);
  });
}

int WritePeakHeapProfileToFd(int fd) noexcept {
  return WriteProfile(true, [fd](const SiteSource& source, const profile::WriteOptions& options) {
    return profile::WriteHeapProfileToFd(fd, source, options);
  });
}

void SetProfileSampleRate(std::int64_t bytes) noexcept { tracking::SetSampleRate(bytes); }
std::int64_t ProfileSampleRate() noexcept { return tracking::SampleRate(); }

HeapProfileSummary GetHeapProfileSummary() noexcept {
  ScratchArena arena;
  ArenaVector<SiteTotals> sites(&arena);
  std::int64_t rate = 1;
  if (CollectProfile(false, &sites, &rate) != 0) return HeapProfileSummary{};
  HeapProfileSummary summary = Summarize(sites, rate);
  summary.live_records = tracking::LiveCount();
  return summary;
}

PeakHeapProfileSummary GetPeakHeapProfileSummary() noexcept {
  PeakHeapProfileSummary peak{};
  ScratchArena arena;
  ArenaVector<SiteTotals> sites(&arena);
  std::int64_t rate = 1;
  tracking::PeakInfo info;
  if (CollectProfile(true, &sites, &rate, &info) != 0) return peak;
  peak.profile = Summarize(sites, rate);
  peak.snapshots = info.snapshots;
  peak.highest_estimate_bytes = info.highest_estimate;
  return peak;
}

}  // namespace strata
