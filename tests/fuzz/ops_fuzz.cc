// tests/fuzz/ops_fuzz.cc: random sequences of API operations (allocate,
// zeroed, aligned, kind-tagged, free, sized and aligned frees, reallocate,
// flush, release) against a shadow model of the live blocks. Checked:
// every block is usable, aligned as asked, zeroed when asked, keeps its
// contents (cookie) until freed and across Reallocate, never overlaps
// another live block, UsableSize/GoodSize/Owns agree; at the end the
// engine's live bytes are back where they started. Any error report from
// the engine aborts (a valid sequence must never produce one). Runs in
// whichever mode the process is in (the replay test runs both).
#include <cstdint>
#include <iterator>
#include <map>
#include <vector>

#include "alloc/internal/hardening.h"
#include "alloc/stats.h"
#include "alloc/strata.h"
#include "tests/fuzz/fuzz_input.h"
#include "tests/hardening/util.h"

namespace strata::fuzz {
namespace {

using internal::AllocKind;

struct Block {
  void* p;
  std::size_t n;
  std::uint64_t tag;
  std::size_t align;  // 0: default
  AllocKind kind;
};

constexpr std::size_t kMaxLiveBytes = std::size_t{192} << 20;

// The cookie: dense over the first 4 KiB (what a Reallocate must keep is
// checked there), then one word per 64 KiB and the last 64 bytes: every
// part of a block is written, without faulting in every page of the huge
// ones (page faults would dominate the run time).
void Fill(void* p, std::size_t n, std::uint64_t tag) {
  auto* b = static_cast<unsigned char*>(p);
  auto put = [&](std::size_t off) {
    std::uint64_t w = strata::testing::CookieWord(tag, off / 8);
    std::memcpy(b + off, &w, n - off < 8 ? n - off : 8);
  };
  for (std::size_t off = 0; off < n && off < 4096; off += 8) put(off);
  for (std::size_t off = 65536; off < n; off += 65536) put(off);
  for (std::size_t off = n > 4096 + 64 ? (n - 64) & ~std::size_t{7} : n; off < n; off += 8) put(off);
}
bool Check(const void* p, std::size_t n, std::uint64_t tag) {
  const auto* b = static_cast<const unsigned char*>(p);
  auto ok = [&](std::size_t off) {
    std::uint64_t w = strata::testing::CookieWord(tag, off / 8);
    return std::memcmp(b + off, &w, n - off < 8 ? n - off : 8) == 0;
  };
  for (std::size_t off = 0; off < n && off < 4096; off += 8) {
    if (!ok(off)) return false;
  }
  for (std::size_t off = 65536; off < n; off += 65536) {
    if (!ok(off)) return false;
  }
  for (std::size_t off = n > 4096 + 64 ? (n - 64) & ~std::size_t{7} : n; off < n; off += 8) {
    if (!ok(off)) return false;
  }
  return true;
}

class Model {
 public:
  ~Model() {
    for (const Block& b : blocks_) Release(b, 0);
  }

  // `fresh`: a new allocation (Reallocate may keep a block in place, so
  // only fresh blocks promise natural alignment to powers of two).
  void Add(void* p, std::size_t n, std::size_t align, AllocKind kind, std::uint64_t tag, bool fresh = true) {
    FUZZ_CHECK(p != nullptr);
    auto addr = reinterpret_cast<std::uintptr_t>(p);
    FUZZ_CHECK(addr % 16 == 0);
    if (align != 0) FUZZ_CHECK(addr % align == 0);
    if (fresh && n > 16 && n <= 4096 && (n & (n - 1)) == 0) FUZZ_CHECK(addr % n == 0);  // natural alignment
    std::size_t usable = UsableSize(p);
    FUZZ_CHECK(usable >= n);
    FUZZ_CHECK(Owns(p));
    // No overlap with a live block (a block handed out twice would).
    std::size_t extent = n == 0 ? 1 : n;
    auto next = ranges_.lower_bound(addr);
    if (next != ranges_.end()) FUZZ_CHECK(next->first >= addr + extent);
    if (next != ranges_.begin()) {
      auto prev = std::prev(next);
      FUZZ_CHECK(prev->first + prev->second <= addr);
    }
    ranges_[addr] = extent;
    Fill(p, n, tag);
    blocks_.push_back({p, n, tag, align, kind});
    live_bytes_ += n;
  }

  bool Empty() const { return blocks_.empty(); }
  bool Full() const { return live_bytes_ > kMaxLiveBytes; }
  Block Take(std::uint32_t index) {
    index %= static_cast<std::uint32_t>(blocks_.size());
    Block b = blocks_[index];
    blocks_[index] = blocks_.back();
    blocks_.pop_back();
    ranges_.erase(reinterpret_cast<std::uintptr_t>(b.p));
    live_bytes_ -= b.n;
    FUZZ_CHECK(Check(b.p, b.n, b.tag));
    return b;
  }

