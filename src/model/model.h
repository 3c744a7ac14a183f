// Model: a Llama-family model ready to run — hyper-parameters, weight views
// into the mapped file or into the model's packed copy of the matrices (see
// ModelLoadOptions::pack_weights), and the tokenizer. Loaded from GGUF
// (general.architecture = "llama") or a llama2.c .bin with its tokenizer.bin.
//
// Thread-safety: immutable after Load; share freely between contexts/threads.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/env.h"
#include "core/status.h"
#include "core/tensor.h"
#include "vocab/vocab.h"

namespace strata {
namespace gguf { class GgufFile; }
class Llama2cFile;

// How rotary embeddings pair dimensions (llama.cpp's rope types).
enum class RopeType : int {
  kNorm = 0,  // pairs (2i, 2i+1): llama, llama2.c
  kNeox = 2,  // pairs (i, i + n_rot/2): gpt-neox style
};

struct LlamaHParams {
  int32_t n_vocab = 0;
  int32_t n_ctx_train = 0;   // context length the model was trained for
  int32_t n_embd = 0;
  int32_t n_layer = 0;
  int32_t n_head = 0;
  int32_t n_head_kv = 0;     // grouped-query attention: n_head % n_head_kv == 0
  int32_t n_ff = 0;
  int32_t head_dim = 0;      // n_embd / n_head
  int32_t n_rot = 0;         // rotary dimensions per head, <= head_dim
  float rms_eps = 1e-5f;
  float rope_freq_base = 10000.0f;
  float rope_freq_scale = 1.0f;  // positions are multiplied by this (linear scaling = 1/factor)
  RopeType rope_type = RopeType::kNorm;

  int32_t n_embd_kv() const { return n_head_kv * head_dim; }
};

// Shapes in ggml order [inner, outer]: a matrix [n_in, n_out] has n_out rows of n_in.
struct LayerWeights {
  Tensor attn_norm;  // F32 [n_embd]
  Tensor wq;         // [n_embd, n_embd]
  Tensor wk;         // [n_embd, n_embd_kv]
  Tensor wv;         // [n_embd, n_embd_kv]
  Tensor wo;         // [n_embd, n_embd]
  Tensor ffn_norm;   // F32 [n_embd]
  Tensor ffn_gate;   // [n_embd, n_ff]   (w1)
  Tensor ffn_up;     // [n_embd, n_ff]   (w3)
  Tensor ffn_down;   // [n_ff, n_embd]   (w2)
};

struct LlamaWeights {
  Tensor token_embd;   // [n_embd, n_vocab], any supported type (rows dequantized on lookup)
  Tensor output_norm;  // F32 [n_embd]
  Tensor output;       // [n_embd, n_vocab]; the same bytes as token_embd when tied
  std::vector<LayerWeights> layers;  // [n_layer]
};

// Bytes of every layer's matrices and norms, the output norm and the output
// matrix: what generating one token streams, besides its embedding row.
uint64_t StreamedWeightBytes(const LlamaWeights& w);

struct ModelLoadOptions {
  std::string path;            // .gguf, or llama2.c .bin
  std::string tokenizer_path;  // llama2.c tokenizer.bin; required for .bin models
  // Repack the matrices once into the layout of the fastest kernel path
  // (kernels::PackMatrix; same results, ~1 s per GB at load) instead of
  // reading them in the file's layout; matrices without a packed layout are
  // copied as they are. The copy lives in anonymous memory (huge pages where
  // the OS allows) and the file pages it replaces are released, so resident
  // memory stays about the file's size.
  bool pack_weights = true;
  int32_t pack_threads = 0;  // threads packing matrices side by side; 0: one per core
};

class Model {
 public:
  [[nodiscard]] static Status Load(Env* env, const ModelLoadOptions& options, std::unique_ptr<Model>* out);
  ~Model();

  const LlamaHParams& hparams() const { return hparams_; }
  const LlamaWeights& weights() const { return weights_; }
  const Vocab& vocab() const { return *vocab_; }
  // "stories260K" etc.: general.name or the file's base name.
  const std::string& name() const { return name_; }
  // Weight type that dominates the matrices (for the KV default and reports).
  DType weight_type() const { return weights_.layers.empty() ? DType::kF32 : weights_.layers[0].wq.type; }
  // Bytes of weights read per generated token (all matrices + norms).
  uint64_t weight_bytes() const { return StreamedWeightBytes(weights_); }

 private:
  Model() = default;
  [[nodiscard]] Status LoadGguf(Env* env, const ModelLoadOptions& options);
  [[nodiscard]] Status LoadLlama2c(Env* env, const ModelLoadOptions& options);
  // Checks every tensor's type and shape against hparams_.
  [[nodiscard]] Status Validate() const;
  // Looks every weight up by its GGUF name (missing ones stay null for Validate).
  void BindWeights(const std::function<Tensor(const std::string&)>& tensor);
  // F32 copy of a small non-F32 1-D tensor (norm weights), owned here.
  Tensor ToF32(const Tensor& t);
  // Repoints every matrix MatMul reads at a copy in packed_ (repacked where
  // the best kernel path has a packed layout, else as it is) and releases the
  // file pages they came from.
  void PackMatrices(int32_t n_threads);
  void ReleaseFilePages(const Tensor& t) const;
  // Starts reading t's bytes from the model file (MappedFile::WillNeed).
  void PrefetchFilePages(const Tensor& t) const;

  struct FreeDeleter {
    void operator()(void* p) const;
  };

  LlamaHParams hparams_;
  LlamaWeights weights_;
  std::unique_ptr<Vocab> vocab_;
  std::string name_;
  std::unique_ptr<gguf::GgufFile> gguf_;     // owns the mapping weights_ points into
  std::unique_ptr<Llama2cFile> llama2c_;     // ditto, for .bin models
  std::vector<std::vector<float>> owned_;    // ToF32 conversions
  std::unique_ptr<void, FreeDeleter> packed_;  // PackMatrices' copies, 2 MiB aligned
};

}  // namespace strata
