// Metrics: what GET /metrics reports, in the Prometheus text exposition
// format (version 0.0.4). The server counts HTTP requests by endpoint and
// status and times tokens; the engine's own counters and gauges come from
// EngineStats at render time.
//
// Series (all prefixed strata_):
//   http_requests_total{endpoint,status}   counter
//   engine_requests_total                  counter  (accepted by the engine)
//   engine_requests_rejected_total         counter  (queue full)
//   prompt_tokens_total, completion_tokens_total, prompt_tokens_cached_total   counters
//   engine_steps_total, engine_preemptions_total   counters
//   kv_blocks{state=total|used|cached}, kv_slices{tier=ram|disk}   gauges
//   kv_prefix_cache_lookups_total, kv_prefix_cache_hits_total (blocks),
//   kv_disk_loads_total, kv_disk_prefetches_total, kv_disk_writes_total,
//   kv_checksum_failures_total, kv_disk_read_failures_total,
//   kv_disk_write_failures_total, kv_blocks_lost_total,
//   kv_disk_ram_only_fallbacks_total       counters
//   kv_disk_ram_only                       gauge (1: the disk tier failed, serving from RAM only)
//   requests_queued, requests_running      gauges
//   with sessions (--session-dir): sessions{state=busy|resident|stored},
//   session_kv_slices{tier=ram|disk}, session_kv_blocks, session_file_bytes
//   gauges; session_evictions_total, session_loads_total,
//   session_resumes_total, session_saves_total,
//   session_resumed_tokens_total counters
//   time_to_first_token_seconds            histogram (request received -> first token)
//   inter_token_latency_seconds            histogram (between consecutive tokens)
//
// Thread-safety: every method may be called concurrently.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "engine/engine.h"
#include "server/histogram.h"
#include "server/session_store.h"

namespace strata::server {

class Metrics {
 public:
  Metrics();

  // endpoint: a fixed label such as "/v1/completions" (never raw client input).
  void CountRequest(const std::string& endpoint, int http_status);
  void ObserveTimeToFirstToken(double seconds);
  void ObserveInterTokenLatency(double seconds);

  // sessions: the session store's, if the server has one.
  std::string Render(const EngineStats& stats, const SessionStoreStats* sessions = nullptr) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;  // (endpoint, status) -> count
  Histogram time_to_first_token_;
  Histogram inter_token_latency_;
};

}  // namespace strata::server
