// `strata chat` end to end: each reply equals `strata run` of the rendered
// conversation (greedy), /undo and /pop return to earlier points (the
// sampler's RNG too), sessions resume without recomputing, and the
// interactive terminal (driven in tmux: send-keys / capture-pane) shows the
// same text, stops a reply on Ctrl-C and quits on a second Ctrl-C.
//
// The bundled stories260K has no chat template, so the chat uses the "plain"
// fallback (server/chat_template.h): "System: s\nUser: u\nAssistant: a\n...Assistant:".
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "core/env.h"
#include "format/gguf.h"
#include "format/gguf_writer.h"
#include "kv/session_file.h"
#include "test_util.h"

namespace strata {
namespace {

using ::testing::HasSubstr;
using testing::CliPath;
using testing::CommandResult;
using testing::RunCommand;

std::string Stories() { return testing::SharedPath("models/stories260K.gguf"); }

std::string TrimLeft(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b);
}

// The reply `strata run` gives to prompt (stories260K unless extra names a
// model): its completion without the leading whitespace (the chat drops it:
// templates separate a reply themselves).
std::string RunReply(const std::string& prompt, int n = 24, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> a = {CliPath(), "run", "--temp", "0", "-n", std::to_string(n), "-t", "1", "-p", prompt};
  a.insert(a.end(), extra.begin(), extra.end());
  if (std::find(extra.begin(), extra.end(), "-m") == extra.end()) a.insert(a.end(), {"-m", Stories()});
  const CommandResult r = RunCommand(a);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return TrimLeft(r.out);
}

// strata chat with messages on standard input (a pipe: one reply per message);
// stories260K unless args name a model.
CommandResult Chat(const std::vector<std::string>& args, const std::string& input) {
  std::vector<std::string> a = {CliPath(), "chat", "-t", "1"};
  a.insert(a.end(), args.begin(), args.end());
  if (std::find(args.begin(), args.end(), "-m") == args.end()) a.insert(a.end(), {"-m", Stories()});
  return RunCommand(a, input, {120, false});
}

// The "prompt N tokens (M cached)" figures of each turn in a -v chat's stderr.
std::vector<std::pair<int, int>> PromptStats(const std::string& err) {
  std::vector<std::pair<int, int>> out;
  const std::regex re("prompt (\\d+) tokens \\((\\d+) cached\\)");
  for (auto it = std::sregex_iterator(err.begin(), err.end(), re); it != std::sregex_iterator(); ++it)
    out.emplace_back(std::stoi((*it)[1]), std::stoi((*it)[2]));
  return out;
}

const std::vector<std::string> kGreedy = {"--temp", "0", "-n", "24"};

TEST(ChatCli, RepliesEqualRunOfTheRenderedConversation) {
  const std::string r1 = RunReply("User: Hello\nAssistant:");
  const std::string r2 = RunReply("User: Hello\nAssistant: " + r1 + "\nUser: How are you?\nAssistant:");
  ASSERT_FALSE(r1.empty());
  ASSERT_NE(r1, r2);
  const CommandResult c = Chat(kGreedy, "Hello\nHow are you?\n");
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_EQ(c.out, r1 + "\n" + r2 + "\n");
  EXPECT_THAT(c.err, HasSubstr("chat template plain"));

  // -sys (llama.cpp's spelling) and --system-prompt open the conversation with a system message.
  const std::string sys = RunReply("System: You tell stories.\nUser: Hello\nAssistant:");
  for (const char* flag : {"-sys", "--system-prompt"}) {
    const CommandResult s = Chat({"--temp", "0", "-n", "24", flag, "You tell stories."}, "Hello\n");
    ASSERT_EQ(s.exit_code, 0) << s.err;
    EXPECT_EQ(s.out, sys + "\n") << flag;
  }

  // A line ending in a backslash continues; """ ... """ is a block taken as it is.
  const std::string two_lines = RunReply("User: Tell me\na story\nAssistant:");
  const CommandResult m = Chat(kGreedy, "Tell me\\\na story\n\"\"\"\nTell me\na story\n\"\"\"\n");
  ASSERT_EQ(m.exit_code, 0) << m.err;
  const std::string second = RunReply("User: Tell me\na story\nAssistant: " + two_lines +
                                      "\nUser: Tell me\na story\nAssistant:");
  EXPECT_EQ(m.out, two_lines + "\n" + second + "\n");

  // Other templates: a built-in one by name, and a Jinja file.
  const CommandResult chatml = Chat({"--temp", "0", "-n", "24", "--chat-template", "chatml"}, "Hello\n");
  EXPECT_EQ(chatml.out, RunReply("<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n") + "\n") << chatml.err;
  const std::string dir = testing::MakeTempDir();
  std::ofstream(dir + "/t.jinja") << "{% for m in messages %}{{ m.role }} said: {{ m.content }}\n{% endfor %}"
                                     "{% if add_generation_prompt %}bot:{% endif %}";
  const CommandResult jinja = Chat({"--temp", "0", "-n", "24", "--chat-template-file", dir + "/t.jinja"}, "Hello\n");
  EXPECT_EQ(jinja.out, RunReply("user said: Hello\nbot:") + "\n") << jinja.err;
}

// A model's own template (tokenizer.chat_template in its GGUF) is the default.
TEST(ChatCli, UsesTheModelsOwnTemplate) {
  const std::string dir = testing::MakeTempDir();
  std::unique_ptr<gguf::GgufFile> f;
  ASSERT_TRUE(gguf::GgufFile::Open(Env::Default(), Stories(), &f).ok());
  gguf::GgufWriter w;
  for (const gguf::KeyValue& kv : f->metadata()) w.SetValue(kv.key, kv.value);
  w.SetString("tokenizer.chat_template",
              "{% for m in messages %}{{ m.role }} says: {{ m.content }}\n{% endfor %}"
              "{% if add_generation_prompt %}assistant says:{% endif %}");
  for (const gguf::TensorInfo& t : f->tensors())
    ASSERT_TRUE(w.AddTensor(t.name, t.tensor.type, {t.tensor.ne.begin(), t.tensor.ne.begin() + t.n_dims}, t.tensor.data).ok());
  const std::string model = dir + "/templated.gguf";
  ASSERT_TRUE(w.Write(Env::Default(), model).ok());
  auto run = [&](const std::string& prompt) { return RunReply(prompt, 24, {"-m", model}); };
  const std::string r1 = run("user says: Hello\nassistant says:");
  const std::string r2 = run("user says: Hello\nassistant says: " + r1 + "\nuser says: How are you?\nassistant says:");
  const CommandResult c = Chat({"-m", model, "--temp", "0", "-n", "24"}, "Hello\nHow are you?\n");
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_THAT(c.err, HasSubstr("chat template jinja"));
  EXPECT_EQ(c.out, r1 + "\n" + r2 + "\n");
}

// Each turn reuses the KV of the conversation so far: only the new message is decoded.
TEST(ChatCli, TurnsReuseTheCachedConversation) {
  const CommandResult c = Chat({"--temp", "0", "-n", "24", "-v"}, "Hello\nHow are you?\n");
  ASSERT_EQ(c.exit_code, 0) << c.err;
  const auto stats = PromptStats(c.err);
  ASSERT_EQ(stats.size(), 2u) << c.err;
  EXPECT_EQ(stats[0].second, 0);
  // Turn 1's prompt and its 24 tokens but the last (never decoded: nothing followed it).
  EXPECT_EQ(stats[1].second, stats[0].first + 23) << c.err;
}

TEST(ChatCli, UndoAndPopReturnToEarlierPoints) {
  // Greedy: after /undo the conversation is the one without the undone turn.
  const std::string r1 = RunReply("User: Hello\nAssistant:");
  const std::string r3 = RunReply("User: Hello\nAssistant: " + r1 + "\nUser: What next?\nAssistant:");
  const CommandResult u = Chat(kGreedy, "Hello\nHow are you?\n/undo\nWhat next?\n");
  ASSERT_EQ(u.exit_code, 0) << u.err;
  EXPECT_THAT(u.out, ::testing::EndsWith("\n" + r3 + "\n"));
  EXPECT_THAT(u.err, HasSubstr("removed the last turn (1 left)"));

  // Sampling: /undo and /pop restore the RNG too, so asking again answers
  // the same (compared without splitting replies, which may hold newlines).
  const std::vector<std::string> sampled = {"--temp", "1", "--seed", "3", "-n", "24"};
  const std::string first = Chat(sampled, "Hello\n").out;
  const std::string two = Chat(sampled, "Hello\nHow are you?\n").out;
  ASSERT_TRUE(two.starts_with(first)) << first << "\n----\n" << two;
  const std::string again = two.substr(first.size());
  ASSERT_GT(again.size(), 1u);
  for (const char* script : {"Hello\nHow are you?\n/undo\nHow are you?\n", "Hello\n/push\nHow are you?\n/pop\nHow are you?\n"}) {
    const CommandResult c = Chat(sampled, script);
    ASSERT_EQ(c.exit_code, 0) << c.err;
    EXPECT_EQ(c.out, two + again) << script;
  }
  const CommandResult p = Chat(kGreedy, "Hello\n/push\nHow are you?\n/pop\n/pop\n/undo\n/undo\n");
  EXPECT_THAT(p.err, HasSubstr("pushed (stack depth 1)"));
  EXPECT_THAT(p.err, HasSubstr("popped (stack depth 0, 1 turns)"));
  EXPECT_THAT(p.err, HasSubstr("the stack is empty"));
  EXPECT_THAT(p.err, HasSubstr("removed the last turn (0 left)"));
  EXPECT_THAT(p.err, HasSubstr("nothing to undo"));
}

// /save then /load in another process continues exactly as the uninterrupted
// chat (greedy and sampled: the RNG is saved), decoding only the new message.
TEST(ChatCli, SessionsResumeWithoutRecomputing) {
  for (const char* temp : {"0", "1"}) {
    SCOPED_TRACE(std::string("temp ") + temp);
    const std::string dir = testing::MakeTempDir();
    const std::vector<std::string> args = {"--temp", temp, "--seed", "9", "-n", "24", "-v", "--session-dir", dir};
    const std::string first = Chat(args, "Hello\n").out;
    const CommandResult whole = Chat(args, "Hello\n/save s\nHow are you?\n");
    ASSERT_EQ(whole.exit_code, 0) << whole.err;
    ASSERT_TRUE(whole.out.starts_with(first));
    const CommandResult resumed = Chat(args, "/load s\nHow are you?\n");
    ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
    EXPECT_THAT(resumed.err, HasSubstr("loaded session s: 2 messages, 1 turns"));
    EXPECT_EQ(resumed.out, whole.out.substr(first.size()));
    const auto w = PromptStats(whole.err), r = PromptStats(resumed.err);
    ASSERT_EQ(w.size(), 2u);
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0], w[1]);  // same prompt, as much of it cached
    EXPECT_GT(r[0].second, 0);

