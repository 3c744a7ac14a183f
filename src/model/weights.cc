#include "model/weights.h"

#include <fmt/format.h>
#include <set>

namespace strata {
namespace {

bool Contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

// Binds tensors by name, checking each one's type and shape, and remembers
// which names were bound.
class Binder {
 public:
  Binder(const TensorLookup& lookup, std::vector<LinearSource>* sources) : lookup_(lookup), sources_(sources) {}

  // A tensor of exactly [ne0, ne1] (ne1 = 1: a vector).
  Status Required(const std::string& name, int64_t ne0, int64_t ne1, Tensor* out) {
    STRATA_RETURN_IF_ERROR(Optional(name, ne0, ne1, out));
    if (out->data == nullptr) return Status::Corrupt(fmt::format("missing tensor {}", name));
    return Status::Ok();
  }
  // The same, or data == nullptr when the file has no such tensor.
  Status Optional(const std::string& name, int64_t ne0, int64_t ne1, Tensor* out) {
    *out = lookup_(name);
    if (out->data == nullptr) return Status::Ok();
    used_.insert(name);
    return Check(name, *out, ne0, ne1);
  }
  bool Has(const std::string& name) const { return lookup_(name).data != nullptr; }
  bool Used(const std::string& name) const { return used_.count(name) > 0; }
  // Gives *l the next slot: rows [first_row, first_row + l->w.rows()) of file tensor name [.., file_rows].
  void Source(const std::string& name, int64_t first_row, int64_t file_rows, Linear* l) {
    l->slot = static_cast<int32_t>(sources_->size());
    sources_->push_back(LinearSource{name, l->w.cols(), first_row, l->w.rows(), file_rows});
  }

  static Status Check(const std::string& name, const Tensor& t, int64_t ne0, int64_t ne1) {
    if (!Info(t.type).supported)
      return Status::Unsupported(fmt::format("tensor {} has type {}, which strata does not support (supported: {})",
                                             name, DTypeName(t.type), SupportedDTypeNames()));
    if (t.ne[0] != ne0 || t.ne[1] != ne1 || t.ne[2] != 1 || t.ne[3] != 1)
      return Status::Corrupt(fmt::format("tensor {} has shape [{}, {}, {}, {}], expected [{}, {}]", name, t.ne[0],
                                         t.ne[1], t.ne[2], t.ne[3], ne0, ne1));
    return Status::Ok();
  }

