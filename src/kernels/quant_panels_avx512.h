// 32-row panels of quantized weights on the AVX-512 path, shared by the
// AVX-512 matmul files (matmul_avx512.cc: Q8_0, Q4_0; matmul_k_avx512.cc:
// the K-quants). Internal to src/kernels.
//
// A packed quantized matrix (TensorLayout::kPanels32) is a run of panels of
// 32 rows (two groups of 16, one row per 32-bit lane of a vector); rows past
// the matrix repeat its last row and their outputs are never stored. A panel
// is one record per block of the weight type (32 or 256 inputs), each of
// exactly the bytes the 32 rows' blocks take in the file, so packing costs no
// memory; each weight type defines its record's layout. A register tile of 32
// rows x T tokens multiplies one panel: every loaded weight vector is reused
// by T tokens, every broadcast activation group by both row groups.
//
// Everything here has internal linkage (see kernels/matmul_tasks.h for why).
// REQUIRES: included only from files compiled for AVX-512 (CMakeLists.txt).
// Thread-safety: as kernels.h.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "core/tensor.h"
#include "kernels/kernels.h"
#include "kernels/matmul_tasks.h"
#include "kernels/thread_pool.h"
#include "kernels/type_traits.h"

// Register-tile loops have compile-time trip counts and must be fully
// unrolled so their arrays live in registers; GCC does that only at -O3
// without this (-O2 measured 3x slower).
#define STRATA_UNROLL _Pragma("GCC unroll 16")

namespace strata::kernels::internal {
namespace {

constexpr int kLanes = 16;
constexpr int kPanelRows = 2 * kLanes;

__mmask16 LaneMask(int64_t n) {
  return n >= kLanes ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << std::max<int64_t>(n, 0)) - 1);
}

// The register tiles' output y[t0 .. t0+T-1][o0 .. o0+31]: acc0[t] holds rows
// o0 .. o0+15 of token t0+t, acc1[t] the next 16. Rows past n_out are neither
// loaded nor stored.
template <int T>
void LoadOutTile(const float* y, int64_t n_out, int64_t o0, int64_t t0, bool accumulate, __m512 (&acc0)[T],
                 __m512 (&acc1)[T]) {
  const __mmask16 m0 = LaneMask(n_out - o0), m1 = LaneMask(n_out - o0 - kLanes);
  STRATA_UNROLL
  for (int t = 0; t < T; ++t) {
    const float* yt = y + (t0 + t) * n_out + o0;
    acc0[t] = accumulate ? _mm512_maskz_loadu_ps(m0, yt) : _mm512_setzero_ps();
    acc1[t] = accumulate ? _mm512_maskz_loadu_ps(m1, yt + kLanes) : _mm512_setzero_ps();
  }
}

template <int T>
void StoreOutTile(float* y, int64_t n_out, int64_t o0, int64_t t0, const __m512 (&acc0)[T], const __m512 (&acc1)[T]) {
  const __mmask16 m0 = LaneMask(n_out - o0), m1 = LaneMask(n_out - o0 - kLanes);
  STRATA_UNROLL
  for (int t = 0; t < T; ++t) {
    float* yt = y + (t0 + t) * n_out + o0;
    _mm512_mask_storeu_ps(yt, m0, acc0[t]);
    _mm512_mask_storeu_ps(yt + kLanes, m1, acc1[t]);
  }
}

// A weight type's panel kernels, W:
//   W::Acts          quantized activations: Acts(n_in); bytes(n_tok);
//                    set_base(64-byte aligned scratch); Quantize(t, x: F32 [n_in])
//                    (distinct t may run concurrently)
//   W::kBlock        inputs per record;  W::kRecordBytes: bytes of a record
//   W::PackPanel(w, o0, panel)           rows o0 .. o0+31 of w (row layout) as a panel
//   W::kTileTokens;  W::Tile<T>(panel, n_records, acts, t0, y, n_out, o0) for 1 <= T <= kTileTokens:
//                    y[t0 .. t0+T-1][o0 .. o0+31] (rows < n_out stored) from one panel

