// strata chat: an interactive conversation in the terminal (or, with standard
// input from a pipe, one reply per message: scripted use). Replies stream to
// stdout; prompts, notes and errors go to stderr. The conversation is
// rendered with the model's chat template (--chat-template/-file pick
// another; a model without one gets "plain"), as `strata serve` renders
// chat requests (cli/chat.h).
//
// Commands: /help, /exit, /undo, /push, /pop, /save NAME, /load NAME,
// /fork NAME (kHelp below). Sessions are the files of `strata run --session`
// plus the conversation's transcript (cli/chat_transcript.h). --session NAME,
// /load NAME and /fork NAME make NAME the chat's session: it is locked, and
// saved after every change (a turn, /undo, /push, /pop). /save NAME writes a
// copy and changes nothing else.
//
// Ctrl-C stops a reply (or the prompt's processing) and returns to the
// prompt; at the prompt it drops what was typed, and a second Ctrl-C in a row
// (or Ctrl-D, or /exit) quits.
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <string_view>

#include "cli/chat.h"
#include "cli/chat_input.h"
#include "cli/chat_template_flags.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "cli/interrupt.h"
#include "core/env.h"
#include "engine/context.h"
#include "engine/load_summary.h"
#include "engine/sampler.h"
#include "kv/session_file.h"
#include "model/model.h"

namespace strata::cli {
namespace {

struct ChatOptions {
  std::string model;
  std::string tokenizer;
  std::string system;
  ChatTemplateFlags chat_template;
  int32_t n_predict = -1;
  SamplingFlags sampling;
  int64_t seed = -1;
  int32_t threads = 0;
  int32_t ctx_size = 0;
  int32_t batch = 512;
  std::string session;
  std::string session_dir;
  std::string kv_type;
  int32_t kv_block = 32;
  TuneFlags tune;
  bool verbose = false;
};

constexpr char kHelp[] =
    "  /help          this list\n"
    "  /exit          quit (also Ctrl-D, or Ctrl-C twice at the prompt)\n"
    "  /undo          remove the last turn (your message and the reply)\n"
    "  /push          remember this point of the conversation\n"
    "  /pop           return to the last /push point (what came after is dropped)\n"
    "  /save NAME     save the conversation as session NAME\n"
    "  /load NAME     continue session NAME (it becomes the chat's session)\n"
    "  /fork NAME     save as the new session NAME and continue in it\n"
    "A line ending in \\ continues on the next; \"\"\" on a line of its own starts and ends a\n"
    "multi-line block. A message starting with / is written //. Ctrl-C stops a reply.\n"
    "While the chat has a session (--session, /load, /fork), every change is saved to it.\n";

// Writes to stderr after what stdout holds, so notes follow the reply they are about.
template <class... Args>
void Note(const char* format, Args... args) {
  std::fflush(stdout);
  std::fprintf(stderr, format, args...);
  std::fflush(stderr);
}

// The lock of session NAME in dir, or null with *error set: an invalid
// name, or the session in use by another process.
std::unique_ptr<FileLock> LockByName(const std::string& dir, const std::string& name, std::string* error) {
  if (!IsValidSessionName(name)) {
    *error = "invalid session name '" + name + "' (use letters, digits, '.', '_' and '-'; not starting with '.')";
    return nullptr;
  }
  if (Status s = Env::Default()->CreateDirs(dir); !s.ok()) {
    *error = s.message();
    return nullptr;
  }
  std::unique_ptr<FileLock> lock;
  const Status s = LockSession(Env::Default(), SessionPath(dir, name), &lock);
  if (s.code() == StatusCode::kBusy) {
    *error = "session " + name + " is in use by another process";
  } else if (!s.ok()) {
    *error = s.message();
  }
  return lock;
}

// The session the chat follows, saved after every change, and its lock.
struct AttachedSession {
  std::string name;  // "" if none
  std::string path;
  std::unique_ptr<FileLock> lock;
};

class ChatLoop {
 public:
  ChatLoop(const ChatOptions& o, Chat* chat) : o_(o), chat_(chat), dir_(SessionDir(o.session_dir)) {}

