#include "model/quant_mix.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdio>

namespace strata {
namespace {

struct FileTypeEntry {
  FileType ftype;
  const char* name;
  DType default_type;
};

constexpr FileTypeEntry kFileTypes[] = {
    {FileType::kAllF32, "f32", DType::kF32},       {FileType::kF16, "f16", DType::kF16},
    {FileType::kBF16, "bf16", DType::kBF16},       {FileType::kQ8_0, "q8_0", DType::kQ8_0},
    {FileType::kQ4_0, "q4_0", DType::kQ4_0},       {FileType::kQ4_1, "q4_1", DType::kQ4_1},
    {FileType::kQ5_0, "q5_0", DType::kQ5_0},       {FileType::kQ5_1, "q5_1", DType::kQ5_1},
    {FileType::kQ2_K, "q2_k", DType::kQ2_K},       {FileType::kQ3_K_S, "q3_k_s", DType::kQ3_K},
    {FileType::kQ3_K_M, "q3_k_m", DType::kQ3_K},   {FileType::kQ3_K_L, "q3_k_l", DType::kQ3_K},
    {FileType::kQ4_K_S, "q4_k_s", DType::kQ4_K},   {FileType::kQ4_K_M, "q4_k_m", DType::kQ4_K},
    {FileType::kQ5_K_S, "q5_k_s", DType::kQ5_K},   {FileType::kQ5_K_M, "q5_k_m", DType::kQ5_K},
    {FileType::kQ6_K, "q6_k", DType::kQ6_K},       {FileType::kIQ4_NL, "iq4_nl", DType::kIQ4_NL},
    {FileType::kIQ4_XS, "iq4_xs", DType::kIQ4_XS},
};

const FileTypeEntry& Entry(FileType f) {
  for (const FileTypeEntry& e : kFileTypes)
    if (e.ftype == f) return e;
  return kFileTypes[0];  // unreachable for enumerators
}

// Substrings of matrix names llama-quantize never quantizes (routers, small
// special tensors of other architectures).
constexpr const char* kNeverQuantized[] = {
    "_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel", "per_layer_model_proj",
    "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight", "indexer.q_proj.weight",
    "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight", "time_mix_w2.weight",
    "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight", "time_mix_a0.weight", "time_mix_a1.weight",
    "time_mix_a2.weight", "time_mix_g1.weight", "time_mix_g2.weight", "time_mix_decay_w1.weight",
    "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight", "attn_rel_b.weight", ".position_embd",
    "sam.pos_embd", "sam.neck.", "sam.net_", ".rel_pos", ".patch_embd", ".patch_merger", "a.rvq.codebook",
    "mm.a.code_embd",
};

bool Contains(const std::string& s, std::string_view sub) { return s.find(sub) != std::string::npos; }

// ggml_n_dims: dimensions up to the last one larger than 1.
int NonTrivialDims(const Tensor& t) {
  for (int d = 3; d >= 1; --d)
    if (t.ne[d] > 1) return d + 1;
  return 1;
}

bool AllowsQuantization(const gguf::TensorInfo& t) {
  const std::string& name = t.name;
  if (NonTrivialDims(t.tensor) < 2) return false;
  if (name.size() < 6 || name.compare(name.size() - 6, 6, "weight") != 0) return false;
  if (name == "position_embd.weight" || name == "token_types.weight") return false;
  return std::none_of(std::begin(kNeverQuantized), std::end(kNeverQuantized),
                      [&](const char* sub) { return Contains(name, sub); });
}

// Layers that get more bits in the K mixes: the first and last eighth and every third in between.
bool UseMoreBits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

int BlkLayer(const std::string& name) {
  int layer = -1;
  if (std::sscanf(name.c_str(), "blk.%d.", &layer) != 1) return -1;
  return layer;
}

// The model sizes llama.cpp calls 70B, which give attn_v more bits.
bool Is70B(const MixFacts& f) {
  if (f.arch == "llama") return f.n_layer == 80 && f.n_head != f.n_head_kv;
  if (f.arch == "qwen2" || f.arch == "olmo" || f.arch == "deci") return f.n_layer == 80;
  return f.arch == "jais2" && f.n_layer == 68;
}

}  // namespace

const char* FileTypeName(FileType f) { return Entry(f).name; }

DType DefaultType(FileType f) { return Entry(f).default_type; }

std::optional<FileType> ParseFileType(std::string_view name) {
  std::string lower;
  for (char c : name) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == "q4_k") return FileType::kQ4_K_M;
  if (lower == "q5_k") return FileType::kQ5_K_M;
  for (const FileTypeEntry& e : kFileTypes)
    if (lower == e.name) return e.ftype;
  return std::nullopt;
}

