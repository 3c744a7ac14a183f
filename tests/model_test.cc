// Model loading: repacking the matrices for the fastest kernel path
// (ModelLoadOptions::pack_weights) changes where weights live, never results.
#include "model/model.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "core/env.h"
#include "format/gguf.h"
#include "format/gguf_writer.h"
#include "engine/context.h"
#include "kernels/kernels.h"
#include "model/synth.h"
#include "test_util.h"

namespace strata {
namespace {

std::string SynthModel(DType type) {
  SynthSpec s;
  s.n_layer = 2;
  s.n_embd = 128;
  s.n_ff = 320;
  s.n_head = 4;
  s.n_head_kv = 2;
  s.n_vocab = 300;
  s.n_ctx = 128;
  s.type = type;
  s.seed = 11;
  const std::string path = testing::MakeTempDir() + "/m.gguf";
  EXPECT_TRUE(SynthesizeModel(Env::Default(), s, path, 2).ok());
  return path;
}

std::unique_ptr<Model> Load(const std::string& path, bool pack) {
  ModelLoadOptions o;
  o.path = path;
  o.pack_weights = pack;
  std::unique_ptr<Model> m;
  const Status s = Model::Load(Env::Default(), o, &m);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return m;
}

// Logits of a 9-token prefill (every row) followed by 4 single-token decodes.
std::vector<float> DecodeLogits(const Model& m) {
  std::unique_ptr<Context> ctx;
  ContextParams p;
  p.n_ctx = 64;
  p.n_batch = 16;
  p.n_threads = 2;
  EXPECT_TRUE(Context::Create(m, p, &ctx).ok());
  const int32_t n_vocab = m.hparams().n_vocab;
  const std::vector<int32_t> prompt = {1, 17, 42, 299, 5, 88, 123, 7, 250};
  std::vector<float> out;
  EXPECT_TRUE(ctx->Decode(prompt, LogitsMode::kAll).ok());
  for (size_t i = 0; i < prompt.size(); ++i)
    out.insert(out.end(), ctx->logits(static_cast<int32_t>(i)), ctx->logits(static_cast<int32_t>(i)) + n_vocab);
  for (int32_t t : {3, 99, 200, 64}) {
    const int32_t tok[1] = {t};
    EXPECT_TRUE(ctx->Decode(tok, LogitsMode::kLast).ok());
    out.insert(out.end(), ctx->logits(), ctx->logits() + n_vocab);
  }
  return out;
}

class ModelPackTest : public ::testing::TestWithParam<DType> {};

TEST_P(ModelPackTest, PackedWeightsGiveIdenticalLogits) {
  const std::string path = SynthModel(GetParam());
  auto packed = Load(path, true);
  auto rows = Load(path, false);
  ASSERT_TRUE(packed && rows);
  const bool packs = kernels::PackedMatrixBytes(rows->weights().layers[0].wq.w) > 0;
  EXPECT_EQ(packed->weights().layers[0].wq.w.layout, packs ? TensorLayout::kPanels32 : TensorLayout::kRows);
  EXPECT_EQ(rows->weights().layers[0].wq.w.layout, TensorLayout::kRows);
  const std::vector<float> a = DecodeLogits(*packed), b = DecodeLogits(*rows);
  ASSERT_EQ(a.size(), b.size());
  // Packed float decode sums in the prefill GEMM's order instead of along
  // rows (kernels.h): the 9 prefill rows stay identical, the 4 decoded ones
  // agree to float rounding. Quantized logits are identical throughout.
  const size_t prefill = 9 * static_cast<size_t>(packed->hparams().n_vocab);
  const bool float_decode = GetParam() != DType::kQ8_0 && GetParam() != DType::kQ4_0;
  size_t differing = 0;
  float max_diff = 0, max_abs = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (float_decode && i >= prefill) {
      max_diff = std::max(max_diff, std::abs(a[i] - b[i]));
      max_abs = std::max(max_abs, std::abs(b[i]));
    } else {
      differing += a[i] != b[i];
    }
  }
  EXPECT_EQ(differing, 0u) << "of " << a.size() << " logits";
  EXPECT_LE(max_diff, 1e-4f * max_abs);
}

INSTANTIATE_TEST_SUITE_P(Types, ModelPackTest,
                         ::testing::Values(DType::kQ8_0, DType::kQ4_0, DType::kF16, DType::kBF16, DType::kF32),
                         [](const auto& info) { return std::string(DTypeName(info.param)); });

// A file written with general.alignment 1 whose tensors land off a 4-byte
// boundary is refused with a clear error (the kernels read its data in place).
TEST(ModelTest, MisalignedTensorDataIsRefused) {
  std::unique_ptr<gguf::GgufFile> in;
  ASSERT_TRUE(gguf::GgufFile::Open(Env::Default(), SynthModel(DType::kF32), &in).ok());
  const std::string dir = testing::MakeTempDir();
  for (const std::string& pad : {"", "x", "xx", "xxx"}) {  // one of these moves the data off 4 bytes
    gguf::GgufWriter w(1);
    for (const gguf::KeyValue& kv : in->metadata())
      if (kv.key != "general.alignment") w.SetValue(kv.key, kv.value);
    w.SetString("strata.test.pad", pad);
    for (const gguf::TensorInfo& t : in->tensors()) {
      ASSERT_TRUE(w.AddTensor(t.name, t.tensor.type,
                              std::vector<int64_t>(t.tensor.ne.begin(), t.tensor.ne.begin() + t.n_dims), t.tensor.data)
                      .ok());
    }
    const std::string path = dir + "/a1-" + std::to_string(pad.size()) + ".gguf";
    ASSERT_TRUE(w.Write(Env::Default(), path).ok());
    std::unique_ptr<gguf::GgufFile> out;
    ASSERT_TRUE(gguf::GgufFile::Open(Env::Default(), path, &out).ok());
    ModelLoadOptions o;
    o.path = path;
    std::unique_ptr<Model> m;
    const Status s = Model::Load(Env::Default(), o, &m);
    if (out->data_offset() % 4 == 0) {
      EXPECT_TRUE(s.ok()) << s.ToString();
    } else {
      EXPECT_EQ(s.code(), StatusCode::kCorrupt) << pad.size();
      EXPECT_NE(s.message().find("not 4-byte aligned"), std::string::npos) << s.message();
    }
  }
}

}  // namespace
}  // namespace strata
