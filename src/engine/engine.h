// Engine: serves many generation requests at once on one model with
// continuous batching. Requests are queued and admitted while KV blocks
// allow; every step is ONE forward pass over all running sequences — a
// decode token for each generating request plus chunks of prompts still being
// prefilled (chunked prefill) — so the weights are read once per step for the
// whole batch. All sequences share one paged KV cache with a prefix cache:
// a prompt that starts like an earlier one reuses its blocks. When KV blocks
// run out, the youngest request is preempted (its blocks released to the
// prefix cache, so resuming mostly re-attaches them) and resumed later.
// Results stream back through a per-request sink as token ids (TokenEvent):
// the step speaks only tokens. Turning them into text — detokenization, stop
// strings — is the request's OutputProcessor's (engine/output_processor.h),
// which runs in the sink and may end the request (SinkReply::kStop).
//
// A request's context is the smaller of n_ctx and what the KV pool holds.
// Disk tier faults do not fail requests: KV blocks lost on disk are
// recomputed, and a full or failing disk makes the cache serve from RAM only
// until it recovers (kv_cache_manager.h). Errors: a full queue is
// kResourceExhausted (the only use of that code); a request that can never
// fit kOutOfRange; one that RAM alone cannot hold while the disk tier is
// failing kUnavailable.
//
// Sessions (server/session_store.h) keep a request's sequence beyond it: a
// request may start from a sequence an earlier one left (`resume`: only the
// rest of its prompt is computed) and leave its own (`retain`: the final
// event hands it over). Between requests the owner parks such sequences in
// the KV cache (kv_cache_manager.h), through RunOnStepThread.
//
// Thread-safety: Submit, Cancel, Stats, RunOnStepThread and kv_store may be
// called from any thread. Sinks are called on the step thread and must not
// block for long.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "engine/adapter_sets.h"
#include "engine/batch_drafter.h"
#include "engine/draft_length.h"
#include "engine/ngram_drafter.h"
#include "engine/pass_times.h"
#include "engine/runner.h"
#include "engine/sampler.h"
#include "engine/spec_verifier.h"
#include "grammar/grammar.h"
#include "grammar/token_trie.h"
#include "kv/kv_cache_manager.h"
#include "model/model.h"

