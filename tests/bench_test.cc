// Tests of the benchmark's pure parts (bandwidth kernel, bytes-per-token
// accounting, result rows) and of `strata bench` output end to end. No timing
// assertions: only structure and arithmetic.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <vector>

#include "bench/bench.h"
#include "bench/read_bandwidth.h"
#include "bench/report.h"
#include "bench/roofline.h"
#include "engine/context.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "test_util.h"

namespace strata {
namespace {

Tensor Matrix(DType type, int64_t cols, int64_t rows) {
  Tensor t;
  t.type = type;
  t.ne = {cols, rows, 1, 1};
  return t;
}

TEST(ReadBandwidthTest, SumU64MatchesAScalarSumOnEveryPath) {
  constexpr size_t kBytes = 64 * 1024 + 256;
  std::vector<uint64_t> words(kBytes / 8 + 8);
  // 64-byte aligned start inside the vector.
  auto* base = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(words.data()) + 63) & ~uintptr_t{63});
  std::mt19937_64 rng(7);
  auto* w = reinterpret_cast<uint64_t*>(base);
  for (size_t i = 0; i < kBytes / 8; ++i) w[i] = rng();  // large values: the sum wraps
  const uint64_t expected = std::accumulate(w, w + kBytes / 8, uint64_t{0});
  for (kernels::Path path : kernels::AvailablePaths()) {
    EXPECT_EQ(bench::SumU64(base, kBytes, path), expected) << kernels::PathName(path);
    EXPECT_EQ(bench::SumU64(base, 256, path), std::accumulate(w, w + 32, uint64_t{0})) << kernels::PathName(path);
  }
}

TEST(ReadProbeTest, EveryReadMeasuresTheWholeBuffer) {
  std::unique_ptr<bench::ReadProbe> probe;
  ASSERT_TRUE(bench::ReadProbe::Create(2, 4 << 20, &probe).ok());
  EXPECT_EQ(probe->threads(), 2);
  EXPECT_EQ(probe->buffer_bytes(), uint64_t{4} << 20);
  for (int i = 0; i < 3; ++i) {
    double rate = 0;
    ASSERT_TRUE(probe->Read(&rate).ok());  // also checks every thread's sum
    EXPECT_GT(rate, 0);
  }
}

