// tools/heapdump/analysis.cc: see analysis.h.
#include "tools/heapdump/analysis.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <map>
#include <set>
#include <tuple>

namespace strata::heapdump {
namespace {

std::string HexAddress(std::uint64_t address) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "0x%" PRIx64, address);
  return buf;
}

std::string JoinLeafFirst(const std::vector<std::string>& leaf_first,
                          const char* sep) {
  std::string out;
  for (const std::string& f : leaf_first) {
    if (!out.empty()) out += sep;
    out += f;
  }
  return out;
}

std::string PadLeft(const std::string& s, std::size_t width) {
  return s.size() >= width ? s : std::string(width - s.size(), ' ') + s;
}

std::int64_t SaturatingAdd(std::int64_t a, std::int64_t b) {
  std::int64_t r;
  if (__builtin_add_overflow(a, b, &r)) return b > 0 ? INT64_MAX : INT64_MIN;
  return r;
}

std::int64_t SaturatingSub(std::int64_t a, std::int64_t b) {
  std::int64_t r;
  if (__builtin_sub_overflow(a, b, &r)) return b < 0 ? INT64_MAX : INT64_MIN;
  return r;
}

}  // namespace

std::vector<std::string> SampleFrames(const Profile& profile,
                                      const Sample& sample) {
  std::vector<std::string> frames;
  for (std::uint64_t id : sample.location_ids) {
    const Location* loc = profile.FindLocation(id);
    if (loc == nullptr) continue;  // DecodeProfile rejects these
    if (loc->lines.empty()) {
      frames.push_back(HexAddress(loc->address));
      continue;
    }
    for (const Line& line : loc->lines) {
      const Function* fn = profile.FindFunction(line.function_id);
      if (fn != nullptr && !fn->name.empty()) {
        frames.push_back(fn->name);
      } else if (fn != nullptr && !fn->system_name.empty()) {
        frames.push_back(fn->system_name);
      } else {
        frames.push_back(HexAddress(loc->address));
        continue;
      }
      if (line.line > 0 && !fn->filename.empty()) {
        frames.back() += " " + fn->filename + ":" + std::to_string(line.line);
      }
    }
  }
  if (frames.empty()) frames.push_back("[no stack]");
  return frames;
}

int FindSampleType(const Profile& profile, const std::string& type,
                   std::string* error) {
  const int index = profile.SampleTypeIndex(type);
  if (index >= 0) return index;
  std::string have;
  for (const ValueType& vt : profile.sample_types) {
    if (!have.empty()) have += ", ";
    have += vt.type + "/" + vt.unit;
  }
  *error = "profile has no sample type " + type + " (it has: " + have + ")";
  return -1;
}

std::string FormatValue(std::int64_t v, const std::string& unit,
                        bool show_plus) {
  const char* sign = v < 0 ? "-" : (show_plus && v > 0 ? "+" : "");
  // Magnitude as unsigned, so INT64_MIN is safe.
  const std::uint64_t mag = v < 0 ? 0 - static_cast<std::uint64_t>(v)
                                  : static_cast<std::uint64_t>(v);
  char buf[64];
  if (v == 0) return "0";
  if (unit != "bytes") {
    std::snprintf(buf, sizeof(buf), "%s%" PRIu64, sign, mag);
    return buf;
  }
  static constexpr const char* kUnits[] = {"B", "kB", "MB", "GB", "TB", "PB",
                                           "EB"};
  int u = 0;
  double scaled = static_cast<double>(mag);
  while (scaled >= 1024.0 && u < 6) {
    scaled /= 1024.0;
    ++u;
  }
  if (u == 0) {
    std::snprintf(buf, sizeof(buf), "%s%" PRIu64 "B", sign, mag);
    return buf;
  }
  std::snprintf(buf, sizeof(buf), "%.2f", scaled);
  std::string num = buf;
  if (num.size() > 3 && num.compare(num.size() - 3, 3, ".00") == 0) {
    num.resize(num.size() - 3);
  }
  return sign + num + kUnits[u];
}

std::string FormatPercent(std::int64_t part, std::int64_t total) {
  const double pct = total == 0 ? 0.0
                                : 100.0 * static_cast<double>(part) /
                                      static_cast<double>(total);
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f%%", pct);
  return buf;
}

