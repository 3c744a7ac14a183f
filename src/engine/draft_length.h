// DraftLength: how many tokens to draft next for one sequence, from its
// measured acceptance and what drafting costs.
//
// Model: each drafted token is accepted with probability a, given the ones
// before it were, so a round drafting k tokens yields
// E(k) = (1 - a^(k+1)) / (1 - a) tokens (those accepted and the one sampled
// after them). a is estimated from the sequence's own rounds, forgetting
// old ones (each round weighs kDecay of the one after it): accepted tokens /
// (accepted tokens + rounds that ended in a rejection), starting from a
// prior of one of each (a = 0.5). The owner rates a round drafting k tokens
// that yields E(k) of this sequence's tokens (tokens per second: for one
// sequence E(k) over the time of its pass and drafts; in a batch, everyone's
// tokens over the step's time), and the length with the best rate over {0}
// and [min, max] is chosen (0, drafting nothing, is rated with E = 1). Zero
// means "decode without drafting"; after kProbeEvery such rounds the
// sequence drafts min tokens once, so a sequence whose text turns
// repetitive starts speculating again.
//
// Thread-safety: values; one per sequence.
#pragma once

#include <cstdint>
#include <functional>

namespace strata {

class DraftLength {
 public:
  static constexpr double kDecay = 0.8;
  static constexpr int32_t kProbeEvery = 16;
  // Before its costs are measured, a drafted token is taken to cost this
  // fraction of a plain step: a start at short drafts, lengthened as the
  // measurements come in (unmeasured longer passes look as cheap as the
  // longest measured one).
  static constexpr double kPriorDraftCost = 0.25;
  // The rate of a round drafting k tokens yielding `tokens` under that prior.
  static double PriorRate(int32_t k, double tokens) { return tokens / (1.0 + kPriorDraftCost * k); }

  // REQUIRES: 1 <= min <= max.
  DraftLength(int32_t min, int32_t max) : min_(min), max_(max) {}

  // The draft length for the next round. rate(k, expected_tokens): how good a
  // round drafting k tokens (k = 0 or in [min, max]) that yields
  // expected_tokens of this sequence's tokens is (higher is better).
  int32_t Choose(const std::function<double(int32_t k, double expected_tokens)>& rate);
  // A round drafted `drafted` tokens and `accepted` of them were kept.
  void Record(int32_t drafted, int32_t accepted);
  // The estimated probability that a drafted token is accepted.
  double acceptance() const { return (accepted_ + 1.0) / (accepted_ + rejected_ + 2.0); }
  // E(k) for the current estimate.
  double ExpectedTokens(int32_t k) const;

 private:
  int32_t min_, max_;
  double accepted_ = 0, rejected_ = 0;  // decayed sums
  int32_t rounds_off_ = 0;              // rounds in a row Choose returned 0
};

}  // namespace strata