  // The session of --session, locked by the caller: loaded if it exists.
  void Attach(const std::string& name, std::unique_ptr<FileLock> lock) {
    const std::string path = SessionPath(dir_, name);
    if (Env::Default()->FileExists(path)) {
      CheckOk("--session " + name, chat_->Load(Env::Default(), path));
      if (!o_.system.empty()) Note("strata chat: session %s continues its own conversation; -sys is not used\n", name.c_str());
      Note("strata chat: session %s: %zu messages\n", name.c_str(), chat_->messages().size());
    }
    attached_ = {name, path, std::move(lock)};
  }

  void Run() {
    ChatInput input(STDIN_FILENO);
    bool interrupted = false;  // the last event was a Ctrl-C at the prompt
    while (true) {
      std::string text;
      const ChatInput::Event e = input.Next(&text);
      if (e == ChatInput::Event::kEnd) break;
      if (e == ChatInput::Event::kInterrupt) {
        if (interrupted) break;
        interrupted = true;
        Note("%s", "\n(Ctrl-C again, Ctrl-D or /exit to quit)\n");
        continue;
      }
      interrupted = false;
      if (e == ChatInput::Event::kTooLong) {
        Note("strata chat: message longer than %zu bytes dropped\n", ChatInput::kMaxMessageBytes);
        continue;
      }
      if (text.find_first_not_of(" \t\n") == std::string::npos) continue;
      if (text.starts_with("/") && !text.starts_with("//")) {
        if (!Command(text)) break;
        continue;
      }
      Ask(text.starts_with("//") ? text.substr(1) : text);
    }
    if (input.interactive()) Note("%s", "\n");
  }

 private:
  void Ask(const std::string& text) {
    ClearInterrupt();
    ChatTurnStats stats;
    bool wrote = false;
    const Status s = chat_->Ask(
        text, o_.n_predict,
        [&](std::string_view piece) {
          std::fwrite(piece.data(), 1, piece.size(), stdout);
          std::fflush(stdout);
          wrote = true;
        },
        InterruptFlag(), &stats);
    ClearInterrupt();
    if (wrote || s.ok()) std::fputc('\n', stdout);
    std::fflush(stdout);
    if (stats.stopped) Note("%s", "[stopped]\n");
    if (stats.context_full) Note("%s", "[context full: /undo, /pop or /load to go on]\n");
    if (s.code() == StatusCode::kCancelled) {
      Note("%s", "[stopped before the reply; the message was dropped]\n");
      return;
    }
    if (!s.ok()) Note("strata chat: %s\n", s.message().c_str());
    if (o_.verbose && stats.n_prompt > 0)
      Note("strata chat: prompt %d tokens (%d cached) in %.3f s; generated %d tokens in %.3f s (%.1f tok/s)\n",
           stats.n_prompt, stats.n_cached, stats.prefill_s, stats.n_generated, stats.generate_s,
           stats.n_generated / (stats.generate_s > 0 ? stats.generate_s : 1e-9));
    if (s.ok() || stats.n_generated > 0) Autosave();
  }

  // Runs a /command; false to quit.
  bool Command(const std::string& line) {
    const size_t space = line.find_first_of(" \t");
    const std::string name = line.substr(0, space);
    std::string arg = space == std::string::npos ? "" : line.substr(space);
    arg.erase(0, arg.find_first_not_of(" \t"));
    arg.erase(arg.find_last_not_of(" \t") + 1);
    const bool takes_name = name == "/save" || name == "/load" || name == "/fork";
    const bool known = takes_name || name == "/help" || name == "/exit" || name == "/quit" || name == "/undo" ||
                       name == "/push" || name == "/pop";
    if (!known) {
      Note("unknown command %s (/help lists them; write // to start a message with /)\n", name.c_str());
      return true;
    }
    if (takes_name ? arg.empty() || arg.find_first_of(" \t\n") != std::string::npos : !arg.empty()) {
      Note(takes_name ? "usage: %s NAME\n" : "usage: %s (no argument)\n", name.c_str());
      return true;
    }
    if (name == "/exit" || name == "/quit") return false;
    if (name == "/help") {
      Note("%s", kHelp);
    } else if (name == "/undo") {
      if (chat_->Undo()) {
        Note("removed the last turn (%zu left)\n", chat_->n_turns());
        Autosave();
      } else {
        Note("%s", "nothing to undo\n");
      }
    } else if (name == "/push") {
      chat_->Push();
      Note("pushed (stack depth %zu)\n", chat_->stack_depth());
      Autosave();
    } else if (name == "/pop") {
      if (chat_->Pop()) {
        Note("popped (stack depth %zu, %zu turns)\n", chat_->stack_depth(), chat_->n_turns());
        Autosave();
      } else {
        Note("%s", "the stack is empty (/push first)\n");
      }
    } else if (name == "/save") {
      Save(arg);
    } else if (name == "/load") {
      Load(arg);
    } else {
      Fork(arg);
    }
    return true;
  }

