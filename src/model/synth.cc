#include "model/synth.h"

#include <array>
#include <cmath>
#include <cstring>
#include <numbers>
#include <string_view>

#include <fmt/format.h>

#include "core/fp16.h"
#include "core/rng.h"
#include "format/gguf_writer.h"
#include "kernels/kernels.h"
#include "kernels/thread_pool.h"
#include "model/quantize.h"

namespace strata {
namespace {

// ---- spec limits: far below where any tensor size could overflow int64 ----
constexpr int kMaxLayers = 1 << 10;
constexpr int kMaxEmbd = 1 << 16;
constexpr int kMaxFf = 1 << 18;
constexpr int kMaxVocab = 1 << 20;
constexpr int kMaxCtx = 1 << 24;
constexpr int kMinVocab = 260;  // 3 special + 256 byte tokens + at least one piece

constexpr float kSmallStd = 0.02f;
// Irwin-Hall(4) of uniform 16-bit integers: mean 4 * 65535/2, std sqrt(4 * (65536^2 - 1) / 12).
constexpr float kF32Mean = 131070.0f;
constexpr float kF32Std = 37837.2f;
// Q8_0 quants: sum of four uniform 6-bit integers minus 126; std sqrt(4 * (64^2 - 1) / 12).
constexpr float kQ8Std = 36.9459f;
// Q4_0 values: sum of two uniform 3-bit integers minus 7; std sqrt(2 * (8^2 - 1) / 12).
constexpr float kQ4Std = 3.24037f;

// A random stream determined by (seed, tensor, row) alone.
Rng RowRng(uint64_t seed, uint64_t tensor, uint64_t row) {
  uint64_t sm = seed;
  sm = SplitMix64(&sm) ^ tensor;
  sm = SplitMix64(&sm) ^ row;
  std::array<uint64_t, 4> state;
  for (uint64_t& word : state) word = SplitMix64(&sm);
  Rng rng(0);
  rng.set_state(state);
  return rng;
}

// ---- one row of random weights per type (distributions documented in synth.h) ----
void FillF32Row(Rng& rng, float* dst, int64_t n, float std, float mean = 0.0f) {
  const float scale = std / kF32Std;
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t r = rng.Next();
    const uint32_t sum = static_cast<uint32_t>((r & 0xFFFF) + ((r >> 16) & 0xFFFF) + ((r >> 32) & 0xFFFF) + (r >> 48));
    dst[i] = mean + (static_cast<float>(sum) - kF32Mean) * scale;
  }
}

void FillQ8_0Row(Rng& rng, BlockQ8_0* dst, int64_t n_blocks, float std) {
  const uint16_t d = F32ToFp16(std / kQ8Std);
  for (int64_t b = 0; b < n_blocks; ++b) {
    dst[b].d = d;
    for (int j = 0; j < kQK8_0; j += 2) {
      const uint64_t r = rng.Next() & 0x3F3F3F3F3F3F3F3Full;
      const int lo = static_cast<int>((r & 0xFF) + ((r >> 8) & 0xFF) + ((r >> 16) & 0xFF) + ((r >> 24) & 0xFF));
      const int hi = static_cast<int>(((r >> 32) & 0xFF) + ((r >> 40) & 0xFF) + ((r >> 48) & 0xFF) + (r >> 56));
      dst[b].qs[j] = static_cast<int8_t>(lo - 126);
      dst[b].qs[j + 1] = static_cast<int8_t>(hi - 126);
    }
  }
}

void FillQ4_0Row(Rng& rng, BlockQ4_0* dst, int64_t n_blocks, float std) {
  const uint16_t d = F32ToFp16(std / kQ4Std);
  constexpr int kHalf = kQK4_0 / 2;
  for (int64_t b = 0; b < n_blocks; ++b) {
    dst[b].d = d;
    uint8_t q[kQK4_0];
    uint64_t r = 0;
    int bits = 0;
    for (uint8_t& qj : q) {
      if (bits < 6) {
        r = rng.Next();
        bits = 64;
      }
      // stored nibble = value + 8 = (a + b - 7) + 8, in [1, 15]
      qj = static_cast<uint8_t>((r & 7) + ((r >> 3) & 7) + 1);
      r >>= 6;
      bits -= 6;
    }
    for (int j = 0; j < kHalf; ++j) dst[b].qs[j] = static_cast<uint8_t>(q[j] | (q[j + kHalf] << 4));
  }
}

// Producer of a random matrix [cols, rows] of the given type and std, rows in parallel.
gguf::GgufWriter::Producer RandomMatrix(uint64_t seed, uint64_t tensor_index, DType type, int64_t cols, float std,
                                        ThreadPool* pool) {
  return [=](uint8_t* dst, uint64_t nbytes) -> Status {
    const uint64_t row_bytes = *RowBytes(type, static_cast<uint64_t>(cols));
    if (nbytes % row_bytes != 0) return Status::Internal("tensor size is not a whole number of rows");
    const int64_t rows = static_cast<int64_t>(nbytes / row_bytes);
    pool->ParallelFor(rows, 1, [&](int64_t begin, int64_t end) {
      std::vector<float> scratch(type == DType::kF16 || type == DType::kBF16 ? static_cast<size_t>(cols) : 0);
      for (int64_t r = begin; r < end; ++r) {
        Rng rng = RowRng(seed, tensor_index, static_cast<uint64_t>(r));
        uint8_t* out = dst + static_cast<uint64_t>(r) * row_bytes;
        switch (type) {
          case DType::kF32:
            FillF32Row(rng, reinterpret_cast<float*>(out), cols, std);
            break;
          case DType::kF16:
          case DType::kBF16:
            FillF32Row(rng, scratch.data(), cols, std);
            kernels::QuantizeRow(type, scratch.data(), out, cols);
            break;
          case DType::kQ8_0:
            FillQ8_0Row(rng, reinterpret_cast<BlockQ8_0*>(out), cols / kQK8_0, std);
            break;
          default:  // kQ4_0; ValidateSynthSpec admits no other type
            FillQ4_0Row(rng, reinterpret_cast<BlockQ4_0*>(out), cols / kQK4_0, std);
            break;
        }
      }
    });
    return Status::Ok();
  };
}

// Producer of an F32 vector: mean + N(0, std) (Irwin-Hall as FillF32Row); std 0 fills with mean.
gguf::GgufWriter::Producer RandomVector(uint64_t seed, uint64_t tensor_index, float mean, float std) {
  return [=](uint8_t* dst, uint64_t nbytes) -> Status {
    std::vector<float> v(nbytes / sizeof(float), mean);
    Rng rng = RowRng(seed, tensor_index, 0);
    if (std > 0) FillF32Row(rng, v.data(), static_cast<int64_t>(v.size()), std, mean);
    std::memcpy(dst, v.data(), v.size() * sizeof(float));
    return Status::Ok();
  };
}

// Llama 3 RoPE scaling factors (factor 8, low/high frequency factors 1 and 4)
// for an original context of orig_ctx: 1 for wavelengths below orig_ctx / 4,
// 8 above orig_ctx, smoothly in between. F32 [n_rot / 2].
std::vector<float> Llama3RopeFactors(int n_rot, float freq_base, int orig_ctx) {
  constexpr float kFactor = 8.0f, kLow = 1.0f, kHigh = 4.0f;
  const float low_wavelen = static_cast<float>(orig_ctx) / kLow, high_wavelen = static_cast<float>(orig_ctx) / kHigh;
  std::vector<float> f;
  for (int i = 0; i < n_rot / 2; ++i) {
    const float freq = std::pow(freq_base, -2.0f * static_cast<float>(i) / static_cast<float>(n_rot));
    const float wavelen = 2.0f * std::numbers::pi_v<float> / freq;
    if (wavelen < high_wavelen) {
      f.push_back(1.0f);
    } else if (wavelen > low_wavelen) {
      f.push_back(kFactor);
    } else {
      const float smooth = (static_cast<float>(orig_ctx) / wavelen - kLow) / (kHigh - kLow);
      f.push_back(1.0f / ((1.0f - smooth) / kFactor + smooth));
    }
  }
  return f;
}

// Phi-3 LongRoPE factors, F32 [n_rot / 2] each (synth.h).
std::vector<float> LongRopeFactors(int n_rot, bool long_factors) {
  const int half = n_rot / 2;
  std::vector<float> f;
  for (int i = 0; i < half; ++i) {
    const float x = half > 1 ? static_cast<float>(i) / static_cast<float>(half - 1) : 0.0f;
    f.push_back(long_factors ? std::pow(16.0f, x) : 1.0f + x);
  }
  return f;
}

// Phi-3's conversion: sqrt(1 + ln(scale) / ln(n_ctx_orig)) for scale = n_ctx / n_ctx_orig > 1, else 1.
float LongRopeAttnFactor(int n_ctx, int n_ctx_orig) {
  const double scale = static_cast<double>(n_ctx) / n_ctx_orig;
  return scale > 1.0 ? static_cast<float>(std::sqrt(1.0 + std::log(scale) / std::log(static_cast<double>(n_ctx_orig))))
                     : 1.0f;
}

int HeadDim(const SynthSpec& s) { return s.head_dim > 0 ? s.head_dim : s.n_embd / s.n_head; }

bool IsQwen(Arch a) { return a == Arch::kQwen2 || a == Arch::kQwen3; }
bool IsGemma(Arch a) { return a == Arch::kGemma || a == Arch::kGemma2 || a == Arch::kGemma3; }
// No output.weight: the architecture ties it (gemma, gemma2), or its real files do (gemma3).
bool TiedOutput(Arch a) { return Traits(a).tied_output || a == Arch::kGemma3; }

float RopeFreqBase(const SynthSpec& s) {
  if (s.rope_freqs) return 500000.0f;
  return IsQwen(s.arch) || s.arch == Arch::kGemma3 ? 1000000.0f : 10000.0f;
}

// The std of each kind of tensor (synth.h).
struct Scales {
  float embd, qk, v, wo, gate_up, down, output;
  float norm_std, qk_norm_mean, qk_norm_std, bias_std, output_norm_mean;
};

Scales ScalesFor(const SynthSpec& s) {
  if (s.weights == SynthWeights::kSmall)
    return {kSmallStd, kSmallStd, kSmallStd, kSmallStd, kSmallStd, kSmallStd, kSmallStd, 0.0f, 1.0f, 0.0f, 0.0f, 1.0f};
  const float e = std::sqrt(static_cast<float>(s.n_embd)), q = std::sqrt(static_cast<float>(s.n_head * HeadDim(s)));
  const float ff = std::sqrt(static_cast<float>(s.n_ff));
  const float qk = (Traits(s.arch).qk_norm ? 3.0f : 1.0f) / e;
  // Embeddings scaled by √n_embd: std 8/√n_embd keeps the residual stream at rms 8.
  const float embd = Traits(s.arch).scale_embd ? 8.0f / e : 8.0f;
  // A tied output multiplies by the embeddings: output_norm 0.5 makes the logits' std ~4.
  const float output_norm_mean = TiedOutput(s.arch) ? 0.5f : 1.0f;
  return {embd, qk, 1.0f / e, 1.5f / q, 1.0f / e, 2.5f / ff, 4.0f / e, 0.2f, 1.5f, 0.3f, 0.5f, output_norm_mean};
}

// ---- vocabulary ----
constexpr std::string_view kSpaceMark = "\xE2\x96\x81";  // U+2581 '▁'
constexpr std::string_view kLetters = "etaoinshrdlcumwfgypbvkjxqz";  // by English frequency
constexpr std::string_view kOtherChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'\"-:;()";

// Appends the lowercase strings of length len in odometer order over kLetters
// (prefixed by prefix) until out has `want` entries. Returns true if it filled out.
bool AppendLetterStrings(std::string_view prefix, int len, size_t want, std::vector<std::string>* out) {
  std::vector<int> digits(static_cast<size_t>(len), 0);
  while (out->size() < want) {
    std::string s(prefix);
    for (int d : digits) s += kLetters[static_cast<size_t>(d)];
    out->push_back(std::move(s));
    int pos = len - 1;
    while (pos >= 0 && ++digits[static_cast<size_t>(pos)] == static_cast<int>(kLetters.size())) {
      digits[static_cast<size_t>(pos)] = 0;
      --pos;
    }
    if (pos < 0) return out->size() >= want;
  }
  return true;
}

std::vector<int32_t> TokenTypes(int n) {
  std::vector<int32_t> types(static_cast<size_t>(n), 1);  // NORMAL
  types[0] = 2;                                           // UNKNOWN
  types[1] = types[2] = 3;                                // CONTROL
  for (int i = 3; i < 259; ++i) types[static_cast<size_t>(i)] = 6;  // BYTE
  return types;
}

std::vector<float> Scores(int n) {
  std::vector<float> scores(static_cast<size_t>(n), 0.0f);
  for (int i = 259; i < n; ++i) scores[static_cast<size_t>(i)] = -static_cast<float>(i - 259);
  return scores;
}

void SetMetadata(const SynthSpec& spec, gguf::GgufWriter* w) {
  const int head_dim = HeadDim(spec);
  const std::string a = ArchName(spec.arch);
  w->SetString("general.architecture", a);
  // llama.cpp sets token attributes by general.name: a name containing
  // "phi3" or "phi-3" makes it look up Phi-3's <|endoftext|>, which this
  // vocabulary does not have, so phi3 models are named "strata-synth-p3-...".
  const std::string tag = spec.arch == Arch::kLlama ? "" : spec.arch == Arch::kPhi3 ? "p3-" : a + "-";
  w->SetString("general.name",
               fmt::format("strata-synth-{}{}L-{}E-{}", tag, spec.n_layer, spec.n_embd, DTypeName(spec.type)));
  w->SetU32("general.file_type", *LlamaFileType(spec.type));
  if (spec.type == DType::kQ8_0 || spec.type == DType::kQ4_0) w->SetU32("general.quantization_version", 2);
  w->SetU32(a + ".context_length", static_cast<uint32_t>(spec.n_ctx));
  w->SetU32(a + ".embedding_length", static_cast<uint32_t>(spec.n_embd));
  w->SetU32(a + ".block_count", static_cast<uint32_t>(spec.n_layer));
  w->SetU32(a + ".feed_forward_length", static_cast<uint32_t>(spec.n_ff));
  w->SetU32(a + ".attention.head_count", static_cast<uint32_t>(spec.n_head));
  w->SetU32(a + ".attention.head_count_kv", static_cast<uint32_t>(spec.n_head_kv));
  if (spec.head_dim > 0) {
    w->SetU32(a + ".attention.key_length", static_cast<uint32_t>(head_dim));
    w->SetU32(a + ".attention.value_length", static_cast<uint32_t>(head_dim));
  }
  w->SetU32(a + ".rope.dimension_count", static_cast<uint32_t>(head_dim));
  w->SetF32(a + ".attention.layer_norm_rms_epsilon", IsQwen(spec.arch) || IsGemma(spec.arch) ? 1e-6f : 1e-5f);
  w->SetF32(a + ".rope.freq_base", RopeFreqBase(spec));
  if (spec.rope_scaling != SynthRopeScaling::kNone) {
    w->SetString(a + ".rope.scaling.type", spec.rope_scaling == SynthRopeScaling::kYarn ? "yarn" : "linear");
    w->SetF32(a + ".rope.scaling.factor", spec.rope_scaling_factor);
  }
  if (spec.rope_scaling == SynthRopeScaling::kYarn)
    w->SetU32(a + ".rope.scaling.original_context_length", static_cast<uint32_t>(spec.n_ctx_orig));
  if (spec.n_swa > 0) w->SetU32(a + ".attention.sliding_window", static_cast<uint32_t>(spec.n_swa));
  if (spec.n_swa > 0 && spec.arch == Arch::kGemma3) w->SetF32(a + ".rope.freq_base_swa", 10000.0f);
  if (spec.attn_softcap > 0) w->SetF32(a + ".attn_logit_softcapping", spec.attn_softcap);
  if (spec.final_softcap > 0) w->SetF32(a + ".final_logit_softcapping", spec.final_softcap);
  if (spec.longrope) {
    w->SetU32(a + ".rope.scaling.original_context_length", static_cast<uint32_t>(spec.n_ctx_orig));
    if (spec.n_ctx > spec.n_ctx_orig)
      w->SetF32(a + ".rope.scaling.attn_factor", LongRopeAttnFactor(spec.n_ctx, spec.n_ctx_orig));
  }
  w->SetU32(a + ".vocab_size", static_cast<uint32_t>(spec.n_vocab));
  w->SetString("tokenizer.ggml.model", "llama");
  w->SetString("tokenizer.ggml.pre", "default");
  w->SetStringArray("tokenizer.ggml.tokens", SynthVocabTokens(spec.n_vocab));
  w->SetF32Array("tokenizer.ggml.scores", Scores(spec.n_vocab));
  w->SetI32Array("tokenizer.ggml.token_type", TokenTypes(spec.n_vocab));
  w->SetU32("tokenizer.ggml.bos_token_id", 1);
  w->SetU32("tokenizer.ggml.eos_token_id", 2);
  w->SetU32("tokenizer.ggml.unknown_token_id", 0);
  w->SetBool("tokenizer.ggml.add_bos_token", true);
  w->SetBool("tokenizer.ggml.add_eos_token", false);
}

Status AddTensors(const SynthSpec& spec, ThreadPool* pool, gguf::GgufWriter* w) {
  const int64_t embd = spec.n_embd, ff = spec.n_ff, vocab = spec.n_vocab, hd = HeadDim(spec);
  const int64_t q = spec.n_head * hd, kv = spec.n_head_kv * hd;
  const Scales sc = ScalesFor(spec);
  uint64_t index = 0;                      // seeds each matrix's rows
  uint64_t vector_index = uint64_t{1} << 32;  // seeds each vector (apart, so matrices keep their seeds)
  auto matrix = [&](std::string name, int64_t cols, int64_t rows, float std) {
    return w->AddTensor(std::move(name), spec.type, {cols, rows},
                        RandomMatrix(spec.seed, index++, spec.type, cols, std, pool));
  };
  auto vector = [&](std::string name, int64_t n, float mean, float std) {
    return w->AddTensor(std::move(name), DType::kF32, {n}, RandomVector(spec.seed, vector_index++, mean, std));
  };
  auto norm = [&](std::string name) { return vector(std::move(name), embd, 1.0f, sc.norm_std); };
  auto constant = [&](std::string name, std::vector<float> values) {
    const int64_t n = static_cast<int64_t>(values.size());
    return w->AddTensor(std::move(name), DType::kF32, {n}, [values](uint8_t* dst, uint64_t nbytes) {
      std::memcpy(dst, values.data(), std::min<uint64_t>(nbytes, values.size() * sizeof(float)));
      return Status::Ok();
    });
  };
  const bool fused = spec.arch == Arch::kPhi3, post_norms = Traits(spec.arch).post_norms;

  if (spec.rope_freqs)
    STRATA_RETURN_IF_ERROR(
        constant("rope_freqs.weight", Llama3RopeFactors(static_cast<int>(hd), RopeFreqBase(spec), spec.n_ctx)));
  if (spec.longrope) {
    STRATA_RETURN_IF_ERROR(constant("rope_factors_long.weight", LongRopeFactors(static_cast<int>(hd), true)));
    STRATA_RETURN_IF_ERROR(constant("rope_factors_short.weight", LongRopeFactors(static_cast<int>(hd), false)));
  }
  STRATA_RETURN_IF_ERROR(matrix("token_embd.weight", embd, vocab, sc.embd));
  for (int l = 0; l < spec.n_layer; ++l) {
    const std::string p = fmt::format("blk.{}.", l);
    STRATA_RETURN_IF_ERROR(norm(p + "attn_norm.weight"));
    if (fused) {
      STRATA_RETURN_IF_ERROR(matrix(p + "attn_qkv.weight", embd, q + 2 * kv, sc.qk));
      STRATA_RETURN_IF_ERROR(matrix(p + "attn_output.weight", q, embd, sc.wo));
      STRATA_RETURN_IF_ERROR(norm(p + "ffn_norm.weight"));
      STRATA_RETURN_IF_ERROR(matrix(p + "ffn_up.weight", embd, 2 * ff, sc.gate_up));
      STRATA_RETURN_IF_ERROR(matrix(p + "ffn_down.weight", ff, embd, sc.down));
      continue;
    }
    STRATA_RETURN_IF_ERROR(matrix(p + "attn_q.weight", embd, q, sc.qk));
    if (spec.arch == Arch::kQwen2) STRATA_RETURN_IF_ERROR(vector(p + "attn_q.bias", q, 0.0f, sc.bias_std));
    STRATA_RETURN_IF_ERROR(matrix(p + "attn_k.weight", embd, kv, sc.qk));
    if (spec.arch == Arch::kQwen2) STRATA_RETURN_IF_ERROR(vector(p + "attn_k.bias", kv, 0.0f, sc.bias_std));
    STRATA_RETURN_IF_ERROR(matrix(p + "attn_v.weight", embd, kv, sc.v));
    if (spec.arch == Arch::kQwen2) STRATA_RETURN_IF_ERROR(vector(p + "attn_v.bias", kv, 0.0f, sc.bias_std));
    if (Traits(spec.arch).qk_norm) {
      STRATA_RETURN_IF_ERROR(vector(p + "attn_q_norm.weight", hd, sc.qk_norm_mean, sc.qk_norm_std));
      STRATA_RETURN_IF_ERROR(vector(p + "attn_k_norm.weight", hd, sc.qk_norm_mean, sc.qk_norm_std));
    }
    STRATA_RETURN_IF_ERROR(matrix(p + "attn_output.weight", q, embd, sc.wo));
    if (post_norms) STRATA_RETURN_IF_ERROR(norm(p + "post_attention_norm.weight"));
    STRATA_RETURN_IF_ERROR(norm(p + "ffn_norm.weight"));
    STRATA_RETURN_IF_ERROR(matrix(p + "ffn_gate.weight", embd, ff, sc.gate_up));
    STRATA_RETURN_IF_ERROR(matrix(p + "ffn_up.weight", embd, ff, sc.gate_up));
    STRATA_RETURN_IF_ERROR(matrix(p + "ffn_down.weight", ff, embd, sc.down));
    if (post_norms) STRATA_RETURN_IF_ERROR(norm(p + "post_ffw_norm.weight"));
  }
  STRATA_RETURN_IF_ERROR(vector("output_norm.weight", embd, sc.output_norm_mean, sc.norm_std));
  if (TiedOutput(spec.arch)) return Status::Ok();
  return matrix("output.weight", embd, vocab, sc.output);
}

Status CheckRange(const char* what, int v, int max) {
  if (v < 1 || v > max) return Status::InvalidArgument(fmt::format("{} must be in [1, {}], got {}", what, max, v));
  return Status::Ok();
}

}  // namespace

