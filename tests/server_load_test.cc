// The server under concurrent streaming load, and with clients that hang up
// at random moments: every response is well formed, nothing fails, and no
// request leaks (running/queued return to zero).
//   STRATA_SERVER_LOAD_SECONDS  duration of each test (default 20 and 10)
//   STRATA_SERVER_LOAD_CLIENTS  concurrent clients (default 32 and 16)
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <random>

#include "server_harness.h"

namespace strata::testing {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}

const char* kPrompts[] = {"Once upon a time", "The little dog", "Lily and Tom went to the park", "One day, a bird"};

// A random streaming request: completions or chat, 1..max_tokens tokens.
std::pair<std::string, json> RandomRequest(std::mt19937& rng, int max_tokens) {
  const std::string prompt = kPrompts[rng() % 4];
  json body = {{"max_tokens", 1 + static_cast<int>(rng() % max_tokens)},
               {"temperature", (rng() % 2) ? 0.0 : 0.8},
               {"seed", rng() % 1000},
               {"stream", true},
               {"stream_options", {{"include_usage", true}}}};
  if (rng() % 2) {
    body["prompt"] = prompt;
    return {"/v1/completions", body};
  }
  body["messages"] = {{{"role", "user"}, {"content", prompt}}};
  return {"/v1/chat/completions", body};
}

// Checks a complete SSE body: JSON chunks of the right object, a
// finish_reason, a usage chunk consistent with max_tokens, then [DONE].
// Returns "" if well formed, else what is wrong.
std::string CheckStream(const std::string& body, bool chat, int max_tokens, int* completion_tokens) {
  bool well_formed = false;
  const std::vector<std::string> data = SseData(body, &well_formed);
  if (!well_formed) return "a line that is neither data nor comment";
  if (data.size() < 3 || data.back() != "[DONE]") return "no [DONE] at the end";
  std::string finish;
  for (size_t i = 0; i + 1 < data.size(); ++i) {
    const json c = json::parse(data[i], nullptr, false);
    if (!c.is_object() || c["object"] != (chat ? "chat.completion.chunk" : "text_completion"))
      return "bad chunk: " + data[i];
    if (c["choices"].empty()) {
      *completion_tokens = c["usage"]["completion_tokens"];
      if (*completion_tokens > max_tokens || c["usage"]["total_tokens"] != c["usage"]["prompt_tokens"].get<int>() +
                                                                              *completion_tokens)
        return "bad usage: " + data[i];
      continue;
    }
    if (!c["choices"][0]["finish_reason"].is_null()) finish = c["choices"][0]["finish_reason"];
  }
  if (finish != "stop" && finish != "length") return "no finish_reason";
  return "";
}

TEST(ServerLoadTest, ConcurrentStreamingClientsAllSucceed) {
  const int clients = EnvInt("STRATA_SERVER_LOAD_CLIENTS", 32);
  const auto duration = std::chrono::seconds(EnvInt("STRATA_SERVER_LOAD_SECONDS", 20));
  ServerHarness h;
  std::atomic<int> ok{0}, failed{0};
  std::atomic<int64_t> tokens{0};
  std::mutex mu;
  std::string first_failure;
  const auto deadline = Clock::now() + duration;
  std::vector<std::thread> threads;
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back([&, i] {
      std::mt19937 rng(1000 + i);
      auto c = h.Client();
      while (Clock::now() < deadline) {
        auto [path, body] = RandomRequest(rng, 64);
        auto r = c->Post(path.c_str(), body.dump(), "application/json");
        std::string problem = !r ? "no response: " + httplib::to_string(r.error())
                              : r->status != 200 ? "status " + std::to_string(r->status) + ": " + r->body
                                                 : "";
        int n = 0;
        if (problem.empty()) problem = CheckStream(r->body, path == "/v1/chat/completions", body["max_tokens"], &n);
        if (problem.empty()) {
          ++ok;
          tokens += n;
          continue;
        }
        ++failed;
        std::lock_guard<std::mutex> l(mu);
        if (first_failure.empty()) first_failure = problem;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failed.load(), 0) << first_failure;
  EXPECT_GT(ok.load(), clients);
  EXPECT_TRUE(h.WaitIdle());
  const EngineStats st = h.engine().Stats();
  EXPECT_EQ(st.requests_total, static_cast<uint64_t>(ok.load()));
  EXPECT_EQ(st.completion_tokens_total, static_cast<uint64_t>(tokens.load()));
  std::printf("load: %d clients, %lld s: %d streams ok, %d failed, %lld tokens (%.0f tok/s)\n", clients,
              static_cast<long long>(duration.count()), ok.load(), failed.load(), static_cast<long long>(tokens.load()),
              static_cast<double>(tokens.load()) / static_cast<double>(duration.count()));
}

// Clients hang up at random points: before any output (often while queued),
// mid-stream, or not at all. Afterwards nothing runs or waits, and the
// server still answers.
TEST(ServerLoadTest, RandomDisconnectsLeaveNoLeak) {
  const int clients = EnvInt("STRATA_SERVER_LOAD_CLIENTS", 16);
  const auto duration = std::chrono::seconds(EnvInt("STRATA_SERVER_LOAD_SECONDS", 10));
  server::ServerOptions o;
  o.heartbeat = std::chrono::milliseconds(100);  // queued requests of vanished clients are noticed sooner
  EngineParams ep = ServerHarness::DefaultEngineParams();
  ep.parallel = 2;  // most requests wait in the queue for a while
  ServerHarness h(o, ep);
  std::atomic<int> completed{0}, hung_up{0};
  const auto deadline = Clock::now() + duration;
  std::vector<std::thread> threads;
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back([&, i] {
      std::mt19937 rng(7000 + i);
      httplib::Client c("127.0.0.1", h.port());
      c.set_tcp_nodelay(true);
      while (Clock::now() < deadline) {
        auto [path, body] = RandomRequest(rng, 400);
        // 0: hang up at the first byte; 1..8: after that many pieces; 9: read it all.
        const int hang_up_after = static_cast<int>(rng() % 10);
        int pieces = 0;
        httplib::Request req;
        req.method = "POST";
        req.path = path;
        req.body = body.dump();
        req.set_header("Content-Type", "application/json");
        req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) {
          return hang_up_after == 9 || pieces++ < hang_up_after;
        };
        auto r = c.send(req);
        if (r && r->status == 200) {
          ++completed;
        } else {
          ++hung_up;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_GT(hung_up.load(), 0);
  EXPECT_GT(completed.load(), 0);
  EXPECT_TRUE(h.WaitIdle(std::chrono::seconds(10))) << "running " << h.engine().Stats().running << ", queued "
                                                    << h.engine().Stats().queue_depth;
  auto metrics = h.Client()->Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("\nstrata_requests_running 0\n"), std::string::npos);
  EXPECT_NE(metrics->body.find("\nstrata_requests_queued 0\n"), std::string::npos);
  auto after = h.Client()->Post("/v1/completions", R"({"prompt":"Once","max_tokens":3})", "application/json");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 200);
  std::printf("disconnects: %d clients, %lld s: %d read to the end, %d hung up early\n", clients,
              static_cast<long long>(duration.count()), completed.load(), hung_up.load());
}

}  // namespace
}  // namespace strata::testing