template <class W>
size_t PanelBytes(int64_t n_in) {
  return static_cast<size_t>(n_in / W::kBlock) * W::kRecordBytes;
}

template <class W>
size_t PackedQuantBytes(const Tensor& w) {
  return static_cast<size_t>((w.rows() + kPanelRows - 1) / kPanelRows) * PanelBytes<W>(w.cols());
}

template <class W>
void PackQuantMatrix(const Tensor& w, uint8_t* dst) {
  const int64_t n_panels = (w.rows() + kPanelRows - 1) / kPanelRows;
  const size_t panel_bytes = PanelBytes<W>(w.cols());
  for (int64_t p = 0; p < n_panels; ++p) W::PackPanel(w, p * kPanelRows, dst + panel_bytes * static_cast<size_t>(p));
}

// MatMulShared for matrices of type W: x is quantized once for all outputs;
// each thread streams its own contiguous share of the panels
// (ParallelStreams) through the outputs' matrices in order (one stream when
// they are packed side by side, as the model packs them). A matrix in the
// file's row layout is packed panel by panel into thread-private scratch
// first (stays in L2 while every token tile reuses it).
// REQUIRES: all outs have type W and one cols().
template <class W>
void MatMulQuantPanels(std::span<const MatMulOut> outs, const float* x, int64_t n_tok, ThreadPool& pool) {
  const int64_t n_in = outs[0].w->cols(), n_records = n_in / W::kBlock;
  typename W::Acts xa(n_in);
  const size_t act_bytes = RoundUp64(xa.bytes(n_tok));
  const size_t panel_bytes = PanelBytes<W>(n_in);
  bool all_packed = true;
  std::vector<int64_t> first_panel = {0};  // [outs.size() + 1]: outs[i] owns panels [first_panel[i], first_panel[i+1])
  for (const MatMulOut& o : outs) {
    all_packed = all_packed && o.w->layout == TensorLayout::kPanels32;
    first_panel.push_back(first_panel.back() + (o.w->rows() + kPanelRows - 1) / kPanelRows);
  }
  auto* scratch = static_cast<uint8_t*>(pool.Scratch(act_bytes + (all_packed ? 0 : panel_bytes * pool.n_threads())));
  xa.set_base(scratch);
  pool.ParallelFor(n_tok, 4, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) xa.Quantize(t, x + t * n_in);
  });
  pool.ParallelStreams(first_panel.back(), [&](int64_t task, int ith) {
    const size_t i = static_cast<size_t>(std::upper_bound(first_panel.begin(), first_panel.end(), task) -
                                         first_panel.begin() - 1);
    const Tensor& w = *outs[i].w;
    const int64_t p = task - first_panel[i], o0 = p * kPanelRows, n_out = w.rows();
    const uint8_t* panel = static_cast<const uint8_t*>(w.data) + panel_bytes * static_cast<size_t>(p);
    if (w.layout != TensorLayout::kPanels32) {
      uint8_t* own = scratch + act_bytes + panel_bytes * static_cast<size_t>(ith);
      W::PackPanel(w, o0, own);
      panel = own;
    }
    for (int64_t t0 = 0; t0 < n_tok; t0 += W::kTileTokens) {
      WithCount<W::kTileTokens>(n_tok - t0, [&](auto T) {
        W::template Tile<T()>(panel, n_records, xa, t0, outs[i].y, n_out, o0);
      });
    }
  });
}

// A weight type's MatMulKernels (type_traits.h) on these panels.
template <class W>
constexpr MatMulKernels kPanelKernels = {MatMulQuantPanels<W>, PackedQuantBytes<W>, PackQuantMatrix<W>};

}  // namespace
}  // namespace strata::kernels::internal
