// Models holding each weight type load and run, and every weight type's bad
// input is refused with a clear error: truncated data, row lengths that do
// not split into blocks, absurd shapes, types strata cannot compute with.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/env.h"
#include "engine/context.h"
#include "format/gguf.h"
#include "format/gguf_writer.h"
#include "model/model.h"
#include "model/quantize.h"
#include "model/synth.h"
#include "test_util.h"

namespace strata {
namespace {

using ::testing::HasSubstr;

struct TypeCase {
  DType type;
  FileType ftype;  // a file type whose --pure output is all `type`
};
const TypeCase kTypeCases[] = {
    {DType::kQ4_1, FileType::kQ4_1},     {DType::kQ5_0, FileType::kQ5_0},   {DType::kQ5_1, FileType::kQ5_1},
    {DType::kIQ4_NL, FileType::kIQ4_NL}, {DType::kQ2_K, FileType::kQ2_K},   {DType::kQ3_K, FileType::kQ3_K_M},
    {DType::kQ4_K, FileType::kQ4_K_M},   {DType::kQ5_K, FileType::kQ5_K_M}, {DType::kQ6_K, FileType::kQ6_K},
    {DType::kIQ4_XS, FileType::kIQ4_XS},
};

std::unique_ptr<Model> Load(const std::string& path) {
  ModelLoadOptions o;
  o.path = path;
  std::unique_ptr<Model> m;
  const Status s = Model::Load(Env::Default(), o, &m);
  EXPECT_TRUE(s.ok()) << path << ": " << s.ToString();
  return m;
}

// Logits of every position of tokens.
std::vector<std::vector<float>> AllLogits(const Model& m, const std::vector<int32_t>& tokens) {
  std::unique_ptr<Context> ctx;
  EXPECT_TRUE(Context::Create(m, ContextParams{64, 512, 2}, &ctx).ok());
  EXPECT_TRUE(ctx->Decode(tokens, LogitsMode::kAll).ok());
  std::vector<std::vector<float>> out;
  for (size_t p = 0; p < tokens.size(); ++p)
    out.emplace_back(ctx->logits(static_cast<int32_t>(p)), ctx->logits(static_cast<int32_t>(p)) + m.hparams().n_vocab);
  return out;
}

// A model with every matrix in type T runs, and its logits are those of the
// same weights dequantized to F32 up to the activations' quantization (Q8_0,
// Q8_1 or Q8_K, as llama.cpp).
TEST(WeightTypesTest, ModelsOfEveryTypeLoadAndRun) {
  const std::string dir = testing::MakeTempDir();
  SynthSpec spec;
  spec.n_layer = 2;
  spec.n_embd = 256;
  spec.n_ff = 512;
  spec.n_head = 4;
  spec.n_head_kv = 2;
  spec.n_vocab = 300;
  spec.type = DType::kF32;
  spec.seed = 11;
  const std::string f32 = dir + "/f32.gguf";
  ASSERT_TRUE(SynthesizeModel(Env::Default(), spec, f32, 2).ok());
  const std::vector<int32_t> prompt = {1, 50, 120, 7, 260, 33, 298, 5, 77, 140, 141, 9, 12, 250, 3, 100};
  for (const TypeCase& c : kTypeCases) {
    SCOPED_TRACE(DTypeName(c.type));
    const std::string q = dir + "/q.gguf", dq = dir + "/dq.gguf";
    ASSERT_TRUE(QuantizeModel(Env::Default(), f32, q, QuantizeOptions{c.ftype, 2, /*pure=*/true}).ok());
    ASSERT_TRUE(QuantizeModel(Env::Default(), q, dq, QuantizeOptions{FileType::kAllF32, 2, false}).ok());
    std::unique_ptr<Model> mq = Load(q), mdq = Load(dq);
    ASSERT_TRUE(mq && mdq);
    EXPECT_EQ(mq->weights().layers[1].ffn_down.w.type, c.type);
    EXPECT_EQ(mq->weights().token_embd.type, c.type);
    EXPECT_EQ(mq->weights().output.w.type, c.type);
    EXPECT_EQ(mdq->weights().layers[1].ffn_down.w.type, DType::kF32);
    const auto a = AllLogits(*mq, prompt), b = AllLogits(*mdq, prompt);
    int same_top = 0;
    double diff = 0, sq = 0;
    for (size_t p = 0; p < prompt.size(); ++p) {
      size_t ta = 0, tb = 0;
      for (size_t i = 0; i < a[p].size(); ++i) {
        ASSERT_TRUE(std::isfinite(a[p][i])) << "pos " << p;
        if (a[p][i] > a[p][ta]) ta = i;
        if (b[p][i] > b[p][tb]) tb = i;
        diff += std::fabs(a[p][i] - b[p][i]);
        sq += static_cast<double>(b[p][i]) * b[p][i];
      }
      same_top += ta == tb;
    }
    const double n = static_cast<double>(prompt.size() * a[0].size());
    const double rel = diff / n / std::sqrt(sq / n);
    std::printf("[   INFO   ] %-6s mean |logit diff| %.4f of the logits' rms, top-1 same at %d/%zu positions\n",
                DTypeName(c.type), rel, same_top, prompt.size());
    EXPECT_LT(rel, 0.03);
    EXPECT_GE(same_top, 14);
  }
}

// ---- bad input ----

// Raw GGUF v3 bytes with one tensor (alignment 32), for shapes the writer refuses.
std::string OneTensorGguf(uint32_t type, std::vector<uint64_t> ne, uint64_t data_bytes) {
  std::string s;
  const auto put = [&](const void* p, size_t n) { s.append(static_cast<const char*>(p), n); };
  const auto u32 = [&](uint32_t v) { put(&v, 4); };
  const auto u64 = [&](uint64_t v) { put(&v, 8); };
  s += "GGUF";
  u32(3);
  u64(1);  // tensors
  u64(0);  // metadata
  const std::string name = "blk.0.attn_q.weight";
  u64(name.size());
  s += name;
  u32(static_cast<uint32_t>(ne.size()));
  for (uint64_t n : ne) u64(n);
  u32(type);
  u64(0);  // offset
  s.resize((s.size() + 31) / 32 * 32, '\0');
  s.append(static_cast<size_t>(data_bytes), '\x11');
  return s;
}

Status Parse(const std::string& bytes) {
  std::unique_ptr<gguf::GgufFile> f;
  return gguf::GgufFile::Parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), &f);
}

