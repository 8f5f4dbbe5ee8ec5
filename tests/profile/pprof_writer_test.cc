// tests/profile/pprof_writer_test.cc: the heap profile writer, read back
// with heapdump's profile reader.
#include "alloc/profile/pprof_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/debugging/symbolize.h"
#include "gtest/gtest.h"
#include "tools/heapdump/profile_reader.h"

namespace strata::profile {
namespace {

using heapdump::Profile;

std::string TempDir() {
  const char* d = std::getenv("TEST_TMPDIR");
  return d != nullptr ? d : "/tmp";
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Fake code addresses and the names our test symbolizer gives them.
const void* Pc(std::uintptr_t v) { return reinterpret_cast<const void*>(v); }

bool FakeSymbolizer(const void* pc, char* out, int out_size, void* arg) {
  const auto* names =
      static_cast<const std::map<std::uintptr_t, std::string>*>(arg);
  auto it = names->find(reinterpret_cast<std::uintptr_t>(pc));
  if (it == names->end()) return false;
  std::snprintf(out, static_cast<std::size_t>(out_size), "%s", it->second.c_str());
  return true;
}

struct Written {
  int rc;
  Profile profile;
  std::string bytes;
};

Written WriteAndRead(const std::vector<HeapSample>& samples,
                     const WriteOptions& opts, const std::string& name) {
  Written w;
  const std::string path = TempDir() + "/" + name;
  ArraySampleSource source(samples.data(), samples.size());
  w.rc = WriteHeapProfile(path.c_str(), source, opts);
  if (w.rc != 0) return w;
  w.bytes = ReadFile(path);
  std::string error;
  EXPECT_TRUE(heapdump::DecodeProfile(w.bytes, &w.profile, &error)) << error;
  return w;
}

// Function names of a sample's stack, leaf first.
std::vector<std::string> Names(const Profile& p, const heapdump::Sample& s) {
  std::vector<std::string> out;
  for (std::uint64_t id : s.location_ids) {
    const heapdump::Location* loc = p.FindLocation(id);
    EXPECT_NE(loc, nullptr);
    if (loc == nullptr || loc->lines.empty()) {
      out.push_back("?");
      continue;
    }
    const heapdump::Function* f = p.FindFunction(loc->lines[0].function_id);
    out.push_back(f != nullptr ? f->name : "?");
  }
  return out;
}

class PprofWriterTest : public ::testing::Test {
 protected:
  PprofWriterTest() {
    names_[0x1000 - 1] = "AllocA";
    names_[0x2000 - 1] = "AllocB";
    names_[0x3000 - 1] = "Work";
    names_[0x4000 - 1] = "main";
    opts_.sample_period = 524288;
    opts_.time_nanos = 1234567890123;
    opts_.gzip = false;
    opts_.symbolizer = &FakeSymbolizer;
    opts_.symbolizer_arg = &names_;
  }
  std::map<std::uintptr_t, std::string> names_;
  WriteOptions opts_;
};

TEST_F(PprofWriterTest, HeaderFieldsAndSampleTypes) {
  const void* stack[] = {Pc(0x1000), Pc(0x3000), Pc(0x4000)};
  HeapSample s;
  s.stack = stack;
  s.depth = 3;
  s.alloc_objects = 6;
  s.alloc_bytes = 6144;
  s.inuse_objects = 3;
  s.inuse_bytes = 3072;
  Written w = WriteAndRead({s}, opts_, "header.pb");
  ASSERT_EQ(w.rc, 0);
  const Profile& p = w.profile;
  ASSERT_EQ(p.sample_types.size(), 4u);
  const char* kTypes[][2] = {{"alloc_objects", "count"},
                             {"alloc_space", "bytes"},
                             {"inuse_objects", "count"},
                             {"inuse_space", "bytes"}};
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(p.sample_types[i].type, kTypes[i][0]);
    EXPECT_EQ(p.sample_types[i].unit, kTypes[i][1]);
  }
  EXPECT_EQ(p.period_type.type, "space");
  EXPECT_EQ(p.period_type.unit, "bytes");
  EXPECT_EQ(p.period, 524288);
  EXPECT_EQ(p.time_nanos, 1234567890123);
  EXPECT_EQ(p.default_sample_type, "");
  ASSERT_FALSE(p.string_table.empty());
  EXPECT_EQ(p.string_table[0], "");
  // Every string appears once.
  EXPECT_EQ(std::set<std::string>(p.string_table.begin(), p.string_table.end())
                .size(),
            p.string_table.size());

  ASSERT_EQ(p.samples.size(), 1u);
  EXPECT_EQ(p.samples[0].values, (std::vector<std::int64_t>{6, 6144, 3, 3072}));
  EXPECT_EQ(Names(p, p.samples[0]),
            (std::vector<std::string>{"AllocA", "Work", "main"}));
  EXPECT_TRUE(p.samples[0].labels.empty());
}

TEST_F(PprofWriterTest, LocationsUseReturnAddressMinusOneAndNonZeroIds) {
  const void* stack[] = {Pc(0x1000), Pc(0x3000), Pc(0x4000)};
  HeapSample s;
  s.stack = stack;
  s.depth = 3;
  s.inuse_objects = 1;
  Written w = WriteAndRead({s}, opts_, "addresses.pb");
  ASSERT_EQ(w.rc, 0);
  const Profile& p = w.profile;
  ASSERT_EQ(p.locations.size(), 3u);
  std::set<std::uint64_t> ids;
  for (const auto& loc : p.locations) {
    EXPECT_NE(loc.id, 0u);
    ids.insert(loc.id);
    ASSERT_EQ(loc.lines.size(), 1u);
    EXPECT_NE(loc.lines[0].function_id, 0u);
  }
  EXPECT_EQ(ids.size(), 3u);
  std::vector<std::uint64_t> addresses;
  for (std::uint64_t id : p.samples[0].location_ids) {
    addresses.push_back(p.FindLocation(id)->address);
  }
  EXPECT_EQ(addresses, (std::vector<std::uint64_t>{0xfff, 0x2fff, 0x3fff}));
  for (const auto& f : p.functions) EXPECT_NE(f.id, 0u);
}

TEST_F(PprofWriterTest, LeafIsExactPcKeepsTheLeafAddress) {
  names_[0x1000] = "AllocA";
  const void* stack[] = {Pc(0x1000), Pc(0x4000)};
  HeapSample s;
  s.stack = stack;
  s.depth = 2;
  s.inuse_objects = 1;
  opts_.leaf_is_exact_pc = true;
  Written w = WriteAndRead({s}, opts_, "exact.pb");
  ASSERT_EQ(w.rc, 0);
  const Profile& p = w.profile;
  EXPECT_EQ(p.FindLocation(p.samples[0].location_ids[0])->address, 0x1000u);
  EXPECT_EQ(p.FindLocation(p.samples[0].location_ids[1])->address, 0x3fffu);
}

TEST_F(PprofWriterTest, IdenticalStacksMerge) {
  const void* a[] = {Pc(0x1000), Pc(0x3000), Pc(0x4000)};
  const void* a2[] = {Pc(0x1000), Pc(0x3000), Pc(0x4000)};  // same content
  const void* b[] = {Pc(0x2000), Pc(0x3000), Pc(0x4000)};
  std::vector<HeapSample> samples;
  for (int i = 0; i < 10; ++i) {
    HeapSample s;
    s.stack = i % 2 == 0 ? a : a2;
    s.depth = 3;
    s.alloc_objects = 1;
    s.alloc_bytes = 100;
    s.inuse_objects = 1;
    s.inuse_bytes = 100;
    samples.push_back(s);
  }
  HeapSample sb;
  sb.stack = b;
  sb.depth = 3;
  sb.inuse_objects = 2;
  sb.inuse_bytes = 50;
  samples.push_back(sb);
  Written w = WriteAndRead(samples, opts_, "merge.pb");
  ASSERT_EQ(w.rc, 0);
  const Profile& p = w.profile;
  ASSERT_EQ(p.samples.size(), 2u);
  EXPECT_EQ(p.samples[0].values,
            (std::vector<std::int64_t>{10, 1000, 10, 1000}));
  EXPECT_EQ(p.samples[1].values, (std::vector<std::int64_t>{0, 0, 2, 50}));
  // Shared frames share locations and functions.
  EXPECT_EQ(p.locations.size(), 4u);
  EXPECT_EQ(p.functions.size(), 4u);
}

TEST_F(PprofWriterTest, RequestedSizeBecomesALabelAndSplitsSamples) {
  const void* a[] = {Pc(0x1000), Pc(0x4000)};
  HeapSample s1;
  s1.stack = a;
  s1.depth = 2;
  s1.inuse_objects = 1;
  s1.inuse_bytes = 24;
  s1.requested_size = 24;
  HeapSample s2 = s1;
  s2.requested_size = 48;
  s2.inuse_bytes = 48;
  HeapSample s3 = s1;  // merges with s1
  Written w = WriteAndRead({s1, s2, s3}, opts_, "labels.pb");
  ASSERT_EQ(w.rc, 0);
  const Profile& p = w.profile;
  ASSERT_EQ(p.samples.size(), 2u);
  ASSERT_EQ(p.samples[0].labels.size(), 1u);
  EXPECT_EQ(p.samples[0].labels[0].key, "bytes");
  EXPECT_EQ(p.samples[0].labels[0].num, 24);
  EXPECT_EQ(p.samples[0].labels[0].num_unit, "bytes");
  EXPECT_EQ(p.samples[0].values[2], 2);
  EXPECT_EQ(p.samples[1].labels[0].num, 48);
}

TEST_F(PprofWriterTest, UnsymbolizableFramesGetHexNames) {
  const void* stack[] = {Pc(0xabcd1), Pc(0x4000)};
  HeapSample s;
  s.stack = stack;
  s.depth = 2;
  s.inuse_objects = 1;
  Written w = WriteAndRead({s}, opts_, "hex.pb");
  ASSERT_EQ(w.rc, 0);
  EXPECT_EQ(Names(w.profile, w.profile.samples[0]),
            (std::vector<std::string>{"0xabcd0", "main"}));
}

TEST_F(PprofWriterTest, SymbolizeOffWritesNoFunctions) {
  const void* stack[] = {Pc(0x1000), Pc(0x4000)};
  HeapSample s;
  s.stack = stack;
  s.depth = 2;
  s.inuse_objects = 1;
  opts_.symbolize = false;
  Written w = WriteAndRead({s}, opts_, "nosym.pb");
  ASSERT_EQ(w.rc, 0);
  EXPECT_TRUE(w.profile.functions.empty());
  for (const auto& loc : w.profile.locations) EXPECT_TRUE(loc.lines.empty());
  for (const auto& m : w.profile.mappings) EXPECT_FALSE(m.has_functions);
}

TEST_F(PprofWriterTest, NoSamplesStillMakesAValidProfile) {
  Written w = WriteAndRead({}, opts_, "empty.pb");
  ASSERT_EQ(w.rc, 0);
  EXPECT_TRUE(w.profile.samples.empty());
  EXPECT_EQ(w.profile.sample_types.size(), 4u);
}

TEST_F(PprofWriterTest, GzipIsTheDefaultAndDecodesToTheSameProfile) {
  const void* stack[] = {Pc(0x1000), Pc(0x3000), Pc(0x4000)};
  HeapSample s;
  s.stack = stack;
  s.depth = 3;
  s.inuse_objects = 7;
  Written raw = WriteAndRead({s}, opts_, "raw.pb");
  WriteOptions gz = opts_;
  gz.gzip = true;
  Written zipped = WriteAndRead({s}, gz, "zipped.pb.gz");
  ASSERT_EQ(raw.rc, 0);
  ASSERT_EQ(zipped.rc, 0);
  ASSERT_GE(zipped.bytes.size(), 2u);
  EXPECT_EQ(static_cast<unsigned char>(zipped.bytes[0]), 0x1f);
  EXPECT_EQ(static_cast<unsigned char>(zipped.bytes[1]), 0x8b);
  std::string inflated, error;
  ASSERT_TRUE(heapdump::Gunzip(zipped.bytes, &inflated, &error)) << error;
  EXPECT_EQ(inflated, raw.bytes);  // same options, same bytes
  EXPECT_EQ(WriteOptions().gzip, true);
}

// A real code address in this binary, symbolized by Abseil.
__attribute__((noinline)) int MarkerFunctionForSymbolization(int x) {
  return x * 3 + 1;
}

TEST(PprofWriterRealTest, AbseilSymbolizationAndMainMapping) {
  // The return address of a call lands inside the caller; use an address
  // just past the marker function's first byte as a stand-in.
  const auto marker = reinterpret_cast<std::uintptr_t>(
      &MarkerFunctionForSymbolization);
  const void* stack[] = {Pc(marker + 2)};
  HeapSample s;
  s.stack = stack;
  s.depth = 1;
  s.inuse_objects = 1;
  s.inuse_bytes = 8;
  WriteOptions opts;
  opts.gzip = false;
  Written w = WriteAndRead({s}, opts, "real.pb");
  ASSERT_EQ(w.rc, 0);
  const Profile& p = w.profile;
  ASSERT_EQ(p.samples.size(), 1u);
  const std::vector<std::string> names = Names(p, p.samples[0]);
  ASSERT_EQ(names.size(), 1u);
  EXPECT_NE(names[0].find("MarkerFunctionForSymbolization"), std::string::npos)
      << names[0];

  // The main program's mapping comes first, named by /proc/self/exe, holds
  // the location, and carries a hex build id when the linker wrote one.
  ASSERT_FALSE(p.mappings.empty());
  char exe[4096];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  ASSERT_GT(n, 0);
  exe[n] = '\0';
  EXPECT_EQ(p.mappings[0].filename, exe);
  const heapdump::Location* loc = p.FindLocation(p.samples[0].location_ids[0]);
  ASSERT_NE(loc, nullptr);
  const heapdump::Mapping* m = p.FindMapping(loc->mapping_id);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->filename, exe);
  EXPECT_LE(m->memory_start, loc->address);
  EXPECT_LT(loc->address, m->memory_limit);
  EXPECT_EQ(m->memory_start % 4096, 0u);
  EXPECT_EQ(m->file_offset % 4096, 0u);
  EXPECT_TRUE(m->has_functions);
  for (char c : m->build_id) EXPECT_TRUE(std::isxdigit(c)) << m->build_id;
  // Some mapping is a shared library (libc at least), ids are 1..N.
  bool has_libc = false;
  for (std::size_t i = 0; i < p.mappings.size(); ++i) {
    EXPECT_EQ(p.mappings[i].id, i + 1);
    if (p.mappings[i].filename.find("libc.so") != std::string::npos) {
      has_libc = true;
    }
  }
  EXPECT_TRUE(has_libc);
}

TEST(PprofWriterRealTest, FailedSymbolizationClearsHasFunctions) {
  const auto marker = reinterpret_cast<std::uintptr_t>(
      &MarkerFunctionForSymbolization);
  const void* stack[] = {Pc(marker + 2)};
  HeapSample s;
  s.stack = stack;
  s.depth = 1;
  s.inuse_objects = 1;
  WriteOptions opts;
  opts.gzip = false;
  opts.symbolizer = [](const void*, char*, int, void*) { return false; };
  Written w = WriteAndRead({s}, opts, "nosymbols.pb");
  ASSERT_EQ(w.rc, 0);
  const Profile& p = w.profile;
  const heapdump::Location* loc = p.FindLocation(p.samples[0].location_ids[0]);
  const heapdump::Mapping* m = p.FindMapping(loc->mapping_id);
  ASSERT_NE(m, nullptr);
  EXPECT_FALSE(m->has_functions);  // pprof will re-symbolize this mapping
  EXPECT_EQ(Names(p, p.samples[0])[0].rfind("0x", 0), 0u);
}

TEST(PprofWriterErrorsTest, ReportsErrnoStyleCodes) {
  HeapSample bad;
  bad.depth = 2;  // stack == nullptr
  ArraySampleSource bad_source(&bad, 1);
  ArraySampleSource empty(nullptr, 0);
  WriteOptions opts;
  const std::string dir = TempDir();
  EXPECT_EQ(WriteHeapProfileToFd(-1, empty, opts), EBADF);
  EXPECT_EQ(WriteHeapProfile(nullptr, empty, opts), EINVAL);
  EXPECT_EQ(WriteHeapProfile("", empty, opts), EINVAL);
  EXPECT_EQ(WriteHeapProfile((dir + "/no/such/dir/p.pb").c_str(), empty, opts),
            ENOENT);
  EXPECT_EQ(WriteHeapProfile((dir + "/bad.pb").c_str(), bad_source, opts),
            EINVAL);
  // No temporary file is left behind on failure.
  struct stat st;
  EXPECT_NE(stat((dir + "/bad.pb").c_str(), &st), 0);
  // A full device: the error of write(2) comes back.
  if (access("/dev/full", W_OK) == 0) {
    EXPECT_EQ(WriteHeapProfile("/dev/full", empty, opts), ENOSPC);
  }
  // A closed pipe: EPIPE (SIGPIPE ignored for the test).
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  close(fds[0]);
  signal(SIGPIPE, SIG_IGN);
  EXPECT_EQ(WriteHeapProfileToFd(fds[1], empty, opts), EPIPE);
  close(fds[1]);
}

TEST(PprofWriterFileTest, ReplacesAnExistingFileAtomically) {
  const std::string path = TempDir() + "/replace.pb.gz";
  {
    std::ofstream out(path);
    out << "old contents";
  }
  ArraySampleSource empty(nullptr, 0);
  ASSERT_EQ(WriteHeapProfile(path.c_str(), empty, WriteOptions()), 0);
  Profile p;
  std::string error;
  ASSERT_TRUE(heapdump::ReadProfileFile(path, &p, &error)) << error;
  // No "<path>.tmp.<pid>" left over.
  struct stat st;
  EXPECT_NE(stat((path + ".tmp." + std::to_string(getpid())).c_str(), &st), 0);
}

TEST(PprofWriterScaleTest, ManyDeepDistinctStacks) {
  constexpr int kSamples = 20000;
  constexpr int kDepth = 40;
  std::vector<std::vector<const void*>> stacks(kSamples);
  std::vector<HeapSample> samples(kSamples);
  for (int i = 0; i < kSamples; ++i) {
    for (int d = 0; d < kDepth; ++d) {
      // Leaf differs per sample; callers are shared.
      stacks[i].push_back(Pc(d == 0 ? 0x100000 + 16 * i : 0x1000 * (d + 1)));
    }
    samples[i].stack = stacks[i].data();
    samples[i].depth = kDepth;
    samples[i].inuse_objects = 1;
    samples[i].inuse_bytes = static_cast<std::uint64_t>(i);
  }
  WriteOptions opts;
  opts.symbolizer = [](const void*, char*, int, void*) { return false; };
  Written w = WriteAndRead(samples, opts, "large.pb.gz");
  ASSERT_EQ(w.rc, 0);
  EXPECT_EQ(w.profile.samples.size(), static_cast<std::size_t>(kSamples));
  EXPECT_EQ(w.profile.locations.size(),
            static_cast<std::size_t>(kSamples + kDepth - 1));
  std::int64_t total = 0;
  for (const auto& s : w.profile.samples) total += s.values[3];
  EXPECT_EQ(total, static_cast<std::int64_t>(kSamples) * (kSamples - 1) / 2);
}

}  // namespace
}  // namespace strata::profile
