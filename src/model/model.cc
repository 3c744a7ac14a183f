#include "model/model.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <sys/mman.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <fmt/format.h>

#include <xxhash.h>

#include "format/gguf.h"
#include "format/llama2c.h"
#include "kernels/kernels.h"

namespace strata {
namespace {

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
  std::vector<Tensor*> matrices = WeightMatrices(&weights_);
  // Matrices another rank holds (model_shard.h) are neither packed nor touched.
  std::erase_if(matrices, [](const Tensor* t) { return t->data == nullptr; });
  // Each copy starts 64-byte aligned. A matrix the kernels have no packed
  // layout for (most types below AVX-512) is copied as it is: streamed from
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
      // Embedding rows are still looked up; column shards are not the file's pages.
      if (source.data != weights_.token_embd.data && !InShardColumns(source.data)) ReleaseFilePages(source);
    }
  };
  if (n_threads <= 0) n_threads = static_cast<int32_t>(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<std::thread> helpers;
  for (int32_t i = 1; i < std::min<int32_t>(n_threads, static_cast<int32_t>(matrices.size())); ++i)
    helpers.emplace_back(pack);
  pack();
  for (std::thread& h : helpers) h.join();
}

bool Model::InShardColumns(const void* p) const {
  for (const std::vector<uint8_t>& c : shard_columns_)
    if (p == c.data()) return true;
  return false;
}

uint64_t Model::ComputeFingerprint() const {
  const HParams& hp = hparams_;
  const int32_t shape[] = {hp.n_vocab, hp.n_embd, hp.n_layer, hp.n_head, hp.n_head_kv, hp.n_ff, hp.n_rot};
  uint64_t h = XXH3_64bits(shape, sizeof shape);
  const Tensor& emb = weights_.token_embd;
  h = XXH3_64bits_withSeed(emb.data, std::min<uint64_t>(emb.nbytes(), 1 << 16), h);
  const Tensor& norm = weights_.output_norm;
  return XXH3_64bits_withSeed(norm.data, norm.row_bytes(), h);
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
  STRATA_RETURN_IF_ERROR(env->FileSize(options.path, &model->file_bytes_));
  model->NormsAndBiasesToF32();
  model->fingerprint_ = model->ComputeFingerprint();
  model->shard_ = options.shard;
  STRATA_RETURN_IF_ERROR(ApplyShard(&model->shard_, &model->hparams_, &model->weights_, &model->shard_columns_,
                                    [&model](const Tensor& whole) { model->ReleaseFilePages(whole); }));
  if (options.pack_weights) model->PackMatrices(options.pack_threads);
  if (model->packed_) model->shard_columns_.clear();  // every matrix now reads its packed copy
  STRATA_RETURN_IF_ERROR(model->CheckRopeFactors());
  *out = std::move(model);
  return Status::Ok();
}

