// Tests of the benchmark's pure parts (bandwidth kernel, bytes-per-token
// accounting, result rows) and of `strata bench` output end to end. No timing
// assertions: only structure and arithmetic.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <vector>

#include "bench/read_bandwidth.h"
#include "bench/report.h"
#include "bench/roofline.h"
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

TEST(ReadBandwidthTest, MeasuresEveryRepetition) {
  bench::ReadBandwidth bw;
  ASSERT_TRUE(bench::MeasureReadBandwidth(2, 3, 4 << 20, &bw).ok());
  EXPECT_EQ(bw.threads, 2);
  EXPECT_EQ(bw.reps, 3);
  EXPECT_EQ(bw.buffer_bytes, uint64_t{4} << 20);
  EXPECT_GT(bw.median, 0);
  EXPECT_LE(bw.median, bw.max);
}

TEST(ReadBandwidthTest, CombineRoundsTakesMediansOverTheProbes) {
  const uint64_t buf = uint64_t{1} << 30;
  const std::vector<bench::ReadBandwidth> rounds = {
      {.median = 30e9, .max = 35e9, .threads = 2, .reps = 5, .buffer_bytes = buf},
      {.median = 40e9, .max = 46e9, .threads = 2, .reps = 5, .buffer_bytes = buf},
      {.median = 20e9, .max = 21e9, .threads = 2, .reps = 5, .buffer_bytes = buf},
  };
  const bench::ReadBandwidth c = bench::CombineRounds(rounds);
  EXPECT_DOUBLE_EQ(c.max, 35e9);
  EXPECT_DOUBLE_EQ(c.median, 30e9);
  EXPECT_EQ(c.reps, 15);
  EXPECT_EQ(c.rounds, 3);
  EXPECT_EQ(c.threads, 2);
  EXPECT_EQ(c.buffer_bytes, buf);
}

TEST(ReadBandwidthTest, RejectsBuffersThatDoNotSplitIntoWholeBlocks) {
  bench::ReadBandwidth bw;
  EXPECT_EQ(bench::MeasureReadBandwidth(2, 1, 256, &bw).code(), StatusCode::kInvalidArgument);  // 128 per thread
  EXPECT_EQ(bench::MeasureReadBandwidth(1, 1, 0, &bw).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bench::MeasureReadBandwidth(0, 1, 256, &bw).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bench::MeasureReadBandwidth(1, 0, 256, &bw).code(), StatusCode::kInvalidArgument);
}

