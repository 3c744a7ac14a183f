// Tensor: a typed, shaped, read-only view of bytes owned by someone else
// (normally an mmapped model file). Dimensions follow ggml: ne[0] is the
// contiguous (innermost) dimension, so a weight matrix with `rows` outputs of
// `cols` inputs has ne = {cols, rows}; rows are stored one after another,
// unless the matrix was repacked for a kernel (layout != kRows).
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "core/dtype.h"

namespace strata {

// How a matrix's elements are arranged in memory. Append-only.
enum class TensorLayout : uint8_t {
  kRows = 0,      // row after row, as in GGUF
  kPanels32 = 1,  // kernels::PackMatrix's 32-row panels (read only by MatMul)
};

struct Tensor {
  DType type = DType::kF32;
  std::array<int64_t, 4> ne = {1, 1, 1, 1};  // elements per dimension, innermost first
  const void* data = nullptr;                // not owned
  TensorLayout layout = TensorLayout::kRows;

  int64_t cols() const { return ne[0]; }
  int64_t rows() const { return ne[1] * ne[2] * ne[3]; }
  int64_t elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  // REQUIRES: ne[0] is a multiple of the type's block size; row() also layout == kRows.
  uint64_t row_bytes() const { return static_cast<uint64_t>(ne[0] / Info(type).block_size) * Info(type).type_size; }
  const uint8_t* row(int64_t r) const { return static_cast<const uint8_t*>(data) + r * row_bytes(); }
  // Bytes of all rows (a packed layout's padding not counted). REQUIRES: as row_bytes().
  uint64_t nbytes() const { return row_bytes() * static_cast<uint64_t>(rows()); }
};

}  // namespace strata
