#include "cli/commands.h"

namespace strata::cli {

void AddSynthCommand(CLI::App& app) { (void)app; }

}  // namespace strata::cli
