// strata bench: llama-bench-style throughput tests (ppN, tgN), optionally side
// by side with llama.cpp (--peer llamacpp), alternating engine by repetition so
// both see the same machine state. Markdown by default, --json for scripts.
#include <sys/resource.h>

#include <cstdio>
#include <fmt/format.h>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/bench.h"
#include "bench/peer.h"
#include "bench/serve_bench.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "engine/context.h"
#include "kernels/kernels.h"
#include "model/model.h"

namespace strata::cli {
namespace {

struct BenchOptions {
  std::string model;
  std::string tokenizer;
  int32_t n_prompt = 512;
  int32_t n_gen = 128;
  int32_t threads = 2;
  int32_t reps = 5;
  bool json = false;
  std::string peer;
  std::string peer_harness = STRATA_SOURCE_DIR "/bench/.peer/llamacpp_harness";
  bool roofline = true;
  std::vector<int32_t> batch_seqs;  // aggregate throughput tests
  int32_t prefix_ttft = 0;          // cached-prefix TTFT test
};

struct Row {
  std::string engine;
  bench::TestSpec test;
  std::vector<double> tps;
};

void Print(const BenchOptions& o, const Model& model, const std::vector<Row>& rows, double bandwidth,
           const nlohmann::json& peer_info) {
  const uint64_t weight_bytes = model.weight_bytes();
  long peak_rss_kb = 0;
  rusage ru{};
  if (getrusage(RUSAGE_SELF, &ru) == 0) peak_rss_kb = ru.ru_maxrss;
  auto peer_median = [&](const Row& r) -> double {
    for (const Row& p : rows)
      if (p.engine == "llamacpp" && p.test.name() == r.test.name()) return bench::Summarize(p.tps).median;
    return 0;
  };
  nlohmann::json out = nlohmann::json::array();
  for (const Row& r : rows) {
    const bench::Stats s = bench::Summarize(r.tps);
    nlohmann::json j = {{"engine", r.engine},  {"test", r.test.name()}, {"tps_median", s.median},
                        {"tps_min", s.min},    {"tps_max", s.max},      {"tps_mean", s.mean},
                        {"tps", r.tps},        {"threads", o.threads},  {"model", model.name()},
                        {"model_type", DTypeName(model.weight_type())}, {"weight_bytes", weight_bytes}};
    if (r.test.kind == bench::TestSpec::Kind::kGenerate && bandwidth > 0) {
      j["bandwidth_bytes_per_s"] = bandwidth;
      j["roofline_fraction"] = s.median * static_cast<double>(weight_bytes) / bandwidth;
    }
    if (r.engine == "strata") {
      j["kernel_path"] = kernels::PathName(kernels::BestPath());
      j["peak_rss_bytes"] = static_cast<uint64_t>(peak_rss_kb) * 1024;
      if (double p = peer_median(r); p > 0) j["ratio_vs_llamacpp"] = s.median / p;
    } else if (!peer_info.is_null()) {
      j["peer"] = peer_info;
    }
    out.push_back(j);
  }
  if (o.json) {
    std::printf("%s\n", out.dump(1).c_str());
    return;
  }
  std::printf("model: %s (%s, %.2f GiB of weights), threads: %d, reps: %d, kernel path: %s\n", model.name().c_str(),
              DTypeName(model.weight_type()), weight_bytes / 1073741824.0, o.threads, o.reps,
              kernels::PathName(kernels::BestPath()));
  if (bandwidth > 0) std::printf("memory read bandwidth: %.1f GB/s\n", bandwidth / 1e9);
  std::printf("\n| engine | test | t/s median | t/s min | t/s max | vs llama.cpp | roofline |\n");
  std::printf("|---|---|---:|---:|---:|---:|---:|\n");
  for (const nlohmann::json& j : out) {
    std::string ratio = j.contains("ratio_vs_llamacpp") ? fmt::format("{:.2f}x", j["ratio_vs_llamacpp"].get<double>()) : "";
    std::string roof = j.contains("roofline_fraction") ? fmt::format("{:.0f}%", 100 * j["roofline_fraction"].get<double>()) : "";
    std::printf("| %s | %s | %.2f | %.2f | %.2f | %s | %s |\n", j["engine"].get<std::string>().c_str(),
                j["test"].get<std::string>().c_str(), j["tps_median"].get<double>(), j["tps_min"].get<double>(),
                j["tps_max"].get<double>(), ratio.c_str(), roof.c_str());
  }
  std::printf("\nstrata peak RSS: %.1f MiB\n", peak_rss_kb / 1024.0);
}

void Bench(const BenchOptions& o) {
  if (!o.peer.empty() && o.peer != "llamacpp") Fail("bench", Status::InvalidArgument("--peer must be 'llamacpp'"));
  ModelLoadOptions mo;
  mo.path = o.model.empty() ? DefaultModelPath() : o.model;
  mo.tokenizer_path = o.tokenizer;
  std::unique_ptr<Model> model;
  CheckOk("cannot load model " + mo.path, Model::Load(Env::Default(), mo, &model));
  std::vector<bench::TestSpec> tests;
  if (o.n_prompt > 0) tests.push_back({bench::TestSpec::Kind::kPrompt, o.n_prompt});
  if (o.n_gen > 0) tests.push_back({bench::TestSpec::Kind::kGenerate, o.n_gen});
  if (tests.empty()) Fail("bench", Status::InvalidArgument("nothing to run: -p and -n are both 0"));
  std::unique_ptr<Context> ctx;
  ContextParams cp{std::max(o.n_prompt, o.n_gen), std::max(o.n_prompt, 1), o.threads};
  CheckOk("cannot create context", Context::Create(*model, cp, &ctx));

  const double bandwidth = o.roofline ? bench::MeasureReadBandwidth(o.threads) : 0;
  for (int32_t s : o.batch_seqs) tests.push_back({bench::TestSpec::Kind::kBatched, std::max(o.n_gen, 1), s});
  std::vector<Row> rows;
  nlohmann::json peer_info;
  for (const bench::TestSpec& test : tests) {
    Row mine{"strata", test, {}}, peer{"llamacpp", test, {}};
    const bool batched = test.kind == bench::TestSpec::Kind::kBatched;
    double tps = 0;
    if (!batched) CheckOk("warm-up", bench::RunOnce(*ctx, test, 0, &tps));
    for (int r = 0; r < o.reps; ++r) {
      if (batched) {
        // The peer's batched test prefills 16 tokens per sequence first; so does this one.
        bench::ThroughputResult res;
        CheckOk(test.name(), bench::AggregateThroughput(*model, test.seqs, 16, test.n_tokens, o.threads,
                                                        static_cast<uint64_t>(r) + 1, &res));
        tps = res.tokens_per_s;
      } else {
        CheckOk(test.name(), bench::RunOnce(*ctx, test, static_cast<uint64_t>(r) + 1, &tps));
      }
      mine.tps.push_back(tps);
      if (!o.peer.empty() && !(batched && test.seqs == 1)) {  // the peer's batched test needs 2+ sequences
        bench::PeerResult pr;
        CheckOk("llama.cpp peer", bench::RunPeer(o.peer_harness, mo.path, test, o.threads, 1, &pr));
        peer.tps.insert(peer.tps.end(), pr.tokens_per_s.begin(), pr.tokens_per_s.end());
        peer_info = pr.info;
      }
    }
    rows.push_back(std::move(mine));
    if (!peer.tps.empty()) rows.push_back(std::move(peer));
  }
  Print(o, *model, rows, bandwidth, peer_info);
  if (o.prefix_ttft > 0) {
    double cold = 0, warm = 0;
    CheckOk("prefix TTFT", bench::PrefixTtft(*model, o.prefix_ttft, o.threads, &cold, &warm));
    std::printf("%stime to first token with a %d-token prefix: uncached %.3f s, cached %.3f s (%.1fx)\n",
                o.json ? "" : "\n", o.prefix_ttft, cold, warm, cold / warm);
  }
}

}  // namespace

void AddBenchCommand(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* cmd = app.add_subcommand("bench", "Measure prompt processing (ppN) and generation (tgN) speed");
  cmd->add_option("-m,--model", o->model, "Model file; default: the bundled stories260K");
  cmd->add_option("--tokenizer", o->tokenizer, "llama2.c tokenizer.bin (for .bin models)");
  cmd->add_option("-p,--n-prompt", o->n_prompt, "Prompt tokens in one forward pass (0 = skip)")->check(CLI::Range(0, 1 << 16));
  cmd->add_option("-n,--n-gen", o->n_gen, "Tokens generated one at a time (0 = skip)")->check(CLI::Range(0, 1 << 16));
  cmd->add_option("-t,--threads", o->threads, "Threads")->check(CLI::Range(1, 1024));
  cmd->add_option("-r,--reps", o->reps, "Measured repetitions per test")->check(CLI::Range(1, 1000));
  cmd->add_flag("--json", o->json, "Print a JSON array of result rows");
  cmd->add_option("--peer", o->peer, "Also run the same tests through llama.cpp ('llamacpp')");
  cmd->add_option("--peer-harness", o->peer_harness, "Path of the llama.cpp harness (bench/install_llamacpp.sh)");
  cmd->add_flag("!--no-roofline", o->roofline, "Skip the memory bandwidth measurement");
  cmd->add_option("--batch-seqs", o->batch_seqs, "Aggregate throughput with S concurrent sequences (e.g. 1,4,16,64)")
      ->delimiter(',')
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--prefix-ttft", o->prefix_ttft, "Time to first token with an N-token prefix, uncached vs cached")
      ->check(CLI::Range(0, 1 << 20));
  cmd->callback([o] { Bench(*o); });
}

}  // namespace strata::cli
