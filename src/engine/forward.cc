#include "engine/forward.h"

#include <fmt/format.h>

#include "engine/linear.h"
#include "engine/rope.h"
#include "kernels/kernels.h"

namespace strata {

namespace {

// The MPI tag of the layer split's hidden states (rank to rank).
constexpr int32_t kPipelineTag = 1;

}  // namespace

Forward::Forward(const Model& model, KvTiers& kv, ThreadPool& pool, int32_t n_ctx_seq, AttentionGrid grid,
                 Cluster* cluster)
    : model_(model),
      cluster_(cluster != nullptr && cluster->size() > 1 ? cluster : nullptr),
      kv_(kv),
      pool_(pool),
      grid_(grid),
      layer_(BuilderFor(model.hparams().arch)),
      ropes_{RopeSpecFor(model.hparams(), model.weights(), n_ctx_seq, false)} {
  const HParams& hp = model.hparams();
  if (hp.swa_layers.empty()) return;
  const RopeSpec swa = RopeSpecFor(hp, model.weights(), n_ctx_seq, true);
  const RopeSpec& full = ropes_[0];
  if (swa.freq_base != full.freq_base || swa.freq_scale != full.freq_scale) ropes_.push_back(swa);
}

Forward::LayerBuilder Forward::BuilderFor(Arch arch) {
  switch (arch) {
    case Arch::kLlama:
    case Arch::kQwen2:
    case Arch::kQwen3:
    case Arch::kPhi3:
    case Arch::kGemma: return &Forward::PreNormLayer;
    case Arch::kGemma2:
    case Arch::kGemma3: return &Forward::SandwichNormLayer;
  }
  return &Forward::PreNormLayer;
}

Status Forward::GroupByAdapter(const StepPlan& plan) {
  lora_.groups.clear();
  lora_logits_.groups.clear();
  int32_t row = 0, logit_row = 0;
  for (const PlanEntry& e : plan.entries) {
    if (e.adapter < 0 || e.adapter > n_adapters())
      return Status::InvalidArgument(fmt::format("plan entry of sequence {} names adapter set {}; there are {}", e.seq,
                                                 e.adapter, n_adapters()));
    const int32_t len = static_cast<int32_t>(e.tokens.size());
    const int32_t n_logits = e.logits == PlanLogits::kAll ? len : e.logits == PlanLogits::kLast ? 1 : 0;
    if (e.adapter > 0) {
      const LoraSet* set = &adapters_[static_cast<size_t>(e.adapter - 1)];
      for (LoraBatch* b : {&lora_, &lora_logits_}) {
        if (b->groups.size() < adapters_.size()) b->groups.resize(adapters_.size());
        b->groups[static_cast<size_t>(e.adapter - 1)].set = set;
      }
      std::vector<int32_t>& rows = lora_.groups[static_cast<size_t>(e.adapter - 1)].rows;
      for (int32_t k = 0; k < len; ++k) rows.push_back(row + k);
      std::vector<int32_t>& lrows = lora_logits_.groups[static_cast<size_t>(e.adapter - 1)].rows;
      for (int32_t k = 0; k < n_logits; ++k) lrows.push_back(logit_row + k);
    }
    row += len;
    logit_row += n_logits;
  }
  return Status::Ok();
}

void Forward::Resize(int32_t n) {
  const HParams& hp = model_.hparams();
  const size_t nt = static_cast<size_t>(n);
  if (x_.size() >= hp.n_embd * nt) return;
  x_.resize(hp.n_embd * nt);
  xb_.resize(hp.n_embd * nt);
  q_.resize(hp.n_embd_q() * nt);
  k_.resize(hp.n_embd_kv() * nt);
  v_.resize(hp.n_embd_kv() * nt);
  att_.resize(hp.n_embd_q() * nt);
  gate_.resize(hp.n_ff * nt);
  up_.resize(hp.n_ff * nt);
}

// One pass per token: q rotated in place; K rotated in place (hot in cache)
// and quantized straight into its block, then V.
void Forward::RopeWriteKv(const KvTiers::Slices& slices, int table) {
  const HParams& hp = model_.hparams();
  const KvLayout& L = kv_.layout();
  const int64_t E = hp.n_embd_q(), KV = hp.n_embd_kv();
  const int32_t D = hp.head_dim;
  const bool neox = hp.rope_type == RopeType::kNeox;
  const size_t half = static_cast<size_t>(hp.n_rot / 2);
  pool_.ParallelFor(static_cast<int64_t>(refs_.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const AttentionQuery& r = refs_[static_cast<size_t>(i)];
      const float* cos = &rope_cos_[table][static_cast<size_t>(i) * half];
      const float* sin = &rope_sin_[table][static_cast<size_t>(i) * half];
      kernels::RopeHeads(&q_[i * E], hp.n_head, D, hp.n_rot, neox, cos, sin);
      float* k = &k_[i * KV];
      kernels::RopeHeads(k, hp.n_head_kv, D, hp.n_rot, neox, cos, sin);
      uint8_t* slice = slices[static_cast<size_t>(r.seq)][static_cast<size_t>(r.pos / L.block_tokens)];
      const int32_t tok = r.pos % L.block_tokens;
      for (int32_t g = 0; g < hp.n_head_kv; ++g) {
        kernels::QuantizeRow(L.type, k + g * D, slice + L.k_offset(g, tok), D);
        kernels::QuantizeRow(L.type, &v_[i * KV + g * D], slice + L.v_offset(g, tok), D);
      }
    }
  });
}

