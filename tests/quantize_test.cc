#include "model/quantize.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/env.h"
#include "format/gguf.h"
#include "format/gguf_writer.h"
#include "ggml_peer.h"
#include "kernels/kernels.h"
#include "model/quant_mix.h"
#include "model/synth.h"
#include "test_util.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

std::string Stories() { return testing::SharedPath("models/stories260K.gguf"); }

std::unique_ptr<gguf::GgufFile> OpenOrDie(Env* env, const std::string& path) {
  std::unique_ptr<gguf::GgufFile> f;
  Status s = gguf::GgufFile::Open(env, path, &f);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return f;
}

bool SameValue(const gguf::Value& a, const gguf::Value& b) {
  if (a.type != b.type || a.i != b.i || a.u != b.u || a.b != b.b || a.str != b.str || a.elem_type != b.elem_type ||
      a.arr.size() != b.arr.size())
    return false;
  if (!(a.f == b.f || (std::isnan(a.f) && std::isnan(b.f)))) return false;
  for (size_t k = 0; k < a.arr.size(); ++k)
    if (!SameValue(a.arr[k], b.arr[k])) return false;
  return true;
}

std::vector<float> RowF32(const Tensor& t, int64_t r) {
  std::vector<float> out(static_cast<size_t>(t.cols()));
  kernels::DequantizeRow(t.type, t.row(r), out.data(), t.cols());
  return out;
}

QuantizeOptions Options(FileType f, int threads = 2) { return QuantizeOptions{f, threads, false}; }

// An F32 model whose matrices split into 256-element blocks (stories260K's
// 64-wide rows all take fallbacks), with 8 layers (the K mixes treat layers
// 0, 3, 6, 7 differently) and 4 query heads per KV head.
std::string SynthF32(const std::string& dir) {
  SynthSpec spec;
  spec.n_layer = 8;
  spec.n_embd = 256;
  spec.n_ff = 256;
  spec.n_head = 4;
  spec.n_head_kv = 1;
  spec.n_vocab = 300;
  spec.type = DType::kF32;
  spec.seed = 5;
  const std::string path = dir + "/synth-f32.gguf";
  EXPECT_TRUE(SynthesizeModel(Env::Default(), spec, path, 2).ok());
  return path;
}

// stories260K without output.weight: the classifier is tied to token_embd.
std::string TiedStories(const std::string& dir) {
  auto in = OpenOrDie(Env::Default(), Stories());
  gguf::GgufWriter w(static_cast<uint32_t>(in->alignment()));
  for (const gguf::KeyValue& kv : in->metadata()) w.SetValue(kv.key, kv.value);
  for (const gguf::TensorInfo& t : in->tensors()) {
    if (t.name == "output.weight") continue;
    EXPECT_TRUE(w.AddTensor(t.name, t.tensor.type,
                            std::vector<int64_t>(t.tensor.ne.begin(), t.tensor.ne.begin() + t.n_dims), t.tensor.data)
                    .ok());
  }
  const std::string path = dir + "/tied.gguf";
  EXPECT_TRUE(w.Write(Env::Default(), path).ok());
  return path;
}

class QuantizeFileTypeTest : public ::testing::TestWithParam<FileType> {
 protected:
  std::string dir_ = testing::MakeTempDir();
};