Status ValidateSynthSpec(const SynthSpec& s) {
  STRATA_RETURN_IF_ERROR(CheckRange("n_layer", s.n_layer, kMaxLayers));
  STRATA_RETURN_IF_ERROR(CheckRange("n_embd", s.n_embd, kMaxEmbd));
  STRATA_RETURN_IF_ERROR(CheckRange("n_ff", s.n_ff, kMaxFf));
  STRATA_RETURN_IF_ERROR(CheckRange("n_head", s.n_head, s.n_embd));
  STRATA_RETURN_IF_ERROR(CheckRange("n_head_kv", s.n_head_kv, s.n_head));
  STRATA_RETURN_IF_ERROR(CheckRange("n_ctx", s.n_ctx, kMaxCtx));
  if (s.n_vocab < kMinVocab || s.n_vocab > kMaxVocab)
    return Status::InvalidArgument(fmt::format(
        "n_vocab must be in [{}, {}] (3 special + 256 byte tokens + pieces), got {}", kMinVocab, kMaxVocab,
        s.n_vocab));
  if (s.head_dim < 0 || s.head_dim > 1024)
    return Status::InvalidArgument(fmt::format("head_dim must be in [0, 1024], got {}", s.head_dim));
  if (s.head_dim == 0 && s.n_embd % s.n_head != 0)
    return Status::InvalidArgument(fmt::format("n_embd {} is not a multiple of n_head {}", s.n_embd, s.n_head));
  if (s.n_head % s.n_head_kv != 0)
    return Status::InvalidArgument(
        fmt::format("n_head {} is not a multiple of n_head_kv {}", s.n_head, s.n_head_kv));
  if (HeadDim(s) % 2 != 0)
    return Status::InvalidArgument(fmt::format("head_dim {} must be even for RoPE", HeadDim(s)));
  if (s.rope_freqs && s.arch != Arch::kLlama)
    return Status::InvalidArgument(fmt::format("rope_freqs is a llama feature, not {}", ArchName(s.arch)));
  if (s.longrope && s.arch != Arch::kPhi3)
    return Status::InvalidArgument(fmt::format("longrope is a phi3 feature, not {}", ArchName(s.arch)));
  const bool orig = s.longrope || s.rope_scaling == SynthRopeScaling::kYarn;
  if (orig && (s.n_ctx_orig < 1 || s.n_ctx_orig > s.n_ctx))
    return Status::InvalidArgument(
        fmt::format("n_ctx_orig must be in [1, n_ctx = {}] with longrope or YaRN, got {}", s.n_ctx, s.n_ctx_orig));
  if (!orig && s.n_ctx_orig != 0) return Status::InvalidArgument("n_ctx_orig is only written with longrope or YaRN");
  if (s.longrope && s.rope_scaling == SynthRopeScaling::kYarn)
    return Status::InvalidArgument("longrope and YaRN exclude each other");
  if ((s.n_swa != 0 || s.final_softcap != 0) && s.arch != Arch::kGemma2 && s.arch != Arch::kGemma3)
    return Status::InvalidArgument(fmt::format("sliding windows and final soft-caps are gemma2/gemma3 features, not {}",
                                               ArchName(s.arch)));
  if ((s.rope_scaling != SynthRopeScaling::kNone) != (s.rope_scaling_factor > 1.0f) ||
      !std::isfinite(s.rope_scaling_factor))
    return Status::InvalidArgument(
        fmt::format("a rope scaling needs a factor > 1 and a factor a scaling, got {}", s.rope_scaling_factor));
  if (s.attn_softcap != 0 && s.arch != Arch::kGemma2)
    return Status::InvalidArgument(fmt::format("attention soft-caps are a gemma2 feature, not {}", ArchName(s.arch)));
  if (s.n_swa < 0 || !(s.attn_softcap >= 0) || !(s.final_softcap >= 0) || !std::isfinite(s.attn_softcap) ||
      !std::isfinite(s.final_softcap))
    return Status::InvalidArgument("the sliding window and soft-caps must not be negative");
  if (s.arch == Arch::kPhi3 && s.n_head * HeadDim(s) != s.n_embd)
    return Status::InvalidArgument(fmt::format("phi3 needs n_head * head_dim = n_embd, got {} * {} != {}", s.n_head,
                                               HeadDim(s), s.n_embd));
  const DType t = s.type;
  if (t != DType::kF32 && t != DType::kF16 && t != DType::kBF16 && t != DType::kQ8_0 && t != DType::kQ4_0)
    return Status::InvalidArgument(fmt::format("unsupported type '{}' (allowed: {})", DTypeName(t), kSynthTypeNames));
  const int block = Info(t).block_size;
  if (s.n_embd % block != 0 || s.n_ff % block != 0 || (s.n_head * HeadDim(s)) % block != 0)
    return Status::InvalidArgument(fmt::format("n_embd {}, n_ff {} and n_head * head_dim {} must be multiples of {} for {}",
                                               s.n_embd, s.n_ff, s.n_head * HeadDim(s), block, DTypeName(t)));
  return Status::Ok();
}