std::vector<FoldedStack> FoldStacks(const Profile& profile, int value_index) {
  std::map<std::vector<std::string>, std::int64_t> merged;
  for (const Sample& s : profile.samples) {
    const std::int64_t v = s.values[static_cast<std::size_t>(value_index)];
    if (v == 0) continue;
    std::vector<std::string> frames = SampleFrames(profile, s);
    std::reverse(frames.begin(), frames.end());
    std::int64_t& slot = merged[std::move(frames)];
    slot = SaturatingAdd(slot, v);
  }
  std::vector<FoldedStack> out;
  out.reserve(merged.size());
  for (auto& [frames, value] : merged) {
    if (value != 0) out.push_back(FoldedStack{frames, value});
  }
  return out;
}

void PrintFolded(std::ostream& out, const Profile& profile, int value_index) {
  for (const FoldedStack& s : FoldStacks(profile, value_index)) {
    std::string line;
    for (const std::string& f : s.frames) {
      if (!line.empty()) line += ';';
      for (char c : f) {
        line += c == ';' ? ':' : (c == '\n' || c == '\r' ? ' ' : c);
      }
    }
    out << line << ' ' << s.value << '\n';
  }
}

std::vector<TopRow> ComputeTop(const Profile& profile, int value_index,
                               bool sort_by_cum) {
  std::map<std::string, TopRow> rows;
  for (const Sample& s : profile.samples) {
    const std::int64_t v = s.values[static_cast<std::size_t>(value_index)];
    if (v == 0) continue;
    const std::vector<std::string> frames = SampleFrames(profile, s);
    TopRow& leaf = rows[frames.front()];
    leaf.flat = SaturatingAdd(leaf.flat, v);
    std::set<std::string> seen;  // recursion counts once per stack
    for (const std::string& f : frames) {
      if (!seen.insert(f).second) continue;
      TopRow& r = rows[f];
      r.cum = SaturatingAdd(r.cum, v);
    }
  }
  std::vector<TopRow> out;
  for (auto& [name, row] : rows) {
    row.name = name;
    if (row.flat != 0 || row.cum != 0) out.push_back(row);
  }
  std::sort(out.begin(), out.end(), [&](const TopRow& a, const TopRow& b) {
    if (sort_by_cum) {
      return std::tie(b.cum, b.flat, a.name) < std::tie(a.cum, a.flat, b.name);
    }
    return std::tie(b.flat, b.cum, a.name) < std::tie(a.flat, a.cum, b.name);
  });
  return out;
}

void PrintTop(std::ostream& out, const Profile& profile, int value_index,
              const TopOptions& options) {
  const ValueType& vt =
      profile.sample_types[static_cast<std::size_t>(value_index)];
  std::int64_t total = 0;
  for (const Sample& s : profile.samples) {
    total = SaturatingAdd(total, s.values[static_cast<std::size_t>(value_index)]);
  }
  const std::vector<TopRow> rows =
      ComputeTop(profile, value_index, options.sort_by_cum);
  const std::size_t shown =
      options.node_count <= 0
          ? rows.size()
          : std::min(rows.size(), static_cast<std::size_t>(options.node_count));
  std::int64_t shown_flat = 0;
  for (std::size_t i = 0; i < shown; ++i) {
    shown_flat = SaturatingAdd(shown_flat, rows[i].flat);
  }
  out << "Type: " << vt.type << '\n';
  out << "Showing top " << shown << " of " << rows.size()
      << " functions, accounting for " << FormatValue(shown_flat, vt.unit)
      << " (" << FormatPercent(shown_flat, total) << ") of "
      << FormatValue(total, vt.unit) << " total\n";
  out << PadLeft("flat", 10) << PadLeft("flat%", 8) << PadLeft("sum%", 8)
      << PadLeft("cum", 11) << PadLeft("cum%", 8) << "  function\n";
  std::int64_t sum = 0;
  for (std::size_t i = 0; i < shown; ++i) {
    const TopRow& r = rows[i];
    sum = SaturatingAdd(sum, r.flat);
    out << PadLeft(FormatValue(r.flat, vt.unit), 10)
        << PadLeft(FormatPercent(r.flat, total), 8)
        << PadLeft(FormatPercent(sum, total), 8)
        << PadLeft(FormatValue(r.cum, vt.unit), 11)
        << PadLeft(FormatPercent(r.cum, total), 8) << "  " << r.name << '\n';
  }
}