TEST(WeightTypesTest, TruncatedDataIsCorrupt) {
  for (const TypeCase& c : kTypeCases) {
    SCOPED_TRACE(DTypeName(c.type));
    const uint64_t block = static_cast<uint64_t>(Info(c.type).block_size);
    const uint64_t bytes = *RowBytes(c.type, 4 * block) * 3;
    const uint32_t raw = static_cast<uint32_t>(c.type);
    EXPECT_TRUE(Parse(OneTensorGguf(raw, {4 * block, 3}, bytes)).ok());
    const Status s = Parse(OneTensorGguf(raw, {4 * block, 3}, bytes - 1));  // one byte short
    EXPECT_EQ(s.code(), StatusCode::kCorrupt) << s.ToString();
    EXPECT_THAT(s.message(), HasSubstr("past the end"));
  }
}

TEST(WeightTypesTest, RowsNotWholeBlocksAreCorrupt) {
  for (const TypeCase& c : kTypeCases) {
    SCOPED_TRACE(DTypeName(c.type));
    const uint64_t cols = static_cast<uint64_t>(Info(c.type).block_size) + 16;
    const Status s = Parse(OneTensorGguf(static_cast<uint32_t>(c.type), {cols, 2}, 4096));
    EXPECT_EQ(s.code(), StatusCode::kCorrupt) << s.ToString();
    EXPECT_THAT(s.message(), HasSubstr("not a multiple of the " + std::string(DTypeName(c.type)) + " block size " +
                                       std::to_string(Info(c.type).block_size)));
  }
}

TEST(WeightTypesTest, AbsurdShapesAreCorrupt) {
  for (const TypeCase& c : kTypeCases) {
    SCOPED_TRACE(DTypeName(c.type));
    const uint32_t raw = static_cast<uint32_t>(c.type);
    const uint64_t block = static_cast<uint64_t>(Info(c.type).block_size);
    // Bytes beyond 2^64, elements beyond 2^63, and a sane count of elements whose data is absent.
    for (const std::vector<uint64_t>& ne : std::vector<std::vector<uint64_t>>{
             {block << 40, uint64_t{1} << 30}, {block, uint64_t{1} << 62, 4}, {block * 1024, 1024, 1024}}) {
      const Status s = Parse(OneTensorGguf(raw, ne, 256));
      EXPECT_EQ(s.code(), StatusCode::kCorrupt) << s.ToString();
    }
  }
}

