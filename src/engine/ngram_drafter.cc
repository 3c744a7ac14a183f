#include "engine/ngram_drafter.h"

#include <algorithm>

namespace strata {

std::vector<int32_t> NgramDraft(std::span<const int32_t> tokens, int32_t k, const NgramParams& params) {
  const int64_t len = static_cast<int64_t>(tokens.size());
  if (k <= 0) return {};
  for (int64_t n = std::min<int64_t>(params.ngram_max, len - 1); n >= std::max(params.ngram_min, 1); --n) {
    const std::span<const int32_t> suffix = tokens.subspan(static_cast<size_t>(len - n));
    // Latest occurrence first; it must be followed by at least one token.
    for (int64_t j = len - n - 1; j >= 0; --j) {
      if (!std::equal(suffix.begin(), suffix.end(), tokens.begin() + j)) continue;
      // What followed it; past the end, the draft continues itself (a
      // repeating pattern repeats on: period len - j - n).
      const int64_t from = j + n;
      std::vector<int32_t> draft;
      for (int64_t pos = from; pos < from + k; ++pos)
        draft.push_back(pos < len ? tokens[static_cast<size_t>(pos)] : draft[static_cast<size_t>(pos - len)]);
      return draft;
    }
  }
  return {};
}

}  // namespace strata