// Whatever the plan, every tensor of the output is the input's tensor in its
// planned type: copied byte for byte, or each row exactly what the reference
// row quantizer makes of the dequantized input row.
TEST_P(QuantizeFileTypeTest, WritesThePlannedTypesAndKeepsEverythingElse) {
  const FileType ftype = GetParam();
  const std::string in_path = SynthF32(dir_), out = dir_ + "/out.gguf";
  uint64_t last_done = 0, last_total = 0;
  QuantizeResult result;
  ASSERT_TRUE(QuantizeModel(Env::Default(), in_path, out, Options(ftype, 3), &result,
                            [&](uint64_t done, uint64_t total) {
                              EXPECT_GE(done, last_done);
                              last_done = done;
                              last_total = total;
                            })
                  .ok());
  EXPECT_EQ(last_done, last_total);
  EXPECT_EQ(last_total, result.bytes_out);

  auto in = OpenOrDie(Env::Default(), in_path);
  auto q = OpenOrDie(Env::Default(), out);
  ASSERT_TRUE(in && q);
  // Metadata: the input's, in order, then the quantization version and the file type.
  ASSERT_EQ(q->metadata().size(), in->metadata().size() + 1);  // synth writes general.file_type
  size_t k = 0;
  for (const gguf::KeyValue& kv : in->metadata()) {
    if (kv.key == "general.file_type") continue;
    EXPECT_EQ(q->metadata()[k].key, kv.key);
    EXPECT_TRUE(SameValue(q->metadata()[k].value, kv.value)) << kv.key;
    ++k;
  }
  EXPECT_EQ(q->metadata()[k].key, "general.quantization_version");
  EXPECT_EQ(q->GetInt("general.quantization_version"), 2);
  EXPECT_EQ(q->metadata()[k + 1].key, "general.file_type");
  EXPECT_EQ(q->GetInt("general.file_type"), static_cast<int64_t>(ftype));

  // Tensors: in llama.cpp's order, as planned.
  ASSERT_EQ(q->tensors().size(), in->tensors().size());
  ASSERT_EQ(result.tensors.size(), in->tensors().size());
  for (size_t i = 0; i + 1 < q->tensors().size(); ++i)
    EXPECT_TRUE(LlamaTensorLess(q->tensors()[i].name, q->tensors()[i + 1].name)) << q->tensors()[i].name;
  int n_converted = 0;
  for (size_t i = 0; i < result.tensors.size(); ++i) {
    const QuantizedTensor& plan = result.tensors[i];
    const gguf::TensorInfo& b = q->tensors()[i];
    const gguf::TensorInfo& a = *in->FindTensor(plan.name);
    SCOPED_TRACE(plan.name);
    ASSERT_EQ(b.name, plan.name);
    EXPECT_EQ(b.tensor.ne, a.tensor.ne);
    EXPECT_EQ(b.tensor.type, plan.to);
    EXPECT_EQ(b.nbytes, plan.bytes_out);
    if (plan.to == plan.from) {
      ASSERT_EQ(b.nbytes, a.nbytes);
      EXPECT_EQ(std::memcmp(b.tensor.data, a.tensor.data, a.nbytes), 0);
      continue;
    }
    ++n_converted;
    std::vector<uint8_t> ref(*RowBytes(plan.to, static_cast<uint64_t>(a.tensor.cols())));
    for (int64_t r = 0; r < a.tensor.rows(); ++r) {
      std::vector<float> orig = RowF32(a.tensor, r);
      kernels::QuantizeRow(plan.to, orig.data(), ref.data(), a.tensor.cols());
      ASSERT_EQ(std::memcmp(ref.data(), b.tensor.row(r), ref.size()), 0) << "row " << r;
    }
  }
  EXPECT_EQ(n_converted, 2 + 8 * 7);  // token_embd, output and every layer's 7 matrices
  EXPECT_EQ(q->FindTensor("output_norm.weight")->tensor.type, DType::kF32);
  EXPECT_EQ(q->FindTensor("blk.0.attn_norm.weight")->tensor.type, DType::kF32);
  EXPECT_TRUE(result.requantized.empty());
}

INSTANTIATE_TEST_SUITE_P(FileTypes, QuantizeFileTypeTest,
                         ::testing::Values(FileType::kQ8_0, FileType::kQ4_0, FileType::kF16, FileType::kQ4_K_M,
                                           FileType::kQ5_K_M, FileType::kQ6_K, FileType::kIQ4_XS),
                         [](const auto& info) { return std::string(FileTypeName(info.param)); });

