// Serving benchmarks over the continuous-batching Engine: aggregate
// generation throughput with S concurrent requests, and time to first token
// for a prompt whose long prefix is already cached versus not.
//
// Thread-safety: run one at a time (they use every core).
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "model/lora_adapter.h"
#include "model/model.h"

namespace strata::bench {

struct ThroughputResult {
  double tokens_per_s = 0;  // generated tokens per second over the generation phase
  double seconds = 0;       // length of that phase
};

// S greedy requests with prompt_tokens random prompt tokens each, n_gen tokens
// each. The generation phase runs from the moment every request has its first
// token until the last finishes (prefill excluded, as in the llama.cpp peer's
// batched test). With LoRA adapter sets (model/lora_adapter.h) the engine
// holds them and request i runs with set 1 + i % active (active 0: every
// request runs the base model), so `active` sets share each step.
// REQUIRES: active <= adapters.size(); the adapters are bound to model.
[[nodiscard]] Status AggregateThroughput(const Model& model, int32_t seqs, int32_t prompt_tokens, int32_t n_gen,
                                         int32_t threads, uint64_t seed, ThroughputResult* out,
                                         const std::vector<LoraSet>& adapters = {}, int32_t active = 0);

// Time to first token of a request with an n_prefix-token prompt (cold), then
// of one sharing that prefix with a different 16-token tail (warm: the prefix
// comes from the prefix cache).
[[nodiscard]] Status PrefixTtft(const Model& model, int32_t n_prefix, int32_t threads, double* cold_s, double* warm_s);

}  // namespace strata::bench
