#include "model/quantize.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/env.h"
#include "kernels/kernels.h"
#include "model/gguf.h"
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

bool Converted(const gguf::TensorInfo& t, DType target) {
  return t.n_dims == 2 && t.name.size() > 7 && t.name.ends_with(".weight") &&
         t.tensor.ne[0] % Info(target).block_size == 0;
}

std::vector<float> RowF32(const Tensor& t, int64_t r) {
  std::vector<float> out(static_cast<size_t>(t.cols()));
  kernels::DequantizeRow(t.type, t.row(r), out.data(), t.cols());
  return out;
}

// Largest error the format allows for element x of a 32-element block whose
// largest magnitude is amax (fp16 rounding of the scale included).
float ErrorBound(DType t, float x, float amax) {
  switch (t) {
    case DType::kQ8_0: return amax / 254.0f * 1.001f + amax / 1024.0f;
    case DType::kQ4_0: return amax / 8.0f * 1.001f + amax / 256.0f;
    default: return std::fabs(x) / 2048.0f + 6e-8f;  // f16: half an ulp, subnormal spacing
  }
}

class QuantizeTypeTest : public ::testing::TestWithParam<DType> {
 protected:
  std::string dir_ = testing::MakeTempDir();
};

TEST_P(QuantizeTypeTest, ConvertsWeightsAndKeepsEverythingElse) {
  const DType type = GetParam();
  const std::string out = dir_ + "/out.gguf";
  uint64_t last_done = 0, last_total = 0;
  ASSERT_TRUE(QuantizeModel(Env::Default(), Stories(), out, type, 3,
                            [&](uint64_t done, uint64_t total) {
                              EXPECT_GE(done, last_done);
                              last_done = done;
                              last_total = total;
                            })
                  .ok());
  EXPECT_EQ(last_done, last_total);
  EXPECT_GT(last_total, 0u);

  auto in = OpenOrDie(Env::Default(), Stories());
  auto q = OpenOrDie(Env::Default(), out);
  ASSERT_TRUE(in && q);

  // Metadata: same keys and values in order, except the file type (and the
  // quantization version, appended for quantized types).
  EXPECT_EQ(q->GetInt("general.file_type"), static_cast<int64_t>(*LlamaFileType(type)));
  if (type != DType::kF16) {
    EXPECT_EQ(q->GetInt("general.quantization_version"), 2);
  }
  size_t k = 0;
  for (const gguf::KeyValue& kv : in->metadata()) {
    ASSERT_LT(k, q->metadata().size());
    EXPECT_EQ(q->metadata()[k].key, kv.key);
    if (kv.key != "general.file_type") {
      EXPECT_TRUE(SameValue(q->metadata()[k].value, kv.value)) << kv.key;
    }
    ++k;
  }

  ASSERT_EQ(q->tensors().size(), in->tensors().size());
  int n_converted = 0;
  for (size_t i = 0; i < in->tensors().size(); ++i) {
    const gguf::TensorInfo& a = in->tensors()[i];
    const gguf::TensorInfo& b = q->tensors()[i];
    SCOPED_TRACE(a.name);
    ASSERT_EQ(b.name, a.name);
    EXPECT_EQ(b.n_dims, a.n_dims);
    EXPECT_EQ(b.tensor.ne, a.tensor.ne);
    ASSERT_EQ(a.tensor.type, DType::kF32);  // stories260K is all F32
    if (!Converted(a, type)) {
      EXPECT_EQ(b.tensor.type, DType::kF32);
      ASSERT_EQ(b.nbytes, a.nbytes);
      EXPECT_EQ(std::memcmp(b.tensor.data, a.tensor.data, a.nbytes), 0);
      continue;
    }
    ++n_converted;
    EXPECT_EQ(b.tensor.type, type);
    std::vector<uint8_t> ref(*RowBytes(type, static_cast<uint64_t>(a.tensor.cols())));
    for (int64_t r = 0; r < a.tensor.rows(); ++r) {
      std::vector<float> orig = RowF32(a.tensor, r);
      std::vector<float> got = RowF32(b.tensor, r);
      // Exactly what the reference row quantizer produces...
      kernels::QuantizeRow(type, orig.data(), ref.data(), a.tensor.cols());
      ASSERT_EQ(std::memcmp(ref.data(), b.tensor.row(r), ref.size()), 0) << "row " << r;
      // ...and within the format's error bound of the original.
      for (size_t blk = 0; blk < orig.size(); blk += 32) {
        float amax = 0;
        for (size_t j = blk; j < blk + 32 && j < orig.size(); ++j) amax = std::max(amax, std::fabs(orig[j]));
        for (size_t j = blk; j < blk + 32 && j < orig.size(); ++j)
          ASSERT_LE(std::fabs(got[j] - orig[j]), ErrorBound(type, orig[j], amax)) << "row " << r << " col " << j;
      }
    }
  }
  // token_embd, output and the 5 layers' attention matrices at least.
  EXPECT_GE(n_converted, 2 + 5 * 4);
  EXPECT_EQ(q->FindTensor("token_embd.weight")->tensor.type, type);
  const gguf::TensorInfo* norm = q->FindTensor("output_norm.weight");
  ASSERT_NE(norm, nullptr);
  EXPECT_EQ(norm->tensor.type, DType::kF32);
}

