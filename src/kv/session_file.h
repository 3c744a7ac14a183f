// Session files: a sequence's tokens, its KV blocks and its sampler state,
// saved so a later process continues exactly where this one stopped without
// recomputing the prompt.
//
// Layout (little-endian), version 3:
//   header  "STRATASS", u32 version, u64 model fingerprint, u32 kv type,
//           u32 block_tokens, u32 n_layer, u32 n_head_kv, u32 head_dim,
//           u32 n_tokens, u32 n_history, u64 rng[4], u32 n_counts, u32 n_kv,
//           u32 n_meta, i32 tokens[n_tokens], i32 history[n_history],
//           (i32 token, i32 count)[n_counts], meta[n_meta],
//           u64 XXH3 of everything before it
//   blocks  for each block (ceil(n_kv / block_tokens)) and layer:
//           slice bytes (KvLayout::slice_bytes) then u64 XXH3 of them
//   trailer "STRATEND"
// The first n_kv tokens have KV in the file; the rest (at most a few: the
// last token a generation sampled) are computed when the session continues.
// meta is the server's record of the conversation (messages, turns, the
// context stack: server/session_record.h), opaque here; "" for sessions of
// `strata run`. Versions 1 (no counts, n_kv, meta: n_kv = n_tokens) and 2
// (no n_kv, meta) are read too.
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
#include <functional>
#include <memory>
#include <span>
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
  int32_t n_kv = 0;                      // tokens[0, n_kv) have KV blocks; <= tokens.size()
  std::vector<int32_t> sampler_history;  // the sampler's recent tokens (repetition penalty)
  std::array<uint64_t, 4> rng{};         // the sampler's RNG state
  std::vector<std::pair<int32_t, int32_t>> sampler_counts;  // (token, times generated): frequency/presence penalties
  std::string meta;                      // opaque to this layer (see the header comment); at most kMaxSessionMeta bytes
};

inline constexpr uint32_t kMaxSessionMeta = 16u << 20;

struct SessionInfo {
  uint64_t model_fingerprint = 0;
  DType kv_type = DType::kF32;
  int32_t block_tokens = 0;
  int32_t n_tokens = 0;
  int32_t n_kv = 0;
  uint64_t file_bytes = 0;
  uint64_t header_checksum = 0;  // identifies this version of the file (the header's XXH3)
};

// Identifies the model a session's KV belongs to (shapes and a sample of weights).
uint64_t ModelFingerprint(const Model& model);

// Under MPI a sequence's KV is spread over the ranks (kv/kv_shard.h), while a
// session file holds the whole model's layout: blocks then move between the
// KV cache and a whole-layout store in RAM by these two (each rank sends or
// receives its part). Without one, the KV cache's store holds it all.
struct KvRelay {
  KvLayout whole;  // the file's layout
  // Copies the KV cache's blocks into blocks ids of whole.
  std::function<Status(std::span<const BlockId> blocks, BlockStore& whole, std::span<const BlockId> ids)> gather;
  // Copies blocks ids of whole into the KV cache's blocks.
  std::function<Status(BlockStore& whole, std::span<const BlockId> ids, std::span<const BlockId> blocks)> scatter;
};

// Writes seq of kv (tokens and blocks) plus state's sampler fields and meta to
// path atomically; with relay, the KV through it.
[[nodiscard]] Status SaveSession(Env* env, const std::string& path, uint64_t fingerprint, KvCacheManager& kv,
                                 SeqId seq, const SessionState& state, const KvRelay* relay = nullptr);

// Writes state (all of it: tokens, n_kv, sampler, meta) and the KV of its
// first n_kv tokens, read from blocks of store (ceil(n_kv / block_tokens) of
// them, holding those positions), to path atomically. Thread-safe as
// BlockStore is: the caller keeps the blocks referenced and unwritten meanwhile.
// *info (optional) describes the file written.
[[nodiscard]] Status WriteSession(Env* env, const std::string& path, uint64_t fingerprint, BlockStore& store,
                                  std::span<const BlockId> blocks, const SessionState& state,
                                  SessionInfo* info = nullptr);