Status Forward::PreNormLayer(const StepPlan& plan, int32_t il) {
  const LayerWeights& l = model_.weights().layers[static_cast<size_t>(il)];
  Norm(l.attn_norm, x_.data(), xb_.data());
  STRATA_RETURN_IF_ERROR(SelfAttention(plan, il));
  AddResidual();
  Norm(l.ffn_norm, x_.data(), xb_.data());
  STRATA_RETURN_IF_ERROR(GatedFfn(l));
  AddResidual();
  return Status::Ok();
}

Status Forward::SandwichNormLayer(const StepPlan& plan, int32_t il) {
  const LayerWeights& l = model_.weights().layers[static_cast<size_t>(il)];
  Norm(l.attn_norm, x_.data(), xb_.data());
  STRATA_RETURN_IF_ERROR(SelfAttention(plan, il));
  Norm(l.attn_post_norm, xb_.data(), xb_.data());
  AddResidual();
  Norm(l.ffn_norm, x_.data(), xb_.data());
  STRATA_RETURN_IF_ERROR(GatedFfn(l));
  Norm(l.ffn_post_norm, xb_.data(), xb_.data());
  AddResidual();
  return Status::Ok();
}

void Forward::Norm(const Tensor& weight, const float* x, float* out) {
  const HParams& hp = model_.hparams();
  const int64_t E = hp.n_embd;
  for (int32_t t = 0; t < n_; ++t)
    kernels::RmsNorm(&x[t * E], static_cast<const float*>(weight.data), &out[t * E], E, hp.rms_eps);
}

Status Forward::SelfAttention(const StepPlan& plan, int32_t il) {
  const HParams& hp = model_.hparams();
  const LayerWeights& l = model_.weights().layers[static_cast<size_t>(il)];
  const LinearOut qkv[] = {{&l.wq, q_.data()}, {&l.wk, k_.data()}, {&l.wv, v_.data()}};
  ApplyLinear(qkv, xb_.data(), n_, pool_, &lora_);
  if (l.attn_q_norm.data != nullptr) {
    // RMS norm over each head's head_dim, before RoPE (qwen3, gemma3).
    const int32_t D = hp.head_dim;
    const float* qw = static_cast<const float*>(l.attn_q_norm.data);
    const float* kw = static_cast<const float*>(l.attn_k_norm.data);
    for (int64_t h = 0; h < int64_t{n_} * hp.n_head; ++h) kernels::RmsNorm(&q_[h * D], qw, &q_[h * D], D, hp.rms_eps);
    for (int64_t h = 0; h < int64_t{n_} * hp.n_head_kv; ++h)
      kernels::RmsNorm(&k_[h * D], kw, &k_[h * D], D, hp.rms_eps);
  }
  STRATA_RETURN_IF_ERROR(kv_.Open(plan, il, &slices_));
  if (il + 1 < model_.shard().end_layer) kv_.Prefetch(plan, il + 1);
  const bool swa = hp.is_swa(il);
  RopeWriteKv(slices_, swa && ropes_.size() > 1 ? 1 : 0);
  const Status s = kv_.Attend(grid_, LayerAttentionMath(hp, il), refs_, plan, q_.data(), &slices_, att_.data());
  kv_.Close(plan, il);
  STRATA_RETURN_IF_ERROR(s);
  return ApplyRowParallel(l.wo, att_.data(), xb_.data());
}

