// The one-line summary `strata run` and `strata serve` print after loading a
// model: architecture, name, parameters, weight types, file size, context and
// the KV cache's type and size at that context; in an MPI job, the rank,
// the job's size and the split.
//
// Thread-safety: pure function.
#pragma once

#include <cstdint>
#include <string>

#include "kv/kv_layout.h"
#include "model/model.h"

namespace strata {

// E.g. `qwen2 "Qwen2.5 1.5B Instruct": 1.54B parameters, q4_0 ×169 + f32 ×141,
// file 986.2 MiB; context 4096, KV f16 112.0 MiB` (no newline). n_ctx: the
// context of one sequence; kv: the cache's layout (KV bytes for n_ctx tokens).
std::string LoadSummary(const Model& model, int32_t n_ctx, const KvLayout& kv);

}  // namespace strata
