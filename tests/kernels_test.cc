// Kernel tests: every SIMD path against the scalar reference, and the scalar
// reference against the definitions (double precision) it implements.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <memory>
#include <vector>

#include "core/dtype.h"
#include "core/fp16.h"
#include "core/tensor.h"
#include "kernels/attention.h"
#include "kernels/kernels.h"
#include "kernels/thread_pool.h"

namespace strata::kernels {
namespace {

std::vector<float> RandomFloats(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& f : v) f = dist(rng);
  return v;
}

// Paths other than scalar, with a note for those this machine cannot run.
std::vector<Path> SimdPathsToTest() {
  std::vector<Path> paths;
  const std::vector<Path> available = AvailablePaths();
  for (Path p : {Path::kAvx2, Path::kAvx512, Path::kAmx}) {
    if (std::find(available.begin(), available.end(), p) != available.end()) {
      paths.push_back(p);
    } else {
      std::printf("[ SKIPPED  ] path %s: not supported by this CPU/OS\n", PathName(p));
    }
  }
  return paths;
}

// ---------------------------------------------------------------------------
// CPU detection

TEST(KernelCpu, PathsAreConsistent) {
  const std::vector<Path> paths = AvailablePaths();
  ASSERT_FALSE(paths.empty());
  EXPECT_EQ(paths.front(), Path::kScalar);
  EXPECT_TRUE(std::is_sorted(paths.begin(), paths.end()));
  EXPECT_NE(std::find(paths.begin(), paths.end(), BestPath()), paths.end());
  const CpuFeatures& f = DetectCpu();
  const bool has = [&](Path p) { return std::find(paths.begin(), paths.end(), p) != paths.end(); }(Path::kAvx512);
  EXPECT_EQ(has, f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx512vnni && f.avx2 && f.fma && f.f16c);
  if (f.amx_int8) {
    EXPECT_TRUE(f.amx_tile);
  }
  EXPECT_STREQ(PathName(Path::kScalar), "scalar");
  EXPECT_STREQ(PathName(Path::kAvx2), "avx2");
  EXPECT_STREQ(PathName(Path::kAvx512), "avx512");
  EXPECT_STREQ(PathName(Path::kAmx), "amx");
}

// ---------------------------------------------------------------------------
// Element conversions

TEST(KernelConvert, Fp16KnownValues) {
  struct Case {
    float f;
    uint16_t h;
  };
  const Case cases[] = {
      {0.0f, 0x0000},        {-0.0f, 0x8000},          {1.0f, 0x3C00},           {-2.0f, 0xC000},
      {0.5f, 0x3800},        {65504.0f, 0x7BFF},       {0.099975586f, 0x2E66},   {5.9604645e-8f, 0x0001},
      {6.1035156e-5f, 0x0400}, {std::numeric_limits<float>::infinity(), 0x7C00}, {1.0e6f, 0x7C00},
      {1.00048828125f, 0x3C00},  // halfway between 1 and 1+2^-10: ties to even
      {1.00146484375f, 0x3C02},  // halfway between 1+2^-10 and 1+2^-9: ties to even
  };
  for (const Case& c : cases) {
    EXPECT_EQ(F32ToFp16(c.f), c.h) << c.f;
    if (c.f != 1.0e6f && c.f != 1.00048828125f && c.f != 1.00146484375f) {
      EXPECT_EQ(Fp16ToF32(c.h), c.f);
    }
  }
  EXPECT_TRUE(std::isnan(Fp16ToF32(F32ToFp16(std::nanf("")))));
}

// QuantizeRow/DequantizeRow(F16) take the F16C path on CPUs that have it: the
// same bits as the scalar conversion for every non-NaN input, including
// subnormals, overflow and ties, and for every half on the way back.
TEST(KernelConvert, F16RowsMatchScalarConversion) {
  std::vector<float> x = RandomFloats(1000, 21, 4.0f);
  uint32_t bits = 1;
  for (int i = 0; i < 4000; ++i) {  // random bit patterns cover every exponent
    bits = bits * 1664525u + 1013904223u;
    const float f = F32FromBits(bits);
    if (!std::isnan(f)) x.push_back(f);
  }
  for (float f : {0.0f, -0.0f, 65504.0f, 65520.0f, 1.0e6f, -1.0e6f, 5.9604645e-8f, 2.9802322e-8f, 1.00048828125f,
                  1.00146484375f, 6.0975552e-5f, std::numeric_limits<float>::infinity()})
    x.push_back(f);
  x.push_back(1.5f);  // odd length: a scalar tail
  std::vector<uint16_t> h(x.size());
  QuantizeRow(DType::kF16, x.data(), h.data(), static_cast<int64_t>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(h[i], F32ToFp16(x[i])) << i << " " << x[i];

  std::vector<uint16_t> all(1 << 16);
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint16_t>(i);
  std::vector<float> back(all.size());
  DequantizeRow(DType::kF16, all.data(), back.data(), static_cast<int64_t>(all.size()));
  for (size_t i = 0; i < all.size(); ++i) {
    const float want = Fp16ToF32(all[i]);
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(back[i])) << i;
    } else {
      ASSERT_EQ(BitsFromF32(back[i]), BitsFromF32(want)) << i;
    }
  }
}

TEST(KernelConvert, Bf16KnownValues) {
  EXPECT_EQ(F32ToBf16(1.0f), 0x3F80);
  EXPECT_EQ(F32ToBf16(-2.0f), 0xC000);
  EXPECT_EQ(F32ToBf16(3.140625f), 0x4049);
  EXPECT_EQ(F32ToBf16(F32FromBits(0x3F808000u)), 0x3F80);  // tie: to even
  EXPECT_EQ(F32ToBf16(F32FromBits(0x3F818000u)), 0x3F82);  // tie: to even
  EXPECT_EQ(F32ToBf16(F32FromBits(0x3F808001u)), 0x3F81);
  EXPECT_EQ(Bf16ToF32(0x4049), 3.140625f);
  EXPECT_TRUE(std::isnan(Bf16ToF32(F32ToBf16(std::nanf("")))));
}

// ---------------------------------------------------------------------------
// Quantize -> dequantize round trips, with each format's error bound.

std::vector<float> RoundTrip(DType t, const std::vector<float>& x) {
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<uint8_t> q(*RowBytes(t, static_cast<uint64_t>(n)));
  QuantizeRow(t, x.data(), q.data(), n);
  std::vector<float> back(x.size());
  DequantizeRow(t, q.data(), back.data(), n);
  return back;
}

