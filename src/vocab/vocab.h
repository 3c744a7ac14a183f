// Vocab: a model's tokenizer, driven by GGUF metadata (tokenizer.ggml.*) or a
// llama2.c tokenizer.bin. Encodes text to token ids and decodes ids to exact
// bytes.
//
// Supported tokenizer.ggml.model values: "llama" (SentencePiece-style BPE by
// scores, byte fallback, leading-space handling), "gpt2" (byte-level BPE by
// merges, with the pre-tokenizer named by tokenizer.ggml.pre) and "bert"
// (WordPiece). Anything else is kUnsupported, naming it. Tokenization follows
// llama.cpp (src/llama-vocab.cpp) and, through it, SentencePiece and HF
// tokenizers; see spm_vocab.h, bpe_vocab.h and wpm_vocab.h for the details.
//
// Thread-safety: immutable after construction; Encode/Decode are const and
// safe to call concurrently.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/env.h"
#include "core/status.h"

namespace strata {
namespace gguf { class GgufFile; }

using TokenId = int32_t;

// llama.cpp's token attribute types (tokenizer.ggml.token_type), append-only.
enum class TokenType : int32_t {
  kUndefined = 0, kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6,
};

class Vocab {
 public:
  virtual ~Vocab() = default;

  // Errors: kNotFound if file has no tokenizer.ggml.model; kCorrupt naming
  // the key or token for inconsistent metadata (lengths, types, ids out of
  // range, merges naming unknown tokens, ...); kUnsupported naming an unknown
  // model or pre-tokenizer. Missing keys get llama.cpp's defaults.
  [[nodiscard]] static Status FromGguf(const gguf::GgufFile& file, std::unique_ptr<Vocab>* out);
  // llama2.c tokenizer.bin: SentencePiece-style, BOS=1, EOS=2, UNK=0, byte
  // tokens "<0xXX>", add_bos true, add_space_prefix true. kCorrupt for a
  // truncated or inconsistent file; Env errors as they come (a file over 64 MiB
  // is refused unread).
  [[nodiscard]] static Status FromLlama2cFile(Env* env, const std::string& path, std::unique_ptr<Vocab>* out);

  // Text -> ids. add_special: prepend BOS / append EOS (and SEP for "bert")
  // as the vocab's flags say. parse_special: also recognise control tokens
  // written literally in text (e.g. "<|im_start|>"); user-defined tokens are
  // always recognised, as in llama.cpp.
  // Invalid UTF-8 in text is encoded as the bytes it is (byte fallback) for
  // "llama" vocabularies and bytewise for "gpt2"; "bert" drops it, as it
  // drops control characters. Encode never fails.
  virtual std::vector<TokenId> Encode(std::string_view text, bool add_special, bool parse_special) const = 0;

  // The exact bytes token id stands for in running text (byte tokens -> the
  // byte, '▁' -> ' ', byte-level BPE unmapped). Control tokens render as ""
  // unless render_special. An out-of-range id renders as "".
  virtual std::string TokenToPiece(TokenId id, bool render_special = false) const = 0;

  // Concatenation of pieces; like SentencePiece, strips the one leading space
  // that add_space_prefix introduced when the first token follows BOS (or is first).
  std::string Decode(const std::vector<TokenId>& ids) const;

  // What id contributes to Decode's output when it follows prev (-1: id comes
  // first): TokenToPiece(id), minus the leading space Decode strips.
  std::string DecodePiece(TokenId id, TokenId prev) const;

  virtual int32_t n_tokens() const = 0;
  virtual const std::string& token_text(TokenId id) const = 0;  // raw vocab entry; "" if out of range
  virtual TokenType token_type(TokenId id) const = 0;  // kUndefined if out of range
  virtual TokenId bos() const = 0;  // -1 if none
  virtual TokenId eos() const = 0;  // -1 if none
  virtual bool add_bos() const = 0;
  virtual bool add_eos() const = 0;
  virtual bool add_space_prefix() const = 0;
  // End of generation: EOS, EOT, or another end-of-generation control token.
  virtual bool IsEog(TokenId id) const = 0;
  virtual const std::string& model_name() const = 0;  // "llama", "gpt2" or "bert"
  virtual const std::string& pre_name() const = 0;    // pre-tokenizer, "default" if none
};

// Turns a stream of tokens into text that is always complete UTF-8: bytes of a
// character split across tokens are held back until the character completes.
// Invalid sequences are emitted as U+FFFD. Not thread-safe.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Vocab& vocab) : vocab_(vocab) {}
  // prev is the token before id in the sequence (-1 if none): a leading space
  // after BOS is stripped as in Decode.
  std::string Push(TokenId id, TokenId prev);
  // Whatever is held back (an incomplete final character, as U+FFFD).
  std::string Flush();

 private:
  const Vocab& vocab_;
  std::string pending_;
};

}  // namespace strata
