#include "grammar/token_trie.h"

#include <algorithm>

namespace strata::grammar {

std::shared_ptr<const TokenTrie> TokenTrie::Build(const Vocab& vocab) {
  auto trie = std::make_shared<TokenTrie>();
  const int32_t n = vocab.n_tokens();
  trie->pieces_.resize(static_cast<size_t>(n));
  trie->is_eog_.assign(static_cast<size_t>(n), false);
  std::vector<int32_t> text;
  for (int32_t id = 0; id < n; ++id) {
    if (vocab.IsEog(id)) {
      trie->eog_.push_back(id);
      trie->is_eog_[static_cast<size_t>(id)] = true;
      continue;
    }
    std::string piece = vocab.TokenToPiece(id);
    if (piece.empty() || piece.find('\0') != std::string::npos) continue;
    trie->pieces_[static_cast<size_t>(id)] = std::move(piece);
    text.push_back(id);
  }
  const auto& pieces = trie->pieces_;
  std::sort(text.begin(), text.end(), [&](int32_t a, int32_t b) {
    return pieces[static_cast<size_t>(a)] < pieces[static_cast<size_t>(b)] ||
           (pieces[static_cast<size_t>(a)] == pieces[static_cast<size_t>(b)] && a < b);
  });
  // Sorted pieces visit the trie in depth-first order: each one shares a
  // prefix with the previous one, closes the nodes below that prefix and
  // opens nodes for the rest of its bytes. A prefix sorts before its
  // extensions, so a node's tokens come before any of its children.
  std::vector<Node>& nodes = trie->nodes_;
  nodes.push_back(Node{0, 0, 0, 0, 0});
  std::vector<uint32_t> path = {0};  // path[d]: the open node at depth d
  const std::string* prev = nullptr;
  for (const int32_t id : text) {
    const std::string& p = pieces[static_cast<size_t>(id)];
    size_t common = 0;
    if (prev != nullptr)
      common = static_cast<size_t>(std::mismatch(p.begin(), p.end(), prev->begin(), prev->end()).first - p.begin());
    while (path.size() > common + 1) {
      nodes[path.back()].end = static_cast<uint32_t>(nodes.size());
      path.pop_back();
    }
    for (size_t d = common; d < p.size(); ++d) {
      path.push_back(static_cast<uint32_t>(nodes.size()));
      const uint32_t t = static_cast<uint32_t>(trie->token_ids_.size());
      nodes.push_back(Node{0, t, t, static_cast<uint32_t>(d + 1), static_cast<uint8_t>(p[d])});
    }
    Node& leaf = nodes[path.back()];
    trie->token_ids_.push_back(id);
    leaf.tokens_end = static_cast<uint32_t>(trie->token_ids_.size());
    trie->max_depth_ = std::max<uint32_t>(trie->max_depth_, static_cast<uint32_t>(p.size()));
    prev = &p;
  }
  while (!path.empty()) {
    nodes[path.back()].end = static_cast<uint32_t>(nodes.size());
    path.pop_back();
  }
  return trie;
}

}  // namespace strata::grammar
