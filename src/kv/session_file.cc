#include "kv/session_file.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <fmt/format.h>

namespace strata {
namespace {

constexpr char kMagic[8] = {'S', 'T', 'R', 'A', 'T', 'A', 'S', 'S'};
constexpr char kTrailer[8] = {'S', 'T', 'R', 'A', 'T', 'E', 'N', 'D'};
// Version 2 added the sampler's penalty counts (u32 n_counts after rng, pairs
// after history); version 3 the tokens with KV and the meta (u32 n_kv, u32
// n_meta after n_counts, meta after the counts). Older files are read with
// none (n_kv = n_tokens).
constexpr uint32_t kVersion = 3;
constexpr size_t kFixedHeaderV1 = 80;
constexpr size_t kFixedHeaderV2 = 84;
constexpr size_t kFixedHeader = 92;
constexpr uint32_t kMaxTokens = 1u << 24;
constexpr uint32_t kMaxHistory = 1u << 20;

struct Header {
  uint64_t fingerprint = 0;
  uint32_t kv_type = 0, block_tokens = 0, n_layer = 0, n_head_kv = 0, head_dim = 0;
  SessionState state;
};

template <class T>
void Put(std::string* out, T v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof v);
}

template <class T>
T Get(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

Header HeaderFor(uint64_t fingerprint, const KvLayout& L, const SessionState& state) {
  Header h;
  h.fingerprint = fingerprint;
  h.kv_type = static_cast<uint32_t>(L.type);
  h.block_tokens = static_cast<uint32_t>(L.block_tokens);
  h.n_layer = static_cast<uint32_t>(L.n_layer);
  h.n_head_kv = static_cast<uint32_t>(L.n_head_kv);
  h.head_dim = static_cast<uint32_t>(L.head_dim);
  h.state = state;
  return h;
}

std::string EncodeHeader(const Header& h) {
  std::string out(kMagic, sizeof kMagic);
  Put(&out, kVersion);
  Put(&out, h.fingerprint);
  for (uint32_t v : {h.kv_type, h.block_tokens, h.n_layer, h.n_head_kv, h.head_dim}) Put(&out, v);
  Put(&out, static_cast<uint32_t>(h.state.tokens.size()));
  Put(&out, static_cast<uint32_t>(h.state.sampler_history.size()));
  for (uint64_t r : h.state.rng) Put(&out, r);
  Put(&out, static_cast<uint32_t>(h.state.sampler_counts.size()));
  Put(&out, static_cast<uint32_t>(h.state.n_kv));
  Put(&out, static_cast<uint32_t>(h.state.meta.size()));
  for (int32_t t : h.state.tokens) Put(&out, t);
  for (int32_t t : h.state.sampler_history) Put(&out, t);
  for (const auto& [token, n] : h.state.sampler_counts) {
    Put(&out, token);
    Put(&out, n);
  }
  out += h.state.meta;
  Put(&out, XXH3_64bits(out.data(), out.size()));
  return out;
}

// Reads and verifies the header at the start of file; *end = its size in
// bytes, *checksum = its XXH3.
Status ReadHeader(const RandomAccessFile& file, uint64_t file_size, const std::string& path, Header* h, uint64_t* end,
                  uint64_t* checksum = nullptr) {
  if (file_size < kFixedHeaderV1 + 8) return Status::Corrupt(path + ": too short for a session file");
  std::string buf(kFixedHeaderV1, '\0');
  STRATA_RETURN_IF_ERROR(file.Read(0, kFixedHeaderV1, buf.data()));
  const auto* p = reinterpret_cast<const uint8_t*>(buf.data());
  if (std::memcmp(p, kMagic, sizeof kMagic) != 0) return Status::Corrupt(path + ": not a strata session file");
  const uint32_t version = Get<uint32_t>(p + 8);
  if (version < 1 || version > kVersion)
    return Status::Unsupported(
        fmt::format("{}: session format version {} (this strata reads 1 to {})", path, version, kVersion));
  h->fingerprint = Get<uint64_t>(p + 12);
  h->kv_type = Get<uint32_t>(p + 20);
  h->block_tokens = Get<uint32_t>(p + 24);
  h->n_layer = Get<uint32_t>(p + 28);
  h->n_head_kv = Get<uint32_t>(p + 32);
  h->head_dim = Get<uint32_t>(p + 36);
  const uint32_t n_tokens = Get<uint32_t>(p + 40), n_history = Get<uint32_t>(p + 44);
  for (int i = 0; i < 4; ++i) h->state.rng[i] = Get<uint64_t>(p + 48 + 8 * i);
  const size_t fixed = version == 1 ? kFixedHeaderV1 : version == 2 ? kFixedHeaderV2 : kFixedHeader;
  if (file_size < fixed + 8) return Status::Corrupt(path + ": too short for a session file");
  buf.resize(fixed);
  STRATA_RETURN_IF_ERROR(file.Read(kFixedHeaderV1, fixed - kFixedHeaderV1, buf.data() + kFixedHeaderV1));
  p = reinterpret_cast<const uint8_t*>(buf.data());
  const uint32_t n_counts = version >= 2 ? Get<uint32_t>(p + 80) : 0;
  const uint32_t n_kv = version >= 3 ? Get<uint32_t>(p + 84) : n_tokens;
  const uint32_t n_meta = version >= 3 ? Get<uint32_t>(p + 88) : 0;
  if (n_tokens > kMaxTokens || n_history > kMaxHistory || n_counts > kMaxTokens || n_kv > n_tokens ||
      n_meta > kMaxSessionMeta)
    return Status::Corrupt(path + ": implausible token counts");
  const uint64_t var = 4ull * (n_tokens + n_history) + 8ull * n_counts + n_meta;
  if (fixed + var + 8 > file_size) return Status::Corrupt(path + ": truncated header");
  buf.resize(fixed + var + 8);
  STRATA_RETURN_IF_ERROR(file.Read(fixed, var + 8, buf.data() + fixed));
  p = reinterpret_cast<const uint8_t*>(buf.data());
  const uint64_t sum = XXH3_64bits(p, fixed + var);
  if (sum != Get<uint64_t>(p + fixed + var)) return Status::Corrupt(path + ": header checksum mismatch");
  h->state.tokens.resize(n_tokens);
  h->state.sampler_history.resize(n_history);
  std::memcpy(h->state.tokens.data(), p + fixed, 4ull * n_tokens);
  std::memcpy(h->state.sampler_history.data(), p + fixed + 4ull * n_tokens, 4ull * n_history);
  h->state.sampler_counts.resize(n_counts);
  const uint8_t* counts = p + fixed + 4ull * (n_tokens + n_history);
  for (uint32_t i = 0; i < n_counts; ++i) {
    h->state.sampler_counts[i] = {Get<int32_t>(counts + 8ull * i), Get<int32_t>(counts + 8ull * i + 4)};
    if (h->state.sampler_counts[i].first < 0 || h->state.sampler_counts[i].second < 1)
      return Status::Corrupt(path + ": implausible sampler counts");
  }
  h->state.n_kv = static_cast<int32_t>(n_kv);
  h->state.meta.assign(buf, fixed + 4ull * (n_tokens + n_history) + 8ull * n_counts, n_meta);
  *end = fixed + var + 8;
  if (checksum != nullptr) *checksum = sum;
  return Status::Ok();
}

Status OpenForRead(Env* env, const std::string& path, std::unique_ptr<RandomAccessFile>* file, uint64_t* size) {
  STRATA_RETURN_IF_ERROR(env->NewRandomAccessFile(path, file));
  return env->FileSize(path, size);
}

uint64_t BlockCount(uint64_t n_tokens, uint32_t block_tokens) { return (n_tokens + block_tokens - 1) / block_tokens; }

std::string SessionLockPath(const std::string& path) { return path + ".lock"; }

// Appends bytes [offset, offset + n) of file to out, a chunk at a time.
Status CopyBytes(const RandomAccessFile& file, uint64_t offset, uint64_t n, AtomicFileWriter* out) {
  constexpr uint64_t kChunk = uint64_t{1} << 20;
  std::string buf;
  while (n > 0) {
    buf.resize(static_cast<size_t>(std::min(n, kChunk)));
    STRATA_RETURN_IF_ERROR(file.Read(offset, buf.size(), buf.data()));
    STRATA_RETURN_IF_ERROR(out->Append(buf));
    offset += buf.size();
    n -= buf.size();
  }
  return Status::Ok();
}

}  // namespace

uint64_t ModelFingerprint(const Model& model) { return model.fingerprint(); }

bool IsValidSessionName(const std::string& name) {
  if (name.empty() || name.size() > 128 || name[0] == '.') return false;
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') return false;
  return true;
}

uint64_t SessionFileBytes(const KvLayout& L, const SessionState& state) {
  const uint64_t header = kFixedHeader + 4ull * (state.tokens.size() + state.sampler_history.size()) +
                          8ull * state.sampler_counts.size() + state.meta.size() + 8;
  const uint64_t blocks = BlockCount(static_cast<uint64_t>(state.n_kv), static_cast<uint32_t>(L.block_tokens));
  return header + blocks * L.n_layer * (L.slice_bytes() + 8) + sizeof kTrailer;
}

Status WriteSession(Env* env, const std::string& path, uint64_t fingerprint, BlockStore& store,
                    std::span<const BlockId> blocks, const SessionState& state, SessionInfo* info) {
  const KvLayout& L = store.layout();
  if (state.n_kv < 0 || static_cast<size_t>(state.n_kv) > state.tokens.size() ||
      blocks.size() != BlockCount(static_cast<uint64_t>(state.n_kv), static_cast<uint32_t>(L.block_tokens)) ||
      state.meta.size() > kMaxSessionMeta)
    return Status::InvalidArgument(fmt::format("{}: {} KV blocks for {} of {} tokens ({} bytes of meta)", path,
                                               blocks.size(), state.n_kv, state.tokens.size(), state.meta.size()));
  AtomicFileWriter w(env, path);
  STRATA_RETURN_IF_ERROR(w.Open());
  const std::string header = EncodeHeader(HeaderFor(fingerprint, L, state));
  STRATA_RETURN_IF_ERROR(w.Append(header));
  if (info != nullptr) {
    *info = SessionInfo{fingerprint, L.type, L.block_tokens, static_cast<int32_t>(state.tokens.size()), state.n_kv,
                        SessionFileBytes(L, state), Get<uint64_t>(reinterpret_cast<const uint8_t*>(header.data()) +
                                                                  header.size() - 8)};
  }
  std::string chunk;
  for (BlockId b : blocks) {
    for (int32_t il = 0; il < L.n_layer; ++il) {
      uint8_t* data = nullptr;
      STRATA_RETURN_IF_ERROR(store.Pin(b, il, &data));
      chunk.assign(reinterpret_cast<const char*>(data), L.slice_bytes());
      store.Unpin(b, il, false);
      Put(&chunk, XXH3_64bits(chunk.data(), chunk.size()));
      STRATA_RETURN_IF_ERROR(w.Append(chunk));
    }
  }
  STRATA_RETURN_IF_ERROR(w.Append(std::string_view(kTrailer, sizeof kTrailer)));
  return w.Commit();
}

Status SaveSession(Env* env, const std::string& path, uint64_t fingerprint, KvCacheManager& kv, SeqId seq,
                   const SessionState& state, const KvRelay* relay) {
  SessionState s = state;
  s.tokens = kv.tokens(seq);
  s.n_kv = static_cast<int32_t>(s.tokens.size());
  return relay != nullptr ? WriteSession(env, path, fingerprint, *relay, kv.blocks(seq), s)
                          : WriteSession(env, path, fingerprint, kv.store(), kv.blocks(seq), s);
}

namespace {

// A block store in RAM of layout with n_blocks blocks, *ids their ids in order.
Status NewRamStore(Env* env, const KvLayout& layout, size_t n_blocks, std::unique_ptr<BlockStore>* out,
                   std::vector<BlockId>* ids) {
  STRATA_RETURN_IF_ERROR(
      BlockStore::Create(env, layout, KvTierConfig{}, std::max<int32_t>(static_cast<int32_t>(n_blocks), 1), out));
  ids->resize(n_blocks);
  std::iota(ids->begin(), ids->end(), BlockId{0});
  return Status::Ok();
}

}  // namespace

Status WriteSession(Env* env, const std::string& path, uint64_t fingerprint, const KvRelay& relay,
                    std::span<const BlockId> blocks, const SessionState& state, SessionInfo* info) {
  std::unique_ptr<BlockStore> whole;
  std::vector<BlockId> ids;
  STRATA_RETURN_IF_ERROR(NewRamStore(env, relay.whole, blocks.size(), &whole, &ids));
  STRATA_RETURN_IF_ERROR(relay.gather(blocks, *whole, ids));
  return WriteSession(env, path, fingerprint, *whole, ids, state, info);
}

Status SessionReader::ReadBlocks(Env* env, const KvRelay& relay, std::span<const BlockId> blocks) const {
  std::unique_ptr<BlockStore> whole;
  std::vector<BlockId> ids;
  STRATA_RETURN_IF_ERROR(NewRamStore(env, relay.whole, blocks.size(), &whole, &ids));
  STRATA_RETURN_IF_ERROR(ReadBlocks(*whole, ids));
  return relay.scatter(*whole, ids, blocks);
}

Status SessionReader::Open(Env* env, const std::string& path, uint64_t fingerprint, const KvLayout& layout,
                           std::unique_ptr<SessionReader>* out, bool drop_cache) {
  std::unique_ptr<SessionReader> r(new SessionReader());
  uint64_t size = 0;
  STRATA_RETURN_IF_ERROR(OpenForRead(env, path, &r->file_, &size));
  if (drop_cache) r->file_->DropCache();
  Header h;
  uint64_t off = 0, sum = 0;
  STRATA_RETURN_IF_ERROR(ReadHeader(*r->file_, size, path, &h, &off, &sum));
  const KvLayout& L = layout;
  if (h.fingerprint != fingerprint) return Status::InvalidArgument(path + ": the session belongs to another model");
  if (h.kv_type != static_cast<uint32_t>(L.type) || h.block_tokens != static_cast<uint32_t>(L.block_tokens) ||
      h.n_layer != static_cast<uint32_t>(L.n_layer) || h.n_head_kv != static_cast<uint32_t>(L.n_head_kv) ||
      h.head_dim != static_cast<uint32_t>(L.head_dim))
    return Status::InvalidArgument(fmt::format("{}: saved with KV type {} and block size {}; this run uses {} and {}",
                                               path, GetDTypeInfo(h.kv_type) ? GetDTypeInfo(h.kv_type)->name : "?",
                                               h.block_tokens, DTypeName(L.type), L.block_tokens));
  const uint64_t n_blocks = BlockCount(static_cast<uint64_t>(h.state.n_kv), h.block_tokens);
  if (off + n_blocks * L.n_layer * (L.slice_bytes() + 8) + sizeof kTrailer != size)
    return Status::Corrupt(fmt::format("{}: size {} does not match its {} tokens", path, size, h.state.n_kv));
  r->path_ = path;
  r->layout_ = layout;
  r->state_ = std::move(h.state);
  r->info_ = SessionInfo{h.fingerprint, static_cast<DType>(h.kv_type), static_cast<int32_t>(h.block_tokens),
                         static_cast<int32_t>(r->state_.tokens.size()), r->state_.n_kv, size, sum};
  r->blocks_offset_ = off;
  *out = std::move(r);
  return Status::Ok();
}

Status SessionReader::ReadBlocks(BlockStore& store, std::span<const BlockId> blocks) const {
  const KvLayout& L = layout_;
  const uint64_t n_blocks = BlockCount(static_cast<uint64_t>(state_.n_kv), static_cast<uint32_t>(L.block_tokens));
  if (blocks.size() > n_blocks)
    return Status::InvalidArgument(fmt::format("{}: {} blocks asked of a session of {}", path_, blocks.size(), n_blocks));
  const uint64_t slice = L.slice_bytes();
  uint64_t off = blocks_offset_;
  for (size_t b = 0; b < blocks.size(); ++b) {
    for (int32_t il = 0; il < L.n_layer; ++il) {
      uint8_t* data = nullptr;
      STRATA_RETURN_IF_ERROR(store.Pin(blocks[b], il, &data));
      uint64_t sum = 0;
      Status s = file_->Read(off, slice, data);
      if (s.ok()) s = file_->Read(off + slice, 8, &sum);
      if (s.ok() && XXH3_64bits(data, slice) != sum)
        s = Status::Corrupt(fmt::format("{}: checksum mismatch in block {} layer {}", path_, b, il));
      store.Unpin(blocks[b], il, true);
      STRATA_RETURN_IF_ERROR(s);
      off += slice + 8;
    }
    store.EnforceBudget();
  }
  if (blocks.size() == n_blocks) {
    char trailer[sizeof kTrailer];
    STRATA_RETURN_IF_ERROR(file_->Read(off, sizeof trailer, trailer));
    if (std::memcmp(trailer, kTrailer, sizeof trailer) != 0) return Status::Corrupt(path_ + ": bad trailer");
  }
  return Status::Ok();
}

Status LoadSession(Env* env, const std::string& path, uint64_t fingerprint, KvCacheManager& kv, SeqId* seq,
                   SessionState* state, bool drop_cache, const KvRelay* relay) {
  std::unique_ptr<SessionReader> reader;
  STRATA_RETURN_IF_ERROR(
      SessionReader::Open(env, path, fingerprint, relay != nullptr ? relay->whole : kv.layout(), &reader, drop_cache));
  const SessionState& st = reader->state();
  const uint64_t n_blocks = BlockCount(static_cast<uint64_t>(st.n_kv), static_cast<uint32_t>(kv.layout().block_tokens));
  std::vector<BlockId> blocks;
  auto fail = [&](Status s) {
    for (BlockId b : blocks) kv.ReleaseBlock(b);
    return s;
  };
  for (uint64_t b = 0; b < n_blocks; ++b) {
    BlockId id = 0;
    if (Status s = kv.AllocateBlock(&id); !s.ok()) return fail(s);
    blocks.push_back(id);
  }
  if (Status s = relay != nullptr ? reader->ReadBlocks(env, *relay, blocks) : reader->ReadBlocks(kv.store(), blocks);
      !s.ok())
    return fail(s);
  *state = st;
  *seq = kv.AdoptSequence(std::vector<int32_t>(st.tokens.begin(), st.tokens.begin() + st.n_kv), std::move(blocks));
  return Status::Ok();
}

Status ReadSessionInfo(Env* env, const std::string& path, SessionInfo* info, SessionState* state) {
  std::unique_ptr<RandomAccessFile> file;
  uint64_t size = 0;
  STRATA_RETURN_IF_ERROR(OpenForRead(env, path, &file, &size));
  Header h;
  uint64_t off = 0, sum = 0;
  STRATA_RETURN_IF_ERROR(ReadHeader(*file, size, path, &h, &off, &sum));
  info->model_fingerprint = h.fingerprint;
  info->kv_type = static_cast<DType>(h.kv_type);
  info->block_tokens = static_cast<int32_t>(h.block_tokens);
  info->n_tokens = static_cast<int32_t>(h.state.tokens.size());
  info->n_kv = h.state.n_kv;
  info->file_bytes = size;
  info->header_checksum = sum;
  if (state != nullptr) *state = std::move(h.state);
  return Status::Ok();
}

Status TruncateSessionFile(Env* env, const std::string& path, int32_t n_keep, const SessionEdit* edit) {
  std::unique_ptr<RandomAccessFile> file;
  uint64_t size = 0;
  STRATA_RETURN_IF_ERROR(OpenForRead(env, path, &file, &size));
  Header h;
  uint64_t off = 0;
  STRATA_RETURN_IF_ERROR(ReadHeader(*file, size, path, &h, &off));
  SessionState& st = h.state;
  if (n_keep < 0 || static_cast<size_t>(n_keep) > st.tokens.size())
    return Status::InvalidArgument(fmt::format("cannot roll back to {}: the session has {} tokens", n_keep, st.tokens.size()));
  if (h.block_tokens == 0 || h.n_layer == 0) return Status::Corrupt(path + ": zero block size or layer count");
  const uint64_t old_blocks = BlockCount(static_cast<uint64_t>(st.n_kv), h.block_tokens);
  const uint64_t body = size - off - sizeof kTrailer;
  if (size < off + sizeof kTrailer || (old_blocks > 0 && body % (old_blocks * h.n_layer) != 0))
    return Status::Corrupt(path + ": body size does not match its blocks");
  const uint64_t per_slice = old_blocks > 0 ? body / (old_blocks * h.n_layer) : 0;
  st.tokens.resize(static_cast<size_t>(n_keep));
  st.n_kv = std::min(st.n_kv, n_keep);
  const size_t n_history = std::min(st.sampler_history.size(), st.tokens.size());
  st.sampler_history.assign(st.tokens.end() - static_cast<ptrdiff_t>(n_history), st.tokens.end());
  if (edit != nullptr) {
    st.meta = edit->meta;
    st.rng = edit->rng;
    st.sampler_counts = edit->sampler_counts;
    st.n_kv = std::min(st.n_kv, edit->max_kv);
  }
  const uint64_t keep_bytes = BlockCount(static_cast<uint64_t>(st.n_kv), h.block_tokens) * h.n_layer * per_slice;
  AtomicFileWriter w(env, path);
  STRATA_RETURN_IF_ERROR(w.Open());
  STRATA_RETURN_IF_ERROR(w.Append(EncodeHeader(h)));
  STRATA_RETURN_IF_ERROR(CopyBytes(*file, off, keep_bytes, &w));
  STRATA_RETURN_IF_ERROR(w.Append(std::string_view(kTrailer, sizeof kTrailer)));
  return w.Commit();
}

Status CopySessionFile(Env* env, const std::string& src, const std::string& dst) {
  std::unique_ptr<RandomAccessFile> file;
  uint64_t size = 0;
  STRATA_RETURN_IF_ERROR(OpenForRead(env, src, &file, &size));
  Header h;
  uint64_t off = 0;
  STRATA_RETURN_IF_ERROR(ReadHeader(*file, size, src, &h, &off));  // verified before anything is copied
  if (env->FileExists(dst)) return Status::InvalidArgument(dst + " already exists");
  // A second name for the same file: it is only ever replaced whole, so the
  // two sessions part as soon as either is written. Copied where links are not possible.
  const Status linked = env->LinkFile(src, dst);
  if (linked.code() != StatusCode::kUnsupported) {
    if (linked.ok()) STRATA_RETURN_IF_ERROR(env->SyncDir(DirName(dst)));
    return linked;
  }
  AtomicFileWriter w(env, dst);
  STRATA_RETURN_IF_ERROR(w.Open());
  STRATA_RETURN_IF_ERROR(CopyBytes(*file, 0, size, &w));
  return w.Commit();
}

Status LockSession(Env* env, const std::string& path, std::unique_ptr<FileLock>* lock) {
  Status s = env->LockFile(SessionLockPath(path), lock);
  if (s.code() == StatusCode::kBusy) return Status::Busy(path + " is in use by another process");
  return s;
}

Status RemoveSession(Env* env, const std::string& path) {
  if (!env->FileExists(path)) return Status::NotFound(fmt::format("session file {} does not exist", path));
  STRATA_RETURN_IF_ERROR(env->RemoveFile(path));
  RemoveStaleTempFiles(env, path);
  (void)env->RemoveFile(SessionLockPath(path));  // while locked: whoever opened it meanwhile locks a new one
  return Status::Ok();
}

}  // namespace strata
