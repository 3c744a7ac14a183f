// Forward: the forward pass over a step plan (kv/step_plan.h) — a batch of
// sequences at once. It reads only the plan and the block store, never the
// KV cache manager. All tokens of all entries go through each weight matrix
// in one multiplication (weights are read once per step for the whole batch;
// every multiplication goes
// through the Linear seam, engine/linear.h). Each layer is built by its
// architecture's layer builder from shared blocks (norm, self-attention,
// gated FFN, residual add), picked once per model. Attention runs over
// each sequence's own KV blocks, wherever they live: the forward pass reads
// and writes KV only through the KV tiers it is given (engine/kv_tiers.h),
// which merge the blocks' partial results exactly (log-sum-exp), on an
// AttentionGrid (query tiles x KV heads x block ranges;
// engine/attention_pass.h). RoPE is applied to K as it is written into its KV
// slice.
//
// Each entry runs with the adapter set its plan entry names (0: none; k: the
// k-th of SetAdapters'): the Linear seam adds the sets' low-rank products
// over their entries' rows only (engine/linear.h).
//
// Under MPI (dist/cluster.h) the forward pass runs the model's shard
// (model/model_shard.h) on every rank: --split tensor sums the partial
// outputs of wo and ffn_down over the ranks (an all-reduce each, F32);
// --split layer computes the rank's layers between receiving the hidden state
// from the rank before and sending it to the next (the last rank's goes back
// to rank 0), and a step of more tokens than the cluster's micro-batch size
// goes through as micro-batches (kv/step_plan.h SplitPlan), so that rank r
// computes micro-batch m while rank r + 1 computes m - 1 (a long prompt keeps
// every stage busy; a decode step of few tokens stays whole, as splitting it
// would only read the weights again per micro-batch); --split none --kv-nodes runs the whole model on rank 0, whose
// KV tiers include the other ranks' RAM. Only rank 0 computes logits.
//
// Thread-safety: one Run at a time; the model is shared read-only.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/status.h"
#include "dist/cluster.h"
#include "engine/attention_pass.h"
#include "engine/kv_tiers.h"
#include "engine/linear.h"
#include "engine/rope.h"
#include "kernels/thread_pool.h"
#include "kv/step_plan.h"
#include "model/model.h"

namespace strata {

class Forward {
 public:
  // REQUIRES: model, kv, pool and cluster outlive this object; grid as AttentionPass::Run.
  // kv: where the KV blocks the plans name live (their layout is the model's).
  // n_ctx_seq: the positions a sequence may reach (LongRoPE picks its factors by it).
  // cluster: the MPI job whose rank runs model's shard; null: the whole model here.
  Forward(const Model& model, KvTiers& kv, ThreadPool& pool, int32_t n_ctx_seq, AttentionGrid grid = {},
          Cluster* cluster = nullptr);

  // The attention grid (e.g. the tuned one; attention_tuner.h). Results do not
  // depend on it beyond float rounding.
  const AttentionGrid& grid() const { return grid_; }

  // The adapter sets plan entries name (entry.adapter = k runs with
  // sets[k - 1]). REQUIRES: every adapter is bound to this model and outlives
  // the Forward (or the next SetAdapters); not under MPI.
  void SetAdapters(std::vector<LoraSet> sets) { adapters_ = std::move(sets); }
  int32_t n_adapters() const { return static_cast<int32_t>(adapters_.size()); }

  // Computes the plan. REQUIRES: it passes ValidatePlan for the KV's block
  // store, its copies are made, and no two entries write one block. Does not Commit:
  // the caller commits on success or rolls back on failure (an I/O error
  // from the disk tier).
  // logits: F32 [n_vocab, plan.n_logit_rows()]: in entry order, every token
  // of kAll entries or the last token of kLast entries (ranks other than 0: none).
  // An MPI failure or timeout is kUnavailable; an entry naming an adapter set
  // beyond n_adapters() kInvalidArgument; a KV slice lost on the disk tier
  // kCorrupt / kIOError.
  [[nodiscard]] Status Run(const StepPlan& plan, std::vector<float>* logits);

 private:
  // One transformer layer on x_ (a per-architecture layer builder).
  using LayerBuilder = Status (Forward::*)(const StepPlan& plan, int32_t il);
  static LayerBuilder BuilderFor(Arch arch);
  // llama, qwen2, qwen3, phi3, gemma: x += Attention(Norm(x)); x += Ffn(Norm(x)).
  [[nodiscard]] Status PreNormLayer(const StepPlan& plan, int32_t il);
  // gemma2, gemma3: x += Norm(Attention(Norm(x))); x += Norm(Ffn(Norm(x))).
  [[nodiscard]] Status SandwichNormLayer(const StepPlan& plan, int32_t il);

