#include "cli/commands.h"

namespace strata::cli {

void AddInspectCommand(CLI::App& app) { (void)app; }

}  // namespace strata::cli
