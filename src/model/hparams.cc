#include "model/hparams.h"

#include <cmath>
#include <fmt/format.h>
#include <string>

#include "format/gguf.h"

namespace strata {
namespace {

// Sanity limits: a hostile file must not make us allocate or loop absurdly.
constexpr int64_t kMaxDim = 1 << 20;
constexpr int64_t kMaxLayers = 4096;
constexpr int64_t kMaxHeadDim = 4096;

bool InRange(int64_t v, int64_t lo, int64_t hi) { return v >= lo && v <= hi; }

// Typed access to {arch}.KEY with the reasons for refusing a value.
class ArchKeys {
 public:
  ArchKeys(const gguf::GgufFile& f, const char* arch) : f_(f), arch_(arch) {}

  std::string Key(const char* key) const { return fmt::format("{}.{}", arch_, key); }

  // A required scalar integer in [lo, hi]. An array (per-layer values) is refused as unsupported.
  Status Int(const char* key, int64_t lo, int64_t hi, int32_t* out) const {
    const gguf::Value* v = f_.Find(Key(key));
    if (v == nullptr) return Status::Corrupt(fmt::format("missing metadata {}", Key(key)));
    return Convert(key, *v, lo, hi, out);
  }
  // An optional one: *out keeps its default when the key is absent.
  Status OptionalInt(const char* key, int64_t lo, int64_t hi, int32_t* out) const {
    const gguf::Value* v = f_.Find(Key(key));
    return v == nullptr ? Status::Ok() : Convert(key, *v, lo, hi, out);
  }
  // An optional finite number; *out keeps its default when absent.
  Status OptionalFloat(const char* key, float* out) const {
    const gguf::Value* v = f_.Find(Key(key));
    if (v == nullptr) return Status::Ok();
    const std::optional<double> x = v->as_double();
    if (!x || !std::isfinite(*x)) return Status::Corrupt(fmt::format("metadata {} is not a finite number", Key(key)));
    *out = static_cast<float>(*x);
    return Status::Ok();
  }
  std::optional<std::string> String(const char* key) const { return f_.GetString(Key(key)); }
  const gguf::Value* Find(const char* key) const { return f_.Find(Key(key)); }

 private:
  Status Convert(const char* key, const gguf::Value& v, int64_t lo, int64_t hi, int32_t* out) const {
    if (v.type == gguf::ValueType::kArray)
      return Status::Unsupported(fmt::format("metadata {} is an array (per-layer values), which strata does not support",
                                             Key(key)));
    const std::optional<int64_t> x = v.as_int();
    if (!x) return Status::Corrupt(fmt::format("metadata {} is not an integer", Key(key)));
    if (!InRange(*x, lo, hi))
      return Status::Corrupt(fmt::format("metadata {} = {} is outside [{}, {}]", Key(key), *x, lo, hi));
    *out = static_cast<int32_t>(*x);
    return Status::Ok();
  }