// A 2-layer model: n_embd 64, n_kv 32, n_ff 128, vocab 100; Q8_0 matrices
// (64 cols = 2 blocks of 34 bytes = 68 bytes per row; 128 cols = 136).
LlamaWeights SmallWeights() {
  LlamaWeights w;
  w.token_embd = Matrix(DType::kQ8_0, 64, 100);
  w.output_norm = Matrix(DType::kF32, 64, 1);
  w.output = Matrix(DType::kF16, 64, 100);
  for (int i = 0; i < 2; ++i) {
    LayerWeights l;
    l.attn_norm = l.ffn_norm = Matrix(DType::kF32, 64, 1);
    l.wq = l.wo = Matrix(DType::kQ8_0, 64, 64);
    l.wk = l.wv = Matrix(DType::kQ8_0, 64, 32);
    l.ffn_gate = l.ffn_up = Matrix(DType::kQ8_0, 64, 128);
    l.ffn_down = Matrix(DType::kQ8_0, 128, 64);
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
  LlamaWeights w = SmallWeights();
  LlamaWeights tied = w;
  tied.output = tied.token_embd;  // Q8_0 [64, 100], the same bytes
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

bench::RunInfo SampleRun() {
  bench::RunInfo run;
  run.model_name = "m";
  run.model_type = "q8_0";
  run.kernel_path = "avx512";
  run.threads = 2;
  run.reps = 3;
  run.bytes_per_token = 1'000'000'000;
  run.bandwidth = {.median = 18e9, .max = 20e9, .threads = 2, .reps = 10, .buffer_bytes = uint64_t{1} << 30};
  return run;
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
  EXPECT_FALSE(rows[1].contains("peer"));

  const nlohmann::json& tg = rows[2];
  EXPECT_DOUBLE_EQ(tg["roofline_fraction"].get<double>(), 0.5);  // 10 t/s x 1 GB / 20 GB/s (the max)
  EXPECT_DOUBLE_EQ(tg["bandwidth_bytes_per_s"].get<double>(), 20e9);
  EXPECT_DOUBLE_EQ(tg["bandwidth_median_bytes_per_s"].get<double>(), 18e9);
  EXPECT_DOUBLE_EQ(tg["ratio_vs_llamacpp"].get<double>(), 2.5);
  const nlohmann::json& peer = rows[3];
  EXPECT_DOUBLE_EQ(peer["roofline_fraction"].get<double>(), 0.2);
  EXPECT_DOUBLE_EQ(peer["peak_rss_mib"].get<double>(), 512);
  EXPECT_DOUBLE_EQ(peer["load_s"].get<double>(), 0.2);  // median of the peer's loads
  EXPECT_EQ(peer["peer"]["llamacpp"]["commit"], "0ad4a86");
  EXPECT_FALSE(peer.contains("kernel_path"));
}

TEST(ReportTest, NoBandwidthNoRoofline) {
  bench::RunInfo run = SampleRun();
  run.bandwidth = {};
  for (const nlohmann::json& r : bench::ResultRows(run, SampleResults())) {
    EXPECT_FALSE(r.contains("roofline_fraction"));
    EXPECT_FALSE(r.contains("bandwidth_bytes_per_s"));
  }
}

TEST(ReportTest, MarkdownHasTheBandwidthAndOneLinePerRow) {
  const bench::RunInfo run = SampleRun();
  const std::string md = bench::MarkdownReport(run, bench::ResultRows(run, SampleResults()));
  EXPECT_NE(md.find("best 20.0 GB/s, median 18.0 GB/s"), std::string::npos) << md;
  EXPECT_NE(md.find("0.931 GiB"), std::string::npos) << md;  // 1e9 bytes per token
  EXPECT_NE(md.find("| strata | pp512 | 200.00 | 100.00 | 300.00 | 2.00x |  | 1536 | 0.250 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| strata | tg128 | 10.00 | 9.00 | 11.00 | 2.50x | 50% | 1536 | 0.250 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| llamacpp | tg128 | 4.00 | 3.00 | 5.00 |  | 20% | 512 | 0.200 |"), std::string::npos) << md;
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

TEST(BenchCliTest, BandwidthProbedAfterEveryGenerationRepetition) {
  const auto r = testing::RunCommand({testing::CliPath(), "bench", "-m", testing::SharedPath("models/stories260K.gguf"),
                                      "-p", "8", "-n", "4", "-r", "3", "--bandwidth-reps", "1", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json rows = nlohmann::json::parse(r.out);
  ASSERT_EQ(rows.size(), 2u) << r.out;
  EXPECT_FALSE(rows[0].contains("roofline_fraction")) << rows[0].dump();  // pp: no roofline
  EXPECT_EQ(rows[1]["bandwidth_rounds"].get<int>(), 3) << rows[1].dump();
  EXPECT_GT(rows[1]["roofline_fraction"].get<double>(), 0) << rows[1].dump();
  // The probe's 1 GiB buffer is not the engine's: stories260K needs a few MiB.
  EXPECT_LT(rows[1]["peak_rss_mib"].get<double>(), 512) << rows[1].dump();
}

TEST(BenchCliTest, MarkdownWithoutPeer) {
  const auto r = testing::RunCommand({testing::CliPath(), "bench", "-m", testing::SharedPath("models/stories260K.gguf"),
                                      "-p", "8", "-n", "4", "-r", "1", "--no-roofline"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("| engine | test | t/s median |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| strata | pp8 |"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| strata | tg4 |"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("llamacpp"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("memory read bandwidth"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace strata