  void Save(const std::string& name) {
    std::unique_ptr<FileLock> lock;
    std::string error;
    if (name != attached_.name && !(lock = LockByName(dir_, name, &error))) return Note("/save: %s\n", error.c_str());
    if (Status s = chat_->Save(Env::Default(), SessionPath(dir_, name)); !s.ok())
      return Note("/save %s: %s\n", name.c_str(), s.message().c_str());
    Note("saved session %s\n", name.c_str());
  }

  void Load(const std::string& name) {
    std::unique_ptr<FileLock> lock;
    std::string error;
    // Checked before locking, so that a mistyped name leaves no lock file behind.
    if (IsValidSessionName(name) && !Env::Default()->FileExists(SessionPath(dir_, name)))
      return Note("/load %s: no such session\n", name.c_str());
    if (name != attached_.name && !(lock = LockByName(dir_, name, &error))) return Note("/load: %s\n", error.c_str());
    const std::string path = SessionPath(dir_, name);
    if (Status s = chat_->Load(Env::Default(), path); !s.ok())
      return Note("/load %s: %s\n", name.c_str(), s.message().c_str());
    if (lock) attached_ = {name, path, std::move(lock)};
    Note("loaded session %s: %zu messages, %zu turns\n", name.c_str(), chat_->messages().size(), chat_->n_turns());
  }

  void Fork(const std::string& name) {
    std::string error;
    const std::string path = IsValidSessionName(name) ? SessionPath(dir_, name) : "";
    if (!path.empty() && Env::Default()->FileExists(path))
      return Note("/fork: session %s already exists (/save replaces a session)\n", name.c_str());
    std::unique_ptr<FileLock> lock = LockByName(dir_, name, &error);
    if (!lock) return Note("/fork: %s\n", error.c_str());
    if (Status s = chat_->Save(Env::Default(), path); !s.ok())
      return Note("/fork %s: %s\n", name.c_str(), s.message().c_str());
    attached_ = {name, path, std::move(lock)};
    Note("forked: the chat continues in session %s\n", name.c_str());
  }

  void Autosave() {
    if (attached_.name.empty()) return;
    if (Status s = chat_->Save(Env::Default(), attached_.path); !s.ok())
      Note("strata chat: cannot save session %s: %s\n", attached_.name.c_str(), s.message().c_str());
  }

