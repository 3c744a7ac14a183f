#include "vocab/bpe_vocab.h"

#include <queue>
#include <utility>

#include "vocab/bpe_presets.h"
#include "vocab/byte_token.h"

namespace strata {

namespace {

uint64_t PairKey(TokenId left, TokenId right) {
  return static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32 | static_cast<uint32_t>(right);
}

// One byte-run of the piece being merged; symbols form a doubly linked list.
struct Symbol {
  int prev;
  int next;
  TokenId id;  // -1: a byte no token covers (never merges)
  bool alive;  // false once merged into its left neighbour
};

struct Candidate {
  int32_t rank;
  int left;
  int right;
  TokenId left_id;  // ids when queued; the candidate is stale if they changed
  TokenId right_id;
  TokenId result;
};

struct LowerPriority {
  bool operator()(const Candidate& a, const Candidate& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

}  // namespace

Status BpeVocab::Create(const VocabSpec& spec, std::unique_ptr<Vocab>* out) {
  BpePreset preset;
  STRATA_RETURN_IF_ERROR(LookupBpePreset(spec.pre, &preset));
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  STRATA_RETURN_IF_ERROR(PreTokenizer::Create(preset.regexes, &pre_tokenizer));
  std::unique_ptr<BpeVocab> vocab(new BpeVocab(spec, std::move(pre_tokenizer)));
  STRATA_RETURN_IF_ERROR(vocab->AddMerges(spec.merges));
  *out = std::move(vocab);
  return Status::Ok();
}

BpeVocab::BpeVocab(const VocabSpec& spec, std::unique_ptr<PreTokenizer> pre_tokenizer)
    : VocabBase(spec), pre_tokenizer_(std::move(pre_tokenizer)), ignore_merges_(spec.ignore_merges) {
  pieces_.resize(spec.tokens.size());
  for (TokenId id = 0; id < n_tokens(); ++id) {
    const std::string& text = token_text(id);
    switch (token_type(id)) {
      case TokenType::kNormal: pieces_[id] = codec_.Decode(text); break;
      case TokenType::kUserDefined: pieces_[id] = text; break;
      case TokenType::kByte: {
        const auto byte = ParseByteToken(text);
        pieces_[id] = byte ? std::string(1, static_cast<char>(*byte)) : codec_.Decode(text);
        break;
      }
      default: break;  // control and unknown render via VocabBase; unused and undefined as ""
    }
  }
  for (int b = 0; b < 256; ++b) byte_tokens_[b] = Find(codec_.Encode(static_cast<uint8_t>(b)));
}

Status BpeVocab::AddMerges(const std::vector<std::string>& merges) {
  merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const std::string& m = merges[rank];
    // Split at the first space after the first character: a token may be a
    // lone space in vocabularies that do not map bytes.
    const size_t space = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
    const auto bad = [&](const char* why) {
      return Status::Corrupt("tokenizer.ggml.merges[" + std::to_string(rank) + "] '" + m + "': " + why);
    };
    if (space == std::string::npos) return bad("not of the form 'left right'");
    const std::string_view left(m.data(), space);
    const std::string_view right = std::string_view(m).substr(space + 1);
    const TokenId left_id = Find(left);
    const TokenId right_id = Find(right);
    const TokenId result = Find(std::string(left) + std::string(right));
    if (left_id < 0 || right_id < 0) return bad("names a token that is not in the vocabulary");
    if (result < 0) return bad("the merged token is not in the vocabulary");
    merges_.emplace(PairKey(left_id, right_id), Merge{static_cast<int32_t>(rank), result});  // first listing wins
  }
  return Status::Ok();
}

const BpeVocab::Merge* BpeVocab::FindMerge(TokenId left, TokenId right) const {
  if (left < 0 || right < 0) return nullptr;
  const auto it = merges_.find(PairKey(left, right));
  return it == merges_.end() ? nullptr : &it->second;
}

void BpeVocab::EncodeFragment(std::string_view text, bool /*after_special*/, std::vector<TokenId>* out) const {
  std::vector<std::string_view> pieces;
  pre_tokenizer_->Split(text, &pieces);
  for (std::string_view piece : pieces) EncodePiece(piece, out);
}

void BpeVocab::EncodePiece(std::string_view piece, std::vector<TokenId>* out) const {
  if (ignore_merges_) {
    std::string mapped;
    for (char c : piece) mapped += codec_.Encode(static_cast<uint8_t>(c));
    const TokenId whole = Find(mapped);
    if (whole >= 0) {
      out->push_back(whole);
      return;
    }
  }

  const int n = static_cast<int>(piece.size());
  std::vector<Symbol> symbols(n);
  for (int i = 0; i < n; ++i) {
    symbols[i] = {i - 1, i + 1 < n ? i + 1 : -1, byte_tokens_[static_cast<uint8_t>(piece[i])], true};
  }
  std::priority_queue<Candidate, std::vector<Candidate>, LowerPriority> queue;
  const auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const Merge* m = FindMerge(symbols[left].id, symbols[right].id);
    if (m != nullptr) queue.push({m->rank, left, right, symbols[left].id, symbols[right].id, m->result});
  };
  for (int i = 1; i < n; ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    Symbol& left = symbols[c.left];
    Symbol& right = symbols[c.right];
    if (!left.alive || !right.alive || left.next != c.right || left.id != c.left_id || right.id != c.right_id) continue;
    left.id = c.result;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = c.left;
    try_add(left.prev, c.left);
    try_add(c.left, left.next);
  }

  for (int i = n > 0 ? 0 : -1; i >= 0; i = symbols[i].next) {
    if (symbols[i].id >= 0) {
      out->push_back(symbols[i].id);
    } else if (unk() >= 0) {
      out->push_back(unk());
    }
  }
}

}  // namespace strata
