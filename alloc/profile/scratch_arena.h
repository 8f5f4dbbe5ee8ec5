// alloc/profile/scratch_arena.h: an mmap-backed, growable bump arena for
// code that runs inside the allocator process but must not call malloc (the
// heap profile writer), plus ArenaVector, a growable array living in it.
//
// Contract:
//   - Memory comes straight from mmap(2) in chunks; nothing here calls
//     malloc, operator new, or takes a lock. Allocation never fails loudly:
//     it returns nullptr when mmap fails or a size overflows.
//   - Every byte handed out is zero-filled: chunks are fresh anonymous
//     mappings and the bump pointer never moves backwards (Reallocate never
//     shrinks in place), so no byte is handed out twice.
//   - There is no per-allocation free. Release() (or the destructor) unmaps
//     every chunk at once; all pointers into the arena die with it.
//   - Chunks grow geometrically (kFirstChunkBytes doubling up to
//     kMaxChunkBytes); a request larger than the next chunk gets a chunk of
//     its own size, so reservations stay modest (valgrind-friendly).
//
// Thread-safety: none. An arena belongs to one thread at a time (the writer
// creates one per call on its own stack).
#ifndef STRATA_ALLOC_PROFILE_SCRATCH_ARENA_H_
#define STRATA_ALLOC_PROFILE_SCRATCH_ARENA_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace strata::profile {

class ScratchArena {
 public:
  // First chunk: big enough for zlib's deflate state (about 270 KiB with the
  // default window and memLevel) plus the tables of a small profile.
  static constexpr std::size_t kFirstChunkBytes = std::size_t{512} << 10;
  // Growth stops doubling here: past 16 MiB a profile is large anyway and
  // doubling further would reserve far more than it uses.
  static constexpr std::size_t kMaxChunkBytes = std::size_t{16} << 20;
  // Default alignment of Allocate: enough for any scalar the writer stores.
  static constexpr std::size_t kDefaultAlign = 16;

  ScratchArena() = default;
  ~ScratchArena() { Release(); }
  ScratchArena(const ScratchArena&) = delete;
  ScratchArena& operator=(const ScratchArena&) = delete;

  // Returns `bytes` zero-filled bytes aligned to `align` (a power of two,
  // at most the page size), or nullptr on failure. Allocate(0) returns a
  // valid, unique-enough pointer into the current chunk (never nullptr
  // unless mapping the first chunk fails).
  void* Allocate(std::size_t bytes, std::size_t align = kDefaultAlign);

  // Grows the block `p` (of `old_bytes`, from Allocate/Reallocate with the
  // same `align`) to `new_bytes`. Extends in place when `p` is the most
  // recent allocation and the chunk has room; otherwise allocates anew and
  // copies `old_bytes`. The old block is then abandoned (reclaimed only by
  // Release). Returns nullptr on failure, leaving `p` intact. A request
  // that does not grow returns `p` unchanged. `p` may be nullptr.
  void* Reallocate(void* p, std::size_t old_bytes, std::size_t new_bytes,
                   std::size_t align = kDefaultAlign);

  // Typed helper: `n` zero-filled elements of a trivially-copyable `T`.
  template <typename T>
  T* AllocateArray(std::size_t n) {
    static_assert(std::is_trivially_copyable_v<T>);
    if (n > SIZE_MAX / sizeof(T)) return nullptr;
    return static_cast<T*>(Allocate(n * sizeof(T), alignof(T) < kDefaultAlign
                                                       ? kDefaultAlign
                                                       : alignof(T)));
  }

  // Unmaps every chunk. The arena is reusable afterwards (starts over).
  void Release();

  // Bytes mapped from the OS (including chunk headers and slack).
  std::size_t bytes_reserved() const { return bytes_reserved_; }
  // Bytes handed out (including alignment padding).
  std::size_t bytes_used() const { return bytes_used_; }
  std::size_t chunk_count() const { return chunk_count_; }

 private:
  struct ChunkHeader {
    ChunkHeader* prev;
    std::size_t mapped_bytes;
  };

  // Maps a chunk able to hold `bytes` at `align`; false on failure.
  bool NewChunk(std::size_t bytes, std::size_t align);

  ChunkHeader* head_ = nullptr;
  char* cursor_ = nullptr;       // next free byte in the current chunk
  char* limit_ = nullptr;        // end of the current chunk
  char* last_block_ = nullptr;   // start of the most recent allocation
  std::size_t next_chunk_bytes_ = kFirstChunkBytes;
  std::size_t bytes_reserved_ = 0;
  std::size_t bytes_used_ = 0;
  std::size_t chunk_count_ = 0;
};

// A growable array of trivially-copyable T stored in a ScratchArena.
// Growth doubles the capacity through ScratchArena::Reallocate (in place
// when the array is the arena's newest block). Operations that can grow
// return false on allocation failure and leave the array unchanged.
// New elements (Resize) are zero-filled.
template <typename T>
class ArenaVector {
  static_assert(std::is_trivially_copyable_v<T>,
                "ArenaVector holds trivially-copyable types only");

 public:
  explicit ArenaVector(ScratchArena* arena) : arena_(arena) {}
  ArenaVector(const ArenaVector&) = delete;
  ArenaVector& operator=(const ArenaVector&) = delete;

  bool Reserve(std::size_t n) {
    if (n <= capacity_) return true;
    std::size_t cap = capacity_ == 0 ? kMinCapacity : capacity_;
    while (cap < n) {
      if (cap > SIZE_MAX / 2 / sizeof(T)) return false;
      cap *= 2;
    }
    void* p = arena_->Reallocate(data_, size_ * sizeof(T), cap * sizeof(T),
                                 Align());
    if (p == nullptr) return false;
    data_ = static_cast<T*>(p);
    capacity_ = cap;
    return true;
  }

  bool PushBack(const T& v) {
    if (size_ == capacity_ && !Reserve(size_ + 1)) return false;
    data_[size_++] = v;
    return true;
  }

  // Appends `n` elements copied from `src`.
  bool Append(const T* src, std::size_t n) {
    if (n == 0) return true;
    if (n > SIZE_MAX - size_ || !Reserve(size_ + n)) return false;
    std::memcpy(data_ + size_, src, n * sizeof(T));
    size_ += n;
    return true;
  }

  // Grows to `n` zero-filled elements or shrinks (the tail is zeroed so
  // that regrowth stays zero-filled).
  bool Resize(std::size_t n) {
    if (n > size_) {
      if (!Reserve(n)) return false;
    } else if (n < size_) {
      std::memset(static_cast<void*>(data_ + n), 0, (size_ - n) * sizeof(T));
    }
    size_ = n;
    return true;
  }

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  T* data() { return data_; }
  const T* data() const { return data_; }
  T& operator[](std::size_t i) { return data_[i]; }
  const T& operator[](std::size_t i) const { return data_[i]; }
  T* begin() { return data_; }
  T* end() { return data_ + size_; }
  const T* begin() const { return data_; }
  const T* end() const { return data_ + size_; }

 private:
  static constexpr std::size_t kMinCapacity = 16;
  static constexpr std::size_t Align() {
    return alignof(T) < ScratchArena::kDefaultAlign ? ScratchArena::kDefaultAlign
                                                    : alignof(T);
  }

  ScratchArena* arena_;
  T* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

}  // namespace strata::profile

#endif  // STRATA_ALLOC_PROFILE_SCRATCH_ARENA_H_