std::string FileTypeNames() {
  std::string out;
  for (const FileTypeEntry& e : kFileTypes) out += (out.empty() ? "" : ", ") + std::string(e.name);
  return out;
}

Status ReadMixFacts(const gguf::GgufFile& f, MixFacts* facts) {
  facts->arch = f.GetString("general.architecture").value_or("");
  const std::string a = facts->arch + ".";
  const std::optional<int64_t> n_layer = f.GetInt(a + "block_count");
  if (!n_layer || *n_layer < 1 || *n_layer > 4096)
    return Status::Corrupt(fmt::format("missing or implausible {}block_count", a));
  facts->n_layer = static_cast<int>(*n_layer);
  // Head counts may be per-layer arrays; llama.cpp's mixes use layer 0's.
  const auto first = [&](const std::string& key) -> std::optional<int64_t> {
    if (std::optional<int64_t> v = f.GetInt(key)) return v;
    if (std::optional<std::vector<int64_t>> arr = f.GetIntArray(key); arr && !arr->empty()) return arr->front();
    return std::nullopt;
  };
  const auto clamp = [](int64_t v) { return static_cast<int>(std::clamp<int64_t>(v, 0, 1 << 20)); };
  facts->n_head = clamp(first(a + "attention.head_count").value_or(0));
  facts->n_head_kv = clamp(first(a + "attention.head_count_kv").value_or(facts->n_head));
  facts->n_expert = clamp(f.GetInt(a + "expert_count").value_or(0));
  return Status::Ok();
}

bool LlamaTensorLess(const std::string& a, const std::string& b) {
  const int la = BlkLayer(a), lb = BlkLayer(b);
  if (la != lb) return la < lb;
  return a < b;
}

TensorTypeChooser::TensorTypeChooser(FileType ftype, MixFacts facts, const std::vector<std::string>& names, bool pure)
    : ftype_(ftype), facts_(std::move(facts)), pure_(pure), is_70b_(Is70B(facts_)) {
  for (const std::string& n : names) {
    const Category c = CategoryOf(n);
    if (c == Category::kAttnV || c == Category::kAttnQkv || c == Category::kAttnKvB) ++n_attention_wv_;
    if (c == Category::kOutput) tied_embeddings_ = false;
  }
}

TensorTypeChooser::Category TensorTypeChooser::CategoryOf(const std::string& name) {
  if (name == "output.weight") return Category::kOutput;
  if (name == "token_embd.weight" || name == "per_layer_token_embd.weight") return Category::kTokenEmbd;
  if (Contains(name, "attn_qkv.weight")) return Category::kAttnQkv;
  if (Contains(name, "attn_kv_b.weight")) return Category::kAttnKvB;
  if (Contains(name, "attn_v.weight")) return Category::kAttnV;
  if (Contains(name, "attn_k.weight")) return Category::kAttnK;
  if (Contains(name, "attn_q.weight")) return Category::kAttnQ;
  if (Contains(name, "attn_output.weight")) return Category::kAttnOutput;
  if (Contains(name, "ffn_up")) return Category::kFfnUp;
  if (Contains(name, "ffn_gate")) return Category::kFfnGate;
  if (Contains(name, "ffn_down")) return Category::kFfnDown;
  return Category::kOther;
}

Status TensorTypeChooser::LayerOf(int counter, const std::string& name, int* layer) const {
  *layer = counter;
  if (facts_.n_expert <= 1) return Status::Ok();
  // Experts of MoE files are not one tensor per layer: the name says which layer.
  *layer = BlkLayer(name);
  if (*layer < 0 || *layer >= facts_.n_layer)
    return Status::Corrupt(fmt::format("cannot determine the layer of tensor {}", name));
  return Status::Ok();
}

