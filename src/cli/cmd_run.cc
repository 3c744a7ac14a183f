#include "cli/commands.h"

namespace strata::cli {

void AddRunCommand(CLI::App& app) { (void)app; }

}  // namespace strata::cli
