// Helpers shared by tests: where shared/ test data lives, running the CLI, and
// synthetic models.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/env.h"
#include "model/model.h"
#include "model/synth.h"

namespace strata::testing {

// $STRATA_SHARED_DIR, else the repository's ../shared.
std::string SharedDir();
// SharedDir() + "/" + rel.
std::string SharedPath(const std::string& rel);
// Path of the built strata CLI.
std::string CliPath();
// A fresh empty directory under $TMPDIR, unique per call.
std::string MakeTempDir();

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
  bool timed_out = false;  // killed after CommandOptions::timeout_s
};
struct CommandOptions {
  double timeout_s = 0;       // > 0: the command is killed (SIGKILL) after this many seconds
  bool unprivileged = false;  // run as user and group nobody (65534) when the test runs as root
};
// Runs argv[0..] (no shell) with stdin_data on standard input.
CommandResult RunCommand(const std::vector<std::string>& argv, const std::string& stdin_data = "",
                         const CommandOptions& options = {});

// The names in dir of temp files that atomic writes leave while they run
// (NAME.tmp.XXXXXXXXXXXXXXXX, Env::NewTempFile).
std::vector<std::string> TempFiles(Env* env, const std::string& dir);

// Writes the synthetic model `spec` to path in env and loads it; nullptr (and
// a test failure naming the step) if either fails.
std::unique_ptr<Model> SynthesizeAndLoad(Env* env, const SynthSpec& spec, const std::string& path = "/m.gguf");

}  // namespace strata::testing