// Rows exercising quantization corners: random, an all-zero block, a constant
// block, tiny and huge magnitudes, a block whose extreme is negative.
std::vector<float> QuantTestRow() {
  std::vector<float> x = RandomFloats(32 * 8, 7);
  for (int j = 0; j < 32; ++j) x[32 + j] = 0.0f;
  for (int j = 0; j < 32; ++j) x[64 + j] = 0.25f;
  for (int j = 0; j < 32; ++j) x[96 + j] *= 1e-3f;
  for (int j = 0; j < 32; ++j) x[128 + j] *= 1e3f;
  x[160 + 5] = -9.0f;
  x[192 + 9] = 9.0f;
  x[192 + 10] = -9.0f;  // clamped in Q4_0: same magnitude as the extreme, other sign
  return x;
}

TEST(KernelQuantize, Q8_0ErrorBound) {
  const std::vector<float> x = QuantTestRow();
  const std::vector<float> y = RoundTrip(DType::kQ8_0, x);
  for (size_t b = 0; b < x.size() / 32; ++b) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
    const float d = amax / 127.0f;
    const float dq = Fp16ToF32(F32ToFp16(d));
    const float bound = d / 2 * (1 + 1e-6f) + 127.0f * std::fabs(d - dq) + 1e-30f;
    for (int j = 0; j < 32; ++j) EXPECT_LE(std::fabs(x[b * 32 + j] - y[b * 32 + j]), bound) << "block " << b << " j " << j;
  }
}

TEST(KernelQuantize, Q8_0MatchesLlamaCppReference) {
  // amax 16 -> d = 16/127, q = roundf(x * 127/16) (half away from zero).
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j - 16);
  BlockQ8_0 b;
  QuantizeRow(DType::kQ8_0, x.data(), &b, 32);
  EXPECT_EQ(b.d, F32ToFp16(16.0f / 127.0f));
  for (int j = 0; j < 32; ++j) EXPECT_EQ(b.qs[j], static_cast<int8_t>(std::roundf(x[j] * (1.0f / (16.0f / 127.0f)))));
  EXPECT_EQ(b.qs[0], -127);
  EXPECT_EQ(b.qs[24], 64);  // 8 * 127/16 = 63.5 -> 64
}

TEST(KernelQuantize, Q4_0ErrorBound) {
  const std::vector<float> x = QuantTestRow();
  const std::vector<float> y = RoundTrip(DType::kQ4_0, x);
  for (size_t b = 0; b < x.size() / 32; ++b) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < 32; ++j) {
      if (amax < std::fabs(x[b * 32 + j])) {
        amax = std::fabs(x[b * 32 + j]);
        max = x[b * 32 + j];
      }
    }
    const float d = std::fabs(max / -8.0f);
    const float dq = Fp16ToF32(F32ToFp16(d));
    const float fp16_err = 8.0f * std::fabs(d - dq);
    for (int j = 0; j < 32; ++j) {
      const float v = x[b * 32 + j];
      // The value opposite in sign to the extreme can need q = 16, clamped to 15.
      const bool clamped = d > 0 && v / (max / -8.0f) + 8.5f >= 16.0f;
      const float bound = (clamped ? d : d / 2) * (1 + 1e-6f) + fp16_err + 1e-30f;
      EXPECT_LE(std::fabs(v - y[b * 32 + j]), bound) << "block " << b << " j " << j;
    }
  }
}

TEST(KernelQuantize, Q4_0MatchesLlamaCppReference) {
  // Extreme -8 -> d = 1, q = min(15, (int8)(x + 8.5)).
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j % 16) - 8.0f + (j >= 16 ? 0.5f : 0.0f);
  BlockQ4_0 b;
  QuantizeRow(DType::kQ4_0, x.data(), &b, 32);
  EXPECT_EQ(b.d, F32ToFp16(1.0f));
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(b.qs[j] & 0xF, j) << j;
    EXPECT_EQ(b.qs[j] >> 4, std::min(15, j + 1)) << j;  // x + 0.5 rounds up
  }
}

TEST(KernelQuantize, F16AndBf16RelativeError) {
  std::vector<float> x = RandomFloats(1024, 3, 100.0f);
  const std::vector<float> h = RoundTrip(DType::kF16, x);
  const std::vector<float> bf = RoundTrip(DType::kBF16, x);
  const std::vector<float> f = RoundTrip(DType::kF32, x);
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::fabs(x[i]) >= 6.2e-5f) {
      EXPECT_LE(std::fabs(h[i] - x[i]), std::ldexp(std::fabs(x[i]), -11)) << x[i];
    }
    EXPECT_LE(std::fabs(bf[i] - x[i]), std::ldexp(std::fabs(x[i]), -8)) << x[i];
    EXPECT_EQ(f[i], x[i]);
  }
}

// Every block format reproduces Gaussian weights within its precision: the
// RMS round-trip error relative to the data's RMS (bounds 1.25x what these
// quantizers, bit-identical to llama.cpp's, reach on this data; a scrambled
// layout or a wrong scale is off by far more).
TEST(KernelQuantize, RoundTripErrorPerFormat) {
  struct Bound {
    DType type;
    double max_rel_rms;
  };
  const Bound bounds[] = {
      {DType::kQ8_0, 0.007}, {DType::kQ8_1, 0.007}, {DType::kQ8_K, 0.009}, {DType::kQ6_K, 0.022},
      {DType::kQ5_0, 0.053}, {DType::kQ5_1, 0.048}, {DType::kQ5_K, 0.045}, {DType::kQ4_0, 0.11},
      {DType::kQ4_1, 0.098}, {DType::kQ4_K, 0.09},  {DType::kIQ4_NL, 0.096}, {DType::kIQ4_XS, 0.096},
      {DType::kQ3_K, 0.19},  {DType::kQ2_K, 0.37},
  };
  const std::vector<float> x = RandomFloats(256 * 64, 17);
  double x2 = 0;
  for (float v : x) x2 += static_cast<double>(v) * v;
  for (const Bound& b : bounds) {
    const std::vector<float> y = RoundTrip(b.type, x);
    double e2 = 0;
    for (size_t i = 0; i < x.size(); ++i) e2 += (static_cast<double>(x[i]) - y[i]) * (x[i] - y[i]);
    const double rel = std::sqrt(e2 / x2);
    EXPECT_LE(rel, b.max_rel_rms) << DTypeName(b.type);
    EXPECT_GE(rel, b.max_rel_rms / 4) << DTypeName(b.type) << ": implausibly exact";
    std::printf("[   INFO   ] %-6s relative RMS round-trip error %.4f\n", DTypeName(b.type), rel);
  }
}

