#include "engine/pass_times.h"

#include <iterator>

namespace strata {

void PassTimes::Record(int32_t tokens, double seconds) {
  auto [it, fresh] = seconds_.emplace(tokens, seconds);
  if (!fresh) it->second += kWeight * (seconds - it->second);
}

double PassTimes::Seconds(int32_t tokens) const {
  if (seconds_.empty()) return 0;
  auto hi = seconds_.lower_bound(tokens);
  if (hi != seconds_.end() && hi->first == tokens) return hi->second;
  if (hi == seconds_.begin()) return hi->second;
  auto lo = std::prev(hi);
  if (hi == seconds_.end()) return lo->second;
  const double f = static_cast<double>(tokens - lo->first) / (hi->first - lo->first);
  return lo->second + f * (hi->second - lo->second);
}

}  // namespace strata
