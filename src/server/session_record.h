// SessionRecord: what the server keeps about a session besides its tokens,
// KV and sampler state — the session file's meta (kv/session_file.h), as
// JSON:
//   kind      "completion" or "chat" (fixed by the first request; a session
//             of `strata run` has no record and is a completion session)
//   messages  chat: the conversation so far, assistant replies included
//   ends      chat: [messages] the token count at which each message ends
//   tokens    the token count the record describes (a session continued by
//             `strata run` or rolled back by `strata session rollback` has
//             more or fewer: FitToTokens reconciles)
//   points    where requests ended (tokens, tokens with KV, messages, RNG,
//             penalty counts),
//             newest last, at most kMaxPoints: a rollback to one of them
//             restores the KV length and the sampler's RNG too
//   stack     the context stack (push / pop): points to return to
//
// Thread-safety: values.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace strata::server {

enum class SessionKind { kNew, kCompletion, kChat };
const char* SessionKindName(SessionKind kind);  // "new", "completion", "chat"

// A place in a session's history.
struct SessionPoint {
  int32_t tokens = 0;
  int32_t n_kv = 0;     // of those, how many had KV (the rest are computed when it continues)
  int32_t messages = 0;
  std::array<uint64_t, 4> rng{};
  std::vector<std::pair<int32_t, int32_t>> counts;  // the sampler's penalty counts (completion sessions)
};

inline constexpr size_t kMaxPoints = 1024;
inline constexpr size_t kMaxStackDepth = 256;

struct SessionRecord {
  SessionKind kind = SessionKind::kNew;
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  std::vector<int32_t> ends;
  int32_t tokens = 0;
  std::vector<SessionPoint> points;
  std::vector<SessionPoint> stack;

  // The latest point at exactly `tokens` tokens (and, if messages >= 0, that
  // many messages), or null.
  const SessionPoint* PointAt(int32_t tokens, int32_t messages = -1) const;
  // Records a request's end (dropping the oldest point beyond kMaxPoints).
  void AddPoint(const SessionPoint& p);
  // Keeps what lies within the first n tokens: messages ending at most
  // there, points and stack entries at most there; tokens = n.
  void FitToTokens(int32_t n);
};

// meta "" (a session written by `strata run`) is a completion session with
// no record when n_tokens > 0, a new one otherwise. kCorrupt if meta is not a
// record.
[[nodiscard]] Status ParseSessionRecord(std::string_view meta, int32_t n_tokens, SessionRecord* out);
std::string EncodeSessionRecord(const SessionRecord& record);

}  // namespace strata::server
