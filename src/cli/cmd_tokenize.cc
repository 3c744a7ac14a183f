// `strata tokenize [-m MODEL] [--tokenizer TOK.bin] [--no-bos] [--parse-special]`
//
// Reads all of standard input byte for byte (nothing stripped; at most
// kMaxInputBytes) and prints its token ids on one line, separated by single spaces. The vocabulary is the
// GGUF model's own, or --tokenizer (a llama2.c tokenizer.bin), which a
// llama2.c .bin model requires. BOS (and EOS) are added as the vocabulary's
// flags say; --no-bos leaves BOS out.
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "core/env.h"
#include "format/gguf.h"
#include "vocab/vocab.h"

namespace strata::cli {
namespace {

// The text is held in memory with its token ids (4 bytes each).
constexpr uint64_t kMaxInputBytes = uint64_t{256} << 20;

struct TokenizeOptions {
  std::string model;
  std::string tokenizer;
  bool no_bos = false;
  bool parse_special = false;
};

bool IsGguf(Env* env, const std::string& path) {
  std::unique_ptr<RandomAccessFile> file;
  CheckOk("tokenize", env->NewRandomAccessFile(path, &file));
  uint64_t size = 0;
  CheckOk("tokenize", env->FileSize(path, &size));
  char magic[4] = {};
  if (size < sizeof magic) return false;
  CheckOk("tokenize", file->Read(0, sizeof magic, magic));
  return std::string_view(magic, sizeof magic) == "GGUF";
}

std::unique_ptr<Vocab> LoadVocab(Env* env, const TokenizeOptions& o) {
  const bool gguf = IsGguf(env, o.model);
  std::unique_ptr<Vocab> vocab;
  if (!o.tokenizer.empty()) {
    CheckOk("tokenize", Vocab::FromLlama2cFile(env, o.tokenizer, &vocab));  // its errors name the file
  } else if (gguf) {
    std::unique_ptr<gguf::GgufFile> file;
    CheckOk("tokenize", gguf::GgufFile::Open(env, o.model, &file));
    CheckOk("tokenize: " + o.model, Vocab::FromGguf(*file, &vocab));
  } else {
    Fail("tokenize: " + o.model,
         Status::InvalidArgument("not a GGUF file; a llama2.c .bin model needs --tokenizer TOKENIZER.bin"));
  }
  return vocab;
}

void RunTokenize(TokenizeOptions o) {
  Env* env = Env::Default();
  if (o.model.empty()) o.model = DefaultModelPath();
  const std::unique_ptr<Vocab> vocab = LoadVocab(env, o);
  std::string text;
  CheckOk("tokenize", env->ReadStdin(kMaxInputBytes, &text));

  std::vector<TokenId> ids;
  if (vocab->add_bos() && !o.no_bos) ids.push_back(vocab->bos());
  const std::vector<TokenId> body = vocab->Encode(text, /*add_special=*/false, o.parse_special);
  ids.insert(ids.end(), body.begin(), body.end());
  if (vocab->add_eos()) ids.push_back(vocab->eos());

  std::string line;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) line += ' ';
    line += std::to_string(ids[i]);
  }
  line += '\n';
  if (std::fwrite(line.data(), 1, line.size(), stdout) != line.size() || std::fflush(stdout) != 0) {
    Fail("tokenize", Status::IOError("writing standard output failed"));
  }
}

}  // namespace

void AddTokenizeCommand(CLI::App& app) {
  auto opts = std::make_shared<TokenizeOptions>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Print the token ids of standard input");
  cmd->add_option("-m,--model", opts->model, "Model: GGUF, or llama2.c .bin with --tokenizer (default: bundled model)")
      ->check(NonEmpty());
  cmd->add_option("--tokenizer", opts->tokenizer, "llama2.c tokenizer.bin to use instead of the model's vocabulary")
      ->check(NonEmpty());
  cmd->add_flag("--no-bos", opts->no_bos, "Do not prepend BOS");
  cmd->add_flag("--parse-special", opts->parse_special, "Recognise special tokens written in the text, e.g. <s>");
  cmd->callback([opts] { RunTokenize(*opts); });
}

}  // namespace strata::cli