// The same with the KV of blocks (the KV cache's) through relay.gather.
[[nodiscard]] Status WriteSession(Env* env, const std::string& path, uint64_t fingerprint, const KvRelay& relay,
                                  std::span<const BlockId> blocks, const SessionState& state,
                                  SessionInfo* info = nullptr);

// The size of the file WriteSession writes for state.
uint64_t SessionFileBytes(const KvLayout& layout, const SessionState& state);

// A session file opened for reading: its header verified (Open), its blocks
// read on demand into blocks the caller allocated. The file stays open, so
// the blocks come from the version whose header was read even if the file
// is replaced meanwhile. Thread-safety: one thread at a time.
class SessionReader {
 public:
  // kInvalidArgument if it belongs to another model or KV layout, kCorrupt on
  // a format or checksum error, kNotFound if there is none. drop_cache:
  // evict the file from the OS page cache first (cold-start benchmarks).
  [[nodiscard]] static Status Open(Env* env, const std::string& path, uint64_t fingerprint, const KvLayout& layout,
                                   std::unique_ptr<SessionReader>* out, bool drop_cache = false);
  const SessionState& state() const { return state_; }
  const SessionInfo& info() const { return info_; }
  // Fills blocks[i] (allocated by the caller, all layers) with the file's
  // block i, verifying each slice's checksum (and the trailer once the last
  // block is read). blocks.size() <= ceil(n_kv / block_tokens): a prefix of
  // the session's KV may be read. kCorrupt names the block on a mismatch.
  [[nodiscard]] Status ReadBlocks(BlockStore& store, std::span<const BlockId> blocks) const;
  // The same into the KV cache's blocks through relay.scatter (the reader
  // was opened with relay.whole).
  [[nodiscard]] Status ReadBlocks(Env* env, const KvRelay& relay, std::span<const BlockId> blocks) const;

 private:
  SessionReader() = default;
  std::string path_;
  std::unique_ptr<RandomAccessFile> file_;
  KvLayout layout_;
  SessionState state_;
  SessionInfo info_;
  uint64_t blocks_offset_ = 0;
};

// Reads path into a new sequence of kv holding its first n_kv tokens; *state gets everything else.
// kInvalidArgument if it belongs to another model or KV layout; kCorrupt on any
// checksum or format error (kv is then unchanged). drop_cache: evict the file
// from the OS page cache first (cold-start benchmarks). With relay, the KV
// goes through it.
[[nodiscard]] Status LoadSession(Env* env, const std::string& path, uint64_t fingerprint, KvCacheManager& kv,
                                 SeqId* seq, SessionState* state, bool drop_cache = false,
                                 const KvRelay* relay = nullptr);

// Header fields only, verified.
[[nodiscard]] Status ReadSessionInfo(Env* env, const std::string& path, SessionInfo* info, SessionState* state);

// What a rewrite replaces besides the tokens (TruncateSessionFile).
struct SessionEdit {
  std::string meta;
  std::array<uint64_t, 4> rng{};
  std::vector<std::pair<int32_t, int32_t>> sampler_counts;
  int32_t max_kv = INT32_MAX;  // keep KV for at most this many tokens
};

// Rewrites path keeping the first n_keep tokens (roll back), atomically; the
// sampler's history becomes the last tokens kept (as many as it held). With
// edit, its meta, RNG and penalty counts replace the file's. REQUIRES: the session is locked (LockSession).
[[nodiscard]] Status TruncateSessionFile(Env* env, const std::string& path, int32_t n_keep,
                                         const SessionEdit* edit = nullptr);

// Copies the session at src to the new session dst (its header verified
// first): a hard link (O(1); the files part when either is next written),
// else a copy; kInvalidArgument if dst exists. REQUIRES: both locked (LockSession).
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
