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
};
// Runs argv[0..] (no shell) with stdin_data on standard input.
CommandResult RunCommand(const std::vector<std::string>& argv, const std::string& stdin_data = "");

// Writes the synthetic model `spec` to path in env and loads it; nullptr (and
// a test failure naming the step) if either fails.
std::unique_ptr<Model> SynthesizeAndLoad(Env* env, const SynthSpec& spec, const std::string& path = "/m.gguf");

}  // namespace strata::testing