// A model file valid as GGUF but not as a model: a matrix of a new type with
// the wrong shape, and a matrix of a type strata cannot compute with.
TEST(WeightTypesTest, ModelValidationNamesTheTensor) {
  const std::string dir = testing::MakeTempDir();
  SynthSpec spec;
  spec.n_layer = 1;
  spec.n_embd = 256;
  spec.n_ff = 256;
  spec.n_head = 4;
  spec.n_head_kv = 4;
  spec.n_vocab = 300;
  spec.type = DType::kF32;
  const std::string f32 = dir + "/f32.gguf";
  ASSERT_TRUE(SynthesizeModel(Env::Default(), spec, f32, 1).ok());
  std::unique_ptr<gguf::GgufFile> in;
  ASSERT_TRUE(gguf::GgufFile::Open(Env::Default(), f32, &in).ok());
  const auto rewrite = [&](const std::string& path, DType q_type, std::vector<int64_t> q_ne) {
    gguf::GgufWriter w;
    for (const gguf::KeyValue& kv : in->metadata()) w.SetValue(kv.key, kv.value);
    std::vector<uint8_t> q_bytes(*RowBytes(q_type, static_cast<uint64_t>(q_ne[0])) * static_cast<uint64_t>(q_ne[1]));
    for (const gguf::TensorInfo& t : in->tensors()) {
      if (t.name == "blk.0.attn_q.weight") {
        ASSERT_TRUE(w.AddTensor(t.name, q_type, q_ne, q_bytes.data()).ok());
      } else {
        ASSERT_TRUE(w.AddTensor(t.name, t.tensor.type,
                                std::vector<int64_t>(t.tensor.ne.begin(), t.tensor.ne.begin() + t.n_dims),
                                t.tensor.data)
                        .ok());
      }
    }
    ASSERT_TRUE(w.Write(Env::Default(), path).ok());
  };
  ModelLoadOptions o;
  std::unique_ptr<Model> m;
  for (const TypeCase& c : kTypeCases) {
    SCOPED_TRACE(DTypeName(c.type));
    o.path = dir + "/shape.gguf";
    rewrite(o.path, c.type, {256, 512});
    Status s = Model::Load(Env::Default(), o, &m);
    EXPECT_EQ(s.code(), StatusCode::kCorrupt) << s.ToString();
    EXPECT_THAT(s.message(), HasSubstr("blk.0.attn_q.weight has shape [256, 512, 1, 1], expected [256, 256]"));
  }
  for (DType t : {DType::kIQ2_XXS, DType::kIQ3_S, DType::kTQ2_0, DType::kQ8_K}) {
    SCOPED_TRACE(DTypeName(t));
    o.path = dir + "/type.gguf";
    rewrite(o.path, t, {256, 256});
    const Status s = Model::Load(Env::Default(), o, &m);
    EXPECT_EQ(s.code(), StatusCode::kUnsupported) << s.ToString();
    EXPECT_THAT(s.message(), HasSubstr(std::string("blk.0.attn_q.weight has type ") + DTypeName(t)));
    EXPECT_THAT(s.message(), HasSubstr("q4_K"));  // the supported types are listed
  }
}

// inspect prints the metadata and tensor table of any GGUF, including types
// strata cannot compute with.
TEST(WeightTypesTest, InspectShowsEveryGgmlType) {
  const std::string path = testing::MakeTempDir() + "/all.gguf";
  gguf::GgufWriter w;
  w.SetString("general.architecture", "llama");
  std::vector<std::vector<uint8_t>> data;
  int n = 0;
  for (uint32_t raw = 0; raw < 64; ++raw) {
    const std::optional<DTypeInfo> info = GetDTypeInfo(raw);
    if (!info) continue;
    const DType t = static_cast<DType>(raw);
    const int64_t cols = info->block_size * 2;
    data.emplace_back(*RowBytes(t, static_cast<uint64_t>(cols)) * 3, 0);
    ASSERT_TRUE(w.AddTensor(std::string("t.") + info->name, t, {cols, 3}, data.back().data()).ok());
    ++n;
  }
  ASSERT_TRUE(w.Write(Env::Default(), path).ok());
  const testing::CommandResult r = testing::RunCommand({testing::CliPath(), "inspect", path});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("general.architecture"));
  for (const char* name : {"iq2_xxs", "iq1_m", "tq1_0", "mxfp4", "nvfp4", "q1_0", "q4_K", "iq4_xs", "q8_K"})
    EXPECT_THAT(r.out, HasSubstr(std::string("t.") + name)) << name;
  EXPECT_GE(n, 35);
}

}  // namespace
}  // namespace strata