Status Model::LoadGguf(Env* env, const ModelLoadOptions& options) {
  STRATA_RETURN_IF_ERROR(gguf::GgufFile::Open(env, options.path, &gguf_));
  const gguf::GgufFile& f = *gguf_;
  const std::optional<std::string> arch_name = f.GetString("general.architecture");
  if (!arch_name) return Status::Corrupt("missing metadata general.architecture");
  Arch arch;
  STRATA_RETURN_IF_ERROR(ParseArch(*arch_name, &arch));
  STRATA_RETURN_IF_ERROR(LoadGgufHParams(f, arch, &hparams_));
  std::vector<std::string> names;
  std::vector<Tensor> tensors;
  for (const gguf::TensorInfo& t : f.tensors()) {
    // Kernels read F32 data and blocks' F16 scales in place: a file whose
    // general.alignment leaves a tensor off a 4-byte boundary is refused.
    if (reinterpret_cast<uintptr_t>(t.tensor.data) % 4 != 0)
      return Status::Corrupt(fmt::format("tensor {}'s data is not 4-byte aligned (general.alignment {}; strata "
                                         "needs a multiple of 4)",
                                         t.name, f.alignment()));
    names.push_back(t.name);
    tensors.push_back(t.tensor);
  }
  STRATA_RETURN_IF_ERROR(BindWeights(hparams_, names, [&](const std::string& name) {
    const gguf::TensorInfo* t = f.FindTensor(name);
    return t != nullptr ? t->tensor : Tensor{};
  }, &weights_));
  CountTensors(tensors);
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
  HParams& hp = hparams_;
  hp.arch = Arch::kLlama;
  hp.n_vocab = c.vocab_size;
  hp.n_ctx_train = c.seq_len;
  hp.n_ctx_orig = c.seq_len;
  hp.n_embd = c.dim;
  hp.n_layer = c.n_layers;
  hp.n_head = c.n_heads;
  hp.n_head_kv = c.n_kv_heads;
  hp.n_ff = c.hidden_dim;
  if (c.n_heads <= 0 || c.dim % c.n_heads != 0)
    return Status::Corrupt(fmt::format("dim {} is not a multiple of n_heads {}", c.dim, c.n_heads));
  hp.head_dim = c.dim / c.n_heads;
  hp.n_rot = hp.head_dim;
  hp.attn_scale = 1.0f / std::sqrt(static_cast<float>(hp.head_dim));
  hp.rms_eps = 1e-5f;  // llama2.c's rmsnorm constant
  hp.rope_freq_base = 10000.0f;
  hp.rope_type = RopeType::kNorm;
  STRATA_RETURN_IF_ERROR(CheckHParams(hp));
  std::vector<std::string> names;
  std::vector<Tensor> tensors;
  for (const NamedTensor& t : llama2c_->tensors()) {
    names.push_back(t.name);
    tensors.push_back(t.tensor);
  }
  STRATA_RETURN_IF_ERROR(BindWeights(hp, names, [&](const std::string& name) {
    const Tensor* t = llama2c_->FindTensor(name);
    return t != nullptr ? *t : Tensor{};
  }, &weights_));
  CountTensors(tensors);
  STRATA_RETURN_IF_ERROR(Vocab::FromLlama2cFile(env, options.tokenizer_path, &vocab_));
  if (vocab_->n_tokens() != hp.n_vocab)
    return Status::InvalidArgument(fmt::format("tokenizer has {} tokens but the model's vocabulary has {}",
                                               vocab_->n_tokens(), hp.n_vocab));
  name_ = BaseName(options.path);
  return Status::Ok();
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

void Model::CountTensors(const std::vector<Tensor>& tensors) {
  std::map<DType, int> types;
  for (const Tensor& t : tensors) {
    n_params_ += static_cast<uint64_t>(t.elements());
    ++types[t.type];
  }
  tensor_types_.assign(types.begin(), types.end());
  std::stable_sort(tensor_types_.begin(), tensor_types_.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
}

Status Model::CheckRopeFactors() const {
  const ModelWeights& w = weights_;
  for (const auto& [name, t] : {std::pair{"rope_freqs.weight", &w.rope_freqs},
                                std::pair{"rope_factors_long.weight", &w.rope_factors_long},
                                std::pair{"rope_factors_short.weight", &w.rope_factors_short}}) {
    if (t->data == nullptr) continue;
    const float* f = static_cast<const float*>(t->data);
    for (int64_t i = 0; i < t->elements(); ++i)
      if (!std::isfinite(f[i]) || f[i] <= 0.0f)
        return Status::Corrupt(fmt::format("tensor {} holds {} at {}: RoPE factors must be positive", name, f[i], i));
  }
  return Status::Ok();
}

void Model::NormsAndBiasesToF32() {
  ModelWeights& w = weights_;
  w.output_norm = ToF32(w.output_norm);
  w.output.b = ToF32(w.output.b);
  for (Tensor* t : {&w.rope_freqs, &w.rope_factors_long, &w.rope_factors_short}) *t = ToF32(*t);
  for (LayerWeights& l : w.layers) {
    for (Tensor* t : {&l.attn_norm, &l.attn_q_norm, &l.attn_k_norm, &l.attn_post_norm, &l.ffn_norm, &l.ffn_post_norm})
      *t = ToF32(*t);
    for (Linear* x : {&l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_gate, &l.ffn_up, &l.ffn_down}) x->b = ToF32(x->b);
  }
}

}  // namespace strata
