// Speculator: speculative decoding for one sequence (a Context) — what
// `strata run --draft-model / --spec ngram` and the C API use; the serving
// engine speculates inside its batches instead (engine/engine.h).
//
// Each round drafts k tokens after the last generated one — with a draft
// model (a second, smaller model with the same vocabulary, in a context of
// its own) or by prompt lookup (engine/ngram_drafter.h) — runs the last
// token and the k drafts through the model as one multi-token pass (logits
// of every position), keeps what the verifier accepts
// (engine/spec_verifier.h: greedy output is exactly the non-speculative
// output; sampled output has exactly its distribution) and truncates the
// rest from the KV cache. A round yields 1..k+1 tokens for one pass over the
// model's weights instead of one.
//
// k adapts per round (engine/draft_length.h) to the measured acceptance and
// to the measured cost: the time of the model's passes by token count and of
// the draft model's passes, relative to a one-token pass (timed by
// a round that drafts nothing after the first 4 rounds, and every 64 after).
//
// The draft model samples from its own filtered distribution q with the
// sampler's settings (temperature, top-k, top-p, min-p, logit biases; no
// penalties, which need the history: any q keeps the output's distribution,
// a closer one is accepted more often) and its own RNG seeded from the
// sampler's seed.
//
// Thread-safety: one thread at a time, like its contexts.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "core/status.h"
#include "engine/context.h"
#include "engine/draft_length.h"
#include "engine/ngram_drafter.h"
#include "engine/pass_times.h"
#include "engine/sampler.h"
#include "engine/spec_verifier.h"

namespace strata {

struct SpecParams {
  int32_t draft_min = 1;  // the range the draft length adapts in (engine/draft_length.h)
  int32_t draft_max = 8;
  NgramParams ngram;      // prompt lookup (without a draft model)
  // false: every round drafts draft_max tokens (benchmarks of fixed lengths).
  bool adapt = true;
};

// kInvalidArgument naming the field unless 1 <= draft_min <= draft_max <= 64
// and 1 <= ngram_min <= ngram_max <= 64.
[[nodiscard]] Status CheckSpecParams(const SpecParams& params);

struct SpecStats {
  uint64_t rounds = 0;    // multi-token verification passes
  uint64_t drafted = 0;   // tokens drafted in them
  uint64_t accepted = 0;  // drafted tokens kept
};

class Speculator {
 public:
  // target: the context generating. draft: the draft model's context, or
  // null for prompt lookup. kInvalidArgument if the draft model's
  // vocabulary differs from the model's (naming the first difference), its
  // context is shorter, or params are out of range. REQUIRES: the contexts
  // outlive the speculator and are used through it only, from now on.
  [[nodiscard]] static Status Create(Context* target, Context* draft, const SpecParams& params,
                                     std::unique_ptr<Speculator>* out);

  // Generates between 1 and max_tokens tokens into *out (replacing its
  // contents). REQUIRES: before the first call the target's last Decode was
  // LogitsMode::kLast (its logits predict the first token), and sampler is
  // the same every call. Each token is Accept()ed into sampler except a
  // final end-of-generation token, or -1 where the sampler's grammar allows
  // no token (as Sampler::Sample): both end the generation. On error
  // nothing was generated and the target context is as before.
  [[nodiscard]] Status Next(Sampler* sampler, int32_t max_tokens, std::vector<int32_t>* out);
  // Runs the last generated token through the model (a generated token is
  // sampled before it is computed), so that the target context holds the
  // whole sequence and its last logits predict the next token, as after a
  // plain Decode. Needed only to keep the context (sessions). Nothing to do
  // after an end-of-generation token or -1.
  [[nodiscard]] Status Flush();

  const SpecStats& stats() const { return stats_; }

 private:
  Speculator(Context* target, Context* draft, const SpecParams& params);
  // Drafts up to k tokens to follow the sequence and `last` (into *draft).
  Status MakeDraft(int32_t last, int32_t k, const Sampler& sampler, Draft* draft);
  Status DraftWithModel(int32_t last, int32_t k, const Sampler& sampler, Draft* draft);
  // Seconds of a round drafting k tokens: the model's pass over k + 1 and k draft model passes.
  double RoundSeconds(int32_t k) const;
  bool IsEog(int32_t token) const;

  Context* target_;
  Context* draft_;  // null: prompt lookup
  SpecParams params_;
  DraftLength length_;
  SpecVerifier verifier_;
  std::unique_ptr<Sampler> draft_sampler_;  // draft model: made at the first round from the sampler's settings
  std::optional<int32_t> pending_;          // generated, not yet run through the model
  PassTimes pass_times_;                    // the model's passes
  PassTimes draft_times_;                   // the draft model's passes (catching up on a prompt is a long one)
  int32_t rounds_since_plain_ = 0;          // speculative rounds since the last plain one
  SpecStats stats_;
};

}  // namespace strata