// ---------------------------------------------------------------------------
// MatMul: one table over dtype x shape x path.

struct Weights {
  std::vector<uint8_t> bytes;
  Tensor tensor;
  std::vector<float> dequantized;  // [n_in, n_out]
};

Weights MakeWeights(DType type, int64_t n_in, int64_t n_out, uint32_t seed) {
  Weights w;
  const uint64_t row_bytes = *RowBytes(type, static_cast<uint64_t>(n_in));
  w.bytes.resize(row_bytes * static_cast<uint64_t>(n_out) + 64);
  std::vector<float> rows = RandomFloats(n_in * n_out, seed, 0.5f);
  if (n_out > 1) std::fill(rows.begin() + n_in, rows.begin() + n_in + std::min<int64_t>(n_in, 32), 0.0f);
  for (int64_t o = 0; o < n_out; ++o) QuantizeRow(type, &rows[o * n_in], w.bytes.data() + o * row_bytes, n_in);
  w.tensor.type = type;
  w.tensor.ne = {n_in, n_out, 1, 1};
  w.tensor.data = w.bytes.data();
  w.dequantized.resize(rows.size());
  for (int64_t o = 0; o < n_out; ++o) DequantizeRow(type, w.tensor.row(o), &w.dequantized[o * n_in], n_in);
  return w;
}

bool IsQuantized(DType t) { return Info(t).quantized; }

// The activation format MatMul pairs with a quantized weight type (kernels/vec_dot.h).
DType ActivationType(DType t) {
  switch (t) {
    case DType::kQ4_1: case DType::kQ5_1: return DType::kQ8_1;
    case DType::kQ2_K: case DType::kQ3_K: case DType::kQ4_K: case DType::kQ5_K: case DType::kQ6_K:
    case DType::kIQ4_XS: return DType::kQ8_K;
    default: return DType::kQ8_0;
  }
}

// Quantized weight types with their row lengths under test (whole blocks).
struct QuantCase {
  DType type;
  std::vector<int64_t> n_in;
};
const QuantCase kQuantCases[] = {
    {DType::kQ8_0, {32, 64, 96, 2048}},  {DType::kQ4_0, {32, 64, 96, 2048}}, {DType::kQ4_1, {32, 96, 2048}},
    {DType::kQ5_0, {32, 96, 2048}},      {DType::kQ5_1, {32, 96, 2048}},     {DType::kIQ4_NL, {32, 96, 2048}},
    // K types: 2560 has more super-blocks than a tile sums before its float
    // steps (8, matmul_k_avx512.cc) and not a multiple of them.
    {DType::kQ2_K, {256, 768, 2560}},    {DType::kQ3_K, {256, 768, 2560}},   {DType::kQ4_K, {256, 768, 2560}},
    {DType::kQ5_K, {256, 768, 2560}},    {DType::kQ6_K, {256, 768, 2560}},   {DType::kIQ4_XS, {256, 768, 2560}},
};

// w packed for the most capable path that has a packed layout for it, if any.
std::vector<Path> AllPathsToTest() {
  std::vector<Path> paths = {Path::kScalar};
  for (Path p : SimdPathsToTest()) paths.push_back(p);
  return paths;
}

struct PackedWeights {
  explicit PackedWeights(const Tensor& w) {
    for (Path p : SimdPathsToTest()) {
      const size_t n = PackedMatrixBytes(w, p);
      if (n == 0) continue;
      bytes.assign(n + 64, 0xA5);  // poison: padding must not leak into results
      void* dst = bytes.data() + (64 - reinterpret_cast<uintptr_t>(bytes.data()) % 64) % 64;
      tensor = PackMatrix(w, dst, p);
      path = p;
    }
  }
  bool ok() const { return tensor.data != nullptr; }
  std::vector<uint8_t> bytes;
  Tensor tensor;
  Path path = Path::kScalar;
};

// Q4_1 / Q5_1 against Q8_1 activations: block b's minimum m_b multiplies the
// block's stored s = fp16(d * sum q) instead of the sum of its dequantized
// activations. Returns that difference, sum_b m_b (s_b - sum_j x_j), for row
// o of w and activations xq (Q8_1) whose dequantized values are xs.
double MinTermCorrection(const Weights& w, int64_t o, const std::vector<uint8_t>& xq, const float* xs, int64_t n_in) {
  const auto* xb = reinterpret_cast<const BlockQ8_1*>(xq.data());
  double c = 0;
  for (int64_t b = 0; b < n_in / 32; ++b) {
    const uint8_t* wb = w.tensor.row(o) + b * Info(w.tensor.type).type_size;
    uint16_t m;
    std::memcpy(&m, wb + 2, sizeof m);  // Q4_1 and Q5_1: fp16 d, then fp16 m
    double sum = 0;
    for (int j = 0; j < 32; ++j) sum += xs[b * 32 + j];
    c += static_cast<double>(Fp16ToF32(m)) * (Fp16ToF32(xb[b].s) - sum);
  }
  return c;
}

// What the reference defines, in double: for quantized weights the activations
// go through QuantizeRow(ActivationType) (dequantized products are exact in
// float). Also returns sum |w x| for tolerances.
std::vector<double> DefinitionMatMul(const Weights& w, DType type, const std::vector<float>& x, int64_t n_in,
                                     int64_t n_out, int64_t n_tok, std::vector<double>* magnitude) {
  std::vector<float> xs = x;
  std::vector<std::vector<uint8_t>> xq(static_cast<size_t>(n_tok));
  if (IsQuantized(type)) {
    const DType act = ActivationType(type);
    for (int64_t t = 0; t < n_tok; ++t) {
      xq[t].resize(*RowBytes(act, static_cast<uint64_t>(n_in)));
      QuantizeRow(act, &x[t * n_in], xq[t].data(), n_in);
      DequantizeRow(act, xq[t].data(), &xs[t * n_in], n_in);
    }
  }
  std::vector<double> y(static_cast<size_t>(n_out * n_tok));
  magnitude->assign(y.size(), 0.0);
  for (int64_t t = 0; t < n_tok; ++t) {
    for (int64_t o = 0; o < n_out; ++o) {
      double sum = 0, mag = 0;
      for (int64_t i = 0; i < n_in; ++i) {
        const double p = static_cast<double>(w.dequantized[o * n_in + i]) * xs[t * n_in + i];
        sum += p;
        mag += std::fabs(p);
      }
      if (IsQuantized(type) && ActivationType(type) == DType::kQ8_1)
        sum += MinTermCorrection(w, o, xq[t], &xs[t * n_in], n_in);
      y[t * n_out + o] = sum;
      (*magnitude)[t * n_out + o] = mag;
    }
  }
  return y;
}

