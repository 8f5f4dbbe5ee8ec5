// tools/heapdump/profile_reader.cc: see profile_reader.h.
#include "tools/heapdump/profile_reader.h"

#include <errno.h>
#include <sys/stat.h>
#include <zlib.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

namespace strata::heapdump {
namespace {

constexpr std::size_t kInflateChunk = 256 << 10;
// How many leading bytes the text-file heuristic looks at.
constexpr std::size_t kTextSniffBytes = 512;

// Field numbers of perftools.profiles (pprof's proto/profile.proto).
enum ProfileField : std::uint32_t {
  kSampleType = 1,
  kSample = 2,
  kMapping = 3,
  kLocation = 4,
  kFunction = 5,
  kStringTable = 6,
  kDropFrames = 7,
  kKeepFrames = 8,
  kTimeNanos = 9,
  kDurationNanos = 10,
  kPeriodType = 11,
  kPeriod = 12,
  kComment = 13,
  kDefaultSampleType = 14,
};

constexpr int kVarint = 0;
constexpr int kFixed64 = 1;
constexpr int kLengthDelimited = 2;
constexpr int kFixed32 = 5;

// ---------------------------------------------------------------------------
// Raw (index-based) messages, resolved after the whole profile is read.

struct RawValueType {
  std::int64_t type = 0;
  std::int64_t unit = 0;
};
struct RawLabel {
  std::int64_t key = 0;
  std::int64_t str = 0;
  std::int64_t num = 0;
  std::int64_t num_unit = 0;
};
struct RawSample {
  std::vector<std::uint64_t> location_ids;
  std::vector<std::int64_t> values;
  std::vector<RawLabel> labels;
};
struct RawMapping {
  Mapping m;
  std::int64_t filename = 0;
  std::int64_t build_id = 0;
};
struct RawFunction {
  std::uint64_t id = 0;
  std::int64_t name = 0;
  std::int64_t system_name = 0;
  std::int64_t filename = 0;
  std::int64_t start_line = 0;
};
struct RawProfile {
  std::vector<RawValueType> sample_types;
  std::vector<RawSample> samples;
  std::vector<RawMapping> mappings;
  std::vector<Location> locations;
  std::vector<RawFunction> functions;
  std::vector<std::string_view> strings;
  std::int64_t drop_frames = 0;
  std::int64_t keep_frames = 0;
  std::int64_t time_nanos = 0;
  std::int64_t duration_nanos = 0;
  RawValueType period_type;
  std::int64_t period = 0;
  std::vector<std::int64_t> comments;
  std::int64_t default_sample_type = 0;
};

// A decode failure: where and why. `truncated` marks running out of data.
struct DecodeError {
  std::string what;
  bool truncated = false;
};

// Parses one message's fields, dispatching to `on_field(field, wire_type,
// reader)`, which must consume the value (or return false).
template <typename OnField>
bool ParseFields(std::string_view data, const char* message, DecodeError* err,
                 OnField&& on_field) {
  WireReader r(data);
  while (!r.done()) {
    const std::size_t at = r.position();
    std::uint32_t field = 0;
    int wire_type = 0;
    if (!r.ReadTag(&field, &wire_type)) {
      err->what = std::string("invalid field tag in ") + message + " at byte " +
                  std::to_string(at);
      err->truncated = r.position() >= data.size();
      return false;
    }
    if (!on_field(field, wire_type, r)) {
      if (err->what.empty()) {
        err->what = std::string("bad field ") + std::to_string(field) +
                    " (wire type " + std::to_string(wire_type) + ") in " +
                    message + " at byte " + std::to_string(at);
        // Ran off the end of the data while reading the value?
        err->truncated = r.position() >= data.size();
      }
      return false;
    }
  }
  return true;
}

bool ReadInt64(WireReader& r, int wire_type, std::int64_t* out) {
  if (wire_type != kVarint) return false;
  std::uint64_t v;
  if (!r.ReadVarint(&v)) return false;
  *out = static_cast<std::int64_t>(v);
  return true;
}

bool ReadUint64(WireReader& r, int wire_type, std::uint64_t* out) {
  if (wire_type != kVarint) return false;
  return r.ReadVarint(out);
}

bool ReadBool(WireReader& r, int wire_type, bool* out) {
  std::uint64_t v;
  if (!ReadUint64(r, wire_type, &v)) return false;
  *out = v != 0;
  return true;
}

// A repeated varint field, packed (length-delimited) or not.
template <typename T>
bool ReadRepeated(WireReader& r, int wire_type, std::vector<T>* out) {
  if (wire_type == kVarint) {
    std::uint64_t v;
    if (!r.ReadVarint(&v)) return false;
    out->push_back(static_cast<T>(v));
    return true;
  }
  if (wire_type != kLengthDelimited) return false;
  std::string_view payload;
  if (!r.ReadBytes(&payload)) return false;
  WireReader p(payload);
  while (!p.done()) {
    std::uint64_t v;
    if (!p.ReadVarint(&v)) return false;
    out->push_back(static_cast<T>(v));
  }
  return true;
}

bool ReadMessage(WireReader& r, int wire_type, std::string_view* out) {
  return wire_type == kLengthDelimited && r.ReadBytes(out);
}

bool ParseValueType(std::string_view data, RawValueType* vt, DecodeError* err) {
  return ParseFields(data, "ValueType", err,
                     [&](std::uint32_t f, int wt, WireReader& r) {
                       switch (f) {
                         case 1: return ReadInt64(r, wt, &vt->type);
                         case 2: return ReadInt64(r, wt, &vt->unit);
                         default: return r.Skip(wt);
                       }
                     });
}

bool ParseLabel(std::string_view data, RawLabel* l, DecodeError* err) {
  return ParseFields(data, "Label", err,
                     [&](std::uint32_t f, int wt, WireReader& r) {
                       switch (f) {
                         case 1: return ReadInt64(r, wt, &l->key);
                         case 2: return ReadInt64(r, wt, &l->str);
                         case 3: return ReadInt64(r, wt, &l->num);
                         case 4: return ReadInt64(r, wt, &l->num_unit);
                         default: return r.Skip(wt);
                       }
                     });
}

bool ParseSample(std::string_view data, RawSample* s, DecodeError* err) {
  return ParseFields(
      data, "Sample", err, [&](std::uint32_t f, int wt, WireReader& r) {
        switch (f) {
          case 1: return ReadRepeated(r, wt, &s->location_ids);
          case 2: return ReadRepeated(r, wt, &s->values);
          case 3: {
            std::string_view m;
            if (!ReadMessage(r, wt, &m)) return false;
            s->labels.emplace_back();
            return ParseLabel(m, &s->labels.back(), err);
          }
          default: return r.Skip(wt);
        }
      });
}

bool ParseMapping(std::string_view data, RawMapping* m, DecodeError* err) {
  return ParseFields(
      data, "Mapping", err, [&](std::uint32_t f, int wt, WireReader& r) {
        switch (f) {
          case 1: return ReadUint64(r, wt, &m->m.id);
          case 2: return ReadUint64(r, wt, &m->m.memory_start);
          case 3: return ReadUint64(r, wt, &m->m.memory_limit);
          case 4: return ReadUint64(r, wt, &m->m.file_offset);
          case 5: return ReadInt64(r, wt, &m->filename);
          case 6: return ReadInt64(r, wt, &m->build_id);
          case 7: return ReadBool(r, wt, &m->m.has_functions);
          case 8: return ReadBool(r, wt, &m->m.has_filenames);
          case 9: return ReadBool(r, wt, &m->m.has_line_numbers);
          case 10: return ReadBool(r, wt, &m->m.has_inline_frames);
          default: return r.Skip(wt);
        }
      });
}

bool ParseLine(std::string_view data, Line* l, DecodeError* err) {
  return ParseFields(data, "Line", err,
                     [&](std::uint32_t f, int wt, WireReader& r) {
                       switch (f) {
                         case 1: return ReadUint64(r, wt, &l->function_id);
                         case 2: return ReadInt64(r, wt, &l->line);
                         default: return r.Skip(wt);
                       }
                     });
}

bool ParseLocation(std::string_view data, Location* l, DecodeError* err) {
  return ParseFields(
      data, "Location", err, [&](std::uint32_t f, int wt, WireReader& r) {
        switch (f) {
          case 1: return ReadUint64(r, wt, &l->id);
          case 2: return ReadUint64(r, wt, &l->mapping_id);
          case 3: return ReadUint64(r, wt, &l->address);
          case 4: {
            std::string_view m;
            if (!ReadMessage(r, wt, &m)) return false;
            l->lines.emplace_back();
            return ParseLine(m, &l->lines.back(), err);
          }
          case 5: return ReadBool(r, wt, &l->is_folded);
          default: return r.Skip(wt);
        }
      });
}

bool ParseFunction(std::string_view data, RawFunction* fn, DecodeError* err) {
  return ParseFields(
      data, "Function", err, [&](std::uint32_t f, int wt, WireReader& r) {
        switch (f) {
          case 1: return ReadUint64(r, wt, &fn->id);
          case 2: return ReadInt64(r, wt, &fn->name);
          case 3: return ReadInt64(r, wt, &fn->system_name);
          case 4: return ReadInt64(r, wt, &fn->filename);
          case 5: return ReadInt64(r, wt, &fn->start_line);
          default: return r.Skip(wt);
        }
      });
}

bool ParseRawProfile(std::string_view data, RawProfile* p, DecodeError* err) {
  return ParseFields(
      data, "Profile", err, [&](std::uint32_t f, int wt, WireReader& r) {
        std::string_view m;
        switch (f) {
          case kSampleType:
            if (!ReadMessage(r, wt, &m)) return false;
            p->sample_types.emplace_back();
            return ParseValueType(m, &p->sample_types.back(), err);
          case kSample:
            if (!ReadMessage(r, wt, &m)) return false;
            p->samples.emplace_back();
            return ParseSample(m, &p->samples.back(), err);
          case kMapping:
            if (!ReadMessage(r, wt, &m)) return false;
            p->mappings.emplace_back();
            return ParseMapping(m, &p->mappings.back(), err);
          case kLocation:
            if (!ReadMessage(r, wt, &m)) return false;
            p->locations.emplace_back();
            return ParseLocation(m, &p->locations.back(), err);
          case kFunction:
            if (!ReadMessage(r, wt, &m)) return false;
            p->functions.emplace_back();
            return ParseFunction(m, &p->functions.back(), err);
          case kStringTable:
            if (!ReadMessage(r, wt, &m)) return false;
            p->strings.push_back(m);
            return true;
          case kDropFrames: return ReadInt64(r, wt, &p->drop_frames);
          case kKeepFrames: return ReadInt64(r, wt, &p->keep_frames);
          case kTimeNanos: return ReadInt64(r, wt, &p->time_nanos);
          case kDurationNanos: return ReadInt64(r, wt, &p->duration_nanos);
          case kPeriodType:
            if (!ReadMessage(r, wt, &m)) return false;
            return ParseValueType(m, &p->period_type, err);
          case kPeriod: return ReadInt64(r, wt, &p->period);
          case kComment: return ReadRepeated(r, wt, &p->comments);
          case kDefaultSampleType:
            return ReadInt64(r, wt, &p->default_sample_type);
          default: return r.Skip(wt);
        }
      });
}

// ---------------------------------------------------------------------------
// Resolution and validation.

class Resolver {
 public:
  explicit Resolver(const RawProfile& raw) : raw_(raw) {}

