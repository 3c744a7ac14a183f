// TokenTrie: a vocabulary's text tokens by their bytes, as a byte trie laid
// out in depth-first order — what the grammar matcher walks to find every
// token a grammar state allows in one pass, skipping a whole subtree (every
// token sharing a refused prefix) at once.
//
// Text tokens are those whose piece (Vocab::TokenToPiece) is non-empty,
// holds no NUL byte (llama.cpp refuses those too: no grammar writes a NUL)
// and that do not end generation; control tokens render as nothing and are
// reachable only through a grammar's token references (<[id]>), and
// end-of-generation tokens are allowed exactly when the grammar can end.
//
// Thread-safety: immutable once built; safe to share between threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "vocab/vocab.h"

namespace strata::grammar {

class TokenTrie {
 public:
  // Node 0 is the root (the empty prefix); every other node is one byte
  // below its parent, which precedes it. Its subtree is [index, end).
  struct Node {
    uint32_t end;           // index after the node's subtree
    uint32_t tokens_begin;  // its tokens: token_ids()[tokens_begin, tokens_end)
    uint32_t tokens_end;
    uint32_t depth;         // bytes from the root (the length of its prefix)
    uint8_t byte;           // the byte from its parent (root: 0)
  };

  static std::shared_ptr<const TokenTrie> Build(const Vocab& vocab);

  const std::vector<Node>& nodes() const { return nodes_; }
  const std::vector<int32_t>& token_ids() const { return token_ids_; }
  // The bytes of a text token, "" for others. REQUIRES: 0 <= id < n_vocab().
  const std::string& piece(int32_t id) const { return pieces_[static_cast<size_t>(id)]; }
  const std::vector<int32_t>& eog_tokens() const { return eog_; }
  bool is_eog(int32_t id) const { return is_eog_[static_cast<size_t>(id)]; }
  int32_t n_vocab() const { return static_cast<int32_t>(pieces_.size()); }
  uint32_t max_depth() const { return max_depth_; }

 private:
  std::vector<Node> nodes_;
  std::vector<int32_t> token_ids_;
  std::vector<std::string> pieces_;  // [n_vocab]
  std::vector<int32_t> eog_;
  std::vector<bool> is_eog_;         // [n_vocab]
  uint32_t max_depth_ = 0;
};

}  // namespace strata::grammar
