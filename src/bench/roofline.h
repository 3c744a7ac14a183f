// The memory roofline of token generation: generating one token (batch 1)
// streams every weight it uses from memory once, so tokens/s cannot exceed
// read bandwidth / bytes read per token.
//
// Paired measurement: on a shared host the bandwidth a core gets swings by
// tens of percent within seconds (seen here: 27 to 58 GB/s), so a probe taken
// seconds away from the tokens it is compared with measures another machine.
// Each token is therefore generated right after one probe read of about its
// size, and the fraction is the median over tokens of (bytes per token / the
// token's time) / (the probe's bytes / the probe's time).
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <span>

#include "model/model.h"

namespace strata::bench {

// Weight bytes one generated token reads: every layer's matrices (wq, wk, wv,
// wo, ffn_gate, ffn_up, ffn_down) and norms, the output norm, the whole output
// matrix, and ONE row of the token embedding table (the input token's lookup;
// the rest of the table is not touched). Counted in the file's types (the
// bytes the kernels stream). A tied output matrix (output shares
// token_embd's bytes) is streamed whole and its row looked up besides, so it
// counts as output + one row too. Not counted: the KV cache, which grows with
// the position (tg128 from an empty cache: ~0.1% of the weight bytes on the
// 1.1B GQA shape, ~2% on the 134M shape).
uint64_t WeightBytesPerToken(const ModelWeights& w);

// tokens_per_s × bytes_per_token / bandwidth: 1.0 means generation runs at the
// measured read bandwidth. REQUIRES: bandwidth_bytes_per_s > 0.
double RooflineFraction(double tokens_per_s, uint64_t bytes_per_token, double bandwidth_bytes_per_s);

// One generated token and the probe read taken right before it.
struct PairedSample {
  double token_s = 0;            // the token's wall time, s
  double probe_bytes_per_s = 0;  // the read's bandwidth
};

struct PairedRoofline {
  double fraction = 0;  // median over samples of RooflineFraction(1 / token_s, bytes, probe_bytes_per_s)
  double bandwidth_median = 0, bandwidth_min = 0, bandwidth_max = 0;  // of the probe reads, bytes/s
  int pairs = 0;
};

// REQUIRES: samples non-empty, every token_s and probe_bytes_per_s > 0.
PairedRoofline SummarizePairs(std::span<const PairedSample> samples, uint64_t bytes_per_token);

// The paired probe's buffer: a token's bytes (so a read lasts about as long
// as a token), at least 256 MiB (far beyond any last-level cache), rounded up
// so that every thread's share is whole 2 MiB huge pages (hence whole 256-byte
// blocks, as ReadProbe requires). REQUIRES: threads >= 1.
uint64_t PairedProbeBytes(uint64_t bytes_per_token, int threads);

}  // namespace strata::bench
