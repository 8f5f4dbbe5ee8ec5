// tools/heapdump/analysis.h: the reports of tools/heapdump (top, diff,
// folded stacks) computed from a decoded Profile.
//
// Contract:
//   - Frames are named by function name, followed by " FILE:LINE" when the
//     profile has the location's line and the function's file (heapdump
//     fills them in from the binaries' debug info, source_lines.h, unless
//     --no-lines); a location with inlined frames
//     expands to several frames (innermost first); a location without
//     Line entries is named by its hex address ("0x4005d0"); a sample with
//     no locations gets the single frame "[no stack]".
//   - Stacks are merged by their frame names, so two profiles of the same
//     program diff correctly despite address-space randomisation.
//   - All orderings are total (ties broken by name), so output is
//     deterministic.
//
// Thread-safety: pure functions of their arguments.
#ifndef STRATA_TOOLS_HEAPDUMP_ANALYSIS_H_
#define STRATA_TOOLS_HEAPDUMP_ANALYSIS_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "tools/heapdump/profile_reader.h"

namespace strata::heapdump {

// Frame names of one sample, leaf first.
std::vector<std::string> SampleFrames(const Profile& profile,
                                      const Sample& sample);

// Index of sample type `type` in `profile`, or -1 with `error` naming the
// types the profile has.
int FindSampleType(const Profile& profile, const std::string& type,
                   std::string* error);

// "1.50MB", "3MB", "512B" for unit "bytes" (1024-based, like pprof);
// plain integers otherwise; zero is "0" in either case. `show_plus` prefixes positive values with '+'.
std::string FormatValue(std::int64_t v, const std::string& unit,
                        bool show_plus = false);
// "75.00%" (0 when total is 0).
std::string FormatPercent(std::int64_t part, std::int64_t total);

// One stack with its value, frames root first. Stacks with equal frames
// are merged; zero-valued stacks are dropped; sorted by frames.
struct FoldedStack {
  std::vector<std::string> frames;  // root first
  std::int64_t value = 0;
};
std::vector<FoldedStack> FoldStacks(const Profile& profile, int value_index);

// `root;caller;leaf value` per line, for flamegraph tools. ';' and line
// breaks inside names are replaced (by ':' and ' ').
void PrintFolded(std::ostream& out, const Profile& profile, int value_index);

struct TopRow {
  std::string name;
  std::int64_t flat = 0;  // value where the function is the leaf
  std::int64_t cum = 0;   // value of every stack the function is on
};
struct TopOptions {
  int node_count = 20;    // rows shown; <= 0 means all
  bool sort_by_cum = false;
};
// Rows with a non-zero flat or cum, sorted by flat (or cum) descending.
std::vector<TopRow> ComputeTop(const Profile& profile, int value_index,
                               bool sort_by_cum);
// A pprof -top style table.
void PrintTop(std::ostream& out, const Profile& profile, int value_index,
              const TopOptions& options);

struct DiffOptions {
  std::string objects_type = "inuse_objects";
  std::string bytes_type = "inuse_space";
  bool by_function = false;  // group by leaf function instead of stack
  int node_count = 20;       // rows shown; <= 0 means all
};
struct DiffRow {
  std::vector<std::string> frames;  // leaf first (one frame by function)
  std::int64_t delta_objects = 0;
  std::int64_t delta_bytes = 0;
  std::int64_t objects_b = 0;
  std::int64_t bytes_b = 0;
};
struct DiffResult {
  std::int64_t objects_a = 0, bytes_a = 0;
  std::int64_t objects_b = 0, bytes_b = 0;
  std::vector<DiffRow> rows;  // changed sites only, sorted by growth
  std::string bytes_unit = "bytes";
};
// Growth from `a` to `b` per site. Fails when a profile lacks one of the
// two sample types.
bool ComputeDiff(const Profile& a, const Profile& b, const DiffOptions& options,
                 DiffResult* result, std::string* error);
void PrintDiff(std::ostream& out, const DiffResult& result,
               const DiffOptions& options);

}  // namespace strata::heapdump

#endif  // STRATA_TOOLS_HEAPDUMP_ANALYSIS_H_
