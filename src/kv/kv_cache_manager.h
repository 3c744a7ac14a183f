// KvCacheManager: the paged KV cache of many sequences. Each sequence has a
// block table (logical block i -> BlockId) over a shared BlockPool; block
// bytes live in a BlockStore (RAM, then disk). Sequences can be forked in
// O(blocks) (blocks shared, copied on write), truncated (rolled back), and a
// new sequence can attach the cached blocks of an identical earlier prefix
// (hash chain over full blocks) instead of recomputing them.
//
// Appends follow prepare/commit: Prepare reserves every block a batch will
// write (or fails with kResourceExhausted and changes nothing); Commit records
// the tokens once the forward pass succeeded; Rollback undoes a Prepare whose
// forward pass failed.
//
// Thread-safety: not thread-safe; owned by one engine/context step thread.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include "core/env.h"
#include "core/status.h"
#include "kv/block_pool.h"
#include "kv/block_store.h"
#include "kv/kv_layout.h"

namespace strata {

using SeqId = int32_t;

struct KvCacheConfig {
  KvLayout layout;
  KvTierConfig tiers;
  int32_t n_blocks = 0;      // block ids available; 0: derived from the tier budgets
  bool prefix_cache = true;  // keep full blocks for reuse by later sequences
};

struct KvCacheStats {
  int32_t blocks_total = 0;
  int32_t blocks_used = 0;      // referenced by a sequence or the prefix cache
  int32_t blocks_cached = 0;    // held by the prefix cache
  uint64_t prefix_hits = 0;     // blocks attached from the prefix cache
  uint64_t prefix_lookups = 0;  // blocks looked up
  BlockStoreStats store;
};

class KvCacheManager {
 public:
  [[nodiscard]] static Status Create(Env* env, const KvCacheConfig& config, std::unique_ptr<KvCacheManager>* out);
  ~KvCacheManager();

  const KvLayout& layout() const { return store_->layout(); }
  BlockStore& store() { return *store_; }

  SeqId NewSequence();
  // Releases every block of seq. REQUIRES: seq exists.
  void FreeSequence(SeqId seq);
  // A new sequence sharing all of src's blocks.
  [[nodiscard]] Status Fork(SeqId src, SeqId* dst);
  // Keeps the first n_keep positions. REQUIRES: 0 <= n_keep <= length(seq).
  void Truncate(SeqId seq, int32_t n_keep);

  int32_t length(SeqId seq) const { return static_cast<int32_t>(seqs_.at(seq).tokens.size()); }
  const std::vector<int32_t>& tokens(SeqId seq) const { return seqs_.at(seq).tokens; }
  const std::vector<BlockId>& blocks(SeqId seq) const { return seqs_.at(seq).blocks; }
  bool exists(SeqId seq) const { return seqs_.count(seq) != 0; }

  // For an empty seq: attaches cached blocks holding the longest whole-block
  // prefix of tokens, leaving at least the last token to compute. Returns the
  // number of positions attached (a multiple of block_tokens).
  int32_t AttachCachedPrefix(SeqId seq, std::span<const int32_t> tokens);

  struct Append {
    SeqId seq;
    int32_t n_tokens;
  };
  // Makes sure every position each append will write has an unshared block.
  // kResourceExhausted (nothing changed) if there are not enough free blocks.
  [[nodiscard]] Status Prepare(std::span<const Append> appends);
  // Records tokens written at positions length(seq).. and registers blocks that became full.
  void Commit(SeqId seq, std::span<const int32_t> tokens);
  // Releases blocks a failed Prepare'd batch allocated beyond each sequence's length.
  void Rollback(std::span<const Append> appends);

  // Blocks that Prepare could use now: free plus evictable cached ones.
  int32_t n_available_blocks() const;
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
  };
  struct CachedBlock {
    BlockId id;
    std::vector<int32_t> tokens;  // [block_tokens] exact tokens, to rule out hash collisions
    std::list<uint64_t>::iterator lru_it;
  };

  KvCacheManager(const KvCacheConfig& config, std::unique_ptr<BlockStore> store, int32_t n_blocks);
  uint64_t ChainHash(uint64_t prev, std::span<const int32_t> block_tokens) const;
  bool EvictOneCached();
  void RegisterFullBlocks(Sequence& s);

  KvCacheConfig config_;
  std::unique_ptr<BlockStore> store_;
  BlockPool pool_;
  std::unordered_map<SeqId, Sequence> seqs_;
  SeqId next_seq_ = 0;
  std::unordered_map<uint64_t, CachedBlock> cache_;  // chain hash -> block
  std::list<uint64_t> cache_lru_;                     // least recently used first
  uint64_t prefix_hits_ = 0, prefix_lookups_ = 0;
};

}  // namespace strata