Status Forward::ApplyRowParallel(const Linear& linear, const float* x, float* y) {
  if (cluster_ == nullptr || cluster_->split() != Split::kTensor) {
    const LinearOut out[] = {{&linear, y}};
    ApplyLinear(out, x, n_, pool_, &lora_);
    return Status::Ok();
  }
  // Each rank multiplies its input columns: partial sums, added up over the
  // ranks; the bias once, after.
  const Linear no_bias{linear.w, Tensor{}};
  const LinearOut out[] = {{&no_bias, y}};
  ApplyLinear(out, x, n_, pool_);
  const int64_t rows = linear.w.rows();
  STRATA_RETURN_IF_ERROR(cluster_->AllReduceSum(y, rows * n_));
  if (linear.b.data != nullptr) {
    const float* bias = static_cast<const float*>(linear.b.data);
    for (int64_t t = 0; t < n_; ++t)
      for (int64_t i = 0; i < rows; ++i) y[t * rows + i] += bias[i];
  }
  return Status::Ok();
}

Status Forward::GatedFfn(const LayerWeights& l) {
  const int64_t n_ff = model_.hparams().n_ff;
  const LinearOut gate_up[] = {{&l.ffn_gate, gate_.data()}, {&l.ffn_up, up_.data()}};
  ApplyLinear(gate_up, xb_.data(), n_, pool_, &lora_);
  switch (model_.hparams().ffn_act) {
    case FfnAct::kSilu: kernels::SwiGLU(gate_.data(), up_.data(), gate_.data(), n_ * n_ff); break;
    case FfnAct::kGeluTanh: kernels::GeGLU(gate_.data(), up_.data(), gate_.data(), n_ * n_ff); break;
  }
  return ApplyRowParallel(l.ffn_down, gate_.data(), xb_.data());
}

void Forward::AddResidual() {
  const int64_t n = int64_t{n_} * model_.hparams().n_embd;
  for (int64_t i = 0; i < n; ++i) x_[i] += xb_[i];
}

Status Forward::Begin(const StepPlan& plan) {
  const HParams& hp = model_.hparams();
  const int32_t n = plan.n_tokens();
  Resize(n);
  n_ = n;
  STRATA_RETURN_IF_ERROR(GroupByAdapter(plan));
  kv_.BeginStep(plan);
  refs_.clear();
  for (size_t e = 0; e < plan.entries.size(); ++e) {
    const int32_t pos0 = plan.entries[e].start;
    for (size_t t = 0; t < plan.entries[e].tokens.size(); ++t)
      refs_.push_back({static_cast<int32_t>(e), pos0 + static_cast<int32_t>(t)});
  }
  const size_t half = static_cast<size_t>(hp.n_rot / 2);
  for (size_t r = 0; r < ropes_.size(); ++r) {
    rope_cos_[r].resize(refs_.size() * half);
    rope_sin_[r].resize(refs_.size() * half);
    for (size_t i = 0; i < refs_.size(); ++i)
      RopeAnglesAt(ropes_[r], refs_[i].pos, &rope_cos_[r][i * half], &rope_sin_[r][i * half]);
  }
  return Status::Ok();
}

void Forward::Embed(const StepPlan& plan) {
  const HParams& hp = model_.hparams();
  const ModelWeights& w = model_.weights();
  const int64_t E = hp.n_embd;
  int32_t i = 0;
  for (const PlanEntry& e : plan.entries)
    for (int32_t tok : e.tokens) kernels::DequantizeRow(w.token_embd.type, w.token_embd.row(tok), &x_[i++ * E], E);
  if (!lora_.groups.empty()) {
    std::vector<int32_t> tokens;
    for (const PlanEntry& e : plan.entries) tokens.insert(tokens.end(), e.tokens.begin(), e.tokens.end());
    ApplyLoraEmbedding(tokens.data(), x_.data(), lora_, pool_);
  }
  if (hp.embd_scale != 1.0f)
    for (int64_t j = 0; j < int64_t{n_} * E; ++j) x_[j] *= hp.embd_scale;
}

Status Forward::RunLayers(const StepPlan& plan) {
  const ModelShard& shard = model_.shard();
  kv_.Prefetch(plan, shard.first_layer);
  for (int32_t il = shard.first_layer; il < shard.end_layer; ++il) {
    STRATA_RETURN_IF_ERROR((this->*layer_)(plan, il));
    if (cluster_ != nullptr) cluster_->Progress();  // the pipeline's transfers under way, if any
  }
  return Status::Ok();
}

