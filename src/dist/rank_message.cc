#include "dist/rank_message.h"

#include <algorithm>
#include <cstring>
#include <fmt/format.h>

namespace strata {

namespace {

constexpr uint32_t kMaxBlocksPerMessage = 1u << 24;

}  // namespace

std::vector<uint8_t> EncodeRankMessage(RankMessageKind kind, const RunnerShape* open, const StepPlan* plan,
                                       const std::vector<BlockId>* blocks, const KvNodeStep* nodes) {
  std::vector<uint8_t> out(5);
  std::memcpy(out.data(), &kRankMessageMagic, 4);
  out[4] = static_cast<uint8_t>(kind);
  if (kind == RankMessageKind::kOpen) {
    const int32_t v[6] = {open->n_ctx,    static_cast<int32_t>(open->kv_type), open->kv_block_tokens, open->n_blocks,
                          open->n_threads, open->keepalive_ms};
    out.resize(5 + sizeof v);
    std::memcpy(out.data() + 5, v, sizeof v);
  } else if (kind == RankMessageKind::kStep) {
    const std::vector<uint8_t> p = EncodePlan(*plan);
    out.insert(out.end(), p.begin(), p.end());
    if (nodes != nullptr) {
      const std::vector<uint8_t> n = EncodeKvNodeStep(*nodes);
      out.insert(out.end(), n.begin(), n.end());
    }
  } else if (kind == RankMessageKind::kGetKv || kind == RankMessageKind::kPutKv) {
    const auto n = static_cast<uint32_t>(blocks->size());
    out.resize(5 + 4 + 4 * static_cast<size_t>(n));
    std::memcpy(out.data() + 5, &n, 4);
    if (n > 0) std::memcpy(out.data() + 9, blocks->data(), 4 * static_cast<size_t>(n));
  }
  return out;
}

Status DecodeRankMessage(std::span<const uint8_t> bytes, RankMessage* out) {
  uint32_t magic = 0;
  if (bytes.size() < 5) return Status::Corrupt(fmt::format("rank message of {} bytes", bytes.size()));
  std::memcpy(&magic, bytes.data(), 4);
  if (magic != kRankMessageMagic) return Status::Corrupt("rank message: bad magic");
  const std::span<const uint8_t> body = bytes.subspan(5);
  RankMessage m;
  switch (bytes[4]) {
    case static_cast<uint8_t>(RankMessageKind::kOpen): {
      int32_t v[6];
      if (body.size() != sizeof v) return Status::Corrupt(fmt::format("rank message: open of {} bytes", body.size()));
      std::memcpy(v, body.data(), sizeof v);
      if (!GetDTypeInfo(static_cast<uint32_t>(v[1])) || v[0] < 2 || v[0] > (1 << 22) || v[2] < 1 || v[2] > 4096 ||
          v[3] < 1 || v[3] > (1 << 24) || v[4] < 1 || v[4] > 1024 || v[5] < 0 || v[5] > 86400000)
        return Status::Corrupt(
            fmt::format("rank message: open with n_ctx {}, kv type {}, block {}, {} blocks, {} threads, keepalive {} ms",
                        v[0], v[1], v[2], v[3], v[4], v[5]));
      m.open = RunnerShape{v[0], static_cast<DType>(v[1]), v[2], v[3], v[4], v[5]};
      break;
    }
    case static_cast<uint8_t>(RankMessageKind::kStep): {
      // The plan's header gives its length; the KV node part, if any, follows.
      uint32_t payload = 0;
      if (body.size() >= kPlanHeaderBytes) std::memcpy(&payload, body.data() + 8, 4);
      const size_t plan_bytes = std::min<uint64_t>(body.size(), uint64_t{kPlanHeaderBytes} + payload);
      STRATA_RETURN_IF_ERROR(DecodePlan(body.subspan(0, plan_bytes), &m.plan));
      if (plan_bytes < body.size()) STRATA_RETURN_IF_ERROR(DecodeKvNodeStep(body.subspan(plan_bytes), &m.nodes));
      break;
    }
    case static_cast<uint8_t>(RankMessageKind::kGetKv):
    case static_cast<uint8_t>(RankMessageKind::kPutKv): {
      uint32_t n = 0;
      if (body.size() < 4) return Status::Corrupt("rank message: a KV transfer without its block count");
      std::memcpy(&n, body.data(), 4);
      if (n > kMaxBlocksPerMessage || body.size() != 4 + 4 * static_cast<uint64_t>(n))
        return Status::Corrupt(fmt::format("rank message: {} KV blocks in {} bytes", n, body.size()));
      m.blocks.resize(n);
      if (n > 0) std::memcpy(m.blocks.data(), body.data() + 4, 4 * static_cast<size_t>(n));
      for (BlockId id : m.blocks)
        if (id < 0) return Status::Corrupt(fmt::format("rank message: KV block id {}", id));
      break;
    }
    case static_cast<uint8_t>(RankMessageKind::kClose):
    case static_cast<uint8_t>(RankMessageKind::kStop):
    case static_cast<uint8_t>(RankMessageKind::kPing):
      if (!body.empty()) return Status::Corrupt("rank message: bytes after a close, stop or ping");
      break;
    default: return Status::Corrupt(fmt::format("rank message: unknown kind {}", bytes[4]));
  }
  m.kind = static_cast<RankMessageKind>(bytes[4]);
  *out = std::move(m);
  return Status::Ok();
}

}  // namespace strata
