// Context: one sequence over a paged KV cache — what `strata run` and the C
// API use. The one-sequence client of a Runner (engine/runner.h: thread
// pool, KV cache manager with RAM and optionally a disk tier, forward pass);
// the model is shared and read-only.
//
// A prompt is processed in batches of up to n_batch tokens (one matrix
// multiplication per weight per batch, not per token). Decode is
// all-or-nothing: on error the sequence is as it was before the call.
// Disk tier faults do not fail it: KV blocks lost on disk are recomputed, and
// a full or failing disk makes the cache serve this context from RAM (even
// beyond the RAM budget) until the disk takes writes again.
//
// Thread-safety: one thread at a time per Context. Several Contexts may share
// one Model concurrently.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/env.h"
#include "core/status.h"
#include "engine/runner.h"
#include "engine/sampler.h"
#include "kv/kv_cache_manager.h"
#include "kv/session_file.h"
#include "model/model.h"

namespace strata {

// The RunnerParams fields (engine/runner.h) and n_batch.
struct ContextParams {
  int32_t n_ctx = 0;      // 0: the model's training context
  int32_t n_batch = 512;  // max tokens per forward pass
  int32_t n_threads = 0;  // 0: all cores
  // KV cache. kv_type nullopt: DefaultKvType(model).
  std::optional<DType> kv_type;
  int32_t kv_block_tokens = 32;  // measured: docs/BENCHMARKS.md (block size)
  KvTierConfig kv_tiers;  // RAM budget and disk tier; default: all in RAM
  Env* env = nullptr;     // for the disk tier and the tune cache; null: Env::Default()
  // Attention grid (engine/attention_pass.h): attention_grid if set; else tuned
  // on this machine at creation and cached in tune_cache_path
  // (engine/attention_tuner.h) if that is non-empty; else the defaults.
  std::optional<AttentionGrid> attention_grid;
  std::string tune_cache_path;
  std::function<void(const std::string&)> log;  // warnings (KV disk tier faults), one line each; null: stderr
};

enum class LogitsMode { kLast, kAll };

class Context {
 public:
  // REQUIRES: model outlives the context.
  [[nodiscard]] static Status Create(const Model& model, const ContextParams& params, std::unique_ptr<Context>* out);
  ~Context();

  const Model& model() const { return model_; }
  int32_t n_ctx() const { return runner_->n_ctx(); }
  int32_t n_past() const { return kv_->length(seq_); }
  int32_t n_threads() const { return runner_->pool().n_threads(); }
  // Under --kv-nodes: where the KV blocks live (engine/kv_nodes.h); else null.
  const KvNodes* kv_nodes() const { return runner_->kv_nodes(); }
  const std::vector<int32_t>& tokens() const { return kv_->tokens(seq_); }
  const AttentionGrid& attention_grid() const { return runner_->attention_grid(); }

  // Appends tokens at positions n_past.. and runs the forward pass. On error
  // (token out of range, context full) the sequence is unchanged — unless a
  // KV block lost on the disk tier could not be recomputed, which leaves it
  // shortened to before that block.
  // kLast: logits of the last token only; kAll: of every token of this call.
  [[nodiscard]] Status Decode(std::span<const int32_t> tokens, LogitsMode mode);

  // F32 [n_vocab] logits of the i-th token of the last Decode (with kLast, i = 0 is the last token).
  const float* logits(int32_t i = 0) const { return &logits_[static_cast<size_t>(i) * model_.hparams().n_vocab]; }

  // Runs the sequence with these adapters (summed, each with its scale; empty:
  // none), as llama.cpp applies a context's adapter set. kInvalidArgument once
  // the sequence has tokens (its KV was computed without them) or for an
  // adapter of another model.
  // REQUIRES: the adapters outlive the context (or the next call).
  [[nodiscard]] Status SetAdapters(LoraSet set);

  // Forgets positions >= n. REQUIRES: 0 <= n <= n_past().
  void Truncate(int32_t n) { kv_->Truncate(seq_, n); }

  // The KV cache and this context's sequence in it (sessions save and restore through these).
  KvCacheManager& kv() { return *kv_; }
  SeqId seq() const { return seq_; }
  // Saves the sequence (tokens, KV) and the sampler's state to path,
  // atomically, with the server's record of the conversation the session was
  // loaded with (kv/session_file.h: meta), if any. Session files do not
  // record adapters: with adapters set, both calls are kUnsupported. Under
  // MPI the file holds every rank's part of the KV (Runner::GatherKv): it
  // continues under any number of ranks and split.
  [[nodiscard]] Status SaveSession(Env* env, const std::string& path, const Sampler& sampler);
  // Replaces the sequence with the one saved at path and restores the
  // sampler's RNG and history; tokens the file holds without KV are computed.
  // On error nothing changes; a session longer
  // than the context is kInvalidArgument naming both sizes. drop_cache: read
  // the file cold (benchmarks).
  [[nodiscard]] Status LoadSession(Env* env, const std::string& path, Sampler* sampler, bool drop_cache = false);

 private:
  Context(const Model& model, int32_t n_batch, std::unique_ptr<Runner> runner);
  // Decode's forward passes, n_batch tokens at a time; on error the sequence is as it was.
  Status DecodeChunks(std::span<const int32_t> tokens, LogitsMode mode);
  // Under MPI: how session files reach every rank's part of the KV
  // (Runner::GatherKv, ScatterKv); nullopt outside MPI.
  std::optional<KvRelay> Relay() const;

  const Model& model_;
  int32_t n_batch_;
  std::unique_ptr<Runner> runner_;
  KvCacheManager* kv_;  // the runner's
  SeqId seq_;
  std::vector<float> logits_;  // F32 [n_vocab, n_rows] of the last Decode
  std::string session_meta_;   // of the session loaded last, saved with it
  std::vector<float> chunk_logits_;
};

}  // namespace strata
