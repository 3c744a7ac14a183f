#include "core/utf8.h"

namespace strata::utf8 {

namespace {

bool IsContinuation(uint8_t b) { return (b & 0xC0) == 0x80; }

// Valid range of the second byte for a lead byte (RFC 3629 table 3-7): this
// is what rules out overlong forms, surrogates and values above U+10FFFF.
bool SecondByteOk(uint8_t lead, uint8_t second) {
  switch (lead) {
    case 0xE0: return second >= 0xA0 && second <= 0xBF;
    case 0xED: return second >= 0x80 && second <= 0x9F;
    case 0xF0: return second >= 0x90 && second <= 0xBF;
    case 0xF4: return second >= 0x80 && second <= 0x8F;
    default: return IsContinuation(second);
  }
}

}  // namespace

Decoded DecodeFront(std::string_view bytes) {
  Decoded d;
  const auto lead = static_cast<uint8_t>(bytes[0]);
  if (lead < 0x80) return {Decoded::Kind::kValid, lead, 1};
  size_t need;
  uint32_t cp;
  if (lead >= 0xC2 && lead <= 0xDF) {
    need = 2, cp = lead & 0x1F;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    need = 3, cp = lead & 0x0F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    need = 4, cp = lead & 0x07;
  } else {
    return d;  // continuation byte, C0/C1 or F5..FF: never valid as a lead
  }
  for (size_t i = 1; i < need; ++i) {
    if (i >= bytes.size()) return {Decoded::Kind::kIncomplete, 0, bytes.size()};
    const auto b = static_cast<uint8_t>(bytes[i]);
    if (i == 1 ? !SecondByteOk(lead, b) : !IsContinuation(b)) return d;
    cp = (cp << 6) | (b & 0x3F);
  }
  return {Decoded::Kind::kValid, cp, need};
}

size_t CharLength(std::string_view bytes) {
  const Decoded d = DecodeFront(bytes);
  return d.kind == Decoded::Kind::kValid ? d.length : 1;
}

bool IsValid(std::string_view text) {
  while (!text.empty()) {
    const Decoded d = DecodeFront(text);
    if (d.kind != Decoded::Kind::kValid) return false;
    text.remove_prefix(d.length);
  }
  return true;
}

void Append(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace strata::utf8
