// Synthetic models: a GGUF of any supported architecture and shape with
// random weights and a small real tokenizer, for benchmarks and tests at sizes
// no test-data file has, and for conformance tests against llama.cpp (which
// loads the result too).
//
// Contents (ARCH = general.architecture, llama by default):
//   metadata  general.architecture, general.name, general.file_type,
//             ARCH.{context_length, embedding_length, block_count,
//             feed_forward_length, attention.head_count, attention.head_count_kv,
//             rope.dimension_count (= head_dim), attention.layer_norm_rms_epsilon
//             (1e-5; 1e-6 for qwen2/qwen3/gemma*), rope.freq_base (10000; 1e6 for
//             qwen2/qwen3/gemma3; 500000 with rope_freqs), vocab_size}, plus
//             ARCH.attention.key_length/value_length when head_dim is given,
//             ARCH.rope.scaling.type/factor with a rope_scaling
//   tokenizer SentencePiece-style ("llama", pre "default") of exactly n_vocab
//             tokens: <unk>, <s>, </s>, the 256 byte tokens <0x00>..<0xFF>, then
//             normal pieces "▁", letters, digits, punctuation and, by increasing
//             length, "▁"-prefixed and plain lowercase letter strings. Every
//             piece of length k > 1 is a piece of length k-1 plus one character,
//             so each is reachable by merges. Scores: 0 for special and byte
//             tokens, -i for the i-th normal piece.
//   tensors   token_embd.weight [n_embd, n_vocab], then per layer N
//             blk.N.{attn_norm [n_embd] F32, attn_q [n_embd, n_embd],
//             attn_k/attn_v [n_embd, n_head_kv*head_dim], attn_output [n_embd, n_embd],
//             ffn_norm [n_embd] F32, ffn_gate/ffn_up [n_embd, n_ff], ffn_down [n_ff, n_embd]}
//             .weight, then output_norm.weight [n_embd] F32, output.weight [n_embd, n_vocab].
//             (attn_q rows and attn_output columns are n_head*head_dim.)
//             qwen2 adds blk.N.attn_{q,k,v}.bias F32 after each of those matrices;
//             qwen3 (and gemma3) add blk.N.attn_q_norm/attn_k_norm.weight [head_dim] F32 after attn_v;
//             llama with rope_freqs starts with rope_freqs.weight [head_dim/2] F32: Llama 3
//             scaling factors (factor 8, low/high frequency factors 1 and 4) computed
//             for an original context of n_ctx, so that they matter at short positions.
//             phi3 fuses attn_q/k/v into blk.N.attn_qkv [n_embd, q + 2 kv] (rows [Q | K | V])
//             and ffn_gate/ffn_up into blk.N.ffn_up [n_embd, 2 n_ff] (rows [gate | up]);
//             with longrope it starts with rope_factors_long.weight and
//             rope_factors_short.weight [head_dim/2] F32 (long: 16^(i/(h-1)), short:
//             1 + i/(h-1), h = head_dim/2) and writes phi3.rope.scaling.original_context_length
//             = n_ctx_orig and, when n_ctx > n_ctx_orig, phi3.rope.scaling.attn_factor =
//             sqrt(1 + ln(n_ctx / n_ctx_orig) / ln(n_ctx_orig)) (as Phi-3's conversion does).
//             gemma, gemma2 and gemma3 have no output.weight (gemma3 files need not
//             have one; the others' output is always token_embd); gemma2 and gemma3 add
//             blk.N.post_attention_norm.weight after attn_output and
//             blk.N.post_ffw_norm.weight after ffn_down ([n_embd] F32, norms); gemma3,
//             like qwen3, has q/k norms; with a sliding window gemma3 writes
//             rope.freq_base_swa 10000 (its global layers' base is 1e6).
//
// Weight distribution of SynthWeights::kSmall (mean 0, std ~0.02, so
// activations stay finite); norms are 1.0, biases 0.
//   f32/f16: (sum of four uniform 16-bit integers - 131070) * 0.02/37837, an
//            Irwin-Hall(4) approximation of a normal, rounded to the type.
//   q8_0:    blocks generated directly: quants = (sum of four uniform 6-bit
//            integers) - 126, in [-126, 126], std 36.94; scale d = fp16(0.02/36.94).
//   q4_0:    blocks generated directly: value q-8 = (sum of two uniform 3-bit
//            integers) - 7, in [-7, 7], std 3.24; scale d = fp16(0.02/3.24).
// SynthWeights::kConformance draws the same shapes of distribution with a
// std per tensor, so that the model computes something far from uniform and
// float rounding moves log-probabilities far less than the conformance bounds
// (the embedding dominates the residual stream, each layer adds 1-3 to it):
//   token_embd 8 (gemma*, whose embeddings are scaled by sqrt(n_embd):
//   8/sqrt(n_embd)); attn_q/attn_k 1/sqrt(n_embd) (qwen3, gemma3: 3/sqrt(n_embd),
//   so that their q/k norms matter); attn_v 1/sqrt(n_embd); attn_output 1.5/sqrt(n_q);
//   ffn_gate/ffn_up 1/sqrt(n_embd); ffn_down 2.5/sqrt(n_ff); output
//   4/sqrt(n_embd) (logits std ~4); norms 1 + N(0, 0.2), but output_norm
//   0.5 + N(0, 0.2) where the output is tied to token_embd (logits std ~4);
//   q/k norms 1.5 + N(0, 0.3); biases N(0, 0.5).
// Rows are seeded from (seed, tensor index, row), so the bytes depend only on
// the spec, never on n_threads.
//
// Thread-safety: SynthesizeModel is reentrant; it owns its thread pool.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/env.h"
#include "core/status.h"
#include "model/arch.h"

