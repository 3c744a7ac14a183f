// KvCacheManager: the paged KV cache of many sequences. Each sequence has a
// block table (logical block i -> BlockId) over a shared BlockPool; block
// bytes live in a BlockStore (RAM, then disk). Sequences can be forked in
// O(blocks) (blocks shared, copied on write), truncated (rolled back), and a
// new sequence can attach the cached blocks of an identical earlier prefix
// (hash chain over full blocks) instead of recomputing them. A sequence runs
// with one adapter set (kv/step_plan.h PlanEntry::adapter), which changes its
// keys and values: prefixes are shared only between sequences of one set.
//
// Appends follow prepare/commit: Prepare reserves every block a batch will
// write (or fails with kResourceExhausted and changes nothing) and returns
// the step's plan (kv/step_plan.h), all the forward pass reads; Commit records
// the tokens once the forward pass succeeded; Rollback undoes a Prepare whose
// forward pass failed.
//
// Parked sequences (a server's sessions between requests) stay until their
// blocks are needed: when blocks run short, unused prefix-cache blocks are
// evicted first, then parked sequences, least recently parked first (freed:
// the session file holds their KV; their full blocks stay in the prefix
// cache until evicted in turn).
//
// Disk tier faults (the owner calls DropLostBlocks and MaintainDiskTier after
// every forward pass):
// - A block with a slice lost on disk (block_store.h) leaves the prefix cache;
//   the sequences holding it are truncated before it and recompute the rest.
// - When the store suspends writes (disk full or failing), cached blocks are
//   evicted until a write succeeds; if none does, the cache serves from RAM
//   only: at most ram_bytes / block_bytes blocks (never fewer than
//   ram_only_min_blocks) until the disk takes writes again, retried every
//   few steps. So does a disk that loses blocks in kLostEventsForRamOnly
//   steps within kLostWindowSteps. Transitions are logged, a kind of event
//   at most once per kLogQuietSteps steps (a disk at the edge of full flaps).
//
// Thread-safety: not thread-safe; owned by one engine/context step thread.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <string>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include "core/env.h"
#include "core/status.h"
#include "kv/block_pool.h"
#include "kv/block_store.h"
#include "kv/kv_layout.h"
#include "kv/step_plan.h"

namespace strata {

struct KvCacheConfig {
  KvLayout layout;
  KvTierConfig tiers;
  int32_t n_blocks = 0;      // block ids available; 0: derived from the tier budgets
  bool prefix_cache = true;  // keep full blocks for reuse by later sequences
  // Blocks usable in RAM-only fallback even beyond the RAM budget (a single-sequence
  // owner that cannot ask its caller to retry later sets its whole context).
  int32_t ram_only_min_blocks = 0;
  // Disk tier state changes and lost blocks, one line each (may name paths); null: stderr.
  std::function<void(const std::string&)> log;
  // RAM other ranks lend as KV nodes (engine/kv_nodes.h): the client's sizing
  // counts it with tiers.ram_bytes.
  uint64_t node_bytes = 0;
  // Called with each block freed (its last reference dropped); null: none.
  std::function<void(BlockId)> on_free;
};

struct KvCacheStats {
  int32_t blocks_total = 0;
  int32_t blocks_used = 0;      // referenced by a sequence or the prefix cache
  int32_t blocks_cached = 0;    // held by the prefix cache
  uint64_t prefix_hits = 0;     // blocks attached from the prefix cache
  uint64_t prefix_lookups = 0;  // blocks looked up
  uint64_t blocks_lost = 0;     // blocks dropped because a slice was lost on disk (recomputed by their owners)
  bool ram_only = false;        // the disk tier failed: serving from RAM only
  uint64_t ram_only_fallbacks = 0;  // times the disk tier failed and RAM-only began
  int32_t parked_sequences = 0;
  int32_t parked_blocks = 0;        // distinct blocks parked sequences hold
  uint64_t parked_slices_ram = 0;   // their slices resident in RAM now
  uint64_t parked_slices_disk = 0;  // their slices with a copy on the disk tier now
  uint64_t parked_evictions = 0;    // parked sequences freed to make room
  BlockStoreStats store;
};

class KvCacheManager {
 public:
  [[nodiscard]] static Status Create(Env* env, const KvCacheConfig& config, std::unique_ptr<KvCacheManager>* out);
  ~KvCacheManager();

