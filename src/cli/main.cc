// strata: command-line entry point. Subcommands live in cmd_*.cc.
#include <CLI/CLI.hpp>
#include <string>

#include "cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"strata: fast Llama-family inference on CPUs"};
  app.require_subcommand(1);
  // Errors are one line on stderr, like every other strata error.
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return std::string("strata: ") + e.what() + " (see --help)\n";
  });
  app.set_version_flag("--version", "strata 0.1.0");
  strata::cli::AddRunCommand(app);
  strata::cli::AddTokenizeCommand(app);
  strata::cli::AddInspectCommand(app);
  strata::cli::AddQuantizeCommand(app);
  strata::cli::AddSynthCommand(app);
  strata::cli::AddBenchCommand(app);
  strata::cli::AddSessionCommand(app);
  strata::cli::AddBenchKvCommand(app);
  strata::cli::AddBenchGrammarCommand(app);
  strata::cli::AddServeCommand(app);
  strata::cli::AddPerplexityCommand(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::RuntimeError& e) {
    return e.get_exit_code();  // the subcommand already printed its one-line error
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return 0;
}