// The mixes on a file whose shapes take no fallbacks (8 layers, GQA 4).
TEST(QuantizeMixTest, KMixesFollowLlamaCpp) {
  const std::string dir = testing::MakeTempDir();
  auto in = OpenOrDie(Env::Default(), SynthF32(dir));
  ASSERT_TRUE(in);
  const auto types = [&](FileType f) {
    QuantizeResult plan;
    EXPECT_TRUE(PlanQuantization(*in, Options(f), &plan).ok());
    std::map<std::string, DType> m;
    for (const QuantizedTensor& t : plan.tensors) m[t.name] = t.to;
    return m;
  };
  // Q4_K_M: the classifier Q6_K; attn_v and ffn_down Q6_K in layers 0, 3, 6, 7 (first / last eighth, every third).
  std::map<std::string, DType> m = types(FileType::kQ4_K_M);
  EXPECT_EQ(m["output.weight"], DType::kQ6_K);
  EXPECT_EQ(m["token_embd.weight"], DType::kQ4_K);
  for (int l = 0; l < 8; ++l) {
    const bool more = l == 0 || l == 3 || l == 6 || l == 7;
    const std::string p = "blk." + std::to_string(l) + ".";
    EXPECT_EQ(m[p + "attn_v.weight"], more ? DType::kQ6_K : DType::kQ4_K) << l;
    EXPECT_EQ(m[p + "ffn_down.weight"], more ? DType::kQ6_K : DType::kQ4_K) << l;
    EXPECT_EQ(m[p + "attn_q.weight"], DType::kQ4_K) << l;
    EXPECT_EQ(m[p + "ffn_up.weight"], DType::kQ4_K) << l;
    EXPECT_EQ(m[p + "attn_norm.weight"], DType::kF32) << l;
  }
  // Q4_0 and Q6_K: the classifier Q6_K, everything else the default; Q8_0 keeps the classifier Q8_0.
  m = types(FileType::kQ4_0);
  EXPECT_EQ(m["output.weight"], DType::kQ6_K);
  EXPECT_EQ(m["blk.0.attn_v.weight"], DType::kQ4_0);
  EXPECT_EQ(types(FileType::kQ8_0)["output.weight"], DType::kQ8_0);
  EXPECT_EQ(types(FileType::kQ6_K)["blk.0.ffn_down.weight"], DType::kQ6_K);
  // IQ4_XS with 4 query heads per KV head: attn_v Q5_K; ffn_down of the first eighth Q5_K.
  m = types(FileType::kIQ4_XS);
  EXPECT_EQ(m["blk.5.attn_v.weight"], DType::kQ5_K);
  EXPECT_EQ(m["blk.0.ffn_down.weight"], DType::kQ5_K);
  EXPECT_EQ(m["blk.1.ffn_down.weight"], DType::kIQ4_XS);
  // --pure: the default type everywhere but the norms.
  QuantizeResult pure;
  ASSERT_TRUE(PlanQuantization(*in, QuantizeOptions{FileType::kQ4_K_M, 1, true}, &pure).ok());
  for (const QuantizedTensor& t : pure.tensors)
    EXPECT_EQ(t.to, t.name.find("norm") != std::string::npos ? DType::kF32 : DType::kQ4_K) << t.name;
}

// stories260K's 64-wide rows do not split into 256-element blocks and its
// 172-wide ffn_down not even into 32s: llama.cpp's fallbacks.
TEST(QuantizeMixTest, FallbacksForRowLengths) {
  auto in = OpenOrDie(Env::Default(), Stories());
  ASSERT_TRUE(in);
  QuantizeResult plan;
  ASSERT_TRUE(PlanQuantization(*in, Options(FileType::kQ4_K_M), &plan).ok());
  std::map<std::string, QuantizedTensor> m;
  for (const QuantizedTensor& t : plan.tensors) m[t.name] = t;
  EXPECT_EQ(m["blk.1.attn_q.weight"].to, DType::kQ5_0);  // Q4_K -> Q5_0
  EXPECT_TRUE(m["blk.1.attn_q.weight"].fallback);
  EXPECT_EQ(m["blk.4.attn_v.weight"].to, DType::kQ8_0);  // last of 5 layers: Q6_K -> Q8_0
  EXPECT_EQ(m["blk.0.attn_v.weight"].to, DType::kQ5_0);
  EXPECT_EQ(m["blk.1.ffn_down.weight"].to, DType::kF16);  // 172 columns: not even 32-element blocks
  EXPECT_EQ(m["output.weight"].to, DType::kQ8_0);  // the classifier's rows do not fit Q4_K: Q8_0
  EXPECT_FALSE(m["output.weight"].fallback);
  ASSERT_TRUE(PlanQuantization(*in, Options(FileType::kQ5_K_M), &plan).ok());
  for (const QuantizedTensor& t : plan.tensors)
    if (t.name == "blk.1.attn_q.weight") EXPECT_EQ(t.to, DType::kQ5_1);  // Q5_K -> Q5_1
  ASSERT_TRUE(PlanQuantization(*in, Options(FileType::kQ4_0), &plan).ok());
  for (const QuantizedTensor& t : plan.tensors)
    if (t.name == "output.weight") EXPECT_EQ(t.to, DType::kQ8_0);  // Q6_K -> Q8_0
}

