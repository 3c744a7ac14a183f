// ByteLevelCodec: GPT-2's reversible byte <-> printable-character mapping used
// by byte-level BPE vocabularies. Bytes that are printable Latin-1 ('!'..'~',
// U+00A1..U+00AC, U+00AE..U+00FF) map to themselves; the remaining 68 bytes
// map, in increasing order, to U+0100, U+0101, ... (so ' ' becomes 'Ġ').
//
// Thread-safety: immutable after construction; safe to share.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace strata {

class ByteLevelCodec {
 public:
  ByteLevelCodec();

  // UTF-8 text of the character byte b is mapped to (1 or 2 bytes).
  const std::string& Encode(uint8_t b) const { return encoded_[b]; }

  // Maps every character of text back to its byte. A character outside the
  // mapping (possible in hand-written vocab entries) is kept as its own UTF-8
  // bytes, as are invalid UTF-8 bytes, so decoding never fails.
  std::string Decode(std::string_view text) const;

 private:
  std::array<std::string, 256> encoded_;
  std::unordered_map<uint32_t, uint8_t> decoded_;  // code point -> byte
};

}  // namespace strata
