#include "engine/kv_cache.h"

#include <fmt/format.h>

namespace strata {

KvCache::KvCache(const LlamaHParams& hp, int32_t n_ctx)
    : n_ctx_(n_ctx),
      n_embd_kv_(hp.n_embd_kv()),
      k_(static_cast<size_t>(hp.n_layer) * n_ctx * hp.n_embd_kv()),
      v_(static_cast<size_t>(hp.n_layer) * n_ctx * hp.n_embd_kv()) {}

Status KvCache::Reserve(int32_t n) const {
  if (n < 0 || n > n_ctx_ - n_past_)
    return Status::ResourceExhausted(
        fmt::format("context full: {} tokens cached, {} more requested, context size {}", n_past_, n, n_ctx_));
  return Status::Ok();
}

}  // namespace strata