 private:
  const TensorLookup& lookup_;
  std::vector<LinearSource>* sources_;
  std::set<std::string> used_;
};

// Rows [first, first + n) of matrix m, as a matrix of its own.
Tensor RowRange(const Tensor& m, int64_t first, int64_t n) {
  Tensor t = m;
  t.ne[1] = n;
  t.data = m.row(first);
  return t;
}

// A matrix prefix.weight [n_in, n_out] with an optional prefix.bias [n_out].
// A fused one (split by SplitLinear) gets no slot of its own: its parts do.
Status BindLinear(Binder& b, const std::string& prefix, int64_t n_in, int64_t n_out, Linear* out, bool fused = false) {
  STRATA_RETURN_IF_ERROR(b.Required(prefix + ".weight", n_in, n_out, &out->w));
  if (!fused) b.Source(prefix + ".weight", 0, n_out, out);
  return b.Optional(prefix + ".bias", n_out, 1, &out->b);
}

// Rows [first, first + n) of a fused Linear (and of its bias, which must be F32), as a Linear of their own.
Status SplitLinear(Binder& b, const Linear& fused, const std::string& name, int64_t first, int64_t n, Linear* out) {
  out->w = RowRange(fused.w, first, n);
  out->b = Tensor{};
  b.Source(name + ".weight", first, fused.w.rows(), out);
  if (fused.b.data == nullptr) return Status::Ok();
  if (fused.b.type != DType::kF32)
    return Status::Unsupported(fmt::format("tensor {}.bias must be f32, is {}", name, DTypeName(fused.b.type)));
  out->b = Tensor{DType::kF32, {n, 1, 1, 1}, static_cast<const float*>(fused.b.data) + first};
  return Status::Ok();
}

// Q, K and V: separate attn_q/attn_k/attn_v, or one fused attn_qkv whose rows
// are [Q | K | V] (with a fused bias, or separate ones).
Status BindQkv(Binder& b, const HParams& hp, const std::string& p, LayerWeights* l) {
  const int64_t e = hp.n_embd, q = hp.n_embd_q(), kv = hp.n_embd_kv();
  if (!b.Has(p + "attn_qkv.weight")) {
    if (!b.Has(p + "attn_q.weight"))
      return Status::Corrupt(fmt::format("missing tensor {}attn_q.weight (or a fused {}attn_qkv.weight)", p, p));
    STRATA_RETURN_IF_ERROR(BindLinear(b, p + "attn_q", e, q, &l->wq));
    STRATA_RETURN_IF_ERROR(BindLinear(b, p + "attn_k", e, kv, &l->wk));
    return BindLinear(b, p + "attn_v", e, kv, &l->wv);
  }
  Linear qkv;
  STRATA_RETURN_IF_ERROR(BindLinear(b, p + "attn_qkv", e, q + 2 * kv, &qkv, true));
  STRATA_RETURN_IF_ERROR(SplitLinear(b, qkv, p + "attn_qkv", 0, q, &l->wq));
  STRATA_RETURN_IF_ERROR(SplitLinear(b, qkv, p + "attn_qkv", q, kv, &l->wk));
  STRATA_RETURN_IF_ERROR(SplitLinear(b, qkv, p + "attn_qkv", q + kv, kv, &l->wv));
  if (qkv.b.data != nullptr) return Status::Ok();
  STRATA_RETURN_IF_ERROR(b.Optional(p + "attn_q.bias", q, 1, &l->wq.b));
  STRATA_RETURN_IF_ERROR(b.Optional(p + "attn_k.bias", kv, 1, &l->wk.b));
  return b.Optional(p + "attn_v.bias", kv, 1, &l->wv.b);
}

Status BindLayer(Binder& b, const HParams& hp, int il, LayerWeights* l) {
  const std::string p = fmt::format("blk.{}.", il);
  const int64_t e = hp.n_embd, ff = hp.n_ff;
  STRATA_RETURN_IF_ERROR(b.Required(p + "attn_norm.weight", e, 1, &l->attn_norm));
  STRATA_RETURN_IF_ERROR(BindQkv(b, hp, p, l));
  if (Traits(hp.arch).qk_norm) {
    STRATA_RETURN_IF_ERROR(b.Required(p + "attn_q_norm.weight", hp.head_dim, 1, &l->attn_q_norm));
    STRATA_RETURN_IF_ERROR(b.Required(p + "attn_k_norm.weight", hp.head_dim, 1, &l->attn_k_norm));
  }
  STRATA_RETURN_IF_ERROR(BindLinear(b, p + "attn_output", hp.n_embd_q(), e, &l->wo));
  if (Traits(hp.arch).post_norms) {
    STRATA_RETURN_IF_ERROR(b.Required(p + "post_attention_norm.weight", e, 1, &l->attn_post_norm));
    STRATA_RETURN_IF_ERROR(b.Required(p + "post_ffw_norm.weight", e, 1, &l->ffn_post_norm));
  }
  STRATA_RETURN_IF_ERROR(b.Required(p + "ffn_norm.weight", e, 1, &l->ffn_norm));
  if (Traits(hp.arch).fused_gate_up) {
    Linear gate_up;
    STRATA_RETURN_IF_ERROR(BindLinear(b, p + "ffn_up", e, 2 * ff, &gate_up, true));
    STRATA_RETURN_IF_ERROR(SplitLinear(b, gate_up, p + "ffn_up", 0, ff, &l->ffn_gate));
    STRATA_RETURN_IF_ERROR(SplitLinear(b, gate_up, p + "ffn_up", ff, ff, &l->ffn_up));
  } else {
    STRATA_RETURN_IF_ERROR(BindLinear(b, p + "ffn_gate", e, ff, &l->ffn_gate));
    STRATA_RETURN_IF_ERROR(BindLinear(b, p + "ffn_up", e, ff, &l->ffn_up));
  }
  return BindLinear(b, p + "ffn_down", ff, e, &l->ffn_down);
}

// Why a tensor the architecture does not use is refused.
std::string UnusedTensorMessage(const HParams& hp, const std::string& name) {
  if (Contains(name, "ffn_gate_inp") || Contains(name, "_exps") || Contains(name, "_shexp"))
    return fmt::format("tensor {} belongs to a mixture-of-experts layer, which strata does not support yet", name);
  return fmt::format("tensor {} is not used by architecture {}: strata refuses files whose tensors it would ignore",
                     name, ArchName(hp.arch));
}

}  // namespace

std::vector<Tensor*> WeightMatrices(ModelWeights* w) {
  std::vector<Tensor*> m = {&w->output.w};
  for (LayerWeights& l : w->layers)
    for (Linear* x : {&l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_gate, &l.ffn_up, &l.ffn_down}) m.push_back(&x->w);
  return m;
}

namespace {

// Optional tensors (biases, q/k norms) count when present.
uint64_t OptionalBytes(const Tensor& t) { return t.data != nullptr ? t.nbytes() : 0; }

}  // namespace

uint64_t LayerStreamedBytes(const LayerWeights& l) {
  uint64_t total = l.attn_norm.nbytes() + l.ffn_norm.nbytes() + OptionalBytes(l.attn_q_norm) +
                   OptionalBytes(l.attn_k_norm) + OptionalBytes(l.attn_post_norm) + OptionalBytes(l.ffn_post_norm);
  for (const Linear* x : {&l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_gate, &l.ffn_up, &l.ffn_down})
    total += x->w.nbytes() + OptionalBytes(x->b);
  return total;
}

uint64_t HeadStreamedBytes(const ModelWeights& w) {
  return w.output_norm.nbytes() + w.output.w.nbytes() + OptionalBytes(w.output.b);
}

uint64_t StreamedWeightBytes(const ModelWeights& w) {
  uint64_t total = HeadStreamedBytes(w);
  for (const LayerWeights& l : w.layers) total += LayerStreamedBytes(l);
  return total;
}

Status BindWeights(const HParams& hp, const std::vector<std::string>& names, const TensorLookup& lookup,
                   ModelWeights* out) {
  ModelWeights w;
  Binder b(lookup, &w.linear_sources);
  const int64_t e = hp.n_embd, v = hp.n_vocab;
  STRATA_RETURN_IF_ERROR(b.Required("token_embd.weight", e, v, &w.token_embd));
  STRATA_RETURN_IF_ERROR(b.Required("output_norm.weight", e, 1, &w.output_norm));
  if (!Traits(hp.arch).tied_output) {
    STRATA_RETURN_IF_ERROR(b.Optional("output.weight", e, v, &w.output.w));
    if (w.output.w.data != nullptr) b.Source("output.weight", 0, v, &w.output);
    STRATA_RETURN_IF_ERROR(b.Optional("output.bias", v, 1, &w.output.b));
  }
  if (w.output.w.data == nullptr) w.output.w = w.token_embd;  // tied classifier
  switch (Traits(hp.arch).rope_factors) {
    case RopeFactors::kNone: break;
    case RopeFactors::kLlama3:
      STRATA_RETURN_IF_ERROR(b.Optional("rope_freqs.weight", hp.n_rot / 2, 1, &w.rope_freqs));
      break;
    case RopeFactors::kLongRope:
      STRATA_RETURN_IF_ERROR(b.Optional("rope_factors_long.weight", hp.n_rot / 2, 1, &w.rope_factors_long));
      STRATA_RETURN_IF_ERROR(b.Optional("rope_factors_short.weight", hp.n_rot / 2, 1, &w.rope_factors_short));
      break;
  }
  w.layers.resize(static_cast<size_t>(hp.n_layer));
  for (int il = 0; il < hp.n_layer; ++il) STRATA_RETURN_IF_ERROR(BindLayer(b, hp, il, &w.layers[static_cast<size_t>(il)]));
  for (const std::string& name : names)
    if (!b.Used(name)) return Status::Unsupported(UnusedTensorMessage(hp, name));
  *out = std::move(w);
  return Status::Ok();
}

}  // namespace strata