Status Forward::RunPipelined(const StepPlan& plan, int32_t micro_batch) {
  const int64_t E = model_.hparams().n_embd;
  const int32_t rank = cluster_->rank(), ranks = cluster_->size();
  const std::vector<StepPlan> micro = SplitPlan(plan, micro_batch, kv_.layout().block_tokens);
  const int32_t n = plan.n_tokens();
  pipe_out_.resize(static_cast<size_t>(n * E));
  int64_t row = 0;
  if (rank == 0) {
    // Every micro-batch's way back is open before the first leaves, so the
    // last rank never waits for rank 0 to be done computing.
    pipe_in_.resize(static_cast<size_t>(n * E));
    for (const StepPlan& m : micro) {
      STRATA_RETURN_IF_ERROR(cluster_->RecvAsync(ranks - 1, &pipe_in_[row * E], m.n_tokens() * E, kPipelineTag));
      row += m.n_tokens();
    }
    row = 0;
  }
  for (const StepPlan& m : micro) {
    const int32_t k = m.n_tokens();
    STRATA_RETURN_IF_ERROR(Begin(m));
    if (rank == 0) {
      Embed(m);
    } else {
      STRATA_RETURN_IF_ERROR(cluster_->Recv(rank - 1, x_.data(), k * E, kPipelineTag));
    }
    STRATA_RETURN_IF_ERROR(RunLayers(m));
    std::copy(x_.begin(), x_.begin() + k * E, pipe_out_.begin() + row * E);
    STRATA_RETURN_IF_ERROR(cluster_->SendAsync((rank + 1) % ranks, &pipe_out_[row * E], k * E, kPipelineTag));
    row += k;
  }
  STRATA_RETURN_IF_ERROR(cluster_->WaitAll());
  if (rank != 0) return Status::Ok();
  // The whole step's final hidden states, rows in plan order, for the logits.
  Resize(n);
  n_ = n;
  STRATA_RETURN_IF_ERROR(GroupByAdapter(plan));
  std::copy(pipe_in_.begin(), pipe_in_.begin() + n * E, x_.begin());
  return Status::Ok();
}

Status Forward::Run(const StepPlan& plan, std::vector<float>* logits) {
  const HParams& hp = model_.hparams();
  const ModelWeights& w = model_.weights();
  const int64_t E = hp.n_embd;
  const int32_t n = plan.n_tokens();
  if (n == 0) return Status::InvalidArgument("empty batch");
  const bool pipeline = cluster_ != nullptr && cluster_->split() == Split::kLayer;
  const int32_t micro_batch = pipeline ? cluster_->micro_batch_tokens() : 0;
  if (micro_batch > 0 && n > micro_batch) {
    STRATA_RETURN_IF_ERROR(RunPipelined(plan, micro_batch));
  } else {
    STRATA_RETURN_IF_ERROR(Begin(plan));
    const int32_t rank = pipeline ? cluster_->rank() : 0, ranks = pipeline ? cluster_->size() : 1;
    if (rank == 0) {
      Embed(plan);
    } else {
      STRATA_RETURN_IF_ERROR(cluster_->Recv(rank - 1, x_.data(), int64_t{n} * E, kPipelineTag));
    }
    STRATA_RETURN_IF_ERROR(RunLayers(plan));
    if (ranks > 1) {
      // The hidden state goes on to the next rank; the last one's back to rank 0.
      STRATA_RETURN_IF_ERROR(cluster_->Send((rank + 1) % ranks, x_.data(), int64_t{n} * E, kPipelineTag));
      if (rank == 0) STRATA_RETURN_IF_ERROR(cluster_->Recv(ranks - 1, x_.data(), int64_t{n} * E, kPipelineTag));
    }
  }
  if (!model_.shard().holds_output()) {
    logits->clear();
    return Status::Ok();
  }

  // Only rows whose logits are wanted go through the output matrix.
  int32_t rows = 0, t = 0;
  for (const PlanEntry& e : plan.entries) {
    const int32_t len = static_cast<int32_t>(e.tokens.size());
    for (int32_t k = 0; k < len; ++k, ++t)
      if (e.logits == PlanLogits::kAll || (e.logits == PlanLogits::kLast && k == len - 1))
        kernels::RmsNorm(&x_[t * E], static_cast<const float*>(w.output_norm.data), &xb_[rows++ * E], E, hp.rms_eps);
  }
  logits->resize(static_cast<size_t>(rows) * hp.n_vocab);
  if (rows > 0) {
    const LinearOut out[] = {{&w.output, logits->data()}};
    ApplyLinear(out, xb_.data(), rows, pool_, &lora_logits_);
    if (hp.final_softcap > 0.0f) kernels::SoftCap(logits->data(), static_cast<int64_t>(rows) * hp.n_vocab, hp.final_softcap);
  }
  return Status::Ok();
}

}  // namespace strata
