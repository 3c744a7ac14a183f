// 32-row panels of quantized weights: the packed layout
// (TensorLayout::kPanels32) of the quantized types that have one, and the
// matmul driver over it, shared by the instruction-set-specific files
// (quant_panels_avx512.h, matmul_avx2.cc, matmul_k_avx2.cc). Internal to
// src/kernels.
//
// A packed matrix is a run of panels of 32 rows; rows past the matrix repeat
// its last row and their outputs are never stored. A panel holds exactly the
// bytes its 32 rows take in the file (packing costs no memory), in a layout
// each weight type and path defines so that its register tile reads it
// sequentially with one row per vector lane.
//
// Everything here has internal linkage (see kernels/matmul_tasks.h for why);
// nothing here uses instructions beyond the including file's.
// Thread-safety: as kernels.h.
#pragma once

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

namespace strata::kernels::internal {
namespace {

constexpr int kPanelRows = 32;

// A weight type's panel kernels, W:
//   W::Acts          quantized activations: Acts(n_in); bytes(n_tok);
//                    set_base(64-byte aligned scratch); Quantize(t, x: F32 [n_in])
//                    (distinct t may run concurrently)
//   W::kBlock        inputs per record;  W::kRecordBytes: bytes of a record
//                    (the 32 rows' blocks of kBlock inputs)
//   W::PackPanel(w, o0, panel)           rows o0 .. o0+31 of w (row layout) as a panel
//   W::kTileRows     rows of a register tile: 32, or a divisor of 32 when a
//                    panel is kPanelRows / kTileRows row groups one after the
//                    other (each kTileRows / 32 of the panel's bytes)
//   W::kTileTokens;  W::Tile<T>(tile, n_records, acts, t0, y, n_out, o0) for 1 <= T <= kTileTokens:
//                    y[t0 .. t0+T-1][o0 .. o0+kTileRows-1] (rows < n_out stored)
//                    from one group's bytes at `tile`

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
    // Row groups outermost: a group's weights stay in L1 through every token tile.
    const size_t group_bytes = panel_bytes / (kPanelRows / W::kTileRows);
    for (int64_t r0 = 0; r0 < kPanelRows && o0 + r0 < n_out; r0 += W::kTileRows) {
      const uint8_t* tile = panel + group_bytes * static_cast<size_t>(r0 / W::kTileRows);
      for (int64_t t0 = 0; t0 < n_tok; t0 += W::kTileTokens) {
        WithCount<W::kTileTokens>(n_tok - t0, [&](auto T) {
          W::template Tile<T()>(tile, n_records, xa, t0, outs[i].y, n_out, o0 + r0);
        });
      }
    }
  });
}

// A weight type's MatMulKernels (type_traits.h) on these panels.
template <class W>
constexpr MatMulKernels kPanelKernels = {MatMulQuantPanels<W>, PackedQuantBytes<W>, PackQuantMatrix<W>};

}  // namespace
}  // namespace strata::kernels::internal
