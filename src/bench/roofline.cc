#include "bench/roofline.h"

namespace strata::bench {

uint64_t WeightBytesPerToken(const LlamaWeights& w) { return StreamedWeightBytes(w) + w.token_embd.row_bytes(); }

double RooflineFraction(double tokens_per_s, uint64_t bytes_per_token, double bandwidth_bytes_per_s) {
  return tokens_per_s * static_cast<double>(bytes_per_token) / bandwidth_bytes_per_s;
}

}  // namespace strata::bench