  // Frees `b` through an entry point that matches how it was allocated.
  static void Release(const Block& b, std::uint8_t how) {
    switch (b.kind) {
      case AllocKind::kNew:
      case AllocKind::kNewArray:
        if (b.align != 0) {
          if (how % 2 == 0) {
            internal::FreeAlignedAs(b.kind, b.p, b.align);
          } else {
            internal::FreeAlignedSizedAs(b.kind, b.p, b.n, b.align);
          }
        } else if (how % 2 == 0) {
          internal::FreeAs(b.kind, b.p);
        } else {
          internal::FreeSizedAs(b.kind, b.p, b.n);
        }
        return;
      case AllocKind::kMalloc:
        if (b.align != 0 && how % 2 == 1) {
          FreeAlignedSized(b.p, b.n, b.align);
        } else if (how % 3 == 0 && b.align == 0) {
          FreeSized(b.p, b.n);
        } else {
          Free(b.p);
        }
        return;
    }
  }

 private:
  std::vector<Block> blocks_;
  std::map<std::uintptr_t, std::size_t> ranges_;
  std::size_t live_bytes_ = 0;
};

}  // namespace
}  // namespace strata::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace strata;
  using namespace strata::fuzz;
  Input in(data, size);
  FlushThreadCache();
  const std::int64_t live_before = GetStats().live_bytes;
  {
    Model model;
    std::uint64_t tag = size;
    for (int op = 0; op < 1000 && !in.empty(); ++op) {
      ++tag;
      std::uint8_t what = in.Byte() % 12;
      if ((what < 6 && model.Full()) || (what >= 6 && what <= 8 && model.Empty())) what = 11;
      switch (what) {
        case 0:
        case 1:
        case 2: {
          std::size_t n = in.Size();
          model.Add(Allocate(n), n, 0, internal::AllocKind::kMalloc, tag);
          break;
        }
        case 3: {
          std::size_t count = 1 + in.Below(8);
          std::size_t each = in.Size() / count;
          auto* p = static_cast<unsigned char*>(AllocateZeroed(count, each));
          FUZZ_CHECK(p != nullptr);
          std::size_t n = count * each;
          std::size_t step = n > 65536 ? 65521 : 1;
          for (std::size_t i = 0; i < n; i += step) FUZZ_CHECK(p[i] == 0);
          if (n > 0) FUZZ_CHECK(p[n - 1] == 0);
          model.Add(p, n, 0, internal::AllocKind::kMalloc, tag);
          break;
        }
        case 4: {
          std::size_t n = in.Size();
          std::size_t align = std::size_t{1} << in.Below(22);
          void* p = AllocateAligned(n, align);
          model.Add(p, n, align > 16 ? align : 0, internal::AllocKind::kMalloc, tag);
          break;
        }
        case 5: {
          std::size_t n = in.Size();
          auto kind = in.Byte() % 2 == 0 ? internal::AllocKind::kNew : internal::AllocKind::kNewArray;
          std::size_t align = in.Byte() % 3 == 0 ? std::size_t{32} << in.Below(10) : 0;
          model.Add(internal::AllocateAs(kind, n, align), n, align, kind, tag);
          break;
        }
        case 6:
        case 7: {
          Block b = model.Take(in.Take<std::uint32_t>());
          Model::Release(b, in.Byte());
          break;
        }
        case 8: {
          // Reallocate (malloc-kind, unaligned blocks; others are freed).
          Block b = model.Take(in.Take<std::uint32_t>());
          if (b.kind != internal::AllocKind::kMalloc || b.align != 0) {
            Model::Release(b, 0);
            break;
          }
          std::size_t n = in.Size();
          if (n == 0) n = 1;
          auto* q = static_cast<unsigned char*>(Reallocate(b.p, n));
          FUZZ_CHECK(q != nullptr);
          // The kept prefix survived (the cookie's first 4 KiB are dense
          // and the same stream whatever the block's size).
          std::size_t keep = n < b.n ? n : b.n;
          std::size_t check = keep < 4096 ? keep : 4096;
          unsigned char want[4096];
          Fill(want, sizeof(want), b.tag);
          FUZZ_CHECK(std::memcmp(q, want, check) == 0);
          model.Add(q, n, 0, internal::AllocKind::kMalloc, tag, /*fresh=*/false);
          break;
        }
        case 9:
          FlushThreadCache();
          break;
        case 10:
          ReleaseMemory();
          break;
        default: {
          std::size_t n = in.Size();
          std::size_t g = GoodSize(n);
          FUZZ_CHECK(g >= n);
          break;
        }
      }
    }
  }
  FlushThreadCache();
  FUZZ_CHECK(GetStats().live_bytes == live_before);
  return 0;
}
