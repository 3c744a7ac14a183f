// BlockStore: where KV slices (one layer of one block, see kv_layout.h) live —
// RAM frames up to a budget, the rest in a disk tier file. Attention pins the
// slices it needs (reading them back from disk, checksum-verified, possibly
// already prefetched by a background thread) and unpins them after; slices
// past the RAM budget are written to disk and their frames freed, least
// recently used first. Pinned slices never move, so the budget is soft: with
// a budget of 0 only the slices the current step pins stay in RAM.
//
// Disk faults never yield wrong data and never stop the store:
// - A slice whose disk copy fails its checksum or cannot be read is *lost*:
//   Pin reports it (kCorrupt / kIOError, naming no path) until its block is
//   discarded, and TakeLostBlocks hands the block to the owner to recompute.
// - A write that fails (disk full, I/O error, tier budget used up) suspends
//   writes: dirty slices then stay in RAM past the budget until RetryWrites
//   succeeds (the KV cache manager decides when; kv_cache_manager.h).
//
// All file I/O goes through Env, so tests run in memory and inject faults.
//
// Thread-safety: all public methods are safe to call concurrently.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/env.h"
#include "core/status.h"
#include "kv/block_pool.h"
#include "kv/kv_layout.h"

namespace strata {

struct KvTierConfig {
  uint64_t ram_bytes = UINT64_MAX;  // RAM budget for slices
  std::string disk_dir;             // empty: no disk tier
  uint64_t disk_bytes = UINT64_MAX; // disk tier budget
};

struct BlockStoreStats {
  uint64_t ram_slices = 0;        // resident now
  uint64_t disk_slices = 0;       // with a copy on disk now
  uint64_t loads = 0;             // slices read back from disk (including prefetches)
  uint64_t prefetched = 0;        // of which by the prefetcher
  uint64_t writes = 0;            // slices written to disk
  uint64_t checksum_failures = 0; // disk reads whose checksum did not match (the slice is lost)
  uint64_t read_failures = 0;     // disk reads the Env refused (the slice is lost)
  uint64_t write_failures = 0;    // disk writes the Env or the tier budget refused
  bool writes_suspended = false;  // since a write failed, until RetryWrites succeeds
};

// Blocks with a lost slice (its disk copy failed its checksum or a read) and
// the first such failure, with the Env's detail (for logs, not for clients).
struct LostBlocks {
  std::vector<BlockId> ids;
  Status first_error;
};

class BlockStore {
 public:
  // n_blocks: how many block ids the pool hands out.
  [[nodiscard]] static Status Create(Env* env, const KvLayout& layout, const KvTierConfig& tiers, int32_t n_blocks,
                                     std::unique_ptr<BlockStore>* out);
  ~BlockStore();

  const KvLayout& layout() const { return layout_; }
  bool has_disk() const { return disk_ != nullptr; }
  // Block ids this store holds slices for: [0, n_blocks()).
  int32_t n_blocks() const { return static_cast<int32_t>(slices_.size() / static_cast<size_t>(layout_.n_layer)); }

  // Makes slice (id, layer) resident and pinned; *data then points at its
  // slice_bytes() bytes until Unpin. A slice never written reads as zeros.
  // kCorrupt / kIOError if the slice is lost (nothing pinned).
  [[nodiscard]] Status Pin(BlockId id, int32_t layer, uint8_t** data);
  // dirty: the caller modified the slice.
  void Unpin(BlockId id, int32_t layer, bool dirty);
  // Starts loading these slices in the background if they are on disk only.
  void Prefetch(const std::vector<std::pair<BlockId, int32_t>>& slices);
  // Forgets every slice of block id (the block was freed), lost or not. REQUIRES: none pinned.
  void Discard(BlockId id);
  // Copies every layer of block from into block to (copy-on-write).
  [[nodiscard]] Status CopyBlock(BlockId from, BlockId to);
  // Frees the frames of least recently used unpinned slices until RAM use is
  // within budget, writing dirty ones to disk first. A failed write suspends
  // writes (dirty slices then stay in RAM); clean slices are still freed.
  void EnforceBudget();
  // Blocks that became lost since the last call (each once; discarded ones left out).
  LostBlocks TakeLostBlocks();
  // The error that suspended writes, or OK.
  Status write_error() const;
  // Suspends writes (the owner stops using the disk tier) until RetryWrites succeeds.
  // REQUIRES: !cause.ok().
  void SuspendWrites(Status cause);
  // Resumes writes and enforces the budget; if no slice needed writing,
  // writes one unused slot to test the disk. On failure writes stay
  // suspended and the error is returned (kResourceExhausted: no slot left in
  // the tier budget; or the Env's error).
  [[nodiscard]] Status RetryWrites();
  // Drops the OS page cache of the disk tier file (cold-cache benchmarks).
  void DropCache();
  BlockStoreStats stats() const;
  // How many slices of these blocks are resident in RAM, and how many have a
  // copy on disk (a slice may be both), now.
  struct SliceTiers {
    uint64_t ram = 0, disk = 0;
  };
  SliceTiers CountSliceTiers(std::span<const BlockId> blocks) const;

 private:
  struct Slice {
    uint8_t* frame = nullptr;  // resident copy, or null
    int32_t disk_slot = -1;    // copy on disk, or -1
    uint64_t checksum = 0;     // of the disk copy
    int32_t pins = 0;
    bool dirty = false;        // frame newer than the disk copy
    bool loading = false;      // a read into frame is under way
    bool in_lru = false;
    StatusCode lost = StatusCode::kOk;  // kCorrupt / kIOError: the disk copy failed its checksum / a read
    std::list<size_t>::iterator lru_it;
  };

  BlockStore(Env* env, const KvLayout& layout, const KvTierConfig& tiers, int32_t n_blocks);
  size_t Index(BlockId id, int32_t layer) const { return static_cast<size_t>(id) * layout_.n_layer + layer; }
  uint8_t* NewFrame();       // REQUIRES: mu_ held
  void FreeFrame(uint8_t* frame);  // REQUIRES: mu_ held
  // Reads slice idx from disk into its frame; called with lock held, drops it
  // during I/O. On failure the slice is lost. REQUIRES: idx on disk only, not lost.
  Status LoadLocked(size_t idx, std::unique_lock<std::mutex>& lock);
  // The status Pin reports for a lost slice: no path, the block and layer.
  Status LostStatus(size_t idx) const;
  // Takes a free disk slot (or kResourceExhausted: the tier budget is used up).
  Status TakeSlotLocked(int32_t* slot);
  Status WriteLocked(size_t idx);
  // EnforceBudget's loop (REQUIRES: mu_ held); *wrote: a slice was written. Returns write_error_.
  Status EvictLocked(bool* wrote);
  void PrefetchLoop();

  Env* env_;
  KvLayout layout_;
  KvTierConfig tiers_;
  std::string disk_path_;
  std::unique_ptr<RandomRWFile> disk_;
  uint64_t disk_slot_count_ = 0;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Slice> slices_;          // [n_blocks * n_layer]
  std::list<size_t> lru_;              // unpinned resident slices, least recent first
  std::vector<uint8_t*> spare_frames_;
  std::vector<int32_t> free_slots_;    // disk slots not in use
  int32_t next_slot_ = 0;
  uint64_t resident_ = 0;              // frames holding slices
  BlockStoreStats stats_;
  Status write_error_;                 // not OK: writes are suspended
  LostBlocks lost_;                    // not yet taken

  std::deque<size_t> prefetch_queue_;
  bool stop_ = false;
  std::thread prefetcher_;
};

}  // namespace strata
