// Model: a decoder-only transformer ready to run — its architecture and
// hyper-parameters (model/hparams.h), weight views into the mapped file or
// into the model's packed copy of the matrices (model/weights.h,
// ModelLoadOptions::pack_weights), and the tokenizer. Loaded from GGUF (the
// architectures of model/arch.h) or a llama2.c .bin with its tokenizer.bin.
//
// Thread-safety: immutable after Load (but for Mutate, see there); share
// freely between contexts/threads.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/env.h"
#include "core/status.h"
#include "core/tensor.h"
#include "model/arch.h"
#include "model/hparams.h"
#include "model/model_shard.h"
#include "model/weights.h"
#include "vocab/vocab.h"

namespace strata {
namespace gguf { class GgufFile; }
class Llama2cFile;

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
  // The part of the model this process holds (model/model_shard.h); rank,
  // size and split set, the layer range is filled in. Default: all of it.
  ModelShard shard;
};

class Model {
 public:
  [[nodiscard]] static Status Load(Env* env, const ModelLoadOptions& options, std::unique_ptr<Model>* out);
  ~Model();

  // The hyper-parameters of this process's shard (model/model_shard.h): under
  // --split tensor n_head, n_head_kv and n_ff are the rank's share.
  const HParams& hparams() const { return hparams_; }
  const ModelShard& shard() const { return shard_; }
  // Identifies the whole model (shape, first embedding bytes, output norm),
  // whatever the shard: sessions and the ranks' start-up check compare it.
  uint64_t fingerprint() const { return fingerprint_; }
  const ModelWeights& weights() const { return weights_; }
  // Changes the loaded model in place, for experiments and tests that switch
  // a feature off to measure what it does (e.g. clear the q/k biases).
  // REQUIRES: no Context or Engine uses the model; the result still
  // satisfies the shapes BindWeights checked.
  void Mutate(const std::function<void(HParams*, ModelWeights*)>& change) { change(&hparams_, &weights_); }
  const Vocab& vocab() const { return *vocab_; }
  // "stories260K" etc.: general.name or the file's base name.
  const std::string& name() const { return name_; }
  // Weight type that dominates the matrices (for the KV default and reports).
  DType weight_type() const { return weights_.layers.empty() ? DType::kF32 : weights_.layers[0].wq.w.type; }
  // Bytes of weights read per generated token (all matrices + norms).
  uint64_t weight_bytes() const { return StreamedWeightBytes(weights_); }
  // Parameters: elements of every tensor of the file (a tied output counted once).
  uint64_t n_params() const { return n_params_; }
  // Size of the model file in bytes.
  uint64_t file_bytes() const { return file_bytes_; }
  // How many of the file's tensors have each type, most frequent first.
  const std::vector<std::pair<DType, int>>& tensor_types() const { return tensor_types_; }

 private:
  Model() = default;
  [[nodiscard]] Status LoadGguf(Env* env, const ModelLoadOptions& options);
  [[nodiscard]] Status LoadLlama2c(Env* env, const ModelLoadOptions& options);
  // F32 copy of a small non-F32 1-D tensor (norm weights, biases), owned here.
  Tensor ToF32(const Tensor& t);
  // Every norm weight and bias as F32 (what the forward pass reads).
  void NormsAndBiasesToF32();
  // kCorrupt naming the tensor unless every RoPE frequency factor is finite and positive
  // (they divide the angles). REQUIRES: NormsAndBiasesToF32 ran.
  [[nodiscard]] Status CheckRopeFactors() const;
  // n_params_ and tensor_types_ from the file's tensors.
  void CountTensors(const std::vector<Tensor>& tensors);
  // Repoints every matrix MatMul reads at a copy in packed_ (repacked where
  // the best kernel path has a packed layout, else as it is) and releases the
  // file pages they came from.
  void PackMatrices(int32_t n_threads);
  void ReleaseFilePages(const Tensor& t) const;
  // Whether p is the start of one of shard_columns_.
  bool InShardColumns(const void* p) const;
  // fingerprint(): over the whole model's shape and bytes. REQUIRES: before ApplyShard.
  uint64_t ComputeFingerprint() const;
  // Starts reading t's bytes from the model file (MappedFile::WillNeed).
  void PrefetchFilePages(const Tensor& t) const;

  struct FreeDeleter {
    void operator()(void* p) const;
  };

  HParams hparams_;
  ModelShard shard_;
  uint64_t fingerprint_ = 0;
  ModelWeights weights_;
  uint64_t n_params_ = 0;
  uint64_t file_bytes_ = 0;
  std::vector<std::pair<DType, int>> tensor_types_;
  std::unique_ptr<Vocab> vocab_;
  std::string name_;
  std::unique_ptr<gguf::GgufFile> gguf_;     // owns the mapping weights_ points into
  std::unique_ptr<Llama2cFile> llama2c_;     // ditto, for .bin models
  std::vector<std::vector<float>> owned_;    // ToF32 conversions
  std::vector<std::vector<uint8_t>> shard_columns_;  // ApplyShard's column slices (until packed)
  std::unique_ptr<void, FreeDeleter> packed_;  // PackMatrices' copies, 2 MiB aligned
};

}  // namespace strata