TEST(QuantizeMixTest, TiedClassifierTakesTheOutputType) {
  const std::string dir = testing::MakeTempDir();
  auto in = OpenOrDie(Env::Default(), TiedStories(dir));
  ASSERT_TRUE(in);
  QuantizeResult plan;
  ASSERT_TRUE(PlanQuantization(*in, Options(FileType::kQ4_0), &plan).ok());
  for (const QuantizedTensor& t : plan.tensors)
    if (t.name == "token_embd.weight") EXPECT_EQ(t.to, DType::kQ8_0);  // Q6_K, whose 256 blocks fall back to Q8_0
}

TEST(QuantizeMixTest, FileTypeNames) {
  EXPECT_EQ(ParseFileType("Q4_K_M"), FileType::kQ4_K_M);
  EXPECT_EQ(ParseFileType("q4_k"), FileType::kQ4_K_M);
  EXPECT_EQ(ParseFileType("q5_k"), FileType::kQ5_K_M);
  EXPECT_EQ(ParseFileType("q6_k"), FileType::kQ6_K);
  EXPECT_EQ(ParseFileType("iq4_xs"), FileType::kIQ4_XS);
  EXPECT_EQ(ParseFileType("q4_k_x"), std::nullopt);
  EXPECT_EQ(ParseFileType("iq2_xxs"), std::nullopt);  // needs an importance matrix and a type strata cannot run
  EXPECT_STREQ(FileTypeName(FileType::kQ5_K_S), "q5_k_s");
  EXPECT_THAT(FileTypeNames(), HasSubstr("q4_k_m"));
  EXPECT_EQ(static_cast<uint32_t>(FileType::kQ4_K_M), 15u);  // LLAMA_FTYPE_MOSTLY_Q4_K_M
}

TEST(QuantizeTest, RejectsZeroThreads) {
  Status s = QuantizeModel(Env::Default(), Stories(), testing::MakeTempDir() + "/o.gguf", Options(FileType::kQ8_0, 0));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
}

TEST(QuantizeTest, MissingInputIsNotFound) {
  const std::string dir = testing::MakeTempDir();
  Status s = QuantizeModel(Env::Default(), dir + "/nope.gguf", dir + "/out.gguf", Options(FileType::kQ8_0));
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.ToString();
  EXPECT_THAT(s.message(), HasSubstr("nope.gguf"));
  EXPECT_FALSE(Env::Default()->FileExists(dir + "/out.gguf"));
}

TEST(QuantizeTest, NotAGgufFileIsCorrupt) {
  const std::string dir = testing::MakeTempDir();
  ASSERT_TRUE(WriteFileAtomic(Env::Default(), dir + "/junk.gguf", "this is not a model").ok());
  Status s = QuantizeModel(Env::Default(), dir + "/junk.gguf", dir + "/out.gguf", Options(FileType::kQ8_0));
  EXPECT_EQ(s.code(), StatusCode::kCorrupt) << s.ToString();
}

TEST(QuantizeTest, MissingBlockCountIsCorrupt) {
  const std::string dir = testing::MakeTempDir();
  gguf::GgufWriter w;
  w.SetString("general.architecture", "llama");
  const std::vector<float> x(64 * 64, 0.5f);
  ASSERT_TRUE(w.AddTensor("blk.0.attn_q.weight", DType::kF32, {64, 64}, x.data()).ok());
  ASSERT_TRUE(w.Write(Env::Default(), dir + "/in.gguf").ok());
  Status s = QuantizeModel(Env::Default(), dir + "/in.gguf", dir + "/out.gguf", Options(FileType::kQ4_K_M));
  EXPECT_EQ(s.code(), StatusCode::kCorrupt) << s.ToString();
  EXPECT_THAT(s.message(), HasSubstr("llama.block_count"));
  EXPECT_FALSE(Env::Default()->FileExists(dir + "/out.gguf"));
}