namespace strata {

enum class FinishReason { kNone, kStop, kLength, kCancelled, kError };
const char* FinishReasonName(FinishReason r);  // "stop", "length", "cancelled", "error", ""

struct GenerationRequest {
  std::vector<int32_t> prompt;    // token ids, BOS included if wanted
  int32_t max_tokens = 16;        // completion tokens at most
  SamplerParams sampling;         // logit_bias ids must be in the vocabulary
  // Generation ends (kStop) at an end-of-generation token or at one of these;
  // that token is neither part of the output nor counted.
  std::vector<int32_t> stop_token_ids;
  // End-of-generation tokens are never drawn (llama.cpp's ignore_eos): the
  // completion ends at max_tokens, a stop token id or a stop string.
  bool ignore_eos = false;
  // Until this many tokens are generated, neither end-of-generation tokens
  // nor stop_token_ids are drawn (stop strings: OutputParams::min_tokens).
  int32_t min_tokens = 0;
  int32_t top_logprobs = -1;      // -1: none; 0..20: the chosen token's logprob plus that many alternatives
  // Also score the prompt: the logprob (and top_logprobs alternatives, if >= 0)
  // of every prompt token after the first, under the tokens before it. The
  // whole prompt is computed (no prefix-cache reuse). With max_tokens 0 this
  // is all the request does.
  bool prompt_logprobs = false;
  // Structured output: the completion follows this grammar (engine/sampler.h);
  // it ends when the grammar is complete and the model chooses to stop.
  // Null: unconstrained. Its token ids must be in the vocabulary.
  std::shared_ptr<const grammar::Grammar> grammar;
  // When the engine speculates (EngineSpecParams): false keeps this request
  // to plain decoding. The output is the same either way (greedy: the same
  // tokens; sampled: the same distribution).
  bool speculate = true;
  // The LoRA adapters the request runs with, each at its scale (their
  // products summed); empty: the base model. Requests with different sets
  // share a batch. REQUIRES: bound to the engine's model (LoraAdapter::Load),
  // outliving the request.
  LoraSet lora;
  // Sessions. resume: a sequence of the engine's KV cache (an earlier
  // request's `retained`, unparked) whose tokens are a prefix of prompt,
  // shorter than it; its KV is used as it is and only the rest of prompt is
  // computed (if it no longer fits the prompt, it is freed and the prompt
  // computed as usual). Submit takes it over when it succeeds: it is freed
  // if the request ends without retaining it.
  std::optional<SeqId> resume;
  // The sampler's RNG and penalty counts start as in this state (its RNG
  // instead of sampling.seed); the repetition history is the prompt's tail.
  std::optional<SamplerState> sampler_state;
  // Keep the sequence when the request succeeds: its final event carries it.
  bool retain = false;
};

// A retain request's sequence, handed to the sink with the final event of a
// request that succeeded (stop or length). The receiver owns seq: it must
// free or park it (RunOnStepThread). blocks can be read through kv_store()
// while it is held and not appended to.
struct RetainedSequence {
  SeqId seq = 0;
  std::vector<int32_t> tokens;        // prompt + generated (EOG excluded)
  int32_t n_kv = 0;                   // tokens[0, n_kv) have KV in seq (the last sampled one does not)
  std::vector<BlockId> blocks;        // seq's block table: ceil(n_kv / block_tokens) blocks
  SamplerState sampler;               // after the last draw
};

struct TokenLogprob {
  int32_t id = 0;
  std::string text;   // the token's bytes (may be partial UTF-8); the engine leaves it empty, the OutputProcessor fills it
  float logprob = 0;  // natural log of its probability under the model (before sampling filters)
  std::vector<std::pair<int32_t, float>> top;  // [top_logprobs] most likely alternatives (id, logprob)
};

// What the engine has for one request after a step: token ids only.
struct TokenEvent {
  std::vector<int32_t> tokens;          // generated since the previous event, in order (EOG never included)
  std::vector<TokenLogprob> logprobs;   // one per token of `tokens` (when requested)
  // prompt_logprobs requests, in the first event only: [prompt.size() - 1]
  // logprobs of prompt tokens 1.. in order.
  std::vector<TokenLogprob> prompt_logprobs;
  bool finished = false;                // the last event of the request
  FinishReason reason = FinishReason::kNone;
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;        // generated so far, `tokens` included
  int32_t cached_tokens = 0;            // final event: prompt tokens whose KV was reused (session or prefix cache)
  Status error;                         // set when reason == kError
  std::shared_ptr<RetainedSequence> retained;  // retain requests' successful final event (see above)
};

// The sink's answer to an unfinished event: go on, end the request as
// finished normally (kStop: e.g. a stop string completed; its final event
// follows), or cancel it (e.g. the client disconnected). Ignored for the final event.
enum class SinkReply { kContinue, kStop, kCancel };
using TokenSink = std::function<SinkReply(const TokenEvent&)>;

enum class SpecMethod { kNone, kNgram, kDraftModel };

// Speculative decoding in the batch: per step, each generating request that
// speculates gets up to draft_max drafted tokens (prompt lookup, or a draft
// model running all of them as one batch per position) and runs them with
// its last token as one multi-token entry of the step; the verifier keeps
// what the model would have produced (engine/spec_verifier.h) and the rest
// is rolled back from the KV cache. Each request's draft length adapts to
// its measured acceptance and to the measured pass times (the step's tokens
// per second, everyone's counted). Steps with more than max_batch
// generating requests do not speculate: the weights are read once for many
// tokens already (measured: docs/BENCHMARKS.md).
struct EngineSpecParams {
  SpecMethod method = SpecMethod::kNone;
  const Model* draft_model = nullptr;  // kDraftModel: same vocabulary; must outlive the engine
  int32_t draft_min = 1;
  int32_t draft_max = 8;
  NgramParams ngram;
  int32_t max_batch = 1;
  // false: every speculating request drafts draft_max tokens (within its
  // limits) in every step that speculates (tests, benchmarks of fixed lengths).
  bool adapt = true;
};

// The RunnerParams fields (engine/runner.h) and the scheduler's.
struct EngineParams {
  int32_t n_threads = 0;           // 0: all cores
  int32_t parallel = 4;            // requests running at once
  int32_t max_queue = 64;          // waiting requests beyond which Submit refuses
  int32_t n_ctx = 0;               // per sequence; 0: the model's training context
  int32_t max_batch_tokens = 512;  // tokens per forward pass (decode tokens + prefill chunks)
  std::optional<DType> kv_type;    // nullopt: DefaultKvType(model)
  int32_t kv_block_tokens = 32;  // measured: docs/BENCHMARKS.md (block size)
  KvTierConfig kv_tiers;           // RAM budget and disk tier
  bool prefix_cache = true;
  Env* env = nullptr;              // for the disk tier and the tune cache; null: Env::Default()
  // Attention grid (engine/attention_pass.h): attention_grid if set; else tuned
  // on this machine at creation and cached in tune_cache_path
  // (engine/attention_tuner.h) if that is non-empty; else the defaults.
  std::optional<AttentionGrid> attention_grid;
  std::string tune_cache_path;
  // Warnings (KV disk tier faults), one line each, called on the step thread; null: stderr.
  std::function<void(const std::string&)> log;
  EngineSpecParams spec;
  // LoRA adapter sets kept ready for requests (GenerationRequest::lora): their
  // prefix cache lives as long as the engine. REQUIRES: the adapters outlive it.
  std::vector<LoraSet> adapters;
  // Different adapter sets (the ones above included) queued or running at
  // once; a request with yet another set is refused (kResourceExhausted).
  int32_t max_adapter_sets = 32;
  // Under MPI: an idle step thread pings the other ranks this often (seconds,
  // RunnerParams::keepalive_s), so they can tell an idle server from a hung rank 0.
  double keepalive_s = 30;
};

struct EngineStats {
  uint64_t requests_total = 0;
  uint64_t requests_rejected = 0;  // refused because the queue was full
  uint64_t prompt_tokens_total = 0;
  uint64_t completion_tokens_total = 0;
  int32_t queue_depth = 0;
  int32_t running = 0;
  uint64_t steps = 0;              // forward passes
  uint64_t preemptions = 0;
  uint64_t prompt_tokens_cached = 0;  // prompt tokens served from the prefix cache
  uint64_t spec_verifications = 0;    // speculative entries verified (a request's drafts in one step)
  uint64_t spec_drafted = 0;          // tokens drafted in them
  uint64_t spec_accepted = 0;         // drafted tokens kept
  KvCacheStats kv;                 // blocks in use / cached, slices per tier, prefix hits, disk tier faults
  std::optional<KvNodeStats> kv_nodes;  // under --kv-nodes: where blocks went, how they were read
};

class Engine {
 public:
  // REQUIRES: model outlives the engine.
  [[nodiscard]] static Status Create(const Model& model, const EngineParams& params, std::unique_ptr<Engine>* out);
  ~Engine();  // cancels what is running and joins the step thread

