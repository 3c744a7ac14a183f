#include "engine/forward.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fmt/format.h>

#include "kernels/attention.h"
#include "kernels/kernels.h"

namespace strata {

Forward::Forward(const Model& model, KvCacheManager& kv, ThreadPool& pool) : model_(model), kv_(kv), pool_(pool) {}

void Forward::Resize(int32_t n) {
  const LlamaHParams& hp = model_.hparams();
  const size_t nt = static_cast<size_t>(n);
  if (x_.size() >= hp.n_embd * nt) return;
  x_.resize(hp.n_embd * nt);
  xb_.resize(hp.n_embd * nt);
  q_.resize(hp.n_embd * nt);
  k_.resize(hp.n_embd_kv() * nt);
  v_.resize(hp.n_embd_kv() * nt);
  att_.resize(hp.n_embd * nt);
  gate_.resize(hp.n_ff * nt);
  up_.resize(hp.n_ff * nt);
}

Status Forward::PinLayer(const Batch& batch, int32_t il, std::vector<std::vector<uint8_t*>>* slices) {
  slices->resize(batch.entries.size());
  for (size_t e = 0; e < batch.entries.size(); ++e) {
    const std::vector<BlockId>& blocks = kv_.blocks(batch.entries[e].seq);
    std::vector<uint8_t*>& out = (*slices)[e];
    out.assign(blocks.size(), nullptr);
    for (size_t b = 0; b < blocks.size(); ++b) {
      Status s = kv_.store().Pin(blocks[b], il, &out[b]);
      if (!s.ok()) {
        // Unpin what this call pinned so far, then report.
        for (size_t e2 = 0; e2 <= e; ++e2)
          for (size_t b2 = 0; b2 < (*slices)[e2].size() && (*slices)[e2][b2] != nullptr; ++b2)
            kv_.store().Unpin(kv_.blocks(batch.entries[e2].seq)[b2], il, false);
        return s;
      }
    }
  }
  return Status::Ok();
}

void Forward::UnpinLayer(const Batch& batch, int32_t il) {
  const int32_t B = kv_.layout().block_tokens;
  for (const BatchEntry& e : batch.entries) {
    const std::vector<BlockId>& blocks = kv_.blocks(e.seq);
    const size_t first_written = static_cast<size_t>(kv_.length(e.seq) / B);
    for (size_t b = 0; b < blocks.size(); ++b) kv_.store().Unpin(blocks[b], il, b >= first_written);
  }
}

void Forward::PrefetchLayer(const Batch& batch, int32_t il) {
  if (!kv_.store().has_disk()) return;
  std::vector<std::pair<BlockId, int32_t>> want;
  for (const BatchEntry& e : batch.entries)
    for (BlockId b : kv_.blocks(e.seq)) want.emplace_back(b, il);
  kv_.store().Prefetch(want);
}

// Stores each new token's K and V rows (already rotated) into its block.
void Forward::WriteKv(const Batch& batch, const std::vector<std::vector<uint8_t*>>& slices) {
  const LlamaHParams& hp = model_.hparams();
  const KvLayout& L = kv_.layout();
  const int32_t D = hp.head_dim, KV = hp.n_embd_kv();
  for (size_t i = 0; i < refs_.size(); ++i) {
    const TokenRef& r = refs_[i];
    uint8_t* slice = slices[static_cast<size_t>(r.entry)][static_cast<size_t>(r.pos / L.block_tokens)];
    const int32_t tok = r.pos % L.block_tokens;
    for (int32_t g = 0; g < hp.n_head_kv; ++g) {
      kernels::QuantizeRow(L.type, &k_[i * KV + g * D], slice + L.k_offset(g, tok), D);
      kernels::QuantizeRow(L.type, &v_[i * KV + g * D], slice + L.v_offset(g, tok), D);
    }
  }
}

// Causal grouped-query attention. Jobs are (token, KV head, block range);
// with few tokens (decode) each token's blocks are split into ranges so both
// cores work, and the ranges' partial results are merged by log-sum-exp.
void Forward::Attention(const std::vector<std::vector<uint8_t*>>& slices) {
  const LlamaHParams& hp = model_.hparams();
  const KvLayout& L = kv_.layout();
  const int32_t D = hp.head_dim, E = hp.n_embd, n_kv = hp.n_head_kv, group = hp.n_head / hp.n_head_kv;
  const int32_t B = L.block_tokens, nth = pool_.n_threads();
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const int64_t n_tok = static_cast<int64_t>(refs_.size());
  const int64_t splits = std::max<int64_t>(1, (4 * nth + n_tok * n_kv - 1) / (n_tok * n_kv));

  struct Job {
    int32_t token, g, b0, b1;
  };
  std::vector<Job> jobs;
  std::vector<int32_t> first_job(static_cast<size_t>(n_tok * n_kv) + 1);
  for (int32_t i = 0; i < n_tok; ++i) {
    const int32_t nb = refs_[i].pos / B + 1;
    const int32_t per = static_cast<int32_t>((nb + splits - 1) / splits);
    for (int32_t g = 0; g < n_kv; ++g) {
      first_job[static_cast<size_t>(i) * n_kv + g] = static_cast<int32_t>(jobs.size());
      for (int32_t b0 = 0; b0 < nb; b0 += per) jobs.push_back({i, g, b0, std::min(nb, b0 + per)});
    }
  }
  first_job.back() = static_cast<int32_t>(jobs.size());
  const size_t stride = static_cast<size_t>(D + 2);  // acc[D], m, l per query head
  partial_.resize(jobs.size() * group * stride);
  scratch_.resize(static_cast<size_t>(D) * nth);

  const size_t row_bytes = L.row_bytes();
  std::vector<std::vector<kernels::SoftmaxPartial>> heads(static_cast<size_t>(nth));
  pool_.Run([&](int ith, int nth_) {
    float* scratch = &scratch_[static_cast<size_t>(ith) * D];
    for (size_t j = static_cast<size_t>(ith); j < jobs.size(); j += static_cast<size_t>(nth_)) {
      const Job& job = jobs[j];
      const TokenRef& r = refs_[static_cast<size_t>(job.token)];
      const std::vector<uint8_t*>& blocks = slices[static_cast<size_t>(r.entry)];
      // The group's query heads are contiguous in q_ and share this KV head.
      const float* q = &q_[static_cast<size_t>(job.token) * E + job.g * group * D];
      float* out = &partial_[j * group * stride];
      std::vector<kernels::SoftmaxPartial>& p = heads[static_cast<size_t>(ith)];
      p.assign(static_cast<size_t>(group), kernels::SoftmaxPartial{});
      for (int32_t hq = 0; hq < group; ++hq) std::fill(out + hq * stride, out + hq * stride + D, 0.0f);
      for (int32_t b = job.b0; b < job.b1; ++b) {
        const int32_t n = std::min(B, r.pos + 1 - b * B);
        const uint8_t* slice = blocks[static_cast<size_t>(b)];
        kernels::AttendRowsHeads(q, group, slice + L.k_offset(job.g, 0), slice + L.v_offset(job.g, 0), row_bytes,
                                 L.type, n, D, scale, p.data(), out, stride, scratch);
      }
      for (int32_t hq = 0; hq < group; ++hq) {
        out[hq * stride + D] = p[static_cast<size_t>(hq)].m;
        out[hq * stride + D + 1] = p[static_cast<size_t>(hq)].l;
      }
    }
  });
  pool_.ParallelFor(n_tok * n_kv, 1, [&](int64_t begin, int64_t end) {
    for (int64_t tg = begin; tg < end; ++tg) {
      const int64_t i = tg / n_kv, g = tg % n_kv;
      for (int32_t hq = 0; hq < group; ++hq) {
        float* dst = &att_[static_cast<size_t>(i) * E + (g * group + hq) * D];
        kernels::SoftmaxPartial acc;
        std::fill(dst, dst + D, 0.0f);
        for (int32_t j = first_job[tg]; j < first_job[tg + 1]; ++j) {
          const float* src = &partial_[(static_cast<size_t>(j) * group + hq) * stride];
          kernels::MergePartial(&acc, dst, kernels::SoftmaxPartial{src[D], src[D + 1]}, src, D);
        }
        const float inv = 1.0f / acc.l;
        for (int32_t d = 0; d < D; ++d) dst[d] *= inv;
      }
    }
  });
}

Status Forward::Run(const Batch& batch, std::vector<float>* logits) {
  const LlamaHParams& hp = model_.hparams();
  const LlamaWeights& w = model_.weights();
  const int64_t E = hp.n_embd, KV = hp.n_embd_kv(), FF = hp.n_ff;
  const int32_t n = batch.n_tokens();
  if (n == 0) return Status::InvalidArgument("empty batch");
  Resize(n);
  refs_.clear();
  for (size_t e = 0; e < batch.entries.size(); ++e) {
    const int32_t pos0 = kv_.length(batch.entries[e].seq);
    for (size_t t = 0; t < batch.entries[e].tokens.size(); ++t)
      refs_.push_back({static_cast<int32_t>(e), pos0 + static_cast<int32_t>(t)});
  }
  {
    int32_t i = 0;
    for (const BatchEntry& e : batch.entries)
      for (int32_t tok : e.tokens) kernels::DequantizeRow(w.token_embd.type, w.token_embd.row(tok), &x_[i++ * E], E);
  }

  const bool neox = hp.rope_type == RopeType::kNeox;
  std::vector<std::vector<uint8_t*>> slices;
  PrefetchLayer(batch, 0);
  for (int32_t il = 0; il < hp.n_layer; ++il) {
    const LayerWeights& l = w.layers[il];
    for (int32_t t = 0; t < n; ++t)
      kernels::RmsNorm(&x_[t * E], static_cast<const float*>(l.attn_norm.data), &xb_[t * E], E, hp.rms_eps);
    kernels::MatMul(l.wq, xb_.data(), n, q_.data(), pool_);
    kernels::MatMul(l.wk, xb_.data(), n, k_.data(), pool_);
    kernels::MatMul(l.wv, xb_.data(), n, v_.data(), pool_);
    pool_.ParallelFor(n, 1, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        const int32_t pos = refs_[static_cast<size_t>(t)].pos;
        kernels::RopeHeads(&q_[t * E], hp.n_head, hp.head_dim, hp.n_rot, pos, hp.rope_freq_base, hp.rope_freq_scale, neox);
        kernels::RopeHeads(&k_[t * KV], hp.n_head_kv, hp.head_dim, hp.n_rot, pos, hp.rope_freq_base, hp.rope_freq_scale,
                           neox);
      }
    });
    STRATA_RETURN_IF_ERROR(PinLayer(batch, il, &slices));
    if (il + 1 < hp.n_layer) PrefetchLayer(batch, il + 1);
    WriteKv(batch, slices);
    Attention(slices);
    UnpinLayer(batch, il);
    STRATA_RETURN_IF_ERROR(kv_.store().EnforceBudget());

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

  // Only rows whose logits are wanted go through the output matrix.
  int32_t rows = 0, t = 0;
  for (const BatchEntry& e : batch.entries) {
    const int32_t len = static_cast<int32_t>(e.tokens.size());
    for (int32_t k = 0; k < len; ++k, ++t)
      if (e.all_logits || (e.logits && k == len - 1))
        kernels::RmsNorm(&x_[t * E], static_cast<const float*>(w.output_norm.data), &xb_[rows++ * E], E, hp.rms_eps);
  }
  logits->resize(static_cast<size_t>(rows) * hp.n_vocab);
  if (rows > 0) kernels::MatMul(w.output, xb_.data(), rows, logits->data(), pool_);
  return Status::Ok();
}

}  // namespace strata
