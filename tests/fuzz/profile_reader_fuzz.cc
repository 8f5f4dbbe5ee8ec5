// tests/fuzz/profile_reader_fuzz.cc: the heap profile reader
// (tools/heapdump, DecodeProfile) on arbitrary bytes, raw or gzipped: it
// must fail with a message or succeed with a profile whose references all
// resolve -- never crash, hang or read out of bounds.
#include <cstdint>
#include <string>
#include <string_view>

#include "tests/fuzz/fuzz_input.h"
#include "tools/heapdump/profile_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace strata::heapdump;
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  Profile profile;
  std::string error;
  if (!DecodeProfile(bytes, &profile, &error)) {
    FUZZ_CHECK(!error.empty());
    return 0;
  }
  for (const Sample& s : profile.samples) {
    FUZZ_CHECK(s.values.size() == profile.sample_types.size());
    for (std::uint64_t id : s.location_ids) FUZZ_CHECK(profile.FindLocation(id) != nullptr);
  }
  for (const Location& l : profile.locations) {
    for (const Line& line : l.lines) FUZZ_CHECK(line.function_id == 0 || profile.FindFunction(line.function_id) != nullptr);
    FUZZ_CHECK(l.mapping_id == 0 || profile.FindMapping(l.mapping_id) != nullptr);
  }
  (void)profile.SampleTypeIndex("inuse_space");
  // Gunzip on its own, with a small cap (a decompression bomb must stop).
  if (IsGzip(bytes)) {
    std::string out;
    std::string err;
    if (!Gunzip(bytes, &out, &err, 1 << 20)) FUZZ_CHECK(!err.empty());
    FUZZ_CHECK(out.size() <= (1 << 20));
  }
  return 0;
}
