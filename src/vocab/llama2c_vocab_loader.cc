// Vocab::FromLlama2cFile: llama2.c's tokenizer.bin, written by its
// tokenizer.py export from a SentencePiece model:
//   int32 max_token_length
//   per token, until the end of the file: float32 score, int32 len, len bytes
// (little-endian). The export replaced '▁' by ' ' in every piece and wrote
// BOS/EOS as "\n<s>\n" / "\n</s>\n"; loading undoes both, so the result
// equals the SentencePiece vocabulary it came from.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "vocab/byte_token.h"
#include "vocab/vocab.h"
#include "vocab/vocab_spec.h"

namespace strata {

namespace {

constexpr std::string_view kSpaceMark = "\xE2\x96\x81";  // U+2581 '▁'

// Larger than any real tokenizer.bin (Llama 2's 32000 pieces: 424 KiB; a
// 256K-piece vocabulary is a few MiB), small enough to read into memory.
constexpr uint64_t kMaxFileBytes = uint64_t{64} << 20;

// Reads a little-endian 4-byte value at *pos, advancing it.
// REQUIRES: *pos + 4 <= data.size().
template <class T>
T ReadLe4(std::string_view data, size_t* pos) {
  static_assert(sizeof(T) == 4);
  uint32_t bits = 0;
  for (int i = 3; i >= 0; --i) bits = bits << 8 | static_cast<uint8_t>(data[*pos + i]);
  *pos += 4;
  T value;
  std::memcpy(&value, &bits, 4);
  return value;
}

std::string PieceText(std::string_view raw, size_t id) {
  if (id == 0) return "<unk>";
  if (id == 1) return "<s>";
  if (id == 2) return "</s>";
  std::string text;
  for (char c : raw) {
    if (c == ' ') {
      text.append(kSpaceMark);
    } else {
      text.push_back(c);
    }
  }
  return text;
}

TokenType PieceType(std::string_view text, size_t id) {
  if (id == 0) return TokenType::kUnknown;
  if (id <= 2) return TokenType::kControl;
  return ParseByteToken(text) ? TokenType::kByte : TokenType::kNormal;
}

Status Parse(std::string_view data, VocabSpec* spec) {
  if (data.size() < 4) return Status::Corrupt("shorter than its 4-byte header");
  size_t pos = 0;
  const auto max_len = ReadLe4<int32_t>(data, &pos);
  if (max_len <= 0) return Status::Corrupt("max_token_length " + std::to_string(max_len) + " is not positive");
  while (pos < data.size()) {
    const size_t id = spec->tokens.size();
    if (data.size() - pos < 8) return Status::Corrupt("token " + std::to_string(id) + " is truncated");
    const auto score = ReadLe4<float>(data, &pos);
    const auto len = ReadLe4<int32_t>(data, &pos);
    if (len < 0 || len > max_len) {
      return Status::Corrupt("token " + std::to_string(id) + " has length " + std::to_string(len) +
                             " outside [0, max_token_length=" + std::to_string(max_len) + "]");
    }
    if (data.size() - pos < static_cast<size_t>(len)) {
      return Status::Corrupt("token " + std::to_string(id) + " runs past the end of the file");
    }
    std::string text = PieceText(data.substr(pos, len), id);
    pos += len;
    spec->types.push_back(PieceType(text, id));
    spec->tokens.push_back(std::move(text));
    spec->scores.push_back(score);
  }
  if (spec->tokens.size() < 3) return Status::Corrupt("fewer than the 3 tokens <unk>, <s>, </s>");
  return Status::Ok();
}

}  // namespace

Status Vocab::FromLlama2cFile(Env* env, const std::string& path, std::unique_ptr<Vocab>* out) {
  std::string data;
  STRATA_RETURN_IF_ERROR(env->ReadFile(path, kMaxFileBytes, &data));
  VocabSpec spec;
  spec.model = "llama";
  STRATA_RETURN_IF_ERROR(Parse(data, &spec).WithContext("llama2.c tokenizer " + path));
  spec.unk = 0;
  spec.bos = 1;
  spec.eos = 2;
  spec.add_bos = true;
  spec.add_space_prefix = true;
  return MakeVocab(spec, out).WithContext("llama2.c tokenizer " + path);
}

}  // namespace strata
