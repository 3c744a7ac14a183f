// KvLayout: the shape of one KV "slice" — the keys and values of one layer for
// one block of block_tokens consecutive positions. Slices are the unit that is
// stored, moved between tiers, checksummed and read by attention.
//
// Slice bytes: K then V, each [head_dim, block_tokens, n_head_kv] (head_dim
// innermost), so one KV head's rows for a block are contiguous — what the
// attention kernel streams.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "core/status.h"
#include "model/model.h"

namespace strata {

struct KvLayout {
  int32_t n_layer = 0;
  int32_t n_head_kv = 0;
  int32_t head_dim = 0;
  int32_t block_tokens = 0;  // positions per block
  DType type = DType::kF32;  // F32, F16 or Q8_0

  // Inline for the KV types: attention and the KV write ask for offsets per
  // block and head (RowBytes' table walk and division cost ~1% of a 134M token).
  uint64_t row_bytes() const {
    const auto d = static_cast<uint64_t>(head_dim);
    switch (type) {
      case DType::kF32: return 4 * d;
      case DType::kF16: return 2 * d;
      case DType::kQ8_0: return d / kQK8_0 * sizeof(BlockQ8_0);
      default: return *RowBytes(type, d);
    }
  }
  uint64_t half_bytes() const { return static_cast<uint64_t>(n_head_kv) * block_tokens * row_bytes(); }
  uint64_t slice_bytes() const { return 2 * half_bytes(); }
  uint64_t block_bytes() const { return slice_bytes() * static_cast<uint64_t>(n_layer); }
  // Byte offsets inside a slice of the K / V row of (head, token-in-block).
  uint64_t k_offset(int32_t head, int32_t tok) const {
    return (static_cast<uint64_t>(head) * block_tokens + tok) * row_bytes();
  }
  uint64_t v_offset(int32_t head, int32_t tok) const { return half_bytes() + k_offset(head, tok); }
};

// Validates type (F32/F16/Q8_0; Q8_0 needs head_dim % 32 == 0) and block size (1..4096).
[[nodiscard]] Status MakeKvLayout(const HParams& hp, DType type, int32_t block_tokens, KvLayout* out);

// The default KV type for a model: F32 for an F32 model (so output matches the
// references exactly), F16 otherwise.
DType DefaultKvType(const Model& model);

}  // namespace strata
