// BatchDrafter: the serving engine's drafts for speculative decoding, for
// every request that speculates in a step at once — by prompt lookup
// (engine/ngram_drafter.h), or by a draft model (a smaller model with the
// same vocabulary) whose passes take all of them together, one pass per
// drafted position, over a paged KV cache of its own (the draft model's
// Runner). A request's draft sequence keeps what it shares with the
// request's tokens from one step to the next (its rejected drafts are
// truncated away; no copy) and runs the rest first.
//
// The draft model draws each token from its filtered distribution q with the
// request's sampler settings but without the penalties, through a
// sampler of its own per request seeded from the request's seed (q only
// sets how often drafts are accepted: the verifier keeps the model's
// distribution whatever q is; engine/spec_verifier.h).
//
// Thread-safety: one thread at a time (the engine's step thread).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "engine/ngram_drafter.h"
#include "engine/pass_times.h"
#include "engine/runner.h"
#include "engine/sampler.h"
#include "engine/spec_verifier.h"
#include "model/model.h"

namespace strata {

struct DraftRequest {
  uint64_t key;                     // the request: its draft sequence lives under this key
  std::span<const int32_t> tokens;  // prompt + generated; the last one not yet run through the model
  int32_t k = 0;                    // tokens wanted (>= 1)
  const SamplerParams* sampling = nullptr;  // the request's settings
};

class BatchDrafter {
 public:
  // Prompt lookup.
  static std::unique_ptr<BatchDrafter> Ngram(const Model& target, const NgramParams& ngram);
  // A draft model: its vocabulary must be target's (kInvalidArgument naming
  // the first difference); runner_params as the engine's (threads, context);
  // its KV holds 2 * parallel sequences of the full context, in RAM, with a
  // prefix cache. Passes take at most max_batch_tokens tokens.
  [[nodiscard]] static Status WithModel(const Model& target, const Model& draft, RunnerParams runner_params,
                                        int32_t parallel, int32_t max_batch_tokens, std::unique_ptr<BatchDrafter>* out);
  ~BatchDrafter();

  bool uses_model() const { return runner_ != nullptr; }

  // (*drafts)[i]: up to requests[i].k tokens for requests[i]; fewer or none
  // where nothing could be drafted (no earlier occurrence; a draft sequence
  // still catching up on a long prompt; a draft model pass that failed).
  void Propose(std::span<const DraftRequest> requests, std::vector<Draft>* drafts);
  // Releases the request's draft sequence (finished or preempted).
  void Forget(uint64_t key);
  // The draft model's passes by token count (measured; the first pass of a
  // step also catches up, a long one after a prompt or a pause); empty for
  // prompt lookup.
  const PassTimes& pass_times() const { return pass_times_; }

 private:
  struct DraftSeq {
    SeqId seq;
    Sampler sampler;
  };
  BatchDrafter(const Model& target, NgramParams ngram, std::unique_ptr<Runner> runner, int32_t max_batch_tokens);
  void ProposeNgram(std::span<const DraftRequest> requests, std::vector<Draft>* drafts) const;
  void ProposeWithModel(std::span<const DraftRequest> requests, std::vector<Draft>* drafts);
  DraftSeq& SeqFor(const DraftRequest& r);

  const Model& target_;
  NgramParams ngram_;
  std::unique_ptr<Runner> runner_;  // the draft model's; null: prompt lookup
  int32_t max_batch_tokens_;
  std::unordered_map<uint64_t, DraftSeq> seqs_;
  std::vector<float> logits_;
  PassTimes pass_times_;
};

}  // namespace strata
