// Chat: a conversation with a model over one Context, as `strata chat` holds
// it. The messages are the conversation. Each turn renders all of them with
// the chat template and tokenizes the rendering as the server does for a chat
// request (server/prompt.h), keeps the context's KV up to where its tokens
// match, decodes the rest and generates the reply. A turn therefore answers
// what a fresh `strata run` of the rendered conversation answers, and the KV
// is a cache: /undo, /pop and /load change the messages and trim the cache to
// what still matches.
//
// Sessions: Save writes the session file (tokens, KV, sampler state; the
// format of `strata run --session`) and its transcript (cli/chat_transcript.h);
// Load restores both, so the next turn decodes only its new tokens.
//
// Thread-safety: one thread at a time; stop may be set from any thread or a
// signal handler.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "cli/chat_transcript.h"
#include "core/env.h"
#include "core/status.h"
#include "engine/context.h"
#include "engine/sampler.h"
#include "server/chat_template.h"

namespace strata::cli {

struct ChatTurnStats {
  int32_t n_prompt = 0;     // tokens of the rendered conversation
  int32_t n_cached = 0;     // of them, reused from the context
  int32_t n_generated = 0;
  double prefill_s = 0, generate_s = 0;
  bool stopped = false;       // the reply was cut short by stop
  bool context_full = false;  // the reply filled the context
};

class Chat {
 public:
  // REQUIRES: ctx and sampler outlive the chat; ctx is fresh (n_past 0).
  // n_batch: prompt tokens per forward pass (stop is checked between them).
  Chat(Context* ctx, Sampler* sampler, server::ChatTemplate chat_template, int32_t n_batch);

  // Starts over: no messages but a system message with this text if it is not empty.
  void Reset(const std::string& system);

  // Adds the user message text and generates the assistant's reply, passing
  // its text to sink as it comes (complete UTF-8 pieces; leading whitespace
  // dropped, as templates separate a reply themselves). Generation ends at
  // an end-of-generation token, after n_predict tokens (< 0: no limit), when
  // the context is full or when stop becomes true; the reply so far is kept
  // as the assistant message. If stop becomes true before the reply starts,
  // the turn is dropped and kCancelled returned. Errors (the template refuses
  // the conversation, it does not fit the context) leave the messages as they were.
  [[nodiscard]] Status Ask(const std::string& text, int32_t n_predict, const std::function<void(std::string_view)>& sink,
                           const std::atomic<bool>& stop, ChatTurnStats* stats);

  // Removes the last turn (the last user message and the reply), restoring
  // the sampler's RNG to what it was before it, and the stack's points
  // inside it. False if there is none.
  bool Undo();
  // Saves the current point on the stack; Pop returns to it (the messages
  // since then dropped, their KV released, the RNG restored). Pop: false if
  // the stack is empty.
  void Push();
  bool Pop();
  size_t stack_depth() const { return stack_.size(); }
  size_t n_turns() const { return turns_.size(); }
  const std::vector<ChatMessage>& messages() const { return messages_; }

  // Writes the session file at session_path and its transcript.
  [[nodiscard]] Status Save(Env* env, const std::string& session_path);
  // Replaces the conversation with the session at session_path and its
  // transcript. kNotFound if the session does not exist; kInvalidArgument if
  // it has no transcript (a session of `strata run --session`); kCorrupt if
  // either file is damaged. On error the
  // conversation is unchanged (its cached KV may be dropped).
  [[nodiscard]] Status Load(Env* env, const std::string& session_path);

 private:
  // The conversation's tokens as the server would prompt with them.
  Status Render(bool add_generation_prompt, std::vector<int32_t>* out) const;
  // Truncates the context to the longest prefix its tokens share with the
  // rendering of the messages (no generation prompt).
  void TrimCache();
  // Returns to mark: the messages before it, the RNG then, the cache trimmed.
  void Rewind(const ChatMark& mark);
  ChatMark Mark() const;

  Context* ctx_;
  Sampler* sampler_;
  server::ChatTemplate template_;
  int32_t n_batch_;
  std::vector<ChatMessage> messages_;
  std::vector<ChatMark> turns_;  // before each user turn
  std::vector<ChatMark> stack_;
};

}  // namespace strata::cli
