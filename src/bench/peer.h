// The llama.cpp peer: runs bench/.peer/llamacpp_harness (built by
// bench/install_llamacpp.sh against llama.cpp's prebuilt CPU libraries) for
// one test and reads its JSON result.
//
// Thread-safety: RunPeer spawns and waits for a child process; call from one thread.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/bench.h"
#include "bench/roofline.h"
#include "core/status.h"

namespace strata::bench {

struct PeerResult {
  std::vector<double> tokens_per_s;  // one per measured repetition
  uint64_t peak_rss_bytes = 0;       // the harness process's peak RSS (getrusage)
  double load_seconds = 0;           // its llama_model_load_from_file wall time
  nlohmann::json info;               // the harness's full JSON object (versions, backend, ...)
};

// Runs `harness -m model` for test with reps measured repetitions, in a
// process of its own (so its peak RSS is this test's alone).
[[nodiscard]] Status RunPeer(const std::string& harness, const std::string& model, const TestSpec& test, int threads,
                             int reps, PeerResult* out);

// The paired roofline run (roofline.h) of tg test in the harness, with a
// probe_bytes buffer read by the same loop as strata's (stream_sum.h); appends
// one sample per token to *out. REQUIRES: test is a tg test; probe_bytes a
// multiple of threads x 2 MiB (PairedProbeBytes).
[[nodiscard]] Status RunPeerPaired(const std::string& harness, const std::string& model, const TestSpec& test,
                                   int threads, uint64_t probe_bytes, std::vector<PairedSample>* out);

}  // namespace strata::bench
