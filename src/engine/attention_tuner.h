// Attention autotuner: picks the AttentionGrid this machine runs fastest for a
// model's attention shape by timing AttentionPass (the real kernels and job
// split) on synthetic KV data, and caches the choice in a small file so that
// only the first use on a machine pays for the measurement.
//
// Cache file (text): a version line, a "cpu" line (kernels::CpuModelName), one line per tuned key
// ("<key>\t<q_tile> <split_blocks>"), and a closing "xxh3 <hex>" line over all
// bytes before it. It is written atomically (WriteFileAtomic). A file that is
// unreadable, corrupt, of another version or from another CPU model is
// ignored and replaced on the next store; it is never an error to the caller.
// A path that is not a regular file (a directory, FIFO or device) is never
// read nor replaced, a file over kMaxTuneCacheBytes never read;
// CheckTuneCachePath tells a caller that wants to refuse such a path up front.
//
// Thread-safety: functions are reentrant; the Env handles concurrent access.
// Two processes storing at once may lose one's entry (last rename wins); the
// file stays valid.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/dtype.h"
#include "core/env.h"
#include "core/status.h"
#include "engine/attention_pass.h"
#include "kernels/kernels.h"
#include "kernels/thread_pool.h"
#include "kv/kv_layout.h"

namespace strata {

// Larger than any cache file (an entry is ~40 bytes); larger files are not read.
constexpr uint64_t kMaxTuneCacheBytes = uint64_t{1} << 20;

// OK if path is missing (it will be created) or a readable regular file of at
// most kMaxTuneCacheBytes, whatever its contents; else why path cannot be a
// cache file (the Env's error: directory, FIFO, device, permission denied, too large).
[[nodiscard]] Status CheckTuneCachePath(Env* env, const std::string& path);

// What the best grid depends on.
struct AttentionTuneKey {
  kernels::Path path = kernels::Path::kScalar;  // the path attention runs on
  int32_t head_dim = 0;
  int32_t n_head = 0;
  int32_t n_head_kv = 0;  // group size = n_head / n_head_kv
  DType kv_type = DType::kF32;
  int32_t block_tokens = 0;
  int32_t n_threads = 0;
  // "avx512 d64 h32 kv4 f16 b32 t2": the key as stored in the cache.
  std::string ToString() const;
};

// Times candidate grids on `pool` and returns the fastest: query tiles on a
// prefill (128 query tokens at depth 128..255), KV split sizes on a decode
// step at depth 2048. Takes about 0.1-0.3 s on 2 cores. Results are noisy on a
// busy machine; any grid gives the same output within float rounding.
// REQUIRES: pool.n_threads() == key.n_threads; the key's shape is valid
// (n_head_kv divides n_head; Q8_0 needs head_dim % 32 == 0).
AttentionGrid MeasureAttentionGrid(const AttentionTuneKey& key, ThreadPool& pool);

// The grid cached at path for (cpu, key); nullopt if the file is missing,
// unreadable, corrupt, of another version or CPU, or has no valid entry for key.
std::optional<AttentionGrid> LoadTunedGrid(Env* env, const std::string& path, const std::string& cpu,
                                           const AttentionTuneKey& key);
// Adds or replaces key's entry, keeping the file's other valid entries if it
// is a valid file for the same cpu; creates the directory if needed.
[[nodiscard]] Status StoreTunedGrid(Env* env, const std::string& path, const std::string& cpu,
                                    const AttentionTuneKey& key, const AttentionGrid& grid);

struct TunedGrid {
  AttentionGrid grid;
  bool measured = false;  // false: read from the cache
  Status store;           // why the measured grid could not be cached (OK otherwise)
};
// The cached grid for this CPU and key, else a measured one, stored back.
// Never fails: an unusable cache only costs a measurement.
TunedGrid TuneAttentionGrid(Env* env, const std::string& path, const AttentionTuneKey& key, ThreadPool& pool);

// The grid a Context or Engine runs: `fixed` if set, else the tuned one for
// the layout, n_head, BestPath() and the pool's threads, cached at cache_path,
// if cache_path is non-empty; else AttentionGrid's defaults.
AttentionGrid SelectAttentionGrid(const std::optional<AttentionGrid>& fixed, Env* env, const std::string& cache_path,
                                  const KvLayout& layout, int32_t n_head, ThreadPool& pool);

}  // namespace strata
