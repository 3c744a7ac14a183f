#include "cli/chat.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <span>

#include "kv/session_file.h"
#include "server/api_request.h"
#include "server/prompt.h"
#include "vocab/vocab.h"

namespace strata::cli {
namespace {

double Seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

size_t CommonPrefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  return static_cast<size_t>(std::mismatch(a.begin(), a.begin() + std::min(a.size(), b.size()), b.begin()).first -
                             a.begin());
}

}  // namespace

Chat::Chat(Context* ctx, Sampler* sampler, server::ChatTemplate chat_template, int32_t n_batch)
    : ctx_(ctx), sampler_(sampler), template_(std::move(chat_template)), n_batch_(std::max(n_batch, 1)) {}

void Chat::Reset(const std::string& system) {
  messages_.clear();
  turns_.clear();
  stack_.clear();
  if (!system.empty()) messages_.push_back({"system", system});
  TrimCache();
}

ChatMark Chat::Mark() const { return {messages_.size(), ctx_->n_past(), sampler_->state().rng}; }

Status Chat::Render(bool add_generation_prompt, std::vector<int32_t>* out) const {
  server::ApiRequest request;
  request.endpoint = server::Endpoint::kChat;
  request.chat.add_generation_prompt = add_generation_prompt;
  for (const ChatMessage& m : messages_)
    request.chat.messages.push_back({{"role", m.role}, {"content", m.content}});
  return server::BuildPrompt(request, 0, ctx_->model().vocab(), template_, out);
}

void Chat::TrimCache() {
  std::vector<int32_t> tokens;
  // No messages, or a template that refuses them without a generation
  // prompt: nothing of the cache is known to match.
  if (messages_.empty() || !Render(/*add_generation_prompt=*/false, &tokens).ok()) tokens.clear();
  ctx_->Truncate(static_cast<int32_t>(CommonPrefix(ctx_->tokens(), tokens)));
}

void Chat::Rewind(const ChatMark& mark) {
  messages_.resize(mark.n_messages);
  std::erase_if(turns_, [&](const ChatMark& t) { return t.n_messages >= mark.n_messages; });
  std::erase_if(stack_, [&](const ChatMark& t) { return t.n_messages > mark.n_messages; });
  SamplerState state = sampler_->state();
  state.rng = mark.rng;
  sampler_->set_state(state);
  TrimCache();
}

