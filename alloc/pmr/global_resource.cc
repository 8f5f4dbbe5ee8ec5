// alloc/pmr/global_resource.cc: strata::pmr::GlobalResource().
#include <cstddef>
#include <cstdint>
#include <memory_resource>
#include <new>

#include "alloc/pmr/pmr.h"
#include "alloc/strata.h"

namespace strata::pmr {
namespace {

// Blocks at or below this alignment come from Allocate (every engine block
// is 16-byte aligned); larger alignments from AllocateAligned.
constexpr std::size_t kEngineAlignment = 16;

class EngineResource final : public std::pmr::memory_resource {
 public:
  constexpr EngineResource() = default;

 protected:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    void* p = alignment <= kEngineAlignment ? strata::Allocate(bytes)
                                            : strata::AllocateAligned(bytes, alignment);
    if (STRATA_PREDICT_FALSE(p == nullptr)) throw std::bad_alloc();
    return p;
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
    if (alignment <= kEngineAlignment) {
      strata::FreeSized(p, bytes);
    } else {
      strata::FreeAlignedSized(p, bytes, alignment);
    }
  }
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override {
    return this == &other;
  }
};

// Constant-initialised and never destroyed: static destructors of other
// objects may still return memory to it at exit.
union NeverDestroyed {
  constexpr NeverDestroyed() : resource() {}
  ~NeverDestroyed() {}
  EngineResource resource;
};
constinit NeverDestroyed g_engine_resource;

}  // namespace

std::pmr::memory_resource* GlobalResource() noexcept { return &g_engine_resource.resource; }

}  // namespace strata::pmr
