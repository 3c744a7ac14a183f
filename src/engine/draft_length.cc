#include "engine/draft_length.h"

#include <cmath>

namespace strata {

double DraftLength::ExpectedTokens(int32_t k) const {
  const double a = acceptance();  // in (0, 1): the prior keeps it off both ends
  return (1.0 - std::pow(a, k + 1)) / (1.0 - a);
}

int32_t DraftLength::Choose(const std::function<double(int32_t k, double expected_tokens)>& rate_of) {
  int32_t best = 0;
  double best_rate = rate_of(0, 1.0);
  for (int32_t k = min_; k <= max_; ++k) {
    const double rate = rate_of(k, ExpectedTokens(k));
    if (rate > best_rate) {
      best = k;
      best_rate = rate;
    }
  }
  if (best > 0) {
    rounds_off_ = 0;
    return best;
  }
  if (++rounds_off_ >= kProbeEvery) {
    rounds_off_ = 0;
    return min_;
  }
  return 0;
}

void DraftLength::Record(int32_t drafted, int32_t accepted) {
  accepted_ = kDecay * accepted_ + accepted;
  rejected_ = kDecay * rejected_ + (accepted < drafted ? 1.0 : 0.0);
}

}  // namespace strata
