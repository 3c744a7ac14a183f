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

// Folds n key/value rows into (p, acc). q: F32 [D]; k, v: n rows of type `type`
// (F32, F16 or Q8_0), each row_bytes apart; scale multiplies q·k.
// scratch: F32 [D] (dequantized rows). acc: F32 [D].
// Runs on BestPath(); the AVX-512 path takes 16 keys at a time (one vector of
// scores, one rescale and one vector exp per 16 keys) and ignores scratch.
void AttendRows(const float* q, const uint8_t* k, const uint8_t* v, size_t row_bytes, DType type, int32_t n,
                int32_t D, float scale, SoftmaxPartial* p, float* acc, float* scratch);
// The same on an explicit path (capped like MatMul's); paths agree within
// float rounding. The scalar path is the reference.
void AttendRows(const float* q, const uint8_t* k, const uint8_t* v, size_t row_bytes, DType type, int32_t n,
                int32_t D, float scale, SoftmaxPartial* p, float* acc, float* scratch, Path path);

// Grouped-query attention: folds the same n key/value rows into the partials
// of n_heads query heads (the heads sharing one KV head). Head h has query
// q + h * D, partial p[h] and accumulator acc + h * acc_stride (F32 [D]).
// Equals AttendRows per head within float rounding, but on AVX-512 reads and
// widens every key/value row once for all heads and needs no horizontal sums
// (about 2x faster per head for groups of 4-8). scratch: F32 [D].
void AttendRowsHeads(const float* q, int32_t n_heads, const uint8_t* k, const uint8_t* v, size_t row_bytes,
                     DType type, int32_t n, int32_t D, float scale, SoftmaxPartial* p, float* acc, size_t acc_stride,
                     float* scratch, Path path = BestPath());

// Merges partial b into a: the result equals attending over both row sets at once.
void MergePartial(SoftmaxPartial* a, float* acc_a, const SoftmaxPartial& b, const float* acc_b, int32_t D);

}  // namespace strata::kernels
