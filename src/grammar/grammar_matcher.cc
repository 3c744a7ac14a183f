#include "grammar/grammar_matcher.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace strata::grammar {

Status GrammarMatcher::Create(std::shared_ptr<const Grammar> grammar, std::shared_ptr<const TokenTrie> trie,
                              std::unique_ptr<GrammarMatcher>* out) {
  for (const Element& e : grammar->elements)
    if ((e.kind == ElementKind::kToken || e.kind == ElementKind::kNotToken) &&
        e.value >= static_cast<uint32_t>(trie->n_vocab()))
      return Status::InvalidArgument(
          fmt::format("the grammar names token {}; the vocabulary has {} tokens", e.value, trie->n_vocab()));
  out->reset(new GrammarMatcher(std::move(grammar), std::move(trie)));
  return Status::Ok();
}

GrammarMatcher::GrammarMatcher(std::shared_ptr<const Grammar> grammar, std::shared_ptr<const TokenTrie> trie)
    : grammar_(std::move(grammar)), trie_(std::move(trie)), words_((static_cast<size_t>(trie_->n_vocab()) + 63) / 64) {
  walk_.resize(trie_->max_depth() + 1);
  frames_.push_back(Frame{UINT32_MAX, kEmptyStack});  // kEmptyStack
  Intern({}, {});                                      // kDead
  // The root's alternatives, expanded.
  std::vector<uint32_t> stacks;
  uint32_t a = grammar_->rule_start[grammar_->root];
  for (;;) {
    Expand(grammar_->EndsAlternative(a) ? kEmptyStack : PushFrame(kEmptyStack, a), &stacks);
    while (!grammar_->EndsAlternative(a)) ++a;
    if (grammar_->elements[a].kind == ElementKind::kEnd) break;
    ++a;
  }
  current_ = Intern(std::move(stacks), {});
  states_[current_].visits = 1;
}

uint32_t GrammarMatcher::PushFrame(uint32_t parent, uint32_t pos) {
  const uint64_t key = uint64_t{parent} << 32 | pos;
  const auto [it, inserted] = frame_ids_.emplace(key, static_cast<uint32_t>(frames_.size()));
  if (inserted) frames_.push_back(Frame{pos, parent});
  return it->second;
}

void GrammarMatcher::Expand(uint32_t stack, std::vector<uint32_t>* out) {
  const Grammar& g = *grammar_;
  std::vector<uint32_t> todo = {stack};
  std::vector<uint32_t> seen;
  while (!todo.empty()) {
    const uint32_t x = todo.back();
    todo.pop_back();
    if (std::find(seen.begin(), seen.end(), x) != seen.end()) continue;
    seen.push_back(x);
    if (x == kEmptyStack || g.elements[frames_[x].pos].kind != ElementKind::kRule) {
      out->push_back(x);
      continue;
    }
    const Frame f = frames_[x];
    // The rule reference on top gives way to what follows it, under each alternative of the rule.
    const uint32_t rest = g.EndsAlternative(f.pos + 1) ? f.parent : PushFrame(f.parent, f.pos + 1);
    uint32_t a = g.rule_start[g.elements[f.pos].value];
    for (;;) {
      todo.push_back(g.EndsAlternative(a) ? rest : PushFrame(rest, a));
      while (!g.EndsAlternative(a)) ++a;
      if (g.elements[a].kind == ElementKind::kEnd) break;
      ++a;
    }
  }
}

int32_t GrammarMatcher::Intern(std::vector<uint32_t> stacks, Partial partial) {
  std::sort(stacks.begin(), stacks.end());
  stacks.erase(std::unique(stacks.begin(), stacks.end()), stacks.end());
  if (stacks.size() > kMaxStacks) {
    overflowed_ = true;
    return kDead;
  }
  if (stacks.empty() && !states_.empty()) return kDead;
  std::string key(sizeof partial.value + 2 + stacks.size() * sizeof(uint32_t), '\0');
  std::memcpy(key.data(), &partial.value, sizeof partial.value);
  key[sizeof partial.value] = static_cast<char>(partial.remaining);
  key[sizeof partial.value + 1] = static_cast<char>(partial.length);
  if (!stacks.empty()) std::memcpy(key.data() + sizeof partial.value + 2, stacks.data(), stacks.size() * sizeof(uint32_t));
  const auto found = state_ids_.find(key);
  if (found != state_ids_.end()) return found->second;
  if (stack_entries_ + stacks.size() > kMaxStackEntries) {
    overflowed_ = true;
    return kDead;
  }
  const auto [it, inserted] = state_ids_.emplace(std::move(key), static_cast<int32_t>(states_.size()));
  if (inserted) {
    stack_entries_ += stacks.size();
    State s;
    for (const uint32_t x : stacks) {
      const ElementKind k = x == kEmptyStack ? ElementKind::kEnd : grammar_->elements[frames_[x].pos].kind;
      s.token_tops |= k == ElementKind::kToken || k == ElementKind::kNotToken;
    }
    s.stacks = std::move(stacks);
    s.partial = partial;
    states_.push_back(std::move(s));
  }
  return it->second;
}