    // --session: every turn is saved to it, and a later chat continues it.
    const CommandResult a = Chat({"--temp", temp, "--seed", "9", "-n", "24", "--session-dir", dir, "--session", "t"},
                                 "Hello\n");
    const CommandResult b = Chat({"--temp", temp, "--seed", "9", "-n", "24", "--session-dir", dir, "--session", "t"},
                                 "How are you?\n");
    EXPECT_EQ(a.out + b.out, whole.out) << a.err << b.err;
  }
}

TEST(ChatCli, ForkAndTheSessionCommandsFollowTheTranscript) {
  const std::string dir = testing::MakeTempDir();
  const std::vector<std::string> args = {"--temp", "0", "-n", "24", "-v", "--session-dir", dir};
  const CommandResult c = Chat(args, "Hello\n/save s\n/fork f\nHow are you?\n");
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_THAT(c.err, HasSubstr("forked: the chat continues in session f"));
  auto session = [&](const std::vector<std::string>& sub) {
    std::vector<std::string> a = {CliPath(), "session", "--session-dir", dir};
    a.insert(a.end(), sub.begin(), sub.end());
    return RunCommand(a);
  };
  // /fork left s as it was; f follows the chat.
  EXPECT_THAT(session({"info", "s"}).out, HasSubstr("chat:        2 messages, 1 turns"));
  EXPECT_THAT(session({"info", "f"}).out, HasSubstr("chat:        4 messages, 2 turns"));
  EXPECT_THAT(Chat(args, "/fork s\n").err, HasSubstr("/fork: session s already exists"));
  // rollback to the tokens turn 1 ended with keeps turn 1 only.
  const auto stats = PromptStats(c.err);
  ASSERT_EQ(stats.size(), 2u);
  ASSERT_EQ(session({"fork", "f", "g"}).exit_code, 0);
  EXPECT_THAT(session({"info", "g"}).out, HasSubstr("chat:        4 messages, 2 turns"));
  ASSERT_EQ(session({"rollback", "g", std::to_string(stats[1].second)}).exit_code, 0);
  EXPECT_THAT(session({"info", "g"}).out, HasSubstr("chat:        2 messages, 1 turns"));
  const CommandResult g = Chat(args, "/load g\nWhat next?\n");
  EXPECT_EQ(g.out, RunReply("User: Hello\nAssistant: " + RunReply("User: Hello\nAssistant:") +
                            "\nUser: What next?\nAssistant:") + "\n");
  ASSERT_EQ(session({"rm", "g"}).exit_code, 0);
  EXPECT_FALSE(Env::Default()->FileExists(dir + "/g.session.chat"));
  EXPECT_TRUE(Env::Default()->FileExists(dir + "/f.session.chat"));
}