std::string CaseName(DType type, int64_t n_in, int64_t n_out, int64_t n_tok, Path path) {
  return std::string(DTypeName(type)) + " n_in=" + std::to_string(n_in) + " n_out=" + std::to_string(n_out) +
         " n_tok=" + std::to_string(n_tok) + " path=" + PathName(path);
}

// Counts elements of got outside want +- tol * magnitude; reports the first.
int CountMismatches(const std::vector<float>& got, const std::vector<double>& want,
                    const std::vector<double>& magnitude, double rel_tol, const std::string& what) {
  int bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double tol = rel_tol * magnitude[i] + 1e-30;
    if (!(std::fabs(got[i] - want[i]) <= tol)) {
      if (bad == 0) ADD_FAILURE() << what << ": element " << i << " got " << got[i] << " want " << want[i] << " tol " << tol;
      ++bad;
    }
  }
  return bad;
}

TEST(KernelMatMul, AllPathsMatchReference) {
  ThreadPool pool(3);
  const std::vector<Path> simd_paths = SimdPathsToTest();
  std::vector<QuantCase> cases_by_type = {{DType::kF32, {7, 32, 64, 96, 172, 2048}},
                                           {DType::kF16, {7, 32, 64, 96, 172, 2048}},
                                           {DType::kBF16, {7, 32, 64, 96, 172, 2048}}};
  cases_by_type.insert(cases_by_type.end(), std::begin(kQuantCases), std::end(kQuantCases));
  const int64_t n_outs[] = {1, 5, 33, 67};
  const int64_t n_toks[] = {1, 3, 9, 17, 64};  // tiles take up to 4, 6 or 8 tokens
  // Summation order differs between paths; a wrong element costs ~1/n_in of
  // the magnitude, far above this.
  constexpr double kRelTol = 2e-5;
  int cases = 0;
  for (const QuantCase& type_case : cases_by_type) {
    const DType type = type_case.type;
    for (int64_t n_in : type_case.n_in) {
      for (int64_t n_out : n_outs) {
        const Weights w = MakeWeights(type, n_in, n_out, static_cast<uint32_t>(n_in * 131 + n_out));
        const PackedWeights packed(w.tensor);
        for (int64_t n_tok : n_toks) {
          std::vector<float> x = RandomFloats(n_in * n_tok, static_cast<uint32_t>(n_tok * 7 + n_in));
          if (n_tok >= 3) {
            // A token whose first block is all zeros (scale 0) and one with an outlier.
            std::fill(x.begin() + n_in, x.begin() + n_in + std::min<int64_t>(n_in, 256), 0.0f);
            x[2 * n_in + 5] = 40.0f;
          }
          std::vector<double> mag;
          const std::vector<double> def = DefinitionMatMul(w, type, x, n_in, n_out, n_tok, &mag);
          std::vector<float> ref(static_cast<size_t>(n_out * n_tok), std::nanf(""));
          MatMul(w.tensor, x.data(), n_tok, ref.data(), pool, Path::kScalar);
          CountMismatches(ref, def, mag, kRelTol, CaseName(type, n_in, n_out, n_tok, Path::kScalar));
          const std::vector<double> ref_d(ref.begin(), ref.end());
          const auto check = [&](const Tensor& t, Path path, const std::string& name) {
            std::vector<float> got(ref.size(), std::nanf(""));
            MatMul(t, x.data(), n_tok, got.data(), pool, path);
            if (type == DType::kBF16 && path >= Path::kAvx512 && DetectCpu().avx512bf16 && n_tok >= kBf16DotMinTokens) {
              // VDPBF16PS: the definition with x rounded to BF16 (kernels.h).
              std::vector<double> mag_bf;
              const std::vector<double> def_bf =
                  DefinitionMatMul(w, type, RoundTrip(DType::kBF16, x), n_in, n_out, n_tok, &mag_bf);
              CountMismatches(got, def_bf, mag_bf, kRelTol, name + " bf16 x");
            } else {
              CountMismatches(got, ref_d, mag, kRelTol, name);
            }
            ++cases;
          };
          for (Path path : simd_paths) check(w.tensor, path, CaseName(type, n_in, n_out, n_tok, path));
          if (packed.ok()) check(packed.tensor, packed.path, CaseName(type, n_in, n_out, n_tok, packed.path) + " packed");
        }
      }
    }
  }
  std::printf("[   INFO   ] %d (dtype, shape, path) cases compared with the scalar reference\n", cases);
}

