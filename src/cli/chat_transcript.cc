#include "cli/chat_transcript.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <stdexcept>

namespace strata::cli {
namespace {

using json = nlohmann::json;

constexpr int kVersion = 1;

json MarkJson(const ChatMark& m) {
  return {{"messages", m.n_messages}, {"tokens", m.n_tokens}, {"rng", m.rng}};
}

// Throws json::exception (caught by the reader) on a missing or mistyped field.
ChatMark MarkFrom(const json& j, size_t n_messages) {
  ChatMark m;
  m.n_messages = j.at("messages").get<size_t>();
  m.n_tokens = j.at("tokens").get<int32_t>();
  m.rng = j.at("rng").get<std::array<uint64_t, 4>>();
  if (m.n_messages > n_messages || m.n_tokens < 0) throw std::out_of_range("a mark lies outside the conversation");
  return m;
}

}  // namespace

std::string ChatTranscriptPath(const std::string& session_path) { return session_path + ".chat"; }

Status WriteChatTranscript(Env* env, const std::string& path, const ChatTranscript& t) {
  json j = {{"strata_chat", kVersion}, {"n_tokens", t.n_tokens}};
  json& messages = j["messages"] = json::array();
  for (const ChatMessage& m : t.messages) messages.push_back({{"role", m.role}, {"content", m.content}});
  json& turns = j["turns"] = json::array();
  for (const ChatMark& m : t.turns) turns.push_back(MarkJson(m));
  json& stack = j["stack"] = json::array();
  for (const ChatMark& m : t.stack) stack.push_back(MarkJson(m));
  // JSON strings are UTF-8: invalid bytes in typed input are written as U+FFFD.
  return WriteFileAtomic(env, path, j.dump(1, ' ', false, json::error_handler_t::replace) + "\n");
}

Status ReadChatTranscript(Env* env, const std::string& path, ChatTranscript* out) {
  if (!env->FileExists(path)) return Status::NotFound(path + ": no chat transcript");
  std::string text;
  STRATA_RETURN_IF_ERROR(env->ReadFile(path, kMaxChatTranscriptBytes, &text));
  ChatTranscript t;
  try {
    const json j = json::parse(text);
    if (j.at("strata_chat").get<int>() != kVersion)
      return Status::Corrupt(path + ": chat transcript version " + j.at("strata_chat").dump() + " is not supported");
    t.n_tokens = j.at("n_tokens").get<int32_t>();
    if (t.n_tokens < 0) throw std::out_of_range("negative n_tokens");
    for (const json& m : j.at("messages")) {
      ChatMessage msg{m.at("role").get<std::string>(), m.at("content").get<std::string>()};
      if (msg.role != "system" && msg.role != "user" && msg.role != "assistant")
        throw std::out_of_range("unknown role '" + msg.role + "'");
      t.messages.push_back(std::move(msg));
    }
    for (const json& m : j.at("turns")) {
      t.turns.push_back(MarkFrom(m, t.messages.size()));
      if (t.turns.size() > 1 && t.turns.back().n_messages < t.turns[t.turns.size() - 2].n_messages)
        throw std::out_of_range("turns out of order");
    }
    for (const json& m : j.at("stack")) t.stack.push_back(MarkFrom(m, t.messages.size()));
  } catch (const std::exception& e) {
    return Status::Corrupt(path + ": not a valid chat transcript (" + e.what() + ")");
  }
  *out = std::move(t);
  return Status::Ok();
}

ChatTranscript TruncateChatTranscript(const ChatTranscript& t, int32_t n_keep) {
  ChatTranscript out = t;
  out.n_tokens = std::min(t.n_tokens, n_keep);
  for (size_t i = 0; i < t.turns.size(); ++i) {
    const int32_t end = i + 1 < t.turns.size() ? t.turns[i + 1].n_tokens : t.n_tokens;
    if (end <= n_keep) continue;
    out.messages.resize(t.turns[i].n_messages);
    out.turns.resize(i);
    break;
  }
  std::erase_if(out.stack, [&](const ChatMark& m) { return m.n_messages > out.messages.size() || m.n_tokens > n_keep; });
  return out;
}

}  // namespace strata::cli
