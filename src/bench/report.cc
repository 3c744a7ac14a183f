#include "bench/report.h"

#include <fmt/format.h>

#include "bench/roofline.h"

namespace strata::bench {
namespace {

constexpr double kMiB = 1024.0 * 1024.0;

const EngineResult* Find(const std::vector<EngineResult>& results, const std::string& engine, const std::string& test) {
  for (const EngineResult& r : results)
    if (r.engine == engine && r.test.name() == test) return &r;
  return nullptr;
}

}  // namespace

nlohmann::json ResultRows(const RunInfo& run, const std::vector<EngineResult>& results) {
  nlohmann::json rows = nlohmann::json::array();
  for (const EngineResult& r : results) {
    const Stats s = Summarize(r.tps);
    nlohmann::json j = {{"engine", r.engine},         {"test", r.test.name()},      {"tps_median", s.median},
                        {"tps_min", s.min},           {"tps_max", s.max},           {"tps_mean", s.mean},
                        {"tps", r.tps},               {"threads", run.threads},     {"model", run.model_name},
                        {"model_type", run.model_type}, {"bytes_per_token", run.bytes_per_token}};
    if (r.peak_rss_bytes > 0) j["peak_rss_mib"] = static_cast<double>(r.peak_rss_bytes) / kMiB;
    if (!r.load_seconds.empty()) j["load_s"] = Summarize(r.load_seconds).median;
    if (r.test.kind == TestSpec::Kind::kGenerate && !r.paired.empty()) {
      const PairedRoofline p = SummarizePairs(r.paired, run.bytes_per_token);
      j["roofline_fraction"] = p.fraction;
      j["bandwidth_bytes_per_s"] = p.bandwidth_median;
      j["bandwidth_min_bytes_per_s"] = p.bandwidth_min;
      j["bandwidth_max_bytes_per_s"] = p.bandwidth_max;
      j["roofline_pairs"] = p.pairs;
      nlohmann::json token_s = nlohmann::json::array(), read = nlohmann::json::array();
      for (const PairedSample& x : r.paired) {
        token_s.push_back(x.token_s);
        read.push_back(x.probe_bytes_per_s);
      }
      j["roofline_token_s"] = std::move(token_s);
      j["roofline_read_bytes_per_s"] = std::move(read);
    }
    if (r.engine == "strata") {
      j["kernel_path"] = run.kernel_path;
      if (const EngineResult* peer = Find(results, "llamacpp", r.test.name())) {
        j["ratio_vs_llamacpp"] = s.median / Summarize(peer->tps).median;
        if (j.contains("roofline_fraction") && !peer->paired.empty())
          j["roofline_ratio_vs_llamacpp"] =
              j["roofline_fraction"].get<double>() / SummarizePairs(peer->paired, run.bytes_per_token).fraction;
      }
    } else if (!r.peer_info.is_null()) {
      j["peer"] = r.peer_info;
    }
    rows.push_back(std::move(j));
  }
  return rows;
}

std::string MarkdownReport(const RunInfo& run, const nlohmann::json& rows) {
  std::string out = fmt::format("model: {} ({}), threads: {}, reps: {}, strata kernel path: {}\n", run.model_name,
                                run.model_type, run.threads, run.reps, run.kernel_path);
  out += fmt::format("weight bytes read per generated token: {:.3f} GiB (every matrix incl. output, norms, one "
                     "token-embedding row; KV cache not counted)\n",
                     static_cast<double>(run.bytes_per_token) / (kMiB * 1024));
  if (run.probe_threads > 0)
    out += fmt::format("roofline: after the timed runs each engine generated the tg tokens again one at a time, each right "
                       "after one read of a {} MiB buffer in huge pages by {} threads (the machine's bandwidth swings "
                       "within seconds); roofline = median over tokens of (bytes per token / token time) / (buffer / "
                       "read time); read GB/s = median of those reads; roofline vs llama.cpp = strata's roofline / llama.cpp's, "
                       "the tokens/s ratio at equal read bandwidth (both read the same bytes per token), which the "
                       "timed ratio is not when the repetitions of the two engines draw different bandwidth\n",
                       run.probe_bytes >> 20, run.probe_threads);
  out += "\n| engine | test | t/s median | t/s min | t/s max | vs llama.cpp | roofline | roofline vs llama.cpp | read GB/s | peak RSS MiB | load s |\n";
  out += "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const nlohmann::json& j : rows) {
    auto opt = [&](const char* key, const char* spec, double scale) -> std::string {
      return j.contains(key) ? fmt::format(fmt::runtime(spec), scale * j[key].get<double>()) : "";
    };
    out += fmt::format("| {} | {} | {:.2f} | {:.2f} | {:.2f} | {} | {} | {} | {} | {} | {} |\n", j["engine"].get<std::string>(),
                       j["test"].get<std::string>(), j["tps_median"].get<double>(), j["tps_min"].get<double>(),
                       j["tps_max"].get<double>(), opt("ratio_vs_llamacpp", "{:.2f}x", 1),
                       opt("roofline_fraction", "{:.0f}%", 100), opt("roofline_ratio_vs_llamacpp", "{:.2f}x", 1),
                       opt("bandwidth_bytes_per_s", "{:.1f}", 1e-9),
                       opt("peak_rss_mib", "{:.0f}", 1),
                       opt("load_s", "{:.3f}", 1));
  }
  out += "\npeak RSS: strata = the bench process over all its tests (the probe's buffer excluded); llama.cpp = its "
         "harness process for that test (max over reps). Both count the touched pages of the mmapped model.\n";
  return out;
}

}  // namespace strata::bench