  const ChatOptions& o_;
  Chat* chat_;
  const std::string dir_;
  AttachedSession attached_;
};

void RunChat(const ChatOptions& o) {
  // A session is locked first: a second chat on it fails before any work.
  std::unique_ptr<FileLock> session_lock;
  if (!o.session.empty()) {
    std::string error;
    session_lock = LockByName(SessionDir(o.session_dir), o.session, &error);
    if (!session_lock) Fail("--session", Status::InvalidArgument(error));
  }
  ModelLoadOptions mo;
  mo.path = o.model.empty() ? DefaultModelPath() : o.model;
  mo.tokenizer_path = o.tokenizer;
  std::unique_ptr<Model> model;
  CheckOk("cannot load model " + mo.path, Model::Load(Env::Default(), mo, &model));
  server::ChatTemplate chat_template = PickChatTemplate(o.chat_template, mo.path, model->vocab(), "strata chat");

  ContextParams cp;
  cp.n_ctx = o.ctx_size;
  cp.n_batch = o.batch;
  cp.n_threads = o.threads;
  if (!o.kv_type.empty()) {
    std::optional<DType> t = ParseDType(o.kv_type);
    if (!t) Fail("--kv-type", Status::InvalidArgument("unknown KV type '" + o.kv_type + "' (f32, f16, q8_0)"));
    cp.kv_type = *t;
  }
  cp.kv_block_tokens = o.kv_block;
  cp.tune_cache_path = TuneCachePath(o.tune);
  std::unique_ptr<Context> ctx;
  CheckOk("cannot create context", Context::Create(*model, cp, &ctx));
  Note("strata chat: %s\n", LoadSummary(*model, ctx->n_ctx(), ctx->kv().layout()).c_str());

  SamplerParams sp;
  sp.temperature = o.sampling.temperature;
  sp.top_k = o.sampling.top_k;
  sp.top_p = o.sampling.top_p;
  sp.min_p = o.sampling.min_p;
  sp.repeat_penalty = o.sampling.repeat_penalty;
  sp.seed = o.seed >= 0 ? static_cast<uint64_t>(o.seed) : std::random_device{}();
  Sampler sampler(sp);
  if (o.verbose) Note("strata chat: seed %llu\n", static_cast<unsigned long long>(sp.seed));

  const std::string template_name(chat_template.name());
  Chat chat(ctx.get(), &sampler, std::move(chat_template), o.batch);
  chat.Reset(o.system);
  ChatLoop loop(o, &chat);
  if (session_lock) loop.Attach(o.session, std::move(session_lock));
  // From here on Ctrl-C stops a reply instead of the process (loading is still interrupted by it).
  CheckOk("chat", InstallInterruptHandler());
  Note("strata chat: chat template %s; /help lists the commands, Ctrl-C stops a reply, Ctrl-D quits\n",
       template_name.c_str());
  loop.Run();
}

}  // namespace

void AddChatCommand(CLI::App& app) {
  auto o = std::make_shared<ChatOptions>();
  CLI::App* cmd = app.add_subcommand(
      "chat", "Chat with a model in the terminal (/help inside; with piped input, one reply per message)");
  cmd->add_option("-m,--model", o->model, "Model file (.gguf or llama2.c .bin); default: the bundled stories260K")
      ->check(NonEmpty());
  cmd->add_option("--tokenizer", o->tokenizer, "llama2.c tokenizer.bin (for .bin models)")->check(NonEmpty());
  cmd->add_option("--system-prompt,--sys", o->system, "System message opening the conversation (also -sys)");
  AddChatTemplateFlags(cmd, &o->chat_template);
  cmd->add_option("-n,--n-predict", o->n_predict, "Tokens per reply at most (-1: until the model ends its turn)")
      ->check(CLI::Range(-1, 1 << 24));
  AddSamplingFlags(cmd, &o->sampling, "");
  cmd->add_option("-s,--seed", o->seed, "RNG seed (default: random)")->check(CLI::Range(int64_t{-1}, INT64_MAX));
  cmd->add_option("-t,--threads", o->threads, "Threads (default: all cores)")->check(CLI::Range(0, 1024));
  cmd->add_option("-c,--ctx-size", o->ctx_size, "Context size (default: the model's)")->check(CLI::Range(0, 1 << 22));
  cmd->add_option("-b,--batch-size", o->batch, "Prompt tokens per forward pass")->check(CLI::Range(1, 8192));
  cmd->add_option("--session", o->session, "Continue the named session, saving every change to it (locked)")
      ->check(NonEmpty());
  cmd->add_option("--session-dir", o->session_dir, "Where sessions live (default: ~/.cache/strata/sessions)")
      ->check(NonEmpty());
  cmd->add_option("--kv-type", o->kv_type, "KV cache type: f32, f16, q8_0 (default: f32 for f32 models, else f16)");
  cmd->add_option("--kv-block", o->kv_block, "Positions per KV block")->check(CLI::Range(1, 4096));
  AddTuneFlags(cmd, &o->tune);
  cmd->add_flag("-v,--verbose", o->verbose, "Per reply: prompt tokens (cached), timings");
  cmd->callback([o] { RunChat(*o); });
}

}  // namespace strata::cli
