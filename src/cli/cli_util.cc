#include "cli/cli_util.h"

#include <unistd.h>

#include <cstdio>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <string_view>

#include "core/env.h"
#include <fmt/format.h>

#include "engine/attention_tuner.h"
#include "engine/rank_server.h"
#include "kv/session_file.h"

namespace strata::cli {

void Fail(const std::string& what, const Status& s) {
  std::fprintf(stderr, "strata: %s: %s\n", what.c_str(), s.message().c_str());
  throw CLI::RuntimeError(1);
}

void CheckOk(const std::string& what, const Status& s) {
  if (!s.ok()) Fail(what, s);
}

CLI::Validator NonEmpty() {
  return CLI::Validator([](std::string& value) { return value.empty() ? std::string("must not be empty") : ""; },
                        "", "NonEmpty");
}

std::string DefaultModelPath() {
  const char* env = std::getenv("STRATA_DEFAULT_MODEL");
  if (env != nullptr && *env != '\0') return env;
  return STRATA_BUNDLED_MODEL;
}

Status ParseLoraFlag(const std::string& text, LoraFlag* out) {
  LoraFlag f;
  std::string rest = text;
  const size_t eq = rest.find('=');
  if (eq != std::string::npos && rest.substr(0, eq).find('/') == std::string::npos) {
    f.name = rest.substr(0, eq);
    rest = rest.substr(eq + 1);
    if (f.name.empty()) return Status::InvalidArgument(fmt::format("--lora '{}': empty name before '='", text));
  }
  const size_t colon = rest.rfind(':');
  if (colon != std::string::npos) {
    const std::string num = rest.substr(colon + 1);
    char* end = nullptr;
    const float v = std::strtof(num.c_str(), &end);
    if (!num.empty() && end == num.c_str() + num.size()) {
      if (!std::isfinite(v)) return Status::InvalidArgument(fmt::format("--lora '{}': scale is not finite", text));
      f.scale = v;
      rest = rest.substr(0, colon);
    }
  }
  if (rest.empty()) return Status::InvalidArgument(fmt::format("--lora '{}': no file", text));
  f.path = rest;
  if (f.name.empty()) {
    const size_t slash = rest.rfind('/');
    f.name = slash == std::string::npos ? rest : rest.substr(slash + 1);
    const size_t dot = f.name.rfind('.');
    if (dot != std::string::npos && dot > 0) f.name.resize(dot);
  }
  *out = std::move(f);
  return Status::Ok();
}

std::optional<uint64_t> ParseSize(const std::string& text) {
  size_t i = 0;
  uint64_t v = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    const uint64_t d = static_cast<uint64_t>(text[i++] - '0');
    if (v > (UINT64_MAX - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  if (i == 0) return std::nullopt;
  int shift = 0;
  if (i < text.size()) {
    switch (std::toupper(static_cast<unsigned char>(text[i]))) {
      case 'K': shift = 10; break;
      case 'M': shift = 20; break;
      case 'G': shift = 30; break;
      case 'T': shift = 40; break;
      case 'B': shift = 0; --i; break;
      default: return std::nullopt;
    }
    ++i;
    if (i < text.size() && std::toupper(static_cast<unsigned char>(text[i])) == 'B') ++i;
  }
  if (i != text.size() || (shift > 0 && v > (UINT64_MAX >> shift))) return std::nullopt;
  return v << shift;
}

std::string SessionDir(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("STRATA_SESSION_DIR"); env != nullptr && *env != '\0') return env;
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0')
    return std::string(home) + "/.cache/strata/sessions";
  return ".strata-sessions";
}

void AddTuneFlags(CLI::App* cmd, TuneFlags* flags) {
  cmd->add_option("--tune-cache", flags->cache,
                  "Attention autotuner cache file (default: $STRATA_TUNE_CACHE, ~/.cache/strata/attention-grid)")
      ->check(NonEmpty());
  cmd->add_flag("--no-tune", flags->off, "Use the default attention grid instead of the tuned one");
}

void AddSamplingFlags(CLI::App* cmd, SamplingFlags* flags, const std::string& what) {
  cmd->add_option("--temp", flags->temperature, "Temperature" + what + "; 0 = greedy")
      ->capture_default_str()->check(CLI::Range(0.0f, 100.0f));
  cmd->add_option("--top-k", flags->top_k, "Top-k sampling" + what + " (0 = off)")
      ->capture_default_str()->check(CLI::Range(0, 1 << 24));
  cmd->add_option("--top-p", flags->top_p, "Top-p sampling" + what + " (1 = off)")
      ->capture_default_str()->check(CLI::Range(0.0f, 1.0f));
  cmd->add_option("--min-p", flags->min_p, "Min-p sampling" + what + " (0 = off)")
      ->capture_default_str()->check(CLI::Range(0.0f, 1.0f));
  cmd->add_option("--repeat-penalty", flags->repeat_penalty, "Repetition penalty" + what + " (1 = off)")
      ->capture_default_str()
      ->check(CLI::Range(0.0f, 100.0f))
      ->check(CLI::Validator(
          [](const std::string& v) { return std::stof(v) > 0 ? std::string() : std::string("must be greater than 0"); },
          "> 0"));
}

void AddSpecFlags(CLI::App* cmd, SpecFlags* flags) {
  cmd->add_option("--spec", flags->spec,
                  "Speculative decoding: ngram (prompt lookup: continuations seen earlier in the text) or draft "
                  "(a draft model, --draft-model)")
      ->check(CLI::IsMember({"ngram", "draft"}));
  cmd->add_option("--draft-model", flags->draft_model,
                  "Speculative decoding with this smaller model (same vocabulary) drafting tokens for the model")
      ->check(NonEmpty());
  cmd->add_option("--draft-min", flags->draft_min, "Speculative decoding: fewest tokens drafted per round (1-64)")
      ->check(CLI::Range(1, 64));
  cmd->add_option("--draft-max", flags->draft_max,
                  "Speculative decoding: most tokens drafted per round (1-64); the length adapts to the measured "
                  "acceptance in between")
      ->check(CLI::Range(1, 64));
}

std::string SpecFlags::Method() const {
  if (spec == "draft" && draft_model.empty()) Fail("--spec draft", Status::InvalidArgument("needs --draft-model"));
  if (spec == "ngram" && !draft_model.empty())
    Fail("--spec ngram", Status::InvalidArgument("drafts without a model; --draft-model is for --spec draft"));
  if (draft_min > draft_max)
    Fail("--draft-min", Status::InvalidArgument(fmt::format("{} is above --draft-max {}", draft_min, draft_max)));
  return draft_model.empty() ? spec : "draft";
}

void AddMpiFlags(CLI::App* cmd, MpiFlags* flags) {
  cmd->add_option("--split", flags->split,
                  "Under mpirun: how the ranks share the model: tensor (heads and FFN columns), layer (layer ranges) "
                  "or none")
      ->check(CLI::IsMember({"none", "tensor", "layer"}));
  cmd->add_option("--mpi-timeout", flags->timeout_s,
                  "Under mpirun: seconds a rank waits for the others before ending the job")
      ->check(CLI::Range(0.1, 86400.0));
  cmd->add_flag("--kv-nodes", flags->kv_nodes,
                "Under mpirun with --split none: rank 0 runs the whole model and the other ranks hold KV blocks that "
                "do not fit rank 0's --kv-ram, each in its own --kv-ram");
  cmd->add_option("--kv-remote", flags->kv_remote,
                  "--kv-nodes: read remote blocks by moving the computation (compute), the data (data), or the cheaper "
                  "by measured cost (auto)")
      ->check(CLI::IsMember({"auto", "compute", "data"}));
  cmd->add_option("--micro-batch", flags->micro_batch,
                  fmt::format("--split layer: a step of more tokens (a long prompt) runs through the ranks as "
                              "micro-batches of at most this many, keeping every rank busy; 0: whole steps (default {})",
                              kDefaultMicroBatchTokens))
      ->check(CLI::Range(0, 1 << 16));
}

Cluster* JoinCluster(const MpiFlags& flags) {
  Split split = Split::kNone;
  CheckOk("--split", ParseSplit(flags.split, &split));
  KvNodePolicy policy = KvNodePolicy::kAuto;
  CheckOk("--kv-remote", ParseKvNodePolicy(flags.kv_remote, &policy));
  if (flags.micro_batch >= 0 && split != Split::kLayer)
    Fail("--micro-batch", Status::InvalidArgument(fmt::format("needs --split layer, not --split {}", flags.split)));
  if (!Cluster::Launched()) {
    if (flags.kv_nodes) Fail("--kv-nodes", Status::InvalidArgument("needs mpirun (KV nodes are the other ranks)"));
    if (flags.micro_batch >= 0) Fail("--micro-batch", Status::InvalidArgument("needs mpirun (the pipeline's stages are ranks)"));
    return nullptr;
  }
  if (flags.kv_nodes && split != Split::kNone)
    Fail("--kv-nodes", Status::InvalidArgument(fmt::format("needs --split none, not --split {}", flags.split)));

  Cluster* cluster = nullptr;
  CheckOk("mpi", Cluster::Join(split, flags.timeout_s, &cluster));
  if (cluster->size() > 1 && split == Split::kNone && !flags.kv_nodes)
    Fail("--split", Status::InvalidArgument("none under mpirun makes the other ranks KV nodes: pass --kv-nodes (or "
                                            "--split tensor or layer to share the model)"));
  cluster->set_kv_node_policy(policy);
  if (split == Split::kLayer) cluster->set_micro_batch_tokens(flags.micro_batch >= 0 ? flags.micro_batch : kDefaultMicroBatchTokens);
  return cluster;
}

uint64_t SizeOption(const std::string& text, const char* flag) {
  if (text.empty()) return UINT64_MAX;
  std::optional<uint64_t> v = ParseSize(text);
  if (!v) Fail(flag, Status::InvalidArgument("'" + text + "' is not a size (e.g. 512M, 4G)"));
  return *v;
}

void ServeOtherRank(Cluster& cluster, const std::string& model, const std::string& tokenizer, int32_t threads,
                    const std::string& tune_cache, uint64_t kv_ram) {
  const std::string what = fmt::format("rank {} of {}", cluster.rank(), cluster.size());
  cluster.set_kv_budget(kv_ram);
  ModelLoadOptions options;
  options.path = model;
  options.tokenizer_path = tokenizer;
  std::unique_ptr<Model> m;
  CheckOk(what, LoadRankModel(Env::Default(), options, &m));
  CheckOk(what, ServeRank(*m, cluster, RankServerParams{threads, tune_cache, nullptr}));
}

namespace {

std::string UncheckedTuneCachePath(const TuneFlags& flags) {
  if (flags.off) return "";
  if (!flags.cache.empty()) return flags.cache;
  if (const char* env = std::getenv("STRATA_TUNE_CACHE"); env != nullptr && *env != '\0')
    return std::string_view(env) == "off" ? "" : env;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg != '\0')
    return std::string(xdg) + "/strata/attention-grid";
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0')
    return std::string(home) + "/.cache/strata/attention-grid";
  return "";
}

}  // namespace

std::string TuneCachePath(const TuneFlags& flags) {
  std::string path = UncheckedTuneCachePath(flags);
  if (!path.empty()) CheckOk("attention tune cache", CheckTuneCachePath(Env::Default(), path));
  return path;
}

std::string SessionPath(const std::string& dir, const std::string& name) {
  if (!IsValidSessionName(name))
    Fail("session", Status::InvalidArgument("invalid session name '" + name +
                                            "' (use letters, digits, '.', '_' and '-'; not starting with '.')"));
  return dir + "/" + name + ".session";
}

Status ReadSmallFile(const std::string& path, uint64_t max_bytes, std::string* out) {
  Env* env = Env::Default();
  STRATA_RETURN_IF_ERROR(env->CheckRegularFile(path));  // "PATH: no such file", "is a directory", ...
  uint64_t size = 0;
  STRATA_RETURN_IF_ERROR(env->FileSize(path, &size));
  std::unique_ptr<MappedFile> file;
  if (size <= max_bytes) STRATA_RETURN_IF_ERROR(env->MapFile(path, &file));  // regular files only
  if (size > max_bytes || file->size() > max_bytes)
    return Status::InvalidArgument(path + " is larger than " + std::to_string(max_bytes) + " bytes");
  if (file->size() == 0) return Status::InvalidArgument(path + " is empty");
  out->assign(reinterpret_cast<const char*>(file->data()), file->size());
  return Status::Ok();
}

bool StderrIsTty() { return ::isatty(STDERR_FILENO) == 1; }

void ProgressBar::Update(uint64_t done, uint64_t total) {
  if (!enabled_ || total == 0) return;
  int percent = static_cast<int>(done * 100 / total);
  if (percent == last_percent_) return;
  last_percent_ = percent;
  constexpr int kWidth = 40;
  int filled = percent * kWidth / 100;
  std::fprintf(stderr, "\r%s [%.*s%*s] %3d%%", label_.c_str(), filled,
               "########################################", kWidth - filled, "", percent);
  std::fflush(stderr);
}

void ProgressBar::Finish() {
  if (enabled_ && last_percent_ >= 0) std::fputc('\n', stderr);
}

}  // namespace strata::cli
