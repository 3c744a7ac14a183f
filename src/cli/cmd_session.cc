// strata session ls|info|rm|fork|rollback: manage saved conversations (the
// files `strata run --session NAME` and `strata chat` read and write). rm,
// fork and rollback lock the sessions they touch (LockSession), as `run
// --session` does, and treat a chat's transcript (cli/chat_transcript.h) with
// its session: removed, copied, cut to the turns the kept tokens hold.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli/chat_transcript.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "core/env.h"
#include "kv/session_file.h"
#include "model/model.h"

namespace strata::cli {
namespace {

struct SessionOptions {
  std::string dir;
  std::string name;
  std::string dst;
  std::string model;
  int32_t keep = 0;
};

constexpr char kSuffix[] = ".session";

// Locks the session NAME at path for the subcommand `what`, or fails with
// "strata: WHAT: session NAME is in use by another process".
std::unique_ptr<FileLock> Lock(const std::string& what, const std::string& name, const std::string& path) {
  std::unique_ptr<FileLock> lock;
  const Status s = LockSession(Env::Default(), path, &lock);
  if (s.code() == StatusCode::kBusy)
    Fail(what, Status::Busy("session " + name + " is in use by another process; try again when it has finished"));
  CheckOk(what, s);
  return lock;
}

// Fails unless the session NAME at path exists (checked before locking, so
// that a mistyped name leaves no lock file behind).
void RequireSession(const std::string& what, const std::string& name, const std::string& path) {
  if (!Env::Default()->FileExists(path)) Fail(what, Status::NotFound("session " + name + " does not exist"));
}

// Reads the chat transcript beside the session at path into *out; false if
// there is none (a session of `strata run`). Fails (cli::Fail) if it is damaged.
bool ReadOptionalTranscript(const std::string& what, const std::string& path, ChatTranscript* out) {
  const Status s = ReadChatTranscript(Env::Default(), ChatTranscriptPath(path), out);
  if (s.code() == StatusCode::kNotFound) return false;
  CheckOk(what, s);
  return true;
}

void List(const SessionOptions& o) {
  Env* env = Env::Default();
  const std::string dir = SessionDir(o.dir);
  std::vector<std::string> names;
  if (!env->FileExists(dir)) return;  // no sessions yet
  CheckOk("list " + dir, env->ListDir(dir, &names));
  std::sort(names.begin(), names.end());
  std::printf("%-32s %10s %8s %12s\n", "name", "tokens", "kv", "bytes");
  for (const std::string& n : names) {
    const size_t k = sizeof(kSuffix) - 1;
    if (n.size() <= k || n.compare(n.size() - k, k, kSuffix) != 0) continue;
    SessionInfo info;
    const std::string name = n.substr(0, n.size() - k);
    // A FIFO or device named *.session is refused by type, unopened.
    if (const Status s = ReadSessionInfo(env, dir + "/" + n, &info, nullptr); !s.ok()) {
      const std::string what = s.code() == StatusCode::kCorrupt ? "(corrupt)" : "(unreadable: " + s.message() + ")";
      std::printf("%-32s %10s\n", name.c_str(), what.c_str());
      continue;
    }
    std::printf("%-32s %10d %8s %12llu\n", name.c_str(), info.n_tokens, DTypeName(info.kv_type),
                static_cast<unsigned long long>(info.file_bytes));
  }
}

void Info(const SessionOptions& o) {
  Env* env = Env::Default();
  const std::string path = SessionPath(SessionDir(o.dir), o.name);
  SessionInfo info;
  SessionState state;
  CheckOk("session " + o.name, ReadSessionInfo(env, path, &info, &state));
  std::printf("session:     %s\nfile:        %s (%llu bytes)\ntokens:      %d\nkv type:     %s\nblock size:  %d\n"
              "fingerprint: %016llx\n",
              o.name.c_str(), path.c_str(), static_cast<unsigned long long>(info.file_bytes), info.n_tokens,
              DTypeName(info.kv_type), info.block_tokens, static_cast<unsigned long long>(info.model_fingerprint));
  ChatTranscript chat;
  if (ReadOptionalTranscript("info", path, &chat))
    std::printf("chat:        %zu messages, %zu turns\n", chat.messages.size(), chat.turns.size());
  if (o.model.empty()) return;
  ModelLoadOptions mo;
  mo.path = o.model;
  std::unique_ptr<Model> model;
  CheckOk("cannot load model " + o.model, Model::Load(env, mo, &model));
  std::printf("model:       %s\n", ModelFingerprint(*model) == info.model_fingerprint ? "matches" : "DIFFERENT model");
  std::printf("text:\n%s\n", model->vocab().Decode(state.tokens).c_str());
}

void Remove(const SessionOptions& o) {
  const std::string path = SessionPath(SessionDir(o.dir), o.name);
  RequireSession("rm", o.name, path);
  const std::unique_ptr<FileLock> lock = Lock("rm", o.name, path);
  CheckOk("rm", RemoveSession(Env::Default(), path));
  const std::string transcript = ChatTranscriptPath(path);
  if (Env::Default()->FileExists(transcript)) CheckOk("rm", Env::Default()->RemoveFile(transcript));
}

void Fork(const SessionOptions& o) {
  const std::string dir = SessionDir(o.dir);
  const std::string src = SessionPath(dir, o.name), dst = SessionPath(dir, o.dst);
  RequireSession("fork", o.name, src);
  if (src == dst) Fail("fork", Status::InvalidArgument("source and destination are the same session"));
  if (Env::Default()->FileExists(dst)) Fail("fork", Status::InvalidArgument("session " + o.dst + " already exists"));
  const std::unique_ptr<FileLock> src_lock = Lock("fork", o.name, src), dst_lock = Lock("fork", o.dst, dst);
  ChatTranscript chat;
  const bool has_chat = ReadOptionalTranscript("fork", src, &chat);
  CheckOk("fork", CopySessionFile(Env::Default(), src, dst));
  if (has_chat) CheckOk("fork", WriteChatTranscript(Env::Default(), ChatTranscriptPath(dst), chat));
}

void Rollback(const SessionOptions& o) {
  const std::string path = SessionPath(SessionDir(o.dir), o.name);
  RequireSession("rollback", o.name, path);
  const std::unique_ptr<FileLock> lock = Lock("rollback", o.name, path);
  ChatTranscript chat;
  const bool has_chat = ReadOptionalTranscript("rollback", path, &chat);
  CheckOk("rollback", TruncateSessionFile(Env::Default(), path, o.keep));
  if (has_chat)
    CheckOk("rollback", WriteChatTranscript(Env::Default(), ChatTranscriptPath(path), TruncateChatTranscript(chat, o.keep)));
}

}  // namespace

void AddSessionCommand(CLI::App& app) {
  auto o = std::make_shared<SessionOptions>();
  CLI::App* cmd = app.add_subcommand("session", "Manage saved sessions (strata run --session NAME)");
  cmd->require_subcommand(1);
  cmd->add_option("--session-dir", o->dir, "Where sessions live (default: ~/.cache/strata/sessions)")->check(NonEmpty());
  CLI::App* ls = cmd->add_subcommand("ls", "List sessions");
  ls->callback([o] { List(*o); });
  CLI::App* info = cmd->add_subcommand("info", "Show a session (with -m: its text and whether it fits the model)");
  info->add_option("name", o->name, "Session name")->required();
  info->add_option("-m,--model", o->model, "Model to decode the tokens with")->check(NonEmpty());
  info->callback([o] { Info(*o); });
  CLI::App* rm = cmd->add_subcommand("rm", "Delete a session");
  rm->add_option("name", o->name, "Session name")->required();
  rm->callback([o] { Remove(*o); });
  CLI::App* fork = cmd->add_subcommand("fork", "Copy a session under a new name");
  fork->add_option("src", o->name, "Existing session")->required();
  fork->add_option("dst", o->dst, "New session")->required();
  fork->callback([o] { Fork(*o); });
  CLI::App* rb = cmd->add_subcommand("rollback", "Keep only the first N tokens of a session");
  rb->add_option("name", o->name, "Session name")->required();
  rb->add_option("n", o->keep, "Tokens to keep")->required()->check(CLI::NonNegativeNumber);
  rb->callback([o] { Rollback(*o); });
  for (CLI::App* sub : {ls, info, rm, fork, rb}) sub->fallthrough();
}

}  // namespace strata::cli