// Packing is a pure re-layout: on its path a packed matrix gives exactly the
// results of the row layout (same arithmetic in the same order), and it takes
// the row layout's bytes for whole 32-row panels.
TEST(KernelMatMul, PackedEqualsRowLayoutBitForBit) {
  ThreadPool pool(2);
  bool any = false;
  // Float decode on the row layout sums along rows (GEMV); packed, it runs
  // the float prefill GEMM's products in the GEMM's order, which the row
  // layout runs from this many tokens on (each token's outputs depend on it
  // alone). BF16 prefill may instead round x to BF16 (kBf16DotMinTokens), so
  // its decode is compared with the reference only (AllPathsMatchReference).
  constexpr int64_t kGemmTokens = 6;
  for (DType type : {DType::kQ8_0, DType::kQ4_0, DType::kQ4_1, DType::kQ5_0, DType::kQ5_1, DType::kIQ4_NL, DType::kQ2_K,
                     DType::kQ3_K, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K, DType::kIQ4_XS, DType::kF16, DType::kBF16,
                     DType::kF32}) {
    const int64_t n_in = Info(type).block_size == kQK_K ? 512 : 160;
    for (int64_t n_out : {1, 32, 45, 96}) {
      const Weights w = MakeWeights(type, n_in, n_out, 77);
      const PackedWeights packed(w.tensor);
      if (!packed.ok()) continue;  // no path with a packed layout on this CPU
      any = true;
      EXPECT_EQ(PackedMatrixBytes(w.tensor, packed.path), *RowBytes(type, n_in) * ((n_out + 31) / 32 * 32));
      EXPECT_EQ(PackedMatrixBytes(packed.tensor, packed.path), 0u) << "packing a packed matrix";
      for (int64_t n_tok : {1, 2, 5, 7, 13}) {
        if (type == DType::kBF16 && n_tok < kGemmTokens) continue;
        const bool float_gemm = type == DType::kF16 || type == DType::kF32;
        const int64_t n_rows_tok = float_gemm ? std::max(n_tok, kGemmTokens) : n_tok;
        const std::vector<float> x = RandomFloats(n_in * n_rows_tok, static_cast<uint32_t>(n_tok));
        std::vector<float> rows(static_cast<size_t>(n_out * n_rows_tok)), panels(static_cast<size_t>(n_out * n_tok));
        MatMul(w.tensor, x.data(), n_rows_tok, rows.data(), pool, packed.path);
        MatMul(packed.tensor, x.data(), n_tok, panels.data(), pool, packed.path);
        EXPECT_EQ(0, std::memcmp(rows.data(), panels.data(), panels.size() * sizeof(float)))
            << DTypeName(type) << " n_out=" << n_out << " n_tok=" << n_tok;
      }
    }
  }
  if (!any) GTEST_SKIP() << "no kernel path with a packed layout on this CPU";
}

// MatMulShared (q/k/v, gate/up in one pass) equals one MatMul per output, on
// every path, packed or not, and with types it cannot fuse.
TEST(KernelMatMul, SharedEqualsSeparateBitForBit) {
  ThreadPool pool(2);
  for (Path path : AllPathsToTest()) {
    for (DType type : {DType::kQ8_0, DType::kQ4_0, DType::kF16, DType::kQ5_0, DType::kQ4_K, DType::kQ6_K}) {
      const int64_t n_in = Info(type).block_size == kQK_K ? 512 : 160;
      std::vector<Weights> ws;
      std::vector<std::unique_ptr<PackedWeights>> packed;
      for (int64_t n_out : {96, 40, 1, 33}) {
        ws.push_back(MakeWeights(type, n_in, n_out, static_cast<uint32_t>(n_out)));
        packed.push_back(std::make_unique<PackedWeights>(ws.back().tensor));
      }
      // Pack the 1st and 3rd (when this CPU has a packed layout): mixed layouts in one call.
      std::vector<Tensor> tensors;
      for (size_t i = 0; i < ws.size(); ++i) {
        const bool pack = i % 2 == 0 && packed[i]->ok() && packed[i]->path <= path;
        tensors.push_back(pack ? packed[i]->tensor : ws[i].tensor);
      }
      // Another type (Q4_K_M files mix Q4_K and Q6_K in q/k/v): one call per type.
      const DType other = type == DType::kQ8_0   ? DType::kQ4_0
                          : type == DType::kQ4_K ? DType::kQ6_K
                          : type == DType::kQ6_K ? DType::kQ4_K
                                                 : DType::kQ8_0;
      const Weights mixed = MakeWeights(other, n_in, 20, 3);
      for (bool with_other : {false, true}) {
        std::vector<Tensor> ts = tensors;
        if (with_other) ts.push_back(mixed.tensor);
        for (int64_t n_tok : {1, 7}) {
          SCOPED_TRACE(std::string(PathName(path)) + " " + DTypeName(type) + " n_tok=" + std::to_string(n_tok) +
                       (with_other ? " +other type" : ""));
          const std::vector<float> x = RandomFloats(n_in * n_tok, static_cast<uint32_t>(n_tok + 40));
          std::vector<std::vector<float>> separate, shared;
          std::vector<MatMulOut> outs;
          for (const Tensor& t : ts) {
            separate.emplace_back(static_cast<size_t>(t.rows() * n_tok));
            shared.emplace_back(static_cast<size_t>(t.rows() * n_tok), -1.0f);
            MatMul(t, x.data(), n_tok, separate.back().data(), pool, path);
          }
          for (size_t i = 0; i < ts.size(); ++i) outs.push_back({&ts[i], shared[i].data()});
          MatMulShared(outs, x.data(), n_tok, pool, path);
          for (size_t i = 0; i < ts.size(); ++i)
            EXPECT_EQ(0, std::memcmp(separate[i].data(), shared[i].data(), separate[i].size() * sizeof(float)))
                << "output " << i;
        }
      }
    }
  }
}

TEST(KernelMatMul, ThreadCountDoesNotChangeResults) {
  const std::vector<float> x = RandomFloats(256 * 20, 11);
  for (DType type : {DType::kF32, DType::kQ8_0, DType::kQ4_0, DType::kQ6_K}) {
    const Weights w = MakeWeights(type, 256, 100, 5);
    for (int64_t n_tok : {1, 20}) {
      std::vector<float> y1(100 * n_tok), y3(100 * n_tok);
      ThreadPool one(1), three(3);
      MatMul(w.tensor, x.data(), n_tok, y1.data(), one);
      MatMul(w.tensor, x.data(), n_tok, y3.data(), three);
      EXPECT_EQ(0, std::memcmp(y1.data(), y3.data(), y1.size() * sizeof(float))) << DTypeName(type) << " " << n_tok;
    }
  }
}