  bool Str(std::int64_t index, std::string* out) {
    if (index < 0 || static_cast<std::uint64_t>(index) >= raw_.strings.size()) {
      if (error_.empty()) {
        error_ = "malformed profile: string index " + std::to_string(index) +
                 " out of range (string table has " +
                 std::to_string(raw_.strings.size()) + " entries)";
      }
      return false;
    }
    *out = std::string(raw_.strings[static_cast<std::size_t>(index)]);
    return true;
  }
  bool Resolve(const RawValueType& in, ValueType* out) {
    return Str(in.type, &out->type) && Str(in.unit, &out->unit);
  }
  const std::string& error() const { return error_; }
  void set_error(std::string e) {
    if (error_.empty()) error_ = std::move(e);
  }

 private:
  const RawProfile& raw_;
  std::string error_;
};

bool ResolveProfile(const RawProfile& raw, Profile* out, std::string* error) {
  if (raw.strings.empty()) {
    *error = "not a pprof profile: it has no string table";
    return false;
  }
  if (!raw.strings[0].empty()) {
    *error = "not a pprof profile: string_table[0] is not the empty string";
    return false;
  }
  if (raw.sample_types.empty()) {
    *error = "not a pprof profile: it declares no sample types";
    return false;
  }
  Resolver res(raw);
  Profile p;
  p.string_table.reserve(raw.strings.size());
  for (std::string_view s : raw.strings) p.string_table.emplace_back(s);

  for (const RawValueType& vt : raw.sample_types) {
    p.sample_types.emplace_back();
    res.Resolve(vt, &p.sample_types.back());
  }
  res.Str(raw.drop_frames, &p.drop_frames);
  res.Str(raw.keep_frames, &p.keep_frames);
  res.Resolve(raw.period_type, &p.period_type);
  res.Str(raw.default_sample_type, &p.default_sample_type);
  for (std::int64_t c : raw.comments) {
    p.comments.emplace_back();
    res.Str(c, &p.comments.back());
  }
  p.time_nanos = raw.time_nanos;
  p.duration_nanos = raw.duration_nanos;
  p.period = raw.period;

  for (const RawMapping& rm : raw.mappings) {
    Mapping m = rm.m;
    res.Str(rm.filename, &m.filename);
    res.Str(rm.build_id, &m.build_id);
    if (m.id == 0) res.set_error("malformed profile: mapping with id 0");
    if (!p.mapping_index.emplace(m.id, p.mappings.size()).second) {
      res.set_error("malformed profile: duplicate mapping id " +
                    std::to_string(m.id));
    }
    p.mappings.push_back(std::move(m));
  }
  for (const RawFunction& rf : raw.functions) {
    Function f;
    f.id = rf.id;
    res.Str(rf.name, &f.name);
    res.Str(rf.system_name, &f.system_name);
    res.Str(rf.filename, &f.filename);
    f.start_line = rf.start_line;
    if (f.id == 0) res.set_error("malformed profile: function with id 0");
    if (!p.function_index.emplace(f.id, p.functions.size()).second) {
      res.set_error("malformed profile: duplicate function id " +
                    std::to_string(f.id));
    }
    p.functions.push_back(std::move(f));
  }
  for (const Location& l : raw.locations) {
    if (l.id == 0) res.set_error("malformed profile: location with id 0");
    if (!p.location_index.emplace(l.id, p.locations.size()).second) {
      res.set_error("malformed profile: duplicate location id " +
                    std::to_string(l.id));
    }
    if (l.mapping_id != 0 && p.mapping_index.count(l.mapping_id) == 0) {
      res.set_error("malformed profile: location " + std::to_string(l.id) +
                    " references missing mapping " +
                    std::to_string(l.mapping_id));
    }
    for (const Line& line : l.lines) {
      if (p.function_index.count(line.function_id) == 0) {
        res.set_error("malformed profile: location " + std::to_string(l.id) +
                      " references missing function " +
                      std::to_string(line.function_id));
      }
    }
    p.locations.push_back(l);
  }
  for (std::size_t i = 0; i < raw.samples.size(); ++i) {
    const RawSample& rs = raw.samples[i];
    if (rs.values.size() != p.sample_types.size()) {
      res.set_error("malformed profile: sample " + std::to_string(i) +
                    " has " + std::to_string(rs.values.size()) +
                    " values for " + std::to_string(p.sample_types.size()) +
                    " sample types");
    }
    Sample s;
    s.location_ids = rs.location_ids;
    s.values = rs.values;
    for (std::uint64_t id : s.location_ids) {
      if (p.location_index.count(id) == 0) {
        res.set_error("malformed profile: sample " + std::to_string(i) +
                      " references missing location " + std::to_string(id));
      }
    }
    for (const RawLabel& rl : rs.labels) {
      Label l;
      res.Str(rl.key, &l.key);
      res.Str(rl.str, &l.str);
      res.Str(rl.num_unit, &l.num_unit);
      l.num = rl.num;
      s.labels.push_back(std::move(l));
    }
    p.samples.push_back(std::move(s));
    if (!res.error().empty()) break;  // one message is enough
  }
  if (!res.error().empty()) {
    *error = res.error();
    return false;
  }
  *out = std::move(p);
  return true;
}

bool StartsWith(std::string_view data, std::string_view prefix) {
  return data.substr(0, prefix.size()) == prefix;
}

bool LooksLikeText(std::string_view data) {
  const std::size_t n = data.size() < kTextSniffBytes ? data.size()
                                                      : kTextSniffBytes;
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(data[i]);
    if (c == '\t' || c == '\n' || c == '\r') continue;
    if (c < 0x20 || c == 0x7f) return false;
  }
  return n > 0;
}

// Names well-known non-profile formats, or returns "".
std::string SniffForeignFormat(std::string_view data) {
  if (StartsWith(data, "\x89PNG\r\n\x1a\n")) return "a PNG image";
  if (StartsWith(data, "GIF8")) return "a GIF image";
  if (StartsWith(data, "\xff\xd8\xff")) return "a JPEG image";
  if (StartsWith(data, "%PDF")) return "a PDF document";
  if (StartsWith(data, "\x7f" "ELF")) return "an ELF binary";
  if (StartsWith(data, "PK\x03\x04")) return "a zip archive";
  if (StartsWith(data, "BZh")) return "a bzip2 stream";
  if (StartsWith(data, "\xfd" "7zXZ")) return "an xz stream";
  if (StartsWith(data, "\x28\xb5\x2f\xfd")) return "a zstd stream";
  if (StartsWith(data, "<?xml") || StartsWith(data, "<svg")) {
    return "an XML/SVG document";
  }
  return "";
}

}  // namespace

