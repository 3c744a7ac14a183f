#include "model/lora_adapter.h"

#include <cmath>
#include <fmt/format.h>
#include <map>
#include <string_view>

#include "format/gguf.h"
#include "kernels/kernels.h"
#include "model/model.h"

namespace strata {
namespace {

constexpr std::string_view kSuffixA = ".lora_a", kSuffixB = ".lora_b";

struct FilePair {
  const gguf::TensorInfo* a = nullptr;
  const gguf::TensorInfo* b = nullptr;
};

std::string Shape(const Tensor& t) { return fmt::format("[{}, {}, {}, {}]", t.ne[0], t.ne[1], t.ne[2], t.ne[3]); }

// One of the pair's tensors: 2-D, of a type strata multiplies by.
Status CheckTensor(const gguf::TensorInfo& t) {
  if (!Info(t.tensor.type).supported)
    return Status::Unsupported(fmt::format("tensor {} has type {}, which strata does not support (supported: {})",
                                           t.name, DTypeName(t.tensor.type), SupportedDTypeNames()));
  if (t.tensor.ne[2] != 1 || t.tensor.ne[3] != 1)
    return Status::Corrupt(fmt::format("tensor {} has shape {}: a LoRA tensor is a matrix", t.name, Shape(t.tensor)));
  return Status::Ok();
}

// m's rows as F32, row after row.
std::vector<float> Rows(const Tensor& m) {
  std::vector<float> out(static_cast<size_t>(m.elements()));
  for (int64_t r = 0; r < m.rows(); ++r) kernels::DequantizeRow(m.type, m.row(r), &out[r * m.cols()], m.cols());
  return out;
}

// m's rows as F32, transposed: m.cols() rows of m.rows().
std::vector<float> Transposed(const Tensor& m) {
  const std::vector<float> rows = Rows(m);
  const int64_t R = m.rows(), C = m.cols();
  std::vector<float> out(rows.size());
  for (int64_t r = 0; r < R; ++r)
    for (int64_t c = 0; c < C; ++c) out[c * R + r] = rows[r * C + c];
  return out;
}

// The metadata checks: general.type, adapter.type, the architecture, no aLoRA; *alpha.
Status CheckMetadata(const gguf::GgufFile& f, const HParams& hp, float* alpha) {
  const std::string type = f.GetString("general.type").value_or("");
  if (type != "adapter")
    return Status::InvalidArgument(
        fmt::format("general.type is '{}', not 'adapter': this is not an adapter file", type));
  const std::string adapter_type = f.GetString("adapter.type").value_or("");
  if (adapter_type != "lora")
    return Status::Unsupported(fmt::format("adapter.type is '{}'; strata loads 'lora' adapters", adapter_type));
  const std::string arch = f.GetString("general.architecture").value_or("");
  if (arch != ArchName(hp.arch))
    return Status::InvalidArgument(
        fmt::format("the adapter is for architecture '{}', the model is '{}' (wrong base model?)", arch, ArchName(hp.arch)));
  if (f.Find("adapter.alora.invocation_tokens") != nullptr)
    return Status::Unsupported("activated LoRA (adapter.alora.invocation_tokens) is not supported");
  *alpha = 0.0f;
  if (const gguf::Value* v = f.Find("adapter.lora.alpha")) {
    const std::optional<double> a = v->as_double();
    if (!a || !std::isfinite(*a) || std::fabs(*a) > 1e30)
      return Status::Corrupt("adapter.lora.alpha is not a finite number");
    *alpha = static_cast<float>(*a);
  }
  return Status::Ok();
}

// Groups the file's tensors into pairs by the base tensor they adapt.
Status PairTensors(const gguf::GgufFile& f, std::map<std::string, FilePair>* pairs) {
  for (const gguf::TensorInfo& t : f.tensors()) {
    const std::string_view name = t.name;
    const bool is_a = name.ends_with(kSuffixA), is_b = name.ends_with(kSuffixB);
    if (!is_a && !is_b) {
      if (name.ends_with("_norm.weight"))
        return Status::Unsupported(fmt::format("tensor {} replaces a norm weight, which strata does not apply "
                                               "(llama.cpp ignores it): refusing rather than running another model",
                                               t.name));
      return Status::InvalidArgument(
          fmt::format("tensor {} is neither NAME.lora_a nor NAME.lora_b", t.name));
    }
    STRATA_RETURN_IF_ERROR(CheckTensor(t));
    FilePair& p = (*pairs)[std::string(name.substr(0, name.size() - kSuffixA.size()))];
    (is_a ? p.a : p.b) = &t;
  }
  for (const auto& [base, p] : *pairs)
    if (p.a == nullptr || p.b == nullptr)
      return Status::InvalidArgument(fmt::format("tensor {}.{} is missing (the pair of {})", base,
                                                 p.a == nullptr ? "lora_a" : "lora_b",
                                                 p.a == nullptr ? p.b->name : p.a->name));
  return Status::Ok();
}

// Checks the pair of token_embd.weight [n_embd, n_vocab]: lora_a [r, n_vocab], lora_b [r, n_embd].
Status CheckTokenEmbd(const FilePair& p, const HParams& hp, const ModelWeights& w) {
  if (w.output.slot < 0)
    return Status::Unsupported(
        "tensor token_embd.weight.lora_a: this model's output reuses token_embd (tied), where llama.cpp would apply "
        "the pair too and its shapes do not multiply");
  const Tensor &a = p.a->tensor, &b = p.b->tensor;
  if (a.ne[1] != hp.n_vocab || b.ne[1] != hp.n_embd || a.ne[0] != b.ne[0])
    return Status::InvalidArgument(fmt::format(
        "tensors token_embd.weight.lora_a {} and .lora_b {} do not fit token_embd.weight [{}, {}]: expected "
        "[r, {}] and [r, {}] (wrong base model?)",
        Shape(a), Shape(b), hp.n_embd, hp.n_vocab, hp.n_vocab, hp.n_embd));
  return Status::Ok();
}

}  // namespace

LoraAdapter::~LoraAdapter() = default;

Status LoraAdapter::Load(Env* env, const std::string& path, const Model& model, std::unique_ptr<LoraAdapter>* out) {
  std::unique_ptr<gguf::GgufFile> file;
  Status s = gguf::GgufFile::Open(env, path, &file);
  if (s.ok()) s = Bind(*file, model.hparams(), model.weights(), out);
  return s.WithContext(fmt::format("LoRA adapter {}", path));
}

Status LoraAdapter::Bind(const gguf::GgufFile& file, const HParams& hp, const ModelWeights& w,
                         std::unique_ptr<LoraAdapter>* out) {
  std::unique_ptr<LoraAdapter> ad(new LoraAdapter());
  STRATA_RETURN_IF_ERROR(CheckMetadata(file, hp, &ad->alpha_));
  std::map<std::string, FilePair> pairs;
  STRATA_RETURN_IF_ERROR(PairTensors(file, &pairs));
  if (pairs.empty()) return Status::InvalidArgument("the adapter has no tensors");

  // The base file's matrices by name: the slots each one feeds.
  std::map<std::string, std::vector<int32_t>> slots_of;
  for (size_t i = 0; i < w.linear_sources.size(); ++i)
    slots_of[w.linear_sources[i].name].push_back(static_cast<int32_t>(i));
  ad->pairs_.resize(w.linear_sources.size());
  for (const auto& [base, p] : pairs) {
    const Tensor &a = p.a->tensor, &b = p.b->tensor;
    const int64_t rank = b.ne[0];
    const float factor = ad->alpha_ != 0.0f ? ad->alpha_ / static_cast<float>(rank) : 1.0f;
    ad->max_rank_ = std::max<int32_t>(ad->max_rank_, static_cast<int32_t>(rank));
    ++ad->n_matrices_;
    if (base == "token_embd.weight") {
      STRATA_RETURN_IF_ERROR(CheckTokenEmbd(p, hp, w));
      const float* fa = ad->owned_.emplace_back(Rows(a)).data();
      const float* fbt = ad->owned_.emplace_back(Transposed(b)).data();
      ad->token_embd_ = LoraPair{hp.n_vocab, rank, hp.n_embd, fa, fbt, hp.n_embd, factor};
      continue;
    }
    const auto it = slots_of.find(base);
    if (it == slots_of.end())
      return Status::InvalidArgument(fmt::format(
          "tensor {}: the base model has no matrix {} to adapt (wrong base model?)", p.a->name, base));
    const LinearSource& src = w.linear_sources[static_cast<size_t>(it->second.front())];
    const int64_t cols = src.n_in;
    if (a.ne[0] != cols || b.ne[1] != src.file_rows || a.ne[1] != rank)
      return Status::InvalidArgument(fmt::format(
          "tensors {} {} and {} {} do not fit {} [{}, {}]: expected [{}, r] and [r, {}] (wrong base model?)",
          p.a->name, Shape(a), p.b->name, Shape(b), base, cols, src.file_rows, cols, src.file_rows));
    const float* fat = ad->owned_.emplace_back(Transposed(a)).data();
    const float* fbt = ad->owned_.emplace_back(Transposed(b)).data();
    for (int32_t slot : it->second) {
      const LinearSource& s = w.linear_sources[static_cast<size_t>(slot)];
      ad->pairs_[static_cast<size_t>(slot)] = LoraPair{cols, rank, s.rows, fat, fbt + s.first_row, src.file_rows, factor};
    }
  }
  ad->base_ = &w;
  *out = std::move(ad);
  return Status::Ok();
}

}  // namespace strata
