// The results of `strata bench`: one JSON row per (engine, test), and the
// markdown report drawn from those rows.
//
// JSON row schema (scripts and bench/chart.py read it; add keys, never rename):
//   engine            "strata" | "llamacpp"
//   test              TestSpec::name(): "pp512", "tg128", "bs4x128"
//   tps_median, tps_min, tps_max, tps_mean   tokens/s over the measured repetitions
//   tps               every repetition's tokens/s
//   threads, model, model_type
//   bytes_per_token   WeightBytesPerToken (roofline.h)
//   peak_rss_mib      peak resident set of the engine's process, MiB (when measured)
//   load_s            model load wall time, s (when measured; median over processes)
//   tg rows with a paired roofline run (roofline.h):
//     roofline_fraction             median over the run's tokens of token GB/s / probe GB/s
//     bandwidth_bytes_per_s         median of the run's probe reads
//     bandwidth_min_bytes_per_s, bandwidth_max_bytes_per_s
//     roofline_pairs                tokens in the run
//     roofline_token_s, roofline_read_bytes_per_s   each token's time and the read before it
//   strata rows: kernel_path; ratio_vs_llamacpp when the peer ran the same test;
//     roofline_ratio_vs_llamacpp when both ran the paired run: strata's roofline_fraction / the
//     peer's, i.e. the tokens/s ratio at equal read bandwidth (same bytes per token)
//   llamacpp rows: peer, the harness's own JSON object (versions, backend, ...)
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/bench.h"
#include "bench/roofline.h"

namespace strata::bench {

// One engine's repetitions of one test.
struct EngineResult {
  std::string engine;              // "strata" | "llamacpp"
  TestSpec test;
  std::vector<double> tps;         // tokens/s, one per measured repetition; REQUIRES: non-empty
  uint64_t peak_rss_bytes = 0;     // 0: not measured
  std::vector<double> load_seconds;  // model loads behind these numbers; empty: not measured
  nlohmann::json peer_info;        // llamacpp: the harness's JSON object; null otherwise
  std::vector<PairedSample> paired;  // tg: the paired roofline run; empty: not measured
};

// What every row shares.
struct RunInfo {
  std::string model_name;
  std::string model_type;          // "q8_0", "f16", ...
  std::string kernel_path;         // strata's kernel path
  int threads = 0;
  int reps = 0;
  uint64_t bytes_per_token = 0;
  int probe_threads = 0;           // the paired runs' probe; 0: no roofline measured
  uint64_t probe_bytes = 0;
};

nlohmann::json ResultRows(const RunInfo& run, const std::vector<EngineResult>& results);

// Header (model, probe and what the roofline divides), the table of rows,
// and how peak RSS and load time were measured.
std::string MarkdownReport(const RunInfo& run, const nlohmann::json& rows);

}  // namespace strata::bench