// Decode bandwidth and prefill throughput of the best path (run with
// --gtest_also_run_disabled_tests; STRATA_KERNEL_PATH caps the path). Decode
// rotates through copies of the matrix totalling > 64 MB so weights stream from
// DRAM as in a real model, not from L3.
TEST(KernelMatMul, DISABLED_Benchmark) {
  ThreadPool pool(2);
  struct Case {
    DType type;
    int64_t n_in, n_out, n_tok;
  };
  const Case cases[] = {
      {DType::kQ8_0, 2048, 5632, 1},   {DType::kQ8_0, 5632, 2048, 1},   {DType::kQ8_0, 2048, 2048, 1},
      {DType::kQ8_0, 2048, 256, 1},    {DType::kQ8_0, 2048, 32000, 1},  {DType::kQ4_0, 2048, 5632, 1},
      {DType::kF16, 2048, 5632, 1},    {DType::kF32, 2048, 2048, 1},    {DType::kQ8_0, 2048, 5632, 512},
      {DType::kQ8_0, 5632, 2048, 512}, {DType::kQ4_0, 2048, 5632, 512}, {DType::kF32, 2048, 2048, 512},
      {DType::kF16, 2048, 2048, 512},  {DType::kBF16, 2048, 2048, 512},  {DType::kQ4_K, 2048, 5632, 1},
      {DType::kQ4_K, 5632, 2048, 1},   {DType::kQ6_K, 2048, 32000, 1},  {DType::kQ6_K, 5632, 2048, 1},
      {DType::kQ4_K, 2048, 5632, 512}, {DType::kQ4_K, 5632, 2048, 512}, {DType::kQ6_K, 5632, 2048, 512},
      {DType::kQ5_K, 2048, 5632, 512}, {DType::kQ2_K, 2048, 5632, 512}, {DType::kQ3_K, 2048, 5632, 512},
      {DType::kIQ4_XS, 2048, 5632, 512}, {DType::kQ4_1, 2048, 5632, 512}, {DType::kQ5_0, 2048, 5632, 512},
      {DType::kQ5_1, 2048, 5632, 512}, {DType::kIQ4_NL, 2048, 5632, 512},
  };
  std::printf("path %s\n", PathName(BestPath()));
  for (const Case& c : cases) {
    const uint64_t bytes = *RowBytes(c.type, c.n_in) * c.n_out;
    const int copies = c.n_tok == 1 ? static_cast<int>(std::max<uint64_t>(1, (64u << 20) / bytes + 1)) : 1;
    std::vector<Weights> ws;
    std::vector<std::unique_ptr<PackedWeights>> packed;
    for (int i = 0; i < copies; ++i) {
      ws.push_back(MakeWeights(c.type, c.n_in, c.n_out, 100 + i));
      packed.push_back(std::make_unique<PackedWeights>(ws.back().tensor));  // as the model loads them
      if (packed.back()->ok()) ws.back().tensor = packed.back()->tensor;
    }
    const std::vector<float> x = RandomFloats(c.n_in * c.n_tok, 1);
    std::vector<float> y(static_cast<size_t>(c.n_out * c.n_tok));
    const int reps = c.n_tok == 1 ? 20 * copies : 3;
    double best = 1e30;
    for (int trial = 0; trial < 3; ++trial) {
      const auto t0 = std::chrono::steady_clock::now();
      for (int r = 0; r < reps; ++r) MatMul(ws[r % copies].tensor, x.data(), c.n_tok, y.data(), pool);
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps);
    }
    const double gflop = 2.0 * c.n_in * c.n_out * c.n_tok / best * 1e-9;
    std::printf("%-5s %5ld x %5ld n_tok=%3ld: %8.1f us  %6.1f GB/s  %7.1f GFLOP/s\n", DTypeName(c.type),
                static_cast<long>(c.n_in), static_cast<long>(c.n_out), static_cast<long>(c.n_tok), best * 1e6,
                bytes / best * 1e-9, gflop);
  }
}

// ---------------------------------------------------------------------------
// Row operations against their formulas, on every path.


TEST(KernelOps, RowOpsMatchFormulas) {
  const int64_t sizes[] = {1, 7, 16, 33, 100, 2048};
  for (Path path : AllPathsToTest()) {
    for (int64_t n : sizes) {
      SCOPED_TRACE(std::string(PathName(path)) + " n=" + std::to_string(n));
      const std::vector<float> x = RandomFloats(n, static_cast<uint32_t>(n), 3.0f);
      const std::vector<float> wt = RandomFloats(n, static_cast<uint32_t>(n + 1));

      // RmsNorm, also in place.
      double ss = 0;
      for (float v : x) ss += static_cast<double>(v) * v;
      const double scale = 1.0 / std::sqrt(ss / n + 1e-5);
      std::vector<float> out(n), inplace = x;
      RmsNorm(x.data(), wt.data(), out.data(), n, 1e-5f, path);
      RmsNorm(inplace.data(), wt.data(), inplace.data(), n, 1e-5f, path);
      for (int64_t i = 0; i < n; ++i) {
        const double want = wt[i] * scale * x[i];
        EXPECT_NEAR(out[i], want, 1e-5 * std::fabs(want) + 1e-7) << i;
        EXPECT_EQ(inplace[i], out[i]) << i;
      }

      // Softmax, with a very negative element (underflows to 0).
      std::vector<float> s = x;
      s[0] = -1000.0f;
      double max = -1e300, sum = 0;
      for (float v : s) max = std::max<double>(max, v);
      for (float v : s) sum += std::exp(v - max);
      Softmax(s.data(), n, path);
      for (int64_t i = 0; i < n; ++i) {
        const double want = std::exp((i == 0 ? -1000.0 : x[i]) - max) / sum;
        EXPECT_NEAR(s[i], want, 1e-5 * want + 1e-9) << i;
      }

      // SwiGLU, also in place over gate.
      std::vector<float> g(n), gate = x;
      SwiGLU(x.data(), wt.data(), g.data(), n, path);
      SwiGLU(gate.data(), wt.data(), gate.data(), n, path);
      for (int64_t i = 0; i < n; ++i) {
        const double want = x[i] / (1.0 + std::exp(-static_cast<double>(x[i]))) * wt[i];
        EXPECT_NEAR(g[i], want, 1e-5 * std::fabs(want) + 1e-7) << i;
        EXPECT_EQ(gate[i], g[i]) << i;
      }

      // GeGLU (GELU's tanh approximation), also in place over gate; x spans ±3,
      // and ±12 where e^(2u) leaves float range (gelu -> 0 or x).
      std::vector<float> gx = x;
      gx[0] = -12.0f;
      if (n > 1) gx[1] = 12.0f;
      std::vector<float> gg(n), ggate = gx;
      GeGLU(gx.data(), wt.data(), gg.data(), n, path);
      GeGLU(ggate.data(), wt.data(), ggate.data(), n, path);
      for (int64_t i = 0; i < n; ++i) {
        const double v = gx[i];
        const double want = 0.5 * v * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v))) * wt[i];
        EXPECT_NEAR(gg[i], want, 1e-5 * std::fabs(v * wt[i]) + 1e-7) << i;
        EXPECT_EQ(ggate[i], gg[i]) << i;
      }

      // Dot and Axpy.
      double dot = 0, mag = 0;
      for (int64_t i = 0; i < n; ++i) {
        dot += static_cast<double>(x[i]) * wt[i];
        mag += std::fabs(static_cast<double>(x[i]) * wt[i]);
      }
      EXPECT_NEAR(DotF32(x.data(), wt.data(), n, path), dot, 1e-6 * mag + 1e-7);
      std::vector<float> y = wt;
      AxpyF32(0.75f, x.data(), y.data(), n, path);
      for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(y[i], wt[i] + 0.75 * x[i], 1e-6 * (std::fabs(wt[i]) + std::fabs(x[i]))) << i;

      // AxpyRows: y plus a weighted sum of rows (n of them, each of n columns out of a stride of n + 3).
      const int64_t stride = n + 3;
      std::vector<float> rows(static_cast<size_t>(n * stride));
      for (size_t i = 0; i < rows.size(); ++i) rows[i] = x[i % static_cast<size_t>(n)] * (1.0f + 0.01f * static_cast<float>(i % 7));
      y = wt;
      AxpyRowsF32(x.data(), rows.data(), n, stride, y.data(), n, path);
      for (int64_t i = 0; i < n; ++i) {
        double want = wt[i], mag = std::fabs(wt[i]);
        for (int64_t r = 0; r < n; ++r) {
          want += static_cast<double>(x[r]) * rows[r * stride + i];
          mag += std::fabs(static_cast<double>(x[r]) * rows[r * stride + i]);
        }
        EXPECT_NEAR(y[i], want, 1e-6 * mag + 1e-7) << i;
      }
    }
  }
}

