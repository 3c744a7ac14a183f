// Conformance of the Jinja interpreter with Python's jinja2, set up as
// transformers' apply_chat_template sets it up (tests/jinja/render_reference.py):
//   - the real chat templates that ship with llama.cpp's source (the git
//     bundle bench/install_llamacpp.sh installs; extracted into the build
//     directory by tests/jinja/extract_templates.sh, never committed) x the
//     conversations of tests/jinja/conversations.json, byte for byte,
//     including the ones that must raise (same raise_exception message);
//   - tests/jinja/snippets.json (semantics one construct at a time);
//   - random whitespace-control templates (tests/jinja/whitespace_cases.py).
// Needs /usr/bin/python3 with Debian's python3-jinja2 and the bundle: without
// them the tests skip, unless STRATA_REQUIRE_JINJA_CONFORMANCE=1 (CI sets
// it) makes that a failure.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "jinja_test_util.h"

namespace strata::jinja {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

constexpr const char* kSourceDir = STRATA_SOURCE_DIR;
constexpr const char* kBinaryDir = STRATA_BINARY_DIR;
constexpr const char* kPython = "/usr/bin/python3";

// Templates of the families the conformance must cover (issue 15): every one
// must be present in the bundle and render in Python for some conversation.
constexpr const char* kRequiredTemplates[] = {
    "meta-llama-Llama-3.1-8B-Instruct.jinja",
    "meta-llama-Llama-3.2-3B-Instruct.jinja",
    "meta-llama-Llama-3.3-70B-Instruct.jinja",
    "inline/bofenghuang_vigogne-2-70b-chat.jinja",  // Llama 2 chat format with <<SYS>>
    "inline/mistralai_Mistral-7B-Instruct-v0.2_mistralai_v1_template_with_a_system_prompt.jinja",
    "mistralai-Mistral-Nemo-Instruct-2407.jinja",
    "Mistral-Small-3.2-24B-Instruct-2506.jinja",
    "Qwen-Qwen2.5-7B-Instruct.jinja",
    "Qwen-Qwen3-0.6B.jinja",
    "google-gemma-2-2b-it.jinja",
    "inline/google_gemma-7b-it.jinja",
    "microsoft-Phi-3.5-mini-instruct.jinja",
    "inline/phi-4.jinja",
    "deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja",
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja",
    "CohereForAI-c4ai-command-r-plus-tool_use.jinja",
    "CohereForAI-c4ai-command-r7b-12-2024-tool_use.jinja",
    "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja",
    "NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja",
    "ibm-granite-granite-3.3-2B-Instruct.jinja",
    "HuggingFaceTB-SmolLM3-3B.jinja",
    "inline/teknium_OpenHermes-2.5-Mistral-7B.jinja",  // generic ChatML
};

bool Required() {
  const char* e = std::getenv("STRATA_REQUIRE_JINJA_CONFORMANCE");
  return e != nullptr && *e != '\0' && std::string_view(e) != "0";
}

// Runs a shell command; its stdout in *out (if given).
int RunCommand(const std::string& command, std::string* out = nullptr) {
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) return -1;
  char buf[1 << 16];
  size_t n = 0;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0)
    if (out != nullptr) out->append(buf, n);
  const int rc = pclose(p);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// Why the reference is unavailable, or "" if it is there.
std::string MissingPython() {
  if (RunCommand(std::string(kPython) + " -c 'import jinja2' 2>/dev/null") != 0)
    return "Python's jinja2 is not installed (apt-get install python3-jinja2; scripts/setup.sh does)";
  return "";
}

// The extracted templates: $STRATA_JINJA_TEMPLATES, or extracted from the
// bundle into the build directory. "" with *why set if unavailable.
fs::path TemplatesDir(std::string* why) {
  if (const char* dir = std::getenv("STRATA_JINJA_TEMPLATES"); dir != nullptr && *dir != '\0') return dir;
  const fs::path bundle = fs::path(kSourceDir) / "bench/node_modules/node-llama-cpp/llama/gitRelease.bundle";
  if (!fs::exists(bundle)) {
    *why = "llama.cpp's source bundle is not installed (run bench/install_llamacpp.sh)";
    return "";
  }
  const fs::path dest = fs::path(kBinaryDir) / "jinja-templates";
  const std::string command = std::string(kSourceDir) + "/tests/jinja/extract_templates.sh '" + bundle.string() +
                              "' '" + dest.string() + "' 2>&1";
  std::string log;
  if (RunCommand(command, &log) != 0) {
    *why = "extracting the templates failed: " + log;
    return "";
  }
  return dest;
}

