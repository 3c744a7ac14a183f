// Entry points of the instruction-set-specific streaming kernels
// (read_bandwidth_*.cc). Internal to src/bench: callers use SumU64, which
// dispatches on the CPU's path. Contract: as SumU64.
#pragma once

#include <cstddef>
#include <cstdint>

namespace strata::bench::internal {

uint64_t SumU64Avx512(const uint8_t* p, size_t n);

}  // namespace strata::bench::internal
