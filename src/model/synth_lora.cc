#include "model/synth_lora.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <fmt/format.h>
#include <set>

#include "core/rng.h"
#include "format/gguf_writer.h"
#include "kernels/kernels.h"

namespace strata {
namespace {

constexpr int kMaxRank = 4096;
constexpr int64_t kRmsRows = 64;
const std::array<const char*, 10> kKinds = {"attn_q",   "attn_k",  "attn_v",   "attn_qkv", "attn_output",
                                            "ffn_gate", "ffn_up",  "ffn_down", "output",   "token_embd"};
constexpr size_t kLayerKinds = 8;  // the first kKinds: blk.N.KIND.weight

// Irwin-Hall(4) of uniform 16-bit integers, scaled to std (mean 0).
void FillRow(Rng& rng, float* dst, int64_t n, float std) {
  constexpr float kMean = 131070.0f, kStd = 37837.2f;
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t r = rng.Next();
    const uint32_t sum = static_cast<uint32_t>((r & 0xFFFF) + ((r >> 16) & 0xFFFF) + ((r >> 32) & 0xFFFF) + (r >> 48));
    dst[i] = (static_cast<float>(sum) - kMean) * (std / kStd);
  }
}

// RMS of up to kRmsRows rows of m, spread over it.
float MatrixRms(const Tensor& m) {
  const int64_t rows = m.rows(), step = std::max<int64_t>(1, rows / kRmsRows), cols = m.cols();
  std::vector<float> row(static_cast<size_t>(cols));
  double sum = 0;
  int64_t n = 0;
  for (int64_t r = 0; r < rows; r += step, n += cols) {
    kernels::DequantizeRow(m.type, m.row(r), row.data(), cols);
    for (float v : row) sum += static_cast<double>(v) * v;
  }
  return static_cast<float>(std::sqrt(sum / static_cast<double>(n)));
}

// A random matrix [cols, rows] of type, as bytes.
std::vector<uint8_t> RandomMatrix(uint64_t seed, uint64_t index, DType type, int64_t cols, int64_t rows, float std) {
  const uint64_t row_bytes = *RowBytes(type, static_cast<uint64_t>(cols));
  std::vector<uint8_t> out(row_bytes * static_cast<uint64_t>(rows));
  std::vector<float> f(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    uint64_t sm = seed;
    sm = SplitMix64(&sm) ^ index;
    sm = SplitMix64(&sm) ^ static_cast<uint64_t>(r);
    Rng rng(sm);
    FillRow(rng, f.data(), cols, std);
    kernels::QuantizeRow(type, f.data(), out.data() + static_cast<uint64_t>(r) * row_bytes, cols);
  }
  return out;
}

// A base matrix to adapt: its file name, shape [n_in, n_out] and RMS.
struct Target {
  std::string name;
  int64_t n_in, n_out;
  float rms;
};

}  // namespace

std::string LoraTargetKind(const std::string& name) {
  if (name == "output.weight") return "output";
  if (name == "token_embd.weight") return "token_embd";
  constexpr std::string_view kBlk = "blk.", kWeight = ".weight";
  if (!name.starts_with(kBlk) || !name.ends_with(kWeight)) return "";
  const size_t dot = name.find('.', kBlk.size());
  if (dot == std::string::npos || dot + 1 > name.size() - kWeight.size()) return "";
  const std::string kind = name.substr(dot + 1, name.size() - kWeight.size() - dot - 1);
  return std::find(kKinds.begin(), kKinds.begin() + kLayerKinds, kind) != kKinds.begin() + kLayerKinds ? kind : "";
}