// ---------------------------------------------------------------------------
// WireReader

bool WireReader::ReadVarint(std::uint64_t* v) {
  std::uint64_t result = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (pos_ >= data_.size()) return false;
    const auto b = static_cast<std::uint8_t>(data_[pos_++]);
    // The 10th byte may only contribute bit 63.
    if (shift == 63 && b > 1) return false;
    result |= static_cast<std::uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      *v = result;
      return true;
    }
  }
  return false;  // more than 10 bytes
}

bool WireReader::ReadTag(std::uint32_t* field, int* wire_type) {
  std::uint64_t tag;
  if (!ReadVarint(&tag)) return false;
  const std::uint64_t f = tag >> 3;
  const int wt = static_cast<int>(tag & 7);
  if (f == 0 || f > 0x1fffffff) return false;
  if (wt != kVarint && wt != kFixed64 && wt != kLengthDelimited &&
      wt != kFixed32) {
    return false;
  }
  *field = static_cast<std::uint32_t>(f);
  *wire_type = wt;
  return true;
}

bool WireReader::ReadBytes(std::string_view* bytes) {
  std::uint64_t len;
  if (!ReadVarint(&len)) return false;
  if (len > data_.size() - pos_) {
    pos_ = data_.size();  // ran off the end: mark as truncated
    return false;
  }
  *bytes = data_.substr(pos_, static_cast<std::size_t>(len));
  pos_ += static_cast<std::size_t>(len);
  return true;
}

