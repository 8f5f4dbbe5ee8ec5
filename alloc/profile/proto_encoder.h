// alloc/profile/proto_encoder.h: a minimal protocol-buffers wire encoder
// that writes into a ScratchArena (no malloc), enough for profile.proto.
//
// Contract:
//   - Encodes the proto wire format: varints (LEB128, 10 bytes at most;
//     int64 negatives as their two's-complement uint64, as protobuf does
//     for the int64 type), tags (field << 3 | wire type), length-delimited
//     fields, and packed repeated varints.
//   - Field numbers must be in [1, 2^29 - 1].
//   - "Optional*" helpers implement proto3 default elision: a zero value is
//     not written. The plain helpers always write (use them for repeated
//     elements, where zeros are data).
//   - On allocation failure the encoder latches ok() == false and ignores
//     further writes; check ok() once at the end.
//
// Thread-safety: none.
#ifndef STRATA_ALLOC_PROFILE_PROTO_ENCODER_H_
#define STRATA_ALLOC_PROFILE_PROTO_ENCODER_H_

#include <cstddef>
#include <cstdint>

#include "alloc/profile/scratch_arena.h"

namespace strata::profile {

enum class WireType : std::uint8_t {
  kVarint = 0,
  kFixed64 = 1,
  kLengthDelimited = 2,
  kFixed32 = 5,
};

inline constexpr std::size_t kMaxVarintBytes = 10;
// Tag (5 bytes at most for a 29-bit field number) + length varint.
inline constexpr std::size_t kMaxFieldHeaderBytes = 5 + kMaxVarintBytes;

// Number of bytes the varint encoding of `v` takes (1..10).
std::size_t VarintSize(std::uint64_t v);
// Writes the varint encoding of `v` to `out` (room for kMaxVarintBytes);
// returns the number of bytes written.
std::size_t EncodeVarint(std::uint64_t v, std::uint8_t* out);
// Writes the tag of `field`/`type` and, for kLengthDelimited, the `length`
// varint, to `out` (room for kMaxFieldHeaderBytes); returns the byte count.
std::size_t EncodeFieldHeader(std::uint32_t field, WireType type,
                              std::uint64_t length, std::uint8_t* out);

class ProtoEncoder {
 public:
  explicit ProtoEncoder(ScratchArena* arena) : buf_(arena) {}
  ProtoEncoder(const ProtoEncoder&) = delete;
  ProtoEncoder& operator=(const ProtoEncoder&) = delete;

  // Forgets the contents, keeping the storage (and the ok() latch).
  void Clear() { buf_.Resize(0); }

  void AppendRaw(const void* data, std::size_t n);
  void AppendVarint(std::uint64_t v);
  void AppendTag(std::uint32_t field, WireType type);

  // A varint field (uint64, int64, bool, enum).
  void Varint(std::uint32_t field, std::uint64_t v);
  void Int64(std::uint32_t field, std::int64_t v) {
    Varint(field, static_cast<std::uint64_t>(v));
  }
  void OptionalVarint(std::uint32_t field, std::uint64_t v) {
    if (v != 0) Varint(field, v);
  }
  void OptionalInt64(std::uint32_t field, std::int64_t v) {
    if (v != 0) Int64(field, v);
  }
  void OptionalBool(std::uint32_t field, bool v) {
    if (v) Varint(field, 1);
  }
  // A length-delimited field holding `n` raw bytes (string, bytes).
  void Bytes(std::uint32_t field, const void* data, std::size_t n);
  // A length-delimited field holding an already-encoded message.
  void Message(std::uint32_t field, const ProtoEncoder& message) {
    Bytes(field, message.data(), message.size());
  }
  // A packed repeated varint field; writes nothing when n == 0.
  void PackedVarints(std::uint32_t field, const std::uint64_t* v,
                     std::size_t n);
  void PackedInt64s(std::uint32_t field, const std::int64_t* v,
                    std::size_t n);

  bool ok() const { return ok_; }
  const std::uint8_t* data() const { return buf_.data(); }
  std::size_t size() const { return buf_.size(); }

 private:
  ArenaVector<std::uint8_t> buf_;
  bool ok_ = true;
};

}  // namespace strata::profile

#endif  // STRATA_ALLOC_PROFILE_PROTO_ENCODER_H_
