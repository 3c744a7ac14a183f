#include "test_util.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace strata::testing {

std::string SharedDir() {
  const char* env = std::getenv("STRATA_SHARED_DIR");
  if (env != nullptr && *env != '\0') return env;
  return STRATA_DEFAULT_SHARED_DIR;
}

std::string SharedPath(const std::string& rel) { return SharedDir() + "/" + rel; }

std::string CliPath() { return STRATA_CLI_PATH; }

std::string MakeTempDir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp != nullptr ? tmp : "/tmp") + "/strata_test_XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  return tmpl;
}

CommandResult RunCommand(const std::vector<std::string>& argv, const std::string& stdin_data,
                         const CommandOptions& options) {
  signal(SIGPIPE, SIG_IGN);  // a child that exits early must not kill the test
  int in_pipe[2], out_pipe[2], err_pipe[2];
  if (pipe(in_pipe) != 0 || pipe(out_pipe) != 0 || pipe(err_pipe) != 0) throw std::runtime_error("pipe failed");
  pid_t pid = fork();
  if (pid == 0) {
    dup2(in_pipe[0], 0);
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    for (int fd : {in_pipe[0], in_pipe[1], out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) close(fd);
    if (options.unprivileged && geteuid() == 0 && (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0))
      _exit(126);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(in_pipe[0]);
  close(out_pipe[1]);
  close(err_pipe[1]);
  CommandResult r;
  size_t written = 0;
  int in_fd = in_pipe[1];
  if (stdin_data.empty()) {
    close(in_fd);
    in_fd = -1;
  }
  bool out_open = true, err_open = true;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(options.timeout_s);
  while (out_open || err_open || in_fd >= 0) {
    int wait_ms = -1;
    if (options.timeout_s > 0) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0 && !r.timed_out) {
        r.timed_out = true;
        kill(pid, SIGKILL);  // its pipes close as it dies
      }
      wait_ms = r.timed_out ? -1 : static_cast<int>(left.count()) + 1;
    }
    pollfd fds[3];
    int n = 0;
    int out_idx = -1, err_idx = -1, in_idx = -1;
    if (out_open) { out_idx = n; fds[n++] = {out_pipe[0], POLLIN, 0}; }
    if (err_open) { err_idx = n; fds[n++] = {err_pipe[0], POLLIN, 0}; }
    if (in_fd >= 0) { in_idx = n; fds[n++] = {in_fd, POLLOUT, 0}; }
    if (poll(fds, n, wait_ms) <= 0) continue;
    char buf[65536];
    if (out_idx >= 0 && fds[out_idx].revents) {
      ssize_t k = read(out_pipe[0], buf, sizeof buf);
      if (k <= 0) out_open = false; else r.out.append(buf, k);
    }
    if (err_idx >= 0 && fds[err_idx].revents) {
      ssize_t k = read(err_pipe[0], buf, sizeof buf);
      if (k <= 0) err_open = false; else r.err.append(buf, k);
    }
    if (in_idx >= 0 && fds[in_idx].revents) {
      ssize_t k = write(in_fd, stdin_data.data() + written, stdin_data.size() - written);
      if (k > 0) written += k;
      if (k < 0 || written == stdin_data.size()) { close(in_fd); in_fd = -1; }
    }
  }
  close(out_pipe[0]);
  close(err_pipe[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

std::vector<std::string> TempFiles(Env* env, const std::string& dir) {
  std::vector<std::string> names, temps;
  if (!env->ListDir(dir, &names).ok()) ADD_FAILURE() << "cannot list " << dir;
  for (const std::string& n : names) {
    const size_t at = n.rfind(".tmp.");
    if (at != std::string::npos && n.size() - at == 5 + 16) temps.push_back(n);
  }
  return temps;
}

std::unique_ptr<Model> SynthesizeAndLoad(Env* env, const SynthSpec& spec, const std::string& path) {
  Status s = SynthesizeModel(env, spec, path, 2);
  if (!s.ok()) {
    ADD_FAILURE() << "synthesize " << path << ": " << s.ToString();
    return nullptr;
  }
  ModelLoadOptions o;
  o.path = path;
  std::unique_ptr<Model> model;
  s = Model::Load(env, o, &model);
  if (!s.ok()) {
    ADD_FAILURE() << "load " << path << ": " << s.ToString();
    return nullptr;
  }
  return model;
}

}  // namespace strata::testing