bool WireReader::Skip(int wire_type) {
  switch (wire_type) {
    case kVarint: {
      std::uint64_t v;
      return ReadVarint(&v);
    }
    case kFixed64:
      if (data_.size() - pos_ < 8) {
        pos_ = data_.size();
        return false;
      }
      pos_ += 8;
      return true;
    case kLengthDelimited: {
      std::string_view b;
      return ReadBytes(&b);
    }
    case kFixed32:
      if (data_.size() - pos_ < 4) {
        pos_ = data_.size();
        return false;
      }
      pos_ += 4;
      return true;
    default:
      return false;
  }
}

// ---------------------------------------------------------------------------
// Profile lookups

const Location* Profile::FindLocation(std::uint64_t id) const {
  auto it = location_index.find(id);
  return it == location_index.end() ? nullptr : &locations[it->second];
}

const Function* Profile::FindFunction(std::uint64_t id) const {
  auto it = function_index.find(id);
  return it == function_index.end() ? nullptr : &functions[it->second];
}

const Mapping* Profile::FindMapping(std::uint64_t id) const {
  auto it = mapping_index.find(id);
  return it == mapping_index.end() ? nullptr : &mappings[it->second];
}

int Profile::SampleTypeIndex(std::string_view type) const {
  for (std::size_t i = 0; i < sample_types.size(); ++i) {
    if (sample_types[i].type == type) return static_cast<int>(i);
  }
  return -1;
}

