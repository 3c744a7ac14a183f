#include "cli/cli_util.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace strata::cli {

void Fail(const std::string& what, const Status& s) {
  std::fprintf(stderr, "strata: %s: %s\n", what.c_str(), s.message().c_str());
  throw CLI::RuntimeError(1);
}

void CheckOk(const std::string& what, const Status& s) {
  if (!s.ok()) Fail(what, s);
}

std::string DefaultModelPath() {
  const char* env = std::getenv("STRATA_DEFAULT_MODEL");
  if (env != nullptr && *env != '\0') return env;
  return STRATA_BUNDLED_MODEL;
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
