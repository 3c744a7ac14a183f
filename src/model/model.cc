#include "model/model.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <sys/mman.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fmt/format.h>

#include "kernels/kernels.h"
#include "model/gguf.h"
#include "model/llama2c.h"

namespace strata {
namespace {

// Sanity limits: a hostile file must not make us allocate or loop absurdly.
constexpr int64_t kMaxDim = 1 << 20;
constexpr int64_t kMaxLayers = 4096;

bool InRange(int64_t v, int64_t lo, int64_t hi) { return v >= lo && v <= hi; }

Status CheckHParams(const LlamaHParams& hp) {
  if (!InRange(hp.n_embd, 1, kMaxDim) || !InRange(hp.n_layer, 1, kMaxLayers) || !InRange(hp.n_head, 1, kMaxDim) ||
      !InRange(hp.n_head_kv, 1, kMaxDim) || !InRange(hp.n_ff, 1, kMaxDim * 8) || !InRange(hp.n_vocab, 1, 1 << 24))
    return Status::Corrupt(fmt::format("implausible hyper-parameters (n_embd {}, n_layer {}, n_head {}, n_head_kv {}, "
                                       "n_ff {}, n_vocab {})",
                                       hp.n_embd, hp.n_layer, hp.n_head, hp.n_head_kv, hp.n_ff, hp.n_vocab));
  if (hp.n_embd % hp.n_head != 0) return Status::Corrupt("n_embd is not a multiple of n_head");
  if (hp.n_head % hp.n_head_kv != 0) return Status::Corrupt("n_head is not a multiple of n_head_kv");
  if (hp.head_dim % 2 != 0) return Status::Corrupt("head dimension must be even for rotary embeddings");
  if (hp.n_rot <= 0 || hp.n_rot > hp.head_dim || hp.n_rot % 2 != 0)
    return Status::Corrupt(fmt::format("invalid rotary dimension count {}", hp.n_rot));
  if (!(hp.rms_eps > 0) || !std::isfinite(hp.rope_freq_base) || hp.rope_freq_base <= 0 ||
      !std::isfinite(hp.rope_freq_scale) || hp.rope_freq_scale <= 0)
    return Status::Corrupt("invalid epsilon or rope parameters");
  return Status::Ok();
}

Status CheckTensor(const char* what, const Tensor& t, int64_t ne0, int64_t ne1) {
  if (t.data == nullptr) return Status::Corrupt(fmt::format("missing tensor {}", what));
  if (!Info(t.type).supported)
    return Status::Unsupported(fmt::format("tensor {} has type {}, which strata does not support (supported: {})",
                                           what, DTypeName(t.type), SupportedDTypeNames()));
  if (t.ne[0] != ne0 || t.ne[1] != ne1 || t.ne[2] != 1 || t.ne[3] != 1)
    return Status::Corrupt(fmt::format("tensor {} has shape [{}, {}, {}, {}], expected [{}, {}]", what, t.ne[0],
                                       t.ne[1], t.ne[2], t.ne[3], ne0, ne1));
  return Status::Ok();
}

std::string BaseName(const std::string& path) {
  size_t slash = path.rfind('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  size_t dot = base.rfind('.');
  return dot == std::string::npos || dot == 0 ? base : base.substr(0, dot);
}

// *gguf: whether path starts with the GGUF magic. The Env's error if path
// cannot be opened (missing, unreadable, a directory, FIFO or device).
Status HasGgufMagic(Env* env, const std::string& path, bool* gguf) {
  std::unique_ptr<RandomAccessFile> f;
  STRATA_RETURN_IF_ERROR(env->NewRandomAccessFile(path, &f));
  uint32_t magic = 0;
  *gguf = f->Read(0, 4, &magic).ok() && magic == gguf::kMagic;  // shorter than 4 bytes: not GGUF
  return Status::Ok();
}

}  // namespace

Model::~Model() = default;

void Model::FreeDeleter::operator()(void* p) const { std::free(p); }

void Model::PackMatrices(int32_t n_threads) {
  std::vector<Tensor*> matrices = {&weights_.output};
  for (LayerWeights& l : weights_.layers)
    for (Tensor* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_gate, &l.ffn_up, &l.ffn_down}) matrices.push_back(t);
  // Each copy starts 64-byte aligned. A matrix the kernels have no packed
  // layout for (any type below AVX-512) is copied as it is: streamed from
  // huge pages rather than 4 KiB file pages, decode reads it ~15% faster
  // (1.1B F16 in rows, `strata bench`).
  std::vector<size_t> offsets, sizes;
  std::vector<bool> repack;
  size_t total = 0;
  for (const Tensor* t : matrices) {
    offsets.push_back(total);
    const size_t packed = kernels::PackedMatrixBytes(*t);
    repack.push_back(packed > 0);
    sizes.push_back(packed > 0 ? packed : t->nbytes());
    total += (sizes.back() + 63) / 64 * 64;
  }
  if (total == 0) return;
  constexpr size_t kHugePage = size_t{2} << 20;
  total = (total + kHugePage - 1) / kHugePage * kHugePage;
  packed_.reset(std::aligned_alloc(kHugePage, total));
  if (!packed_) return;  // out of memory: keep reading the file's layout
  // Fewer TLB misses while streaming weights; a hint the kernel may ignore.
  madvise(packed_.get(), total, MADV_HUGEPAGE);
  // Matrices are independent: threads take them one at a time.
  std::atomic<size_t> next{0};
  auto pack = [&] {
    for (size_t i = next++; i < matrices.size(); i = next++) {
      Tensor& t = *matrices[i];
      const Tensor source = t;
      // Packing reads 32 rows at a time; from a cold page cache that faulted
      // the file in a few pages per read (1.1B F16 load: 47 s; now ~3 s).
      PrefetchFilePages(source);
      uint8_t* dst = static_cast<uint8_t*>(packed_.get()) + offsets[i];
      if (repack[i]) {
        t = kernels::PackMatrix(source, dst);
      } else {
        std::memcpy(dst, source.data, sizes[i]);
        t.data = dst;
      }
      if (source.data != weights_.token_embd.data) ReleaseFilePages(source);  // embedding rows are still looked up
    }
  };
  if (n_threads <= 0) n_threads = static_cast<int32_t>(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<std::thread> helpers;
  for (int32_t i = 1; i < std::min<int32_t>(n_threads, static_cast<int32_t>(matrices.size())); ++i)
    helpers.emplace_back(pack);
  pack();
  for (std::thread& h : helpers) h.join();
}

void Model::PrefetchFilePages(const Tensor& t) const {
  if (gguf_) gguf_->WillNeed(t.data, t.nbytes());
  if (llama2c_) llama2c_->WillNeed(t.data, t.nbytes());
}

void Model::ReleaseFilePages(const Tensor& t) const {
  if (gguf_) gguf_->ReleasePages(t.data, t.nbytes());
  if (llama2c_) llama2c_->ReleasePages(t.data, t.nbytes());
}

Status Model::Load(Env* env, const ModelLoadOptions& options, std::unique_ptr<Model>* out) {
  bool gguf = false;
  STRATA_RETURN_IF_ERROR(HasGgufMagic(env, options.path, &gguf));
  std::unique_ptr<Model> model(new Model());
  if (gguf) {
    STRATA_RETURN_IF_ERROR(model->LoadGguf(env, options));
  } else {
    STRATA_RETURN_IF_ERROR(model->LoadLlama2c(env, options));
  }
  STRATA_RETURN_IF_ERROR(model->Validate());
  if (options.pack_weights) model->PackMatrices(options.pack_threads);
  // The forward pass reads norm weights as F32.
  LlamaWeights& w = model->weights_;
  w.output_norm = model->ToF32(w.output_norm);
  for (LayerWeights& l : w.layers) {
    l.attn_norm = model->ToF32(l.attn_norm);
    l.ffn_norm = model->ToF32(l.ffn_norm);
  }
  *out = std::move(model);
  return Status::Ok();
}

Status Model::LoadGguf(Env* env, const ModelLoadOptions& options) {
  STRATA_RETURN_IF_ERROR(gguf::GgufFile::Open(env, options.path, &gguf_));
  const gguf::GgufFile& f = *gguf_;
  const std::string arch = f.GetString("general.architecture").value_or("");
  if (arch != "llama")
    return Status::Unsupported(fmt::format("model architecture '{}' is not supported (supported: llama)", arch));
  auto get_int = [&](const std::string& key, int64_t* v) -> Status {
    std::optional<int64_t> x = f.GetInt(arch + "." + key);
    if (!x) return Status::Corrupt(fmt::format("missing or non-integer metadata {}.{}", arch, key));
    *v = *x;
    return Status::Ok();
  };
  int64_t n_embd = 0, n_layer = 0, n_head = 0, n_ff = 0, n_ctx = 0;
  STRATA_RETURN_IF_ERROR(get_int("embedding_length", &n_embd));
  STRATA_RETURN_IF_ERROR(get_int("block_count", &n_layer));
  STRATA_RETURN_IF_ERROR(get_int("attention.head_count", &n_head));
  STRATA_RETURN_IF_ERROR(get_int("feed_forward_length", &n_ff));
  STRATA_RETURN_IF_ERROR(get_int("context_length", &n_ctx));
  LlamaHParams& hp = hparams_;
  if (!InRange(n_embd, 1, kMaxDim) || !InRange(n_layer, 1, kMaxLayers) || !InRange(n_head, 1, kMaxDim) ||
      !InRange(n_ff, 1, kMaxDim * 8) || !InRange(n_ctx, 1, 1 << 24))
    return Status::Corrupt("implausible hyper-parameters in GGUF metadata");
  hp.n_embd = static_cast<int32_t>(n_embd);
  hp.n_layer = static_cast<int32_t>(n_layer);
  hp.n_head = static_cast<int32_t>(n_head);
  hp.n_ff = static_cast<int32_t>(n_ff);
  hp.n_ctx_train = static_cast<int32_t>(n_ctx);
  hp.n_head_kv = static_cast<int32_t>(f.GetInt(arch + ".attention.head_count_kv").value_or(n_head));
  hp.head_dim = hp.n_head > 0 ? hp.n_embd / hp.n_head : 0;
  hp.n_rot = static_cast<int32_t>(f.GetInt(arch + ".rope.dimension_count").value_or(hp.head_dim));
  hp.rms_eps = static_cast<float>(f.GetFloat(arch + ".attention.layer_norm_rms_epsilon").value_or(1e-5));
  hp.rope_freq_base = static_cast<float>(f.GetFloat(arch + ".rope.freq_base").value_or(10000.0));
  const std::string scaling = f.GetString(arch + ".rope.scaling.type").value_or("none");
  if (scaling == "linear") {
    double factor = f.GetFloat(arch + ".rope.scaling.factor").value_or(1.0);
    if (!(factor > 0)) return Status::Corrupt("rope scaling factor must be positive");
    hp.rope_freq_scale = static_cast<float>(1.0 / factor);
  } else if (scaling != "none") {
    return Status::Unsupported(fmt::format("rope scaling type '{}' is not supported (supported: none, linear)", scaling));
  }
  hp.rope_type = RopeType::kNorm;
  const gguf::TensorInfo* embd = f.FindTensor("token_embd.weight");
  if (embd == nullptr) return Status::Corrupt("missing tensor token_embd.weight");
  hp.n_vocab = static_cast<int32_t>(std::clamp<int64_t>(embd->tensor.ne[1], 0, INT32_MAX));
  STRATA_RETURN_IF_ERROR(CheckHParams(hp));
  BindWeights([&](const std::string& name) {
    const gguf::TensorInfo* t = f.FindTensor(name);
    return t != nullptr ? t->tensor : Tensor{};
  });
  STRATA_RETURN_IF_ERROR(Vocab::FromGguf(f, &vocab_));
  name_ = f.GetString("general.name").value_or(BaseName(options.path));
  return Status::Ok();
}

Status Model::LoadLlama2c(Env* env, const ModelLoadOptions& options) {
  if (options.tokenizer_path.empty())
    return Status::InvalidArgument(fmt::format("{} is not a GGUF file; a llama2.c .bin model needs --tokenizer "
                                               "TOKENIZER.bin",
                                               options.path));
  STRATA_RETURN_IF_ERROR(Llama2cFile::Open(env, options.path, &llama2c_));
  const Llama2cConfig& c = llama2c_->config();
  LlamaHParams& hp = hparams_;
  hp.n_vocab = c.vocab_size;
  hp.n_ctx_train = c.seq_len;
  hp.n_embd = c.dim;
  hp.n_layer = c.n_layers;
  hp.n_head = c.n_heads;
  hp.n_head_kv = c.n_kv_heads;
  hp.n_ff = c.hidden_dim;
  hp.head_dim = c.n_heads > 0 ? c.dim / c.n_heads : 0;
  hp.n_rot = hp.head_dim;
  hp.rms_eps = 1e-5f;  // llama2.c's rmsnorm constant
  hp.rope_freq_base = 10000.0f;
  hp.rope_type = RopeType::kNorm;
  STRATA_RETURN_IF_ERROR(CheckHParams(hp));
  BindWeights([&](const std::string& name) {
    const Tensor* t = llama2c_->FindTensor(name);
    return t != nullptr ? *t : Tensor{};
  });
  STRATA_RETURN_IF_ERROR(Vocab::FromLlama2cFile(env, options.tokenizer_path, &vocab_));
  if (vocab_->n_tokens() != hp.n_vocab)
    return Status::InvalidArgument(fmt::format("tokenizer has {} tokens but the model's vocabulary has {}",
                                               vocab_->n_tokens(), hp.n_vocab));
  name_ = BaseName(options.path);
  return Status::Ok();
}

void Model::BindWeights(const std::function<Tensor(const std::string&)>& tensor) {
  weights_.token_embd = tensor("token_embd.weight");
  weights_.output_norm = tensor("output_norm.weight");
  weights_.output = tensor("output.weight");
  if (weights_.output.data == nullptr) weights_.output = weights_.token_embd;  // tied classifier
  weights_.layers.resize(static_cast<size_t>(hparams_.n_layer));
  for (int il = 0; il < hparams_.n_layer; ++il) {
    const std::string p = fmt::format("blk.{}.", il);
    LayerWeights& l = weights_.layers[static_cast<size_t>(il)];
    l.attn_norm = tensor(p + "attn_norm.weight");
    l.wq = tensor(p + "attn_q.weight");
    l.wk = tensor(p + "attn_k.weight");
    l.wv = tensor(p + "attn_v.weight");
    l.wo = tensor(p + "attn_output.weight");
    l.ffn_norm = tensor(p + "ffn_norm.weight");
    l.ffn_gate = tensor(p + "ffn_gate.weight");
    l.ffn_up = tensor(p + "ffn_up.weight");
    l.ffn_down = tensor(p + "ffn_down.weight");
  }
}

Tensor Model::ToF32(const Tensor& t) {
  if (t.type == DType::kF32 || t.data == nullptr) return t;
  std::vector<float>& buf = owned_.emplace_back(static_cast<size_t>(t.elements()));
  kernels::DequantizeRow(t.type, t.data, buf.data(), t.elements());
  Tensor f32 = t;
  f32.type = DType::kF32;
  f32.data = buf.data();
  return f32;
}

Status Model::Validate() const {
  const LlamaHParams& hp = hparams_;
  const int64_t e = hp.n_embd, kv = hp.n_embd_kv(), ff = hp.n_ff, v = hp.n_vocab;
  STRATA_RETURN_IF_ERROR(CheckTensor("token_embd.weight", weights_.token_embd, e, v));
  STRATA_RETURN_IF_ERROR(CheckTensor("output_norm.weight", weights_.output_norm, e, 1));
  STRATA_RETURN_IF_ERROR(CheckTensor("output.weight", weights_.output, e, v));
  for (int il = 0; il < hp.n_layer; ++il) {
    const LayerWeights& l = weights_.layers[il];
    struct Check {
      const char* name;
      const Tensor& t;
      int64_t ne0, ne1;
    } checks[] = {
        {"attn_norm", l.attn_norm, e, 1}, {"attn_q", l.wq, e, e},         {"attn_k", l.wk, e, kv},
        {"attn_v", l.wv, e, kv},          {"attn_output", l.wo, e, e},    {"ffn_norm", l.ffn_norm, e, 1},
        {"ffn_gate", l.ffn_gate, e, ff},  {"ffn_up", l.ffn_up, e, ff},    {"ffn_down", l.ffn_down, ff, e},
    };
    for (const Check& c : checks)
      STRATA_RETURN_IF_ERROR(CheckTensor(fmt::format("blk.{}.{}.weight", il, c.name).c_str(), c.t, c.ne0, c.ne1));
  }
  return Status::Ok();
}

uint64_t StreamedWeightBytes(const LlamaWeights& w) {
  uint64_t total = w.output_norm.nbytes() + w.output.nbytes();
  for (const LayerWeights& l : w.layers)
    for (const Tensor* t : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_norm, &l.ffn_gate, &l.ffn_up, &l.ffn_down})
      total += t->nbytes();
  return total;
}

}  // namespace strata