TEST(KernelOps, SoftCapMatchesFormula) {
  std::vector<float> x = RandomFloats(100, 3, 200.0f);
  const std::vector<float> orig = x;
  SoftCap(x.data(), 100, 30.0f);
  for (int i = 0; i < 100; ++i) {
    EXPECT_NEAR(x[i], 30.0 * std::tanh(orig[i] / 30.0), 1e-5 * 30) << i;
    EXPECT_LE(std::fabs(x[i]), 30.0f);
  }
}

TEST(KernelOps, DefaultPathOverloadsMatchBestPath) {
  const std::vector<float> x = RandomFloats(100, 1), w = RandomFloats(100, 2);
  std::vector<float> a(100), b(100);
  RmsNorm(x.data(), w.data(), a.data(), 100, 1e-6f);
  RmsNorm(x.data(), w.data(), b.data(), 100, 1e-6f, BestPath());
  EXPECT_EQ(a, b);
  a = x;
  b = x;
  Softmax(a.data(), 100);
  Softmax(b.data(), 100, BestPath());
  EXPECT_EQ(a, b);
  SwiGLU(x.data(), w.data(), a.data(), 100);
  SwiGLU(x.data(), w.data(), b.data(), 100, BestPath());
  EXPECT_EQ(a, b);
  GeGLU(x.data(), w.data(), a.data(), 100);
  GeGLU(x.data(), w.data(), b.data(), 100, BestPath());
  EXPECT_EQ(a, b);
  EXPECT_EQ(DotF32(x.data(), w.data(), 100), DotF32(x.data(), w.data(), 100, BestPath()));
  a = w;
  b = w;
  AxpyF32(2.0f, x.data(), a.data(), 100);
  AxpyF32(2.0f, x.data(), b.data(), 100, BestPath());
  EXPECT_EQ(a, b);
  a = w;
  b = w;
  AxpyRowsF32(x.data(), w.data(), 10, 10, a.data(), 10);
  AxpyRowsF32(x.data(), w.data(), 10, 10, b.data(), 10, BestPath());
  EXPECT_EQ(a, b);
}

// AttendRows over blocks of keys, merged with MergePartial, against softmax
// attention computed directly in double over the stored (rounded) rows.
TEST(KernelAttention, BlocksMatchDirectSoftmax) {
  struct Case {
    DType type;
    int32_t D;
  };
  const Case cases[] = {{DType::kF32, 8},  {DType::kF32, 48},  {DType::kF32, 64}, {DType::kF16, 64},
                        {DType::kF16, 72}, {DType::kQ8_0, 64}, {DType::kQ8_0, 128}};
  for (Path path : AllPathsToTest()) {
    for (const Case& c : cases) {
      for (int32_t n : {1, 5, 16, 17, 40}) {
        for (int32_t block : {7, 16, 64}) {
         for (float softcap : {0.0f, 0.75f}) {  // 0.75: scores of ~0.5 well into tanh's bend
          SCOPED_TRACE(std::string(PathName(path)) + " " + DTypeName(c.type) + " D=" + std::to_string(c.D) +
                       " n=" + std::to_string(n) + " block=" + std::to_string(block) +
                       " softcap=" + std::to_string(softcap));
          const size_t row_bytes = *RowBytes(c.type, c.D) + 8;  // rows need not be packed
          std::vector<uint8_t> k(row_bytes * n), v(row_bytes * n);
          std::vector<float> kf(static_cast<size_t>(n) * c.D), vf(kf.size());
          const std::vector<float> q = RandomFloats(c.D, 1);
          for (int32_t j = 0; j < n; ++j) {
            const std::vector<float> kr = RandomFloats(c.D, 100 + j), vr = RandomFloats(c.D, 200 + j);
            QuantizeRow(c.type, kr.data(), &k[j * row_bytes], c.D);
            QuantizeRow(c.type, vr.data(), &v[j * row_bytes], c.D);
            DequantizeRow(c.type, &k[j * row_bytes], &kf[j * c.D], c.D);
            DequantizeRow(c.type, &v[j * row_bytes], &vf[j * c.D], c.D);
          }
          const float scale = 1.0f / std::sqrt(static_cast<float>(c.D));
          std::vector<double> s(n), want(c.D, 0.0);
          double max = -1e300, sum = 0;
          for (int32_t j = 0; j < n; ++j) {
            double dot = 0;
            for (int32_t d = 0; d < c.D; ++d) dot += static_cast<double>(q[d]) * kf[j * c.D + d];
            s[j] = softcap > 0 ? softcap * std::tanh(dot * scale / softcap) : dot * scale;
            max = std::max(max, s[j]);
          }
          for (int32_t j = 0; j < n; ++j) sum += std::exp(s[j] - max);
          for (int32_t j = 0; j < n; ++j)
            for (int32_t d = 0; d < c.D; ++d) want[d] += std::exp(s[j] - max) / sum * vf[j * c.D + d];

          SoftmaxPartial total;
          std::vector<float> out(c.D, 0.0f), acc(c.D), scratch(c.D);
          for (int32_t j0 = 0; j0 < n; j0 += block) {
            SoftmaxPartial p;
            std::fill(acc.begin(), acc.end(), 0.0f);
            AttendRows(q.data(), &k[j0 * row_bytes], &v[j0 * row_bytes], row_bytes, c.type, std::min(block, n - j0),
                       c.D, {scale, softcap}, &p, acc.data(), scratch.data(), path);
            MergePartial(&total, out.data(), p, acc.data(), c.D);
          }
          for (int32_t d = 0; d < c.D; ++d) EXPECT_NEAR(out[d] / total.l, want[d], 2e-6 + 1e-5 * std::fabs(want[d])) << d;
         }
        }
      }
    }
  }
}

