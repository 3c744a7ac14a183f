#include "bench/roofline.h"

namespace strata::bench {
namespace {

uint64_t Bytes(const Tensor& t) { return t.row_bytes() * static_cast<uint64_t>(t.rows()); }

}  // namespace

uint64_t WeightBytesPerToken(const LlamaWeights& w) {
  uint64_t total = w.token_embd.row_bytes() + Bytes(w.output_norm) + Bytes(w.output);
  for (const LayerWeights& l : w.layers)
    for (const Tensor* t : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_norm, &l.ffn_gate, &l.ffn_up, &l.ffn_down})
      total += Bytes(*t);
  return total;
}

double RooflineFraction(double tokens_per_s, uint64_t bytes_per_token, double bandwidth_bytes_per_s) {
  return tokens_per_s * static_cast<double>(bytes_per_token) / bandwidth_bytes_per_s;
}

}  // namespace strata::bench