TEST(ChatCli, SessionErrorsAreClearAndTheChatGoesOn) {
  const std::string dir = testing::MakeTempDir();
  ASSERT_EQ(RunCommand({CliPath(), "run", "--session-dir", dir, "--session", "r", "-p", "Once", "-n", "4"}).exit_code, 0);
  const std::vector<std::string> args = {"--temp", "0", "-n", "8", "--session-dir", dir};
  ASSERT_EQ(Chat(args, "Hello\n/save c\n").exit_code, 0);
  std::ofstream(dir + "/c.session.chat") << "{\"strata_chat\": 1, \"messages\": [";
  const CommandResult c = Chat(args, "/load missing\n/load r\n/load c\n/save .bad\n/load\n/bogus\nHello\n");
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_THAT(c.err, HasSubstr("/load missing: no such session"));
  EXPECT_THAT(c.err, HasSubstr("/load r: the session holds no conversation (it was not saved by strata chat)"));
  EXPECT_THAT(c.err, HasSubstr("/load c: " + dir + "/c.session.chat: not a valid chat transcript"));
  EXPECT_THAT(c.err, HasSubstr("/save: invalid session name '.bad'"));
  EXPECT_THAT(c.err, HasSubstr("usage: /load NAME"));
  EXPECT_THAT(c.err, HasSubstr("unknown command /bogus"));
  EXPECT_EQ(c.out, RunReply("User: Hello\nAssistant:", 8) + "\n");  // the conversation was not touched
  EXPECT_FALSE(Env::Default()->FileExists(dir + "/missing.session.lock"));

  // --session: a session in use, or one without a conversation, stops the chat at once.
  std::unique_ptr<FileLock> lock;
  ASSERT_TRUE(LockSession(Env::Default(), dir + "/busy.session", &lock).ok());
  for (const auto& [name, want] : {std::pair<std::string, std::string>{"busy", "session busy is in use by another process"},
                                   {"r", "the session holds no conversation"}}) {
    std::vector<std::string> a = args;
    a.insert(a.end(), {"--session", name});
    const CommandResult r = Chat(a, "Hello\n");
    EXPECT_NE(r.exit_code, 0);
    EXPECT_TRUE(r.out.empty()) << r.out;
    EXPECT_THAT(r.err, HasSubstr(want));
  }
}

