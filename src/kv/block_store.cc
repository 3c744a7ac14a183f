#include "kv/block_store.h"

#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fmt/format.h>
#include <new>

namespace strata {
namespace {

constexpr std::align_val_t kFrameAlign{64};

std::string UniqueTierPath(const std::string& dir) {
  static std::atomic<uint64_t> counter{0};  // distinguishes stores within one process
  return fmt::format("{}/strata-kv-{}-{}.blocks", dir, ::getpid(), counter++);
}

}  // namespace

Status BlockStore::Create(Env* env, const KvLayout& layout, const KvTierConfig& tiers, int32_t n_blocks,
                          std::unique_ptr<BlockStore>* out) {
  if (n_blocks < 0) return Status::InvalidArgument("negative block count");
  std::unique_ptr<BlockStore> store(new BlockStore(env, layout, tiers, n_blocks));
  if (!tiers.disk_dir.empty()) {
    STRATA_RETURN_IF_ERROR(env->CreateDirs(tiers.disk_dir));
    store->disk_path_ = UniqueTierPath(tiers.disk_dir);
    STRATA_RETURN_IF_ERROR(env->NewRandomRWFile(store->disk_path_, &store->disk_));
    store->disk_slot_count_ = tiers.disk_bytes / layout.slice_bytes();
    store->prefetcher_ = std::thread([s = store.get()] { s->PrefetchLoop(); });
  }
  *out = std::move(store);
  return Status::Ok();
}

BlockStore::BlockStore(Env* env, const KvLayout& layout, const KvTierConfig& tiers, int32_t n_blocks)
    : env_(env), layout_(layout), tiers_(tiers), slices_(static_cast<size_t>(n_blocks) * layout.n_layer) {}

BlockStore::~BlockStore() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (prefetcher_.joinable()) prefetcher_.join();
  for (Slice& s : slices_)
    if (s.frame != nullptr) ::operator delete[](s.frame, kFrameAlign);
  for (uint8_t* f : spare_frames_) ::operator delete[](f, kFrameAlign);
  if (disk_) {
    disk_.reset();
    (void)env_->RemoveFile(disk_path_);  // the tier is scratch space for this process
  }
}

uint8_t* BlockStore::NewFrame() {
  ++resident_;
  if (!spare_frames_.empty()) {
    uint8_t* f = spare_frames_.back();
    spare_frames_.pop_back();
    return f;
  }
  return static_cast<uint8_t*>(::operator new[](layout_.slice_bytes(), kFrameAlign));
}

void BlockStore::FreeFrame(uint8_t* frame) {
  --resident_;
  // Keep a few frames for reuse; beyond the budget they go back to the OS.
  if (spare_frames_.size() < 64) {
    spare_frames_.push_back(frame);
  } else {
    ::operator delete[](frame, kFrameAlign);
  }
}

Status BlockStore::LoadLocked(size_t idx, std::unique_lock<std::mutex>& lock) {
  Slice& s = slices_[idx];
  s.loading = true;
  uint8_t* frame = NewFrame();
  const uint64_t offset = static_cast<uint64_t>(s.disk_slot) * layout_.slice_bytes();
  const uint64_t want = s.checksum;
  lock.unlock();
  Status st = disk_->Read(offset, layout_.slice_bytes(), frame);
  if (st.ok() && XXH3_64bits(frame, layout_.slice_bytes()) != want)
    st = Status::Corrupt(fmt::format("KV block checksum mismatch in {} (slot {})", disk_path_, s.disk_slot));
  lock.lock();
  s.loading = false;
  cv_.notify_all();
  if (!st.ok()) {
    ++(st.code() == StatusCode::kCorrupt ? stats_.checksum_failures : stats_.read_failures);
    FreeFrame(frame);
    s.lost = st.code() == StatusCode::kCorrupt ? StatusCode::kCorrupt : StatusCode::kIOError;
    free_slots_.push_back(s.disk_slot);  // whatever is there is not a valid copy
    s.disk_slot = -1;
    const BlockId id = static_cast<BlockId>(idx / static_cast<size_t>(layout_.n_layer));
    if (lost_.first_error.ok()) lost_.first_error = st;
    if (std::find(lost_.ids.begin(), lost_.ids.end(), id) == lost_.ids.end()) lost_.ids.push_back(id);
    return LostStatus(idx);
  }
  s.frame = frame;
  s.dirty = false;
  ++stats_.loads;
  return Status::Ok();
}