#define STRATA_REQUIRE_OR_SKIP(why)          \
  do {                                       \
    const std::string reason = (why);        \
    if (!reason.empty()) {                   \
      if (Required()) FAIL() << reason;      \
      GTEST_SKIP() << reason;                \
    }                                        \
  } while (0)

struct Outcome {
  bool ok = false;
  bool raised = false;
  std::string text;  // the output, or the error message
};

// Renders every case with Python's jinja2 (one process for all).
std::vector<Outcome> PythonRender(const json& cases) {
  static std::atomic<int> counter{0};
  const fs::path request = fs::path(kBinaryDir) / ("jinja-request-" + std::to_string(getpid()) + "-" +
                                                   std::to_string(counter++) + ".json");
  {
    std::ofstream f(request, std::ios::binary);
    f << json{{"now", test::kNowSeconds}, {"cases", cases}}.dump();
  }
  std::string out;
  const int rc = RunCommand(std::string(kPython) + " " + kSourceDir + "/tests/jinja/render_reference.py < '" +
                         request.string() + "'",
                     &out);
  fs::remove(request);
  EXPECT_EQ(rc, 0) << "render_reference.py failed";
  std::vector<Outcome> outcomes;
  if (rc != 0) return outcomes;
  for (const json& r : json::parse(out)) {
    Outcome o;
    o.ok = r["ok"].get<bool>();
    o.raised = !o.ok && r["kind"] == "raised";
    o.text = o.ok ? r["output"].get<std::string>() : r["message"].get<std::string>();
    outcomes.push_back(std::move(o));
  }
  return outcomes;
}

Outcome StrataRender(const std::string& source, const json& variables) {
  Outcome o;
  std::unique_ptr<Template> t;
  if (Status s = Template::Parse(source, test::TestOptions(), &t); !s.ok()) {
    o.text = s.message();
    return o;
  }
  RenderError e;
  const Status s = t->Render(variables, &o.text, &e);
  o.ok = s.ok();
  if (!o.ok) {
    o.raised = e.kind == RenderError::Kind::kRaised;
    o.text = e.kind == RenderError::Kind::kRaised ? e.message : s.message();
  }
  return o;
}

// "" if strata agrees with Python on this case, else a description.
std::string Disagreement(const Outcome& python, const Outcome& strata) {
  if (python.ok && strata.ok) {
    if (python.text == strata.text) return "";
    size_t i = 0;
    while (i < python.text.size() && i < strata.text.size() && python.text[i] == strata.text[i]) ++i;
    const size_t from = i > 60 ? i - 60 : 0;
    return "outputs differ at byte " + std::to_string(i) + "\n  python: " + json(python.text.substr(from, 160)).dump() +
           "\n  strata: " + json(strata.text.substr(from, 160)).dump();
  }
  if (python.ok != strata.ok)
    return std::string(python.ok ? "python renders, strata fails: " + strata.text
                                 : "python fails (" + python.text + "), strata renders");
  if (python.raised != strata.raised || (python.raised && python.text != strata.text))
    return "different errors\n  python: " + python.text + "\n  strata: " + strata.text;
  return "";
}

// Compares strata with Python on cases ([{template, variables}]) labelled by
// names; reports up to 10 disagreements. Returns Python's outcomes.
std::vector<Outcome> ExpectAgreement(const json& cases, const std::vector<std::string>& names) {
  const std::vector<Outcome> python = PythonRender(cases);
  if (python.size() != cases.size()) {
    ADD_FAILURE() << "the reference rendered " << python.size() << " of " << cases.size() << " cases";
    return python;
  }
  int reported = 0, disagreements = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Outcome strata = StrataRender(cases[i]["template"].get<std::string>(), cases[i]["variables"]);
    const std::string d = Disagreement(python[i], strata);
    if (d.empty()) continue;
    ++disagreements;
    if (reported++ < 10) ADD_FAILURE() << names[i] << ": " << d;
  }
  EXPECT_EQ(disagreements, 0) << "of " << cases.size() << " cases";
  return python;
}

