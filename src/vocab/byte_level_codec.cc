#include "vocab/byte_level_codec.h"

#include "core/utf8.h"

namespace strata {

namespace {

bool MapsToItself(int b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); }

}  // namespace

ByteLevelCodec::ByteLevelCodec() {
  uint32_t next_shifted = 0x100;
  for (int b = 0; b < 256; ++b) {
    const uint32_t cp = MapsToItself(b) ? static_cast<uint32_t>(b) : next_shifted++;
    utf8::Append(cp, &encoded_[b]);
    decoded_.emplace(cp, static_cast<uint8_t>(b));
  }
}

std::string ByteLevelCodec::Decode(std::string_view text) const {
  std::string out;
  out.reserve(text.size());
  while (!text.empty()) {
    const utf8::Decoded d = utf8::DecodeFront(text);
    const auto it = d.kind == utf8::Decoded::Kind::kValid ? decoded_.find(d.codepoint) : decoded_.end();
    if (it != decoded_.end()) {
      out.push_back(static_cast<char>(it->second));
    } else {
      out.append(text.substr(0, d.length));
    }
    text.remove_prefix(d.length);
  }
  return out;
}

}  // namespace strata
