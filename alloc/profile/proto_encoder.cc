// alloc/profile/proto_encoder.cc: see proto_encoder.h.
#include "alloc/profile/proto_encoder.h"

namespace strata::profile {

std::size_t VarintSize(std::uint64_t v) {
  std::size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

std::size_t EncodeVarint(std::uint64_t v, std::uint8_t* out) {
  std::size_t n = 0;
  while (v >= 0x80) {
    out[n++] = static_cast<std::uint8_t>(v | 0x80);
    v >>= 7;
  }
  out[n++] = static_cast<std::uint8_t>(v);
  return n;
}

std::size_t EncodeFieldHeader(std::uint32_t field, WireType type,
                              std::uint64_t length, std::uint8_t* out) {
  std::size_t n = EncodeVarint(
      (static_cast<std::uint64_t>(field) << 3) | static_cast<std::uint8_t>(type),
      out);
  if (type == WireType::kLengthDelimited) n += EncodeVarint(length, out + n);
  return n;
}

void ProtoEncoder::AppendRaw(const void* data, std::size_t n) {
  if (!ok_) return;
  if (!buf_.Append(static_cast<const std::uint8_t*>(data), n)) ok_ = false;
}

void ProtoEncoder::AppendVarint(std::uint64_t v) {
  std::uint8_t tmp[kMaxVarintBytes];
  AppendRaw(tmp, EncodeVarint(v, tmp));
}

void ProtoEncoder::AppendTag(std::uint32_t field, WireType type) {
  AppendVarint((static_cast<std::uint64_t>(field) << 3) |
               static_cast<std::uint8_t>(type));
}

void ProtoEncoder::Varint(std::uint32_t field, std::uint64_t v) {
  AppendTag(field, WireType::kVarint);
  AppendVarint(v);
}

void ProtoEncoder::Bytes(std::uint32_t field, const void* data, std::size_t n) {
  std::uint8_t header[kMaxFieldHeaderBytes];
  AppendRaw(header,
            EncodeFieldHeader(field, WireType::kLengthDelimited, n, header));
  AppendRaw(data, n);
}

void ProtoEncoder::PackedVarints(std::uint32_t field, const std::uint64_t* v,
                                 std::size_t n) {
  if (n == 0) return;
  std::uint64_t payload = 0;
  for (std::size_t i = 0; i < n; ++i) payload += VarintSize(v[i]);
  std::uint8_t header[kMaxFieldHeaderBytes];
  AppendRaw(header, EncodeFieldHeader(field, WireType::kLengthDelimited,
                                      payload, header));
  for (std::size_t i = 0; i < n; ++i) AppendVarint(v[i]);
}

void ProtoEncoder::PackedInt64s(std::uint32_t field, const std::int64_t* v,
                                std::size_t n) {
  if (n == 0) return;
  std::uint64_t payload = 0;
  for (std::size_t i = 0; i < n; ++i) {
    payload += VarintSize(static_cast<std::uint64_t>(v[i]));
  }
  std::uint8_t header[kMaxFieldHeaderBytes];
  AppendRaw(header, EncodeFieldHeader(field, WireType::kLengthDelimited,
                                      payload, header));
  for (std::size_t i = 0; i < n; ++i) {
    AppendVarint(static_cast<std::uint64_t>(v[i]));
  }
}

}  // namespace strata::profile