Status BlockStore::LostStatus(size_t idx) const {
  const Slice& s = slices_[idx];
  const size_t n_layer = static_cast<size_t>(layout_.n_layer);
  return Status(s.lost, fmt::format("KV block {} layer {}: its disk tier copy {}", idx / n_layer, idx % n_layer,
                                    s.lost == StatusCode::kCorrupt ? "failed its checksum" : "could not be read"));
}

Status BlockStore::Pin(BlockId id, int32_t layer, uint8_t** data) {
  std::unique_lock<std::mutex> lock(mu_);
  const size_t idx = Index(id, layer);
  Slice& s = slices_[idx];
  cv_.wait(lock, [&] { return !s.loading; });
  if (s.lost != StatusCode::kOk) return LostStatus(idx);
  if (s.frame == nullptr) {
    if (s.disk_slot >= 0) {
      STRATA_RETURN_IF_ERROR(LoadLocked(idx, lock));
    } else {
      s.frame = NewFrame();
      std::memset(s.frame, 0, layout_.slice_bytes());
    }
  }
  if (s.in_lru) {
    lru_.erase(s.lru_it);
    s.in_lru = false;
  }
  ++s.pins;
  *data = s.frame;
  return Status::Ok();
}

void BlockStore::Unpin(BlockId id, int32_t layer, bool dirty) {
  std::lock_guard<std::mutex> l(mu_);
  const size_t idx = Index(id, layer);
  Slice& s = slices_[idx];
  s.dirty |= dirty;
  if (--s.pins == 0) {
    s.lru_it = lru_.insert(lru_.end(), idx);
    s.in_lru = true;
  }
}

void BlockStore::Prefetch(const std::vector<std::pair<BlockId, int32_t>>& slices) {
  if (!disk_) return;
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& [id, layer] : slices) {
    const size_t idx = Index(id, layer);
    if (slices_[idx].frame == nullptr && slices_[idx].disk_slot >= 0 && !slices_[idx].loading) prefetch_queue_.push_back(idx);
  }
  cv_.notify_all();
}

void BlockStore::PrefetchLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || !prefetch_queue_.empty(); });
    if (stop_) return;
    const size_t idx = prefetch_queue_.front();
    prefetch_queue_.pop_front();
    Slice& s = slices_[idx];
    if (s.frame != nullptr || s.disk_slot < 0 || s.loading) continue;
    // A failed read loses the slice; Pin reports it.
    if (LoadLocked(idx, lock).ok()) {
      ++stats_.prefetched;
      s.lru_it = lru_.insert(lru_.end(), idx);
      s.in_lru = true;
    }
  }
}

void BlockStore::Discard(BlockId id) {
  std::unique_lock<std::mutex> lock(mu_);
  for (int32_t layer = 0; layer < layout_.n_layer; ++layer) {
    Slice& s = slices_[Index(id, layer)];
    cv_.wait(lock, [&] { return !s.loading; });
    if (s.in_lru) lru_.erase(s.lru_it);
    if (s.frame != nullptr) FreeFrame(s.frame);
    if (s.disk_slot >= 0) free_slots_.push_back(s.disk_slot);
    s = Slice{};
  }
  lost_.ids.erase(std::remove(lost_.ids.begin(), lost_.ids.end(), id), lost_.ids.end());
}

LostBlocks BlockStore::TakeLostBlocks() {
  std::lock_guard<std::mutex> l(mu_);
  LostBlocks out = std::move(lost_);
  lost_ = LostBlocks{};
  return out;
}

Status BlockStore::CopyBlock(BlockId from, BlockId to) {
  for (int32_t layer = 0; layer < layout_.n_layer; ++layer) {
    uint8_t* src = nullptr;
    uint8_t* dst = nullptr;
    STRATA_RETURN_IF_ERROR(Pin(from, layer, &src));
    Status st = Pin(to, layer, &dst);
    if (st.ok()) {
      std::memcpy(dst, src, layout_.slice_bytes());
      Unpin(to, layer, true);
    }
    Unpin(from, layer, false);
    STRATA_RETURN_IF_ERROR(st);
  }
  return Status::Ok();
}