// Quantized input is dequantized and requantized (and reported); tensors
// already in their planned type are copied unchanged.
TEST(QuantizeTest, RequantizesQuantizedInputAndCopiesSameType) {
  const std::string dir = testing::MakeTempDir();
  ASSERT_TRUE(QuantizeModel(Env::Default(), Stories(), dir + "/q8.gguf", Options(FileType::kQ8_0)).ok());
  QuantizeResult r;
  ASSERT_TRUE(QuantizeModel(Env::Default(), dir + "/q8.gguf", dir + "/q4.gguf", Options(FileType::kQ4_0), &r).ok());
  EXPECT_FALSE(r.requantized.empty());
  auto q8 = OpenOrDie(Env::Default(), dir + "/q8.gguf");
  auto q4 = OpenOrDie(Env::Default(), dir + "/q4.gguf");
  ASSERT_TRUE(q8 && q4);
  const Tensor& src = q8->FindTensor("blk.2.attn_q.weight")->tensor;
  const Tensor& dst = q4->FindTensor("blk.2.attn_q.weight")->tensor;
  ASSERT_EQ(src.type, DType::kQ8_0);
  ASSERT_EQ(dst.type, DType::kQ4_0);
  std::vector<uint8_t> ref(*RowBytes(DType::kQ4_0, static_cast<uint64_t>(src.cols())));
  for (int64_t r = 0; r < src.rows(); ++r) {
    std::vector<float> row = RowF32(src, r);
    kernels::QuantizeRow(DType::kQ4_0, row.data(), ref.data(), src.cols());
    ASSERT_EQ(std::memcmp(ref.data(), dst.row(r), ref.size()), 0) << "row " << r;
  }
  // The classifier stays Q8_0 (Q6_K's fallback for 64 columns): copied.
  EXPECT_EQ(std::find(r.requantized.begin(), r.requantized.end(), "output.weight"), r.requantized.end());
  const gguf::TensorInfo* a = q8->FindTensor("output.weight");
  const gguf::TensorInfo* b = q4->FindTensor("output.weight");
  ASSERT_EQ(b->tensor.type, DType::kQ8_0);
  EXPECT_EQ(std::memcmp(a->tensor.data, b->tensor.data, a->nbytes), 0);

  // q8_0 -> q8_0 copies every tensor unchanged.
  ASSERT_TRUE(QuantizeModel(Env::Default(), dir + "/q8.gguf", dir + "/q8b.gguf", Options(FileType::kQ8_0), &r).ok());
  EXPECT_TRUE(r.requantized.empty());
  auto q8b = OpenOrDie(Env::Default(), dir + "/q8b.gguf");
  ASSERT_TRUE(q8b);
  for (const gguf::TensorInfo& x : q8->tensors()) {
    const gguf::TensorInfo* y = q8b->FindTensor(x.name);
    ASSERT_NE(y, nullptr);
    EXPECT_EQ(x.tensor.type, y->tensor.type);
    ASSERT_EQ(x.nbytes, y->nbytes);
    EXPECT_EQ(std::memcmp(x.tensor.data, y->tensor.data, x.nbytes), 0) << x.name;
  }
}

TEST(QuantizeTest, UnsupportedSourceTypeIsNamed) {
  const std::string dir = testing::MakeTempDir();
  gguf::GgufWriter w;
  w.SetString("general.architecture", "llama");
  w.SetU32("llama.block_count", 1);
  const std::vector<uint8_t> iq2(66 * 4, 0);  // iq2_xxs: 256 weights per 66 bytes
  ASSERT_TRUE(w.AddTensor("blk.0.attn_q.weight", DType::kIQ2_XXS, {256, 4}, iq2.data()).ok());
  ASSERT_TRUE(w.Write(Env::Default(), dir + "/in.gguf").ok());
  Status s = QuantizeModel(Env::Default(), dir + "/in.gguf", dir + "/out.gguf", Options(FileType::kQ4_0));
  EXPECT_EQ(s.code(), StatusCode::kUnsupported) << s.ToString();
  EXPECT_THAT(s.message(), HasSubstr("blk.0.attn_q.weight is iq2_xxs"));
}

