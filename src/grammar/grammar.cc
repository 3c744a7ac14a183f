#include "grammar/grammar.h"

#include <algorithm>

namespace strata::grammar {

CharClass CharClass::Of(std::vector<std::pair<uint32_t, uint32_t>> ranges, bool negated) {
  std::sort(ranges.begin(), ranges.end());
  CharClass c;
  for (const auto& r : ranges) {
    if (!c.ranges.empty() && r.first <= c.ranges.back().second + 1) {
      c.ranges.back().second = std::max(c.ranges.back().second, r.second);
    } else {
      c.ranges.push_back(r);
    }
  }
  if (negated) {
    std::vector<std::pair<uint32_t, uint32_t>> complement;
    uint32_t next = 0;
    for (const auto& r : c.ranges) {
      if (r.first > next) complement.emplace_back(next, r.first - 1);
      next = r.second + 1;
    }
    if (next <= kMaxCodePoint) complement.emplace_back(next, kMaxCodePoint);
    c.ranges = std::move(complement);
  }
  for (const auto& r : c.ranges)
    for (uint32_t cp = r.first; cp <= std::min<uint32_t>(r.second, 127); ++cp) c.ascii[cp >> 6] |= uint64_t{1} << (cp & 63);
  return c;
}

bool CharClass::Contains(uint32_t cp) const {
  if (cp < 128) return (ascii[cp >> 6] >> (cp & 63)) & 1;
  return Intersects(cp, cp);
}

bool CharClass::Intersects(uint32_t lo, uint32_t hi) const {
  // The first range ending at or after lo; it intersects iff it starts by hi.
  const auto it = std::lower_bound(ranges.begin(), ranges.end(), lo,
                                   [](const std::pair<uint32_t, uint32_t>& r, uint32_t v) { return r.second < v; });
  return it != ranges.end() && it->first <= hi;
}

}  // namespace strata::grammar
