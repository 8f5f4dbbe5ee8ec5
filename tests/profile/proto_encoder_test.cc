// tests/profile/proto_encoder_test.cc: the writer's protobuf wire encoding,
// checked against known bytes and decoded back with heapdump's WireReader.
#include "alloc/profile/proto_encoder.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "alloc/profile/scratch_arena.h"
#include "gtest/gtest.h"
#include "tools/heapdump/profile_reader.h"

namespace strata::profile {
namespace {

using heapdump::WireReader;

std::vector<int> Bytes(const ProtoEncoder& e) {
  return std::vector<int>(e.data(), e.data() + e.size());
}

std::string_view View(const ProtoEncoder& e) {
  return std::string_view(reinterpret_cast<const char*>(e.data()), e.size());
}

TEST(VarintTest, KnownEncodings) {
  struct Case {
    std::uint64_t v;
    std::vector<int> bytes;
  };
  const Case cases[] = {
      {0, {0x00}},
      {1, {0x01}},
      {127, {0x7f}},
      {128, {0x80, 0x01}},
      {300, {0xac, 0x02}},
      {16384, {0x80, 0x80, 0x01}},
      {UINT64_MAX,
       {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
  };
  for (const Case& c : cases) {
    std::uint8_t buf[kMaxVarintBytes];
    const std::size_t n = EncodeVarint(c.v, buf);
    EXPECT_EQ(std::vector<int>(buf, buf + n), c.bytes) << c.v;
    EXPECT_EQ(VarintSize(c.v), c.bytes.size()) << c.v;
  }
}

TEST(VarintTest, RoundTripsThroughWireReader) {
  ScratchArena arena;
  ProtoEncoder e(&arena);
  std::vector<std::uint64_t> values;
  for (int shift = 0; shift < 64; ++shift) {
    values.push_back(std::uint64_t{1} << shift);
    values.push_back((std::uint64_t{1} << shift) - 1);
  }
  values.push_back(UINT64_MAX);
  for (std::uint64_t v : values) e.AppendVarint(v);
  ASSERT_TRUE(e.ok());
  WireReader r(View(e));
  for (std::uint64_t v : values) {
    std::uint64_t got;
    ASSERT_TRUE(r.ReadVarint(&got));
    EXPECT_EQ(got, v);
  }
  EXPECT_TRUE(r.done());
}

TEST(ProtoEncoderTest, NegativeInt64IsTenBytesTwosComplement) {
  ScratchArena arena;
  ProtoEncoder e(&arena);
  e.Int64(2, -1);
  EXPECT_EQ(Bytes(e), (std::vector<int>{0x10, 0xff, 0xff, 0xff, 0xff, 0xff,
                                        0xff, 0xff, 0xff, 0xff, 0x01}));
  WireReader r(View(e));
  std::uint32_t field;
  int wt;
  std::uint64_t v;
  ASSERT_TRUE(r.ReadTag(&field, &wt));
  EXPECT_EQ(field, 2u);
  EXPECT_EQ(wt, 0);
  ASSERT_TRUE(r.ReadVarint(&v));
  EXPECT_EQ(static_cast<std::int64_t>(v), -1);
}

TEST(ProtoEncoderTest, TagsAndLengthDelimitedFields) {
  ScratchArena arena;
  ProtoEncoder e(&arena);
  e.Varint(1, 150);             // the protobuf docs' classic example
  e.Bytes(6, "testing", 7);
  e.Bytes(6, "", 0);            // empty strings are written (string_table[0])
  EXPECT_EQ(Bytes(e), (std::vector<int>{0x08, 0x96, 0x01, 0x32, 0x07, 't', 'e',
                                        's', 't', 'i', 'n', 'g', 0x32, 0x00}));
}

TEST(ProtoEncoderTest, FieldNumbersNeedingMultiByteTags) {
  std::uint8_t buf[kMaxFieldHeaderBytes];
  std::size_t n = EncodeFieldHeader(16, WireType::kVarint, 0, buf);
  EXPECT_EQ(std::vector<int>(buf, buf + n), (std::vector<int>{0x80, 0x01}));
  n = EncodeFieldHeader((1u << 29) - 1, WireType::kLengthDelimited, 300, buf);
  WireReader r(std::string_view(reinterpret_cast<char*>(buf), n));
  std::uint32_t field;
  int wt;
  std::uint64_t len;
  ASSERT_TRUE(r.ReadTag(&field, &wt));
  EXPECT_EQ(field, (1u << 29) - 1);
  EXPECT_EQ(wt, 2);
  ASSERT_TRUE(r.ReadVarint(&len));
  EXPECT_EQ(len, 300u);
}

TEST(ProtoEncoderTest, OptionalFieldsElideZero) {
  ScratchArena arena;
  ProtoEncoder e(&arena);
  e.OptionalVarint(1, 0);
  e.OptionalInt64(2, 0);
  e.OptionalBool(7, false);
  EXPECT_EQ(e.size(), 0u);
  e.OptionalBool(7, true);
  e.OptionalInt64(3, -2);
  EXPECT_EQ(Bytes(e)[0], 0x38);
  EXPECT_EQ(Bytes(e)[1], 0x01);
  EXPECT_EQ(Bytes(e)[2], 0x18);
}

TEST(ProtoEncoderTest, PackedVarintsAndNestedMessages) {
  ScratchArena arena;
  ProtoEncoder sample(&arena);
  const std::uint64_t ids[] = {1, 2, 300};
  const std::int64_t values[] = {0, 5, -1, 0};
  sample.PackedVarints(1, ids, 3);
  sample.PackedInt64s(2, values, 4);
  sample.PackedVarints(3, ids, 0);  // empty: nothing written
  ProtoEncoder profile(&arena);
  profile.Message(2, sample);
  ASSERT_TRUE(profile.ok());

  WireReader outer(View(profile));
  std::uint32_t field;
  int wt;
  std::string_view body;
  ASSERT_TRUE(outer.ReadTag(&field, &wt));
  EXPECT_EQ(field, 2u);
  ASSERT_TRUE(outer.ReadBytes(&body));
  EXPECT_TRUE(outer.done());
  EXPECT_EQ(body.size(), sample.size());

  WireReader inner(body);
  std::string_view packed;
  ASSERT_TRUE(inner.ReadTag(&field, &wt));
  EXPECT_EQ(field, 1u);
  EXPECT_EQ(wt, 2);
  ASSERT_TRUE(inner.ReadBytes(&packed));
  EXPECT_EQ(packed.size(), 1u + 1u + 2u);
  WireReader p(packed);
  for (std::uint64_t want : ids) {
    std::uint64_t v;
    ASSERT_TRUE(p.ReadVarint(&v));
    EXPECT_EQ(v, want);
  }
  ASSERT_TRUE(inner.ReadTag(&field, &wt));
  EXPECT_EQ(field, 2u);
  ASSERT_TRUE(inner.ReadBytes(&packed));
  EXPECT_EQ(packed.size(), 1u + 1u + 10u + 1u);
  EXPECT_TRUE(inner.done());
}

TEST(ProtoEncoderTest, ClearKeepsWorking) {
  ScratchArena arena;
  ProtoEncoder e(&arena);
  for (int i = 0; i < 1000; ++i) e.Bytes(6, "0123456789", 10);
  e.Clear();
  EXPECT_EQ(e.size(), 0u);
  e.Varint(1, 1);
  EXPECT_EQ(Bytes(e), (std::vector<int>{0x08, 0x01}));
}

TEST(WireReaderTest, RejectsMalformedInput) {
  std::uint64_t v;
  std::uint32_t field;
  int wt;
  std::string_view b;
  // Unterminated varint.
  EXPECT_FALSE(WireReader(std::string_view("\x80\x80", 2)).ReadVarint(&v));
  // Eleven bytes.
  EXPECT_FALSE(WireReader(std::string_view(
                              "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
                              11))
                   .ReadVarint(&v));
  // Tenth byte carrying more than bit 63.
  EXPECT_FALSE(WireReader(std::string_view(
                              "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", 10))
                   .ReadVarint(&v));
  // Field 0, group wire types, wire types 6 and 7.
  EXPECT_FALSE(WireReader(std::string_view("\x00", 1)).ReadTag(&field, &wt));
  EXPECT_FALSE(WireReader(std::string_view("\x0b", 1)).ReadTag(&field, &wt));
  EXPECT_FALSE(WireReader(std::string_view("\x0c", 1)).ReadTag(&field, &wt));
  EXPECT_FALSE(WireReader(std::string_view("\x0e", 1)).ReadTag(&field, &wt));
  EXPECT_FALSE(WireReader(std::string_view("\x0f", 1)).ReadTag(&field, &wt));
  // Length past the end.
  EXPECT_FALSE(WireReader(std::string_view("\x05" "abc", 4)).ReadBytes(&b));
  EXPECT_FALSE(WireReader(std::string_view(
                              "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 10))
                   .ReadBytes(&b));
  // Fixed-width values past the end.
  EXPECT_FALSE(WireReader(std::string_view("1234567", 7)).Skip(1));
  EXPECT_FALSE(WireReader(std::string_view("123", 3)).Skip(5));
  EXPECT_TRUE(WireReader(std::string_view("12345678", 8)).Skip(1));
}

}  // namespace
}  // namespace strata::profile
