// strata bench: llama-bench-style throughput tests (ppN, tgN), optionally side
// by side with llama.cpp (--peer llamacpp), alternating engine by repetition so
// both see the same machine state. Markdown by default, --json for scripts
// (row schema: bench/report.h). After a tg test's timed repetitions each
// engine runs it once more with a memory read before every token: the paired
// roofline (roofline.h). With --lora, instead: serving throughput with LoRA
// adapters active in the batch against the base model alone (BenchLora).
#include <algorithm>
#include <chrono>
#include <fmt/format.h>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/bench.h"
#include "bench/peer.h"
#include "bench/read_bandwidth.h"
#include "bench/report.h"
#include "bench/roofline.h"
#include "bench/serve_bench.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "engine/context.h"
#include "engine/rank_server.h"
#include "kernels/kernels.h"
#include "model/lora_adapter.h"
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
  TuneFlags tune;
  MpiFlags mpi;
  std::vector<std::string> loras;  // --lora FILE[:SCALE]: the LoRA serving test
  int32_t lora_seqs = 16;
  int32_t depth = 0;   // tg tests after a cached prefix of this many tokens
  std::string depth_session;  // the prefix's KV is read from (or saved to) this session file
  std::string kv_ram;  // the KV cache's RAM budget (under --kv-nodes: each rank's); empty: unbounded
};

// This process's peak resident set (VmHWM), bytes; 0 if unknown. Not
// getrusage's ru_maxrss, which Linux carries across execve from the parent.
uint64_t PeakRssBytes() {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  unsigned long long kib = 0;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "VmHWM: %llu kB", &kib) == 1) break;
  std::fclose(f);
  return static_cast<uint64_t>(kib) * 1024;
}