Status BlockStore::TakeSlotLocked(int32_t* slot) {
  if (!free_slots_.empty()) {
    *slot = free_slots_.back();
    free_slots_.pop_back();
  } else if (static_cast<uint64_t>(next_slot_) < disk_slot_count_) {
    *slot = next_slot_++;
  } else {
    return Status::ResourceExhausted("the KV disk tier budget is used up");
  }
  return Status::Ok();
}

Status BlockStore::WriteLocked(size_t idx) {
  Slice& s = slices_[idx];
  if (s.disk_slot < 0) STRATA_RETURN_IF_ERROR(TakeSlotLocked(&s.disk_slot));
  const std::string_view bytes(reinterpret_cast<const char*>(s.frame), layout_.slice_bytes());
  Status st = disk_->Write(static_cast<uint64_t>(s.disk_slot) * layout_.slice_bytes(), bytes);
  if (!st.ok()) {
    free_slots_.push_back(s.disk_slot);  // whatever is there is not a valid copy
    s.disk_slot = -1;
    return st;
  }
  s.checksum = XXH3_64bits(s.frame, layout_.slice_bytes());
  s.dirty = false;
  ++stats_.writes;
  return Status::Ok();
}

Status BlockStore::EvictLocked(bool* wrote) {
  for (auto it = lru_.begin(); resident_ * layout_.slice_bytes() > tiers_.ram_bytes && it != lru_.end();) {
    Slice& s = slices_[*it];
    // A slice neither dirty nor on disk was never written: dropping it keeps it all zeros.
    if (s.dirty) {
      if (!write_error_.ok()) {  // writes suspended: it stays in RAM
        ++it;
        continue;
      }
      if (Status st = WriteLocked(*it); !st.ok()) {
        write_error_ = st;
        ++stats_.write_failures;
        ++it;
        continue;
      }
      *wrote = true;
    }
    s.in_lru = false;
    FreeFrame(s.frame);
    s.frame = nullptr;
    it = lru_.erase(it);
  }
  return write_error_;
}

void BlockStore::EnforceBudget() {
  std::lock_guard<std::mutex> l(mu_);
  if (!disk_) return;  // RAM is the only tier: the pool's size is the limit
  bool wrote = false;
  (void)EvictLocked(&wrote);  // a failed write suspends writes until RetryWrites
}

Status BlockStore::write_error() const {
  std::lock_guard<std::mutex> l(mu_);
  return write_error_;
}

void BlockStore::SuspendWrites(Status cause) {
  std::lock_guard<std::mutex> l(mu_);
  write_error_ = std::move(cause);
}

Status BlockStore::RetryWrites() {
  std::lock_guard<std::mutex> l(mu_);
  if (!disk_) return Status::Ok();
  write_error_ = Status::Ok();
  bool wrote = false;
  STRATA_RETURN_IF_ERROR(EvictLocked(&wrote));
  if (wrote) return Status::Ok();
  // Nothing needed writing: write zeros to a free slot to see whether the disk takes writes again.
  int32_t slot = 0;
  Status st = TakeSlotLocked(&slot);
  if (st.ok()) {
    const std::string zeros(layout_.slice_bytes(), '\0');
    st = disk_->Write(static_cast<uint64_t>(slot) * layout_.slice_bytes(), zeros);
    free_slots_.push_back(slot);
  }
  if (!st.ok()) {
    write_error_ = st;
    ++stats_.write_failures;
  }
  return st;
}

void BlockStore::DropCache() {
  if (disk_) disk_->DropCache();
}

BlockStoreStats BlockStore::stats() const {
  std::lock_guard<std::mutex> l(mu_);
  BlockStoreStats s = stats_;
  s.ram_slices = resident_;
  s.writes_suspended = !write_error_.ok();
  uint64_t on_disk = 0;
  for (const Slice& x : slices_) on_disk += x.disk_slot >= 0;
  s.disk_slices = on_disk;
  return s;
}

BlockStore::SliceTiers BlockStore::CountSliceTiers(std::span<const BlockId> blocks) const {
  std::lock_guard<std::mutex> l(mu_);
  SliceTiers t;
  for (BlockId b : blocks) {
    for (int32_t il = 0; il < layout_.n_layer; ++il) {
      const Slice& x = slices_[Index(b, il)];
      t.ram += x.frame != nullptr;
      t.disk += x.disk_slot >= 0;
    }
  }
  return t;
}

}  // namespace strata
