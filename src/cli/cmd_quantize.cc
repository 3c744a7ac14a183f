// `strata quantize IN.gguf OUT.gguf --type FTYPE [--threads K] [--pure]`:
// llama-quantize's file types and per-tensor mixes (model/quant_mix.h). Prints
// the sizes on stdout; a progress bar on stderr when it is a terminal; a
// warning on stderr when quantized tensors are requantized.
#include <fmt/format.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "core/env.h"
#include "format/gguf.h"
#include "model/quantize.h"

namespace strata::cli {
namespace {

struct QuantizeCliOptions {
  std::string in_path;
  std::string out_path;
  std::string type;
  bool pure = false;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
};

std::string MiB(uint64_t bytes) { return fmt::format("{:.2f} MiB", static_cast<double>(bytes) / (1 << 20)); }

double BitsPerWeight(uint64_t bytes, uint64_t n) { return n == 0 ? 0.0 : 8.0 * static_cast<double>(bytes) / n; }

void WarnIfRequantizing(const std::string& in_path, const QuantizeOptions& options) {
  std::unique_ptr<gguf::GgufFile> in;
  CheckOk("quantize", gguf::GgufFile::Open(Env::Default(), in_path, &in));
  QuantizeResult plan;
  CheckOk("quantize", PlanQuantization(*in, options, &plan));
  if (plan.requantized.empty()) return;
  const gguf::TensorInfo* first = in->FindTensor(plan.requantized.front());
  std::fprintf(stderr,
               "quantize: warning: %zu tensors are already quantized (%s is %s); they are dequantized and "
               "requantized, which compounds rounding error: quantize from an f32/f16/bf16 model where you can\n",
               plan.requantized.size(), first->name.c_str(), DTypeName(first->tensor.type));
}

void RunQuantize(const QuantizeCliOptions& o) {
  const std::optional<FileType> ftype = ParseFileType(o.type);
  if (!ftype)
    Fail("quantize", Status::InvalidArgument(fmt::format("unknown type '{}' (allowed: {})", o.type, FileTypeNames())));
  const QuantizeOptions options{*ftype, o.threads, o.pure};
  WarnIfRequantizing(o.in_path, options);
  ProgressBar bar("quantize");
  QuantizeResult result;
  const Status s = QuantizeModel(Env::Default(), o.in_path, o.out_path, options, &result,
                                 [&bar](uint64_t done, uint64_t total) { bar.Update(done, total); });
  bar.Finish();
  CheckOk("quantize", s);
  int converted = 0, fallbacks = 0;
  for (const QuantizedTensor& t : result.tensors) {
    converted += t.to != t.from;
    fallbacks += t.fallback;
  }
  std::printf("%s: %zu tensors, %d converted (%d to a fallback type for their row length)\n", FileTypeName(*ftype),
              result.tensors.size(), converted, fallbacks);
  std::printf("model size: %s (%.2f bits per weight) -> %s (%.2f bits per weight)\n", MiB(result.bytes_in).c_str(),
              BitsPerWeight(result.bytes_in, result.n_elements), MiB(result.bytes_out).c_str(),
              BitsPerWeight(result.bytes_out, result.n_elements));
}

}  // namespace

void AddQuantizeCommand(CLI::App& app) {
  auto opts = std::make_shared<QuantizeCliOptions>();
  CLI::App* cmd = app.add_subcommand("quantize", "Quantize a GGUF model to a llama.cpp file type (q4_k_m, q8_0, ...)");
  cmd->add_option("input", opts->in_path, "Input GGUF model (f32/f16/bf16 weights; quantized ones are requantized)")
      ->required();
  cmd->add_option("output", opts->out_path, "Output GGUF path (written atomically)")->required();
  cmd->add_option("-t,--type", opts->type, "File type: " + FileTypeNames())->required();
  cmd->add_flag("--pure", opts->pure, "Every matrix in the file type's main type (no per-tensor mix)");
  cmd->add_option("--threads", opts->threads, "Worker threads (default: all cores)")
      ->check(CLI::Range(1, 1024));
  cmd->callback([opts] { RunQuantize(*opts); });
}

}  // namespace strata::cli
