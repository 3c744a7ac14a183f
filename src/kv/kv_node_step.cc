#include "kv/kv_node_step.h"

#include <algorithm>
#include <cstring>
#include <fmt/format.h>

namespace strata {

namespace {

constexpr uint32_t kMaxRecords = 1u << 24;

template <size_t kFields, class T>
void PutRecords(std::vector<uint8_t>* out, const std::vector<T>& v, void (*fields)(const T&, int32_t*)) {
  const auto n = static_cast<uint32_t>(v.size());
  size_t at = out->size();
  out->resize(at + 4 + v.size() * kFields * 4);
  std::memcpy(out->data() + at, &n, 4);
  at += 4;
  for (const T& r : v) {
    int32_t f[kFields];
    fields(r, f);
    std::memcpy(out->data() + at, f, sizeof f);
    at += sizeof f;
  }
}

template <size_t kFields, class T>
Status GetRecords(std::span<const uint8_t> b, size_t* at, const char* what, std::vector<T>* v,
                  T (*make)(const int32_t*)) {
  uint32_t n = 0;
  if (b.size() - *at < 4) return Status::Corrupt(fmt::format("KV node step: {} count past the end", what));
  std::memcpy(&n, b.data() + *at, 4);
  *at += 4;
  if (n > kMaxRecords || n > (b.size() - *at) / (kFields * 4))
    return Status::Corrupt(fmt::format("KV node step: {} {} past the end", n, what));
  v->resize(n);
  for (uint32_t i = 0; i < n; ++i) {
    int32_t f[kFields];
    std::memcpy(f, b.data() + *at, sizeof f);
    *at += sizeof f;
    (*v)[i] = make(f);
  }
  return Status::Ok();
}

}  // namespace

const char* KvNodePolicyName(KvNodePolicy p) {
  switch (p) {
    case KvNodePolicy::kAuto: return "auto";
    case KvNodePolicy::kCompute: return "compute";
    case KvNodePolicy::kData: return "data";
  }
  return "?";
}

Status ParseKvNodePolicy(std::string_view name, KvNodePolicy* out) {
  for (KvNodePolicy p : {KvNodePolicy::kAuto, KvNodePolicy::kCompute, KvNodePolicy::kData})
    if (name == KvNodePolicyName(p)) {
      *out = p;
      return Status::Ok();
    }
  return Status::InvalidArgument(fmt::format("unknown KV node policy '{}' (auto, compute or data)", name));
}

bool KvNodeStep::any_compute() const {
  return std::any_of(remote.begin(), remote.end(), [](const KvNodeBlock& b) { return b.mode == KvNodeMode::kCompute; });
}

std::vector<uint8_t> EncodeKvNodeStep(const KvNodeStep& step) {
  std::vector<uint8_t> out;
  const auto discard = [](const KvNodeDiscard& d, int32_t* f) { f[0] = d.block, f[1] = d.rank; };
  const auto move = [](const KvNodeMove& m, int32_t* f) { f[0] = m.block, f[1] = m.from, f[2] = m.to; };
  const auto remote = [](const KvNodeBlock& r, int32_t* f) {
    f[0] = r.block, f[1] = r.rank, f[2] = static_cast<int32_t>(r.mode);
  };
  PutRecords<2, KvNodeDiscard>(&out, step.discards, +discard);
  PutRecords<3, KvNodeMove>(&out, step.moves, +move);
  PutRecords<3, KvNodeBlock>(&out, step.remote, +remote);
  return out;
}

Status DecodeKvNodeStep(std::span<const uint8_t> bytes, KvNodeStep* out) {
  KvNodeStep s;
  size_t at = 0;
  const auto discard = [](const int32_t* f) { return KvNodeDiscard{f[0], f[1]}; };
  const auto move = [](const int32_t* f) { return KvNodeMove{f[0], f[1], f[2]}; };
  const auto remote = [](const int32_t* f) { return KvNodeBlock{f[0], f[1], static_cast<KvNodeMode>(f[2])}; };
  Status st = GetRecords<2, KvNodeDiscard>(bytes, &at, "discards", &s.discards, +discard);
  if (st.ok()) st = GetRecords<3, KvNodeMove>(bytes, &at, "moves", &s.moves, +move);
  if (st.ok()) st = GetRecords<3, KvNodeBlock>(bytes, &at, "remote blocks", &s.remote, +remote);
  STRATA_RETURN_IF_ERROR(st);
  if (at != bytes.size()) return Status::Corrupt(fmt::format("KV node step: {} bytes after it", bytes.size() - at));
  *out = std::move(s);
  return Status::Ok();
}

Status ValidateKvNodeStep(const KvNodeStep& step, int32_t n_blocks, int32_t n_ranks) {
  const auto block_ok = [&](BlockId b) { return b >= 0 && b < n_blocks; };
  const auto node_ok = [&](int32_t r) { return r >= 1 && r < n_ranks; };
  for (const KvNodeDiscard& d : step.discards)
    if (!block_ok(d.block) || !node_ok(d.rank))
      return Status::Corrupt(fmt::format("KV node step: discard of block {} on rank {}", d.block, d.rank));
  for (const KvNodeMove& m : step.moves)
    if (!block_ok(m.block) || !((m.from == 0 && node_ok(m.to)) || (m.to == 0 && node_ok(m.from))))
      return Status::Corrupt(fmt::format("KV node step: move of block {} from rank {} to rank {}", m.block, m.from, m.to));
  std::vector<BlockId> seen;
  for (const KvNodeBlock& r : step.remote) {
    if (!block_ok(r.block) || !node_ok(r.rank) || (r.mode != KvNodeMode::kCompute && r.mode != KvNodeMode::kData))
      return Status::Corrupt(fmt::format("KV node step: block {} on rank {} read by mode {}", r.block, r.rank,
                                         static_cast<int32_t>(r.mode)));
    seen.push_back(r.block);
  }
  std::sort(seen.begin(), seen.end());
  if (std::adjacent_find(seen.begin(), seen.end()) != seen.end())
    return Status::Corrupt("KV node step: a remote block listed twice");
  return Status::Ok();
}

}  // namespace strata