Status SynthesizeLora(Env* env, const HParams& hp, const ModelWeights& w, const SynthLoraSpec& spec,
                      const std::string& path) {
  if (spec.rank < 1 || spec.rank > kMaxRank)
    return Status::InvalidArgument(fmt::format("LoRA rank {} is outside [1, {}]", spec.rank, kMaxRank));
  if (!std::isfinite(spec.alpha) || !std::isfinite(spec.strength))
    return Status::InvalidArgument("LoRA alpha and strength must be finite");
  if (spec.type != DType::kF32 && spec.type != DType::kF16 && spec.type != DType::kBF16 && spec.type != DType::kQ8_0)
    return Status::InvalidArgument(
        fmt::format("LoRA type {}: synth writes {}", DTypeName(spec.type), kSynthLoraTypeNames));
  for (const std::string& t : spec.targets)
    if (std::find_if(kKinds.begin(), kKinds.end(), [&](const char* k) { return t == k; }) == kKinds.end())
      return Status::InvalidArgument(fmt::format("unknown LoRA target '{}' (known: {})", t, fmt::join(kKinds, ", ")));
  const auto wanted = [&](const std::string& kind) {
    return spec.targets.empty() ? kind != "output" && kind != "token_embd"
                                : std::find(spec.targets.begin(), spec.targets.end(), kind) != spec.targets.end();
  };

  std::vector<Target> targets;
  std::set<std::string> kinds_found, seen;
  for (size_t slot = 0; slot < w.linear_sources.size(); ++slot) {
    const LinearSource& src = w.linear_sources[slot];
    const std::string kind = LoraTargetKind(src.name);
    if (!wanted(kind) || !seen.insert(src.name).second) continue;
    kinds_found.insert(kind);
    const Linear* l = nullptr;
    if (w.output.slot == static_cast<int32_t>(slot)) l = &w.output;
    for (const LayerWeights& lw : w.layers)
      for (const Linear* x : {&lw.wq, &lw.wk, &lw.wv, &lw.wo, &lw.ffn_gate, &lw.ffn_up, &lw.ffn_down})
        if (x->slot == static_cast<int32_t>(slot)) l = x;
    if (l == nullptr || l->w.layout != TensorLayout::kRows)
      return Status::InvalidArgument("synthetic LoRA needs the base matrices in the file's layout");
    targets.push_back({src.name, src.n_in, src.file_rows, MatrixRms(l->w)});
  }
  if (wanted("token_embd") && !spec.targets.empty()) {
    if (w.output.slot < 0)
      return Status::InvalidArgument("LoRA target token_embd: the base model's output is tied to it");
    kinds_found.insert("token_embd");
    targets.push_back({"token_embd.weight", hp.n_embd, hp.n_vocab, MatrixRms(w.token_embd)});
  }
  for (const std::string& t : spec.targets)
    if (kinds_found.count(t) == 0) return Status::InvalidArgument(fmt::format("the base model has no {} matrix", t));
  if (targets.empty()) return Status::InvalidArgument("the base model has no matrix to adapt");

  const int64_t r = spec.rank;
  for (const Target& t : targets) {
    const int64_t a_cols = t.name == "token_embd.weight" ? r : t.n_in;
    if (!RowBytes(spec.type, static_cast<uint64_t>(a_cols)) || !RowBytes(spec.type, static_cast<uint64_t>(r)))
      return Status::InvalidArgument(fmt::format("LoRA type {} needs rank {} and {}'s inputs ({}) in whole blocks",
                                                 DTypeName(spec.type), r, t.name, t.n_in));
  }
  gguf::GgufWriter out;
  out.SetString("general.architecture", ArchName(hp.arch));
  out.SetString("general.type", "adapter");
  out.SetString("general.name", spec.name);
  out.SetString("adapter.type", "lora");
  out.SetF32("adapter.lora.alpha", spec.alpha);
  const float s = spec.alpha != 0.0f ? spec.alpha / static_cast<float>(r) : 1.0f;
  std::vector<std::vector<uint8_t>> data;
  data.reserve(2 * targets.size());
  for (size_t i = 0; i < targets.size(); ++i) {
    const Target& t = targets[i];
    // std(s·B·A) = s·sqrt(r)·std_a·std_b, with std_a = std_b.
    const float std = std::sqrt(spec.strength * t.rms / (std::fabs(s) * std::sqrt(static_cast<float>(r))));
    const bool embd = t.name == "token_embd.weight";
    const std::array<int64_t, 2> a_shape = embd ? std::array<int64_t, 2>{r, t.n_out} : std::array<int64_t, 2>{t.n_in, r};
    const std::array<int64_t, 2> b_shape = embd ? std::array<int64_t, 2>{r, t.n_in} : std::array<int64_t, 2>{r, t.n_out};
    data.push_back(RandomMatrix(spec.seed, 2 * i, spec.type, a_shape[0], a_shape[1], std));
    STRATA_RETURN_IF_ERROR(out.AddTensor(t.name + ".lora_a", spec.type, {a_shape[0], a_shape[1]}, data.back().data()));
    data.push_back(RandomMatrix(spec.seed, 2 * i + 1, spec.type, b_shape[0], b_shape[1], std));
    STRATA_RETURN_IF_ERROR(out.AddTensor(t.name + ".lora_b", spec.type, {b_shape[0], b_shape[1]}, data.back().data()));
  }
  return out.Write(env, path);
}

}  // namespace strata