// Resets VmHWM to the current resident set (Linux >= 4.0), so the bandwidth
// probe's buffer, unmapped by now, does not count as the engine's. False if
// the kernel refuses.
bool ResetPeakRss() {
  std::FILE* f = std::fopen("/proc/self/clear_refs", "w");
  if (!f) return false;
  const bool ok = std::fputs("5", f) >= 0;
  return std::fclose(f) == 0 && ok;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

// Aggregate generation throughput of --lora-seqs concurrent requests (16
// prompt tokens, -n tokens each) in four configurations, run in turn within
// each repetition (the machine's state is shared): the base model with no
// adapter loaded; every adapter loaded but every request on the base model;
// every request on the first adapter; the requests spread over all of them.
// Prints median tok/s, min/max, and the median of each repetition's ratio to
// the base model alone.
void BenchLora(const BenchOptions& o, const Model& model) {
  std::vector<std::unique_ptr<LoraAdapter>> owned;
  std::vector<LoraSet> sets;
  for (const std::string& text : o.loras) {
    LoraFlag f;
    CheckOk("--lora", ParseLoraFlag(text, &f));
    CheckOk("--lora", LoraAdapter::Load(Env::Default(), f.path, model, &owned.emplace_back()));
    sets.push_back(LoraSet{{owned.back().get(), f.scale}});
  }
  const int32_t n = static_cast<int32_t>(sets.size());
  struct Config {
    std::string name;
    bool loaded;
    int32_t active;
  };
  std::vector<Config> configs = {{"base model, no adapter loaded", false, 0},
                                 {fmt::format("{} loaded, 0 active", n), true, 0},
                                 {"1 active", true, 1}};
  if (n > 1) configs.push_back({fmt::format("{} active", n), true, n});
  std::vector<std::vector<double>> tps(configs.size()), ratio(configs.size());
  const int32_t n_gen = std::max(o.n_gen, 1);
  for (int r = 0; r < o.reps; ++r) {
    for (size_t c = 0; c < configs.size(); ++c) {
      bench::ThroughputResult res;
      CheckOk("LoRA serving", bench::AggregateThroughput(model, o.lora_seqs, 16, n_gen, o.threads,
                                                         static_cast<uint64_t>(r) + 1, &res,
                                                         configs[c].loaded ? sets : std::vector<LoraSet>{},
                                                         configs[c].active));
      tps[c].push_back(res.tokens_per_s);
      ratio[c].push_back(res.tokens_per_s / tps[0].back());
    }
  }
  std::printf("LoRA serving: %s, %d concurrent requests of 16 prompt tokens and %d generated, %d threads, "
              "%d repetitions (configurations in turn within each)\n\n",
              model.name().c_str(), o.lora_seqs, n_gen, o.threads, o.reps);
  std::printf("| adapters | tok/s (median) | min | max | vs base (median of paired ratios) |\n|---|---|---|---|---|\n");
  for (size_t c = 0; c < configs.size(); ++c)
    std::printf("| %s | %.1f | %.1f | %.1f | %.3f |\n", configs[c].name.c_str(), Median(tps[c]),
                *std::min_element(tps[c].begin(), tps[c].end()), *std::max_element(tps[c].begin(), tps[c].end()),
                Median(ratio[c]));
}

void Bench(const BenchOptions& o) {
  if (!o.peer.empty() && o.peer != "llamacpp") Fail("bench", Status::InvalidArgument("--peer must be 'llamacpp'"));
  ModelLoadOptions mo;
  mo.path = o.model.empty() ? DefaultModelPath() : o.model;
  mo.tokenizer_path = o.tokenizer;
  // Under mpirun rank 0 runs the benchmark; the others serve its plans.
  Cluster* cluster = JoinCluster(o.mpi);
  if (cluster != nullptr && (!o.peer.empty() || !o.batch_seqs.empty() || o.prefix_ttft > 0 || !o.loras.empty()))
    Fail("bench", Status::Unsupported("under mpirun: --peer, --batch-seqs, --prefix-ttft and --lora"));
  if (cluster != nullptr && cluster->rank() != 0) {
    ServeOtherRank(*cluster, mo.path, mo.tokenizer_path, o.threads, TuneCachePath(o.tune), SizeOption(o.kv_ram, "--kv-ram"));
    return;
  }
  std::unique_ptr<Model> model;
  const auto load_t0 = std::chrono::steady_clock::now();
  CheckOk("cannot load model " + mo.path, LoadRankModel(Env::Default(), mo, &model));
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - load_t0).count();
  if (!o.loras.empty()) return BenchLora(o, *model);
  std::vector<bench::TestSpec> tests;
  if (o.n_prompt > 0) tests.push_back({bench::TestSpec::Kind::kPrompt, o.n_prompt});
  if (o.n_gen > 0) tests.push_back({bench::TestSpec::Kind::kGenerate, o.n_gen, 1, o.depth});
  if (tests.empty()) Fail("bench", Status::InvalidArgument("nothing to run: -p and -n are both 0"));
  if (o.depth > 0 && !o.peer.empty()) Fail("--depth", Status::Unsupported("with --peer"));
  if (!o.depth_session.empty() && o.depth == 0) Fail("--depth-session", Status::InvalidArgument("needs --depth"));
  std::unique_ptr<Context> ctx;
  ContextParams cp;
  cp.n_ctx = std::max(o.n_prompt, o.depth + o.n_gen);
  cp.n_batch = std::max({o.n_prompt, std::min(o.depth, 512), 1});
  cp.n_threads = o.threads;
  cp.tune_cache_path = TuneCachePath(o.tune);
  cp.kv_tiers.ram_bytes = SizeOption(o.kv_ram, "--kv-ram");
  CheckOk("cannot create context", Context::Create(*model, cp, &ctx));
  if (!o.depth_session.empty()) {
    const auto t0 = std::chrono::steady_clock::now();
    int32_t read = 0;
    CheckOk("--depth-session", bench::PreparePrefix(*ctx, o.depth, Env::Default(), o.depth_session, &read));
    std::fprintf(stderr, "prefix of %d tokens: %d read from %s, %d computed%s, in %.1f s\n", o.depth, read,
                 o.depth_session.c_str(), o.depth - read, read < o.depth ? " (the file now holds them all)" : "",
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }

  for (int32_t s : o.batch_seqs) tests.push_back({bench::TestSpec::Kind::kBatched, std::max(o.n_gen, 1), s});
  std::vector<bench::EngineResult> results;
  const uint64_t bytes_per_token = bench::WeightBytesPerToken(model->weights());
  const uint64_t probe_bytes = bench::PairedProbeBytes(bytes_per_token, o.threads);
  bool probed = false;
  // Peak RSS is read before the probe's buffer is mapped and the counter reset after it is gone.
  uint64_t peak_rss = 0;
  bool rss_valid = true;
  std::string mpi_lines;  // communication per token, under mpirun
  for (const bench::TestSpec& test : tests) {
    bench::EngineResult mine, peer;
    mine.engine = "strata";
    peer.engine = "llamacpp";
    mine.test = peer.test = test;
    const bool batched = test.kind == bench::TestSpec::Kind::kBatched;
    double tps = 0;
    if (!batched) CheckOk("warm-up", bench::RunOnce(*ctx, test, 0, &tps));
    if (cluster != nullptr) cluster->ResetStats();
    double timed_s = 0;
    CommStats comm;
    for (int r = 0; r < o.reps; ++r) {
      if (batched) {
        // The peer's batched test prefills 16 tokens per sequence first; so does this one.
        bench::ThroughputResult res;
        CheckOk(test.name(), bench::AggregateThroughput(*model, test.seqs, 16, test.n_tokens, o.threads,
                                                        static_cast<uint64_t>(r) + 1, &res));
        tps = res.tokens_per_s;
      } else {
        CheckOk(test.name(), bench::RunOnce(*ctx, test, static_cast<uint64_t>(r) + 1, &tps));
        timed_s += test.n_tokens / tps;
      }
      mine.tps.push_back(tps);
      if (cluster != nullptr && r + 1 == o.reps) comm = cluster->stats();  // the timed runs' only
      if (!o.peer.empty() && !(batched && test.seqs == 1)) {  // the peer's batched test needs 2+ sequences
        bench::PeerResult pr;
        CheckOk("llama.cpp peer", bench::RunPeer(o.peer_harness, mo.path, test, o.threads, 1, &pr));
        peer.tps.insert(peer.tps.end(), pr.tokens_per_s.begin(), pr.tokens_per_s.end());
        peer.peak_rss_bytes = std::max(peer.peak_rss_bytes, pr.peak_rss_bytes);
        peer.load_seconds.push_back(pr.load_seconds);
        peer.peer_info = std::move(pr.info);
      }
    }
    if (o.roofline && test.kind == bench::TestSpec::Kind::kGenerate && test.depth == 0) {
      if (rss_valid) peak_rss = std::max(peak_rss, PeakRssBytes());
      {
        std::unique_ptr<bench::ReadProbe> probe;
        CheckOk("bandwidth probe", bench::ReadProbe::Create(o.threads, probe_bytes, &probe));
        CheckOk("paired roofline run", bench::RunPaired(*ctx, *probe, test.n_tokens, 1, &mine.paired));
      }
      rss_valid = ResetPeakRss();
      if (!o.peer.empty())
        CheckOk("llama.cpp paired roofline run",
                bench::RunPeerPaired(o.peer_harness, mo.path, test, o.threads, probe_bytes, &peer.paired));
      probed = true;
    }
    if (cluster != nullptr && !batched) {
      // Rank 0's share; under --split tensor every rank sends as much, under layer one hidden state each.
      const CommStats& c = comm;
      const double tokens = static_cast<double>(test.n_tokens) * o.reps;
      mpi_lines += fmt::format("mpi: {} ranks, split {}, {}: rank 0 sent {:.1f} KiB per token in {:.1f} operations{}; "
                               "{:.3f} ms of {:.3f} ms per token communicating ({:.0f}%)\n",
                               cluster->size(), SplitName(cluster->split()), test.name(),
                               static_cast<double>(c.bytes_sent) / tokens / 1024, static_cast<double>(c.operations) / tokens,
                               c.bytes_received > 0 ? fmt::format(", received {:.1f} KiB point to point",
                                                                  static_cast<double>(c.bytes_received) / tokens / 1024)
                                                    : "",
                               c.seconds / tokens * 1e3, timed_s / tokens * 1e3, 100 * c.seconds / timed_s);
    }
    results.push_back(std::move(mine));
    if (!peer.tps.empty()) results.push_back(std::move(peer));
  }
  if (rss_valid) peak_rss = std::max(peak_rss, PeakRssBytes());
  for (bench::EngineResult& r : results) {
    if (r.engine != "strata") continue;
    r.peak_rss_bytes = peak_rss;
    r.load_seconds = {load_s};
  }

  bench::RunInfo run;
  run.model_name = model->name();
  run.model_type = DTypeName(model->weight_type());
  run.kernel_path = kernels::PathName(kernels::BestPath());
  run.threads = o.threads;
  run.reps = o.reps;
  run.bytes_per_token = bytes_per_token;
  if (probed) {
    run.probe_threads = o.threads;
    run.probe_bytes = probe_bytes;
  }
  const nlohmann::json rows = bench::ResultRows(run, results);
  if (o.json) {
    std::printf("%s\n", rows.dump(1).c_str());
  } else {
    std::printf("%s", bench::MarkdownReport(run, rows).c_str());
  }
  if (const KvNodes* nodes = ctx->kv_nodes(); nodes != nullptr)
    mpi_lines += "mpi: " + KvNodesSummary(nodes->stats()) + "\n";
  if (!mpi_lines.empty()) std::fprintf(o.json ? stderr : stdout, "%s%s", o.json ? "" : "\n", mpi_lines.c_str());
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
  cmd->add_option("-d,--depth", o->depth, "tg tests after a cached prefix of this many tokens (tgN@dD)")
      ->check(CLI::Range(0, 1 << 22));
  cmd->add_option("--depth-session", o->depth_session,
                  "read the --depth prefix's KV from this session file, or compute it once and save it there")
      ->type_name("FILE");
  cmd->add_option("-t,--threads", o->threads, "Threads")->check(CLI::Range(1, 1024));
  cmd->add_option("-r,--reps", o->reps, "Measured repetitions per test")->check(CLI::Range(1, 1000));
  cmd->add_flag("--json", o->json, "Print a JSON array of result rows");
  cmd->add_option("--peer", o->peer, "Also run the same tests through llama.cpp ('llamacpp')");
  cmd->add_option("--peer-harness", o->peer_harness, "Path of the llama.cpp harness (bench/install_llamacpp.sh)");
  cmd->add_flag("!--no-roofline", o->roofline, "Skip the paired roofline run (tg tokens again, each after a memory read)");
  cmd->add_option("--batch-seqs", o->batch_seqs, "Aggregate throughput with S concurrent sequences (e.g. 1,4,16,64)")
      ->delimiter(',')
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--prefix-ttft", o->prefix_ttft, "Time to first token with an N-token prefix, uncached vs cached")
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--lora", o->loras,
                  "Instead of the other tests: serving throughput with these LoRA adapters ([NAME=]FILE[:SCALE], "
                  "repeatable) active in the batch, against the base model alone")
      ->check(NonEmpty());
  cmd->add_option("--lora-seqs", o->lora_seqs, "--lora: concurrent requests")->capture_default_str()
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--kv-ram", o->kv_ram, "RAM budget for the KV cache, e.g. 64M (under --kv-nodes: each rank's)");
  AddTuneFlags(cmd, &o->tune);
  AddMpiFlags(cmd, &o->mpi);
  cmd->callback([o] { Bench(*o); });
}

}  // namespace strata::cli
