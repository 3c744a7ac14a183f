// llama.cpp's quantization mixes: which element type each tensor of a model
// gets for a llama.cpp file type (LLAMA_FTYPE: Q4_K_M, Q6_K, Q4_0, ...), the
// facts of llama-quantize (src/llama-quant.cpp of the pinned release) without
// an importance matrix:
//   - only matrices are quantized: >= 2 non-trivial dimensions, a name ending
//     in "weight", not a norm, not an MoE router or a few small special tensors;
//   - output.weight (or token_embd.weight when the classifier is tied to it)
//     takes Q6_K in every quantized file type but Q8_0 (and Q8_0 if its rows
//     do not split into the default type's blocks);
//   - the K mixes give some layers' attn_v (or fused attn_qkv) and ffn_down,
//     and attn_output, more bits, by the layer's position among the layers;
//   - a row length that is not a multiple of the chosen type's block size
//     falls back (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, Q2_K/Q3_K -> Q4_0,
//     IQ4_XS -> IQ4_NL), and to F16 if that does not fit either.
// Layer positions count tensors in llama.cpp's tensor order (LlamaTensorLess),
// which is also the order llama-quantize writes them in.
//
// Thread-safety: TensorTypeChooser is not thread-safe (it counts layers).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "format/gguf.h"

namespace strata {

// llama.cpp's LLAMA_FTYPE values (stored as general.file_type) of the file
// types strata writes.
enum class FileType : uint32_t {
  kAllF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ8_0 = 7,
  kQ5_0 = 8,
  kQ5_1 = 9,
  kQ2_K = 10,
  kQ3_K_S = 11,
  kQ3_K_M = 12,
  kQ3_K_L = 13,
  kQ4_K_S = 14,
  kQ4_K_M = 15,
  kQ5_K_S = 16,
  kQ5_K_M = 17,
  kQ6_K = 18,
  kIQ4_NL = 25,
  kIQ4_XS = 30,
  kBF16 = 32,
};

// "q4_k_m", "f16", ... (llama-quantize's names, lower case).
const char* FileTypeName(FileType f);
// Parses a name case-insensitively; "q4_k" and "q5_k" mean Q4_K_M and Q5_K_M, as in llama-quantize.
std::optional<FileType> ParseFileType(std::string_view name);
// "f32, f16, bf16, q8_0, ...": every file type, for messages.
std::string FileTypeNames();
// The type of most matrices in a file of type f.
DType DefaultType(FileType f);

// The model facts the mixes depend on, from GGUF metadata.
struct MixFacts {
  std::string arch;     // general.architecture
  int n_layer = 0;      // {arch}.block_count
  int n_head = 0;       // {arch}.attention.head_count
  int n_head_kv = 0;    // {arch}.attention.head_count_kv (default n_head)
  int n_expert = 0;     // {arch}.expert_count (default 0)
};
// Reads them; kCorrupt naming a missing or implausible block_count.
[[nodiscard]] Status ReadMixFacts(const gguf::GgufFile& f, MixFacts* facts);

// llama.cpp's tensor order: by layer number ("blk.N." prefix; other tensors
// first), then by name.
bool LlamaTensorLess(const std::string& a, const std::string& b);

class TensorTypeChooser {
 public:
  // names: every tensor of the model (the classifier is tied when there is
  // no output.weight; attn_v-like tensors are counted). pure: every matrix
  // takes DefaultType(ftype), up to the fallbacks (llama-quantize --pure).
  TensorTypeChooser(FileType ftype, MixFacts facts, const std::vector<std::string>& names, bool pure);

  // The type tensor t is written in, and whether that is a fallback for a
  // row length the chosen type cannot hold.
  // REQUIRES: called once per tensor, in LlamaTensorLess order.
  // Errors: kCorrupt when an MoE file's per-layer tensor has no "blk.N." layer.
  struct Choice {
    DType type = DType::kF32;
    bool fallback = false;
  };
  [[nodiscard]] Status Choose(const gguf::TensorInfo& t, Choice* choice);

 private:
  enum class Category { kOutput, kTokenEmbd, kAttnQkv, kAttnKvB, kAttnV, kAttnK, kAttnQ, kAttnOutput, kFfnUp,
                        kFfnGate, kFfnDown, kOther };
  static Category CategoryOf(const std::string& name);
  // llama.cpp's choice for a quantizable tensor before fallbacks.
  [[nodiscard]] Status MixType(const gguf::TensorInfo& t, Category c, DType* type);
  // The layer a per-layer counter stands for (MoE files: parsed from the name).
  [[nodiscard]] Status LayerOf(int counter, const std::string& name, int* layer) const;

  FileType ftype_;
  MixFacts facts_;
  bool pure_;
  bool tied_embeddings_ = true;
  bool is_70b_ = false;
  int n_attention_wv_ = 0;
  int i_attention_wv_ = 0, i_ffn_down_ = 0, i_ffn_gate_ = 0, i_ffn_up_ = 0;
};

}  // namespace strata