Status Chat::Ask(const std::string& text, int32_t n_predict, const std::function<void(std::string_view)>& sink,
                 const std::atomic<bool>& stop, ChatTurnStats* stats) {
  *stats = {};
  const ChatMark mark = Mark();
  messages_.push_back({"user", text});
  std::vector<int32_t> prompt;
  Status s = Render(/*add_generation_prompt=*/true, &prompt);
  if (s.ok() && prompt.size() >= static_cast<size_t>(ctx_->n_ctx()))
    s = Status::ResourceExhausted(fmt::format(
        "the conversation is {} tokens and the context holds {} (/undo a turn, /load another, or a larger -c)",
        prompt.size(), ctx_->n_ctx()));
  if (!s.ok()) {
    messages_.pop_back();
    return s;
  }
  // The cache up to where it matches, and at least the last token decoded (its logits start the reply).
  const size_t keep = std::min(CommonPrefix(ctx_->tokens(), prompt), prompt.size() - 1);
  ctx_->Truncate(static_cast<int32_t>(keep));
  stats->n_prompt = static_cast<int32_t>(prompt.size());
  stats->n_cached = static_cast<int32_t>(keep);
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t i = keep; i < prompt.size() && s.ok(); i += static_cast<size_t>(n_batch_)) {
    if (stop.load()) s = Status::Cancelled("stopped before the reply");
    const size_t n = std::min(prompt.size() - i, static_cast<size_t>(n_batch_));
    if (s.ok()) s = ctx_->Decode(std::span<const int32_t>(prompt).subspan(i, n), LogitsMode::kLast);
  }
  if (s.ok() && stop.load()) s = Status::Cancelled("stopped before the reply");
  if (!s.ok()) {
    messages_.pop_back();  // what was decoded is a prefix of the conversation: still a valid cache
    return s;
  }
  turns_.push_back(mark);
  // The penalties start as for `strata run` of the rendered conversation: the
  // repetition window is the context's tail, and no reply token is counted yet.
  const size_t n_hist = std::min(prompt.size(), static_cast<size_t>(std::max(sampler_->params().repeat_last_n, 0)));
  SamplerState state = sampler_->state();
  state.history.assign(prompt.end() - static_cast<std::ptrdiff_t>(n_hist), prompt.end());
  state.counts.clear();
  sampler_->set_state(state);
  const auto t1 = std::chrono::steady_clock::now();

  const Vocab& vocab = ctx_->model().vocab();
  const int32_t n_vocab = ctx_->model().hparams().n_vocab;
  StreamDecoder decoder(vocab);
  std::string reply;
  // Leading whitespace is dropped: templates write their own separator
  // before a reply, and a word-initial token's space would double it.
  auto emit = [&](std::string piece) {
    if (reply.empty()) piece.erase(0, std::min(piece.find_first_not_of(" \t\r\n"), piece.size()));
    reply += piece;
    if (!piece.empty()) sink(piece);
  };
  int32_t prev = prompt.back();
  while (n_predict < 0 || stats->n_generated < n_predict) {
    if (stop.load()) {
      stats->stopped = true;
      break;
    }
    const int32_t next = sampler_->Sample(ctx_->logits(), n_vocab);
    if (vocab.IsEog(next)) break;
    sampler_->Accept(next);
    emit(decoder.Push(next, prev));
    prev = next;
    if (++stats->n_generated == n_predict) break;  // the last token needs no forward pass
    if (ctx_->n_past() >= ctx_->n_ctx()) {
      stats->context_full = true;
      break;
    }
    if (s = ctx_->Decode(std::span<const int32_t>(&next, 1), LogitsMode::kLast); !s.ok()) break;
  }
  emit(decoder.Flush());
  messages_.push_back({"assistant", reply});
  stats->prefill_s = Seconds(t0, t1);
  stats->generate_s = Seconds(t1, std::chrono::steady_clock::now());
  return s;
}

bool Chat::Undo() {
  if (turns_.empty()) return false;
  Rewind(turns_.back());
  return true;
}

void Chat::Push() { stack_.push_back(Mark()); }

bool Chat::Pop() {
  if (stack_.empty()) return false;
  const ChatMark mark = stack_.back();
  stack_.pop_back();
  Rewind(mark);
  return true;
}

Status Chat::Save(Env* env, const std::string& session_path) {
  STRATA_RETURN_IF_ERROR(ctx_->SaveSession(env, session_path, *sampler_));
  ChatTranscript t;
  t.n_tokens = ctx_->n_past();
  t.messages = messages_;
  t.turns = turns_;
  t.stack = stack_;
  return WriteChatTranscript(env, ChatTranscriptPath(session_path), t);
}

Status Chat::Load(Env* env, const std::string& session_path) {
  if (!env->FileExists(session_path)) return Status::NotFound("no such session");
  ChatTranscript t;
  if (Status s = ReadChatTranscript(env, ChatTranscriptPath(session_path), &t); !s.ok())
    return s.code() == StatusCode::kNotFound
               ? Status::InvalidArgument("the session holds no conversation (it was not saved by strata chat)")
               : s;
  // LoadSession takes a fresh context; on failure the cache is lost, not the conversation.
  ctx_->Truncate(0);
  STRATA_RETURN_IF_ERROR(ctx_->LoadSession(env, session_path, sampler_));
  messages_ = std::move(t.messages);
  turns_ = std::move(t.turns);
  stack_ = std::move(t.stack);
  return Status::Ok();
}

}  // namespace strata::cli
