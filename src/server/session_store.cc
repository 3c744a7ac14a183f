#include "server/session_store.h"

#include <fmt/format.h>
#include <xxhash.h>

#include <algorithm>
#include <future>

namespace strata::server {
namespace {

constexpr std::string_view kSuffix = ".session";
constexpr std::string_view kKeyDirPrefix = "key-";

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() > suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

SessionStore::Lease::~Lease() { store_->Release(*this); }

SessionStore::SessionStore(Engine* engine, SessionStoreOptions options)
    : engine_(*engine),
      options_(std::move(options)),
      env_(options_.env != nullptr ? options_.env : Env::Default()),
      fingerprint_(ModelFingerprint(engine->model())) {
  if (!engine_.distributed()) return;
  Engine* e = engine;
  relay_ = KvRelay{e->whole_kv_layout(),
                   [e](std::span<const BlockId> blocks, BlockStore& whole, std::span<const BlockId> ids) {
                     return e->GatherKv(blocks, whole, ids);
                   },
                   [e](BlockStore& whole, std::span<const BlockId> ids, std::span<const BlockId> blocks) {
                     return e->ScatterKv(whole, ids, blocks);
                   }};
}

Status SessionStore::Create(Engine* engine, SessionStoreOptions options, std::unique_ptr<SessionStore>* out) {
  if (options.dir.empty()) return Status::InvalidArgument("the session directory must not be empty");
  if (options.max_sessions < 1) return Status::InvalidArgument("max_sessions must be >= 1");
  std::unique_ptr<SessionStore> store(new SessionStore(engine, std::move(options)));
  STRATA_RETURN_IF_ERROR(store->env_->CreateDirs(store->options_.dir));
  std::vector<std::string> names;
  STRATA_RETURN_IF_ERROR(store->env_->ListDir(store->options_.dir, &names));
  store->Index("");
  for (const std::string& n : names)
    if (n.starts_with(kKeyDirPrefix) && IsValidSessionName(n)) store->Index(n);
  store->worker_ = std::thread([s = store.get()] { s->WorkerLoop(); });
  *out = std::move(store);
  return Status::Ok();
}

SessionStore::~SessionStore() {
  {
    std::lock_guard<std::mutex> l(work_mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void SessionStore::Index(const std::string& ns) {
  std::vector<std::string> names;
  if (!env_->ListDir(Dir(ns), &names).ok()) return;
  std::lock_guard<std::mutex> l(mu_);
  for (const std::string& n : names) {
    if (!EndsWith(n, kSuffix)) continue;
    const std::string id = n.substr(0, n.size() - kSuffix.size());
    if (!IsValidSessionName(id)) continue;
    Entry& e = entries_[Key(ns, id)];
    e.known = true;
    (void)env_->FileSize(Dir(ns) + "/" + n, &e.bytes);
  }
}

std::string SessionStore::NamespaceOf(std::string_view api_key) {
  if (api_key.empty()) return "";
  return fmt::format("{}{:016x}", kKeyDirPrefix, XXH3_64bits(api_key.data(), api_key.size()));
}

std::string SessionStore::Dir(const std::string& ns) const {
  return ns.empty() ? options_.dir : options_.dir + "/" + ns;
}

std::string SessionStore::Path(const std::string& ns, const std::string& id) const {
  return Dir(ns) + "/" + id + std::string(kSuffix);
}

bool SessionStore::Exists(const std::string& ns, const std::string& id) const {
  return env_->FileExists(Path(ns, id));
}

void SessionStore::Post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> l(work_mu_);
    work_.push_back(std::move(fn));
  }
  work_cv_.notify_one();
}

void SessionStore::WorkerLoop() {
  for (;;) {
    std::function<void()> fn;
    {
      std::unique_lock<std::mutex> l(work_mu_);
      work_cv_.wait(l, [&] { return stop_ || !work_.empty(); });
      if (work_.empty()) return;  // stopping, nothing left
      fn = std::move(work_.front());
      work_.pop_front();
    }
    fn();
  }
}

template <class F>
auto SessionStore::OnStep(F f) {
  using R = decltype(f(std::declval<KvCacheManager&>()));
  std::promise<R> done;
  std::future<R> result = done.get_future();
  engine_.RunOnStepThread([&](KvCacheManager& kv) {
    if constexpr (std::is_void_v<R>) {
      f(kv);
      done.set_value();
    } else {
      done.set_value(f(kv));
    }
  });
  return result.get();
}

void SessionStore::FreeSequence(SeqId seq) {
  engine_.RunOnStepThread([seq](KvCacheManager& kv) {
    if (kv.exists(seq)) kv.FreeSequence(seq);
  });
}

Status SessionStore::Sanitize(const Status& s, const std::string& ns, const std::string& id) const {
  if (s.ok()) return s;
  std::string m = s.message();
  const std::string path = Path(ns, id);
  for (size_t at; (at = m.find(path)) != std::string::npos;) m.replace(at, path.size(), "session '" + id + "'");
  // Anything else naming the directory (a temp file, the lock) loses it too.
  for (size_t at; (at = m.find(options_.dir)) != std::string::npos;) m.replace(at, options_.dir.size(), "<sessions>");
  return Status(s.code(), m);
}

Status SessionStore::Acquire(const std::string& ns, const std::string& id, std::unique_ptr<Lease>* out) {
  if (!IsValidSessionName(id)) return Status::InvalidArgument(fmt::format("invalid session id '{}'", id));
  {
    std::lock_guard<std::mutex> l(mu_);
    Entry& e = entries_[Key(ns, id)];
    if (e.busy) return Status::Busy(fmt::format("session '{}' is in use by another request", id));
    e.busy = true;
  }
  std::unique_ptr<FileLock> lock;
  Status s = env_->CreateDirs(Dir(ns));
  if (s.ok()) s = LockSession(env_, Path(ns, id), &lock);
  if (!s.ok()) {
    std::lock_guard<std::mutex> l(mu_);
    entries_[Key(ns, id)].busy = false;
    if (s.code() == StatusCode::kBusy)
      return Status::Busy(fmt::format("session '{}' is in use by another process", id));
    return Sanitize(s, ns, id);
  }
  out->reset(new Lease(this, ns, id, std::move(lock)));
  return Status::Ok();
}

void SessionStore::Release(const Lease& lease) {
  const std::string path = Path(lease.ns(), lease.id());
  // A session never saved leaves no lock file behind (removed while locked, as RemoveSession does).
  if (!env_->FileExists(path)) (void)env_->RemoveFile(path + ".lock");
  std::lock_guard<std::mutex> l(mu_);
  auto it = entries_.find(Key(lease.ns(), lease.id()));
  if (it == entries_.end()) return;
  it->second.busy = false;
  if (!it->second.known && !it->second.resident) entries_.erase(it);
}

Status SessionStore::Read(const Lease& lease, Loaded* out) {
  *out = Loaded();
  const std::string path = Path(lease.ns(), lease.id());
  const std::string& id = lease.id();
  if (!env_->FileExists(path)) {
    std::optional<SeqId> stale;
    {
      std::lock_guard<std::mutex> l(mu_);
      Entry& e = entries_[Key(lease.ns(), id)];
      const bool known = e.known;
      e.known = false;
      e.bytes = 0;
      stale.swap(e.resident);
      if (!known) return Status::Ok();
    }
    if (stale) FreeSequence(*stale);
    return Status::NotFound(fmt::format("session '{}' no longer exists (its file was removed)", id));
  }
  SessionInfo info;
  STRATA_RETURN_IF_ERROR(Sanitize(ReadSessionInfo(env_, path, &info, &out->state), lease.ns(), id));
  const KvLayout L = engine_.whole_kv_layout();
  if (info.model_fingerprint != fingerprint_)
    return Status::Unsupported(fmt::format("session '{}' belongs to another model", id));
  if (info.kv_type != L.type || info.block_tokens != L.block_tokens)
    return Status::Unsupported(fmt::format("session '{}' was saved with KV type {} and block size {}; this "
                                               "server uses {} and {}",
                                               id, DTypeName(info.kv_type), info.block_tokens, DTypeName(L.type),
                                               L.block_tokens));
  if (Status s = ParseSessionRecord(out->state.meta, info.n_tokens, &out->record); !s.ok())
    return Status::Corrupt(fmt::format("session '{}' is damaged: {}", id, s.message()));
  out->exists = true;
  out->checksum = info.header_checksum;
  std::lock_guard<std::mutex> l(mu_);
  Entry& e = entries_[Key(lease.ns(), id)];
  e.known = true;
  e.bytes = info.file_bytes;
  return Status::Ok();
}

Status SessionStore::CheckRoom(const Lease& lease, const Loaded& loaded, int64_t tokens) {
  SessionState estimate;
  estimate.tokens.resize(static_cast<size_t>(tokens));
  estimate.n_kv = static_cast<int32_t>(tokens);
  estimate.meta = loaded.state.meta;
  const uint64_t bytes = SessionFileBytes(engine_.whole_kv_layout(), estimate);
  std::lock_guard<std::mutex> l(mu_);
  if (!loaded.exists) {
    int32_t count = 0;
    const std::string prefix = lease.ns() + "/";
    for (const auto& [key, e] : entries_) count += e.known && key.starts_with(prefix);
    if (count >= options_.max_sessions)
      return Status::ResourceExhausted(
          fmt::format("this key has {} sessions, the most the server keeps (--max-sessions); delete one first", count));
  }
  uint64_t total = 0;
  for (const auto& [key, e] : entries_) total += e.known ? e.bytes : 0;
  const uint64_t mine = entries_[Key(lease.ns(), lease.id())].bytes;
  if (total - std::min(total, mine) + bytes > options_.disk_max)
    return Status::OutOfRange(fmt::format("the session store is full: session '{}' would take {} MiB, {} MiB of {} "
                                          "MiB are in use (--session-disk-max)",
                                          lease.id(), bytes >> 20, total >> 20, options_.disk_max >> 20));
  return Status::Ok();
}

Status SessionStore::Attach(const Lease& lease, const Loaded& loaded, int32_t keep, std::optional<SeqId>* seq) {
  seq->reset();
  std::optional<SeqId> parked;
  {
    std::lock_guard<std::mutex> l(mu_);
    Entry& e = entries_[Key(lease.ns(), lease.id())];
    if (e.resident && e.checksum != loaded.checksum) {  // the file changed behind the server (strata run, rollback)
      FreeSequence(*e.resident);
      e.resident.reset();
    }
    parked.swap(e.resident);  // from here the caller owns it
  }
  if (keep <= 0) {
    if (parked) FreeSequence(*parked);
    return Status::Ok();
  }
  if (parked) {
    const bool alive = OnStep([&](KvCacheManager& kv) {
      if (!kv.Unpark(*parked)) return false;  // evicted: read the file
      if (kv.length(*parked) > keep) kv.Truncate(*parked, keep);
      return true;
    });
    if (alive) {
      *seq = parked;
      std::lock_guard<std::mutex> l(mu_);
      ++counters_.resumes;
      counters_.resumed_tokens += static_cast<uint64_t>(keep);
      return Status::Ok();
    }
  }
  const std::string path = Path(lease.ns(), lease.id());
  std::unique_ptr<SessionReader> reader;
  STRATA_RETURN_IF_ERROR(
      Sanitize(SessionReader::Open(env_, path, fingerprint_, engine_.whole_kv_layout(), &reader), lease.ns(), lease.id()));
  if (reader->info().header_checksum != loaded.checksum || keep > reader->state().n_kv)
    return Status::Unavailable(fmt::format("session '{}' changed while it was being loaded", lease.id()));
  const int32_t B = engine_.kv_layout().block_tokens;
  const size_t n_blocks = static_cast<size_t>((keep + B - 1) / B);
  std::vector<BlockId> blocks;
  const Status allocated = OnStep([&](KvCacheManager& kv) {
    for (size_t i = 0; i < n_blocks; ++i) {
      BlockId b = 0;
      if (Status s = kv.AllocateBlock(&b); !s.ok()) {
        for (BlockId x : blocks) kv.ReleaseBlock(x);
        blocks.clear();
        return Status::Unavailable(fmt::format("the KV cache cannot hold session '{}' now ({} blocks)", lease.id(),
                                               n_blocks));
      }
      blocks.push_back(b);
    }
    return Status::Ok();
  });
  STRATA_RETURN_IF_ERROR(allocated);
  // The blocks are this thread's alone until adopted: filled here, off the
  // step thread (under MPI: read whole here, handed to the ranks on it).
  const Status read =
      Sanitize(relay_ ? reader->ReadBlocks(env_, *relay_, blocks) : reader->ReadBlocks(engine_.kv_store(), blocks),
               lease.ns(), lease.id());
  const std::vector<int32_t> tokens(loaded.state.tokens.begin(), loaded.state.tokens.begin() + keep);
  *seq = OnStep([&](KvCacheManager& kv) -> std::optional<SeqId> {
    if (!read.ok()) {
      for (BlockId x : blocks) kv.ReleaseBlock(x);
      return std::nullopt;
    }
    return kv.AdoptSequence(tokens, std::move(blocks));
  });
  if (!read.ok()) return read.code() == StatusCode::kCorrupt ? Status::Corrupt(read.message() + "; delete it or roll it back")
                                                             : read;
  std::lock_guard<std::mutex> l(mu_);
  ++counters_.loads;
  counters_.resumed_tokens += static_cast<uint64_t>(keep);
  return Status::Ok();
}

Status SessionStore::Save(const Lease& lease, const RetainedSequence& r, std::string meta) {
  SessionState state;
  state.tokens = r.tokens;
  state.n_kv = r.n_kv;
  state.sampler_history = r.sampler.history;
  state.rng = r.sampler.rng;
  state.sampler_counts = r.sampler.counts;
  state.meta = std::move(meta);
  const uint64_t bytes = SessionFileBytes(engine_.whole_kv_layout(), state);
  Status s;
  {
    std::lock_guard<std::mutex> l(mu_);
    uint64_t total = 0;
    for (const auto& [key, e] : entries_) total += e.known ? e.bytes : 0;
    const uint64_t mine = entries_[Key(lease.ns(), lease.id())].bytes;
    if (total - std::min(total, mine) + bytes > options_.disk_max)
      s = Status::OutOfRange(fmt::format("the session store is full (--session-disk-max); session '{}' was not saved",
                                         lease.id()));
  }
  SessionInfo info;
  if (s.ok())
    s = Sanitize(relay_ ? WriteSession(env_, Path(lease.ns(), lease.id()), fingerprint_, *relay_, r.blocks, state, &info)
                        : WriteSession(env_, Path(lease.ns(), lease.id()), fingerprint_, engine_.kv_store(), r.blocks,
                                       state, &info),
                 lease.ns(), lease.id());
  if (!s.ok()) {
    FreeSequence(r.seq);
    return s;
  }
  const SeqId seq = r.seq;
  engine_.RunOnStepThread([seq](KvCacheManager& kv) { kv.Park(seq); });
  std::lock_guard<std::mutex> l(mu_);
  Entry& e = entries_[Key(lease.ns(), lease.id())];
  e.known = true;
  e.bytes = info.file_bytes;
  e.resident = seq;
  e.checksum = info.header_checksum;
  ++counters_.saves;
  return Status::Ok();
}

void SessionStore::Forget(const Lease& lease) {
  std::lock_guard<std::mutex> l(mu_);
  entries_[Key(lease.ns(), lease.id())].resident.reset();
}

Status SessionStore::Remove(const Lease& lease) {
  std::optional<SeqId> parked;
  {
    std::lock_guard<std::mutex> l(mu_);
    parked.swap(entries_[Key(lease.ns(), lease.id())].resident);
  }
  if (parked) FreeSequence(*parked);
  const Status s = RemoveSession(env_, Path(lease.ns(), lease.id()));
  {
    std::lock_guard<std::mutex> l(mu_);
    Entry& e = entries_[Key(lease.ns(), lease.id())];
    e.known = false;
    e.bytes = 0;
  }
  if (s.code() == StatusCode::kNotFound) return Status::NotFound(fmt::format("session '{}' does not exist", lease.id()));
  return Sanitize(s, lease.ns(), lease.id());
}

Status SessionStore::Fork(const Lease& src, const Lease& dst) {
  const std::string from = Path(src.ns(), src.id()), to = Path(dst.ns(), dst.id());
  if (!env_->FileExists(from)) return Status::NotFound(fmt::format("session '{}' does not exist", src.id()));
  if (env_->FileExists(to)) return Status::InvalidArgument(fmt::format("session '{}' already exists", dst.id()));
  SessionInfo info;
  STRATA_RETURN_IF_ERROR(Sanitize(ReadSessionInfo(env_, from, &info, nullptr), src.ns(), src.id()));
  {
    std::lock_guard<std::mutex> l(mu_);
    int32_t count = 0;
    uint64_t total = 0;
    const std::string prefix = dst.ns() + "/";
    for (const auto& [key, e] : entries_) {
      count += e.known && key.starts_with(prefix);
      total += e.known ? e.bytes : 0;
    }
    if (count >= options_.max_sessions)
      return Status::ResourceExhausted(
          fmt::format("this key has {} sessions, the most the server keeps (--max-sessions); delete one first", count));
    if (total + info.file_bytes > options_.disk_max)
      return Status::OutOfRange(fmt::format("the session store is full (--session-disk-max); session '{}' takes {} MiB",
                                            src.id(), info.file_bytes >> 20));
  }
  STRATA_RETURN_IF_ERROR(Sanitize(CopySessionFile(env_, from, to), src.ns(), src.id()));
  std::optional<SeqId> parked, copy;
  uint64_t checksum = 0;
  {
    std::lock_guard<std::mutex> l(mu_);
    const Entry& s = entries_[Key(src.ns(), src.id())];
    if (s.resident && s.checksum == info.header_checksum) parked = s.resident;
    checksum = s.checksum;
    Entry& d = entries_[Key(dst.ns(), dst.id())];
    d.known = true;
    d.bytes = info.file_bytes;
  }
  if (parked) {
    copy = OnStep([&](KvCacheManager& kv) -> std::optional<SeqId> {
      if (!kv.Unpark(*parked)) return std::nullopt;
      SeqId forked = 0;
      const bool ok = kv.Fork(*parked, &forked).ok();
      kv.Park(*parked);
      if (!ok) return std::nullopt;
      kv.Park(forked);
      return forked;
    });
  }
  std::lock_guard<std::mutex> l(mu_);
  Entry& d = entries_[Key(dst.ns(), dst.id())];
  d.resident = copy;
  d.checksum = checksum;
  return Status::Ok();
}

Status SessionStore::Rewrite(const Lease& lease, int32_t n, int32_t max_kv, const SessionRecord& record,
                             const std::array<uint64_t, 4>& rng,
                             const std::vector<std::pair<int32_t, int32_t>>& counts) {
  const std::string path = Path(lease.ns(), lease.id());
  SessionEdit edit{EncodeSessionRecord(record), rng, counts, max_kv};
  STRATA_RETURN_IF_ERROR(Sanitize(TruncateSessionFile(env_, path, n, &edit), lease.ns(), lease.id()));
  SessionInfo info;
  STRATA_RETURN_IF_ERROR(Sanitize(ReadSessionInfo(env_, path, &info, nullptr), lease.ns(), lease.id()));
  std::optional<SeqId> parked;
  {
    std::lock_guard<std::mutex> l(mu_);
    Entry& e = entries_[Key(lease.ns(), lease.id())];
    e.bytes = info.file_bytes;
    parked = e.resident;
    e.checksum = info.header_checksum;
  }
  if (parked) {
    const int32_t keep = info.n_kv;
    const bool alive = OnStep([&](KvCacheManager& kv) {
      if (!kv.Unpark(*parked)) return false;
      if (kv.length(*parked) > keep) kv.Truncate(*parked, keep);
      kv.Park(*parked);
      return true;
    });
    if (!alive) Forget(lease);
  }
  return Status::Ok();
}

Status SessionStore::Describe(const std::string& ns, const std::string& id, SessionSummary* out,
                              SessionRecord* record) {
  *out = SessionSummary();
  out->id = id;
  const std::string path = Path(ns, id);
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = entries_.find(Key(ns, id));
    if (it != entries_.end()) {
      out->busy = it->second.busy;
      out->resident = it->second.resident.has_value();
    }
  }
  if (!env_->FileExists(path)) return Status::NotFound(fmt::format("session '{}' does not exist", id));
  SessionInfo info;
  SessionState state;
  if (Status s = ReadSessionInfo(env_, path, &info, &state); !s.ok()) {
    out->error = Sanitize(s, ns, id).message();
    return Status::Ok();
  }
  SessionRecord r;
  if (Status s = ParseSessionRecord(state.meta, info.n_tokens, &r); !s.ok()) {
    out->error = fmt::format("session '{}' is damaged: {}", id, s.message());
    return Status::Ok();
  }
  if (info.model_fingerprint != fingerprint_) out->error = fmt::format("session '{}' belongs to another model", id);
  out->kind = r.kind;
  out->tokens = info.n_tokens;
  out->messages = static_cast<int32_t>(r.messages.size());
  out->stack_depth = static_cast<int32_t>(r.stack.size());
  out->bytes = info.file_bytes;
  if (record != nullptr) *record = std::move(r);
  return Status::Ok();
}

Status SessionStore::List(const std::string& ns, std::vector<SessionSummary>* out) {
  out->clear();
  std::vector<std::string> names;
  if (!env_->FileExists(Dir(ns))) return Status::Ok();
  STRATA_RETURN_IF_ERROR(Sanitize(env_->ListDir(Dir(ns), &names), ns, ""));
  std::sort(names.begin(), names.end());
  for (const std::string& n : names) {
    if (!EndsWith(n, kSuffix)) continue;
    const std::string id = n.substr(0, n.size() - kSuffix.size());
    if (!IsValidSessionName(id)) continue;
    SessionSummary s;
    if (Describe(ns, id, &s, nullptr).ok()) out->push_back(std::move(s));
  }
  return Status::Ok();
}

SessionStoreStats SessionStore::stats() const {
  std::lock_guard<std::mutex> l(mu_);
  SessionStoreStats st = counters_;
  for (const auto& [key, e] : entries_) {
    st.sessions += e.known;
    st.busy += e.busy;
    st.resident += e.resident.has_value();
    st.file_bytes += e.known ? e.bytes : 0;
  }
  return st;
}

}  // namespace strata::server
