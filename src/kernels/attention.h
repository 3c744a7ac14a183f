// Blocked attention with online softmax: attention over a sequence is computed
// block by block wherever each block lives, and partial results are merged
// exactly by log-sum-exp. A partial result for one query head is (m, l, acc):
//   m   = max score seen,  l = Σ exp(s_j - m),  acc[D] = Σ exp(s_j - m) · v_j
// and the attention output is acc / l.
//
// Thread-safety: reentrant; no shared state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>

#include "core/dtype.h"
#include "kernels/kernels.h"

namespace strata::kernels {

struct SoftmaxPartial {
  float m = -std::numeric_limits<float>::infinity();
  float l = 0.0f;
};

// How the score of a query and a key is formed before the softmax:
// s = scale · q·k, then, with softcap > 0, s = softcap · tanh(s / softcap)
// (Gemma 2's attention logit soft-capping).
struct ScoreParams {
  float scale = 1.0f;
  float softcap = 0.0f;
};

// Folds n key/value rows into (p, acc). q: F32 [D]; k, v: n rows of type `type`
// (F32, F16 or Q8_0), each row_bytes apart; scores as `score` says.
// scratch: F32 [D] (dequantized rows). acc: F32 [D].
// Runs on BestPath(); the AVX-512 path takes 16 keys at a time (one vector of
// scores, one rescale and one vector exp per 16 keys) and ignores scratch.
void AttendRows(const float* q, const uint8_t* k, const uint8_t* v, size_t row_bytes, DType type, int32_t n,
                int32_t D, const ScoreParams& score, SoftmaxPartial* p, float* acc, float* scratch);
// The same on an explicit path (capped like MatMul's); paths agree within
// float rounding. The scalar path is the reference.
void AttendRows(const float* q, const uint8_t* k, const uint8_t* v, size_t row_bytes, DType type, int32_t n,
                int32_t D, const ScoreParams& score, SoftmaxPartial* p, float* acc, float* scratch, Path path);

// Query rows (tokens x heads) AttendTile reads each key/value row once for;
// larger tiles are taken in parts of this size.
inline constexpr int32_t kTileRows = 64;

// Query tiling: folds one block of key/value rows into the partials of n_tok
// query tokens x n_heads heads (the heads sharing this KV head). Query row
// (t, h) is q + t * q_stride + h * D (F32 [D]); its partial is
// p[t * n_heads + h] and its accumulator acc + (t * n_heads + h) * acc_stride.
// Mask: token t sees only rows [first_key[t], n_keys[t]) (causal: the end; a
// sliding window: the start); a token that sees no row is left untouched.
// scratch: F32 [D].
// Equals AttendRows per row within float rounding. On AVX-512 (and on AVX2
// for head_dim a multiple of 8), for 3 or more rows, every key/value row is
// read and widened once per kTileRows query rows instead of once per token,
// and no horizontal sum per key is needed.
void AttendTile(const float* q, size_t q_stride, int32_t n_tok, int32_t n_heads, const int32_t* first_key,
                const int32_t* n_keys, const uint8_t* k, const uint8_t* v, size_t row_bytes, DType type, int32_t D,
                const ScoreParams& score, SoftmaxPartial* p, float* acc, size_t acc_stride, float* scratch,
                Path path = BestPath());

// Merges partial b into a: the result equals attending over both row sets at once.
void MergePartial(SoftmaxPartial* a, float* acc_a, const SoftmaxPartial& b, const float* acc_b, int32_t D);

}  // namespace strata::kernels