// ---------------------------------------------------------------------------
// Entry points

bool IsGzip(std::string_view data) {
  return data.size() >= 2 && static_cast<std::uint8_t>(data[0]) == 0x1f &&
         static_cast<std::uint8_t>(data[1]) == 0x8b;
}

bool Gunzip(std::string_view data, std::string* out, std::string* error,
            std::size_t max_bytes) {
  out->clear();
  z_stream zs;
  std::memset(&zs, 0, sizeof(zs));
  // 15 window bits + 16: gzip wrapper only.
  if (inflateInit2(&zs, 15 + 16) != Z_OK) {
    *error = "cannot initialise zlib";
    return false;
  }
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());  // callers cap at 2 GiB
  std::string chunk(kInflateChunk, '\0');
  bool ok = false;
  for (;;) {
    zs.next_out = reinterpret_cast<Bytef*>(chunk.data());
    zs.avail_out = static_cast<uInt>(chunk.size());
    const int rc = inflate(&zs, Z_NO_FLUSH);
    out->append(chunk.data(), chunk.size() - zs.avail_out);
    if (out->size() > max_bytes) {
      *error = "decompressed size exceeds " + std::to_string(max_bytes >> 20) +
               " MiB; refusing";
      break;
    }
    if (rc == Z_STREAM_END) {
      // Another gzip member may follow (concatenated .gz files).
      if (zs.avail_in >= 2 && zs.next_in[0] == 0x1f && zs.next_in[1] == 0x8b) {
        inflateReset(&zs);
        continue;
      }
      ok = true;  // anything else after the member is ignored, as gzip does
      break;
    }
    if (rc == Z_OK) continue;
    if (rc == Z_BUF_ERROR && zs.avail_in == 0) {
      *error = "truncated gzip stream (the file ends before the compressed "
               "data does)";
      break;
    }
    if (rc == Z_DATA_ERROR || rc == Z_NEED_DICT) {
      *error = std::string("corrupt gzip stream (") +
               (zs.msg != nullptr ? zs.msg : "invalid data") + ")";
      break;
    }
    if (rc == Z_MEM_ERROR) {
      *error = "out of memory while decompressing";
      break;
    }
    *error = "corrupt gzip stream (zlib error " + std::to_string(rc) + ")";
    break;
  }
  inflateEnd(&zs);
  return ok;
}

