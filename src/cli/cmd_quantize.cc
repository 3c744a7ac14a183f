#include "cli/commands.h"

namespace strata::cli {

void AddQuantizeCommand(CLI::App& app) { (void)app; }

}  // namespace strata::cli
