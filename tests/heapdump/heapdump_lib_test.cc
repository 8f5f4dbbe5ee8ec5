// tests/heapdump/heapdump_lib_test.cc: heapdump's reader and reports,
// in process: exact report text on fixture profiles, the flame graph's
// content, decoding of hand-made and damaged inputs (fuzz-ish).
#include <zlib.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "alloc/profile/proto_encoder.h"
#include "alloc/profile/scratch_arena.h"
#include "gtest/gtest.h"
#include "tests/heapdump/profile_fixtures.h"
#include "tools/heapdump/analysis.h"
#include "tools/heapdump/flame_svg.h"
#include "tools/heapdump/profile_reader.h"


namespace strata::heapdump {
namespace {

std::string TempPath(const std::string& name) {
  const char* d = std::getenv("TEST_TMPDIR");
  return std::string(d != nullptr ? d : "/tmp") + "/" + name;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

Profile LoadFixture(const std::string& kind, bool gzip = true) {
  const std::string path = TempPath(kind + (gzip ? ".pb.gz" : ".pb"));
  EXPECT_EQ(testing::WriteFixture(kind, path, gzip), 0);
  Profile p;
  std::string error;
  EXPECT_TRUE(ReadProfileFile(path, &p, &error)) << error;
  return p;
}

int Index(const Profile& p, const std::string& type) {
  std::string error;
  const int i = FindSampleType(p, type, &error);
  EXPECT_GE(i, 0) << error;
  return i;
}

// ---------------------------------------------------------------------------
// Reports

TEST(TopTest, InuseSpaceTable) {
  const Profile p = LoadFixture("a");
  std::ostringstream out;
  PrintTop(out, p, Index(p, "inuse_space"), TopOptions{});
  EXPECT_EQ(out.str(),
            "Type: inuse_space\n"
            "Showing top 5 of 5 functions, accounting for 9kB (100.00%) of "
            "9kB total\n"
            "      flat   flat%    sum%        cum    cum%  function\n"
            "       4kB  44.44%  44.44%        4kB  44.44%  AllocA\n"
            "       4kB  44.44%  88.89%        4kB  44.44%  Cache<int, "
            "std::string>::Insert(K const&)\n"
            "       1kB  11.11% 100.00%        1kB  11.11%  AllocB\n"
            "         0   0.00% 100.00%        9kB 100.00%  main\n"
            "         0   0.00% 100.00%        4kB  44.44%  Work\n");
}

TEST(TopTest, ObjectsWithNodeCountAndCumSort) {
  const Profile p = LoadFixture("a");
  std::ostringstream out;
  TopOptions options;
  options.node_count = 2;
  PrintTop(out, p, Index(p, "inuse_objects"), options);
  EXPECT_EQ(out.str(),
            "Type: inuse_objects\n"
            "Showing top 2 of 5 functions, accounting for 8 (80.00%) of 10 "
            "total\n"
            "      flat   flat%    sum%        cum    cum%  function\n"
            "         4  40.00%  40.00%          4  40.00%  AllocA\n"
            "         4  40.00%  80.00%          4  40.00%  Cache<int, "
            "std::string>::Insert(K const&)\n");

  const std::vector<TopRow> rows =
      ComputeTop(p, Index(p, "alloc_space"), /*sort_by_cum=*/true);
  ASSERT_EQ(rows.size(), 5u);
  EXPECT_EQ(rows[0].name, "main");
  EXPECT_EQ(rows[0].cum, 2 * 9216);
  EXPECT_EQ(rows[0].flat, 0);
  EXPECT_EQ(rows[1].name, "AllocA");
  EXPECT_EQ(rows[1].cum, 2 * 4096);
}

TEST(TopTest, RecursionCountsOnceInCum) {
  Profile p = LoadFixture("a");
  // Make the first sample's stack AllocA <- Work <- AllocA <- main.
  Sample& s = p.samples[0];
  const std::uint64_t alloc_a = s.location_ids[0];
  s.location_ids.insert(s.location_ids.begin() + 2, alloc_a);
  const std::vector<TopRow> rows = ComputeTop(p, Index(p, "inuse_space"), false);
  for (const TopRow& r : rows) {
    if (r.name == "AllocA") {
      EXPECT_EQ(r.cum, 4096);
    }
  }
}

TEST(FoldedTest, RootFirstSortedMerged) {
  const Profile p = LoadFixture("a");
  std::ostringstream out;
  PrintFolded(out, p, Index(p, "inuse_space"));
  EXPECT_EQ(out.str(),
            "main;AllocA 1024\n"
            "main;Cache<int, std::string>::Insert(K const&) 4096\n"
            "main;Work;AllocA 3072\n"
            "main;Work;AllocB 1024\n");
  std::ostringstream alloc;
  PrintFolded(alloc, p, Index(p, "alloc_objects"));
  EXPECT_EQ(alloc.str(),
            "main;AllocA 2\n"
            "main;Cache<int, std::string>::Insert(K const&) 8\n"
            "main;Work;AllocA 6\n"
            "main;Work;AllocB 4\n");
}

TEST(DiffTest, GrowthBySite) {
  const Profile a = LoadFixture("a");
  const Profile b = LoadFixture("b");
  DiffOptions options;
  DiffResult r;
  std::string error;
  ASSERT_TRUE(ComputeDiff(a, b, options, &r, &error)) << error;
  EXPECT_EQ(r.bytes_a, 9216);
  EXPECT_EQ(r.bytes_b, 139264);
  EXPECT_EQ(r.objects_a, 10);
  EXPECT_EQ(r.objects_b, 137);
  std::ostringstream out;
  PrintDiff(out, r, options);
  EXPECT_EQ(out.str(),
            "Total inuse_space: 9kB -> 136kB (+127kB)\n"
            "Total inuse_objects: 10 -> 137 (+127)\n"
            "Showing 4 of 4 changed sites, largest growth first\n"
            " delta_bytes  delta_objs    bytes(B)   objs(B)  site (leaf <- "
            "callers)\n"
            "      +100kB        +100       100kB       100  Leak <- Work <- "
            "main\n"
            "       +27kB         +27        30kB        30  AllocA <- Work <- "
            "main\n"
            "        +1kB          +1         5kB         5  Cache<int, "
            "std::string>::Insert(K const&) <- main\n"
            "        -1kB          -1           0         0  AllocA <- main\n");
}

TEST(DiffTest, GrowthByFunctionAndAllocValues) {
  const Profile a = LoadFixture("a");
  const Profile b = LoadFixture("b");
  DiffOptions options;
  options.by_function = true;
  options.node_count = 2;
  options.objects_type = "alloc_objects";
  options.bytes_type = "alloc_space";
  DiffResult r;
  std::string error;
  ASSERT_TRUE(ComputeDiff(a, b, options, &r, &error)) << error;
  std::ostringstream out;
  PrintDiff(out, r, options);
  EXPECT_EQ(out.str(),
            "Total alloc_space: 18kB -> 272kB (+254kB)\n"
            "Total alloc_objects: 20 -> 274 (+254)\n"
            "Showing 2 of 3 changed functions, largest growth first\n"
            " delta_bytes  delta_objs    bytes(B)   objs(B)  function\n"
            "      +200kB        +200       200kB       200  Leak\n"
            "       +52kB         +52        60kB        60  AllocA\n");
}

TEST(DiffTest, IdenticalProfilesHaveNoChanges) {
  const Profile a = LoadFixture("a");
  DiffResult r;
  std::string error;
  ASSERT_TRUE(ComputeDiff(a, a, DiffOptions{}, &r, &error)) << error;
  EXPECT_TRUE(r.rows.empty());
}

TEST(DiffTest, MissingSampleTypeIsAnError) {
  Profile a = LoadFixture("a");
  const Profile b = LoadFixture("b");
  a.sample_types[2].type = "objects";  // no inuse_objects any more
  DiffResult r;
  std::string error;
  EXPECT_FALSE(ComputeDiff(a, b, DiffOptions{}, &r, &error));
  EXPECT_NE(error.find("profile A: profile has no sample type inuse_objects"),
            std::string::npos)
      << error;
}

TEST(FormatTest, Values) {
  EXPECT_EQ(FormatValue(0, "bytes"), "0");
  EXPECT_EQ(FormatValue(512, "bytes"), "512B");
  EXPECT_EQ(FormatValue(1024, "bytes"), "1kB");
  EXPECT_EQ(FormatValue(1536 * 1024, "bytes"), "1.50MB");
  EXPECT_EQ(FormatValue(3LL << 30, "bytes"), "3GB");
  EXPECT_EQ(FormatValue(-2048, "bytes"), "-2kB");
  EXPECT_EQ(FormatValue(2048, "bytes", true), "+2kB");
  EXPECT_EQ(FormatValue(INT64_MIN, "count"), "-9223372036854775808");
  EXPECT_EQ(FormatValue(7, "count", true), "+7");
  EXPECT_EQ(FormatPercent(1, 3), "33.33%");
  EXPECT_EQ(FormatPercent(1, 0), "0.00%");
}

// A profile built by hand, for frame naming rules.
Profile HandMade() {
  Profile p;
  p.sample_types = {{"inuse_space", "bytes"}};
  p.functions = {{1, "Inner", "", "", 0}, {2, "Outer", "", "", 0}};
  Location inlined;
  inlined.id = 1;
  inlined.address = 0x1234;
  inlined.lines = {{1, 10}, {2, 20}};  // Inner inlined into Outer
  Location bare;
  bare.id = 2;
  bare.address = 0xbeef;
  p.locations = {inlined, bare};
  p.samples = {{{1, 2}, {100}, {}}, {{}, {5}, {}}};
  p.function_index = {{1, 0}, {2, 1}};
  p.location_index = {{1, 0}, {2, 1}};
  return p;
}

TEST(FramesTest, InlinedFramesExpandAndBareLocationsAreHex) {
  const Profile p = HandMade();
  EXPECT_EQ(SampleFrames(p, p.samples[0]),
            (std::vector<std::string>{"Inner", "Outer", "0xbeef"}));
  EXPECT_EQ(SampleFrames(p, p.samples[1]),
            (std::vector<std::string>{"[no stack]"}));
  std::ostringstream out;
  PrintFolded(out, p, 0);
  EXPECT_EQ(out.str(), "0xbeef;Outer;Inner 100\n[no stack] 5\n");
}

// ---------------------------------------------------------------------------
// Flame graph

TEST(FlameGraphTest, FramesTooltipsAndEscaping) {
  const Profile p = LoadFixture("b");
  FlameOptions options;
  options.title = "growth <test> & more";
  options.subtitle = "b.pb.gz";
  std::ostringstream out;
  WriteFlameGraphSvg(out, FoldStacks(p, Index(p, "inuse_space")), options);
  const std::string svg = out.str();
  EXPECT_EQ(svg.rfind("<?xml version=\"1.0\"", 0), 0u);
  EXPECT_NE(svg.find("<svg xmlns=\"http://www.w3.org/2000/svg\""),
            std::string::npos);
  EXPECT_NE(svg.find("</svg>\n"), std::string::npos);
  EXPECT_NE(svg.find("<title>growth &lt;test&gt; &amp; more</title>"),
            std::string::npos);
  // 102400 of 139264 bytes.
  EXPECT_NE(svg.find("<title>Leak (100kB, 73.53%)</title>"), std::string::npos);
  EXPECT_NE(svg.find("<title>all (136kB, 100.00%)</title>"), std::string::npos);
  EXPECT_NE(svg.find("<title>Cache&lt;int, std::string&gt;::Insert(K "
                     "const&amp;) (5kB, 3.68%)</title>"),
            std::string::npos);
  EXPECT_EQ(svg.find("<script"), std::string::npos);
  EXPECT_EQ(svg.find("Cache<int"), std::string::npos);  // always escaped
  // Deterministic.
  std::ostringstream again;
  WriteFlameGraphSvg(again, FoldStacks(p, Index(p, "inuse_space")), options);
  EXPECT_EQ(again.str(), svg);
}

TEST(FlameGraphTest, WidthsAreProportionalAndLabelsFit) {
  std::vector<FoldedStack> stacks = {
      {{"main", "Big"}, 3000},
      {{"main", "Small_with_a_really_long_name_that_cannot_fit"}, 30},
  };
  FlameOptions options;
  options.width = 1020;  // 1000 px usable
  std::ostringstream out;
  WriteFlameGraphSvg(out, stacks, options);
  const std::string svg = out.str();
  // Big: 3000/3030 of 1000 px.
  EXPECT_NE(svg.find("width=\"990.10\""), std::string::npos) << svg;
  EXPECT_NE(svg.find("width=\"9.90\""), std::string::npos) << svg;
  // 9.9 px holds no label; the tooltip keeps the whole name.
  EXPECT_EQ(svg.find("\">Small_with"), std::string::npos);
  EXPECT_NE(svg.find("<title>Small_with_a_really_long_name_that_cannot_fit"),
            std::string::npos);
}

TEST(FlameGraphTest, TruncatesLongNames) {
  std::vector<FoldedStack> stacks = {
      {{std::string(500, 'x') + "END"}, 1},
  };
  std::ostringstream out;
  WriteFlameGraphSvg(out, stacks, FlameOptions{});
  const std::string svg = out.str();
  EXPECT_NE(svg.find("x..</text>"), std::string::npos);
  EXPECT_EQ(svg.find("END</text>"), std::string::npos);
  EXPECT_NE(svg.find("END ("), std::string::npos);  // full name in tooltip
}

TEST(FlameGraphTest, EmptyInputAndHostileNames) {
  std::ostringstream empty;
  WriteFlameGraphSvg(empty, {}, FlameOptions{});
  EXPECT_NE(empty.str().find("<title>all (0, 0.00%)</title>"),
            std::string::npos);
  EXPECT_EQ(XmlEscape(std::string("a\x01\xff<\"'>&b", 9)),
            "a??&lt;&quot;&apos;&gt;&amp;b");
}

TEST(FlameGraphTest, SameNameSameColour) {
  std::vector<FoldedStack> stacks = {{{"main", "f"}, 1}, {{"g", "f"}, 1}};
  std::ostringstream out;
  WriteFlameGraphSvg(out, stacks, FlameOptions{});
  const std::string svg = out.str();
  std::vector<std::string> fills;
  for (std::size_t pos = 0;
       (pos = svg.find("<title>f (", pos)) != std::string::npos; ++pos) {
    const std::size_t fill = svg.find("fill=\"", pos);
    fills.push_back(svg.substr(fill, svg.find('"', fill + 6) - fill));
  }
  ASSERT_EQ(fills.size(), 2u);
  EXPECT_EQ(fills[0], fills[1]);
}

// ---------------------------------------------------------------------------
// Decoding: errors and damaged input

std::string Decode(const std::string& bytes, Profile* p = nullptr) {
  Profile local;
  std::string error;
  if (DecodeProfile(bytes, p != nullptr ? p : &local, &error)) return "";
  EXPECT_FALSE(error.empty());
  return error;
}

TEST(DecodeTest, RecognisesForeignInput) {
  EXPECT_NE(Decode("").find("empty file"), std::string::npos);
  EXPECT_NE(Decode(std::string("\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16))
                .find("not a pprof profile (looks like a PNG image)"),
            std::string::npos);
  EXPECT_NE(Decode("hello, world\nthis is text\n")
                .find("not a pprof profile (looks like a text file)"),
            std::string::npos);
  EXPECT_NE(Decode("heap profile:   1:   100 [   1:   100] @ heapprofile\n")
                .find("legacy gperftools text heap profile"),
            std::string::npos);
  EXPECT_NE(Decode(std::string("\x7f" "ELF\x02\x01\x01", 7)).find("ELF"),
            std::string::npos);
  // Binary garbage that is not protobuf.
  EXPECT_NE(Decode(std::string("\x0f\x00\x01\x02", 4)).find("not a pprof"),
            std::string::npos);
}

TEST(DecodeTest, ValidProtobufThatIsNotAProfile) {
  profile::ScratchArena arena;
  profile::ProtoEncoder e(&arena);
  e.Varint(9, 5);  // time_nanos only
  const std::string bytes(reinterpret_cast<const char*>(e.data()), e.size());
  EXPECT_NE(Decode(bytes).find("no string table"), std::string::npos);
}

// Builds a small raw profile; `mutate` picks a defect.
std::string MakeRaw(int defect) {
  profile::ScratchArena arena;
  profile::ProtoEncoder vt(&arena), sample(&arena), loc(&arena), fn(&arena),
      line(&arena), out(&arena);
  vt.Varint(1, defect == 1 ? 99 : 1);  // defect 1: string index out of range
  vt.Varint(2, 2);
  out.Message(1, vt);
  const std::uint64_t ids[] = {defect == 2 ? 7u : 1u};  // 2: dangling loc
  const std::int64_t values[] = {10, 20};
  sample.PackedVarints(1, ids, 1);
  sample.PackedInt64s(2, values, defect == 3 ? 2 : 1);  // 3: value count
  out.Message(2, sample);
  line.Varint(1, defect == 4 ? 5 : 1);  // 4: dangling function
  loc.Varint(1, 1);
  loc.Varint(3, 0x1000);
  loc.Message(4, line);
  out.Message(4, loc);
  if (defect == 5) out.Message(4, loc);  // 5: duplicate location id
  fn.Varint(1, 1);
  fn.Varint(2, 3);
  out.Message(5, fn);
  for (const char* s : {"", "inuse_space", "bytes", "Fn"}) {
    out.Bytes(6, s, std::strlen(s));
  }
  if (defect == 6) out.Varint(1, 5);  // 6: sample_type as a varint
  return std::string(reinterpret_cast<const char*>(out.data()), out.size());
}

TEST(DecodeTest, HandMadeProfileAndItsDefects) {
  Profile p;
  ASSERT_EQ(Decode(MakeRaw(0), &p), "");
  ASSERT_EQ(p.samples.size(), 1u);
  EXPECT_EQ(SampleFrames(p, p.samples[0]), (std::vector<std::string>{"Fn"}));
  EXPECT_NE(Decode(MakeRaw(1)).find("string index 99 out of range"),
            std::string::npos);
  EXPECT_NE(Decode(MakeRaw(2)).find("references missing location 7"),
            std::string::npos);
  EXPECT_NE(Decode(MakeRaw(3)).find("has 2 values for 1 sample types"),
            std::string::npos);
  EXPECT_NE(Decode(MakeRaw(4)).find("references missing function 5"),
            std::string::npos);
  EXPECT_NE(Decode(MakeRaw(5)).find("duplicate location id 1"),
            std::string::npos);
  EXPECT_NE(Decode(MakeRaw(6)).find("not a pprof profile"), std::string::npos);
}

TEST(DecodeTest, UnpackedRepeatedFieldsAndUnknownFieldsAreAccepted) {
  profile::ScratchArena arena;
  profile::ProtoEncoder vt(&arena), sample(&arena), out(&arena);
  vt.Varint(1, 1);
  vt.Varint(2, 2);
  out.Message(1, vt);
  sample.Varint(2, 42);  // value, unpacked
  out.Message(2, sample);
  out.Varint(1000, 7);          // unknown varint field
  out.Bytes(1001, "xyz", 3);    // unknown bytes field
  out.AppendTag(1002, profile::WireType::kFixed64);  // unknown fixed64
  out.AppendRaw("12345678", 8);
  out.AppendTag(1003, profile::WireType::kFixed32);  // unknown fixed32
  out.AppendRaw("1234", 4);
  for (const char* s : {"", "inuse_space", "bytes"}) {
    out.Bytes(6, s, std::strlen(s));
  }
  Profile p;
  ASSERT_EQ(Decode(std::string(reinterpret_cast<const char*>(out.data()),
                               out.size()),
                   &p),
            "");
  ASSERT_EQ(p.samples.size(), 1u);
  EXPECT_EQ(p.samples[0].values, (std::vector<std::int64_t>{42}));
}

TEST(DecodeTest, EveryTruncationFailsCleanly) {
  for (bool gzip : {false, true}) {
    const std::string path = TempPath(gzip ? "trunc.pb.gz" : "trunc.pb");
    ASSERT_EQ(testing::WriteFixture("b", path, gzip), 0);
    const std::string bytes = ReadAll(path);
    ASSERT_GT(bytes.size(), 100u);
    ASSERT_EQ(Decode(bytes), "");
    for (std::size_t n = 0; n < bytes.size(); ++n) {
      const std::string error = Decode(bytes.substr(0, n));
      ASSERT_FALSE(error.empty()) << "prefix of " << n << " bytes decoded";
      if (gzip && n >= 10) {
        EXPECT_NE(error.find("truncated gzip stream"), std::string::npos)
            << n << ": " << error;
      }
    }
  }
}

TEST(DecodeTest, CorruptGzipIsReported) {
  const std::string path = TempPath("corrupt.pb.gz");
  ASSERT_EQ(testing::WriteFixture("a", path, true), 0);
  std::string bytes = ReadAll(path);
  std::string bad_crc = bytes;
  bad_crc[bad_crc.size() - 8] ^= 0x55;  // CRC-32 of the trailer
  EXPECT_NE(Decode(bad_crc).find("corrupt gzip stream (incorrect data check)"),
            std::string::npos);
  std::string bad_method = bytes;
  bad_method[2] = 7;  // compression method must be 8 (deflate)
  EXPECT_NE(Decode(bad_method).find("corrupt gzip stream"), std::string::npos);
}

TEST(DecodeTest, RandomDamageNeverCrashes) {
  std::mt19937 rng(20240611);
  for (bool gzip : {false, true}) {
    const std::string path = TempPath(gzip ? "fuzz.pb.gz" : "fuzz.pb");
    ASSERT_EQ(testing::WriteFixture("b", path, gzip), 0);
    const std::string bytes = ReadAll(path);
    for (int iter = 0; iter < 3000; ++iter) {
      std::string damaged = bytes;
      const int flips = 1 + static_cast<int>(rng() % 4);
      for (int f = 0; f < flips; ++f) {
        const std::size_t at = rng() % damaged.size();
        damaged[at] = static_cast<char>(rng() & 0xff);
      }
      if (rng() % 4 == 0) damaged.resize(rng() % damaged.size());
      Profile p;
      std::string error;
      if (DecodeProfile(damaged, &p, &error)) {
        // Whatever decoded must be safe to report on.
        std::ostringstream sink;
        for (std::size_t v = 0; v < p.sample_types.size(); ++v) {
          PrintTop(sink, p, static_cast<int>(v), TopOptions{});
          PrintFolded(sink, p, static_cast<int>(v));
          WriteFlameGraphSvg(sink, FoldStacks(p, static_cast<int>(v)),
                             FlameOptions{});
        }
      } else {
        EXPECT_FALSE(error.empty());
      }
    }
  }
  // Pure noise.
  for (int iter = 0; iter < 2000; ++iter) {
    std::string noise(rng() % 300, '\0');
    for (char& c : noise) c = static_cast<char>(rng() & 0xff);
    Profile p;
    std::string error;
    DecodeProfile(noise, &p, &error);
  }
}

TEST(DecodeTest, DecompressionIsCapped) {
  // 4 MiB of zeros gzipped (a few KiB); with a 1 MiB cap Gunzip must stop
  // instead of inflating it all (the real cap is kMaxDecodedBytes, 1 GiB).
  const std::string zeros(4 << 20, '\0');
  z_stream zs{};
  ASSERT_EQ(deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY),
            Z_OK);
  std::string gz(deflateBound(&zs, zeros.size()), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(zeros.data()));
  zs.avail_in = static_cast<uInt>(zeros.size());
  zs.next_out = reinterpret_cast<Bytef*>(gz.data());
  zs.avail_out = static_cast<uInt>(gz.size());
  ASSERT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  gz.resize(zs.total_out);
  deflateEnd(&zs);
  ASSERT_LT(gz.size(), 64u << 10);
  std::string out, error;
  EXPECT_FALSE(Gunzip(gz, &out, &error, 1 << 20));
  EXPECT_NE(error.find("decompressed size exceeds 1 MiB"), std::string::npos)
      << error;
  EXPECT_TRUE(Gunzip(gz, &out, &error));
  EXPECT_EQ(out.size(), zeros.size());
}

TEST(ReadFileTest, MissingFileAndDirectory) {
  Profile p;
  std::string error;
  EXPECT_FALSE(ReadProfileFile(TempPath("does-not-exist.pb.gz"), &p, &error));
  EXPECT_EQ(error, "cannot open: No such file or directory");
  EXPECT_FALSE(ReadProfileFile(TempPath(""), &p, &error));
  EXPECT_EQ(error, "is a directory, not a profile");
}

}  // namespace
}  // namespace strata::heapdump