TEST(JinjaConformanceTest, RealChatTemplatesRenderLikePython) {
  STRATA_REQUIRE_OR_SKIP(MissingPython());
  std::string why;
  const fs::path dir = TemplatesDir(&why);
  STRATA_REQUIRE_OR_SKIP(why);

  std::vector<std::string> templates;
  for (const fs::path& d : {dir, dir / "inline"})
    for (const auto& entry : fs::directory_iterator(d))
      if (entry.path().extension() == ".jinja") templates.push_back(fs::relative(entry.path(), dir).string());
  std::sort(templates.begin(), templates.end());
  for (const char* required : kRequiredTemplates)
    ASSERT_TRUE(std::find(templates.begin(), templates.end(), required) != templates.end())
        << required << " is not in the bundle's templates";

  const json suite = json::parse(ReadFile(fs::path(kSourceDir) / "tests/jinja/conversations.json"));
  json cases = json::array();
  std::vector<std::string> names;
  for (const std::string& name : templates) {
    const std::string source = ReadFile(dir / name);
    for (const json& conversation : suite["conversations"]) {
      json variables = {{"messages", conversation["messages"]},
                        {"tools", conversation.value("tools", false) ? suite["tools"] : json(nullptr)},
                        {"documents", nullptr},
                        {"add_generation_prompt", conversation["add_generation_prompt"]},
                        {"bos_token", "<s>"},
                        {"eos_token", "</s>"}};
      cases.push_back({{"template", source}, {"variables", std::move(variables)}});
      names.push_back(name + " x " + conversation["name"].get<std::string>());
    }
  }
  const std::vector<Outcome> python = ExpectAgreement(cases, names);
  if (python.size() != cases.size()) return;

  // Guard against agreeing vacuously: each required template renders in
  // Python, and templates that must raise were compared.
  const size_t per_template = suite["conversations"].size();
  for (const char* required : kRequiredTemplates) {
    const size_t t = std::find(templates.begin(), templates.end(), required) - templates.begin();
    bool rendered = false;
    for (size_t c = 0; c < per_template; ++c) rendered |= python[t * per_template + c].ok;
    EXPECT_TRUE(rendered) << required << " renders no conversation in Python";
  }
  size_t ok = 0, raised = 0;
  for (const Outcome& o : python) {
    ok += o.ok;
    raised += o.raised;
  }
  EXPECT_GE(templates.size(), 60u);
  EXPECT_GE(ok, cases.size() * 3 / 4);
  EXPECT_GE(raised, 20u);
  std::printf("[ conformance ] %zu templates x %zu conversations: %zu rendered, %zu raised, %zu failed otherwise\n",
              templates.size(), per_template, ok, raised, cases.size() - ok - raised);
}

TEST(JinjaConformanceTest, SnippetsRenderLikePython) {
  STRATA_REQUIRE_OR_SKIP(MissingPython());
  const json snippets = json::parse(ReadFile(fs::path(kSourceDir) / "tests/jinja/snippets.json"));
  json cases = json::array();
  std::vector<std::string> names;
  for (const json& s : snippets) {
    cases.push_back({{"template", s[0]}, {"variables", s[1]}});
    names.push_back(s[0].get<std::string>().substr(0, 120));
  }
  ExpectAgreement(cases, names);
}

TEST(JinjaConformanceTest, WhitespaceControlMatchesPython) {
  STRATA_REQUIRE_OR_SKIP(MissingPython());
  std::string generated;
  ASSERT_EQ(RunCommand(std::string(kPython) + " " + kSourceDir + "/tests/jinja/whitespace_cases.py 15 1500", &generated), 0);
  json cases = json::array();
  std::vector<std::string> names;
  for (const json& s : json::parse(generated)) {
    cases.push_back({{"template", s[0]}, {"variables", s[1]}});
    names.push_back(s[0].dump());
  }
  ExpectAgreement(cases, names);
}

}  // namespace
}  // namespace strata::jinja
