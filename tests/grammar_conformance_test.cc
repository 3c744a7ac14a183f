// Grammars against llama.cpp's own grammar sampler (the peer's prebuilt
// libllama through bench/.peer/llamacpp_conformance), on the bundled
// stories260K vocabulary:
//   - llama.cpp's example grammars and grammars written here are accepted
//     or refused alike (with the refusals strata adds, listed);
//   - along random walks through each grammar, the tokens strata allows at
//     every step are exactly the tokens llama.cpp allows — over the text
//     tokens and end of generation. Not compared, by design: control tokens
//     (llama.cpp matches their text, e.g. "<s>", against the grammar; strata
//     reaches them only through <[id]>) and lone bytes 80-FF, the start of a
//     character (llama.cpp takes F5-FF as one, where strata refuses bytes no
//     UTF-8 character starts with; and under a negated class llama.cpp
//     refuses a lead byte if any character it may start is excluded —
//     [^\x85] refuses C2 — where strata allows it if some character it may
//     start is allowed); walks stay on whole characters (llama.cpp also
//     accepts overlong and surrogate encodings that strata refuses).
// Without the peer the tests skip, unless STRATA_REQUIRE_PEER=1.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "core/utf8.h"
#include "grammar/vocab_gbnf_options.h"
#include "grammar_test_util.h"

namespace strata::grammar {
namespace {

std::string PeerTool() { return std::string(STRATA_SOURCE_DIR) + "/bench/.peer/llamacpp_conformance"; }

#define REQUIRE_GRAMMAR_PEER()                                                                          \
  do {                                                                                                  \
    if (!Env::Default()->FileExists(PeerTool())) {                                                      \
      if (testing::PeerSourceRequired()) FAIL() << "STRATA_REQUIRE_PEER=1 but " << PeerTool() << " is not built"; \
      GTEST_SKIP() << "llama.cpp peer not built (bench/install_llamacpp.sh)";                           \
    }                                                                                                   \
  } while (0)

struct PeerRun {
  bool parsed = false;
  std::vector<std::vector<int32_t>> allowed;  // [step] token ids llama.cpp allows after tokens[0..step)
};

PeerRun RunPeer(const std::string& gbnf, const std::vector<int32_t>& tokens) {
  const std::string path = testing::MakeTempDir() + "/g.gbnf";
  std::ofstream(path, std::ios::binary) << gbnf;
  std::string list;
  for (size_t i = 0; i < tokens.size(); ++i) list += (i > 0 ? "," : "") + std::to_string(tokens[i]);
  std::vector<std::string> argv = {PeerTool(), "grammar", "-m", testing::SharedPath("models/stories260K.gguf"), "-g", path};
  if (!list.empty()) argv.insert(argv.end(), {"-t", list});
  const testing::CommandResult r = testing::RunCommand(argv);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  PeerRun out;
  std::istringstream lines(r.out);
  std::string line;
  if (!std::getline(lines, line)) return out;
  out.parsed = nlohmann::json::parse(line)["parsed"].get<bool>();
  while (std::getline(lines, line)) out.allowed.push_back(nlohmann::json::parse(line).get<std::vector<int32_t>>());
  return out;
}

bool StrataParses(const std::string& gbnf) {
  Grammar g;
  return ParseGbnf(gbnf, VocabGbnfOptions(testing::Stories260K().vocab()), &g).ok();
}

// Tokens whose grammar treatment the two engines share (see the top).
bool Compared(int32_t t) {
  const Vocab& v = testing::Stories260K().vocab();
  if (v.IsEog(t)) return true;
  if (v.token_type(t) == TokenType::kControl || v.token_type(t) == TokenType::kUnknown) return false;
  const std::string piece = v.TokenToPiece(t);
  return !(piece.size() == 1 && static_cast<uint8_t>(piece[0]) >= 0x80);
}

// Grammars written here, beside llama.cpp's examples.
const char* const kGrammars[] = {
    "root ::= [ぁ-ゟ]+ \"。\"",
    "root ::= (\" the\" | \" then\" | \"cat\" [0-9]{1,3})+ \".\"",
    "root ::= \"{\" ws (pair (\",\" ws pair)*)? \"}\"\npair ::= \"\\\"\" [a-z]{1,4} \"\\\"\" ws \":\" ws [0-9]+ ws\nws ::= [ \\t\\n]*",
    "root ::= ([^\\n]{0,20} \"\\n\"){2}",
    "root ::= \"a\"? \"b\"* (\"c\" | \"d\" \"e\"?){1,3}",
    "root ::= x\nx ::= \"(\" x \")\" | \"[\" x \"]\" | \"\"",
};

TEST(GrammarConformance, AcceptedAndRefusedLikeLlamaCpp) {
  REQUIRE_GRAMMAR_PEER();
  std::vector<std::string> accepted(std::begin(kGrammars), std::end(kGrammars));
  const std::string dir = testing::LlamaCppGrammarsDir();
  ASSERT_FALSE(dir.empty()) << "llama.cpp's grammars are not available";
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".gbnf") continue;
    std::ifstream f(entry.path(), std::ios::binary);
    std::stringstream text;
    text << f.rdbuf();
    accepted.push_back(text.str());
  }
  for (const std::string& g : accepted) {
    EXPECT_TRUE(StrataParses(g)) << g;
    EXPECT_TRUE(RunPeer(g, {}).parsed) << g;
  }
  const char* const refused[] = {
      "root ::= foo",                  // undefined rule
      "foo ::= \"a\"",                 // no root
      "root ::= root \"a\" | \"b\"",   // left recursion
      "root ::= x\nx ::= \"a\"? x",    // left recursion through a nullable prefix
      "root ::= (\"a\"",               // unclosed group
      "root ::= \"a",                  // unclosed literal
      "root ::= [ab",                  // unclosed class
      "root ::= \"\\q\"",              // unknown escape
      "root ::= \"\\x4\"",             // short hex escape
      "root := \"a\"",                 // no ::=
      "root ::= *",                    // repetition of nothing
      "root ::= \"a\"{2001}",          // above the repetition bound
      "root ::= \"a\" )",              // stray character
  };
  for (const char* g : refused) {
    EXPECT_FALSE(StrataParses(g)) << g;
    EXPECT_FALSE(RunPeer(g, {}).parsed) << g;
  }
  // Where strata is stricter (gbnf_parser.h): llama.cpp takes these.
  for (const char* g : {"root ::= \"a\"\nroot ::= \"b\"", "root ::= [z-a] | \"x\"", "root ::= <[99999]>"}) {
    EXPECT_FALSE(StrataParses(g)) << g;
    EXPECT_TRUE(RunPeer(g, {}).parsed) << g;
  }
}

