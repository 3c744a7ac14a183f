#include "cli/interrupt.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace strata::cli {
namespace {

std::atomic<bool> g_interrupted{false};
int g_pipe[2] = {-1, -1};  // [read end, write end], both non-blocking
static_assert(std::atomic<bool>::is_always_lock_free, "the handler may only touch lock-free atomics");

void OnInterrupt(int) {
  const int saved = errno;
  g_interrupted.store(true);
  const char byte = 1;
  [[maybe_unused]] ssize_t n = ::write(g_pipe[1], &byte, 1);  // a full pipe already says "interrupted"
  errno = saved;
}

}  // namespace

Status InstallInterruptHandler() {
  if (g_pipe[0] >= 0) return Status::Ok();
  if (::pipe2(g_pipe, O_NONBLOCK | O_CLOEXEC) != 0)
    return Status::IOError(std::string("cannot create a pipe: ") + std::strerror(errno));
  struct sigaction sa {};
  sa.sa_handler = OnInterrupt;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // reads are woken through the pipe, not by EINTR
  if (::sigaction(SIGINT, &sa, nullptr) != 0)
    return Status::IOError(std::string("cannot handle SIGINT: ") + std::strerror(errno));
  return Status::Ok();
}

const std::atomic<bool>& InterruptFlag() { return g_interrupted; }

int InterruptFd() { return g_pipe[0]; }

void ClearInterrupt() {
  char buf[64];
  while (::read(g_pipe[0], buf, sizeof buf) > 0) {
  }
  g_interrupted.store(false);
}

}  // namespace strata::cli
