// Conformance of strata's block formats with ggml itself (the prebuilt
// llama.cpp libraries, through bench/.peer/ggml_types_harness): the traits
// table, dequantization and the reference quantizers bit for bit, the
// activation quantization bit for bit and the dot products within float
// summation order.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/env.h"
#include "core/fp16.h"
#include "core/tensor.h"
#include "format/gguf.h"
#include "ggml_peer.h"
#include "kernels/kernels.h"
#include "kernels/thread_pool.h"
#include "test_util.h"

namespace strata {
namespace {

// Every quantized type strata computes with.
const DType kWeightTypes[] = {DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ5_1, DType::kQ8_0, DType::kQ2_K,
                              DType::kQ3_K, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K, DType::kIQ4_NL, DType::kIQ4_XS};

std::string TypeArg(DType t) { return std::to_string(static_cast<uint32_t>(t)); }

class Harness {
 public:
  Harness() : dir_(testing::MakeTempDir()) {}

  // Runs the harness with args; paths named "@name" are files in the scratch directory.
  bool Run(std::vector<std::string> args, std::string* out = nullptr) {
    args.insert(args.begin(), testing::GgmlTypesHarness());
    for (std::string& a : args)
      if (!a.empty() && a[0] == '@') a = dir_ + "/" + a.substr(1);
    const testing::CommandResult r = testing::RunCommand(args);
    if (r.exit_code != 0) {
      ADD_FAILURE() << "ggml_types_harness " << args[1] << " failed (" << r.exit_code << "): " << r.err;
      return false;
    }
    if (out != nullptr) *out = r.out;
    return true;
  }

  void Write(const std::string& name, const void* data, size_t n) {
    ASSERT_TRUE(WriteFileAtomic(Env::Default(), dir_ + "/" + name, std::string(static_cast<const char*>(data), n)).ok());
  }
  std::string Read(const std::string& name) {
    std::string s;
    EXPECT_TRUE(Env::Default()->ReadFile(dir_ + "/" + name, UINT64_MAX, &s).ok()) << name;
    return s;
  }

 private:
  std::string dir_;
};

// Rows that exercise the quantizers' corners, each a multiple of 256
// elements: Gaussian, uniform, heavy tails, all-positive / all-negative,
// constant, all-zero and near-zero blocks, huge and tiny magnitudes, and the
// weights of a real model (stories260K).
std::vector<float> QuantizerInputs() {
  std::mt19937 rng(1234);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> x;
  const auto add = [&](int n, auto&& gen) {
    for (int i = 0; i < n; ++i) x.push_back(gen(i));
  };
  add(2048, [&](int) { return normal(rng); });
  add(1024, [&](int) { return uniform(rng); });
  add(1024, [&](int i) { return normal(rng) * (i % 97 == 0 ? 30.0f : 1.0f); });
  add(512, [&](int) { return std::fabs(normal(rng)) + 0.5f; });
  add(512, [&](int) { return -std::fabs(normal(rng)) - 0.1f; });
  add(256, [&](int) { return 0.25f; });
  add(256, [&](int) { return -3.0f; });
  add(256, [&](int) { return 0.0f; });
  add(256, [&](int i) { return i == 77 ? 1.0f : 0.0f; });
  add(256, [&](int i) { return i % 32 == 0 ? 0.0f : normal(rng); });  // zero and non-zero sub-blocks mixed
  add(512, [&](int) { return normal(rng) * 1e-12f; });
  add(256, [&](int) { return normal(rng) * 1e-17f; });  // below ggml's all-zero threshold
  add(512, [&](int) { return normal(rng) * 1e3f; });
  add(256, [&](int i) { return static_cast<float>(i % 7) - 3.0f; });  // exact small integers: ties
  add(256, [&](int i) { return (i % 32 < 16 ? 1.0f : -1.0f) * static_cast<float>(i % 16); });
  std::unique_ptr<gguf::GgufFile> f;
  if (gguf::GgufFile::Open(Env::Default(), testing::SharedPath("models/stories260K.gguf"), &f).ok()) {
    for (const char* name : {"blk.0.attn_q.weight", "blk.3.ffn_up.weight", "token_embd.weight"}) {
      const gguf::TensorInfo* t = f->FindTensor(name);
      if (t == nullptr || t->tensor.type != DType::kF32) continue;
      const auto* v = static_cast<const float*>(t->tensor.data);
      const int64_t n = std::min<int64_t>(t->tensor.elements(), 4096) / 256 * 256;
      x.insert(x.end(), v, v + n);
    }
  } else {
    ADD_FAILURE() << "stories260K.gguf not found in the shared test data";
  }
  return x;
}

// Names the first differing block of a and b (blocks of type t).
std::string FirstDifference(DType t, const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return "sizes " + std::to_string(a.size()) + " vs " + std::to_string(b.size());
  const size_t bs = static_cast<size_t>(Info(t).type_size);
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] != b[i]) {
      std::ostringstream m;
      m << "block " << i / bs << " (elements " << i / bs * Info(t).block_size << "..) byte " << i % bs
        << ": strata 0x" << std::hex << (static_cast<unsigned>(a[i]) & 0xFF) << " ggml 0x"
        << (static_cast<unsigned>(b[i]) & 0xFF);
      return m.str();
    }
  }
  return "";
}

