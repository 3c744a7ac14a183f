// `strata quantize IN.gguf OUT.gguf --type q8_0|q4_0|f16 [--threads K]`
#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "core/dtype.h"
#include "core/env.h"
#include "model/quantize.h"

namespace strata::cli {
namespace {

struct QuantizeOptions {
  std::string in_path;
  std::string out_path;
  std::string type;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
};

void RunQuantize(const QuantizeOptions& o) {
  const std::optional<DType> type = ParseDType(o.type);
  if (!type) Fail("quantize", Status::InvalidArgument("unknown type '" + o.type + "' (allowed: q8_0, q4_0, f16)"));
  ProgressBar bar("quantize");
  const Status s = QuantizeModel(Env::Default(), o.in_path, o.out_path, *type, o.threads,
                                 [&bar](uint64_t done, uint64_t total) { bar.Update(done, total); });
  bar.Finish();
  CheckOk("quantize", s);
}

}  // namespace

void AddQuantizeCommand(CLI::App& app) {
  auto opts = std::make_shared<QuantizeOptions>();
  CLI::App* cmd = app.add_subcommand("quantize", "Convert a GGUF model's weight matrices to q8_0, q4_0 or f16");
  cmd->add_option("input", opts->in_path, "Input GGUF model (f32/f16/bf16 weights)")->required();
  cmd->add_option("output", opts->out_path, "Output GGUF path (written atomically)")->required();
  cmd->add_option("-t,--type", opts->type, "Target type: q8_0, q4_0 or f16")->required();
  cmd->add_option("--threads", opts->threads, "Worker threads (default: all cores)")
      ->check(CLI::Range(1, 1024));
  cmd->callback([opts] { RunQuantize(*opts); });
}

}  // namespace strata::cli
