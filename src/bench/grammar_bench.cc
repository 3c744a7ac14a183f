#include "bench/grammar_bench.h"

#include <chrono>

#include "engine/sampler.h"
#include "grammar/grammar_matcher.h"
#include "grammar/token_trie.h"

namespace strata::bench {
namespace {

using Clock = std::chrono::steady_clock;

double MicrosSince(Clock::time_point t0) { return std::chrono::duration<double, std::micro>(Clock::now() - t0).count(); }

}  // namespace

Status RunGrammarBench(const Vocab& vocab, std::shared_ptr<const grammar::Grammar> grammar,
                       const LogitsSource& logits, int32_t n_tokens, uint64_t seed, GrammarBenchResult* out) {
  *out = GrammarBenchResult();
  const auto t0 = Clock::now();
  const std::shared_ptr<const grammar::TokenTrie> trie = grammar::TokenTrie::Build(vocab);
  out->trie_ms = MicrosSince(t0) / 1000;
  out->trie_nodes = trie->nodes().size();

  SamplerParams params;
  params.seed = seed;
  Sampler plain(params);
  std::unique_ptr<Sampler> constrained;
  std::vector<float> l;
  int32_t previous = -1;
  while (static_cast<int32_t>(out->grammar_us.size()) < n_tokens) {
    if (previous < 0) {  // a new document, its grammar cold
      if (constrained != nullptr) out->states += constrained->grammar()->n_states();
      std::unique_ptr<grammar::GrammarMatcher> m;
      STRATA_RETURN_IF_ERROR(grammar::GrammarMatcher::Create(grammar, trie, &m));
      params.seed = seed + static_cast<uint64_t>(out->documents);
      constrained = std::make_unique<Sampler>(params);
      constrained->set_grammar(std::move(m));
    }
    STRATA_RETURN_IF_ERROR(logits(previous, &l));
    const int32_t n = static_cast<int32_t>(l.size());
    auto t = Clock::now();
    plain.Sample(l.data(), n);
    out->plain_us.push_back(MicrosSince(t));
    const bool had_mask = constrained->grammar()->HasAllowedTokens();
    t = Clock::now();
    const int32_t token = constrained->Sample(l.data(), n);
    if (!had_mask && constrained->grammar()->HasAllowedTokens()) ++out->masks;
    const auto t_accept = Clock::now();
    const bool accepted = token >= 0 && constrained->Accept(token);
    out->accept_us.push_back(MicrosSince(t_accept));
    out->grammar_us.push_back(MicrosSince(t));
    if (token < 0 || !accepted)
      return Status::InvalidArgument("the grammar allows no token of this vocabulary at some point");
    if (vocab.IsEog(token)) {
      ++out->documents;
      previous = -1;
    } else {
      previous = token;
    }
  }
  out->states += constrained->grammar()->n_states();
  return Status::Ok();
}

}  // namespace strata::bench
