// tools/heapdump/profile_reader.h: reads a pprof profile (profile.proto,
// gzipped or raw) into plain C++ structs.
//
// Purpose: the decoding half of tools/heapdump, and the reader the writer's
// tests (tests/profile) decode with. It runs in a tool process, so it uses
// the standard library freely; it never trusts its input.
//
// Contract:
//   - DecodeProfile accepts gzip (detected by its magic bytes; concatenated
//     members are read too) or a raw protobuf. It fails with a message,
//     never a crash, on: truncated or corrupt gzip, truncated or malformed
//     protobuf, non-profile data, out-of-range string indices, dangling or
//     duplicate ids, samples whose value count differs from the sample
//     types. Decompressed size is capped at kMaxDecodedBytes.
//   - On success every string index is resolved to its string, location
//     and function references are checked, and the Find* helpers work.
//     Packed and unpacked encodings of repeated scalars are both accepted;
//     unknown fields are skipped.
//   - Profiles with zero samples decode successfully (callers decide).
//
// Thread-safety: the functions are reentrant; a Profile is a value type.
#ifndef STRATA_TOOLS_HEAPDUMP_PROFILE_READER_H_
#define STRATA_TOOLS_HEAPDUMP_PROFILE_READER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace strata::heapdump {

// 1 GiB: far above any heap profile, low enough to stop a zip bomb.
inline constexpr std::size_t kMaxDecodedBytes = std::size_t{1} << 30;

struct ValueType {
  std::string type;
  std::string unit;
};

struct Label {
  std::string key;
  std::string str;
  std::int64_t num = 0;
  std::string num_unit;
};

struct Sample {
  std::vector<std::uint64_t> location_ids;  // leaf first
  std::vector<std::int64_t> values;         // one per sample type
  std::vector<Label> labels;
};

struct Mapping {
  std::uint64_t id = 0;
  std::uint64_t memory_start = 0;
  std::uint64_t memory_limit = 0;
  std::uint64_t file_offset = 0;
  std::string filename;
  std::string build_id;
  bool has_functions = false;
  bool has_filenames = false;
  bool has_line_numbers = false;
  bool has_inline_frames = false;
};

struct Line {
  std::uint64_t function_id = 0;
  std::int64_t line = 0;
};

struct Location {
  std::uint64_t id = 0;
  std::uint64_t mapping_id = 0;
  std::uint64_t address = 0;
  // Innermost first: the last entry is the caller the others were
  // inlined into.
  std::vector<Line> lines;
  bool is_folded = false;
};

struct Function {
  std::uint64_t id = 0;
  std::string name;
  std::string system_name;
  std::string filename;
  std::int64_t start_line = 0;
};

struct Profile {
  std::vector<ValueType> sample_types;
  std::vector<Sample> samples;
  std::vector<Mapping> mappings;
  std::vector<Location> locations;
  std::vector<Function> functions;
  std::vector<std::string> string_table;
  std::string drop_frames;
  std::string keep_frames;
  std::int64_t time_nanos = 0;
  std::int64_t duration_nanos = 0;
  ValueType period_type;
  std::int64_t period = 0;
  std::vector<std::string> comments;
  std::string default_sample_type;

  // nullptr when absent.
  const Location* FindLocation(std::uint64_t id) const;
  const Function* FindFunction(std::uint64_t id) const;
  const Mapping* FindMapping(std::uint64_t id) const;
  // Index of the sample type named `type` (e.g. "inuse_space"), or -1.
  int SampleTypeIndex(std::string_view type) const;

  // id -> index into the vectors above; filled by DecodeProfile.
  std::unordered_map<std::uint64_t, std::size_t> location_index;
  std::unordered_map<std::uint64_t, std::size_t> function_index;
  std::unordered_map<std::uint64_t, std::size_t> mapping_index;
};

// True when `data` starts with the gzip magic bytes.
bool IsGzip(std::string_view data);

// Decompresses a gzip stream (one or more members), producing at most
// `max_bytes`. On failure returns false and sets `error` ("truncated gzip
// stream ...", "corrupt gzip stream ...", "decompressed size exceeds ...").
bool Gunzip(std::string_view data, std::string* out, std::string* error,
            std::size_t max_bytes = kMaxDecodedBytes);

// Decodes a profile from bytes (gzipped or raw). On failure returns false
// and sets `error` to a one-line description without the file name.
bool DecodeProfile(std::string_view data, Profile* out, std::string* error);

// Reads and decodes `path`. Errors: "cannot open: <strerror>", "is a
// directory", "read error", plus DecodeProfile's.
bool ReadProfileFile(const std::string& path, Profile* out,
                     std::string* error);

// Low-level protobuf wire reader over a byte range; exposed for tests.
// Every method fails (returns false) instead of reading past the end.
class WireReader {
 public:
  explicit WireReader(std::string_view data) : data_(data) {}

  bool done() const { return pos_ >= data_.size(); }
  std::size_t position() const { return pos_; }

  bool ReadVarint(std::uint64_t* v);
  // Reads a tag; `field` is the field number, `wire_type` 0..5. Fails on
  // field number 0 and on wire types 3, 4 (groups), 6, 7.
  bool ReadTag(std::uint32_t* field, int* wire_type);
  // Reads a length-delimited payload.
  bool ReadBytes(std::string_view* bytes);
  // Skips a value of `wire_type`.
  bool Skip(int wire_type);

 private:
  std::string_view data_;
  std::size_t pos_ = 0;
};

}  // namespace strata::heapdump

#endif  // STRATA_TOOLS_HEAPDUMP_PROFILE_READER_H_
