#include "engine/context.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fmt/format.h>
#include <thread>

#include "kernels/kernels.h"

namespace strata {

Status Context::Create(const Model& model, const ContextParams& params, std::unique_ptr<Context>* out) {
  const LlamaHParams& hp = model.hparams();
  int32_t n_ctx = params.n_ctx > 0 ? params.n_ctx : hp.n_ctx_train;
  if (n_ctx <= 0 || n_ctx > (1 << 20)) return Status::InvalidArgument(fmt::format("invalid context size {}", n_ctx));
  if (params.n_batch <= 0 || params.n_batch > 8192)
    return Status::InvalidArgument(fmt::format("invalid batch size {}", params.n_batch));
  int32_t n_threads = params.n_threads > 0 ? params.n_threads : static_cast<int32_t>(std::thread::hardware_concurrency());
  if (n_threads <= 0) n_threads = 1;
  if (n_threads > 1024) return Status::InvalidArgument(fmt::format("invalid thread count {}", n_threads));
  const uint64_t kv_bytes = 2ull * hp.n_layer * static_cast<uint64_t>(n_ctx) * hp.n_embd_kv() * sizeof(float);
  if (kv_bytes > (64ull << 30))
    return Status::ResourceExhausted(fmt::format("a context of {} tokens needs {} GiB of KV cache", n_ctx, kv_bytes >> 30));
  out->reset(new Context(model, n_ctx, std::min(params.n_batch, n_ctx), n_threads));
  return Status::Ok();
}

Context::Context(const Model& model, int32_t n_ctx, int32_t n_batch, int32_t n_threads)
    : model_(model), n_batch_(n_batch), kv_(model.hparams(), n_ctx), pool_(n_threads) {
  const LlamaHParams& hp = model.hparams();
  const size_t nb = static_cast<size_t>(n_batch);
  x_.resize(hp.n_embd * nb);
  xb_.resize(hp.n_embd * nb);
  q_.resize(hp.n_embd * nb);
  k_.resize(hp.n_embd_kv() * nb);
  v_.resize(hp.n_embd_kv() * nb);
  att_.resize(hp.n_embd * nb);
  gate_.resize(hp.n_ff * nb);
  up_.resize(hp.n_ff * nb);
  scores_.resize(static_cast<size_t>(n_ctx) * n_threads);
}

Status Context::Decode(std::span<const int32_t> tokens, LogitsMode mode) {
  const LlamaHParams& hp = model_.hparams();
  if (tokens.empty()) return Status::InvalidArgument("no tokens to decode");
  for (int32_t t : tokens)
    if (t < 0 || t >= hp.n_vocab) return Status::InvalidArgument(fmt::format("token id {} out of range [0, {})", t, hp.n_vocab));
  if (tokens.size() > static_cast<size_t>(INT32_MAX)) return Status::InvalidArgument("too many tokens");
  const int32_t n_total = static_cast<int32_t>(tokens.size());
  STRATA_RETURN_IF_ERROR(kv_.Reserve(n_total));

  const bool all = mode == LogitsMode::kAll;
  logits_.resize(static_cast<size_t>(hp.n_vocab) * (all ? n_total : 1));
  for (int32_t done = 0; done < n_total;) {
    const int32_t n = std::min(n_batch_, n_total - done);
    const bool last_chunk = done + n == n_total;
    float* out = all ? &logits_[static_cast<size_t>(done) * hp.n_vocab] : (last_chunk ? logits_.data() : nullptr);
    ForwardBatch(tokens.data() + done, n, all, out);
    kv_.Commit(n);
    done += n;
  }
  return Status::Ok();
}

void Context::ForwardBatch(const int32_t* tokens, int32_t n, bool all_logits, float* logits_out) {
  const LlamaHParams& hp = model_.hparams();
  const LlamaWeights& w = model_.weights();
  const int64_t E = hp.n_embd, KV = hp.n_embd_kv(), FF = hp.n_ff;
  const int32_t pos0 = kv_.n_past();

  for (int32_t t = 0; t < n; ++t)
    kernels::DequantizeRow(w.token_embd.type, w.token_embd.row(tokens[t]), &x_[t * E], E);

  for (int32_t il = 0; il < hp.n_layer; ++il) {
    const LayerWeights& l = w.layers[il];
    for (int32_t t = 0; t < n; ++t)
      kernels::RmsNorm(&x_[t * E], static_cast<const float*>(l.attn_norm.data), &xb_[t * E], E, hp.rms_eps);
    kernels::MatMul(l.wq, xb_.data(), n, q_.data(), pool_);
    kernels::MatMul(l.wk, xb_.data(), n, k_.data(), pool_);
    kernels::MatMul(l.wv, xb_.data(), n, v_.data(), pool_);
    const bool neox = hp.rope_type == RopeType::kNeox;
    for (int32_t t = 0; t < n; ++t) {
      const int32_t pos = pos0 + t;
      for (int32_t h = 0; h < hp.n_head; ++h)
        kernels::Rope(&q_[t * E + h * hp.head_dim], hp.head_dim, hp.n_rot, pos, hp.rope_freq_base, hp.rope_freq_scale, neox);
      for (int32_t h = 0; h < hp.n_head_kv; ++h)
        kernels::Rope(&k_[t * KV + h * hp.head_dim], hp.head_dim, hp.n_rot, pos, hp.rope_freq_base, hp.rope_freq_scale, neox);
      std::memcpy(kv_.k(il, pos), &k_[t * KV], KV * sizeof(float));
      std::memcpy(kv_.v(il, pos), &v_[t * KV], KV * sizeof(float));
    }
    Attention(il, n);
    kernels::MatMul(l.wo, att_.data(), n, xb_.data(), pool_);
    for (int64_t i = 0; i < n * E; ++i) x_[i] += xb_[i];

    for (int32_t t = 0; t < n; ++t)
      kernels::RmsNorm(&x_[t * E], static_cast<const float*>(l.ffn_norm.data), &xb_[t * E], E, hp.rms_eps);
    kernels::MatMul(l.ffn_gate, xb_.data(), n, gate_.data(), pool_);
    kernels::MatMul(l.ffn_up, xb_.data(), n, up_.data(), pool_);
    kernels::SwiGLU(gate_.data(), up_.data(), gate_.data(), n * FF);
    kernels::MatMul(l.ffn_down, gate_.data(), n, xb_.data(), pool_);
    for (int64_t i = 0; i < n * E; ++i) x_[i] += xb_[i];
  }

  if (logits_out == nullptr) return;
  // Only the rows whose logits are wanted go through the output matrix.
  const int32_t first = all_logits ? 0 : n - 1;
  const int32_t n_out = n - first;
  for (int32_t t = first; t < n; ++t)
    kernels::RmsNorm(&x_[t * E], static_cast<const float*>(w.output_norm.data), &xb_[(t - first) * E], E, hp.rms_eps);
  kernels::MatMul(w.output, xb_.data(), n_out, logits_out, pool_);
}

// Causal grouped-query attention of the n new tokens over every cached
// position up to their own: att_[t] = softmax(q·Kᵀ/√d) V, head by head.
void Context::Attention(int32_t il, int32_t n) {
  const LlamaHParams& hp = model_.hparams();
  const int32_t E = hp.n_embd, D = hp.head_dim, group = hp.n_head / hp.n_head_kv;
  const int32_t pos0 = kv_.n_past();
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const int64_t n_ctx = kv_.n_ctx();
  pool_.Run([&](int ith, int nth) {
    float* scores = &scores_[static_cast<size_t>(ith) * n_ctx];
    for (int64_t job = ith; job < static_cast<int64_t>(n) * hp.n_head; job += nth) {
      const int32_t t = static_cast<int32_t>(job / hp.n_head), h = static_cast<int32_t>(job % hp.n_head);
      const int32_t kvh = h / group, n_pos = pos0 + t + 1;
      const float* q = &q_[static_cast<size_t>(t) * E + h * D];
      for (int32_t p = 0; p < n_pos; ++p) scores[p] = kernels::DotF32(q, kv_.k(il, p) + kvh * D, D) * scale;
      kernels::Softmax(scores, n_pos);
      float* out = &att_[static_cast<size_t>(t) * E + h * D];
      std::fill(out, out + D, 0.0f);
      for (int32_t p = 0; p < n_pos; ++p) kernels::AxpyF32(scores[p], kv_.v(il, p) + kvh * D, out, D);
    }
  });
}

}  // namespace strata