TEST(QuantizeTest, WorksThroughAnyEnv) {
  std::unique_ptr<Env> mem = NewMemEnv();
  std::string bytes;
  ASSERT_TRUE(Env::Default()->ReadFile(Stories(), UINT64_MAX, &bytes).ok());
  ASSERT_TRUE(WriteFileAtomic(mem.get(), "/m/in.gguf", bytes).ok());
  ASSERT_TRUE(QuantizeModel(mem.get(), "/m/in.gguf", "/m/out.gguf", Options(FileType::kQ8_0)).ok());
  EXPECT_FALSE(Env::Default()->FileExists("/m/out.gguf"));
  auto q = OpenOrDie(mem.get(), "/m/out.gguf");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->FindTensor("output.weight")->tensor.type, DType::kQ8_0);
}

TEST(QuantizeTest, LlamaFileTypes) {
  EXPECT_EQ(LlamaFileType(DType::kF32), 0u);
  EXPECT_EQ(LlamaFileType(DType::kF16), 1u);
  EXPECT_EQ(LlamaFileType(DType::kQ4_0), 2u);
  EXPECT_EQ(LlamaFileType(DType::kQ8_0), 7u);
  EXPECT_EQ(LlamaFileType(DType::kBF16), 32u);
  EXPECT_EQ(LlamaFileType(DType::kQ4_K), 15u);  // MOSTLY_Q4_K_M
  EXPECT_EQ(LlamaFileType(DType::kQ6_K), 18u);
  EXPECT_EQ(LlamaFileType(DType::kQ8_K), std::nullopt);
}

// ---- against llama.cpp's own llama_model_quantize ----

// The whole output file is byte-identical to llama-quantize's: metadata,
// tensor order, types and blocks, padding.
void ExpectSameFileAsLlamaQuantize(const std::string& in, FileType f, const std::string& dir) {
  SCOPED_TRACE(std::string(FileTypeName(f)) + " from " + in);
  const std::string ours = dir + "/strata.gguf", theirs = dir + "/llama.gguf";
  ASSERT_TRUE(QuantizeModel(Env::Default(), in, ours, Options(f)).ok());
  const testing::CommandResult r = testing::RunCommand(
      {testing::GgmlTypesHarness(), "model-quantize", in, theirs, std::to_string(static_cast<uint32_t>(f))});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string a, b;
  ASSERT_TRUE(Env::Default()->ReadFile(ours, UINT64_MAX, &a).ok());
  ASSERT_TRUE(Env::Default()->ReadFile(theirs, UINT64_MAX, &b).ok());
  if (a == b) return;
  // Name the first tensor that differs, for the failure message.
  auto fa = OpenOrDie(Env::Default(), ours), fb = OpenOrDie(Env::Default(), theirs);
  ASSERT_TRUE(fa && fb);
  for (const gguf::TensorInfo& x : fb->tensors()) {
    const gguf::TensorInfo* y = fa->FindTensor(x.name);
    ASSERT_NE(y, nullptr) << x.name;
    EXPECT_EQ(DTypeName(y->tensor.type), std::string(DTypeName(x.tensor.type))) << x.name;
    if (y->tensor.type == x.tensor.type && y->nbytes == x.nbytes)
      EXPECT_EQ(std::memcmp(x.tensor.data, y->tensor.data, x.nbytes), 0) << x.name << " data differs";
  }
  ADD_FAILURE() << "files differ (" << a.size() << " vs " << b.size() << " bytes)";
}

TEST(QuantizeLlamaCppTest, StoriesByteIdenticalInEveryFileType) {
  STRATA_NEED_GGML_PEER();
  const std::string dir = testing::MakeTempDir();
  for (FileType f : {FileType::kAllF32, FileType::kF16, FileType::kBF16, FileType::kQ8_0, FileType::kQ4_0,
                     FileType::kQ4_1, FileType::kQ5_0, FileType::kQ5_1, FileType::kQ2_K, FileType::kQ3_K_S,
                     FileType::kQ3_K_M, FileType::kQ3_K_L, FileType::kQ4_K_S, FileType::kQ4_K_M, FileType::kQ5_K_S,
                     FileType::kQ5_K_M, FileType::kQ6_K, FileType::kIQ4_NL, FileType::kIQ4_XS})
    ExpectSameFileAsLlamaQuantize(Stories(), f, dir);
  ExpectSameFileAsLlamaQuantize(TiedStories(dir), FileType::kQ4_K_M, dir);
}