  // ---- shared blocks, on the n_ tokens of the current batch ----
  // out = RmsNorm(x) * weight per token; x, out: F32 [n_embd, n_].
  void Norm(const Tensor& weight, const float* x, float* out);
  // Self-attention of layer il on xb_: att_ <- Q/K/V projections (biases
  // included), per-head q/k norms where the layer has them, RoPE, the KV
  // write and attention (scaled, soft-capped and windowed as hp says for
  // the layer); xb_ <- att_ · woᵀ.
  [[nodiscard]] Status SelfAttention(const StepPlan& plan, int32_t il);
  // xb_ <- down(act(gate(xb_)) * up(xb_)), act SiLU or GELU (hp.ffn_act).
  [[nodiscard]] Status GatedFfn(const LayerWeights& l);
  // y F32 [rows, n_] <- x · linear.wᵀ (+ bias), the sum over the ranks under --split tensor.
  [[nodiscard]] Status ApplyRowParallel(const Linear& linear, const float* x, float* y);
  // x_ += xb_.
  void AddResidual();

  void Resize(int32_t n_tokens);
  // Sets up the batch of plan's tokens: buffers, adapter groups, the KV
  // tiers' step, query positions and RoPE angles.
  [[nodiscard]] Status Begin(const StepPlan& plan);
  // x_ <- the embeddings of plan's tokens (rank 0).
  void Embed(const StepPlan& plan);
  // This rank's layers on x_.
  [[nodiscard]] Status RunLayers(const StepPlan& plan);
  // --split layer: plan as micro-batches of at most micro_batch tokens
  // through the ranks; on rank 0, x_ then holds the whole plan's final
  // hidden states (rows in plan order) and n_ its tokens.
  [[nodiscard]] Status RunPipelined(const StepPlan& plan, int32_t micro_batch);
  // lora_ and lora_logits_ from the plan's entries (rows by adapter set).
  [[nodiscard]] Status GroupByAdapter(const StepPlan& plan);
  // Rotates q_ in place with the angles of table (0: full-attention layers,
  // 1: sliding-window layers) and writes each token's rotated K and its V
  // into its block.
  void RopeWriteKv(const KvTiers::Slices& slices, int table);

  const Model& model_;
  Cluster* cluster_;
  KvTiers& kv_;
  ThreadPool& pool_;
  AttentionGrid grid_;
  KvTiers::Slices slices_;  // the open layer's (KvTiers::Open)
  std::vector<AttentionQuery> refs_;  // [n_tokens] of the current batch: (entry index, absolute position)
  LayerBuilder layer_;
  // RoPE of the full-attention layers, then of the sliding-window layers
  // (when the model has any and they rotate differently).
  std::vector<RopeSpec> ropes_;
  std::vector<LoraSet> adapters_;
  LoraBatch lora_;         // the batch's rows by adapter set
  LoraBatch lora_logits_;  // the same over the logit rows (the output matrix's batch)
  int32_t n_ = 0;                     // tokens of the current batch
  std::vector<float> rope_cos_[2];    // per RopeSpec: F32 [n_rot / 2, n_tokens], the angles of each token
  std::vector<float> rope_sin_[2];    // F32 [n_rot / 2, n_tokens]
  std::vector<float> x_;        // F32 [n_embd, n_tokens] residual stream
  std::vector<float> xb_;       // F32 [n_embd, n_tokens]
  std::vector<float> q_;        // F32 [n_embd_q, n_tokens]
  std::vector<float> k_;        // F32 [n_embd_kv, n_tokens]
  std::vector<float> v_;        // F32 [n_embd_kv, n_tokens]
  std::vector<float> att_;      // F32 [n_embd_q, n_tokens]
  std::vector<float> gate_;     // F32 [n_ff, n_tokens]
  std::vector<float> up_;       // F32 [n_ff, n_tokens]
  std::vector<float> pipe_out_;  // F32 [n_embd, n_tokens] RunPipelined: the micro-batches' hidden states sent on
  std::vector<float> pipe_in_;   // F32 [n_embd, n_tokens] rank 0: the last rank's, received
};

}  // namespace strata
