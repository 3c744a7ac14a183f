// Batch: what one forward pass computes — plain data, produced by the
// scheduler (or a single-sequence Context) and consumed by Forward.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kv/kv_cache_manager.h"

namespace strata {

struct BatchEntry {
  SeqId seq = 0;
  std::span<const int32_t> tokens;  // appended at positions length(seq)..; not owned
  bool logits = true;               // keep logits of the entry's last token
  bool all_logits = false;          // keep logits of every token (tests, scoring)
};

struct Batch {
  std::vector<BatchEntry> entries;
  int32_t n_tokens() const {
    int32_t n = 0;
    for (const BatchEntry& e : entries) n += static_cast<int32_t>(e.tokens.size());
    return n;
  }
};

}  // namespace strata