// A message past ChatInput::kMaxMessageBytes (16 MiB) is dropped with a
// note; the chat answers the next one.
TEST(ChatCli, OversizedMessageIsDroppedAndTheChatGoesOn) {
  const CommandResult c = Chat(kGreedy, std::string((size_t{16} << 20) + 1, 'a') + "\nHello\n");
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_THAT(c.err, HasSubstr("message longer than 16777216 bytes dropped"));
  EXPECT_EQ(c.out, RunReply("User: Hello\nAssistant:") + "\n");
}

// SIGINT (Ctrl-C) while a long message is being decoded drops that message;
// the chat then answers the next one as if it had never been sent.
TEST(ChatCli, InterruptDuringThePromptDropsTheMessage) {
  // About 10,000 tokens decoded one per forward pass (-b 1): many seconds of work.
  std::string long_message;
  while (long_message.size() < 30000) long_message += "Once upon a time there was a little cat who liked the sun. ";
  int in[2], out[2], err[2];
  ASSERT_EQ(::pipe(in) | ::pipe(out) | ::pipe(err), 0);
  const std::string cli = CliPath(), model = Stories();
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    for (int fd : {in[0], in[1], out[0], out[1], err[0], err[1]}) ::close(fd);
    ::execl(cli.c_str(), cli.c_str(), "chat", "-m", model.c_str(), "--temp", "0", "-n", "24", "-t", "1", "-b", "1",
            "-c", "100000", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  for (int fd : {in[0], out[1], err[1]}) ::close(fd);
  auto write_all = [&](const std::string& text) {
    for (size_t done = 0; done < text.size();) {
      const ssize_t n = ::write(in[1], text.data() + done, text.size() - done);
      ASSERT_GT(n, 0);
      done += static_cast<size_t>(n);
    }
  };
  // Once the chat is ready (its banner, after the model and context), it
  // reads and tokenizes the message in milliseconds; decoding it takes seconds.
  std::string stderr_text;
  for (char c; !stderr_text.ends_with("Ctrl-D quits\n") && ::read(err[0], &c, 1) == 1;) stderr_text += c;
  ASSERT_THAT(stderr_text, HasSubstr("Ctrl-D quits"));
  write_all(long_message + "\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ::kill(pid, SIGINT);
  write_all("Hello\n");
  ::close(in[1]);
  auto read_all = [](int fd) {
    std::string text;
    char buf[4096];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) text.append(buf, static_cast<size_t>(n));
    ::close(fd);
    return text;
  };
  const std::string stdout_text = read_all(out[0]);
  stderr_text += read_all(err[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_THAT(stderr_text, HasSubstr("[stopped before the reply; the message was dropped]"));
  EXPECT_EQ(stdout_text, RunReply("User: Hello\nAssistant:") + "\n");
}

// ---- the terminal, in tmux ----

// tmux on PATH ("" if none).
std::string FindTmux() {
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/bin:/bin";
  for (size_t b = 0; b <= dirs.size();) {
    const size_t e = std::min(dirs.find(':', b), dirs.size());
    const std::string candidate = dirs.substr(b, e - b) + "/tmux";
    if (e > b && ::access(candidate.c_str(), X_OK) == 0) return candidate;
    b = e + 1;
  }
  return "";
}

// Skips without tmux, unless STRATA_REQUIRE_TMUX=1 (scripts/test.sh, which installs it).
#define STRATA_REQUIRE_TMUX()                                                                        \
  do {                                                                                               \
    if (FindTmux().empty()) {                                                                        \
      const char* req = std::getenv("STRATA_REQUIRE_TMUX");                                          \
      if (req != nullptr && std::string(req) == "1")                                                 \
        FAIL() << "STRATA_REQUIRE_TMUX=1 but tmux is not installed (scripts/setup.sh installs it)";  \
      GTEST_SKIP() << "tmux is not installed (scripts/setup.sh installs it); terminal tests skipped"; \
    }                                                                                                \
  } while (0)

// One command in a pane of a private tmux server, 200 columns wide. A shell
// runs it and then shows its exit status (tmux itself may leave the exited
// command unreaped, its status unknown), ignoring the Ctrl-Cs the command takes.
class Tmux {
 public:
  Tmux(const std::string& dir, const std::vector<std::string>& argv) : socket_(dir + "/tmux.sock") {
    std::string command = "trap '' INT; ";
    for (const std::string& a : argv) command += "'" + a + "' ";  // test paths hold no quotes
    command += "; echo \"[exit $?]\"; exec sleep 3600";
    // No user configuration; history for a long reply.
    started_ = Run({"-f", "/dev/null", "start-server", ";", "set-option", "-g", "history-limit", "100000", ";",
                    "new-session", "-d", "-s", "t", "-x", "200", "-y", "50", "/bin/sh", "-c", command})
                   .exit_code == 0;
  }
  ~Tmux() { Run({"kill-server"}); }
  bool started() const { return started_; }

  void Type(const std::string& text) {
    Run({"send-keys", "-t", "t", "-l", text});
    Run({"send-keys", "-t", "t", "Enter"});
  }
  void Key(const std::string& key) { Run({"send-keys", "-t", "t", key}); }
  // Everything the pane showed, wrapped lines joined, without the empty rows below the cursor.
  std::string Screen() {
    std::string screen = Run({"capture-pane", "-p", "-J", "-t", "t", "-S", "-"}).out;
    screen.erase(screen.find_last_not_of('\n') + 1);
    return screen;
  }

  // Waits (up to 60 s) until the screen shows want at *from (anywhere after
  // it if !exact) and moves *from past it. False, with the screen in the
  // test's log, if it never does or (exact) shows something else there.
  bool WaitFor(const std::string& want, size_t* from, bool exact = true) {
    std::string screen;
    for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
         std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(std::chrono::milliseconds(20))) {
      screen = Screen();
      const size_t at = exact ? *from : screen.find(want, *from);
      if (at != std::string::npos && screen.compare(at, want.size(), want) == 0) {
        *from = at + want.size();
        return true;
      }
      // Shown so far, and not the start of want: it will not become want.
      const std::string shown = screen.size() > *from ? screen.substr(*from) : "";
      if (exact && !want.starts_with(shown.substr(0, std::min(shown.size(), want.size())))) break;
    }
    ADD_FAILURE() << "the terminal did not show:\n" << want << "\n---- it shows:\n" << screen.substr(std::min(*from, screen.size()));
    return false;
  }
  // Waits (up to 60 s) for the command to end at *from: true if it exited with status 0.
  bool WaitForExit(size_t* from) { return WaitFor("\n[exit 0]", from, /*exact=*/false); }

 private:
  CommandResult Run(std::vector<std::string> args) {
    args.insert(args.begin(), {FindTmux(), "-S", socket_});
    return RunCommand(args, "", {30, false});
  }
  std::string socket_;
  bool started_ = false;
};

// Two turns (the second on two lines), /save, a third, /undo, a different
// third, /load and a fourth: each reply exactly `strata run`'s of the
// rendered conversation, the one after /load that of the saved conversation.
TEST(ChatTmux, TwoTurnsUndoSaveLoad) {
  STRATA_REQUIRE_TMUX();
  const std::string r1 = RunReply("User: Hello\nAssistant:");
  const std::string saved = "User: Hello\nAssistant: " + r1 + "\nUser: Tell me\na story\nAssistant: ";
  const std::string r2 = RunReply("User: Hello\nAssistant: " + r1 + "\nUser: Tell me\na story\nAssistant:");
  const std::string r3 = RunReply(saved + r2 + "\nUser: Sing a song\nAssistant:");
  const std::string r4 = RunReply(saved + r2 + "\nUser: How are you?\nAssistant:");
  const std::string r5 = RunReply(saved + r2 + "\nUser: Once upon a time\nAssistant:");
  // Continuing the conversation /load replaced would answer otherwise.
  ASSERT_NE(r5, RunReply(saved + r2 + "\nUser: How are you?\nAssistant: " + r4 + "\nUser: Once upon a time\nAssistant:"));
  ASSERT_NE(r3, r4);
  const std::string dir = testing::MakeTempDir();
  Tmux tmux(dir, {CliPath(), "chat", "-m", Stories(), "--temp", "0", "-n", "24", "-t", "1", "--session-dir", dir});
  ASSERT_TRUE(tmux.started());
  size_t at = 0;
  ASSERT_TRUE(tmux.WaitFor("Ctrl-D quits\n> ", &at, /*exact=*/false));
  tmux.Type("Hello");
  ASSERT_TRUE(tmux.WaitFor("Hello\n" + r1 + "\n> ", &at));
  tmux.Type("Tell me\\");
  // The next line is typed once its prompt shows: keys sent earlier are
  // echoed by the terminal before the chat prints "... ".
  ASSERT_TRUE(tmux.WaitFor("Tell me\\\n... ", &at));
  tmux.Type("a story");
  ASSERT_TRUE(tmux.WaitFor("a story\n" + r2 + "\n> ", &at));
  tmux.Type("/save s1");
  ASSERT_TRUE(tmux.WaitFor("/save s1\nsaved session s1\n> ", &at));
  tmux.Type("Sing a song");
  ASSERT_TRUE(tmux.WaitFor("Sing a song\n" + r3 + "\n> ", &at));
  tmux.Type("/undo");
  ASSERT_TRUE(tmux.WaitFor("/undo\nremoved the last turn (2 left)\n> ", &at));
  tmux.Type("How are you?");
  ASSERT_TRUE(tmux.WaitFor("How are you?\n" + r4 + "\n> ", &at));
  tmux.Type("/load s1");
  ASSERT_TRUE(tmux.WaitFor("/load s1\nloaded session s1: 4 messages, 2 turns\n> ", &at));
  tmux.Type("Once upon a time");
  ASSERT_TRUE(tmux.WaitFor("Once upon a time\n" + r5 + "\n> ", &at));
  tmux.Type("/exit");
  EXPECT_TRUE(tmux.WaitForExit(&at));
}

// Ctrl-C stops a reply that would run for minutes and returns to the prompt,
// the reply so far kept as a turn; at the prompt a second Ctrl-C quits.
TEST(ChatTmux, CtrlCStopsAReplyAndTwiceQuits) {
  STRATA_REQUIRE_TMUX();
  const std::string dir = testing::MakeTempDir();
  // Greedy stories260K does not end this reply within a 100,000-token context.
  Tmux tmux(dir, {CliPath(), "chat", "-m", Stories(), "--temp", "0", "-c", "100000", "-t", "1", "--session-dir", dir});
  ASSERT_TRUE(tmux.started());
  size_t at = 0;
  ASSERT_TRUE(tmux.WaitFor("Ctrl-D quits\n> ", &at, /*exact=*/false));
  tmux.Type("Hello");
  ASSERT_TRUE(tmux.WaitFor("Hello\n", &at));
  const size_t reply_at = at;
  ASSERT_TRUE(tmux.WaitFor("Tom", &at, /*exact=*/false));  // the reply is streaming
  tmux.Key("C-c");
  ASSERT_TRUE(tmux.WaitFor("\n[stopped]\n> ", &at, /*exact=*/false));
  // What was shown (the terminal's "^C" echo taken out: tokens may follow it
  // until the reply notices) is the start of the uninterrupted reply.
  const std::string screen = tmux.Screen();
  std::string shown = screen.substr(reply_at, screen.find("\n[stopped]", reply_at) - reply_at);
  if (const size_t echo = shown.find("^C"); echo != std::string::npos) shown.erase(echo, 2);
  EXPECT_GT(shown.size(), 10u);
  const std::string whole = RunReply("User: Hello\nAssistant:", static_cast<int>(shown.size()) + 16, {"-c", "100000"});
  EXPECT_TRUE(whole.starts_with(shown)) << shown.size() << " characters shown";
  tmux.Type("/undo");
  ASSERT_TRUE(tmux.WaitFor("/undo\nremoved the last turn (0 left)\n> ", &at));
  tmux.Key("C-c");
  ASSERT_TRUE(tmux.WaitFor("^C\n(Ctrl-C again, Ctrl-D or /exit to quit)\n> ", &at));
  tmux.Key("C-c");
  EXPECT_TRUE(tmux.WaitForExit(&at));
}

}  // namespace
}  // namespace strata