namespace strata {

// The weight types synth writes, as ParseDType spells them.
inline constexpr const char* kSynthTypeNames = "f32, f16, bf16, q8_0, q4_0";

// rope.scaling.type written with rope.scaling.factor (none: neither); yarn
// also writes rope.scaling.original_context_length = n_ctx_orig.
enum class SynthRopeScaling : uint8_t { kNone, kLinear, kYarn };

enum class SynthWeights : uint8_t {
  kSmall,        // std 0.02 everywhere: benchmarks (speed does not depend on values)
  kConformance,  // per-tensor scales: conformance tests (see above)
};

struct SynthSpec {
  int n_layer = 0;
  int n_embd = 0;
  int n_ff = 0;
  int n_head = 0;
  int n_head_kv = 0;
  int n_vocab = 0;
  int n_ctx = 2048;
  DType type = DType::kF32;  // of the weight matrices: one of kSynthTypeNames
  uint64_t seed = 0;
  Arch arch = Arch::kLlama;
  int head_dim = 0;         // 0: n_embd / n_head (else written as attention.key_length)
  bool rope_freqs = false;  // llama only: Llama 3 rope_freqs.weight
  bool longrope = false;    // phi3 only: LongRoPE factors for an original context of n_ctx_orig
  int n_ctx_orig = 0;       // with longrope or YaRN: in [1, n_ctx]
  // Written when > 0 (else llama.cpp's defaults apply: gemma2 4096, 50, 30;
  // gemma3 no window, no soft-cap):
  int n_swa = 0;               // gemma2, gemma3: attention.sliding_window
  float attn_softcap = 0.0f;   // gemma2: attn_logit_softcapping
  float final_softcap = 0.0f;  // gemma2, gemma3: final_logit_softcapping
  SynthRopeScaling rope_scaling = SynthRopeScaling::kNone;
  float rope_scaling_factor = 0.0f;  // > 1 with a rope_scaling
  SynthWeights weights = SynthWeights::kSmall;
};

// OK if spec describes a model SynthesizeModel can write: every count positive,
// n_embd % n_head == 0 unless head_dim is given, n_head % n_head_kv == 0,
// even head_dim, n_embd, n_ff and n_head * head_dim multiples of 32 for
// quantized types, n_vocab >= 260, rope_freqs only for llama, and every size
// within limits that keep tensor sizes far from overflow, longrope only for
// phi3, 1 <= n_ctx_orig <= n_ctx exactly with longrope or YaRN, for phi3 n_head * head_dim =
// n_embd, a sliding window and final soft-cap (non-negative) only for gemma2
// and gemma3, an attention soft-cap only for gemma2, a rope scaling factor > 1
// exactly when a rope_scaling is given.
// Else kInvalidArgument.
[[nodiscard]] Status ValidateSynthSpec(const SynthSpec& spec);

// The first n tokens of the synthetic vocabulary described above.
// REQUIRES: n >= 0.
std::vector<std::string> SynthVocabTokens(int n);

// progress(done_bytes, total_bytes) of tensor data, after each tensor.
using SynthProgress = std::function<void(uint64_t done_bytes, uint64_t total_bytes)>;

// Writes the model to path atomically. REQUIRES: n_threads >= 1.
[[nodiscard]] Status SynthesizeModel(Env* env, const SynthSpec& spec, const std::string& path, int n_threads,
                                     const SynthProgress& progress = nullptr);

}  // namespace strata