Status TensorTypeChooser::MixType(const gguf::TensorInfo& t, Category c, DType* type) {
  using F = FileType;
  const F f = ftype_;
  const bool falcon = facts_.arch == "falcon";
  const int n_gqa = facts_.n_head_kv > 0 ? facts_.n_head / facts_.n_head_kv : 0;
  DType nt = DefaultType(f);
  if (c == Category::kOutput || (tied_embeddings_ && c == Category::kTokenEmbd)) {
    if (falcon || t.tensor.ne[0] % Info(nt).block_size != 0) {
      nt = DType::kQ8_0;
    } else if (nt != DType::kQ8_0) {
      nt = DType::kQ6_K;
    }
  } else if (c == Category::kAttnV || c == Category::kAttnQkv || c == Category::kAttnKvB) {
    // Fused attn_qkv and MLA's attn_kv_b count as attn_v (llama.cpp's attn_qkv rules come after this and never apply).
    const int i = i_attention_wv_++, n = n_attention_wv_;
    if (f == F::kQ2_K) {
      nt = n_gqa >= 4 ? DType::kQ4_K : DType::kQ3_K;
    } else if (f == F::kQ3_K_M) {
      nt = i < 2 ? DType::kQ5_K : DType::kQ4_K;
    } else if (f == F::kQ3_K_L) {
      nt = DType::kQ5_K;
    } else if ((f == F::kIQ4_NL || f == F::kIQ4_XS) && n_gqa >= 4) {
      nt = DType::kQ5_K;
    } else if ((f == F::kQ4_K_M || f == F::kQ5_K_M) && UseMoreBits(i, n)) {
      nt = DType::kQ6_K;
    } else if (f == F::kQ4_K_S && i < 4) {
      nt = DType::kQ5_K;
    }
    if (is_70b_ && (nt == DType::kQ3_K || nt == DType::kQ4_K)) nt = DType::kQ5_K;
    if (facts_.n_expert == 8) nt = DType::kQ8_0;
  } else if (c == Category::kAttnK) {
    if (facts_.n_expert == 8) nt = DType::kQ8_0;
  } else if (c == Category::kFfnDown) {
    int i;
    STRATA_RETURN_IF_ERROR(LayerOf(i_ffn_down_++, t.name, &i));
    const int n = facts_.n_layer;
    if (f == F::kQ2_K) {
      nt = DType::kQ3_K;
    } else if (f == F::kQ3_K_M) {
      nt = i < n / 16 ? DType::kQ5_K : (!falcon || UseMoreBits(i, n)) ? DType::kQ4_K : DType::kQ3_K;
    } else if (f == F::kQ3_K_L) {
      nt = falcon ? DType::kQ4_K : DType::kQ5_K;
    } else if (f == F::kQ4_K_M) {
      if (falcon) {
        nt = i < n / 16 ? DType::kQ6_K : UseMoreBits(i, n) ? DType::kQ5_K : DType::kQ4_K;
      } else if (UseMoreBits(i, n)) {
        nt = DType::kQ6_K;
      }
    } else if (i < n / 8 && (f == F::kIQ4_NL || f == F::kIQ4_XS)) {
      nt = DType::kQ5_K;
    } else if (f == F::kQ5_K_M && UseMoreBits(i, n)) {
      nt = DType::kQ6_K;
    } else if (f == F::kQ4_K_S && !falcon && i < n / 8) {
      nt = DType::kQ5_K;
    }
  } else if (c == Category::kAttnOutput) {
    if (falcon) {
      if (f == F::kQ3_K_L) nt = DType::kQ4_K;
    } else if (facts_.n_expert == 8) {
      if (f == F::kQ2_K || f == F::kQ3_K_S || f == F::kQ3_K_M || f == F::kIQ4_NL || f == F::kQ4_K_S ||
          f == F::kQ4_K_M || f == F::kIQ4_XS)
        nt = DType::kQ5_K;
    } else if (f == F::kQ2_K) {
      nt = DType::kQ3_K;
    } else if (f == F::kQ3_K_M) {
      nt = DType::kQ4_K;
    } else if (f == F::kQ3_K_L) {
      nt = DType::kQ5_K;
    }
  } else if (c == Category::kFfnGate || c == Category::kFfnUp) {
    int i;  // only checked: no mix of these file types changes ffn_gate / ffn_up
    STRATA_RETURN_IF_ERROR(LayerOf(c == Category::kFfnGate ? i_ffn_gate_++ : i_ffn_up_++, t.name, &i));
  }
  *type = nt;
  return Status::Ok();
}

Status TensorTypeChooser::Choose(const gguf::TensorInfo& t, Choice* choice) {
  *choice = Choice{t.tensor.type, false};
  if (!AllowsQuantization(t)) return Status::Ok();
  DType type = DefaultType(ftype_);
  if (!Info(type).quantized) {  // F32 / F16 / BF16 files: every matrix in that type
    choice->type = type;
    return Status::Ok();
  }
  if (!pure_) STRATA_RETURN_IF_ERROR(MixType(t, CategoryOf(t.name), &type));
  const int64_t cols = t.tensor.ne[0];
  if (cols % Info(type).block_size != 0) {
    choice->fallback = true;
    switch (type) {
      case DType::kQ2_K: case DType::kQ3_K: type = DType::kQ4_0; break;
      case DType::kQ4_K: type = DType::kQ5_0; break;
      case DType::kQ5_K: type = DType::kQ5_1; break;
      case DType::kQ6_K: type = DType::kQ8_0; break;
      case DType::kIQ4_XS: type = DType::kIQ4_NL; break;
      default: break;  // 32-element blocks: nothing smaller to fall back to
    }
    if (cols % Info(type).block_size != 0) type = DType::kF16;
  }
  choice->type = type;
  return Status::Ok();
}

}  // namespace strata