  const gguf::GgufFile& f_;
  const char* arch_;
};

// rope.scaling.type (llama.cpp's default: linear, with a factor of 1 when
// none is given). longrope scales like linear (its factors are tensors); yarn
// also mixes extrapolated angles in and scales attention (engine/rope.h).
Status LoadRopeScaling(const ArchKeys& keys, HParams* hp) {
  const std::string type = keys.String("rope.scaling.type").value_or("linear");
  float factor = 0.0f;
  STRATA_RETURN_IF_ERROR(keys.OptionalFloat("rope.scaling.factor", &factor));
  if (factor == 0.0f) STRATA_RETURN_IF_ERROR(keys.OptionalFloat("rope.scale_linear", &factor));
  if (type == "none") {
    hp->rope_freq_scale = 1.0f;
  } else if (type == "linear" || type == "longrope" || type == "yarn") {
    if (factor < 0.0f) return Status::Corrupt(fmt::format("{} must be positive", keys.Key("rope.scaling.factor")));
    hp->rope_freq_scale = factor == 0.0f ? 1.0f : 1.0f / factor;
    hp->rope_yarn = type == "yarn";
  } else {
    return Status::Unsupported(fmt::format("{} '{}' is not supported (supported: none, linear, longrope, yarn)",
                                           keys.Key("rope.scaling.type"), type));
  }
  STRATA_RETURN_IF_ERROR(keys.OptionalFloat("rope.scaling.attn_factor", &hp->rope_attn_factor));
  if (!(hp->rope_attn_factor > 0.0f))
    return Status::Corrupt(fmt::format("{} must be positive", keys.Key("rope.scaling.attn_factor")));
  hp->n_ctx_orig = hp->n_ctx_train;
  return keys.OptionalInt("rope.scaling.original_context_length", 1, 1 << 24, &hp->n_ctx_orig);
}

// {arch}.attention.sliding_window_pattern: per-layer flags (an array of
// n_layer bools or 0/1 integers) or a period p (layer il slides iff
// il % p < p - 1; 0: every layer), default_period when absent (llama.cpp's rule).
Status LoadSwaPattern(const ArchKeys& keys, int32_t default_period, HParams* hp) {
  hp->swa_layers.assign(static_cast<size_t>(hp->n_layer), 0);
  const gguf::Value* v = keys.Find("attention.sliding_window_pattern");
  if (v != nullptr && v->type == gguf::ValueType::kArray) {
    if (v->arr.size() != static_cast<size_t>(hp->n_layer))
      return Status::Corrupt(fmt::format("metadata {} has {} entries for {} layers",
                                         keys.Key("attention.sliding_window_pattern"), v->arr.size(), hp->n_layer));
    for (size_t il = 0; il < v->arr.size(); ++il) {
      const gguf::Value& e = v->arr[il];
      const std::optional<int64_t> x = e.type == gguf::ValueType::kBool ? std::optional<int64_t>(e.b) : e.as_int();
      if (!x || (*x != 0 && *x != 1))
        return Status::Corrupt(fmt::format("metadata {}[{}] is not a flag", keys.Key("attention.sliding_window_pattern"), il));
      hp->swa_layers[il] = static_cast<uint8_t>(*x);
    }
    return Status::Ok();
  }
  int32_t period = default_period;
  STRATA_RETURN_IF_ERROR(keys.OptionalInt("attention.sliding_window_pattern", 0, kMaxLayers, &period));
  for (int32_t il = 0; il < hp->n_layer; ++il)
    hp->swa_layers[static_cast<size_t>(il)] = period == 0 || il % period < period - 1;
  return Status::Ok();
}

// What gemma2 adds (llama.cpp's defaults): the attention scale
// (1/sqrt(key_length), but 1/sqrt(n_embd / n_head) for the 27B model, which
// llama.cpp knows by its 46 layers), soft-capping and sliding windows.
Status LoadGemma2HParams(const ArchKeys& keys, HParams* hp) {
  hp->n_swa = 4096;
  STRATA_RETURN_IF_ERROR(keys.OptionalInt("attention.sliding_window", 0, 1 << 24, &hp->n_swa));
  STRATA_RETURN_IF_ERROR(LoadSwaPattern(keys, 2, hp));
  hp->rope_freq_base_swa = hp->rope_freq_base;
  hp->rope_freq_scale_swa = hp->rope_freq_scale;
  STRATA_RETURN_IF_ERROR(keys.OptionalFloat("rope.freq_base_swa", &hp->rope_freq_base_swa));
  hp->attn_softcap = 50.0f;
  hp->final_softcap = 30.0f;
  STRATA_RETURN_IF_ERROR(keys.OptionalFloat("attn_logit_softcapping", &hp->attn_softcap));
  STRATA_RETURN_IF_ERROR(keys.OptionalFloat("final_logit_softcapping", &hp->final_softcap));
  if (hp->n_swa < 1) return Status::Corrupt(fmt::format("metadata {} must be positive", keys.Key("attention.sliding_window")));
  for (const auto& [key, cap] : {std::pair{"attn_logit_softcapping", hp->attn_softcap},
                                  std::pair{"final_logit_softcapping", hp->final_softcap}})
    if (cap < 0.0f) return Status::Corrupt(fmt::format("metadata {} must not be negative", keys.Key(key)));
  if (hp->n_layer == 46) hp->attn_scale = 1.0f / std::sqrt(static_cast<float>(hp->n_embd / hp->n_head));
  return Status::Ok();
}

// What gemma3 adds (llama.cpp's defaults): sliding windows only when the file
// sets one (5 of every 6 layers; their RoPE base rope.freq_base_swa, default
// 10000, unscaled), final soft-capping only when it sets that; the attention
// scale 1/sqrt(key_length), but 1/sqrt(n_embd / n_head) for the 27B model (62 layers).
Status LoadGemma3HParams(const ArchKeys& keys, HParams* hp) {
  STRATA_RETURN_IF_ERROR(keys.OptionalInt("attention.sliding_window", 0, 1 << 24, &hp->n_swa));
  if (hp->n_swa > 0) {
    STRATA_RETURN_IF_ERROR(LoadSwaPattern(keys, 6, hp));
    STRATA_RETURN_IF_ERROR(keys.OptionalFloat("rope.freq_base_swa", &hp->rope_freq_base_swa));
  }
  STRATA_RETURN_IF_ERROR(keys.OptionalFloat("final_logit_softcapping", &hp->final_softcap));
  if (hp->final_softcap < 0.0f)
    return Status::Corrupt(fmt::format("metadata {} must not be negative", keys.Key("final_logit_softcapping")));
  if (hp->n_layer == 62) hp->attn_scale = 1.0f / std::sqrt(static_cast<float>(hp->n_embd / hp->n_head));
  return Status::Ok();
}

}  // namespace

Status LoadGgufHParams(const gguf::GgufFile& f, Arch arch, HParams* out) {
  const ArchTraits& traits = Traits(arch);
  const ArchKeys keys(f, traits.name);
  HParams hp;
  hp.arch = arch;
  hp.rope_type = traits.rope_type;
  hp.ffn_act = traits.ffn_act;
  STRATA_RETURN_IF_ERROR(keys.Int("context_length", 1, 1 << 24, &hp.n_ctx_train));
  STRATA_RETURN_IF_ERROR(keys.Int("embedding_length", 1, kMaxDim, &hp.n_embd));
  STRATA_RETURN_IF_ERROR(keys.Int("block_count", 1, kMaxLayers, &hp.n_layer));
  STRATA_RETURN_IF_ERROR(keys.Int("attention.head_count", 1, kMaxDim, &hp.n_head));
  STRATA_RETURN_IF_ERROR(keys.Int("feed_forward_length", 1, kMaxDim * 8, &hp.n_ff));
  hp.n_head_kv = hp.n_head;
  STRATA_RETURN_IF_ERROR(keys.OptionalInt("attention.head_count_kv", 1, kMaxDim, &hp.n_head_kv));
  int32_t n_expert = 0;
  STRATA_RETURN_IF_ERROR(keys.OptionalInt("expert_count", 0, 1 << 16, &n_expert));
  if (n_expert > 0)
    return Status::Unsupported(fmt::format("{} = {}: mixture-of-experts models are not supported yet",
                                           keys.Key("expert_count"), n_expert));
  hp.head_dim = hp.n_embd / hp.n_head;
  STRATA_RETURN_IF_ERROR(keys.OptionalInt("attention.key_length", 1, kMaxHeadDim, &hp.head_dim));
  int32_t value_length = hp.n_embd / hp.n_head;
  STRATA_RETURN_IF_ERROR(keys.OptionalInt("attention.value_length", 1, kMaxHeadDim, &value_length));
  if (value_length != hp.head_dim)
    return Status::Unsupported(fmt::format("{} = {} differs from the key length {}, which strata does not support",
                                           keys.Key("attention.value_length"), value_length, hp.head_dim));
  hp.n_rot = hp.head_dim;
  STRATA_RETURN_IF_ERROR(keys.OptionalInt("rope.dimension_count", 1, kMaxHeadDim, &hp.n_rot));
  if (arch == Arch::kLlama && hp.n_rot != hp.head_dim)
    return Status::Corrupt(fmt::format("{} = {} must equal the head dimension {} for llama",
                                       keys.Key("rope.dimension_count"), hp.n_rot, hp.head_dim));
  if (f.Find(keys.Key("attention.layer_norm_rms_epsilon")) == nullptr)
    return Status::Corrupt(fmt::format("missing metadata {}", keys.Key("attention.layer_norm_rms_epsilon")));
  STRATA_RETURN_IF_ERROR(keys.OptionalFloat("attention.layer_norm_rms_epsilon", &hp.rms_eps));
  STRATA_RETURN_IF_ERROR(keys.OptionalFloat("rope.freq_base", &hp.rope_freq_base));
  STRATA_RETURN_IF_ERROR(LoadRopeScaling(keys, &hp));
  if (traits.scale_embd) hp.embd_scale = std::sqrt(static_cast<float>(hp.n_embd));
  hp.attn_scale = 1.0f / std::sqrt(static_cast<float>(hp.head_dim));
  if (arch == Arch::kGemma2) STRATA_RETURN_IF_ERROR(LoadGemma2HParams(keys, &hp));
  if (arch == Arch::kGemma3) STRATA_RETURN_IF_ERROR(LoadGemma3HParams(keys, &hp));
  if (arch == Arch::kPhi3) {
    // llama.cpp builds phi3 attention over n_embd rows (attn_output [n_embd, n_embd]).
    if (hp.n_embd_q() != hp.n_embd)
      return Status::Corrupt(fmt::format("{} = {} must be {} / {} for phi3", keys.Key("attention.key_length"),
                                         hp.head_dim, hp.n_embd, hp.n_head));
    // phi3.attention.sliding_window is read and not applied, as llama.cpp
    // does: Phi-3 conversions set windows the models were not run with
    // (llama.cpp PR 13676), so full attention is what phi3 files mean.
    int32_t window = 0;
    STRATA_RETURN_IF_ERROR(keys.OptionalInt("attention.sliding_window", 0, 1 << 24, &window));
  }

  const gguf::TensorInfo* embd = f.FindTensor("token_embd.weight");
  if (embd == nullptr) return Status::Corrupt("missing tensor token_embd.weight");
  if (!InRange(embd->tensor.ne[1], 1, 1 << 24))
    return Status::Corrupt(fmt::format("implausible vocabulary size {} (token_embd.weight)", embd->tensor.ne[1]));
  hp.n_vocab = static_cast<int32_t>(embd->tensor.ne[1]);
  STRATA_RETURN_IF_ERROR(CheckHParams(hp));
  *out = hp;
  return Status::Ok();
}

Status CheckHParams(const HParams& hp) {
  if (!InRange(hp.n_embd, 1, kMaxDim) || !InRange(hp.n_layer, 1, kMaxLayers) || !InRange(hp.n_head, 1, kMaxDim) ||
      !InRange(hp.n_head_kv, 1, kMaxDim) || !InRange(hp.n_ff, 1, kMaxDim * 8) || !InRange(hp.n_vocab, 1, 1 << 24) ||
      !InRange(hp.head_dim, 1, kMaxHeadDim) || !InRange(int64_t{hp.n_head} * hp.head_dim, 1, kMaxDim))
    return Status::Corrupt(fmt::format("implausible hyper-parameters (n_embd {}, n_layer {}, n_head {}, n_head_kv {}, "
                                       "head_dim {}, n_ff {}, n_vocab {})",
                                       hp.n_embd, hp.n_layer, hp.n_head, hp.n_head_kv, hp.head_dim, hp.n_ff,
                                       hp.n_vocab));
  if (hp.n_head % hp.n_head_kv != 0) return Status::Corrupt("n_head is not a multiple of n_head_kv");
  if (hp.head_dim % 2 != 0) return Status::Corrupt("head dimension must be even for rotary embeddings");
  if (hp.n_rot <= 0 || hp.n_rot > hp.head_dim || hp.n_rot % 2 != 0)
    return Status::Corrupt(fmt::format("invalid rotary dimension count {}", hp.n_rot));
  if (!(hp.rms_eps > 0) || !std::isfinite(hp.rms_eps) || !std::isfinite(hp.rope_freq_base) ||
      hp.rope_freq_base <= 0 || !std::isfinite(hp.rope_freq_scale) || hp.rope_freq_scale <= 0 ||
      !std::isfinite(hp.rope_attn_factor) || hp.rope_attn_factor <= 0 || hp.n_ctx_orig < 1 ||
      !std::isfinite(hp.rope_freq_base_swa) || hp.rope_freq_base_swa <= 0 || !std::isfinite(hp.rope_freq_scale_swa) ||
      hp.rope_freq_scale_swa <= 0)
    return Status::Corrupt("invalid epsilon or rope parameters");
  if (!(hp.attn_scale > 0) || !std::isfinite(hp.attn_scale) || !(hp.attn_softcap >= 0) ||
      !std::isfinite(hp.attn_softcap) || !(hp.final_softcap >= 0) || !std::isfinite(hp.final_softcap))
    return Status::Corrupt("invalid attention scale or soft-capping");
  if (!hp.swa_layers.empty() && (hp.swa_layers.size() != static_cast<size_t>(hp.n_layer) || hp.n_swa < 1))
    return Status::Corrupt(fmt::format("invalid sliding window {}", hp.n_swa));
  return Status::Ok();
}

}  // namespace strata
