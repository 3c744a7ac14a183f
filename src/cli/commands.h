// The strata CLI's subcommands. Each Add*Command registers one subcommand on
// the app; its callback does the work and, on failure, prints one line to
// stderr and throws CLI::RuntimeError(exit_code) so main() returns non-zero.
#pragma once

#include <CLI/CLI.hpp>

namespace strata::cli {

void AddRunCommand(CLI::App& app);       // cmd_run.cc
void AddChatCommand(CLI::App& app);      // cmd_chat.cc
void AddTokenizeCommand(CLI::App& app);  // cmd_tokenize.cc
void AddInspectCommand(CLI::App& app);   // cmd_inspect.cc
void AddQuantizeCommand(CLI::App& app);  // cmd_quantize.cc
void AddSynthCommand(CLI::App& app);     // cmd_synth.cc
void AddBenchCommand(CLI::App& app);     // cmd_bench.cc
void AddSessionCommand(CLI::App& app);   // cmd_session.cc
void AddBenchKvCommand(CLI::App& app);   // cmd_bench_kv.cc
void AddBenchGrammarCommand(CLI::App& app);  // cmd_bench_grammar.cc
void AddBenchSpecCommand(CLI::App& app);  // cmd_bench_spec.cc
void AddServeCommand(CLI::App& app);     // cmd_serve.cc
void AddPerplexityCommand(CLI::App& app);  // cmd_perplexity.cc

}  // namespace strata::cli