std::vector<std::string> SynthVocabTokens(int n) {
  const size_t want = static_cast<size_t>(n);
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  for (int b = 0; b < 256; ++b) tokens.push_back(fmt::format("<0x{:02X}>", b));
  tokens.emplace_back(kSpaceMark);
  for (char c : kLetters) tokens.emplace_back(1, c);
  for (char c : kOtherChars) tokens.emplace_back(1, c);
  for (int len = 1; tokens.size() < want; ++len) {
    if (AppendLetterStrings(kSpaceMark, len, want, &tokens)) break;
    if (len >= 2 && AppendLetterStrings("", len, want, &tokens)) break;
  }
  tokens.resize(want);
  return tokens;
}

Status SynthesizeModel(Env* env, const SynthSpec& spec, const std::string& path, int n_threads,
                       const SynthProgress& progress) {
  STRATA_RETURN_IF_ERROR(ValidateSynthSpec(spec));
  if (n_threads < 1) return Status::InvalidArgument("n_threads must be >= 1");
  gguf::GgufWriter writer;
  SetMetadata(spec, &writer);
  ThreadPool pool(n_threads);
  STRATA_RETURN_IF_ERROR(AddTensors(spec, &pool, &writer));
  return writer.Write(env, path, progress);
}

}  // namespace strata
