// Helpers of the grammar tests: llama.cpp's example grammars (extracted from
// the peer's source bundle into the build directory, never committed), the
// bundled model's vocabulary and its byte tokens, and a grammar matcher over
// a GBNF text.
#pragma once

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "grammar/gbnf_parser.h"
#include "grammar/grammar_matcher.h"
#include "grammar/token_trie.h"
#include "model/model.h"
#include "test_util.h"

namespace strata::testing {

// STRATA_REQUIRE_PEER=1: tests that need llama.cpp's source bundle fail without it.
inline bool PeerSourceRequired() {
  const char* env = std::getenv("STRATA_REQUIRE_PEER");
  return env != nullptr && std::string(env) == "1";
}

// The directory holding llama.cpp's grammars/*.gbnf, extracted from the
// bundle bench/install_llamacpp.sh installs; "" if it is not installed.
inline std::string LlamaCppGrammarsDir() {
  namespace fs = std::filesystem;
  const fs::path bundle = fs::path(STRATA_SOURCE_DIR) / "bench/node_modules/node-llama-cpp/llama/gitRelease.bundle";
  if (!fs::exists(bundle)) return "";
  const fs::path dest = fs::path(STRATA_BINARY_DIR) / "llamacpp-grammars";
  const std::string command = std::string(STRATA_SOURCE_DIR) + "/tests/grammar/extract_grammars.sh '" +
                              bundle.string() + "' '" + dest.string() + "' >&2";
  if (std::system(command.c_str()) != 0) return "";
  return dest.string();
}

// The bundled stories260K model (512 tokens, byte fallback: every byte has a token).
inline const Model& Stories260K() {
  static const std::unique_ptr<Model> model = [] {
    ModelLoadOptions o;
    o.path = SharedPath("models/stories260K.gguf");
    std::unique_ptr<Model> m;
    const Status s = Model::Load(Env::Default(), o, &m);
    if (!s.ok()) ADD_FAILURE() << s.ToString();
    return m;
  }();
  return *model;
}

inline std::shared_ptr<const grammar::TokenTrie> Stories260KTrie() {
  static const std::shared_ptr<const grammar::TokenTrie> trie = grammar::TokenTrie::Build(Stories260K().vocab());
  return trie;
}

// [b]: the byte token of byte b in stories260K's vocabulary.
inline const std::array<int32_t, 256>& ByteTokens() {
  static const std::array<int32_t, 256> bytes = [] {
    std::array<int32_t, 256> b{};
    b.fill(-1);
    const Vocab& v = Stories260K().vocab();
    for (int32_t id = 0; id < v.n_tokens(); ++id) {
      if (v.token_type(id) != TokenType::kByte) continue;
      const std::string piece = v.TokenToPiece(id);
      if (piece.size() == 1) b[static_cast<uint8_t>(piece[0])] = id;
    }
    for (int i = 0; i < 256; ++i)
      if (b[i] < 0) ADD_FAILURE() << "no byte token for " << i;
    return b;
  }();
  return bytes;
}

// A GBNF text parsed; null (and a test failure) if it does not parse.
inline std::shared_ptr<const grammar::Grammar> ParsedGrammar(const std::string& gbnf) {
  auto g = std::make_shared<grammar::Grammar>();
  const Status s = grammar::ParseGbnf(gbnf, {}, g.get());
  if (!s.ok()) {
    ADD_FAILURE() << s.ToString() << "\n" << gbnf;
    return nullptr;
  }
  return g;
}

// A matcher over stories260K's vocabulary; null (and a test failure) if the grammar is null or names bad tokens.
inline std::unique_ptr<grammar::GrammarMatcher> MatcherFor(std::shared_ptr<const grammar::Grammar> g) {
  if (g == nullptr) return nullptr;
  std::unique_ptr<grammar::GrammarMatcher> m;
  const Status c = grammar::GrammarMatcher::Create(std::move(g), Stories260KTrie(), &m);
  if (!c.ok()) ADD_FAILURE() << c.ToString();
  return m;
}

inline std::unique_ptr<grammar::GrammarMatcher> MatcherFor(const std::string& gbnf) {
  return MatcherFor(ParsedGrammar(gbnf));
}

// Feeds text byte by byte (byte tokens); false at the first refused byte.
inline bool AcceptBytes(grammar::GrammarMatcher& m, const std::string& text) {
  for (const char c : text)
    if (!m.Accept(ByteTokens()[static_cast<uint8_t>(c)])) return false;
  return true;
}

// Whether the grammar matches text exactly (all of it, and may end there).
inline bool Matches(const std::string& gbnf, const std::string& text) {
  auto m = MatcherFor(gbnf);
  return m != nullptr && AcceptBytes(*m, text) && m->CanEnd();
}

inline bool Allowed(std::span<const uint64_t> mask, int32_t t) { return (mask[t >> 6] >> (t & 63)) & 1; }

}  // namespace strata::testing