INSTANTIATE_TEST_SUITE_P(Types, QuantizeTypeTest, ::testing::Values(DType::kQ8_0, DType::kQ4_0, DType::kF16),
                         [](const auto& info) { return std::string(DTypeName(info.param)); });

TEST(QuantizeTest, RejectsOtherTargetTypes) {
  const std::string out = testing::MakeTempDir() + "/out.gguf";
  for (DType t : {DType::kF32, DType::kBF16, DType::kQ4_1, DType::kQ4_K}) {
    Status s = QuantizeModel(Env::Default(), Stories(), out, t, 1);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << DTypeName(t);
    EXPECT_THAT(s.message(), HasSubstr("q8_0, q4_0, f16"));
  }
  EXPECT_FALSE(Env::Default()->FileExists(out));
}

TEST(QuantizeTest, RejectsZeroThreads) {
  Status s = QuantizeModel(Env::Default(), Stories(), testing::MakeTempDir() + "/o.gguf", DType::kQ8_0, 0);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
}

TEST(QuantizeTest, MissingInputIsNotFound) {
  const std::string dir = testing::MakeTempDir();
  Status s = QuantizeModel(Env::Default(), dir + "/nope.gguf", dir + "/out.gguf", DType::kQ8_0, 1);
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.ToString();
  EXPECT_THAT(s.message(), HasSubstr("nope.gguf"));
  EXPECT_FALSE(Env::Default()->FileExists(dir + "/out.gguf"));
}

TEST(QuantizeTest, NotAGgufFileIsCorrupt) {
  const std::string dir = testing::MakeTempDir();
  ASSERT_TRUE(WriteFileAtomic(Env::Default(), dir + "/junk.gguf", "this is not a model").ok());
  Status s = QuantizeModel(Env::Default(), dir + "/junk.gguf", dir + "/out.gguf", DType::kQ8_0, 1);
  EXPECT_EQ(s.code(), StatusCode::kCorrupt) << s.ToString();
}

TEST(QuantizeTest, RefusesRequantizingAndCopiesSameType) {
  const std::string dir = testing::MakeTempDir();
  ASSERT_TRUE(QuantizeModel(Env::Default(), Stories(), dir + "/q8.gguf", DType::kQ8_0, 2).ok());

  Status s = QuantizeModel(Env::Default(), dir + "/q8.gguf", dir + "/q4.gguf", DType::kQ4_0, 2);
  EXPECT_EQ(s.code(), StatusCode::kUnsupported);
  EXPECT_THAT(s.message(), HasSubstr("already quantized as q8_0"));
  EXPECT_FALSE(Env::Default()->FileExists(dir + "/q4.gguf"));

  // q8_0 -> q8_0 copies every tensor unchanged.
  ASSERT_TRUE(QuantizeModel(Env::Default(), dir + "/q8.gguf", dir + "/q8b.gguf", DType::kQ8_0, 2).ok());
  auto a = OpenOrDie(Env::Default(), dir + "/q8.gguf");
  auto b = OpenOrDie(Env::Default(), dir + "/q8b.gguf");
  ASSERT_TRUE(a && b);
  ASSERT_EQ(a->tensors().size(), b->tensors().size());
  for (size_t i = 0; i < a->tensors().size(); ++i) {
    const gguf::TensorInfo& x = a->tensors()[i];
    const gguf::TensorInfo& y = b->tensors()[i];
    EXPECT_EQ(x.tensor.type, y.tensor.type);
    ASSERT_EQ(x.nbytes, y.nbytes);
    EXPECT_EQ(std::memcmp(x.tensor.data, y.tensor.data, x.nbytes), 0) << x.name;
  }
}