TEST(QuantizeLlamaCppTest, KQuantMixesByteIdentical) {
  STRATA_NEED_GGML_PEER();
  const std::string dir = testing::MakeTempDir();
  const std::string f32 = SynthF32(dir);
  for (FileType f : {FileType::kQ4_K_M, FileType::kQ5_K_M, FileType::kQ6_K, FileType::kQ4_0, FileType::kQ8_0,
                     FileType::kQ2_K, FileType::kQ3_K_M, FileType::kQ4_K_S, FileType::kIQ4_XS})
    ExpectSameFileAsLlamaQuantize(f32, f, dir);
  // From F16: dequantized exactly, so the same blocks.
  const std::string f16 = dir + "/synth-f16.gguf";
  ASSERT_TRUE(QuantizeModel(Env::Default(), f32, f16, Options(FileType::kF16)).ok());
  ExpectSameFileAsLlamaQuantize(f16, FileType::kQ4_K_M, dir);
}

// ---- through the CLI ----

TEST(QuantizeCliTest, QuantizesAModelAndPrintsSizes) {
  const std::string out = testing::MakeTempDir() + "/q4.gguf";
  testing::CommandResult r =
      testing::RunCommand({testing::CliPath(), "quantize", Stories(), out, "--type", "Q4_K_M", "--threads", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");  // no progress bar when stderr is not a terminal
  EXPECT_THAT(r.out, HasSubstr("q4_k_m: 48 tensors"));
  EXPECT_THAT(r.out, HasSubstr("model size: 1.12 MiB (32.00 bits per weight) -> 0.28 MiB (7.92 bits per weight)"));
  auto q = OpenOrDie(Env::Default(), out);
  ASSERT_TRUE(q);
  EXPECT_EQ(q->GetInt("general.file_type"), 15);
}

TEST(QuantizeCliTest, WarnsWhenRequantizing) {
  const std::string dir = testing::MakeTempDir();
  ASSERT_TRUE(QuantizeModel(Env::Default(), Stories(), dir + "/q8.gguf", Options(FileType::kQ8_0)).ok());
  testing::CommandResult r =
      testing::RunCommand({testing::CliPath(), "quantize", dir + "/q8.gguf", dir + "/q4.gguf", "--type", "q4_0"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("warning: "));
  EXPECT_THAT(r.err, HasSubstr("already quantized"));
  EXPECT_THAT(r.err, HasSubstr("q8_0"));
}

TEST(QuantizeCliTest, BadTypeFailsWithOneLine) {
  const std::string out = testing::MakeTempDir() + "/x.gguf";
  for (const char* type : {"q7_k", "iq2_xxs", "banana"}) {
    testing::CommandResult r = testing::RunCommand({testing::CliPath(), "quantize", Stories(), out, "--type", type});
    EXPECT_NE(r.exit_code, 0) << type;
    EXPECT_THAT(r.err, HasSubstr("q4_k_m")) << type;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  EXPECT_FALSE(Env::Default()->FileExists(out));
}

TEST(QuantizeCliTest, MissingInputFailsWithOneLine) {
  const std::string dir = testing::MakeTempDir();
  testing::CommandResult r =
      testing::RunCommand({testing::CliPath(), "quantize", dir + "/missing.gguf", dir + "/o.gguf", "--type", "q8_0"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("missing.gguf"));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST(QuantizeCliTest, Help) {
  testing::CommandResult r = testing::RunCommand({testing::CliPath(), "quantize", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("--type"));
  EXPECT_THAT(r.out, HasSubstr("--pure"));
  EXPECT_THAT(r.out, HasSubstr("q4_k_m"));
  EXPECT_THAT(r.out, HasSubstr("--threads"));
}

}  // namespace
}  // namespace strata
