#include "vocab/wpm_vocab.h"

#include <algorithm>
#include <utility>

#include "vocab/unicode_tables.h"
#include "core/utf8.h"

namespace strata {

namespace {

constexpr std::string_view kSpaceMark = "\xE2\x96\x81";  // U+2581 '▁'
constexpr size_t kMaxWordChars = 100;                   // HF WordPiece's max_input_chars_per_word

// \p{C} minus the three controls BERT counts as whitespace, and U+FFFD.
constexpr std::string_view kControl = R"((?![\t\n\r])\p{C}|\x{FFFD})";
// Punctuation as BERT sees it: Unicode P*, plus every ASCII non-alphanumeric.
constexpr std::string_view kPunct = R"(\p{P}!-/:-@\[-`{-~)";
// CJK ideographs, with the block bounds HF tokenizers uses.
constexpr std::string_view kCjk =
    R"(\x{4E00}-\x{9FFF}\x{3400}-\x{4DBF}\x{20000}-\x{2A6DF}\x{2A700}-\x{2B73F}\x{2B740}-\x{2B81F})"
    R"(\x{2B920}-\x{2CEAF}\x{F900}-\x{FAFF}\x{2F800}-\x{2FA1F})";

// One word: a punctuation character, an ideograph, or a run of anything
// else that is not whitespace.
std::string WordPattern() {
  const std::string punct(kPunct), cjk(kCjk);
  return "[" + punct + "]|[" + cjk + "]|[^\\s" + punct + cjk + "]+";
}

// text without the spans regex matches (it never matches empty).
std::string RemoveMatches(const Regex& regex, std::string_view text) {
  Regex::MatchScratch scratch(regex);
  std::string out;
  out.reserve(text.size());
  size_t pos = 0, begin = 0, end = 0;
  while (pos < text.size() && regex.Find(text, pos, &scratch, &begin, &end) && end > begin) {
    out.append(text.substr(pos, begin - pos));
    pos = end;
  }
  out.append(text.substr(pos));
  return out;
}

// Applies map to every code point of valid UTF-8 text.
template <class Map>
std::string MapCodePoints(std::string_view text, Map map) {
  std::u32string mapped;
  while (!text.empty()) {
    const utf8::Decoded d = utf8::DecodeFront(text);
    if (d.kind == utf8::Decoded::Kind::kValid) map(d.codepoint, &mapped);
    text.remove_prefix(d.length);
  }
  std::string out;
  for (char32_t c : mapped) utf8::Append(c, &out);
  return out;
}

bool IsContinuationByte(char c) { return (static_cast<uint8_t>(c) & 0xC0) == 0x80; }

}  // namespace

Status WpmVocab::Create(const VocabSpec& spec, std::unique_ptr<Vocab>* out) {
  Patterns p;
  STRATA_RETURN_IF_ERROR(Regex::Compile(kControl, &p.control));
  STRATA_RETURN_IF_ERROR(Regex::Compile(R"(\p{Mn})", &p.mark));
  STRATA_RETURN_IF_ERROR(Regex::Compile(WordPattern(), &p.word));
  out->reset(new WpmVocab(spec, std::move(p)));
  return Status::Ok();
}

WpmVocab::WpmVocab(const VocabSpec& spec, Patterns patterns)
    : VocabBase(spec), patterns_(std::move(patterns)), lowercase_(spec.lowercase) {
  pieces_.resize(spec.tokens.size());
  for (TokenId id = 0; id < n_tokens(); ++id) {
    const std::string& text = token_text(id);
    max_token_bytes_ = std::max(max_token_bytes_, text.size());
    if (token_type(id) == TokenType::kNormal) {
      // Only a leading '▁' marks a word start; the text is otherwise literal.
      pieces_[id] = text.starts_with(kSpaceMark) ? " " + text.substr(kSpaceMark.size()) : text;
    } else if (token_type(id) == TokenType::kUserDefined) {
      pieces_[id] = text;
    }
  }
}

std::string WpmVocab::Normalize(std::string_view text) const {
  // Dropping invalid bytes first keeps every later pass on valid UTF-8.
  std::string s = MapCodePoints(text, [](uint32_t cp, std::u32string* out) { out->push_back(cp); });
  s = RemoveMatches(*patterns_.control, s);
  if (!lowercase_) return s;
  s = MapCodePoints(s, unicode::AppendNfd);
  s = RemoveMatches(*patterns_.mark, s);
  return MapCodePoints(s, unicode::AppendLower);
}

void WpmVocab::EncodeFragment(std::string_view text, bool /*after_special*/, std::vector<TokenId>* out) const {
  const std::string normalized = Normalize(text);
  const std::string_view s(normalized);
  Regex::MatchScratch scratch(*patterns_.word);
  size_t pos = 0, begin = 0, end = 0;
  while (pos < s.size() && patterns_.word->Find(s, pos, &scratch, &begin, &end) && end > begin) {
    EncodeWord(s.substr(begin, end - begin), out);
    pos = end;
  }
}

void WpmVocab::EncodeWord(std::string_view word, std::vector<TokenId>* out) const {
  size_t chars = 0;
  for (char c : word) chars += !IsContinuationByte(c);
  const size_t mark = out->size();
  if (chars <= kMaxWordChars) {
    const std::string text = std::string(kSpaceMark) + std::string(word);
    const std::string_view w(text);
    size_t start = 0;
    while (start < w.size()) {
      // The first piece must cover at least one character after the '▁'.
      const size_t min_end = start + (start == 0 ? kSpaceMark.size() : 0);
      TokenId id = -1;
      size_t end = std::min(w.size(), start + max_token_bytes_);
      for (; end > min_end; --end) {
        if (end < w.size() && IsContinuationByte(w[end])) continue;
        if ((id = Find(w.substr(start, end - start))) >= 0) break;
      }
      if (id < 0) break;
      out->push_back(id);
      start = end;
    }
    if (start == w.size()) return;
  }
  out->resize(mark);
  if (unk() >= 0) out->push_back(unk());
}

}  // namespace strata
