// Helpers shared by tests: where shared/ test data lives, and running the CLI.
#pragma once

#include <string>
#include <vector>

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

}  // namespace strata::testing
