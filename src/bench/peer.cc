#include "bench/peer.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

extern char** environ;

namespace strata::bench {
namespace {

// Runs argv, capturing stdout; stderr passes through to ours.
Status Capture(const std::vector<std::string>& argv, std::string* out) {
  int fds[2];
  if (pipe(fds) != 0) return Status::IOError("pipe failed");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&fa, fds[0]);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    return Status::NotFound(fmt::format("cannot run {} (build it with bench/install_llamacpp.sh)", argv[0]));
  }
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) out->append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return Status::Internal(fmt::format("{} failed (status {})", argv[0], status));
  return Status::Ok();
}

// The harness's JSON object for test (it prints one per line).
Status RunHarness(std::vector<std::string> argv, const TestSpec& test, nlohmann::json* out) {
  std::string stdout_text;
  STRATA_RETURN_IF_ERROR(Capture(argv, &stdout_text));
  size_t start = 0;
  while (start < stdout_text.size()) {
    size_t end = stdout_text.find('\n', start);
    if (end == std::string::npos) end = stdout_text.size();
    nlohmann::json j = nlohmann::json::parse(stdout_text.substr(start, end - start), nullptr, /*allow_exceptions=*/false);
    start = end + 1;
    if (j.is_discarded() || !j.is_object() || j.value("test", "") != test.name()) continue;
    *out = std::move(j);
    return Status::Ok();
  }
  return Status::Corrupt(fmt::format("peer printed no result for {}", test.name()));
}

// j[key] as numbers, or Corrupt.
Status Numbers(const nlohmann::json& j, const char* key, std::vector<double>* out) {
  if (!j.contains(key) || !j[key].is_array()) return Status::Corrupt(fmt::format("peer result has no {} array", key));
  out->clear();
  for (const auto& v : j[key]) {
    if (!v.is_number()) return Status::Corrupt(fmt::format("peer result has a non-numeric {}", key));
    out->push_back(v.get<double>());
  }
  return Status::Ok();
}

std::vector<std::string> HarnessArgs(const std::string& harness, const std::string& model, const TestSpec& test,
                                     int threads, int reps) {
  const bool pp = test.kind == TestSpec::Kind::kPrompt;
  return {harness, "-m", model, "-p", pp ? std::to_string(test.n_tokens) : "0",
          "-n", pp ? "0" : std::to_string(test.n_tokens), "-t", std::to_string(threads),
          "-r", std::to_string(reps), "--json"};
}

}  // namespace

Status RunPeer(const std::string& harness, const std::string& model, const TestSpec& test, int threads, int reps,
               PeerResult* out) {
  std::vector<std::string> argv = HarnessArgs(harness, model, test, threads, reps);
  if (test.kind == TestSpec::Kind::kBatched) argv.insert(argv.end(), {"--batch-seqs", std::to_string(test.seqs)});
  nlohmann::json j;
  STRATA_RETURN_IF_ERROR(RunHarness(argv, test, &j));
  STRATA_RETURN_IF_ERROR(Numbers(j, "tokens_per_s", &out->tokens_per_s));
  if (!j.contains("peak_rss_bytes") || !j["peak_rss_bytes"].is_number_unsigned() || !j.contains("load_seconds") ||
      !j["load_seconds"].is_number())
    return Status::Corrupt("peer result has no peak_rss_bytes/load_seconds (rebuild: bench/install_llamacpp.sh)");
  out->peak_rss_bytes = j["peak_rss_bytes"].get<uint64_t>();
  out->load_seconds = j["load_seconds"].get<double>();
  out->info = std::move(j);
  return Status::Ok();
}

Status RunPeerPaired(const std::string& harness, const std::string& model, const TestSpec& test, int threads,
                     uint64_t probe_bytes, std::vector<PairedSample>* out) {
  std::vector<std::string> argv = HarnessArgs(harness, model, test, threads, 1);
  argv.insert(argv.end(), {"--paired-probe", std::to_string(probe_bytes >> 20)});
  nlohmann::json j;
  STRATA_RETURN_IF_ERROR(RunHarness(argv, test, &j));
  std::vector<double> token_s, probe_bps;
  STRATA_RETURN_IF_ERROR(Numbers(j, "paired_token_s", &token_s));
  STRATA_RETURN_IF_ERROR(Numbers(j, "paired_probe_bytes_per_s", &probe_bps));
  if (token_s.size() != probe_bps.size() || token_s.empty())
    return Status::Corrupt("peer paired run: token and probe arrays differ in length or are empty");
  for (size_t i = 0; i < token_s.size(); ++i) {
    if (!(token_s[i] > 0) || !(probe_bps[i] > 0)) return Status::Corrupt("peer paired run: a non-positive time or rate");
    out->push_back({token_s[i], probe_bps[i]});
  }
  return Status::Ok();
}

}  // namespace strata::bench