bool DecodeProfile(std::string_view data, Profile* out, std::string* error) {
  if (data.empty()) {
    *error = "empty file (0 bytes), not a pprof profile";
    return false;
  }
  std::string inflated;
  if (IsGzip(data)) {
    if (data.size() > (std::size_t{1} << 31)) {
      *error = "file too large (over 2 GiB)";
      return false;
    }
    if (!Gunzip(data, &inflated, error)) return false;
    if (inflated.empty()) {
      *error = "the gzip stream holds no data, not a pprof profile";
      return false;
    }
    data = inflated;
  }
  if (std::string kind = SniffForeignFormat(data); !kind.empty()) {
    *error = "not a pprof profile (looks like " + kind + ")";
    return false;
  }
  if (StartsWith(data, "heap profile:") || StartsWith(data, "heap_v2/") ||
      StartsWith(data, "--- heapz")) {
    *error = "legacy gperftools text heap profile, not profile.proto; "
             "convert it first with `pprof -proto`";
    return false;
  }
  if (LooksLikeText(data)) {
    *error = "not a pprof profile (looks like a text file)";
    return false;
  }
  RawProfile raw;
  DecodeError err;
  if (!ParseRawProfile(data, &raw, &err)) {
    if (err.truncated) {
      *error = "truncated or corrupt profile: " + err.what +
               " (the data ends inside a field)";
    } else {
      *error = "not a pprof profile (protobuf decoding failed: " + err.what +
               ")";
    }
    return false;
  }
  return ResolveProfile(raw, out, error);
}

bool ReadProfileFile(const std::string& path, Profile* out,
                     std::string* error) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    *error = std::string("cannot open: ") + std::strerror(errno);
    return false;
  }
  if (S_ISDIR(st.st_mode)) {
    *error = "is a directory, not a profile";
    return false;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = std::string("cannot open: ") + std::strerror(errno);
    return false;
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) {
    *error = "read error";
    return false;
  }
  const std::string data = buf.str();
  return DecodeProfile(data, out, error);
}

}  // namespace strata::heapdump