  const KvLayout& layout() const { return store_->layout(); }
  BlockStore& store() { return *store_; }

  // A sequence that runs with adapter set `adapter` (0: none), for good;
  // adapter_key fingerprints the set's content (engine/adapter_sets.h
  // LoraSetKey): the prefix cache matches by it, so an index that later
  // names another set never shares this KV. REQUIRES: key 0 iff adapter 0.
  SeqId NewSequence(int32_t adapter = 0, uint64_t adapter_key = 0);
  // Releases every block of seq (parked or not). REQUIRES: seq exists.
  void FreeSequence(SeqId seq);
  // A new sequence sharing all of src's blocks.
  [[nodiscard]] Status Fork(SeqId src, SeqId* dst);
  // Keeps the first n_keep positions. REQUIRES: 0 <= n_keep <= length(seq).
  void Truncate(SeqId seq, int32_t n_keep);

  // Parks seq: it stays as it is, and is freed if its blocks are needed (see
  // the header comment). REQUIRES: seq exists, is not parked, and is not
  // being appended to.
  void Park(SeqId seq);
  // Takes seq out of parking: true if it still exists (it is then as parked,
  // unless DropLostBlocks reported it), false if it was evicted.
  bool Unpark(SeqId seq);

  int32_t length(SeqId seq) const { return static_cast<int32_t>(seqs_.at(seq).tokens.size()); }
  const std::vector<int32_t>& tokens(SeqId seq) const { return seqs_.at(seq).tokens; }
  const std::vector<BlockId>& blocks(SeqId seq) const { return seqs_.at(seq).blocks; }
  int32_t adapter(SeqId seq) const { return seqs_.at(seq).adapter; }
  uint64_t adapter_key(SeqId seq) const { return seqs_.at(seq).adapter_key; }
  bool exists(SeqId seq) const { return seqs_.count(seq) != 0; }

  // For an empty seq: attaches cached blocks holding the longest whole-block
  // prefix of tokens computed with seq's adapter set, leaving at least the
  // last token to compute. Returns the
  // number of positions attached (a multiple of block_tokens).
  int32_t AttachCachedPrefix(SeqId seq, std::span<const int32_t> tokens);

  struct Append {
    SeqId seq;
    std::span<const int32_t> tokens;  // appended at positions length(seq)..
    PlanLogits logits = PlanLogits::kLast;
  };
  // Makes sure every position each append will write has an unshared block
  // and sets *plan to the step: one entry per append, in order, and the
  // copy-on-write copies made. kResourceExhausted (nothing changed) if there
  // are not enough free blocks. REQUIRES: no sequence appears twice.
  [[nodiscard]] Status Prepare(std::span<const Append> appends, StepPlan* plan);
  // Records tokens written at positions length(seq).. and registers blocks that became full.
  void Commit(SeqId seq, std::span<const int32_t> tokens);
  // Releases blocks a failed Prepare'd batch allocated beyond each sequence's length.
  void Rollback(std::span<const Append> appends);

  // Blocks that Prepare could use now: free plus those evicting unused
  // cached blocks and parked sequences would free (in RAM-only fallback,
  // within its block limit).
  int32_t n_available_blocks() const;
  // The most blocks one sequence can ever hold: the pool (RAM-only fallback
  // may allow fewer for a while).
  int32_t capacity_blocks() const { return pool_.capacity(); }

  // A sequence whose blocks from index first_lost on are unusable: the owner
  // must Truncate it to first_lost * block_tokens positions (or free it).
  struct LostSuffix {
    SeqId seq;
    int32_t first_lost;
  };
  // Removes blocks with a slice lost on disk from the prefix cache and returns
  // every sequence holding one (lost blocks are discarded once released).
  std::vector<LostSuffix> DropLostBlocks();
  // After each forward pass: handles suspended writes and repeated read
  // failures (see the header comment) and, in RAM-only fallback, retries the disk.
  void MaintainDiskTier();
  // In RAM-only fallback: tries the disk now (the owner is about to refuse
  // work that RAM alone cannot hold); true if the cache left RAM-only.
  bool RetryDiskTier();
  bool ram_only() const { return ram_only_; }
  KvCacheStats stats() const;
  // Pool invariants and that every reference is accounted for by a table or the cache.
  [[nodiscard]] Status CheckInvariants() const;

