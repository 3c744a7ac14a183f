// The conversation `strata chat` keeps beside a session file: the session
// (NAME.session, kv/session_file.h) holds the tokens, KV blocks and sampler
// state, as for `strata run --session`; the transcript (NAME.session.chat)
// holds the messages those tokens render and the points /undo and /pop
// return to. The messages are the conversation; the session's tokens are
// its cache, reused up to where they match the next rendering.
//
// Format: JSON, written atomically (a temp file, fsync, rename):
//   {"strata_chat": 1,
//    "n_tokens": N,                  the session's token count when saved
//    "messages": [{"role": "system"|"user"|"assistant", "content": "..."}],
//    "turns": [MARK, ...],           before each user turn, oldest first
//    "stack": [MARK, ...]}           /push points, oldest first
//   MARK = {"messages": M, "tokens": T, "rng": [u64, u64, u64, u64]}:
//   the first M messages, the context's length T and the sampler's RNG then.
//
// Thread-safety: functions are independent; the session's lock
// (LockSession) serializes writers between processes.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/env.h"
#include "core/status.h"

namespace strata::cli {

struct ChatMessage {
  std::string role;  // system, user or assistant
  std::string content;
};

// A point of a conversation to return to (/undo, /pop).
struct ChatMark {
  size_t n_messages = 0;  // the messages before it
  int32_t n_tokens = 0;   // the context's length then
  std::array<uint64_t, 4> rng{};  // the sampler's RNG state then
};

struct ChatTranscript {
  int32_t n_tokens = 0;
  std::vector<ChatMessage> messages;
  std::vector<ChatMark> turns;  // n_messages ascending
  std::vector<ChatMark> stack;
};

// Largest transcript read: far more text than the largest context holds.
inline constexpr uint64_t kMaxChatTranscriptBytes = uint64_t{256} << 20;

// The transcript beside the session file at session_path.
std::string ChatTranscriptPath(const std::string& session_path);

[[nodiscard]] Status WriteChatTranscript(Env* env, const std::string& path, const ChatTranscript& t);
// kNotFound if there is none; kCorrupt naming path if it is not a valid
// transcript (malformed JSON, unknown role, marks outside the messages).
[[nodiscard]] Status ReadChatTranscript(Env* env, const std::string& path, ChatTranscript* out);

// What is left of t when its session keeps only its first n_keep tokens
// (`strata session rollback`): the turns that ended within them.
ChatTranscript TruncateChatTranscript(const ChatTranscript& t, int32_t n_keep);

}  // namespace strata::cli
