// GrammarMatcher: where one generation stands in its grammar, which tokens
// may come next, and the step past the token that did.
//
// The matcher is a pushdown automaton run on UTF-8 bytes and determinized
// lazily: a state is the set of parse stacks the text so far leaves (each a
// list of grammar positions, interned as frames shared between stacks) plus
// the bytes of a code point not yet complete; its successor on a byte is
// computed once and kept. The tokens a state allows are found by walking the
// vocabulary's token trie from it — a subtree whose prefix the state refuses
// is skipped whole — and kept per state, so a state met again (every
// character inside a JSON string is the same state) costs a lookup. Text
// is matched as code points decoded strictly (RFC 3629): an overlong form, a
// surrogate or a stray byte is refused; a token may end inside a character
// if the grammar accepts some character it can complete to. End-of-generation
// tokens are allowed exactly when the grammar can end.
//
// Bounds (the grammar is untrusted): a state holds at most kMaxStacks stacks
// and all states together kMaxStackEntries — a byte that would need more
// (an ambiguous grammar) is refused and overflowed() says so, for the caller
// to fail the generation rather than follow a truncated grammar. Between
// calls, an automaton grown beyond kMaxCacheBytes drops every state but the
// current one and rebuilds what it needs again.
//
// Thread-safety: not thread-safe; one matcher per generation.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "grammar/grammar.h"
#include "grammar/token_trie.h"

namespace strata::grammar {

inline constexpr size_t kMaxStacks = 256;
inline constexpr size_t kMaxStackEntries = size_t{8} << 20;
inline constexpr size_t kMaxCacheBytes = size_t{64} << 20;

class GrammarMatcher {
 public:
  // kInvalidArgument if the grammar names a token the trie's vocabulary lacks.
  [[nodiscard]] static Status Create(std::shared_ptr<const Grammar> grammar, std::shared_ptr<const TokenTrie> trie,
                                     std::unique_ptr<GrammarMatcher>* out);

  // Bit t % 64 of word t / 64 is set iff token t may come next:
  // [ceil(n_vocab / 64)], valid until the next call.
  std::span<const uint64_t> AllowedTokens();
  // Whether token may come next (what AllowedTokens says of it, without
  // computing the rest of the mask).
  bool Allows(int32_t token);
  // AllowedTokens of the current state is computed already (a lookup).
  bool HasAllowedTokens() const { return states_[current_].mask >= 0; }
  // The current state was reached before in this generation: its mask is
  // likely to be asked for again (every character inside a JSON string is
  // one state), so computing it once pays.
  bool Revisited() const { return states_[current_].visits > 1; }
  // Moves past token; false (and no change) if the grammar does not allow
  // it. An end-of-generation token is accepted iff the grammar can end.
  bool Accept(int32_t token);
  // The text so far is a complete match (end-of-generation is allowed).
  bool CanEnd() const;
  // Whether some state refused a byte because it would exceed kMaxStacks.
  bool overflowed() const { return overflowed_; }
  // States built so far (cache behaviour, for tests and benchmarks).
  size_t n_states() const { return states_.size(); }

 private:
  // A parse stack is a frame id: its top position and the frame below it
  // (kEmptyStack: none). kEmptyStack itself is the empty stack: the grammar
  // has matched everything it was asked for.
  struct Frame {
    uint32_t pos;
    uint32_t parent;
  };
  static constexpr uint32_t kEmptyStack = 0;
  // A code point being decoded: its bits so far, the continuation bytes it
  // still needs and its total length (0 when none is pending).
  struct Partial {
    uint32_t value = 0;
    uint8_t remaining = 0;
    uint8_t length = 0;
    bool operator==(const Partial&) const = default;
  };
  struct State {
    std::vector<uint32_t> stacks;  // sorted frame ids; empty only for the dead state
    Partial partial;
    int64_t next = -1;             // offset of its 256 successors in next_ (-1: none computed)
    int64_t mask = -1;             // offset of its allowed-token bits in masks_ (-1: not computed)
    uint32_t visits = 0;           // times the generation has been in it
    bool token_tops = false;       // some stack has a token element on top
  };
  static constexpr int32_t kDead = 0;      // the state with no stacks: nothing more matches
  static constexpr int32_t kUnknown = -1;  // a successor not computed yet

  GrammarMatcher(std::shared_ptr<const Grammar> grammar, std::shared_ptr<const TokenTrie> trie);

  uint32_t PushFrame(uint32_t parent, uint32_t pos);
  // Adds to *out the stacks that replace `stack` once every rule reference
  // on its top is expanded: each with a terminal on top, or kEmptyStack.
  void Expand(uint32_t stack, std::vector<uint32_t>* out);
  int32_t Intern(std::vector<uint32_t> stacks, Partial partial);
  // The state after byte b from state s.
  int32_t Next(int32_t s, uint8_t b);
  int32_t ComputeNext(int32_t s, uint8_t b);
  // The state after code point cp from the stacks of state s.
  int32_t AfterCodePoint(int32_t s, uint32_t cp);
  // The state after token from the current state (kDead if refused). REQUIRES: token is no end of generation.
  int32_t StateAfter(int32_t token);
  // Stacks of state s whose top is a token element matching token, advanced past it.
  void AfterTokenElement(int32_t s, int32_t token, std::vector<uint32_t>* out);
  void ComputeMask(int32_t s, uint64_t* mask);
  bool CanEndAt(int32_t s) const;
  // Drops every state but the current one when the cache has outgrown its budget.
  void MaybeReset();

  std::shared_ptr<const Grammar> grammar_;
  std::shared_ptr<const TokenTrie> trie_;
  size_t words_;  // mask words per state

  std::vector<Frame> frames_;
  std::unordered_map<uint64_t, uint32_t> frame_ids_;  // (parent << 32 | pos) -> frame
  std::vector<State> states_;
  std::unordered_map<std::string, int32_t> state_ids_;  // partial and stacks as bytes -> state
  size_t stack_entries_ = 0;                            // stacks over all states (memory accounting)
  std::vector<int32_t> next_;
  std::vector<uint64_t> masks_;
  std::vector<int32_t> walk_;  // scratch: the state at each depth of the trie walk
  int32_t current_ = kDead;
  bool overflowed_ = false;
};

}  // namespace strata::grammar
