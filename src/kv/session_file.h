// Session files: a sequence's tokens, its KV blocks and its sampler state,
// saved so a later process continues exactly where this one stopped without
// recomputing the prompt.
//
// Layout (little-endian):
//   header  "STRATASS", u32 version (2), u64 model fingerprint, u32 kv type,
//           u32 block_tokens, u32 n_layer, u32 n_head_kv, u32 head_dim,
//           u32 n_tokens, u32 n_history, u64 rng[4], u32 n_counts,
//           i32 tokens[n_tokens], i32 history[n_history],
//           (i32 token, i32 count)[n_counts], u64 XXH3 of everything before it
//           (version 1, still read: no n_counts and no counts)
//   blocks  for each block (ceil(n_tokens / block_tokens)) and layer:
//           slice bytes (KvLayout::slice_bytes) then u64 XXH3 of them
//   trailer "STRATEND"
// Writes are atomic (AtomicFileWriter: a temp file of the writer, fsync,
// rename): a crash mid-save leaves the previous version valid, and its temp
// file is removed by the next save. Every checksum is verified on load.
//
// Concurrency between processes: a session is locked (LockSession, an flock
// on NAME.session.lock) by whoever continues or rewrites it, for the whole
// time from load to save; a second process is refused with kBusy rather than
// silently losing one of two continuations. Reads (info, ls) need no lock:
// the file is only ever replaced whole.
//
// Thread-safety: functions are independent; the KvCacheManager passed in must
// not be used concurrently.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/env.h"
#include "core/status.h"
#include "kv/kv_cache_manager.h"
#include "model/model.h"

namespace strata {

struct SessionState {
  std::vector<int32_t> tokens;
  std::vector<int32_t> sampler_history;  // the sampler's recent tokens (repetition penalty)
  std::array<uint64_t, 4> rng{};         // the sampler's RNG state
  std::vector<std::pair<int32_t, int32_t>> sampler_counts;  // (token, times generated): frequency/presence penalties
};

struct SessionInfo {
  uint64_t model_fingerprint = 0;
  DType kv_type = DType::kF32;
  int32_t block_tokens = 0;
  int32_t n_tokens = 0;
  uint64_t file_bytes = 0;
};

// Identifies the model a session's KV belongs to (shapes and a sample of weights).
uint64_t ModelFingerprint(const Model& model);

// Writes seq of kv (tokens and blocks) plus state's sampler fields to path atomically.
[[nodiscard]] Status SaveSession(Env* env, const std::string& path, uint64_t fingerprint, KvCacheManager& kv,
                                 SeqId seq, const SessionState& state);

// Reads path into a new sequence of kv; *state gets tokens and sampler fields.
// kInvalidArgument if it belongs to another model or KV layout; kCorrupt on any
// checksum or format error (kv is then unchanged). drop_cache: evict the file
// from the OS page cache first (cold-start benchmarks).
[[nodiscard]] Status LoadSession(Env* env, const std::string& path, uint64_t fingerprint, KvCacheManager& kv,
                                 SeqId* seq, SessionState* state, bool drop_cache = false);

// Header fields only, verified.
[[nodiscard]] Status ReadSessionInfo(Env* env, const std::string& path, SessionInfo* info, SessionState* state);

// Rewrites path keeping the first n_keep tokens (roll back), atomically.
// REQUIRES: the session is locked (LockSession).
[[nodiscard]] Status TruncateSessionFile(Env* env, const std::string& path, int32_t n_keep);

// Copies the session at src to the new session dst (its header verified
// first); kInvalidArgument if dst exists. REQUIRES: both locked (LockSession).
[[nodiscard]] Status CopySessionFile(Env* env, const std::string& src, const std::string& dst);

// Locks the session at path (Env::LockFile of path + ".lock", created if
// missing): kBusy "PATH is in use by another process" if another holder has it.
[[nodiscard]] Status LockSession(Env* env, const std::string& path, std::unique_ptr<FileLock>* lock);

// Removes the session at path with its lock file and any stale temp files;
// kNotFound if there is no session. REQUIRES: locked (LockSession).
[[nodiscard]] Status RemoveSession(Env* env, const std::string& path);

// Session names: [A-Za-z0-9._-]{1,128}, not starting with '.'.
bool IsValidSessionName(const std::string& name);

}  // namespace strata
