// Speculative decoding benchmark for one stream (`strata bench-spec`):
// generation speed and acceptance of plain decoding against speculative
// decoding at fixed draft lengths and with the adaptive length, run in
// alternation repetition by repetition (the machine's memory bandwidth
// swings within seconds; each repetition compares like with like), plus the
// pass times the speedup comes from: the model's pass over T = 1..k+1
// tokens and the draft model's one-token pass.
//
// Thread-safety: run one at a time (it uses every thread it is given).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "engine/engine.h"
#include "engine/sampler.h"
#include "model/model.h"

namespace strata::bench {

struct SpecBenchConfig {
  const Model* target = nullptr;
  const Model* draft = nullptr;  // null: prompt lookup
  std::vector<int32_t> prompt;
  int32_t n_gen = 128;
  int32_t threads = 2;
  int32_t reps = 3;
  std::vector<int32_t> lengths = {2, 4, 8};  // fixed draft lengths; the adaptive run uses the largest as its maximum
  SamplerParams sampling;                    // default: greedy
};

struct SpecBenchRun {
  std::string name;                 // "plain", "k=4", "adaptive (1-8)"
  std::vector<double> tokens_per_s;  // per repetition
  std::vector<double> acceptance;    // accepted / drafted, per repetition (speculative runs)
  std::vector<double> tokens_per_pass;  // generated tokens / passes over the model, per repetition
  std::vector<double> ratio;         // tokens_per_s over the plain run of the same repetition
};

struct SpecBenchResult {
  std::vector<SpecBenchRun> runs;      // plain first
  std::vector<double> target_pass_ms;  // [T - 1]: median ms of the model's pass over T tokens, T = 1..max length + 1
  double draft_pass_ms = 0;            // median ms of the draft model's one-token pass (0: prompt lookup)
  std::vector<std::string> texts_differ;  // greedy runs whose text differed from the plain run's (must stay empty)
};

[[nodiscard]] Status RunSpecBench(const SpecBenchConfig& config, SpecBenchResult* out);

// Serving: aggregate generation throughput of the engine with S concurrent
// requests, without and with speculation (the engine's adaptive draft
// lengths and batch limit), the two runs alternating in order repetition by
// repetition. Request i's prompt is the prompt followed by " i" (distinct
// continuations; the shared part comes from the prefix cache). Throughput
// counts the tokens generated from the moment every request has its first
// token until the last finishes (prefill excluded, as AggregateThroughput).
struct ServingSpecConfig {
  const Model* target = nullptr;
  const Model* draft = nullptr;  // null: prompt lookup
  std::string prompt;
  int32_t n_gen = 128;
  int32_t threads = 2;
  int32_t reps = 3;
  std::vector<int32_t> concurrency = {1, 4, 16};
  EngineSpecParams spec;  // method and draft_model are set from draft
  SamplerParams sampling;
};

struct ServingSpecRow {
  int32_t concurrent = 0;
  std::vector<double> plain_tokens_per_s, spec_tokens_per_s, ratio;  // per repetition
  std::vector<double> acceptance;      // accepted / drafted per repetition (0 if nothing was drafted)
  std::vector<double> drafted_per_token;  // drafted tokens per generated token, per repetition
};

[[nodiscard]] Status RunServingSpecBench(const ServingSpecConfig& config, std::vector<ServingSpecRow>* out);

}  // namespace strata::bench
