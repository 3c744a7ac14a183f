#include "server/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <initializer_list>

namespace strata::server {
namespace {

void Scalar(const char* name, const char* type, const char* help, uint64_t value, std::string* out) {
  *out += fmt::format("# HELP {} {}\n# TYPE {} {}\n{} {}\n", name, help, name, type, name, value);
}

// One metric with a sample per label value: name{label="value"} v.
void Labeled(const char* name, const char* type, const char* help, const char* label,
             std::initializer_list<std::pair<const char*, uint64_t>> samples, std::string* out) {
  *out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  for (const auto& [value, sample] : samples) *out += fmt::format("{}{{{}=\"{}\"}} {}\n", name, label, value, sample);
}

// The KV cache: blocks, slices per tier, the prefix cache and the disk tier.
void RenderKv(const KvCacheStats& kv, std::string* out) {
  Labeled("strata_kv_blocks", "gauge", "KV-cache blocks: the pool, in use (by sequences or the prefix cache), cached.",
          "state",
          {{"total", static_cast<uint64_t>(kv.blocks_total)},
           {"used", static_cast<uint64_t>(kv.blocks_used)},
           {"cached", static_cast<uint64_t>(kv.blocks_cached)}},
          out);
  Labeled("strata_kv_slices", "gauge", "KV-cache block slices (one layer of a block) held per storage tier.", "tier",
          {{"ram", kv.store.ram_slices}, {"disk", kv.store.disk_slices}}, out);
  Scalar("strata_kv_prefix_cache_lookups_total", "counter", "KV blocks looked up in the prefix cache.",
         kv.prefix_lookups, out);
  Scalar("strata_kv_prefix_cache_hits_total", "counter", "KV blocks attached from the prefix cache.", kv.prefix_hits,
         out);
  Scalar("strata_kv_disk_loads_total", "counter", "KV slices read back from the disk tier (prefetches included).",
         kv.store.loads, out);
  Scalar("strata_kv_disk_prefetches_total", "counter", "KV slices read back ahead of use by the prefetcher.",
         kv.store.prefetched, out);
  Scalar("strata_kv_disk_writes_total", "counter", "KV slices written to the disk tier.", kv.store.writes, out);
  Scalar("strata_kv_checksum_failures_total", "counter", "KV slices read from disk that failed their checksum.",
         kv.store.checksum_failures, out);
  Scalar("strata_kv_disk_read_failures_total", "counter", "KV slices the disk tier could not read back.",
         kv.store.read_failures, out);
  Scalar("strata_kv_disk_write_failures_total", "counter",
         "KV slice writes the disk tier refused (disk full, I/O error, tier budget used up).", kv.store.write_failures,
         out);
  Scalar("strata_kv_blocks_lost_total", "counter",
         "KV blocks dropped because a slice failed its checksum or a read on disk; recomputed.", kv.blocks_lost, out);
  Scalar("strata_kv_disk_ram_only", "gauge", "1 while the disk tier is failing and the KV cache serves from RAM only.",
         kv.ram_only ? 1 : 0, out);
  Scalar("strata_kv_disk_ram_only_fallbacks_total", "counter",
         "Times the disk tier failed and the KV cache fell back to RAM only.", kv.ram_only_fallbacks, out);
}

// Sessions (with --session-dir): how many, where their KV is, what moved.
void RenderSessions(const SessionStoreStats& s, const KvCacheStats& kv, std::string* out) {
  const uint64_t idle = static_cast<uint64_t>(s.sessions > s.busy ? s.sessions - s.busy : 0);
  const uint64_t parked = static_cast<uint64_t>(kv.parked_sequences);
  Labeled("strata_sessions", "gauge",
          "Sessions: in use by a request; idle with KV parked in the KV cache; idle with KV in their file only.",
          "state",
          {{"busy", static_cast<uint64_t>(s.busy)},
           {"resident", std::min(parked, idle)},
           {"stored", idle - std::min(parked, idle)}},
          out);
  Labeled("strata_session_kv_slices", "gauge",
          "KV block slices of idle sessions parked in the KV cache, per tier (a slice may be in both).", "tier",
          {{"ram", kv.parked_slices_ram}, {"disk", kv.parked_slices_disk}}, out);
  Scalar("strata_session_kv_blocks", "gauge", "KV blocks held by idle sessions parked in the KV cache.",
         static_cast<uint64_t>(kv.parked_blocks), out);
  Scalar("strata_session_file_bytes", "gauge", "Bytes of session files (every session's tokens and KV).",
         s.file_bytes, out);
  Scalar("strata_session_evictions_total", "counter",
         "Idle sessions whose parked KV was freed for other requests (their file keeps it).", kv.parked_evictions, out);
  Scalar("strata_session_loads_total", "counter", "Requests whose session KV was read from its file.", s.loads, out);
  Scalar("strata_session_resumes_total", "counter", "Requests that resumed a session's parked KV.", s.resumes, out);
  Scalar("strata_session_saves_total", "counter", "Sessions saved after a request.", s.saves, out);
  Scalar("strata_session_resumed_tokens_total", "counter",
         "Prompt tokens whose KV came from their session instead of being computed.", s.resumed_tokens, out);
}

}  // namespace

Metrics::Metrics()
    : time_to_first_token_({0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}),
      inter_token_latency_({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}) {}

void Metrics::CountRequest(const std::string& endpoint, int http_status) {
  std::lock_guard<std::mutex> l(mu_);
  ++requests_[{endpoint, http_status}];
}

void Metrics::ObserveTimeToFirstToken(double seconds) { time_to_first_token_.Observe(seconds); }
void Metrics::ObserveInterTokenLatency(double seconds) { inter_token_latency_.Observe(seconds); }

std::string Metrics::Render(const EngineStats& stats, const SessionStoreStats* sessions) const {
  std::string out =
      "# HELP strata_http_requests_total HTTP requests answered, by endpoint and status.\n"
      "# TYPE strata_http_requests_total counter\n";
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& [key, count] : requests_)
      out += fmt::format("strata_http_requests_total{{endpoint=\"{}\",status=\"{}\"}} {}\n", key.first, key.second,
                         count);
  }
  Scalar("strata_engine_requests_total", "counter", "Generation requests accepted by the engine.",
         stats.requests_total, &out);
  Scalar("strata_engine_requests_rejected_total", "counter", "Generation requests refused because the queue was full (429).",
         stats.requests_rejected, &out);
  Scalar("strata_prompt_tokens_total", "counter", "Prompt tokens of finished requests.", stats.prompt_tokens_total,
         &out);
  Scalar("strata_completion_tokens_total", "counter", "Tokens generated by finished requests.",
         stats.completion_tokens_total, &out);
  Scalar("strata_prompt_tokens_cached_total", "counter", "Prompt tokens served from the prefix cache.",
         stats.prompt_tokens_cached, &out);
  Scalar("strata_engine_steps_total", "counter", "Forward passes of the engine.", stats.steps, &out);
  Scalar("strata_engine_preemptions_total", "counter", "Running requests preempted to free KV blocks.",
         stats.preemptions, &out);
  Scalar("strata_spec_verifications_total", "counter",
         "Speculative decoding: a request's drafted tokens verified in one step.", stats.spec_verifications, &out);
  Scalar("strata_spec_drafted_tokens_total", "counter", "Speculative decoding: tokens drafted.", stats.spec_drafted,
         &out);
  Scalar("strata_spec_accepted_tokens_total", "counter", "Speculative decoding: drafted tokens the model kept.",
         stats.spec_accepted, &out);
  RenderKv(stats.kv, &out);
  if (sessions != nullptr) RenderSessions(*sessions, stats.kv, &out);
  Scalar("strata_requests_queued", "gauge", "Requests waiting for a slot.", static_cast<uint64_t>(stats.queue_depth),
         &out);
  Scalar("strata_requests_running", "gauge", "Requests being generated.", static_cast<uint64_t>(stats.running), &out);
  time_to_first_token_.Render("strata_time_to_first_token_seconds",
                              "Time from receiving a generation request to its first token.", &out);
  inter_token_latency_.Render("strata_inter_token_latency_seconds", "Time between consecutive generated tokens.",
                              &out);
  return out;
}

}  // namespace strata::server
