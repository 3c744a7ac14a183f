#include "cli/commands.h"

namespace strata::cli {

void AddTokenizeCommand(CLI::App& app) { (void)app; }

}  // namespace strata::cli