TEST(GrammarConformance, AllowedTokensEqualLlamaCppAlongRandomWalks) {
  REQUIRE_GRAMMAR_PEER();
  const Vocab& v = testing::Stories260K().vocab();
  std::vector<std::string> grammars(std::begin(kGrammars), std::end(kGrammars));
  const std::string dir = testing::LlamaCppGrammarsDir();
  ASSERT_FALSE(dir.empty());
  for (const char* name : {"json.gbnf", "arithmetic.gbnf", "list.gbnf", "chess.gbnf", "japanese.gbnf", "c.gbnf"}) {
    std::ifstream f(std::filesystem::path(dir) / name, std::ios::binary);
    std::stringstream text;
    text << f.rdbuf();
    grammars.push_back(text.str());
  }
  std::mt19937 rng(17);
  int steps_compared = 0;
  for (const std::string& gbnf : grammars) {
    const auto g = testing::ParsedGrammar(gbnf);
    ASSERT_NE(g, nullptr);
    for (int walk = 0; walk < 3; ++walk) {
      // A walk: random allowed tokens whose text is whole characters, up to 40 of them.
      auto m = testing::MatcherFor(g);
      std::vector<int32_t> tokens;
      std::vector<std::vector<int32_t>> ours;
      for (int step = 0; step <= 40; ++step) {
        const auto mask = m->AllowedTokens();
        std::vector<int32_t> allowed, next;
        for (int32_t t = 0; t < v.n_tokens(); ++t) {
          if (!testing::Allowed(mask, t)) continue;
          if (Compared(t)) allowed.push_back(t);
          if (!v.IsEog(t) && utf8::IsValid(v.TokenToPiece(t)) && !v.TokenToPiece(t).empty()) next.push_back(t);
        }
        ours.push_back(allowed);
        if (next.empty() || step == 40) break;
        const int32_t t = next[std::uniform_int_distribution<size_t>(0, next.size() - 1)(rng)];
        ASSERT_TRUE(m->Accept(t));
        tokens.push_back(t);
      }
      const PeerRun peer = RunPeer(gbnf, tokens);
      ASSERT_TRUE(peer.parsed);
      ASSERT_EQ(peer.allowed.size(), ours.size()) << "llama.cpp refused a token strata allowed in\n" << gbnf;
      for (size_t step = 0; step < ours.size(); ++step) {
        std::vector<int32_t> theirs;
        for (const int32_t t : peer.allowed[step])
          if (Compared(t)) theirs.push_back(t);
        std::string prefix;
        for (size_t i = 0; i < step; ++i) prefix += v.TokenToPiece(tokens[i]);
        std::string diff;
        for (const int32_t t : ours[step])
          if (!std::binary_search(theirs.begin(), theirs.end(), t)) diff += " +" + std::to_string(t) + "'" + v.TokenToPiece(t) + "'";
        for (const int32_t t : theirs)
          if (!std::binary_search(ours[step].begin(), ours[step].end(), t)) diff += " -" + std::to_string(t) + "'" + v.TokenToPiece(t) + "'";
        ASSERT_EQ(ours[step], theirs) << "after '" << prefix << "' strata allows (+) / llama.cpp allows (-):" << diff
                                      << "\nin\n" << gbnf;
        ++steps_compared;
      }
    }
  }
  EXPECT_GT(steps_compared, 300);
}

}  // namespace
}  // namespace strata::grammar
