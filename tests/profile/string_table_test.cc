// tests/profile/string_table_test.cc: interning in StringTable and the
// IndexHashSet underneath it.
#include "alloc/profile/string_table.h"

#include <cstdio>
#include <string>

#include "alloc/profile/arena_hash.h"
#include "alloc/profile/scratch_arena.h"
#include "gtest/gtest.h"

namespace strata::profile {
namespace {

TEST(StringTableTest, EmptyStringIsIndexZero) {
  ScratchArena arena;
  StringTable t(&arena);
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.Intern("alloc_objects"), 1);
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.Intern(""), 0);
  EXPECT_EQ(t.length(0), 0u);
  EXPECT_STREQ(t.str(0), "");
}

TEST(StringTableTest, FirstInternOfEmptyStringIsZero) {
  ScratchArena arena;
  StringTable t(&arena);
  EXPECT_EQ(t.Intern(""), 0);
  EXPECT_EQ(t.size(), 1u);
}

TEST(StringTableTest, EqualStringsShareAnIndex) {
  ScratchArena arena;
  StringTable t(&arena);
  const std::int64_t a = t.Intern("bytes");
  const std::int64_t b = t.Intern("count");
  EXPECT_NE(a, b);
  char buf[] = "bytes";
  EXPECT_EQ(t.Intern(buf), a);  // a different buffer, same content
  buf[0] = 'B';
  EXPECT_NE(t.Intern(buf), a);
  EXPECT_STREQ(t.str(static_cast<std::size_t>(a)), "bytes");  // copied
  EXPECT_EQ(t.size(), 4u);
}

TEST(StringTableTest, LengthMattersAndEmbeddedNulsAreKept) {
  ScratchArena arena;
  StringTable t(&arena);
  const char data[] = {'a', '\0', 'b'};
  const std::int64_t ab = t.Intern(data, 3);
  const std::int64_t a = t.Intern(data, 1);
  EXPECT_NE(ab, a);
  EXPECT_EQ(t.Intern(data, 3), ab);
  EXPECT_EQ(t.length(static_cast<std::size_t>(ab)), 3u);
  EXPECT_EQ(t.str(static_cast<std::size_t>(ab))[2], 'b');
}

TEST(StringTableTest, ManyStringsSurviveRehashing) {
  ScratchArena arena;
  StringTable t(&arena);
  constexpr int kCount = 50000;
  char buf[32];
  for (int i = 0; i < kCount; ++i) {
    std::snprintf(buf, sizeof(buf), "function_%d", i);
    ASSERT_EQ(t.Intern(buf), i + 1);
  }
  for (int i = kCount - 1; i >= 0; --i) {
    std::snprintf(buf, sizeof(buf), "function_%d", i);
    ASSERT_EQ(t.Intern(buf), i + 1);
    ASSERT_EQ(std::string(t.str(static_cast<std::size_t>(i + 1))), buf);
  }
  EXPECT_EQ(t.size(), static_cast<std::size_t>(kCount + 1));
}

TEST(IndexHashSetTest, CollidingHashesAreDisambiguatedByEq) {
  ScratchArena arena;
  IndexHashSet set(&arena);
  const int keys[] = {10, 20, 30, 40};
  // All under one hash: Find must use eq to tell them apart.
  for (std::uint32_t i = 0; i < 4; ++i) ASSERT_TRUE(set.Insert(42, i));
  for (std::uint32_t i = 0; i < 4; ++i) {
    const int want = keys[i];
    EXPECT_EQ(set.Find(42, [&](std::uint32_t k) { return keys[k] == want; }),
              i);
  }
  EXPECT_EQ(set.Find(42, [](std::uint32_t) { return false; }),
            IndexHashSet::kNotFound);
  EXPECT_EQ(set.Find(43, [](std::uint32_t) { return true; }),
            IndexHashSet::kNotFound);
}

TEST(IndexHashSetTest, LoadFactorStaysAtMostHalf) {
  ScratchArena arena;
  IndexHashSet set(&arena);
  for (std::uint32_t i = 0; i < 10000; ++i) {
    ASSERT_TRUE(set.Insert(MixHash(i), i));
    ASSERT_LE(set.size() * 2, set.capacity());
  }
  for (std::uint32_t i = 0; i < 10000; ++i) {
    ASSERT_EQ(set.Find(MixHash(i), [&](std::uint32_t k) { return k == i; }), i);
  }
}

TEST(HashTest, BytesHashDependsOnContentAndLength) {
  EXPECT_EQ(HashBytes("abc", 3), HashBytes("abc", 3));
  EXPECT_NE(HashBytes("abc", 3), HashBytes("abd", 3));
  EXPECT_NE(HashBytes("ab\0", 3), HashBytes("ab", 2));
  EXPECT_NE(HashCombine(1, 2), HashCombine(2, 1));
}

}  // namespace
}  // namespace strata::profile
