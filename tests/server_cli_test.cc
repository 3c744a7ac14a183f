// `strata serve` as a process: it announces its address, serves, and exits 0
// on SIGTERM/SIGINT even with a request streaming; bad options fail at startup.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "child_process.h"
#include "raw_http.h"
#include "test_util.h"

namespace strata::testing {
namespace {

void ExpectGracefulStop(int signal_number) {
  ChildProcess serve({CliPath(), "serve", "-m", SharedPath("models/stories260K.gguf"), "--port", "0", "-t", "1"});
  const std::string port =
      serve.WaitForStderr(std::regex(R"(listening on http://127\.0\.0\.1:(\d+))"), std::chrono::seconds(20));
  ASSERT_FALSE(port.empty()) << serve.err();
  httplib::Client c("127.0.0.1", std::stoi(port));
  auto health = c.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);

  // A long stream is running when the signal comes.
  std::thread client([&] {
    httplib::Client s("127.0.0.1", std::stoi(port));
    s.Post("/v1/completions",
           R"({"prompt":"Once upon a time","max_tokens":2000,"temperature":0,"stream":true})", "application/json");
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  kill(serve.pid(), signal_number);
  EXPECT_EQ(serve.Wait(std::chrono::seconds(10)), 0) << serve.err();
  client.join();
  EXPECT_FALSE(serve.WaitForStderr(std::regex("strata serve: stopped"), std::chrono::seconds(1)).empty())
      << serve.err();
}

TEST(ServerCliTest, SigtermStopsGracefully) { ExpectGracefulStop(SIGTERM); }

// With slow and idle connections open and a generation that outlasts the
// grace period, SIGTERM still ends the process within the grace period (plus
// a moment to send the stream its final event).
TEST(ServerCliTest, SigtermWithSlowConnectionsExitsWithinTheGracePeriod) {
  ChildProcess serve({CliPath(), "serve", "-m", SharedPath("models/stories260K.gguf"), "--port", "0", "-t", "1",
               "--shutdown-grace", "1", "-c", "8192"});
  const std::string port =
      serve.WaitForStderr(std::regex(R"(listening on http://127\.0\.0\.1:(\d+))"), std::chrono::seconds(20));
  ASSERT_FALSE(port.empty()) << serve.err();
  std::vector<RawConnection> slow;
  for (int i = 0; i < 50; ++i) {
    slow.emplace_back(std::stoi(port));
    slow.back().Send("GET /health HTTP/1.1\r\nX-Slow: ");
  }
  RawConnection stream(std::stoi(port));
  const std::string body = R"({"prompt":"Once upon a time","max_tokens":8000,"stream":true})";
  ASSERT_TRUE(stream.Send("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                          "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body));
  ASSERT_NE(stream.ReadUntil("data: {", std::chrono::seconds(10)).find("data: {"), std::string::npos);
  const auto t0 = std::chrono::steady_clock::now();
  kill(serve.pid(), SIGTERM);
  EXPECT_EQ(serve.Wait(std::chrono::seconds(10)), 0) << serve.err();
  EXPECT_LT(std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count(),
            3000);
  // The stream ended with a final event, not a cut connection.
  EXPECT_TRUE(stream.ReadUntilClosed(std::chrono::seconds(2)));
  EXPECT_NE(stream.received().find("\"code\":\"cancelled\""), std::string::npos);
  for (RawConnection& c : slow) EXPECT_TRUE(c.ReadUntilClosed(std::chrono::seconds(1)));
}
TEST(ServerCliTest, SigintStopsGracefully) { ExpectGracefulStop(SIGINT); }

// Options that would leave the server unusable or silently open are refused
// at startup, and the startup line says whether a key is required.
TEST(ServerCliTest, UnsafeOrUselessOptionsAreStartupErrors) {
  const std::string model = SharedPath("models/stories260K.gguf");
  CommandResult r = RunCommand({CliPath(), "serve", "-m", model, "--port", "0", "--max-queue", "0"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--max-queue"), std::string::npos) << r.err;
  r = RunCommand({CliPath(), "serve", "-m", model, "--port", "0", "--api-key", ""});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("must not be empty"), std::string::npos) << r.err;
  r = RunCommand({"/usr/bin/env", "STRATA_API_KEY=", CliPath(), "serve", "-m", model, "--port", "0"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("STRATA_API_KEY is set but empty"), std::string::npos) << r.err;
}

TEST(ServerCliTest, StartupLineSaysWhetherAKeyIsRequired) {
  for (const bool key : {false, true}) {
    std::vector<std::string> argv = {CliPath(), "serve", "-m", SharedPath("models/stories260K.gguf"), "--port", "0"};
    if (key) argv.insert(argv.end(), {"--api-key", "sesame"});
    ChildProcess serve(argv);
    const std::string line = serve.WaitForStderr(std::regex(R"((listening on http://127\.0\.0\.1:\d+ .*))"),
                                                 std::chrono::seconds(20));
    EXPECT_NE(line.find(key ? "API key required" : "no API key"), std::string::npos) << serve.err();
    kill(serve.pid(), SIGTERM);
    EXPECT_EQ(serve.Wait(std::chrono::seconds(10)), 0) << serve.err();
  }
}

TEST(ServerCliTest, UnknownChatTemplateIsAStartupError) {
  const CommandResult r = RunCommand({CliPath(), "serve", "-m", SharedPath("models/stories260K.gguf"), "--port", "0",
                                      "--chat-template", "nonsense"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("unknown chat template 'nonsense'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("chatml"), std::string::npos) << r.err;
}

// A temporary file holding text (removed at scope exit).
class TempFile {
 public:
  explicit TempFile(const std::string& text) {
    char name[] = "/tmp/strata-chat-template-XXXXXX";
    const int fd = mkstemp(name);
    path_ = name;
    if (fd >= 0) {
      if (write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) path_ += ".unwritten";
      close(fd);
    }
  }
  ~TempFile() { unlink(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// --chat-template-file: the file's Jinja template renders every chat
// request; a conversation it refuses is a 400 carrying its message.
TEST(ServerCliTest, ChatTemplateFileRendersChats) {
  const TempFile file(
      "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
      "{% if messages[-1].role != 'user' %}{{ raise_exception('the last message must be the user\\'s') }}{% endif %}"
      "Once upon a time");
  ChildProcess serve({CliPath(), "serve", "-m", SharedPath("models/stories260K.gguf"), "--port", "0", "-t", "1",
               "--chat-template-file", file.path()});
  const std::string port =
      serve.WaitForStderr(std::regex(R"(listening on http://127\.0\.0\.1:(\d+))"), std::chrono::seconds(20));
  ASSERT_FALSE(port.empty()) << serve.err();
  EXPECT_NE(serve.err().find("chat template jinja"), std::string::npos) << serve.err();
  httplib::Client c("127.0.0.1", std::stoi(port));
  auto ok = c.Post("/v1/chat/completions",
                   R"({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, "temperature": 0})",
                   "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
  auto refused = c.Post("/v1/chat/completions",
                        R"({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}],
                            "max_tokens": 4})",
                        "application/json");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 400);
  EXPECT_NE(refused->body.find("the last message must be the user's (raised by the chat template at line 2)"),
            std::string::npos)
      << refused->body;
}

TEST(ServerCliTest, BadChatTemplateFilesAreStartupErrors) {
  const std::vector<std::string> base = {CliPath(), "serve", "-m", SharedPath("models/stories260K.gguf"), "--port",
                                         "0"};
  auto run = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv = base;
    argv.insert(argv.end(), extra.begin(), extra.end());
    return RunCommand(argv);
  };
  CommandResult r = run({"--chat-template-file", "/nonexistent/template.jinja"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--chat-template-file"), std::string::npos) << r.err;

  const TempFile broken("line one\n{% for m in messages %}never closed");
  r = run({"--chat-template-file", broken.path()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("chat template line 2: unexpected end of template"), std::string::npos) << r.err;

  const TempFile huge(std::string((1 << 20) + 1, 'x'));
  r = run({"--chat-template-file", huge.path()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("larger than 1048576 bytes"), std::string::npos) << r.err;

  // A FIFO is refused, not read (which would wait for a writer).
  const std::string fifo = broken.path() + ".fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  r = run({"--chat-template-file", fifo});
  unlink(fifo.c_str());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("not a regular file"), std::string::npos) << r.err;
  r = run({"--chat-template-file", "/tmp"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("is a directory"), std::string::npos) << r.err;

  r = run({"--chat-template-file", broken.path(), "--chat-template", "chatml"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("excludes"), std::string::npos) << r.err;
}

TEST(ServerCliTest, PortInUseIsAStartupError) {
  httplib::Server blocker;
  const int port = blocker.bind_to_any_port("127.0.0.1");
  ASSERT_GT(port, 0);
  ChildProcess serve({CliPath(), "serve", "-m", SharedPath("models/stories260K.gguf"), "--port", std::to_string(port)});
  EXPECT_EQ(serve.Wait(std::chrono::seconds(20)), 1);
  EXPECT_FALSE(serve.WaitForStderr(std::regex("cannot listen"), std::chrono::seconds(1)).empty()) << serve.err();
}

// --log-format json: one JSON object per answered request on stderr (the
// notices stay text lines); a bad format is a startup error; --help shows the
// sampling defaults requests fall back to.
TEST(ServerCliTest, JsonAccessLogAndHelp) {
  ChildProcess serve({CliPath(), "serve", "-m", SharedPath("models/stories260K.gguf"), "--port", "0", "-t", "1",
               "--log-format", "json"});
  const std::string port =
      serve.WaitForStderr(std::regex(R"(listening on http://127\.0\.0\.1:(\d+))"), std::chrono::seconds(20));
  ASSERT_FALSE(port.empty()) << serve.err();
  httplib::Client c("127.0.0.1", std::stoi(port));
  auto r = c.Post("/v1/completions", R"({"prompt":"Once upon a time","max_tokens":5,"temperature":0})",
                  "application/json");
  ASSERT_TRUE(r);
  ASSERT_TRUE(c.Get("/v1/models"));
  serve.WaitForStderr(std::regex(R"("path":"/v1/models")"), std::chrono::seconds(10));
  kill(serve.pid(), SIGTERM);
  EXPECT_EQ(serve.Wait(std::chrono::seconds(10)), 0) << serve.err();
  serve.WaitForStderr(std::regex("strata serve: stopped"), std::chrono::seconds(2));
  std::vector<nlohmann::json> records;
  std::istringstream lines(serve.err());
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] != '{') {
      EXPECT_EQ(line.rfind("strata serve: ", 0), 0u) << line;
      continue;
    }
    records.push_back(nlohmann::json::parse(line, nullptr, false));
    EXPECT_FALSE(records.back().is_discarded()) << line;
  }
  ASSERT_EQ(records.size(), 2u) << serve.err();
  EXPECT_EQ(records[0]["path"], "/v1/completions");
  EXPECT_EQ(records[0]["status"], 200);
  EXPECT_EQ(records[0]["prompt_tokens"], 5);
  EXPECT_EQ(records[0]["completion_tokens"], 5);
  EXPECT_EQ(records[1]["method"], "GET");

  const CommandResult bad = RunCommand({CliPath(), "serve", "--port", "0", "--log-format", "xml"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("--log-format"), std::string::npos) << bad.err;
  const CommandResult help = RunCommand({CliPath(), "serve", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  for (const char* shown : {"--temp FLOAT:FLOAT in [0 - 100]=0.8", "=40\n", "=0.95\n", "=0.05\n", "> 0=1\n", "=text\n"})
    EXPECT_NE(help.out.find(shown), std::string::npos) << shown << "\n" << help.out;
}

}  // namespace
}  // namespace strata::testing
