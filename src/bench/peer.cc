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

}  // namespace

Status RunPeer(const std::string& harness, const std::string& model, const TestSpec& test, int threads, int reps,
               PeerResult* out) {
  const bool pp = test.kind == TestSpec::Kind::kPrompt;
  std::vector<std::string> argv = {harness, "-m", model, "-p", pp ? std::to_string(test.n_tokens) : "0",
                                   "-n", pp ? "0" : std::to_string(test.n_tokens), "-t", std::to_string(threads),
                                   "-r", std::to_string(reps), "--json"};
  if (test.kind == TestSpec::Kind::kBatched) argv.insert(argv.end(), {"--batch-seqs", std::to_string(test.seqs)});
  std::string stdout_text;
  STRATA_RETURN_IF_ERROR(Capture(argv, &stdout_text));
  // One JSON object per line; take the one for this test.
  size_t start = 0;
  while (start < stdout_text.size()) {
    size_t end = stdout_text.find('\n', start);
    if (end == std::string::npos) end = stdout_text.size();
    const std::string line = stdout_text.substr(start, end - start);
    start = end + 1;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object() || j.value("test", "") != test.name()) continue;
    if (!j.contains("tokens_per_s") || !j["tokens_per_s"].is_array())
      return Status::Corrupt("peer result has no tokens_per_s array");
    out->tokens_per_s.clear();
    for (const auto& v : j["tokens_per_s"]) {
      if (!v.is_number()) return Status::Corrupt("peer result has a non-numeric tokens_per_s");
      out->tokens_per_s.push_back(v.get<double>());
    }
    if (!j.contains("peak_rss_bytes") || !j["peak_rss_bytes"].is_number_unsigned() || !j.contains("load_seconds") ||
        !j["load_seconds"].is_number())
      return Status::Corrupt("peer result has no peak_rss_bytes/load_seconds (rebuild: bench/install_llamacpp.sh)");
    out->peak_rss_bytes = j["peak_rss_bytes"].get<uint64_t>();
    out->load_seconds = j["load_seconds"].get<double>();
    out->info = std::move(j);
    return Status::Ok();
  }
  return Status::Corrupt(fmt::format("peer printed no result for {}", test.name()));
}

}  // namespace strata::bench