TEST(ReadProbeTest, RejectsBuffersThatDoNotSplitIntoWholeBlocks) {
  std::unique_ptr<bench::ReadProbe> probe;
  EXPECT_EQ(bench::ReadProbe::Create(2, 256, &probe).code(), StatusCode::kInvalidArgument);  // 128 per thread
  EXPECT_EQ(bench::ReadProbe::Create(1, 0, &probe).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bench::ReadProbe::Create(0, 256, &probe).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(probe, nullptr);
}

// A 2-layer model: n_embd 64, n_kv 32, n_ff 128, vocab 100; Q8_0 matrices
// (64 cols = 2 blocks of 34 bytes = 68 bytes per row; 128 cols = 136).
ModelWeights SmallWeights() {
  ModelWeights w;
  w.token_embd = Matrix(DType::kQ8_0, 64, 100);
  w.output_norm = Matrix(DType::kF32, 64, 1);
  w.output.w = Matrix(DType::kF16, 64, 100);
  for (int i = 0; i < 2; ++i) {
    LayerWeights l;
    l.attn_norm = l.ffn_norm = Matrix(DType::kF32, 64, 1);
    l.wq.w = l.wo.w = Matrix(DType::kQ8_0, 64, 64);
    l.wk.w = l.wv.w = Matrix(DType::kQ8_0, 64, 32);
    l.ffn_gate.w = l.ffn_up.w = Matrix(DType::kQ8_0, 64, 128);
    l.ffn_down.w = Matrix(DType::kQ8_0, 128, 64);
    w.layers.push_back(l);
  }
  return w;
}

TEST(RooflineTest, BytesPerTokenCountEveryMatrixTheOutputAndOneEmbeddingRow) {
  const uint64_t norms = 2 * 64 * 4;
  const uint64_t attn = 68 * (64 + 32 + 32 + 64);
  const uint64_t ffn = 68 * 128 * 2 + 136 * 64;
  const uint64_t layer = norms + attn + ffn;
  const uint64_t output = 64 * 4 + 100 * 64 * 2;  // output_norm F32 + output F16
  const uint64_t embd_row = 68;
  EXPECT_EQ(bench::WeightBytesPerToken(SmallWeights()), 2 * layer + output + embd_row);
}

TEST(RooflineTest, TiedOutputCountsTheWholeMatrixPlusTheLookedUpRow) {
  ModelWeights w = SmallWeights();
  ModelWeights tied = w;
  tied.output.w = tied.token_embd;  // Q8_0 [64, 100], the same bytes
  const uint64_t f16_output = 100 * 64 * 2, q8_output = 100 * 68;
  EXPECT_EQ(bench::WeightBytesPerToken(tied), bench::WeightBytesPerToken(w) - f16_output + q8_output);
}

TEST(RooflineTest, RealModelIsTheModelsMatricesPlusOneEmbeddingRow) {
  ModelLoadOptions o;
  o.path = testing::SharedPath("models/stories260K.gguf");
  std::unique_ptr<Model> m;
  ASSERT_TRUE(Model::Load(Env::Default(), o, &m).ok());
  EXPECT_EQ(bench::WeightBytesPerToken(m->weights()), m->weight_bytes() + m->weights().token_embd.row_bytes());
}

TEST(RooflineTest, FractionIsTokensTimesBytesOverBandwidth) {
  EXPECT_DOUBLE_EQ(bench::RooflineFraction(10, 1'000'000'000, 20e9), 0.5);
  EXPECT_DOUBLE_EQ(bench::RooflineFraction(40, 500'000'000, 20e9), 1.0);
}

TEST(RooflineTest, PairedFractionIsTheMedianOfEachTokensRatioToItsOwnRead) {
  // 1 GB per token. Token 0: 10 GB/s over a 20 GB/s read (0.5); token 1:
  // 20 over 20 (1.0); token 2: 10 over 10 (1.0). Unpaired (median t/s against
  // the best read) would say 10 x 1 GB / 20 GB/s = 0.5.
  const std::vector<bench::PairedSample> s = {{0.1, 20e9}, {0.05, 20e9}, {0.1, 10e9}};
  const bench::PairedRoofline p = bench::SummarizePairs(s, 1'000'000'000);
  EXPECT_DOUBLE_EQ(p.fraction, 1.0);
  EXPECT_DOUBLE_EQ(p.bandwidth_median, 20e9);
  EXPECT_DOUBLE_EQ(p.bandwidth_min, 10e9);
  EXPECT_DOUBLE_EQ(p.bandwidth_max, 20e9);
  EXPECT_EQ(p.pairs, 3);
}

TEST(RooflineTest, PairedProbeIsATokensBytesInWholeHugePagesPerThread) {
  constexpr uint64_t kMiB = 1 << 20;
  EXPECT_EQ(bench::PairedProbeBytes(1'000'000, 2), 256 * kMiB);  // at least 256 MiB
  EXPECT_EQ(bench::PairedProbeBytes(1'000'000'000, 2), 956 * kMiB);  // 953.7 MiB up to 4 MiB units
  EXPECT_EQ(bench::PairedProbeBytes(256 * kMiB + 1, 3), 258 * kMiB);  // 6 MiB units
  EXPECT_EQ(bench::PairedProbeBytes(1'000'000'000, 3) % (3 * 2 * kMiB), 0u);
}

bench::RunInfo SampleRun() {
  return {.model_name = "m",
          .model_type = "q8_0",
          .kernel_path = "avx512",
          .threads = 2,
          .reps = 3,
          .bytes_per_token = 1'000'000'000,
          .probe_threads = 2,
          .probe_bytes = uint64_t{956} << 20};
}

std::vector<bench::EngineResult> SampleResults() {
  bench::EngineResult pp_s, pp_l, tg_s, tg_l;
  pp_s.engine = tg_s.engine = "strata";
  pp_l.engine = tg_l.engine = "llamacpp";
  pp_s.test = pp_l.test = {bench::TestSpec::Kind::kPrompt, 512};
  tg_s.test = tg_l.test = {bench::TestSpec::Kind::kGenerate, 128};
  pp_s.tps = {300, 100, 200};
  pp_l.tps = {50, 150, 100};
  tg_s.tps = {9, 10, 11};
  tg_l.tps = {5, 3};
  pp_s.peak_rss_bytes = tg_s.peak_rss_bytes = 1536ull << 20;
  tg_l.peak_rss_bytes = 512ull << 20;
  pp_s.load_seconds = tg_s.load_seconds = {0.25};
  tg_l.load_seconds = {0.3, 0.1, 0.2};
  tg_l.peer_info = {{"engine", "llamacpp"}, {"llamacpp", {{"commit", "0ad4a86"}}}};
  tg_s.paired = {{0.1, 20e9}, {0.1, 18e9}, {0.1, 22e9}};  // 10 GB/s tokens: 0.5, 0.556, 0.455
  tg_l.paired = {{0.25, 20e9}, {0.2, 20e9}};               // 4 and 5 GB/s: 0.2, 0.25
  return {pp_s, pp_l, tg_s, tg_l};
}

TEST(ReportTest, RowsKeepTheSchema) {
  const nlohmann::json rows = bench::ResultRows(SampleRun(), SampleResults());
  ASSERT_TRUE(rows.is_array());
  ASSERT_EQ(rows.size(), 4u);
  for (const nlohmann::json& r : rows)
    for (const char* key : {"engine", "test", "tps_median", "tps_min", "tps_max", "tps_mean", "tps", "threads", "model",
                            "model_type", "bytes_per_token"})
      EXPECT_TRUE(r.contains(key)) << key << " in " << r.dump();
  const nlohmann::json& pp = rows[0];
  EXPECT_EQ(pp["engine"], "strata");
  EXPECT_EQ(pp["test"], "pp512");
  EXPECT_DOUBLE_EQ(pp["tps_median"].get<double>(), 200);
  EXPECT_DOUBLE_EQ(pp["tps_min"].get<double>(), 100);
  EXPECT_DOUBLE_EQ(pp["tps_max"].get<double>(), 300);
  EXPECT_EQ(pp["tps"], nlohmann::json({300, 100, 200}));
  EXPECT_DOUBLE_EQ(pp["ratio_vs_llamacpp"].get<double>(), 2.0);
  EXPECT_DOUBLE_EQ(pp["peak_rss_mib"].get<double>(), 1536);
  EXPECT_DOUBLE_EQ(pp["load_s"].get<double>(), 0.25);
  EXPECT_EQ(pp["kernel_path"], "avx512");
  EXPECT_FALSE(pp.contains("roofline_fraction"));  // prompt processing is not memory-bound
  EXPECT_FALSE(rows[1].contains("peak_rss_mib"));  // not measured
  EXPECT_FALSE(rows[1].contains("ratio_vs_llamacpp"));
  EXPECT_FALSE(pp.contains("roofline_ratio_vs_llamacpp"));
  EXPECT_FALSE(rows[1].contains("peer"));

  const nlohmann::json& tg = rows[2];
  EXPECT_DOUBLE_EQ(tg["roofline_fraction"].get<double>(), 0.5);  // median of 10/20, 10/18, 10/22
  EXPECT_DOUBLE_EQ(tg["bandwidth_bytes_per_s"].get<double>(), 20e9);
  EXPECT_DOUBLE_EQ(tg["bandwidth_min_bytes_per_s"].get<double>(), 18e9);
  EXPECT_DOUBLE_EQ(tg["bandwidth_max_bytes_per_s"].get<double>(), 22e9);
  EXPECT_EQ(tg["roofline_pairs"].get<int>(), 3);
  EXPECT_EQ(tg["roofline_token_s"], nlohmann::json({0.1, 0.1, 0.1}));
  EXPECT_EQ(tg["roofline_read_bytes_per_s"], nlohmann::json({20e9, 18e9, 22e9}));
  EXPECT_DOUBLE_EQ(tg["ratio_vs_llamacpp"].get<double>(), 2.5);
  EXPECT_DOUBLE_EQ(tg["roofline_ratio_vs_llamacpp"].get<double>(), 0.5 / 0.225);
  const nlohmann::json& peer = rows[3];
  EXPECT_DOUBLE_EQ(peer["roofline_fraction"].get<double>(), 0.225);  // median of 0.2 and 0.25
  EXPECT_DOUBLE_EQ(peer["peak_rss_mib"].get<double>(), 512);
  EXPECT_DOUBLE_EQ(peer["load_s"].get<double>(), 0.2);  // median of the peer's loads
  EXPECT_EQ(peer["peer"]["llamacpp"]["commit"], "0ad4a86");
  EXPECT_FALSE(peer.contains("kernel_path"));
}

TEST(ReportTest, NoPairedRunNoRoofline) {
  bench::RunInfo run = SampleRun();
  run.probe_threads = 0;
  std::vector<bench::EngineResult> results = SampleResults();
  for (bench::EngineResult& r : results) r.paired.clear();
  for (const nlohmann::json& r : bench::ResultRows(run, results)) {
    EXPECT_FALSE(r.contains("roofline_fraction"));
    EXPECT_FALSE(r.contains("bandwidth_bytes_per_s"));
    EXPECT_FALSE(r.contains("roofline_ratio_vs_llamacpp"));
  }
}

TEST(ReportTest, MarkdownHasTheProbeAndOneLinePerRow) {
  const bench::RunInfo run = SampleRun();
  const std::string md = bench::MarkdownReport(run, bench::ResultRows(run, SampleResults()));
  EXPECT_NE(md.find("one read of a 956 MiB buffer in huge pages by 2 threads"), std::string::npos) << md;
  EXPECT_NE(md.find("0.931 GiB"), std::string::npos) << md;  // 1e9 bytes per token
  EXPECT_NE(md.find("| strata | pp512 | 200.00 | 100.00 | 300.00 | 2.00x |  |  |  | 1536 | 0.250 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| strata | tg128 | 10.00 | 9.00 | 11.00 | 2.50x | 50% | 2.22x | 20.0 | 1536 | 0.250 |"), std::string::npos)
      << md;
  EXPECT_NE(md.find("| llamacpp | tg128 | 4.00 | 3.00 | 5.00 |  | 22% |  | 20.0 | 512 | 0.200 |"), std::string::npos) << md;
}

// The CLI end to end, with the llama.cpp peer when bench/install_llamacpp.sh has built it.
TEST(BenchCliTest, JsonRowsForBothEngines) {
  const auto r = testing::RunCommand({testing::CliPath(), "bench", "-m", testing::SharedPath("models/stories260K.gguf"),
                                      "-p", "8", "-n", "4", "-r", "2", "--no-roofline", "--json", "--peer", "llamacpp"});
  if (r.exit_code != 0 && r.err.find("install_llamacpp.sh") != std::string::npos)
    GTEST_SKIP() << "llama.cpp peer not built: " << r.err;
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json rows = nlohmann::json::parse(r.out);
  ASSERT_EQ(rows.size(), 4u) << r.out;
  for (const nlohmann::json& row : rows) {
    EXPECT_EQ(row["tps"].size(), 2u);
    EXPECT_GT(row["peak_rss_mib"].get<double>(), 0) << row.dump();
    EXPECT_GE(row["load_s"].get<double>(), 0) << row.dump();
    EXPECT_FALSE(row.contains("roofline_fraction"));
  }
  EXPECT_EQ(rows[1]["engine"], "llamacpp");
  EXPECT_EQ(rows[1]["test"], "pp8");
  EXPECT_TRUE(rows[1]["peer"].contains("llamacpp"));
  EXPECT_EQ(rows[2]["engine"], "strata");
  EXPECT_EQ(rows[2]["test"], "tg4");
  EXPECT_TRUE(rows[2].contains("ratio_vs_llamacpp"));
}

TEST(BenchCliTest, PairedRooflineRunAfterTheGenerationRepetitions) {
  const auto r = testing::RunCommand({testing::CliPath(), "bench", "-m", testing::SharedPath("models/stories260K.gguf"),
                                      "-p", "8", "-n", "4", "-r", "3", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json rows = nlohmann::json::parse(r.out);
  ASSERT_EQ(rows.size(), 2u) << r.out;
  EXPECT_FALSE(rows[0].contains("roofline_fraction")) << rows[0].dump();  // pp: no roofline
  EXPECT_EQ(rows[1]["tps"].size(), 3u) << rows[1].dump();
  EXPECT_EQ(rows[1]["roofline_pairs"].get<int>(), 4) << rows[1].dump();
  EXPECT_GT(rows[1]["roofline_fraction"].get<double>(), 0) << rows[1].dump();
  EXPECT_GT(rows[1]["bandwidth_bytes_per_s"].get<double>(), 0) << rows[1].dump();
  // The probe's 256 MiB buffer is not the engine's: stories260K needs a few MiB.
  EXPECT_LT(rows[1]["peak_rss_mib"].get<double>(), 200) << rows[1].dump();
}

TEST(BenchCliTest, PeerRunsThePairedRooflineToo) {
  const auto r = testing::RunCommand({testing::CliPath(), "bench", "-m", testing::SharedPath("models/stories260K.gguf"),
                                      "-p", "0", "-n", "3", "-r", "1", "--json", "--peer", "llamacpp"});
  if (r.exit_code != 0 && r.err.find("install_llamacpp.sh") != std::string::npos)
    GTEST_SKIP() << "llama.cpp peer not built: " << r.err;
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json rows = nlohmann::json::parse(r.out);
  ASSERT_EQ(rows.size(), 2u) << r.out;
  EXPECT_EQ(rows[1]["engine"], "llamacpp");
  EXPECT_EQ(rows[1]["tps"].size(), 1u) << rows[1].dump();  // the paired run adds no repetition
  EXPECT_EQ(rows[1]["roofline_pairs"].get<int>(), 3) << rows[1].dump();
  EXPECT_GT(rows[1]["roofline_fraction"].get<double>(), 0) << rows[1].dump();
  EXPECT_DOUBLE_EQ(rows[0]["roofline_ratio_vs_llamacpp"].get<double>(),
                   rows[0]["roofline_fraction"].get<double>() / rows[1]["roofline_fraction"].get<double>());
  // Its peak RSS is the timed run's process, not the paired one with the probe's buffer.
  EXPECT_LT(rows[1]["peak_rss_mib"].get<double>(), 200) << rows[1].dump();
}

TEST(BenchCliTest, MarkdownWithoutPeer) {
  const auto r = testing::RunCommand({testing::CliPath(), "bench", "-m", testing::SharedPath("models/stories260K.gguf"),
                                      "-p", "8", "-n", "4", "-r", "1", "--no-roofline"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("| engine | test | t/s median |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| strata | pp8 |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| strata | tg4 |"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("llamacpp"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("roofline: "), std::string::npos) << r.out;
}

// A --depth prefix read from its session file continues exactly as the computed one.
TEST(BenchPrefixTest, SessionFileHoldsThePrefixForLaterRuns) {
  ModelLoadOptions mo;
  mo.path = testing::SharedPath("models/stories260K.gguf");
  std::unique_ptr<Model> model;
  ASSERT_TRUE(Model::Load(Env::Default(), mo, &model).ok());
  const std::string path = testing::MakeTempDir() + "/prefix.session";
  const int32_t next = 42;
  std::vector<float> first;
  for (int32_t expect_read : {0, 70}) {
    std::unique_ptr<Context> ctx;
    ASSERT_TRUE(Context::Create(*model, ContextParams{.n_ctx = 128, .n_batch = 32, .n_threads = 2}, &ctx).ok());
    int32_t read = -1;
    Status s = bench::PreparePrefix(*ctx, 70, Env::Default(), path, &read);
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(read, expect_read);
    EXPECT_EQ(ctx->tokens(), bench::PrefixTokens(*ctx, 70));
    ASSERT_TRUE(ctx->Decode(std::span<const int32_t>(&next, 1), LogitsMode::kLast).ok());
    const std::vector<float> logits(ctx->logits(), ctx->logits() + model->hparams().n_vocab);
    if (first.empty()) {
      first = logits;
    } else {
      EXPECT_EQ(logits, first);
    }
  }
  // A smaller depth than the file's: refused, not silently recomputed.
  std::unique_ptr<Context> ctx;
  ASSERT_TRUE(Context::Create(*model, ContextParams{.n_ctx = 128, .n_batch = 32, .n_threads = 2}, &ctx).ok());
  int32_t read = -1;
  Status s = bench::PreparePrefix(*ctx, 50, Env::Default(), path, &read);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find("another prefix (70 tokens) than --depth 50"), std::string::npos) << s.ToString();
  EXPECT_EQ(ctx->n_past(), 0);

  // A larger one: the file's 70 tokens are read and extended, and the file then holds 100.
  s = bench::PreparePrefix(*ctx, 100, Env::Default(), path, &read);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(read, 70);
  EXPECT_EQ(ctx->tokens(), bench::PrefixTokens(*ctx, 100));
  ASSERT_TRUE(ctx->Decode(std::span<const int32_t>(&next, 1), LogitsMode::kLast).ok());
  const std::vector<float> extended(ctx->logits(), ctx->logits() + model->hparams().n_vocab);
  std::unique_ptr<Context> fresh;
  ASSERT_TRUE(Context::Create(*model, ContextParams{.n_ctx = 128, .n_batch = 32, .n_threads = 2}, &fresh).ok());
  ASSERT_TRUE(fresh->Decode(bench::PrefixTokens(*fresh, 100), LogitsMode::kLast).ok());
  ASSERT_TRUE(fresh->Decode(std::span<const int32_t>(&next, 1), LogitsMode::kLast).ok());
  const std::vector<float> computed(fresh->logits(), fresh->logits() + model->hparams().n_vocab);
  for (size_t i = 0; i < computed.size(); ++i) ASSERT_NEAR(extended[i], computed[i], 1e-4f) << i;
  std::unique_ptr<Context> again;
  ASSERT_TRUE(Context::Create(*model, ContextParams{.n_ctx = 128, .n_batch = 32, .n_threads = 2}, &again).ok());
  ASSERT_TRUE(bench::PreparePrefix(*again, 100, Env::Default(), path, &read).ok());
  EXPECT_EQ(read, 100);
  EXPECT_EQ(again->n_past(), 100);
}

TEST(BenchCliTest, DepthSessionIsComputedOnceThenRead) {
  const std::string path = testing::MakeTempDir() + "/prefix.session";
  const std::vector<std::string> argv = {testing::CliPath(), "bench", "-m", testing::SharedPath("models/stories260K.gguf"),
                                         "-p", "0", "-n", "2", "-r", "1", "--no-roofline", "--depth", "40",
                                         "--depth-session", path};
  auto r = testing::RunCommand(argv);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("prefix of 40 tokens: 0 read from " + path + ", 40 computed (the file now holds them all)"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.out.find("| strata | tg2@d40 |"), std::string::npos) << r.out;
  r = testing::RunCommand(argv);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("prefix of 40 tokens: 40 read from " + path + ", 0 computed, in"), std::string::npos) << r.err;
  r = testing::RunCommand({testing::CliPath(), "bench", "-m", testing::SharedPath("models/stories260K.gguf"), "-p", "0",
                           "-n", "2", "--depth-session", path});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("needs --depth"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace strata
