// strata: command-line entry point. Subcommands live in cmd_*.cc.
#include <CLI/CLI.hpp>
#include <string>
#include <string_view>

#include "cli/commands.h"
#include "engine/rank_server.h"

int main(int argc, char** argv) {
  CLI::App app{"strata: fast Llama-family inference on CPUs"};
  app.require_subcommand(1);
  // Errors are one line on stderr, like every other strata error.
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return std::string("strata: ") + e.what() + " (see --help)\n";
  });
  app.set_version_flag("--version", "strata 0.1.0");
  strata::cli::AddRunCommand(app);
  strata::cli::AddChatCommand(app);
  strata::cli::AddTokenizeCommand(app);
  strata::cli::AddInspectCommand(app);
  strata::cli::AddQuantizeCommand(app);
  strata::cli::AddSynthCommand(app);
  strata::cli::AddBenchCommand(app);
  strata::cli::AddSessionCommand(app);
  strata::cli::AddBenchKvCommand(app);
  strata::cli::AddBenchGrammarCommand(app);
  strata::cli::AddBenchSpecCommand(app);
  strata::cli::AddServeCommand(app);
  strata::cli::AddPerplexityCommand(app);
  // llama.cpp spells chat's system prompt -sys; CLI11 takes one-letter short
  // options only, so that spelling is passed on as --sys.
  static char kSys[] = "--sys";
  if (argc > 1 && std::string_view(argv[1]) == "chat")
    for (int i = 2; i < argc; ++i)
      if (std::string_view(argv[i]) == "-sys") argv[i] = kSys;
  int code = 0;
  try {
    app.parse(argc, argv);
  } catch (const CLI::RuntimeError& e) {
    code = e.get_exit_code();  // the subcommand already printed its one-line error
  } catch (const CLI::ParseError& e) {
    code = app.exit(e);
  }
  // Under mpirun: the other ranks stop with rank 0, or the job is aborted.
  return strata::FinishRank(code);
}