int32_t GrammarMatcher::Next(int32_t s, uint8_t b) {
  if (s == kDead) return kDead;
  if (states_[s].next < 0) {
    states_[s].next = static_cast<int64_t>(next_.size());
    next_.resize(next_.size() + 256, kUnknown);
  }
  int32_t t = next_[static_cast<size_t>(states_[s].next) + b];
  if (t != kUnknown) return t;
  t = ComputeNext(s, b);
  next_[static_cast<size_t>(states_[s].next) + b] = t;
  return t;
}

int32_t GrammarMatcher::ComputeNext(int32_t s, uint8_t b) {
  const Partial p = states_[s].partial;
  Partial q;
  if (p.remaining == 0) {
    if (b < 0x80) return AfterCodePoint(s, b);
    if (b >= 0xC2 && b <= 0xDF) q = {b & 0x1Fu, 1, 2};
    else if (b >= 0xE0 && b <= 0xEF) q = {b & 0x0Fu, 2, 3};
    else if (b >= 0xF0 && b <= 0xF4) q = {b & 0x07u, 3, 4};
    else return kDead;  // a continuation byte without a lead, or a lead no code point has
  } else {
    if ((b & 0xC0) != 0x80) return kDead;
    q = {p.value << 6 | (b & 0x3Fu), static_cast<uint8_t>(p.remaining - 1), p.length};
    if (q.remaining == 0) {
      const uint32_t cp = q.value;
      const bool overlong = (q.length == 3 && cp < 0x800) || (q.length == 4 && cp < 0x10000);
      if (overlong || cp > kMaxCodePoint || (cp >= 0xD800 && cp <= 0xDFFF)) return kDead;
      return AfterCodePoint(s, cp);
    }
  }
  // Still inside a code point: keep the stacks some completion of it can match.
  const unsigned shift = 6u * q.remaining;
  const uint32_t least = q.length == 2 ? 0x80 : q.length == 3 ? 0x800 : 0x10000;
  const uint32_t lo = std::max(q.value << shift, least);
  const uint32_t hi = std::min((q.value << shift) | ((1u << shift) - 1), kMaxCodePoint);
  if (lo > hi) return kDead;
  std::vector<uint32_t> kept;
  for (const uint32_t x : states_[s].stacks) {
    if (x == kEmptyStack) continue;
    const Element& e = grammar_->elements[frames_[x].pos];
    if (e.kind != ElementKind::kChars) continue;
    const CharClass& c = grammar_->classes[e.value];
    const bool below = lo < 0xD800 && c.Intersects(lo, std::min<uint32_t>(hi, 0xD7FF));
    const bool above = hi > 0xDFFF && c.Intersects(std::max<uint32_t>(lo, 0xE000), hi);
    if (below || above) kept.push_back(x);
  }
  return Intern(std::move(kept), q);
}

int32_t GrammarMatcher::AfterCodePoint(int32_t s, uint32_t cp) {
  const Grammar& g = *grammar_;
  std::vector<uint32_t> out;
  const std::vector<uint32_t> stacks = states_[s].stacks;
  for (const uint32_t x : stacks) {
    if (x == kEmptyStack) continue;
    const Frame f = frames_[x];
    const Element& e = g.elements[f.pos];
    if (e.kind != ElementKind::kChars || !g.classes[e.value].Contains(cp)) continue;
    Expand(g.EndsAlternative(f.pos + 1) ? f.parent : PushFrame(f.parent, f.pos + 1), &out);
    if (out.size() > 4 * kMaxStacks) {
      overflowed_ = true;
      return kDead;
    }
  }
  return Intern(std::move(out), {});
}

void GrammarMatcher::AfterTokenElement(int32_t s, int32_t token, std::vector<uint32_t>* out) {
  const Grammar& g = *grammar_;
  // A token element starts on a character boundary.
  if (!states_[s].token_tops || states_[s].partial.remaining != 0) return;
  const std::vector<uint32_t> stacks = states_[s].stacks;
  for (const uint32_t x : stacks) {
    if (x == kEmptyStack) continue;
    const Frame f = frames_[x];
    const Element& e = g.elements[f.pos];
    const bool match = (e.kind == ElementKind::kToken && e.value == static_cast<uint32_t>(token)) ||
                       (e.kind == ElementKind::kNotToken && e.value != static_cast<uint32_t>(token));
    if (match) Expand(g.EndsAlternative(f.pos + 1) ? f.parent : PushFrame(f.parent, f.pos + 1), out);
  }
}

