// Byte tokens: SentencePiece's "<0xXX>" pieces that spell one raw byte each
// (byte fallback), XX being two upper-case hex digits.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace strata {

// "<0x0A>" for 0x0A.
std::string ByteTokenText(uint8_t b);

// The byte text spells if it is "<0xXX>" (hex digits of either case, as
// SentencePiece accepts); nullopt otherwise.
std::optional<uint8_t> ParseByteToken(std::string_view text);

}  // namespace strata
