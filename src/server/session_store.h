// SessionStore: the server's sessions — durable conversations kept as files
// in --session-dir, the same files `strata session` and `strata run
// --session` read and write (kv/session_file.h) — and the KV of idle
// sessions, parked in the engine's KV cache between requests (evicted,
// least recently used first, when the cache needs the blocks: the file
// still holds them).
//
// Namespaces: without API keys every session lives in dir; with keys each
// key's live in dir/key-<16 hex digits of a hash of the key>, so a key sees
// and touches only its own (the CLI reaches them with --session-dir
// DIR/key-...).
//
// Leases: whatever changes a session (a request on it, rm, fork, rollback,
// push, pop) holds its lease throughout, taken at once or refused with
// kBusy (never waited for). A lease is the in-process mark plus the file
// lock `strata run --session` takes (LockSession), so the server and the CLI
// exclude each other too. Reads (list, describe) need none: a file is only
// ever replaced whole.
//
// Resident KV: after a request the session's sequence is parked; the next
// request unparks it if the file is still the version the server wrote (its
// header checksum), else reads the file's blocks.
//
// Limits: max_sessions per namespace (one more: kResourceExhausted),
// disk_max over all sessions' files (kOutOfRange: the store is full).
//
// Errors name sessions by id, never by path (messages reach clients).
//
// Threads: methods marked (worker) do file I/O and wait for the engine's
// step thread: call them on the store's worker thread (Post), never on an
// HTTP I/O thread or the step thread. The rest may be called from any thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/env.h"
#include "core/status.h"
#include "engine/engine.h"
#include "kv/session_file.h"
#include "server/session_record.h"

namespace strata::server {

struct SessionStoreOptions {
  std::string dir;                 // required
  int32_t max_sessions = 1000;     // per namespace
  uint64_t disk_max = UINT64_MAX;  // bytes of session files, all namespaces
  Env* env = nullptr;              // null: Env::Default()
};

// One session as GET /v1/sessions shows it.
struct SessionSummary {
  std::string id;
  SessionKind kind = SessionKind::kNew;
  int32_t tokens = 0;
  int32_t messages = 0;
  int32_t stack_depth = 0;
  uint64_t bytes = 0;
  bool resident = false;  // its KV is parked in the engine's cache
  bool busy = false;      // leased now
  std::string error;      // non-empty: the file cannot be used (e.g. damaged); the rest is unknown
};

struct SessionStoreStats {
  int32_t sessions = 0;  // files known
  int32_t busy = 0;
  int32_t resident = 0;  // with KV parked in the engine (some may have been evicted since)
  uint64_t file_bytes = 0;
  uint64_t loads = 0;          // sessions whose KV was read from their file
  uint64_t resumes = 0;        // requests that resumed parked KV
  uint64_t saves = 0;
  uint64_t resumed_tokens = 0; // tokens whose KV a request took from its session instead of computing it
};

class SessionStore {
 public:
  // Exclusive use of one session (see the header comment); released when destroyed.
  class Lease {
   public:
    ~Lease();
    const std::string& ns() const { return ns_; }
    const std::string& id() const { return id_; }

   private:
    friend class SessionStore;
    Lease(SessionStore* store, std::string ns, std::string id, std::unique_ptr<FileLock> lock)
        : store_(store), ns_(std::move(ns)), id_(std::move(id)), lock_(std::move(lock)) {}
    SessionStore* store_;
    std::string ns_, id_;
    std::unique_ptr<FileLock> lock_;
  };

  // A session as read from its file (Read).
  struct Loaded {
    bool exists = false;
    SessionState state;
    SessionRecord record;
    uint64_t checksum = 0;  // the file version's header checksum
  };

  // REQUIRES: engine outlives the store. Creates dir; indexes the sessions there.
  [[nodiscard]] static Status Create(Engine* engine, SessionStoreOptions options, std::unique_ptr<SessionStore>* out);
  // Runs what was posted, then stops the worker.
  ~SessionStore();

  // The namespace of requests made with api_key ("" without keys).
  static std::string NamespaceOf(std::string_view api_key);

  // kBusy if a request or another process holds it.
  [[nodiscard]] Status Acquire(const std::string& ns, const std::string& id, std::unique_ptr<Lease>* out);
  // Runs fn on the worker thread (in order).
  void Post(std::function<void()> fn);
  // Whether a session file exists (cheap; any thread).
  bool Exists(const std::string& ns, const std::string& id) const;

