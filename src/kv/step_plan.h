// StepPlan: what one forward pass computes, as plain data — per entry the
// tokens it appends, the position of the first, the sequence's block table,
// which logits to return and the adapter set it runs with — plus the copy-on-write block copies that
// preparing it made. KvCacheManager::Prepare produces it; the forward pass
// reads only it (never the manager), so a plan made in one process runs in
// another that holds the same block ids.
//
// Wire format (EncodePlan / DecodePlan), little-endian:
//   header  u32 magic "SPLN", u16 version, u16 0, u32 payload bytes, u64 XXH3-64 of the payload
//   payload u32 n_copies, n_copies x (i32 from, i32 to),
//           u32 n_entries, per entry: i32 seq, i32 start, u8 logits,
//           u32 n_tokens, n_tokens x i32, u32 n_blocks, n_blocks x i32, i32 adapter
// DecodePlan checks the framing (kCorrupt: bad magic, length, checksum,
// counts past the payload); ValidatePlan checks the contents against what
// the receiver holds (kCorrupt: a token, block, position or adapter set out of range).
//
// Thread-safety: plain data.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/status.h"
#include "kv/block_pool.h"

namespace strata {

using SeqId = int32_t;

// Which logits an entry returns: none, its last token's, or every token's.
enum class PlanLogits : uint8_t { kNone = 0, kLast = 1, kAll = 2 };

struct PlanEntry {
  SeqId seq = 0;                 // the owner's sequence (to commit); other ranks ignore it
  int32_t start = 0;             // position of tokens[0]; positions [0, start) are cached
  std::vector<int32_t> tokens;   // appended at positions start..
  std::vector<BlockId> blocks;   // block table covering positions [0, start + tokens.size())
  PlanLogits logits = PlanLogits::kLast;
  // The adapter set the entry runs with: 0 none, k the runner's k-th (engine/forward.h).
  int32_t adapter = 0;
};

struct BlockCopy {
  BlockId from = 0;
  BlockId to = 0;
};

struct StepPlan {
  std::vector<BlockCopy> copies;  // made by Prepare before the step (every layer of `from` into `to`)
  std::vector<PlanEntry> entries;

  int32_t n_tokens() const;
  // Logit rows the step returns: every token of kAll entries, the last of kLast ones.
  int32_t n_logit_rows() const;
};

// What a receiver can run: token ids below n_vocab, block ids below n_blocks,
// block tables of block_tokens positions, positions below max_positions.
struct PlanLimits {
  int32_t n_vocab = 0;
  int32_t n_blocks = 0;
  int32_t block_tokens = 0;
  int32_t max_positions = 0;
  int32_t max_tokens = 1 << 16;  // per plan
  int32_t n_adapters = 0;        // adapter sets: entries name 0..n_adapters
};

inline constexpr uint32_t kPlanMagic = 0x4E4C5053;  // "SPLN"
inline constexpr uint16_t kPlanVersion = 2;
inline constexpr size_t kPlanHeaderBytes = 20;
inline constexpr uint32_t kPlanMaxPayload = 1u << 28;

// The plan cut into micro-batches of at most max_tokens tokens each, in
// order: every micro-batch takes the next tokens of the plan's token
// sequence (entries in order, each entry's tokens in order), so an entry may
// be cut across micro-batches; a piece keeps its sequence, adapter and the
// block table up to its last position (blocks of block_tokens positions),
// starts where its tokens do, and
// returns the logits of its tokens the entry returns (kAll: all; kLast: the
// last, in the piece holding the entry's last token; else kNone). Running
// the micro-batches in order computes what the plan does (a piece's
// attention reads the positions earlier pieces wrote), with the same logit
// rows in the same order. Copies are not repeated (they precede the step).
// REQUIRES: max_tokens >= 1, block_tokens >= 1 (the KV layout's).
std::vector<StepPlan> SplitPlan(const StepPlan& plan, int32_t max_tokens, int32_t block_tokens);

std::vector<uint8_t> EncodePlan(const StepPlan& plan);
// kCorrupt (naming what is wrong) unless bytes is exactly one well-framed plan; *plan untouched then.
[[nodiscard]] Status DecodePlan(std::span<const uint8_t> bytes, StepPlan* plan);
// kCorrupt naming the first entry, token, block, adapter set or copy out of limits; an empty plan too.
[[nodiscard]] Status ValidatePlan(const StepPlan& plan, const PlanLimits& limits);

}  // namespace strata
