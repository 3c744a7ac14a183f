#include "vocab/spm_vocab.h"

#include <queue>

#include "vocab/byte_token.h"
#include "core/utf8.h"

namespace strata {

namespace {

constexpr std::string_view kSpaceMark = "\xE2\x96\x81";  // U+2581 '▁'

std::string Unescape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  for (size_t hit; (hit = text.find(kSpaceMark, pos)) != std::string_view::npos; pos = hit + kSpaceMark.size()) {
    out.append(text.substr(pos, hit - pos));
    out.push_back(' ');
  }
  out.append(text.substr(pos));
  return out;
}

// A run of the text being merged; symbols form a doubly linked list.
struct Symbol {
  int prev;
  int next;
  size_t begin;
  size_t len;  // 0 once merged into its left neighbour
};

// A candidate merge of two adjacent symbols.
struct Bigram {
  float score;
  int left;
  int right;
  size_t len;  // combined length when queued; stale if the symbols changed
};

struct LowerPriority {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

}  // namespace

SpmVocab::SpmVocab(const VocabSpec& spec) : VocabBase(spec) {
  pieces_.resize(spec.tokens.size());
  for (TokenId id = 0; id < n_tokens(); ++id) {
    switch (token_type(id)) {
      case TokenType::kNormal: pieces_[id] = Unescape(token_text(id)); break;
      case TokenType::kUserDefined: pieces_[id] = token_text(id); break;
      case TokenType::kByte: pieces_[id] = std::string(1, static_cast<char>(*ParseByteToken(token_text(id)))); break;
      default: break;  // control and unknown render via VocabBase; unused and undefined as ""
    }
  }
  for (int b = 0; b < 256; ++b) byte_tokens_[b] = Find(ByteTokenText(static_cast<uint8_t>(b)));
}

TokenId SpmVocab::Mergeable(std::string_view text) const {
  const TokenId id = Find(text);
  if (id < 0) return -1;
  const TokenType t = token_type(id);
  return t == TokenType::kNormal || t == TokenType::kUserDefined ? id : -1;
}

void SpmVocab::AppendSymbol(std::string_view symbol, std::vector<TokenId>* out) const {
  const TokenId id = Mergeable(symbol);
  if (id >= 0) {
    out->push_back(id);
    return;
  }
  for (char c : symbol) {
    if (byte_tokens_[static_cast<uint8_t>(c)] < 0) {
      if (unk() >= 0) out->push_back(unk());
      return;
    }
  }
  for (char c : symbol) out->push_back(byte_tokens_[static_cast<uint8_t>(c)]);
}

void SpmVocab::EncodeFragment(std::string_view fragment, bool after_special, std::vector<TokenId>* out) const {
  std::string text;
  text.reserve(fragment.size() + kSpaceMark.size());
  if (add_space_prefix() && after_special) text.append(kSpaceMark);
  for (char c : fragment) {
    if (c == ' ') {
      text.append(kSpaceMark);
    } else {
      text.push_back(c);
    }
  }

  std::vector<Symbol> symbols;
  symbols.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    const size_t len = utf8::CharLength(std::string_view(text).substr(pos));
    const int index = static_cast<int>(symbols.size());
    symbols.push_back({index - 1, pos + len == text.size() ? -1 : index + 1, pos, len});
    pos += len;
  }

  std::priority_queue<Bigram, std::vector<Bigram>, LowerPriority> queue;
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const size_t len = symbols[left].len + symbols[right].len;
    const TokenId id = Mergeable(std::string_view(text).substr(symbols[left].begin, len));
    if (id >= 0) queue.push({score(id), left, right, len});
  };
  for (int i = 1; i < static_cast<int>(symbols.size()); ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& left = symbols[b.left];
    Symbol& right = symbols[b.right];
    if (left.len == 0 || right.len == 0 || left.len + right.len != b.len) continue;  // stale
    left.len += right.len;
    right.len = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = b.left;
    try_add(left.prev, b.left);
    try_add(b.left, left.next);
  }

  for (int i = symbols.empty() ? -1 : 0; i >= 0; i = symbols[i].next) {
    AppendSymbol(std::string_view(text).substr(symbols[i].begin, symbols[i].len), out);
  }
}

}  // namespace strata