void GrammarMatcher::ComputeMask(int32_t s, uint64_t* mask) {
  std::fill(mask, mask + words_, 0);
  const int32_t n_vocab = trie_->n_vocab();
  auto set = [&](int32_t t) { mask[t >> 6] |= uint64_t{1} << (t & 63); };
  // Token elements on top of a stack allow tokens by id.
  if (states_[s].partial.remaining == 0) {
    for (const uint32_t x : states_[s].stacks) {
      if (x == kEmptyStack) continue;
      const Element& e = grammar_->elements[frames_[x].pos];
      if (e.kind == ElementKind::kToken && !trie_->is_eog(static_cast<int32_t>(e.value))) {
        set(static_cast<int32_t>(e.value));
      } else if (e.kind == ElementKind::kNotToken) {
        for (int32_t t = 0; t < n_vocab; ++t)
          if (t != static_cast<int32_t>(e.value) && !trie_->is_eog(t)) set(t);
      }
    }
  }
  // Text tokens: the trie walked in depth-first order, each node's state
  // derived from its parent's (walk_[depth - 1]); a refused prefix skips its subtree.
  const std::vector<TokenTrie::Node>& nodes = trie_->nodes();
  const std::vector<int32_t>& ids = trie_->token_ids();
  walk_[0] = s;
  for (size_t i = 1; i < nodes.size();) {
    const TokenTrie::Node& node = nodes[i];
    const int32_t t = Next(walk_[node.depth - 1], node.byte);
    if (t == kDead) {
      i = node.end;
      continue;
    }
    walk_[node.depth] = t;
    for (uint32_t k = node.tokens_begin; k < node.tokens_end; ++k) set(ids[k]);
    ++i;
  }
  if (CanEndAt(s))
    for (const int32_t t : trie_->eog_tokens()) set(t);
}

bool GrammarMatcher::CanEndAt(int32_t s) const {
  const State& st = states_[s];
  return st.partial.remaining == 0 && !st.stacks.empty() && st.stacks.front() == kEmptyStack;
}

bool GrammarMatcher::CanEnd() const { return CanEndAt(current_); }

std::span<const uint64_t> GrammarMatcher::AllowedTokens() {
  MaybeReset();
  if (states_[current_].mask < 0) {
    const size_t offset = masks_.size();
    masks_.resize(offset + words_);
    ComputeMask(current_, masks_.data() + offset);
    states_[current_].mask = static_cast<int64_t>(offset);
  }
  return {masks_.data() + states_[current_].mask, words_};
}

int32_t GrammarMatcher::StateAfter(int32_t token) {
  int32_t s = kDead;
  const std::string& piece = trie_->piece(token);
  if (!piece.empty()) {
    s = current_;
    for (const char c : piece) {
      s = Next(s, static_cast<uint8_t>(c));
      if (s == kDead) break;
    }
  }
  std::vector<uint32_t> by_element;
  AfterTokenElement(current_, token, &by_element);
  // Both readings of the token survive together, unless its text ends
  // inside a character (then only the text reading goes on).
  if (!by_element.empty() && (s == kDead || states_[s].partial.remaining == 0)) {
    if (s != kDead) by_element.insert(by_element.end(), states_[s].stacks.begin(), states_[s].stacks.end());
    s = Intern(std::move(by_element), {});
  }
  return s;
}

bool GrammarMatcher::Allows(int32_t token) {
  if (token < 0 || token >= trie_->n_vocab()) return false;
  if (trie_->is_eog(token)) return CanEnd();
  return StateAfter(token) != kDead;
}

bool GrammarMatcher::Accept(int32_t token) {
  if (token < 0 || token >= trie_->n_vocab()) return false;
  MaybeReset();
  if (trie_->is_eog(token)) return CanEnd();
  const int32_t s = StateAfter(token);
  if (s == kDead) return false;
  current_ = s;
  ++states_[s].visits;
  return true;
}

void GrammarMatcher::MaybeReset() {
  const size_t bytes = frames_.size() * (sizeof(Frame) + 24) + states_.size() * (sizeof(State) + 48) +
                       stack_entries_ * 8 + next_.size() * sizeof(int32_t) + masks_.size() * sizeof(uint64_t);
  if (bytes <= kMaxCacheBytes) return;
  // The current stacks as lists of positions (bottom first), rebuilt into fresh tables.
  std::vector<std::vector<uint32_t>> stacks;
  for (uint32_t x : states_[current_].stacks) {
    std::vector<uint32_t>& positions = stacks.emplace_back();
    for (; x != kEmptyStack; x = frames_[x].parent) positions.push_back(frames_[x].pos);
    std::reverse(positions.begin(), positions.end());
  }
  const Partial partial = states_[current_].partial;
  frames_.resize(1);
  frame_ids_.clear();
  states_.clear();
  state_ids_.clear();
  stack_entries_ = 0;
  next_.clear();
  masks_.clear();
  Intern({}, {});  // kDead
  std::vector<uint32_t> ids;
  for (const std::vector<uint32_t>& positions : stacks) {
    uint32_t x = kEmptyStack;
    for (const uint32_t pos : positions) x = PushFrame(x, pos);
    ids.push_back(x);
  }
  current_ = Intern(std::move(ids), partial);
  states_[current_].visits = 1;
}

}  // namespace strata::grammar