  // Queues a request. kResourceExhausted if the queue is full; kOutOfRange if
  // the prompt leaves no room in the context; kInvalidArgument for an empty
  // prompt or bad values (a grammar, logit bias or stop token id naming a
  // token the vocabulary lacks, a bias that is NaN or +infinity, a LoRA
  // adapter of another model or a scale not finite; kUnsupported for LoRA
  // under MPI; kResourceExhausted also for an adapter set beyond
  // max_adapter_sets). On success *id identifies it for
  // Cancel. The sink gets an event per step that generated a token (and the
  // prompt's logprobs), then a final one.
  [[nodiscard]] Status Submit(GenerationRequest request, TokenSink sink, uint64_t* id);
  // Cancels a queued or running request; its sink gets a final kCancelled event.
  void Cancel(uint64_t id);
  // Runs task on the step thread between steps, with the KV cache (sessions:
  // park, unpark, fork, truncate, free sequences, allocate blocks). It must
  // be quick: no file I/O. Tasks run in order; those queued when the engine
  // stops run before it is gone. REQUIRES: the engine is not being destroyed.
  void RunOnStepThread(std::function<void(KvCacheManager&)> task);
  // The KV blocks' bytes (thread-safe): read or fill the slices of blocks a
  // caller holds (sessions save from and load into them off the step thread).
  BlockStore& kv_store() const { return kv_->store(); }
  EngineStats Stats() const;
  const Model& model() const { return model_; }
  // The adapter sets kept ready (EngineParams::adapters).
  const std::vector<LoraSet>& adapters() const { return params_.adapters; }
  // Positions per request: n_ctx, or fewer if the KV budgets hold fewer.
  int32_t n_ctx() const { return n_ctx_; }
  // The KV cache's layout (immutable).
  const KvLayout& kv_layout() const { return kv_->layout(); }
  // Under MPI the KV is spread over the ranks (Runner::whole_kv_layout):
  // session files hold the whole model's layout, and a session's blocks are
  // copied to or from a whole-layout store through the step thread (the
  // other ranks send or receive their parts). Outside MPI whole_kv_layout()
  // is kv_layout() and kv_store() serves directly.
  bool distributed() const { return runner_->distributed(); }
  KvLayout whole_kv_layout() const { return runner_->whole_kv_layout(); }
  // Runs Runner::GatherKv / ScatterKv on the step thread and waits for it.
  // REQUIRES: not on the step thread; the caller holds the blocks.
  [[nodiscard]] Status GatherKv(std::span<const BlockId> blocks, BlockStore& whole, std::span<const BlockId> into);
  [[nodiscard]] Status ScatterKv(BlockStore& whole, std::span<const BlockId> from, std::span<const BlockId> blocks);

 private:
  struct Slot;
  struct Pending {
    uint64_t id;
    GenerationRequest request;
    TokenSink sink;
    int32_t adapter;  // request.lora's index in adapter_sets_
  };

