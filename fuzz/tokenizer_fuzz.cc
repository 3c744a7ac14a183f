// libFuzzer target for the tokenizers: encodes arbitrary bytes with the
// llama-spm (SentencePiece), gpt-2 (byte-level BPE) and bert-bge (WordPiece)
// vocabularies, with and without special-token parsing, decodes the result at
// once and through a StreamDecoder, and aborts on any broken property:
//   - every id is inside the vocabulary;
//   - without special parsing, decode(encode(x)) == x wherever the tokenizer
//     is lossless: any bytes for gpt-2 (all 256 bytes are tokens), valid
//     UTF-8 without '▁' for llama-spm (byte fallback covers the rest), never
//     for WordPiece (it lower-cases and drops whitespace);
//   - the stream decoder's output is valid UTF-8 and equals Decode's
//     whenever that is valid UTF-8.
//
// The vocabularies are read once from $STRATA_SHARED_DIR/vocab (default
// ../shared/vocab, relative to the working directory), e.g.
//   STRATA_SHARED_DIR=/path/to/shared ./build-vocab-fuzz/tokenizer_fuzz -max_total_time=60
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/env.h"
#include "core/utf8.h"
#include "format/gguf.h"
#include "vocab/vocab.h"

namespace {

using strata::TokenId;
using strata::Vocab;

// Which inputs decode(encode(x)) must reproduce.
enum class Lossless { kAnyBytes, kValidUtf8, kNever };

struct FuzzVocab {
  std::unique_ptr<Vocab> vocab;
  Lossless lossless;
};

std::unique_ptr<Vocab> LoadOrDie(const std::string& path) {
  std::unique_ptr<strata::gguf::GgufFile> file;
  strata::Status s = strata::gguf::GgufFile::Open(strata::Env::Default(), path, &file);
  std::unique_ptr<Vocab> vocab;
  if (s.ok()) s = Vocab::FromGguf(*file, &vocab);
  if (!s.ok()) {
    std::fprintf(stderr, "tokenizer_fuzz: %s: %s (set STRATA_SHARED_DIR)\n", path.c_str(), s.ToString().c_str());
    std::abort();
  }
  return vocab;
}

std::vector<FuzzVocab>& Vocabs() {
  static std::vector<FuzzVocab> vocabs = [] {
    const char* env = std::getenv("STRATA_SHARED_DIR");
    const std::string dir = std::string(env != nullptr && *env != '\0' ? env : "../shared") + "/vocab/";
    std::vector<FuzzVocab> v;
    v.push_back({LoadOrDie(dir + "ggml-vocab-llama-spm.gguf"), Lossless::kValidUtf8});
    v.push_back({LoadOrDie(dir + "ggml-vocab-gpt-2.gguf"), Lossless::kAnyBytes});
    v.push_back({LoadOrDie(dir + "ggml-vocab-bert-bge.gguf"), Lossless::kNever});
    return v;
  }();
  return vocabs;
}

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "tokenizer_fuzz: property violated: %s\n", what);
    std::abort();
  }
}

void FuzzOne(const FuzzVocab& fv, std::string_view text, bool parse_special) {
  const Vocab& vocab = *fv.vocab;
  const std::vector<TokenId> ids = vocab.Encode(text, /*add_special=*/true, parse_special);
  for (TokenId id : ids) Check(id >= 0 && id < vocab.n_tokens(), "id inside the vocabulary");
  const std::string decoded = vocab.Decode(ids);

  if (!parse_special) {
    const bool lossless =
        fv.lossless == Lossless::kAnyBytes ||
        (fv.lossless == Lossless::kValidUtf8 && strata::utf8::IsValid(text) &&
         text.find("\xE2\x96\x81") == std::string_view::npos);
    if (lossless) Check(decoded == text, "decode(encode(text)) == text");
  }

  strata::StreamDecoder stream(vocab);
  std::string streamed;
  TokenId prev = -1;
  for (TokenId id : ids) {
    streamed += stream.Push(id, prev);
    prev = id;
  }
  streamed += stream.Flush();
  Check(strata::utf8::IsValid(streamed), "stream output is valid UTF-8");
  if (strata::utf8::IsValid(decoded)) Check(streamed == decoded, "stream output equals Decode");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  Vocabs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (const FuzzVocab& fv : Vocabs()) {
    FuzzOne(fv, text, /*parse_special=*/false);
    FuzzOne(fv, text, /*parse_special=*/true);
  }
  return 0;
}