std::string StrataQuantize(DType t, const std::vector<float>& x) {
  std::string q(*RowBytes(t, x.size()), '\0');
  kernels::QuantizeRow(t, x.data(), q.data(), static_cast<int64_t>(x.size()));
  return q;
}

TEST(GgmlTypes, TraitsTableMatchesGgml) {
  STRATA_NEED_GGML_PEER();
  Harness h;
  std::string out;
  ASSERT_TRUE(h.Run({"info"}, &out));
  std::istringstream in(out);
  uint32_t id;
  std::string name;
  int block = 0, size = 0, to_float = 0, from_float = 0;
  int n = 0;
  std::vector<uint32_t> ggml_ids;
  while (in >> id >> name >> block >> size >> to_float >> from_float) {
    ++n;
    ggml_ids.push_back(id);
    const std::optional<DTypeInfo> info = GetDTypeInfo(id);
    ASSERT_TRUE(info.has_value()) << "ggml type " << id << " (" << name << ") is missing from strata's table";
    EXPECT_EQ(info->name, name) << id;
    EXPECT_EQ(info->block_size, block) << name;
    EXPECT_EQ(info->type_size, size) << name;
    EXPECT_EQ(ParseDType(name), static_cast<DType>(id)) << name;
  }
  EXPECT_GE(n, 35);
  for (uint32_t raw = 0; raw < 256; ++raw) {
    if (!GetDTypeInfo(raw).has_value()) continue;
    EXPECT_NE(std::find(ggml_ids.begin(), ggml_ids.end(), raw), ggml_ids.end()) << "strata lists " << raw;
  }
}

// Random blocks (fp16 scales kept finite) dequantize to the same floats, bit for bit.
TEST(GgmlTypes, DequantizationIsBitIdentical) {
  STRATA_NEED_GGML_PEER();
  Harness h;
  std::mt19937 rng(99);
  for (DType t : kWeightTypes) {
    SCOPED_TRACE(DTypeName(t));
    const int64_t n = 256 * 64;
    std::string q(*RowBytes(t, n), '\0');
    for (char& c : q) c = static_cast<char>(rng());
    // The fp16 fields: an all-ones exponent (inf/nan) is cleared to a finite value.
    std::vector<size_t> halves;
    switch (t) {
      case DType::kQ4_1: case DType::kQ5_1: case DType::kQ4_K: case DType::kQ5_K: halves = {0, 2}; break;
      case DType::kQ2_K: halves = {offsetof(BlockQ2_K, d), offsetof(BlockQ2_K, dmin)}; break;
      case DType::kQ3_K: halves = {offsetof(BlockQ3_K, d)}; break;
      case DType::kQ6_K: halves = {offsetof(BlockQ6_K, d)}; break;
      default: halves = {0}; break;
    }
    const size_t bs = static_cast<size_t>(Info(t).type_size);
    for (size_t b = 0; b < q.size(); b += bs)
      for (size_t off : halves) q[b + off + 1] = static_cast<char>(q[b + off + 1] & ~0x40);  // exponent < 31
    h.Write("q.bin", q.data(), q.size());
    ASSERT_TRUE(h.Run({"dequant", TypeArg(t), std::to_string(n), "@q.bin", "@f.bin"}));
    const std::string want = h.Read("f.bin");
    std::vector<float> got(static_cast<size_t>(n));
    kernels::DequantizeRow(t, q.data(), got.data(), n);
    ASSERT_EQ(want.size(), got.size() * sizeof(float));
    for (int64_t i = 0; i < n; ++i) {
      float w;
      std::memcpy(&w, want.data() + i * sizeof(float), sizeof w);
      ASSERT_EQ(BitsFromF32(got[i]), BitsFromF32(w)) << "element " << i << ": strata " << got[i] << " ggml " << w;
    }
  }
}

