#include "engine/adapter_sets.h"

#include <fmt/format.h>
#include <xxhash.h>

#include <cstring>

namespace strata {

uint64_t LoraSetKey(const LoraSet& set) {
  if (set.empty()) return 0;
  XXH3_state_t* st = XXH3_createState();
  XXH3_64bits_reset(st);
  for (const LoraUse& use : set) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(use.adapter);
    uint32_t s;
    std::memcpy(&s, &use.scale, sizeof s);
    XXH3_64bits_update(st, &a, sizeof a);
    XXH3_64bits_update(st, &s, sizeof s);
  }
  const uint64_t h = XXH3_64bits_digest(st);
  XXH3_freeState(st);
  return h == 0 ? 1 : h;
}

namespace {

bool SameSet(const LoraSet& a, const LoraSet& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].adapter != b[i].adapter || std::memcmp(&a[i].scale, &b[i].scale, sizeof(float)) != 0) return false;
  return true;
}

}  // namespace

AdapterSets::AdapterSets(std::vector<LoraSet> pinned, int32_t max_sets) : max_sets_(max_sets) {
  for (LoraSet& set : pinned) {
    const uint64_t key = LoraSetKey(set);
    slots_.push_back(Slot{std::move(set), key, -1});
  }
}

Status AdapterSets::Acquire(const LoraSet& set, int32_t* index) {
  *index = 0;
  if (set.empty()) return Status::Ok();
  size_t free = slots_.size();
  for (size_t i = 0; i < slots_.size(); ++i) {
    Slot& s = slots_[i];
    if (s.holders != 0 && SameSet(s.set, set)) {
      if (s.holders > 0) ++s.holders;
      *index = static_cast<int32_t>(i + 1);
      return Status::Ok();
    }
    if (s.holders == 0 && free == slots_.size()) free = i;
  }
  if (n_in_use() >= max_sets_)
    return Status::ResourceExhausted(
        fmt::format("{} different LoRA adapter sets are in use, the most this server runs at once", max_sets_));
  if (free == slots_.size()) slots_.emplace_back();
  slots_[free] = Slot{set, LoraSetKey(set), 1};
  changed_ = true;
  *index = static_cast<int32_t>(free + 1);
  return Status::Ok();
}

void AdapterSets::Release(int32_t index) {
  if (index == 0) return;
  Slot& s = slots_[static_cast<size_t>(index - 1)];
  if (s.holders > 0) --s.holders;
}

std::vector<LoraSet> AdapterSets::sets() const {
  std::vector<LoraSet> out;
  out.reserve(slots_.size());
  for (const Slot& s : slots_) out.push_back(s.set);
  return out;
}

bool AdapterSets::TakeChanged() {
  const bool c = changed_;
  changed_ = false;
  return c;
}

int32_t AdapterSets::n_in_use() const {
  int32_t n = 0;
  for (const Slot& s : slots_) n += s.holders != 0 ? 1 : 0;
  return n;
}

}  // namespace strata
