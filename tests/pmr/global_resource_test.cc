// tests/pmr/global_resource_test.cc: strata::pmr::GlobalResource().
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory_resource>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "alloc/pmr.h"
#include "alloc/strata.h"
#include "gtest/gtest.h"

namespace {

bool IsAligned(const void* p, std::size_t alignment) {
  return reinterpret_cast<std::uintptr_t>(p) % alignment == 0;
}

TEST(GlobalResourceTest, IsOneObjectEqualOnlyToItself) {
  std::pmr::memory_resource* r = strata::pmr::GlobalResource();
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r, strata::pmr::GlobalResource());
  EXPECT_TRUE(r->is_equal(*r));
  EXPECT_FALSE(r->is_equal(*std::pmr::new_delete_resource()));
  EXPECT_FALSE(std::pmr::new_delete_resource()->is_equal(*r));
}

TEST(GlobalResourceTest, HonoursEverySizeAndPowerOfTwoAlignment) {
  std::pmr::memory_resource* r = strata::pmr::GlobalResource();
  for (std::size_t alignment = 1; alignment <= (std::size_t{1} << 20); alignment <<= 1) {
    for (std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{7}, std::size_t{100},
                             std::size_t{4096}, std::size_t{70000}}) {
      void* p = r->allocate(size, alignment);
      ASSERT_NE(p, nullptr);
      EXPECT_TRUE(IsAligned(p, alignment)) << size << " @ " << alignment;
      EXPECT_TRUE(strata::Owns(p));
      EXPECT_GE(strata::UsableSize(p), size);
      std::memset(p, 0xcd, size);
      r->deallocate(p, size, alignment);
    }
  }
}

TEST(GlobalResourceTest, ThrowsBadAllocOnFailure) {
  std::pmr::memory_resource* r = strata::pmr::GlobalResource();
  EXPECT_THROW((void)r->allocate(SIZE_MAX - 4096, 16), std::bad_alloc);
  EXPECT_THROW((void)r->allocate(std::size_t{1} << 62, 64), std::bad_alloc);
}

TEST(GlobalResourceTest, WorksAsTheDefaultResourceForContainers) {
  std::pmr::memory_resource* previous =
      std::pmr::set_default_resource(strata::pmr::GlobalResource());
  {
    std::pmr::vector<std::pmr::string> v;
    std::pmr::map<int, std::pmr::string> m;
    for (int i = 0; i < 1000; ++i) {
      v.emplace_back(std::string(50, static_cast<char>('a' + i % 26)));
      m.emplace(i, v.back());
    }
    EXPECT_TRUE(strata::Owns(v.data()));
    EXPECT_EQ(std::string_view(m.at(27)), std::string(50, 'b'));
  }
  std::pmr::set_default_resource(previous);
}

TEST(GlobalResourceTest, ManyThreads) {
  std::pmr::memory_resource* r = strata::pmr::GlobalResource();
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([r, t] {
      std::pmr::vector<std::pmr::string> v(r);
      for (int i = 0; i < 2000; ++i) v.emplace_back(std::string(10 + (i + t) % 200, 'x'));
      std::pmr::unordered_map<int, int> m(r);
      for (int i = 0; i < 2000; ++i) m[i] = i * t;
      for (int i = 0; i < 2000; ++i) ASSERT_EQ(m[i], i * t);
    });
  }
  for (auto& th : threads) th.join();
}

}  // namespace