// strata's quantizers write the blocks ggml's reference quantizers
// (from_float_ref) write, bit for bit.
TEST(GgmlTypes, QuantizationMatchesGgmlReference) {
  STRATA_NEED_GGML_PEER();
  Harness h;
  const std::vector<float> x = QuantizerInputs();
  h.Write("x.bin", x.data(), x.size() * sizeof(float));
  // Not IQ4_NL: ggml's quantize_row_iq4_nl_ref skips the scale search that
  // llama-quantize runs (QuantizationMatchesLlamaQuantize covers it). Q8_1:
  // the activations of Q4_1 / Q5_1.
  std::vector<DType> types;
  for (DType t : kWeightTypes)
    if (t != DType::kIQ4_NL) types.push_back(t);
  types.push_back(DType::kQ8_1);
  for (DType t : types) {
    SCOPED_TRACE(DTypeName(t));
    ASSERT_TRUE(h.Run({"quant-ref", TypeArg(t), std::to_string(x.size()), "@x.bin", "@q.bin"}));
    EXPECT_EQ(FirstDifference(t, StrataQuantize(t, x), h.Read("q.bin")), "");
  }
}

// ...and the blocks llama-quantize writes (ggml_quantize_chunk without an
// importance matrix), several rows at a time.
TEST(GgmlTypes, QuantizationMatchesLlamaQuantize) {
  STRATA_NEED_GGML_PEER();
  Harness h;
  const std::vector<float> x = QuantizerInputs();
  const int64_t n_per_row = 512, nrows = static_cast<int64_t>(x.size()) / n_per_row;
  h.Write("x.bin", x.data(), static_cast<size_t>(nrows * n_per_row) * sizeof(float));
  const std::vector<float> rows(x.begin(), x.begin() + nrows * n_per_row);
  for (DType t : kWeightTypes) {
    SCOPED_TRACE(DTypeName(t));
    ASSERT_TRUE(h.Run({"quant-chunk", TypeArg(t), std::to_string(nrows), std::to_string(n_per_row), "@x.bin", "@q.bin"}));
    EXPECT_EQ(FirstDifference(t, StrataQuantize(t, rows), h.Read("q.bin")), "");
  }
}

// MatMul's activations are quantized to the format ggml-cpu pairs with each
// weight type (bit for bit), and its products are ggml-cpu's up to float
// summation order.
TEST(GgmlTypes, DotProductsMatchGgmlCpu) {
  STRATA_NEED_GGML_PEER();
  Harness h;
  ThreadPool pool(2);
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t n = 1024, nrows = 16;
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = normal(rng);
  h.Write("x.bin", x.data(), x.size() * sizeof(float));
  for (DType t : kWeightTypes) {
    SCOPED_TRACE(DTypeName(t));
    std::vector<float> wf(static_cast<size_t>(n * nrows));
    for (float& v : wf) v = normal(rng) * 0.1f;
    const std::string w = StrataQuantize(t, wf);
    h.Write("w.bin", w.data(), w.size());
    ASSERT_TRUE(h.Run({"vec-dot", TypeArg(t), std::to_string(n), std::to_string(nrows), "@w.bin", "@x.bin", "@y.bin",
                       "@xq.bin"}));
    const std::string xq = h.Read("xq.bin");
    const std::optional<DType> act = [&]() -> std::optional<DType> {
      for (DType a : {DType::kQ8_0, DType::kQ8_1, DType::kQ8_K})
        if (xq.size() == *RowBytes(a, n)) return a;
      return std::nullopt;
    }();
    ASSERT_TRUE(act.has_value()) << "activation row of " << xq.size() << " bytes";
    EXPECT_EQ(FirstDifference(*act, StrataQuantize(*act, x), xq), "") << "activations " << DTypeName(*act);

    Tensor wt;
    wt.type = t;
    wt.ne = {n, nrows, 1, 1};
    wt.data = w.data();
    std::vector<float> got(static_cast<size_t>(nrows));
    kernels::MatMul(wt, x.data(), 1, got.data(), pool, kernels::Path::kScalar);
    const std::string want = h.Read("y.bin");
    ASSERT_EQ(want.size(), got.size() * sizeof(float));
    std::vector<float> deq(static_cast<size_t>(n));
    for (int64_t r = 0; r < nrows; ++r) {
      float ref;
      std::memcpy(&ref, want.data() + r * sizeof(float), sizeof ref);
      kernels::DequantizeRow(t, w.data() + r * w.size() / nrows, deq.data(), n);
      double magnitude = 0;
      for (int64_t i = 0; i < n; ++i) magnitude += std::fabs(static_cast<double>(deq[i]) * x[i]);
      EXPECT_NEAR(got[r], ref, 1e-5 * magnitude) << "row " << r;
    }
  }
}

}  // namespace
}  // namespace strata