bool ComputeDiff(const Profile& a, const Profile& b, const DiffOptions& options,
                 DiffResult* result, std::string* error) {
  struct Side {
    const Profile* p;
    const char* name;
    int objects;
    int bytes;
  };
  Side sides[2] = {{&a, "A", -1, -1}, {&b, "B", -1, -1}};
  for (Side& s : sides) {
    std::string e;
    s.objects = FindSampleType(*s.p, options.objects_type, &e);
    if (s.objects >= 0) s.bytes = FindSampleType(*s.p, options.bytes_type, &e);
    if (s.objects < 0 || s.bytes < 0) {
      *error = std::string("profile ") + s.name + ": " + e;
      return false;
    }
  }
  result->bytes_unit =
      b.sample_types[static_cast<std::size_t>(sides[1].bytes)].unit;

  struct Acc {
    std::int64_t objects[2] = {0, 0};
    std::int64_t bytes[2] = {0, 0};
  };
  std::map<std::vector<std::string>, Acc> sites;
  std::int64_t total_objects[2] = {0, 0};
  std::int64_t total_bytes[2] = {0, 0};
  for (int side = 0; side < 2; ++side) {
    const Side& s = sides[side];
    for (const Sample& sample : s.p->samples) {
      const std::int64_t objects =
          sample.values[static_cast<std::size_t>(s.objects)];
      const std::int64_t bytes = sample.values[static_cast<std::size_t>(s.bytes)];
      total_objects[side] = SaturatingAdd(total_objects[side], objects);
      total_bytes[side] = SaturatingAdd(total_bytes[side], bytes);
      if (objects == 0 && bytes == 0) continue;
      std::vector<std::string> frames = SampleFrames(*s.p, sample);
      if (options.by_function) frames.resize(1);
      Acc& acc = sites[std::move(frames)];
      acc.objects[side] = SaturatingAdd(acc.objects[side], objects);
      acc.bytes[side] = SaturatingAdd(acc.bytes[side], bytes);
    }
  }
  result->objects_a = total_objects[0];
  result->bytes_a = total_bytes[0];
  result->objects_b = total_objects[1];
  result->bytes_b = total_bytes[1];
  result->rows.clear();
  for (const auto& [frames, acc] : sites) {
    DiffRow row;
    row.frames = frames;
    row.delta_objects = SaturatingSub(acc.objects[1], acc.objects[0]);
    row.delta_bytes = SaturatingSub(acc.bytes[1], acc.bytes[0]);
    row.objects_b = acc.objects[1];
    row.bytes_b = acc.bytes[1];
    if (row.delta_objects != 0 || row.delta_bytes != 0) {
      result->rows.push_back(std::move(row));
    }
  }
  std::sort(result->rows.begin(), result->rows.end(),
            [](const DiffRow& x, const DiffRow& y) {
              return std::tie(y.delta_bytes, y.delta_objects, x.frames) <
                     std::tie(x.delta_bytes, x.delta_objects, y.frames);
            });
  return true;
}

void PrintDiff(std::ostream& out, const DiffResult& r,
               const DiffOptions& options) {
  const std::string& unit = r.bytes_unit;
  out << "Total " << options.bytes_type << ": " << FormatValue(r.bytes_a, unit)
      << " -> " << FormatValue(r.bytes_b, unit) << " ("
      << FormatValue(SaturatingSub(r.bytes_b, r.bytes_a), unit, true) << ")\n";
  out << "Total " << options.objects_type << ": "
      << FormatValue(r.objects_a, "count") << " -> "
      << FormatValue(r.objects_b, "count") << " ("
      << FormatValue(SaturatingSub(r.objects_b, r.objects_a), "count", true) << ")\n";
  const std::size_t shown =
      options.node_count <= 0
          ? r.rows.size()
          : std::min(r.rows.size(), static_cast<std::size_t>(options.node_count));
  const char* what = options.by_function ? "functions" : "sites";
  out << "Showing " << shown << " of " << r.rows.size() << " changed " << what
      << ", largest growth first\n";
  if (shown == 0) return;
  out << PadLeft("delta_bytes", 12) << PadLeft("delta_objs", 12)
      << PadLeft("bytes(B)", 12) << PadLeft("objs(B)", 10) << "  "
      << (options.by_function ? "function" : "site (leaf <- callers)") << '\n';
  for (std::size_t i = 0; i < shown; ++i) {
    const DiffRow& row = r.rows[i];
    out << PadLeft(FormatValue(row.delta_bytes, unit, true), 12)
        << PadLeft(FormatValue(row.delta_objects, "count", true), 12)
        << PadLeft(FormatValue(row.bytes_b, unit), 12)
        << PadLeft(FormatValue(row.objects_b, "count"), 10) << "  "
        << JoinLeafFirst(row.frames, " <- ") << '\n';
  }
}

}  // namespace strata::heapdump