// AttendTile with one token (the decode case) equals AttendRows head by head,
// on every path and for group sizes on both sides of the transposed kernel's
// threshold.
TEST(KernelAttention, HeadsMatchPerHead) {
  for (Path path : AllPathsToTest()) {
    for (DType type : {DType::kF32, DType::kF16, DType::kQ8_0}) {
      for (int32_t D : {32, 64, 128}) {
        for (int32_t n_heads : {1, 3, 4, 8}) {
          for (int32_t n : {1, 15, 16, 33}) {
            SCOPED_TRACE(std::string(PathName(path)) + " " + DTypeName(type) + " D=" + std::to_string(D) +
                         " heads=" + std::to_string(n_heads) + " n=" + std::to_string(n));
            const size_t row_bytes = *RowBytes(type, D);
            std::vector<uint8_t> k(row_bytes * n), v(row_bytes * n);
            for (int32_t j = 0; j < n; ++j) {
              QuantizeRow(type, RandomFloats(D, 300 + j).data(), &k[j * row_bytes], D);
              QuantizeRow(type, RandomFloats(D, 400 + j).data(), &v[j * row_bytes], D);
            }
            const std::vector<float> q = RandomFloats(D * n_heads, 5, 2.0f);
            const size_t stride = D + 3;
            std::vector<float> got(stride * n_heads, 0.5f), want = got, scratch(D);
            std::vector<SoftmaxPartial> pg(n_heads), pw(n_heads);
            for (int32_t h = 0; h < n_heads; ++h) pg[h] = pw[h] = SoftmaxPartial{0.25f, 2.0f};  // mid-sequence state
            const int32_t first = 0;
            AttendTile(q.data(), static_cast<size_t>(D) * n_heads, 1, n_heads, &first, &n, k.data(), v.data(),
                       row_bytes, type, D, {0.125f}, pg.data(), got.data(), stride, scratch.data(), path);
            for (int32_t h = 0; h < n_heads; ++h)
              AttendRows(&q[h * D], k.data(), v.data(), row_bytes, type, n, D, {0.125f}, &pw[h], &want[h * stride],
                         scratch.data(), Path::kScalar);
            for (int32_t h = 0; h < n_heads; ++h) {
              EXPECT_NEAR(pg[h].m, pw[h].m, 1e-5f * (1 + std::fabs(pw[h].m))) << h;
              EXPECT_NEAR(pg[h].l, pw[h].l, 1e-5f * pw[h].l) << h;
              for (int32_t d = 0; d < D; ++d)
                EXPECT_NEAR(got[h * stride + d], want[h * stride + d], 1e-5f * (1 + std::fabs(want[h * stride + d])));
              EXPECT_EQ(got[h * stride + D], 0.5f) << "wrote past the head's accumulator";
            }
          }
        }
      }
    }
  }
}

TEST(KernelOps, RopeMatchesFormula) {
  struct Case {
    int head_dim, n_rot;
    bool neox;
    float base, scale;
  };
  const Case cases[] = {{64, 64, false, 10000.0f, 1.0f}, {64, 64, true, 10000.0f, 1.0f},
                        {128, 64, false, 500000.0f, 0.5f}, {128, 96, true, 10000.0f, 0.25f},
                        {8, 8, false, 10000.0f, 1.0f}};
  for (const Case& c : cases) {
    for (int pos : {0, 1, 7, 100, 1000}) {
      SCOPED_TRACE("head_dim=" + std::to_string(c.head_dim) + " n_rot=" + std::to_string(c.n_rot) +
                   " neox=" + std::to_string(c.neox) + " pos=" + std::to_string(pos));
      const std::vector<float> x = RandomFloats(c.head_dim, static_cast<uint32_t>(pos + c.head_dim));
      std::vector<float> got = x;
      Rope(got.data(), c.head_dim, c.n_rot, pos, c.base, c.scale, c.neox);
      std::vector<double> want(x.begin(), x.end());
      for (int i = 0; i < c.n_rot / 2; ++i) {
        const double theta = pos * static_cast<double>(c.scale) * std::pow(static_cast<double>(c.base), -2.0 * i / c.n_rot);
        const int a = c.neox ? i : 2 * i, b = c.neox ? i + c.n_rot / 2 : 2 * i + 1;
        want[a] = x[a] * std::cos(theta) - x[b] * std::sin(theta);
        want[b] = x[a] * std::sin(theta) + x[b] * std::cos(theta);
      }
      const double tol = 1e-6 + 5e-7 * pos;
      for (int i = 0; i < c.head_dim; ++i) EXPECT_NEAR(got[i], want[i], tol) << i;
      for (int i = c.n_rot; i < c.head_dim; ++i) EXPECT_EQ(got[i], x[i]) << i;
    }
  }
}

TEST(KernelOps, RopeHeadsEqualsRopePerHead) {
  const int head_dim = 64, n_heads = 5;
  const std::vector<float> x = RandomFloats(head_dim * n_heads, 9);
  for (bool neox : {false, true}) {
    std::vector<float> a = x, b = x, cos(16), sin(16);
    RopeAngles(32, 17, 10000.0f, 1.0f, cos.data(), sin.data());
    RopeHeads(a.data(), n_heads, head_dim, 32, neox, cos.data(), sin.data());
    for (int h = 0; h < n_heads; ++h) Rope(&b[h * head_dim], head_dim, 32, 17, 10000.0f, 1.0f, neox);
    EXPECT_EQ(a, b);
  }
}

}  // namespace
}  // namespace strata::kernels
