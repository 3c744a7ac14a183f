// PassTimes: how long a forward pass over T tokens takes, measured as passes
// run (a moving average per T) — the cost side of speculative decoding's
// choice of draft lengths (engine/draft_length.h). On a CPU a pass over a
// few tokens costs about what one token costs (the weights are read once
// either way) and grows with T once the arithmetic dominates; the
// measurements say where, on this machine, for this model.
//
// Thread-safety: values; one owner.
#pragma once

#include <cstdint>
#include <map>

namespace strata {

class PassTimes {
 public:
  static constexpr double kWeight = 0.25;  // of a new measurement in the moving average

  void Record(int32_t tokens, double seconds);
  // The estimate for a pass over `tokens` tokens: measured, else
  // interpolated linearly between the nearest measured counts, else (beyond
  // them) the nearest measured one (optimistic: a count that is never tried
  // cannot be found too slow); 0 if nothing is measured.
  double Seconds(int32_t tokens) const;
  bool measured(int32_t tokens) const { return seconds_.count(tokens) != 0; }
  // Whether a pass over at most `tokens` tokens was measured (Seconds of a
  // smaller count is an extrapolation from above otherwise).
  bool measured_up_to(int32_t tokens) const { return !seconds_.empty() && seconds_.begin()->first <= tokens; }
  bool empty() const { return seconds_.empty(); }

 private:
  std::map<int32_t, double> seconds_;
};

}  // namespace strata