  Engine(const Model& model, const EngineParams& params, int32_t n_ctx, bool ctx_bound_by_kv,
         std::unique_ptr<Runner> runner, std::unique_ptr<BatchDrafter> drafter);
  void StepLoop();
  // Moves queued requests into slots while KV blocks and --parallel allow.
  void Admit();
  // One forward pass over every running slot; samples, emits, retires.
  void Step();
  // Builds and prepares the batch (decode tokens first, then prefill chunks),
  // preempting the youngest slots until its KV blocks fit. Returns false if nothing runs.
  // (*appends)[i] feeds (*order)[i], prepared as *plan; (*to_end)[i]: it
  // reaches the end of the slot's tokens (sample after it).
  bool Schedule(std::vector<KvCacheManager::Append>* appends, StepPlan* plan, std::vector<Slot*>* order,
                std::vector<bool>* to_end);
  // A slot about to start whose prompt shares whole blocks with a running
  // slot that has not computed them yet waits, then attaches them from the
  // prefix cache: concurrent requests with one prefix (n > 1, a batch, a
  // shared system prompt) compute it once.
  bool WaitsForSibling(const Slot& slot) const;
  void Preempt(Slot* slot);
  // Truncates every sequence holding a KV block lost on the disk tier to
  // before it (the next steps recompute the rest); false if there was none.
  bool TruncateLost();
  void Finish(Slot* slot, TokenEvent& e, FinishReason reason);
  // The tokens slot's sampler must not draw now (ignore_eos, min_tokens).
  std::vector<int32_t> Banned(const Slot& slot) const;
  // KV blocks a request still has to take before it can start (its resume
  // sequence's blocks are its own already).
  int64_t BlocksToStart(const std::vector<int32_t>& tokens, const std::optional<SeqId>& resume) const;
  // The slot's resume sequence exists and its tokens are a prefix of the slot's, shorter.
  bool ResumeFits(const Slot& slot) const;
  // Drops a finished or dropped request's hold on its adapter set.
  void ReleaseAdapter(int32_t adapter);
  // Hands the runner the adapter sets when a new one took an index.
  void UpdateAdapters();
  // Frees a request's resume sequence if it still exists.
  void FreeResume(std::optional<SeqId>& resume);
  void RunTasks();
  void RecordFinish(const Slot& slot);
  // Drafts for this step's speculating requests (Slot::run), unless the step
  // has too many generating requests; each request's length is chosen for
  // the step's tokens per second.
  void ProposeDrafts();
  // Verifies a speculative entry (logits F32 [n_vocab, k + 1]): commits the
  // kept tokens and rolls back the rest, then emits them.
  void VerifyDrafts(Slot* s, const KvCacheManager::Append& entry, const float* logits);
  // A token sampled from logits (-1: the grammar allows none): ends the
  // request (end of generation, grammar) or is Accept()ed and emitted.
  void TakeSampled(Slot* s, int32_t next, const float* logits, TokenEvent& e);
  // Whether token ends the request's generation (end of generation, or one of its stop_token_ids).
  bool EndsGeneration(const Slot& s, int32_t token) const;
  // Emits a generated token (sampled from logits, Accept()ed already) with
  // e; false if that finished the request.
  bool EmitToken(Slot* s, int32_t token, const float* logits, TokenEvent& e);
  // Appends the logprobs of the prompt tokens that logits F32 [n_vocab, n]
  // (the rows after positions start..start+n-1) predict.
  void ScorePrompt(Slot* slot, const float* logits, int32_t start, int32_t n);

  const Model& model_;
  EngineParams params_;
  int32_t n_ctx_;
  bool ctx_bound_by_kv_;  // n_ctx_ is what the KV pool holds, below the requested context
  std::unique_ptr<Runner> runner_;
  KvCacheManager* kv_;  // the runner's; step thread only (stats under mu_)
  std::vector<float> logits_;
  std::vector<int32_t> eog_tokens_;  // the vocabulary's end-of-generation tokens (immutable)
  std::shared_ptr<const grammar::TokenTrie> token_trie_;  // built at the first request with a grammar (step thread)
  std::unique_ptr<BatchDrafter> drafter_;  // speculative decoding's drafts; null: none (step thread)
  SpecVerifier verifier_;
  PassTimes pass_times_;  // of steps that generate only (no prompt chunk), by tokens

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  AdapterSets adapter_sets_;  // held by queue_'s and slots_' requests
  std::vector<uint64_t> cancelled_;
  std::deque<std::function<void(KvCacheManager&)>> tasks_;
  std::vector<std::unique_ptr<Slot>> slots_;  // running or preempted requests, oldest first (step thread only)
  EngineStats stats_;
  uint64_t next_id_ = 1;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace strata
