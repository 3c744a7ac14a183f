#include "kv/kv_layout.h"

#include <fmt/format.h>

namespace strata {

Status MakeKvLayout(const HParams& hp, DType type, int32_t block_tokens, KvLayout* out) {
  if (type != DType::kF32 && type != DType::kF16 && type != DType::kQ8_0)
    return Status::InvalidArgument(fmt::format("KV type {} is not supported (f32, f16, q8_0)", DTypeName(type)));
  if (type == DType::kQ8_0 && hp.head_dim % kQK8_0 != 0)
    return Status::InvalidArgument(
        fmt::format("q8_0 KV needs a head dimension that is a multiple of 32; this model's is {}", hp.head_dim));
  if (block_tokens < 1 || block_tokens > 4096)
    return Status::InvalidArgument(fmt::format("KV block size {} is outside [1, 4096]", block_tokens));
  *out = KvLayout{hp.n_layer, hp.n_head_kv, hp.head_dim, block_tokens, type};
  return Status::Ok();
}

DType DefaultKvType(const Model& model) {
  return model.weight_type() == DType::kF32 ? DType::kF32 : DType::kF16;
}

}  // namespace strata