TEST(QuantizeTest, F16ModelQuantizesLikeF32) {
  const std::string dir = testing::MakeTempDir();
  ASSERT_TRUE(QuantizeModel(Env::Default(), Stories(), dir + "/f16.gguf", DType::kF16, 2).ok());
  ASSERT_TRUE(QuantizeModel(Env::Default(), dir + "/f16.gguf", dir + "/q4.gguf", DType::kQ4_0, 2).ok());
  auto f16 = OpenOrDie(Env::Default(), dir + "/f16.gguf");
  auto q4 = OpenOrDie(Env::Default(), dir + "/q4.gguf");
  ASSERT_TRUE(f16 && q4);
  const Tensor& src = f16->FindTensor("token_embd.weight")->tensor;
  const Tensor& dst = q4->FindTensor("token_embd.weight")->tensor;
  ASSERT_EQ(src.type, DType::kF16);
  ASSERT_EQ(dst.type, DType::kQ4_0);
  std::vector<uint8_t> ref(*RowBytes(DType::kQ4_0, static_cast<uint64_t>(src.cols())));
  for (int64_t r = 0; r < src.rows(); ++r) {
    std::vector<float> row = RowF32(src, r);
    kernels::QuantizeRow(DType::kQ4_0, row.data(), ref.data(), src.cols());
    ASSERT_EQ(std::memcmp(ref.data(), dst.row(r), ref.size()), 0) << "row " << r;
  }
}

TEST(QuantizeTest, WorksThroughAnyEnv) {
  std::unique_ptr<Env> mem = NewMemEnv();
  std::string bytes;
  ASSERT_TRUE(Env::Default()->ReadFile(Stories(), UINT64_MAX, &bytes).ok());
  ASSERT_TRUE(WriteFileAtomic(mem.get(), "/m/in.gguf", bytes).ok());
  ASSERT_TRUE(QuantizeModel(mem.get(), "/m/in.gguf", "/m/out.gguf", DType::kQ8_0, 2).ok());
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
  EXPECT_EQ(LlamaFileType(DType::kQ4_K), std::nullopt);
}

// ---- through the CLI ----

TEST(QuantizeCliTest, QuantizesAModel) {
  const std::string out = testing::MakeTempDir() + "/q4.gguf";
  testing::CommandResult r =
      testing::RunCommand({testing::CliPath(), "quantize", Stories(), out, "--type", "q4_0", "--threads", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");  // no progress bar when stderr is not a terminal
  auto q = OpenOrDie(Env::Default(), out);
  ASSERT_TRUE(q);
  EXPECT_EQ(q->FindTensor("token_embd.weight")->tensor.type, DType::kQ4_0);
  EXPECT_EQ(q->GetInt("general.file_type"), 2);
}

TEST(QuantizeCliTest, BadTypeFailsWithOneLine) {
  const std::string out = testing::MakeTempDir() + "/x.gguf";
  for (const char* type : {"q5_k", "bf16", "banana"}) {
    testing::CommandResult r = testing::RunCommand({testing::CliPath(), "quantize", Stories(), out, "--type", type});
    EXPECT_NE(r.exit_code, 0) << type;
    EXPECT_THAT(r.err, HasSubstr("q8_0, q4_0, f16")) << type;
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
  EXPECT_THAT(r.out, HasSubstr("--threads"));
}

}  // namespace
}  // namespace strata