  // Adopts a sequence restored from a session: tokens and already-filled blocks.
  // REQUIRES: blocks were allocated with AllocateBlock and hold the tokens' KV.
  SeqId AdoptSequence(std::vector<int32_t> tokens, std::vector<BlockId> blocks);
  // A fresh block (reference count 1), evicting cached prefixes if needed.
  [[nodiscard]] Status AllocateBlock(BlockId* id);
  void ReleaseBlock(BlockId id);

 private:
  struct Sequence {
    std::vector<int32_t> tokens;
    std::vector<BlockId> blocks;        // [ceil(len / block_tokens)] (more while prepared)
    std::vector<uint64_t> full_hashes;  // chain hash of each full block registered so far
    int32_t adapter = 0;                // the adapter set its KV was computed with
    uint64_t adapter_key = 0;           // and that set's content key
  };
  struct CachedBlock {
    BlockId id;
    std::vector<int32_t> tokens;  // [block_tokens] exact tokens, to rule out hash collisions
    uint64_t adapter_key = 0;     // and the adapter set's content key
    std::list<uint64_t>::iterator lru_it;
  };

  KvCacheManager(const KvCacheConfig& config, std::unique_ptr<BlockStore> store, int32_t n_blocks);
  uint64_t ChainHash(uint64_t prev, std::span<const int32_t> block_tokens) const;
  // The chain's start for a sequence of adapter set content key `key`: 0 for
  // none, so that the base model's hashes do not depend on adapters existing.
  static uint64_t ChainRoot(uint64_t key);
  bool EvictOneCached();
  // Frees the least recently parked sequence; false if none is parked.
  bool EvictOneParked();
  // Adds (+1) or removes (-1) seq's blocks from parked_holds_.
  void CountParkedHolds(const Sequence& s, int32_t delta);
  void RegisterFullBlocks(Sequence& s);
  void Log(const std::string& line) const;
  // Log rate limit per kind of event: one logged less than kLogQuietSteps steps ago is only counted.
  struct LogQuiet {
    bool ever = false;
    uint64_t last_step = 0;
    uint64_t unlogged = 0;
  };
  // Logs line (noting the events left out since the last one) unless q is quiet; true if logged.
  bool LogLimited(LogQuiet& q, const std::string& line);
  void EnterRamOnly(const Status& cause);
  void LeaveRamOnly();

  KvCacheConfig config_;
  std::unique_ptr<BlockStore> store_;
  BlockPool pool_;
  std::unordered_map<SeqId, Sequence> seqs_;
  SeqId next_seq_ = 0;
  std::unordered_map<uint64_t, CachedBlock> cache_;  // chain hash -> block
  std::list<uint64_t> cache_lru_;                     // least recently used first
  uint64_t prefix_hits_ = 0, prefix_lookups_ = 0;
  std::list<SeqId> parked_;                                     // least recently parked first
  std::unordered_map<SeqId, std::list<SeqId>::iterator> parked_at_;
  std::unordered_map<BlockId, int32_t> parked_holds_;           // block -> parked sequences holding it
  uint64_t parked_evictions_ = 0;

  // Disk tier health (see the header comment).
  static constexpr int32_t kLostEventsForRamOnly = 3;
  static constexpr int32_t kLostWindowSteps = 64;
  static constexpr int32_t kFirstRetrySteps = 16, kMaxRetrySteps = 1024;
  int32_t block_limit_;            // the pool's capacity, or the RAM-only limit
  bool ram_only_ = false;
  bool lost_this_step_ = false;    // DropLostBlocks found some since the last MaintainDiskTier
  int32_t lost_events_ = 0;        // steps with lost blocks, forgotten after kLostWindowSteps clean steps
  int32_t clean_steps_ = 0;
  int32_t retry_steps_ = kFirstRetrySteps;  // RAM-only: steps between retries (doubles per failed retry)
  int32_t steps_to_retry_ = 0;
  uint64_t blocks_lost_ = 0, ram_only_fallbacks_ = 0;
  static constexpr uint64_t kLogQuietSteps = 1024;
  uint64_t steps_ = 0;  // MaintainDiskTier calls
  LogQuiet lost_log_, fallback_log_;
  bool fallback_logged_ = false;  // its end is logged too
};

}  // namespace strata
