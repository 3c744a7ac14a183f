#include "kv/kv_cache_manager.h"

#include <xxhash.h>

#include <algorithm>
#include <cstdio>
#include <fmt/format.h>

namespace strata {

namespace {

constexpr int64_t kMaxBlocks = int64_t{1} << 24;

}  // namespace

Status KvCacheManager::Create(Env* env, const KvCacheConfig& config, std::unique_ptr<KvCacheManager>* out) {
  const KvLayout& L = config.layout;
  int64_t n_blocks = config.n_blocks;
  if (n_blocks <= 0) {
    const uint64_t ram = config.tiers.ram_bytes, disk = config.tiers.disk_dir.empty() ? 0 : config.tiers.disk_bytes;
    uint64_t total = ram > UINT64_MAX - disk ? UINT64_MAX : ram + disk;
    total = total > UINT64_MAX - config.node_bytes ? UINT64_MAX : total + config.node_bytes;
    n_blocks = static_cast<int64_t>(std::min<uint64_t>(total / L.block_bytes(), kMaxBlocks));
  }
  if (n_blocks <= 0 || n_blocks > kMaxBlocks)
    return Status::InvalidArgument(fmt::format("the KV budgets hold {} blocks of {} bytes; need at least one", n_blocks,
                                               L.block_bytes()));
  std::unique_ptr<BlockStore> store;
  STRATA_RETURN_IF_ERROR(BlockStore::Create(env, L, config.tiers, static_cast<int32_t>(n_blocks), &store));
  out->reset(new KvCacheManager(config, std::move(store), static_cast<int32_t>(n_blocks)));
  return Status::Ok();
}

KvCacheManager::KvCacheManager(const KvCacheConfig& config, std::unique_ptr<BlockStore> store, int32_t n_blocks)
    : config_(config), store_(std::move(store)), pool_(n_blocks), block_limit_(n_blocks) {}

KvCacheManager::~KvCacheManager() = default;

uint64_t KvCacheManager::ChainHash(uint64_t prev, std::span<const int32_t> block_tokens) const {
  return XXH3_64bits_withSeed(block_tokens.data(), block_tokens.size_bytes(), prev);
}

uint64_t KvCacheManager::ChainRoot(uint64_t key) {
  return key == 0 ? 0 : XXH3_64bits(&key, sizeof key);
}

SeqId KvCacheManager::NewSequence(int32_t adapter, uint64_t adapter_key) {
  SeqId id = next_seq_++;
  seqs_[id].adapter = adapter;
  seqs_[id].adapter_key = adapter_key;
  return id;
}

void KvCacheManager::ReleaseBlock(BlockId id) {
  if (!pool_.DecRef(id)) return;
  store_->Discard(id);
  if (config_.on_free) config_.on_free(id);
}

void KvCacheManager::FreeSequence(SeqId seq) {
  auto it = seqs_.find(seq);
  if (auto p = parked_at_.find(seq); p != parked_at_.end()) {
    CountParkedHolds(it->second, -1);
    parked_.erase(p->second);
    parked_at_.erase(p);
  }
  for (BlockId b : it->second.blocks) ReleaseBlock(b);
  seqs_.erase(it);
}

void KvCacheManager::CountParkedHolds(const Sequence& s, int32_t delta) {
  for (BlockId b : s.blocks) {
    auto [it, fresh] = parked_holds_.try_emplace(b, 0);
    it->second += delta;
    if (it->second == 0) parked_holds_.erase(it);
  }
}

void KvCacheManager::Park(SeqId seq) {
  CountParkedHolds(seqs_.at(seq), +1);
  parked_at_[seq] = parked_.insert(parked_.end(), seq);
}

bool KvCacheManager::Unpark(SeqId seq) {
  auto p = parked_at_.find(seq);
  if (p == parked_at_.end()) return seqs_.count(seq) != 0;
  CountParkedHolds(seqs_.at(seq), -1);
  parked_.erase(p->second);
  parked_at_.erase(p);
  return true;
}

bool KvCacheManager::EvictOneParked() {
  if (parked_.empty()) return false;
  FreeSequence(parked_.front());
  ++parked_evictions_;
  return true;
}

Status KvCacheManager::Fork(SeqId src, SeqId* dst) {
  const Sequence& s = seqs_.at(src);
  for (BlockId b : s.blocks) pool_.IncRef(b);
  *dst = next_seq_++;
  seqs_[*dst] = s;
  return Status::Ok();
}

void KvCacheManager::Truncate(SeqId seq, int32_t n_keep) {
  Sequence& s = seqs_.at(seq);
  const bool parked = parked_at_.count(seq) != 0;
  if (parked) CountParkedHolds(s, -1);
  const int32_t B = layout().block_tokens;
  const size_t keep_blocks = static_cast<size_t>((n_keep + B - 1) / B);
  while (s.blocks.size() > keep_blocks) {
    ReleaseBlock(s.blocks.back());
    s.blocks.pop_back();
  }
  s.tokens.resize(static_cast<size_t>(n_keep));
  s.full_hashes.resize(std::min(s.full_hashes.size(), static_cast<size_t>(n_keep / B)));
  if (parked) CountParkedHolds(s, +1);
}

int32_t KvCacheManager::AttachCachedPrefix(SeqId seq, std::span<const int32_t> tokens) {
  Sequence& s = seqs_.at(seq);
  if (!config_.prefix_cache || !s.tokens.empty() || tokens.empty()) return 0;
  const size_t B = static_cast<size_t>(layout().block_tokens);
  uint64_t h = ChainRoot(s.adapter_key);
  while ((s.blocks.size() + 1) * B <= tokens.size() - 1) {
    const auto block = tokens.subspan(s.blocks.size() * B, B);
    h = ChainHash(h, block);
    ++prefix_lookups_;
    auto it = cache_.find(h);
    if (it == cache_.end() || it->second.adapter_key != s.adapter_key ||
        !std::equal(block.begin(), block.end(), it->second.tokens.begin()))
      break;
    cache_lru_.splice(cache_lru_.end(), cache_lru_, it->second.lru_it);
    pool_.IncRef(it->second.id);
    s.blocks.push_back(it->second.id);
    s.full_hashes.push_back(h);
    s.tokens.insert(s.tokens.end(), block.begin(), block.end());
    ++prefix_hits_;
  }
  return static_cast<int32_t>(s.tokens.size());
}

bool KvCacheManager::EvictOneCached() {
  for (auto it = cache_lru_.begin(); it != cache_lru_.end(); ++it) {
    auto c = cache_.find(*it);
    if (pool_.refcount(c->second.id) != 1) continue;  // a sequence still uses it
    ReleaseBlock(c->second.id);
    cache_.erase(c);
    cache_lru_.erase(it);
    return true;
  }
  return false;
}

int32_t KvCacheManager::n_available_blocks() const {
  // A block is freed by evictions if only the cache and parked sequences hold it.
  auto parked_holders = [&](BlockId b) {
    auto it = parked_holds_.find(b);
    return it == parked_holds_.end() ? 0 : it->second;
  };
  int32_t evictable = 0;
  std::unordered_map<BlockId, bool> cached;
  for (const auto& [h, c] : cache_) {
    evictable += pool_.refcount(c.id) == 1 + parked_holders(c.id);
    if (!parked_holds_.empty()) cached[c.id] = true;
  }
  for (const auto& [b, n] : parked_holds_) evictable += cached.count(b) == 0 && pool_.refcount(b) == n;
  // Over the RAM-only limit, evictions first bring the use down to it.
  return std::max(0, std::min(pool_.n_free(), block_limit_ - pool_.n_used()) + evictable);
}

Status KvCacheManager::AllocateBlock(BlockId* id) {
  while (pool_.n_used() >= block_limit_ && (EvictOneCached() || EvictOneParked())) {
  }
  std::optional<BlockId> b;
  if (pool_.n_used() < block_limit_) b = pool_.Allocate();
  while (!b && (EvictOneCached() || EvictOneParked())) {
    if (pool_.n_used() < block_limit_) b = pool_.Allocate();
  }
  if (!b) return Status::ResourceExhausted("no free KV block");
  *id = *b;
  return Status::Ok();
}

Status KvCacheManager::Prepare(std::span<const Append> appends, StepPlan* plan) {
  const int32_t B = layout().block_tokens;
  int64_t needed = 0;
  for (const Append& a : appends) {
    const Sequence& s = seqs_.at(a.seq);
    const int64_t len = static_cast<int64_t>(s.tokens.size());
    needed += (len + static_cast<int64_t>(a.tokens.size()) + B - 1) / B - static_cast<int64_t>(s.blocks.size());
    // Writing into a partly filled block that another sequence shares copies it first.
    if (len % B != 0 && pool_.refcount(s.blocks[static_cast<size_t>(len / B)]) > 1) ++needed;
  }
  if (needed > n_available_blocks())
    return Status::ResourceExhausted(fmt::format("the batch needs {} KV blocks; {} are available", needed,
                                                 n_available_blocks()));
  StepPlan p;
  for (const Append& a : appends) {
    Sequence& s = seqs_.at(a.seq);
    const int64_t len = static_cast<int64_t>(s.tokens.size());
    if (len % B != 0) {
      BlockId& last = s.blocks[static_cast<size_t>(len / B)];
      if (pool_.refcount(last) > 1) {
        BlockId copy = 0;
        Status st = AllocateBlock(&copy);
        if (st.ok()) st = store_->CopyBlock(last, copy);
        if (!st.ok()) {
          Rollback(appends);
          return st;
        }
        ReleaseBlock(last);
        p.copies.push_back({last, copy});
        last = copy;
      }
    }
    while (static_cast<int64_t>(s.blocks.size()) * B < len + static_cast<int64_t>(a.tokens.size())) {
      BlockId b = 0;
      Status st = AllocateBlock(&b);
      if (!st.ok()) {
        Rollback(appends);
        return st;
      }
      s.blocks.push_back(b);
    }
    p.entries.push_back(PlanEntry{a.seq, static_cast<int32_t>(len), std::vector<int32_t>(a.tokens.begin(), a.tokens.end()),
                                  s.blocks, a.logits, s.adapter});
  }
  *plan = std::move(p);
  return Status::Ok();
}

void KvCacheManager::Commit(SeqId seq, std::span<const int32_t> tokens) {
  Sequence& s = seqs_.at(seq);
  s.tokens.insert(s.tokens.end(), tokens.begin(), tokens.end());
  RegisterFullBlocks(s);
}

void KvCacheManager::RegisterFullBlocks(Sequence& s) {
  const size_t B = static_cast<size_t>(layout().block_tokens);
  while ((s.full_hashes.size() + 1) * B <= s.tokens.size()) {
    const size_t i = s.full_hashes.size();
    const std::span<const int32_t> block(s.tokens.data() + i * B, B);
    const uint64_t h = ChainHash(i == 0 ? ChainRoot(s.adapter_key) : s.full_hashes.back(), block);
    s.full_hashes.push_back(h);
    if (!config_.prefix_cache || cache_.count(h) != 0) continue;
    pool_.IncRef(s.blocks[i]);
    CachedBlock c{s.blocks[i], std::vector<int32_t>(block.begin(), block.end()), s.adapter_key, {}};
    c.lru_it = cache_lru_.insert(cache_lru_.end(), h);
    cache_.emplace(h, std::move(c));
  }
}

void KvCacheManager::Rollback(std::span<const Append> appends) {
  const int32_t B = layout().block_tokens;
  for (const Append& a : appends) {
    auto it = seqs_.find(a.seq);
    if (it == seqs_.end()) continue;
    Sequence& s = it->second;
    const size_t keep = static_cast<size_t>((static_cast<int64_t>(s.tokens.size()) + B - 1) / B);
    while (s.blocks.size() > keep) {
      ReleaseBlock(s.blocks.back());
      s.blocks.pop_back();
    }
  }
}

SeqId KvCacheManager::AdoptSequence(std::vector<int32_t> tokens, std::vector<BlockId> blocks) {
  SeqId id = next_seq_++;
  Sequence& s = seqs_[id];
  s.tokens = std::move(tokens);
  s.blocks = std::move(blocks);
  RegisterFullBlocks(s);
  return id;
}

void KvCacheManager::Log(const std::string& line) const {
  if (config_.log) {
    config_.log(line);
  } else {
    fmt::print(stderr, "strata: {}\n", line);
  }
}

bool KvCacheManager::LogLimited(LogQuiet& q, const std::string& line) {
  if (q.ever && steps_ - q.last_step < kLogQuietSteps) {
    ++q.unlogged;
    return false;
  }
  Log(q.unlogged == 0 ? line : fmt::format("{} ({} more like it since the last message)", line, q.unlogged));
  q = LogQuiet{true, steps_, 0};
  return true;
}

std::vector<KvCacheManager::LostSuffix> KvCacheManager::DropLostBlocks() {
  if (!store_->has_disk()) return {};
  const LostBlocks lost = store_->TakeLostBlocks();
  if (lost.ids.empty()) return {};
  auto is_lost = [&](BlockId b) { return std::find(lost.ids.begin(), lost.ids.end(), b) != lost.ids.end(); };
  lost_this_step_ = true;
  blocks_lost_ += lost.ids.size();
  LogLimited(lost_log_, fmt::format("{} KV block(s) lost on the disk tier ({}); dropped and recomputed",
                                    lost.ids.size(), lost.first_error.ToString()));
  for (auto it = cache_lru_.begin(); it != cache_lru_.end();) {
    auto c = cache_.find(*it);
    if (!is_lost(c->second.id)) {
      ++it;
      continue;
    }
    const BlockId b = c->second.id;
    cache_.erase(c);
    it = cache_lru_.erase(it);
    ReleaseBlock(b);
  }
  std::vector<LostSuffix> out;
  for (const auto& [seq, s] : seqs_) {
    const auto first = std::find_if(s.blocks.begin(), s.blocks.end(), is_lost);
    if (first != s.blocks.end()) out.push_back({seq, static_cast<int32_t>(first - s.blocks.begin())});
  }
  return out;
}

void KvCacheManager::MaintainDiskTier() {
  if (!store_->has_disk()) return;
  ++steps_;
  if (lost_this_step_) {
    ++lost_events_;
    clean_steps_ = 0;
  } else if (++clean_steps_ >= kLostWindowSteps) {
    lost_events_ = 0;
  }
  lost_this_step_ = false;
  if (ram_only_) {
    if (--steps_to_retry_ > 0 || RetryDiskTier()) return;
    retry_steps_ = std::min(2 * retry_steps_, kMaxRetrySteps);
    steps_to_retry_ = retry_steps_;
    return;
  }
  if (lost_events_ >= kLostEventsForRamOnly) {
    EnterRamOnly(Status::Corrupt(fmt::format("blocks were lost on disk in {} recent steps", lost_events_)));
    return;
  }
  Status w = store_->write_error();
  if (w.ok()) return;
  // A write failed: evict cached blocks (freeing their disk slots) until one succeeds.
  while (!(w = store_->RetryWrites()).ok() && EvictOneCached()) {
  }
  if (!w.ok()) EnterRamOnly(w);
}

bool KvCacheManager::RetryDiskTier() {
  if (!ram_only_ || !store_->RetryWrites().ok()) return false;
  LeaveRamOnly();
  return true;
}

void KvCacheManager::EnterRamOnly(const Status& cause) {
  ram_only_ = true;
  ++ram_only_fallbacks_;
  store_->SuspendWrites(cause);
  const uint64_t ram_blocks = config_.tiers.ram_bytes / layout().block_bytes();
  block_limit_ = static_cast<int32_t>(std::min<uint64_t>(
      std::max<uint64_t>(ram_blocks, static_cast<uint64_t>(std::max(config_.ram_only_min_blocks, 0))),
      static_cast<uint64_t>(pool_.capacity())));
  retry_steps_ = kFirstRetrySteps;
  steps_to_retry_ = retry_steps_;
  fallback_logged_ = LogLimited(
      fallback_log_, fmt::format("KV disk tier failing ({}); serving from RAM only ({} of {} blocks) until it takes "
                                 "writes again",
                                 cause.ToString(), block_limit_, pool_.capacity()));
}

void KvCacheManager::LeaveRamOnly() {
  ram_only_ = false;
  block_limit_ = pool_.capacity();
  lost_events_ = 0;
  clean_steps_ = 0;
  if (fallback_logged_) Log("KV disk tier takes writes again; RAM-only fallback ended");
}

KvCacheStats KvCacheManager::stats() const {
  KvCacheStats st;
  st.blocks_total = pool_.capacity();
  st.blocks_used = pool_.n_used();
  st.blocks_cached = static_cast<int32_t>(cache_.size());
  st.prefix_hits = prefix_hits_;
  st.prefix_lookups = prefix_lookups_;
  st.blocks_lost = blocks_lost_;
  st.ram_only = ram_only_;
  st.ram_only_fallbacks = ram_only_fallbacks_;
  st.parked_sequences = static_cast<int32_t>(parked_.size());
  st.parked_blocks = static_cast<int32_t>(parked_holds_.size());
  st.parked_evictions = parked_evictions_;
  if (!parked_holds_.empty()) {
    std::vector<BlockId> blocks;
    for (const auto& [b, n] : parked_holds_) blocks.push_back(b);
    const BlockStore::SliceTiers tiers = store_->CountSliceTiers(blocks);
    st.parked_slices_ram = tiers.ram;
    st.parked_slices_disk = tiers.disk;
  }
  st.store = store_->stats();
  return st;
}

Status KvCacheManager::CheckInvariants() const {
  STRATA_RETURN_IF_ERROR(pool_.CheckInvariants());
  std::vector<int32_t> refs(static_cast<size_t>(pool_.capacity()), 0);
  const int32_t B = layout().block_tokens;
  for (const auto& [id, s] : seqs_) {
    if (static_cast<int64_t>(s.blocks.size()) != (static_cast<int64_t>(s.tokens.size()) + B - 1) / B)
      return Status::Internal(fmt::format("sequence {} has {} blocks for {} tokens", id, s.blocks.size(), s.tokens.size()));
    for (BlockId b : s.blocks) ++refs[static_cast<size_t>(b)];
  }
  for (const auto& [h, c] : cache_) ++refs[static_cast<size_t>(c.id)];
  for (int32_t b = 0; b < pool_.capacity(); ++b)
    if (refs[static_cast<size_t>(b)] != pool_.refcount(b))
      return Status::Internal(fmt::format("block {} has refcount {} but {} holders", b, pool_.refcount(b), refs[b]));
  return Status::Ok();
}

}  // namespace strata
