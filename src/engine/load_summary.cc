#include "engine/load_summary.h"

#include <fmt/format.h>

namespace strata {
namespace {

std::string Count(uint64_t n) {
  if (n >= 1000000000) return fmt::format("{:.2f}B", static_cast<double>(n) / 1e9);
  if (n >= 1000000) return fmt::format("{:.1f}M", static_cast<double>(n) / 1e6);
  if (n >= 1000) return fmt::format("{:.1f}K", static_cast<double>(n) / 1e3);
  return std::to_string(n);
}

std::string Bytes(uint64_t n) {
  if (n >= (uint64_t{1} << 30)) return fmt::format("{:.2f} GiB", static_cast<double>(n) / (1 << 30));
  return fmt::format("{:.1f} MiB", static_cast<double>(n) / (1 << 20));
}

}  // namespace

std::string LoadSummary(const Model& model, int32_t n_ctx, const KvLayout& kv) {
  std::string types;
  for (const auto& [type, count] : model.tensor_types())
    types += fmt::format("{}{} ×{}", types.empty() ? "" : " + ", DTypeName(type), count);
  const uint64_t blocks = (static_cast<uint64_t>(n_ctx) + kv.block_tokens - 1) / kv.block_tokens;
  const ModelShard& shard = model.shard();
  std::string mpi = shard.size > 1 ? fmt::format("; MPI rank {} of {}, split {}", shard.rank, shard.size,
                                                  SplitName(shard.split))
                                   : "";
  if (shard.size > 1 && shard.split == Split::kLayer)
    mpi += fmt::format(" (layers {}-{} of {})", shard.first_layer, shard.end_layer - 1, model.hparams().n_layer);
  return fmt::format("{} \"{}\": {} parameters, {}, file {}; context {}, KV {} {}{}", ArchName(model.hparams().arch),
                     model.name(), Count(model.n_params()), types, Bytes(model.file_bytes()), n_ctx,
                     DTypeName(kv.type), Bytes(blocks * kv.block_bytes()), mpi);
}

}  // namespace strata
