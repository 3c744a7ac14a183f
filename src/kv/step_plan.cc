#include "kv/step_plan.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <fmt/format.h>

namespace strata {

int32_t StepPlan::n_tokens() const {
  int64_t n = 0;
  for (const PlanEntry& e : entries) n += static_cast<int64_t>(e.tokens.size());
  return static_cast<int32_t>(n);
}

int32_t StepPlan::n_logit_rows() const {
  int64_t n = 0;
  for (const PlanEntry& e : entries) {
    if (e.logits == PlanLogits::kAll) n += static_cast<int64_t>(e.tokens.size());
    if (e.logits == PlanLogits::kLast) n += e.tokens.empty() ? 0 : 1;
  }
  return static_cast<int32_t>(n);
}

std::vector<StepPlan> SplitPlan(const StepPlan& plan, int32_t max_tokens, int32_t block_tokens) {
  std::vector<StepPlan> out(1);
  int32_t room = max_tokens;
  for (const PlanEntry& e : plan.entries) {
    const auto len = static_cast<int32_t>(e.tokens.size());
    for (int32_t off = 0; off < len;) {
      if (room == 0) {
        out.emplace_back();
        room = max_tokens;
      }
      const int32_t n = std::min(room, len - off);
      PlanEntry piece;
      piece.seq = e.seq;
      piece.start = e.start + off;
      piece.tokens.assign(e.tokens.begin() + off, e.tokens.begin() + off + n);
      const auto n_blocks = static_cast<size_t>((piece.start + n + block_tokens - 1) / block_tokens);
      piece.blocks.assign(e.blocks.begin(), e.blocks.begin() + static_cast<std::ptrdiff_t>(std::min(n_blocks, e.blocks.size())));
      const bool last = off + n == len;
      piece.logits = e.logits == PlanLogits::kAll || (e.logits == PlanLogits::kLast && last) ? e.logits : PlanLogits::kNone;
      piece.adapter = e.adapter;
      out.back().entries.push_back(std::move(piece));
      off += n;
      room -= n;
    }
  }
  if (out.back().entries.empty()) out.pop_back();
  return out;
}

namespace {

template <class T>
void Put(std::vector<uint8_t>* out, T v) {
  const size_t at = out->size();
  out->resize(at + sizeof(T));
  std::memcpy(out->data() + at, &v, sizeof(T));
}

template <class T>
void PutArray(std::vector<uint8_t>* out, const std::vector<T>& v) {
  Put<uint32_t>(out, static_cast<uint32_t>(v.size()));
  const size_t at = out->size();
  out->resize(at + v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(out->data() + at, v.data(), v.size() * sizeof(T));
}

// Bounds-checked reads from the payload; every failure names the field.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> b) : b_(b) {}
  template <class T>
  Status Get(const char* what, T* v) {
    if (b_.size() - at_ < sizeof(T)) return Status::Corrupt(fmt::format("step plan: {} past the end", what));
    std::memcpy(v, b_.data() + at_, sizeof(T));
    at_ += sizeof(T);
    return Status::Ok();
  }
  template <class T>
  Status GetArray(const char* what, std::vector<T>* v) {
    uint32_t n = 0;
    STRATA_RETURN_IF_ERROR(Get(what, &n));
    if (n > (b_.size() - at_) / sizeof(T))
      return Status::Corrupt(fmt::format("step plan: {} {} past the end", n, what));
    v->resize(n);
    if (n > 0) std::memcpy(v->data(), b_.data() + at_, n * sizeof(T));
    at_ += n * sizeof(T);
    return Status::Ok();
  }
  size_t left() const { return b_.size() - at_; }

 private:
  std::span<const uint8_t> b_;
  size_t at_ = 0;
};

// Fixed-size parts of the records, the least bytes each count can stand for.
constexpr size_t kCopyBytes = 8;
constexpr size_t kMinEntryBytes = 4 + 4 + 1 + 4 + 4 + 4;

}  // namespace

std::vector<uint8_t> EncodePlan(const StepPlan& plan) {
  std::vector<uint8_t> out(kPlanHeaderBytes);
  Put<uint32_t>(&out, static_cast<uint32_t>(plan.copies.size()));
  for (const BlockCopy& c : plan.copies) {
    Put<int32_t>(&out, c.from);
    Put<int32_t>(&out, c.to);
  }
  Put<uint32_t>(&out, static_cast<uint32_t>(plan.entries.size()));
  for (const PlanEntry& e : plan.entries) {
    Put<int32_t>(&out, e.seq);
    Put<int32_t>(&out, e.start);
    Put<uint8_t>(&out, static_cast<uint8_t>(e.logits));
    PutArray(&out, e.tokens);
    PutArray(&out, e.blocks);
    Put<int32_t>(&out, e.adapter);
  }
  const std::span<const uint8_t> payload(out.data() + kPlanHeaderBytes, out.size() - kPlanHeaderBytes);
  const uint32_t magic = kPlanMagic, length = static_cast<uint32_t>(payload.size());
  const uint16_t version = kPlanVersion, zero = 0;
  const uint64_t sum = XXH3_64bits(payload.data(), payload.size());
  std::memcpy(out.data(), &magic, 4);
  std::memcpy(out.data() + 4, &version, 2);
  std::memcpy(out.data() + 6, &zero, 2);
  std::memcpy(out.data() + 8, &length, 4);
  std::memcpy(out.data() + 12, &sum, 8);
  return out;
}

Status DecodePlan(std::span<const uint8_t> bytes, StepPlan* plan) {
  if (bytes.size() < kPlanHeaderBytes)
    return Status::Corrupt(fmt::format("step plan: {} bytes, shorter than its header", bytes.size()));
  uint32_t magic = 0, length = 0;
  uint16_t version = 0, zero = 0;
  uint64_t sum = 0;
  std::memcpy(&magic, bytes.data(), 4);
  std::memcpy(&version, bytes.data() + 4, 2);
  std::memcpy(&zero, bytes.data() + 6, 2);
  std::memcpy(&length, bytes.data() + 8, 4);
  std::memcpy(&sum, bytes.data() + 12, 8);
  if (magic != kPlanMagic) return Status::Corrupt("step plan: bad magic");
  if (version != kPlanVersion || zero != 0)
    return Status::Corrupt(fmt::format("step plan: version {} (this build reads {})", version, kPlanVersion));
  if (length > kPlanMaxPayload || length != bytes.size() - kPlanHeaderBytes)
    return Status::Corrupt(fmt::format("step plan: header says {} payload bytes, {} arrived", length,
                                       bytes.size() - kPlanHeaderBytes));
  const std::span<const uint8_t> payload = bytes.subspan(kPlanHeaderBytes);
  if (XXH3_64bits(payload.data(), payload.size()) != sum) return Status::Corrupt("step plan: checksum mismatch");

  StepPlan p;
  Reader r(payload);
  uint32_t n = 0;
  STRATA_RETURN_IF_ERROR(r.Get("copy count", &n));
  if (n > r.left() / kCopyBytes) return Status::Corrupt(fmt::format("step plan: {} copies past the end", n));
  p.copies.resize(n);
  for (BlockCopy& c : p.copies) {
    STRATA_RETURN_IF_ERROR(r.Get("copy", &c.from));
    STRATA_RETURN_IF_ERROR(r.Get("copy", &c.to));
  }
  STRATA_RETURN_IF_ERROR(r.Get("entry count", &n));
  if (n > r.left() / kMinEntryBytes) return Status::Corrupt(fmt::format("step plan: {} entries past the end", n));
  p.entries.resize(n);
  for (PlanEntry& e : p.entries) {
    uint8_t logits = 0;
    STRATA_RETURN_IF_ERROR(r.Get("entry", &e.seq));
    STRATA_RETURN_IF_ERROR(r.Get("entry", &e.start));
    STRATA_RETURN_IF_ERROR(r.Get("entry", &logits));
    if (logits > static_cast<uint8_t>(PlanLogits::kAll))
      return Status::Corrupt(fmt::format("step plan: unknown logits mode {}", logits));
    e.logits = static_cast<PlanLogits>(logits);
    STRATA_RETURN_IF_ERROR(r.GetArray("tokens", &e.tokens));
    STRATA_RETURN_IF_ERROR(r.GetArray("blocks", &e.blocks));
    STRATA_RETURN_IF_ERROR(r.Get("entry adapter", &e.adapter));
  }
  if (r.left() != 0) return Status::Corrupt(fmt::format("step plan: {} bytes after the last entry", r.left()));
  *plan = std::move(p);
  return Status::Ok();
}

Status ValidatePlan(const StepPlan& plan, const PlanLimits& lim) {
  if (plan.entries.empty()) return Status::Corrupt("step plan: no entries");
  auto block_ok = [&](BlockId b) { return b >= 0 && b < lim.n_blocks; };
  for (const BlockCopy& c : plan.copies)
    if (!block_ok(c.from) || !block_ok(c.to) || c.from == c.to)
      return Status::Corrupt(fmt::format("step plan: copy {} -> {} outside the {} blocks", c.from, c.to, lim.n_blocks));
  int64_t total = 0;
  for (size_t i = 0; i < plan.entries.size(); ++i) {
    const PlanEntry& e = plan.entries[i];
    const int64_t n = static_cast<int64_t>(e.tokens.size());
    total += n;
    if (n == 0 || total > lim.max_tokens)
      return Status::Corrupt(fmt::format("step plan: entry {} has {} tokens (at most {} per plan)", i, n, lim.max_tokens));
    if (e.start < 0 || e.start + n > lim.max_positions)
      return Status::Corrupt(fmt::format("step plan: entry {} covers positions [{}, {}), the limit is {}", i, e.start,
                                         e.start + n, lim.max_positions));
    const int64_t want = (e.start + n + lim.block_tokens - 1) / lim.block_tokens;
    if (static_cast<int64_t>(e.blocks.size()) != want)
      return Status::Corrupt(fmt::format("step plan: entry {} has {} blocks for {} positions", i, e.blocks.size(),
                                         e.start + n));
    for (int32_t t : e.tokens)
      if (t < 0 || t >= lim.n_vocab) return Status::Corrupt(fmt::format("step plan: entry {} token {} out of range", i, t));
    for (BlockId b : e.blocks)
      if (!block_ok(b)) return Status::Corrupt(fmt::format("step plan: entry {} block {} out of range", i, b));
    if (e.adapter < 0 || e.adapter > lim.n_adapters)
      return Status::Corrupt(fmt::format("step plan: entry {} names adapter set {} of {}", i, e.adapter, lim.n_adapters));
  }
  return Status::Ok();
}

}  // namespace strata
