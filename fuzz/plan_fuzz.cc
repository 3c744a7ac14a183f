// libFuzzer target for what a rank receives: rank messages
// (dist/rank_message.h) and the step plans inside them (kv/step_plan.h).
// DecodeRankMessage and DecodePlan must reject any input cleanly; whatever
// they accept re-encodes to the same bytes; whatever ValidatePlan then
// accepts is safe for the forward pass to walk (every position's block index
// inside the entry's table, every block, token and adapter set id inside the limits).
// Aborts on a broken property.
// The first input byte picks the framing: bit 0 set, the rest is a plan
// payload given a correct header (so the fuzzer reaches the payload parser
// past the checksum), else the rest is the whole plan; bit 1 set, that plan
// is wrapped as a step message, and the rest as it is is also decoded as a
// rank message (a step's KV node part, kv/kv_node_step.h, included: it decodes
// cleanly or not at all, and what ValidateKvNodeStep accepts is in range).
//   ./build-fuzz/plan_fuzz -max_total_time=60
#include <xxhash.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "dist/rank_message.h"
#include "kv/step_plan.h"

namespace {

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "plan_fuzz: property violated: %s\n", what);
    std::abort();
  }
}

std::vector<uint8_t> Framed(const uint8_t* payload, size_t n) {
  std::vector<uint8_t> out(strata::kPlanHeaderBytes + n);
  const uint32_t magic = strata::kPlanMagic, length = static_cast<uint32_t>(n);
  const uint16_t version = strata::kPlanVersion, zero = 0;
  const uint64_t sum = XXH3_64bits(payload, n);
  std::memcpy(out.data(), &magic, 4);
  std::memcpy(out.data() + 4, &version, 2);
  std::memcpy(out.data() + 6, &zero, 2);
  std::memcpy(out.data() + 8, &length, 4);
  std::memcpy(out.data() + 12, &sum, 8);
  if (n > 0) std::memcpy(out.data() + strata::kPlanHeaderBytes, payload, n);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::vector<uint8_t> bytes =
      (data[0] & 1) != 0 ? Framed(data + 1, size - 1) : std::vector<uint8_t>(data + 1, data + size);
  strata::StepPlan plan;
  if ((data[0] & 2) != 0) {
    strata::RankMessage raw;
    if (strata::DecodeRankMessage(std::span(data + 1, size - 1), &raw).ok()) {
      // A step re-encodes with or without its KV node part (an empty one is 12 bytes or none).
      const std::vector<uint8_t> input(data + 1, data + size);
      const std::vector<uint8_t> again = strata::EncodeRankMessage(raw.kind, &raw.open, &raw.plan, &raw.blocks);
      const std::vector<uint8_t> with_nodes =
          strata::EncodeRankMessage(raw.kind, &raw.open, &raw.plan, &raw.blocks, &raw.nodes);
      Check(again == input || with_nodes == input, "an accepted rank message re-encodes to its bytes");
      if (strata::ValidateKvNodeStep(raw.nodes, /*n_blocks=*/64, /*n_ranks=*/4).ok()) {
        for (const strata::KvNodeBlock& b : raw.nodes.remote)
          Check(b.block >= 0 && b.block < 64 && b.rank >= 1 && b.rank < 4, "remote blocks and ranks in range");
        for (const strata::KvNodeMove& m : raw.nodes.moves)
          Check(m.block >= 0 && m.block < 64 && (m.from == 0) != (m.to == 0), "moves between rank 0 and a node");
      }
    }
    std::vector<uint8_t> step = {0x53, 0x52, 0x4E, 0x4B, static_cast<uint8_t>(strata::RankMessageKind::kStep)};
    step.insert(step.end(), bytes.begin(), bytes.end());
    strata::RankMessage m;
    if (!strata::DecodeRankMessage(step, &m).ok()) return 0;
    Check(m.kind == strata::RankMessageKind::kStep, "a step message decodes as a step");
    plan = m.plan;
  } else if (!strata::DecodePlan(bytes, &plan).ok()) {
    return 0;
  }
  Check(strata::EncodePlan(plan) == bytes, "an accepted plan re-encodes to its bytes");
  const strata::PlanLimits limits{/*n_vocab=*/512, /*n_blocks=*/64, /*block_tokens=*/4, /*max_positions=*/256,
                                  /*max_tokens=*/1 << 16, /*n_adapters=*/3};
  if (!strata::ValidatePlan(plan, limits).ok()) return 0;
  for (const strata::BlockCopy& c : plan.copies)
    Check(c.from >= 0 && c.from < limits.n_blocks && c.to >= 0 && c.to < limits.n_blocks, "copy ids in range");
  int64_t total = 0;
  for (const strata::PlanEntry& e : plan.entries) {
    for (size_t t = 0; t < e.tokens.size(); ++t) {
      const int64_t pos = e.start + static_cast<int64_t>(t);
      Check(pos >= 0 && pos < limits.max_positions, "positions in range");
      Check(pos / limits.block_tokens < static_cast<int64_t>(e.blocks.size()), "block of each position in the table");
      Check(e.tokens[t] >= 0 && e.tokens[t] < limits.n_vocab, "token ids in range");
    }
    for (strata::BlockId b : e.blocks) Check(b >= 0 && b < limits.n_blocks, "block ids in range");
    Check(e.adapter >= 0 && e.adapter <= limits.n_adapters, "adapter sets in range");
    total += static_cast<int64_t>(e.tokens.size());
  }
  Check(total == plan.n_tokens() && total <= limits.max_tokens, "token count");
  Check(plan.n_logit_rows() <= plan.n_tokens(), "logit rows at most the tokens");
  return 0;
}
