// The memory roofline of token generation: generating one token (batch 1)
// streams every weight it uses from memory once, so tokens/s cannot exceed
// read bandwidth / bytes read per token.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>

#include "model/model.h"

namespace strata::bench {

// Weight bytes one generated token reads: every layer's matrices (wq, wk, wv,
// wo, ffn_gate, ffn_up, ffn_down) and norms, the output norm, the whole output
// matrix, and ONE row of the token embedding table (the input token's lookup;
// the rest of the table is not touched). Counted in the file's types (the
// bytes the kernels stream). A tied output matrix (output shares
// token_embd's bytes) is streamed whole and its row looked up besides, so it
// counts as output + one row too. Not counted: the KV cache, which grows with
// the position (tg128 from an empty cache: ~0.1% of the weight bytes on the
// 1.1B GQA shape, ~2% on the 134M shape).
uint64_t WeightBytesPerToken(const LlamaWeights& w);

// tokens_per_s × bytes_per_token / bandwidth: 1.0 means generation runs at the
// measured read bandwidth. REQUIRES: bandwidth_bytes_per_s > 0.
double RooflineFraction(double tokens_per_s, uint64_t bytes_per_token, double bandwidth_bytes_per_s);

}  // namespace strata::bench