  // (worker) Reads the session's header and record. A session never saved
  // is !exists; one the store knew whose file is gone is kNotFound.
  [[nodiscard]] Status Read(const Lease& lease, Loaded* out);
  // (worker) Limits for a request that will leave the session at `tokens`
  // tokens: the session count (a new one) and the disk budget.
  [[nodiscard]] Status CheckRoom(const Lease& lease, const Loaded& loaded, int64_t tokens);
  // (worker) A sequence holding the KV of the session's first keep tokens
  // (keep <= state.n_kv), for a request to resume: the parked one if it
  // still matches the file, else read from the file (nullopt if keep is 0).
  // The caller owns it (hand it to the engine, or FreeSequence).
  [[nodiscard]] Status Attach(const Lease& lease, const Loaded& loaded, int32_t keep, std::optional<SeqId>* seq);
  // (worker) Saves what a request left (tokens, KV, sampler) with meta, and
  // parks its sequence; on failure frees the sequence (the file keeps its
  // previous version).
  [[nodiscard]] Status Save(const Lease& lease, const RetainedSequence& retained, std::string meta);
  // A request took the session's parked KV and did not give it back.
  void Forget(const Lease& lease);
  // Frees a sequence of the engine (asynchronously, on the step thread).
  void FreeSequence(SeqId seq);
  // (worker) Deletes the session; kNotFound if there is none.
  [[nodiscard]] Status Remove(const Lease& lease);
  // (worker) Copies src to the new session dst (kAlreadyExists as
  // kInvalidArgument if dst exists); parked KV is shared block by block
  // (copy on write) instead of being read again.
  [[nodiscard]] Status Fork(const Lease& src, const Lease& dst);
  // (worker) Rewrites the session keeping n tokens, KV for at most max_kv of
  // them, with record, the sampler's RNG and penalty counts (rollback, push, pop).
  [[nodiscard]] Status Rewrite(const Lease& lease, int32_t n, int32_t max_kv, const SessionRecord& record,
                               const std::array<uint64_t, 4>& rng,
                               const std::vector<std::pair<int32_t, int32_t>>& counts);
  // (worker) The namespace's sessions, by id.
  [[nodiscard]] Status List(const std::string& ns, std::vector<SessionSummary>* out);
  // (worker) One session; kNotFound if there is none.
  [[nodiscard]] Status Describe(const std::string& ns, const std::string& id, SessionSummary* out,
                                SessionRecord* record);

  SessionStoreStats stats() const;
  int32_t block_tokens() const { return engine_.kv_layout().block_tokens; }

 private:
  struct Entry {
    bool known = false;  // a file of it exists (as far as the store knows)
    bool busy = false;
    uint64_t bytes = 0;
    std::optional<SeqId> resident;  // parked in the engine (may have been evicted since)
    uint64_t checksum = 0;          // the header checksum of the version the resident KV matches
  };

  SessionStore(Engine* engine, SessionStoreOptions options);
  std::string Dir(const std::string& ns) const;
  std::string Path(const std::string& ns, const std::string& id) const;
  static std::string Key(const std::string& ns, const std::string& id) { return ns + "/" + id; }
  void Release(const Lease& lease);
  // Runs f(kv) on the engine's step thread and returns its result.
  template <class F>
  auto OnStep(F f);
  // The status a file operation gave, naming the session instead of the path.
  Status Sanitize(const Status& s, const std::string& ns, const std::string& id) const;
  void Index(const std::string& ns);
  void WorkerLoop();

  Engine& engine_;
  const SessionStoreOptions options_;
  Env* env_;
  const uint64_t fingerprint_;
  // Under MPI: session files reach the ranks' KV through the step thread
  // (Engine::GatherKv, ScatterKv); otherwise unset and kv_store() serves.
  std::optional<KvRelay> relay_;

  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;  // by Key(ns, id)
  SessionStoreStats counters_;            // loads, resumes, saves, resumed_tokens

  std::mutex work_mu_;
  std::condition_variable work_cv_;
  std::deque<std::function<void()>> work_;
  bool stop_ = false;
  std::thread worker_;
};

}  // namespace strata::server
