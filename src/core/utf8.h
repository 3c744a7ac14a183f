// UTF-8 helpers shared by the file readers, the tokenizers, the stream
// decoder and the template interpreter. Every
// function accepts arbitrary bytes (invalid UTF-8 included) and has defined
// behaviour for them.
//
// Thread-safety: pure functions; safe to call concurrently.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace strata::utf8 {

// Result of decoding one character at the front of some bytes.
struct Decoded {
  enum class Kind { kValid, kIncomplete, kInvalid };
  Kind kind = Kind::kInvalid;
  uint32_t codepoint = 0;  // meaningful for kValid
  size_t length = 1;       // bytes consumed: the character (kValid), all of
                           // bytes (kIncomplete), or 1 (kInvalid)
};

// Decodes the character at the front of bytes (REQUIRES: !bytes.empty()).
// Strict RFC 3629: overlong forms, surrogates and code points above U+10FFFF
// are kInvalid. kIncomplete means bytes is a proper prefix of a valid sequence.
Decoded DecodeFront(std::string_view bytes);

// Bytes of the valid character at the front of bytes, or 1 if none starts
// there: how the tokenizers step through text that may be invalid UTF-8.
// REQUIRES: !bytes.empty().
size_t CharLength(std::string_view bytes);

// True if text is entirely valid UTF-8.
bool IsValid(std::string_view text);

// Appends the UTF-8 encoding of codepoint. REQUIRES: codepoint <= 0x10FFFF.
void Append(uint32_t codepoint, std::string* out);

// The replacement character U+FFFD, emitted for invalid sequences.
inline constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

}  // namespace strata::utf8
