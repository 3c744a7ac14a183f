// strata serve against hostile clients, on loopback: slow and idle
// connections, oversized and compressed bodies, header floods, byte-range
// amplification, pipelining, cross-site requests and shutdown with slow
// connections open. Each test drives the real server (ServerHarness) with raw
// sockets that send exactly the attacker's bytes.
#include <zlib.h>

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "raw_http.h"
#include "server_harness.h"

namespace strata::testing {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

// ---- memory of this process (the server runs in it) ----

// Resets the peak resident set size (Linux: "5" > /proc/self/clear_refs).
void ResetPeakRss() { std::ofstream("/proc/self/clear_refs") << "5"; }

int64_t StatusKb(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1));
  return -1;
}

// Peak RSS growth in MiB since ResetPeakRss, measured against the RSS then.
class RssWatch {
 public:
  RssWatch() {
    ResetPeakRss();
    base_kb_ = StatusKb("VmRSS");
  }
  double GrowthMiB() const { return (StatusKb("VmHWM") - base_kb_) / 1024.0; }

 private:
  int64_t base_kb_ = 0;
};

// ---- requests ----

std::string Post(const std::string& path, const std::string& body, const std::string& extra_headers = "",
                 const std::string& content_type = "application/json") {
  return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: " + content_type +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" + extra_headers + "\r\n" + body;
}

std::string Get(const std::string& path, const std::string& extra_headers = "") {
  return "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra_headers + "\r\n";
}

int StatusOf(const std::string& response) {
  if (response.rfind("HTTP/1.", 0) != 0 || response.size() < 12) return -1;
  return std::stoi(response.substr(9, 3));
}

// gzip of `zeros` zero bytes, made without holding them in memory.
std::string GzipOfZeros(size_t zeros) {
  z_stream z{};
  deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY);
  std::string in(1 << 20, '\0'), out;
  char buf[65536];
  for (size_t left = zeros; left > 0 || z.avail_in > 0;) {
    if (z.avail_in == 0) {
      const size_t n = std::min(left, in.size());
      z.next_in = reinterpret_cast<Bytef*>(in.data());
      z.avail_in = static_cast<uInt>(n);
      left -= n;
    }
    do {
      z.next_out = reinterpret_cast<Bytef*>(buf);
      z.avail_out = sizeof(buf);
      deflate(&z, Z_NO_FLUSH);
      out.append(buf, sizeof(buf) - z.avail_out);
    } while (z.avail_out == 0);
  }
  int rc;
  do {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof(buf);
    rc = deflate(&z, Z_FINISH);
    out.append(buf, sizeof(buf) - z.avail_out);
  } while (rc != Z_STREAM_END);
  deflateEnd(&z);
  return out;
}

std::string Gzip(const std::string& text) {
  z_stream z{};
  deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  std::string out(compressBound(text.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  z.avail_in = static_cast<uInt>(text.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(out.size() - z.avail_out);
  deflateEnd(&z);
  return out;
}

// One GET /health on a fresh connection; returns its latency, or -1 ms on failure.
milliseconds TimeHealth(int port) {
  const auto t0 = Clock::now();
  RawConnection c(port);
  if (!c.ok() || !c.Send(Get("/health"))) return milliseconds(-1);
  const std::string& r = c.ReadUntil("{\"status\":\"ok\"}", seconds(5));
  if (StatusOf(r) != 200) return milliseconds(-1);
  return std::chrono::duration_cast<milliseconds>(Clock::now() - t0);
}

server::ServerOptions WithKey(const std::string& key) {
  server::ServerOptions o;
  o.api_key = key;
  return o;
}

// ---- slow and idle connections ----

// 1,000 idle connections and 200 connections trickling header lines cost
// the server memory, not threads: real clients are answered at once.
TEST(ServerHardeningTest, SlowlorisAndIdleConnectionsDoNotStarveRealClients) {
  ASSERT_GE(RaiseOpenFileLimit(), 2000u) << "the test needs ~1300 descriptors";
  ServerHarness h;
  std::vector<RawConnection> idle, slow;
  for (int i = 0; i < 1000; ++i) {
    idle.emplace_back(h.port());
    ASSERT_TRUE(idle.back().ok()) << i;
  }
  for (int i = 0; i < 200; ++i) {
    slow.emplace_back(h.port());
    ASSERT_TRUE(slow.back().ok()) << i;
    ASSERT_TRUE(slow.back().Send("POST /v1/completions HTTP/1.1\r\n"));
  }
  std::atomic<bool> stop{false};
  std::thread trickle([&] {
    for (int round = 0; !stop; ++round) {
      for (RawConnection& c : slow) c.Send("X-Slow-" + std::to_string(round) + ": a\r\n");
      std::this_thread::sleep_for(milliseconds(200));
    }
  });
  for (int i = 0; i < 10; ++i) {
    const milliseconds t = TimeHealth(h.port());
    EXPECT_GE(t.count(), 0) << "health request " << i << " failed";
    EXPECT_LT(t.count(), 1000) << "health request " << i;
  }
  for (int i = 0; i < 3; ++i) {
    auto r = h.Client()->Post("/v1/completions", R"({"prompt":"Once upon a time","max_tokens":8})",
                              "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << r->body;
  }
  stop = true;
  trickle.join();
}

// The head deadline covers the whole head: a client trickling one byte at a
// time cannot extend it, and an idle connection is closed when it passes.
TEST(ServerHardeningTest, HeadDeadlineIsNotExtendedByTrickling) {
  server::ServerOptions o;
  o.limits.head_timeout = milliseconds(500);
  ServerHarness h(o);
  RawConnection trickler(h.port()), idle(h.port());
  const std::string head = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
  const auto t0 = Clock::now();
  for (char c : head) {
    if (!trickler.Send(std::string(1, c))) break;
    std::this_thread::sleep_for(milliseconds(40));  // ~3 s for the whole head
  }
  EXPECT_TRUE(trickler.ReadUntilClosed(seconds(5)));
  EXPECT_TRUE(trickler.received().empty()) << trickler.received();
  EXPECT_LT(std::chrono::duration_cast<milliseconds>(Clock::now() - t0).count(), 2500);
  EXPECT_TRUE(idle.ReadUntilClosed(seconds(2)));
  EXPECT_GE(TimeHealth(h.port()).count(), 0);
}

// A body must arrive within the body deadline: 408.
TEST(ServerHardeningTest, SlowBodyGets408) {
  server::ServerOptions o;
  o.limits.body_timeout = milliseconds(300);
  ServerHarness h(o);
  RawConnection c(h.port());
  ASSERT_TRUE(c.Send("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     "Content-Length: 100\r\n\r\n{\"prompt\":"));
  EXPECT_EQ(StatusOf(c.ReadUntil("}}", seconds(3))), 408) << c.received();
}

// Beyond --max-connections a connection gets 503 and is closed; the others
// keep working.
TEST(ServerHardeningTest, ConnectionsBeyondTheLimitGet503) {
  server::ServerOptions o;
  o.limits.max_connections = 4;
  ServerHarness h(o);
  std::vector<RawConnection> held;
  for (int i = 0; i < 4; ++i) held.emplace_back(h.port());
  // The server counts a connection once it has accepted it.
  std::this_thread::sleep_for(milliseconds(100));
  RawConnection extra(h.port());
  const std::string& r = extra.ReadUntil("}}", seconds(3));
  EXPECT_EQ(StatusOf(r), 503) << r;
  EXPECT_NE(r.find("too many open connections"), std::string::npos) << r;
  EXPECT_TRUE(extra.ReadUntilClosed(seconds(3)));
  ASSERT_TRUE(held[0].Send(Get("/health")));
  EXPECT_EQ(StatusOf(held[0].ReadUntil("}", seconds(3))), 200) << held[0].received();
}

// ---- memory before authentication ----

// The API key is judged from the head: a request without it is refused
// before its body is read, so the body need not even be sent.
TEST(ServerHardeningTest, NoBodyIsReadBeforeTheKeyIsChecked) {
  ServerHarness h(WithKey("sesame"));
  RawConnection c(h.port());
  ASSERT_TRUE(c.Send("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     "Content-Encoding: gzip\r\nContent-Length: 300000000\r\n\r\n"));
  const std::string& r = c.ReadUntil("}}", seconds(3));
  EXPECT_EQ(StatusOf(r), 401) << r;
  EXPECT_TRUE(c.ReadUntilClosed(seconds(5)));  // the announced body is never read
}

// A gzip bomb (256 MiB of zeros in ~250 KB): refused without being inflated
// when the key is missing, and stopped at the body limit when it is right.
TEST(ServerHardeningTest, GzipBombIsBounded) {
  const std::string bomb = GzipOfZeros(size_t{256} << 20);
  ASSERT_LT(bomb.size(), 1u << 20);
  ServerHarness h(WithKey("sesame"));
  RssWatch rss;
  for (const std::string key : {"", "Authorization: Bearer sesame\r\n"}) {
    RawConnection c(h.port());
    c.Send(Post("/v1/completions", bomb, key + "Content-Encoding: gzip\r\n"));
    const std::string& r = c.ReadUntil("}}", seconds(10));
    EXPECT_EQ(StatusOf(r), key.empty() ? 401 : 413) << r;
  }
  EXPECT_LT(rss.GrowthMiB(), 50);
  EXPECT_GE(TimeHealth(h.port()).count(), 0);
}

// A chunked body is counted as it arrives: 413 as soon as it passes the limit.
TEST(ServerHardeningTest, ChunkedBodyOverTheLimitIs413) {
  ServerHarness h;  // 1 MiB body limit
  RssWatch rss;
  RawConnection c(h.port());
  ASSERT_TRUE(c.Send("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n"));
  const std::string chunk = std::string("10000\r\n") + std::string(0x10000, ' ') + "\r\n";
  size_t sent = 0;
  while (sent < (size_t{3} << 20) && c.Send(chunk)) sent += 0x10000;
  const std::string& r = c.ReadUntil("}}", seconds(5));
  EXPECT_EQ(StatusOf(r), 413) << r;
  EXPECT_LT(rss.GrowthMiB(), 50);
}

// Oversized heads: an endless header stream and 20,000 header fields get 431
// without the server holding what was sent.
TEST(ServerHardeningTest, HeaderFloodsAre431) {
  ServerHarness h;
  RssWatch rss;
  {
    RawConnection c(h.port());
    c.Send("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Endless: ");
    const std::string piece(4096, 'a');
    for (int i = 0; i < 2048 && c.Send(piece); ++i) {
    }
    EXPECT_EQ(StatusOf(c.ReadUntil("}}", seconds(5))), 431) << c.received();
  }
  {
    RawConnection c(h.port());
    std::string head = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    for (int i = 0; i < 20000; ++i) head += "X-" + std::to_string(i) + ": a\r\n";
    c.Send(head + "\r\n");
    EXPECT_EQ(StatusOf(c.ReadUntil("}}", seconds(5))), 431) << c.received();
  }
  {
    // Many small fields under the byte limit: the field count limit.
    RawConnection c(h.port());
    std::string head = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    for (int i = 0; i < 200; ++i) head += "X: a\r\n";
    c.Send(head + "\r\n");
    EXPECT_EQ(StatusOf(c.ReadUntil("}}", seconds(5))), 431) << c.received();
  }
  EXPECT_LT(rss.GrowthMiB(), 50);
}

// Content-Length above the body limit: 413 from the head alone.
TEST(ServerHardeningTest, DeclaredBodyOverTheLimitIs413) {
  ServerHarness h;
  RawConnection c(h.port());
  ASSERT_TRUE(c.Send("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     "Content-Length: 5000000\r\n\r\n"));
  EXPECT_EQ(StatusOf(c.ReadUntil("}}", seconds(3))), 413) << c.received();
}

// ---- protocol ----

// Byte ranges are not served: 2,000 ranges get one plain 200 body.
TEST(ServerHardeningTest, MultiRangeIsNotAmplified) {
  ServerHarness h;
  std::string ranges = "Range: bytes=0-";
  for (int i = 0; i < 2000; ++i) ranges += ",0-";
  RawConnection plain(h.port()), ranged(h.port());
  ASSERT_TRUE(plain.Send(Get("/v1/models", "Connection: close\r\n")));
  ASSERT_TRUE(ranged.Send(Get("/v1/models", ranges + "\r\nConnection: close\r\n")));
  ASSERT_TRUE(plain.ReadUntilClosed(seconds(5)));
  ASSERT_TRUE(ranged.ReadUntilClosed(seconds(5)));
  EXPECT_EQ(StatusOf(ranged.received()), 200);
  EXPECT_EQ(ranged.received().find("multipart/byteranges"), std::string::npos);
  EXPECT_LT(ranged.received().size(), plain.received().size() + 64);
}

// Requests sent back to back on one connection are all answered, in order.
TEST(ServerHardeningTest, PipelinedRequestsAreAllAnswered) {
  ServerHarness h;
  const std::string completion = Post("/v1/completions", R"({"prompt":"Once","max_tokens":3,"temperature":0})");
  RawConnection c(h.port());
  ASSERT_TRUE(c.Send(Get("/health") + completion + Get("/v1/models") + completion + Get("/health")));
  auto count = [&] {
    size_t n = 0;
    for (size_t pos = c.received().find("HTTP/1.1 200 OK"); pos != std::string::npos;
         pos = c.received().find("HTTP/1.1 200 OK", pos + 1))
      ++n;
    return n;
  };
  const auto deadline = Clock::now() + seconds(10);
  while (count() < 5 && Clock::now() < deadline && !c.closed()) c.ReadUntil("never sent", milliseconds(50));
  c.ReadUntil("{\"status\":\"ok\"}", milliseconds(200));
  const std::string& all = c.received();
  EXPECT_EQ(count(), 5u) << all;
  const size_t first_completion = all.find("text_completion");
  const size_t models = all.find("\"object\":\"list\"");
  EXPECT_LT(first_completion, models) << all;
  EXPECT_LT(models, all.rfind("text_completion")) << all;
}

// Expect: 100-continue is answered before the body is sent (and not at all
// when the head is refused).
TEST(ServerHardeningTest, ExpectContinue) {
  ServerHarness h(WithKey("sesame"));
  const std::string body = R"({"prompt":"Once","max_tokens":2})";
  const std::string head = "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                           "Expect: 100-continue\r\nContent-Length: " +
                           std::to_string(body.size()) + "\r\n";
  RawConnection good(h.port());
  ASSERT_TRUE(good.Send(head + "Authorization: Bearer sesame\r\n\r\n"));
  EXPECT_EQ(good.ReadUntil("\r\n\r\n", seconds(3)).rfind("HTTP/1.1 100 Continue\r\n\r\n", 0), 0u) << good.received();
  ASSERT_TRUE(good.Send(body));
  EXPECT_NE(good.ReadUntil("text_completion", seconds(5)).find("HTTP/1.1 200 OK"), std::string::npos)
      << good.received();
  RawConnection bad(h.port());
  ASSERT_TRUE(bad.Send(head + "\r\n"));
  EXPECT_EQ(StatusOf(bad.ReadUntil("}}", seconds(3))), 401) << bad.received();
}

// Request bodies may be gzip or deflate; other encodings are 415.
TEST(ServerHardeningTest, CompressedBodies) {
  ServerHarness h;
  const std::string body = R"({"prompt":"Once","max_tokens":2})";
  RawConnection gz(h.port());
  ASSERT_TRUE(gz.Send(Post("/v1/completions", Gzip(body), "Content-Encoding: gzip\r\n")));
  EXPECT_EQ(StatusOf(gz.ReadUntil("}}", seconds(5))), 200) << gz.received();
  RawConnection corrupt(h.port());
  ASSERT_TRUE(corrupt.Send(Post("/v1/completions", "not gzip at all", "Content-Encoding: gzip\r\n")));
  EXPECT_EQ(StatusOf(corrupt.ReadUntil("}}", seconds(5))), 400) << corrupt.received();
  RawConnection br(h.port());
  ASSERT_TRUE(br.Send(Post("/v1/completions", body, "Content-Encoding: br\r\n")));
  EXPECT_EQ(StatusOf(br.ReadUntil("}}", seconds(5))), 415) << br.received();
}

// JSON endpoints take JSON; curl -d's form content type is read as the JSON it is.
TEST(ServerHardeningTest, ContentTypeOfJsonEndpoints) {
  ServerHarness h;
  const std::string body = R"({"prompt":"Once","max_tokens":2})";
  for (const auto& [type, status] : std::vector<std::pair<std::string, int>>{
           {"application/json", 200},
           {"application/json; charset=utf-8", 200},
           {"application/x-www-form-urlencoded", 200},
           {"text/plain", 415},
           {"multipart/form-data; boundary=x", 415}}) {
    RawConnection c(h.port());
    ASSERT_TRUE(c.Send(Post("/v1/completions", body, "", type)));
    EXPECT_EQ(StatusOf(c.ReadUntil("}}", seconds(5))), status) << type << ": " << c.received();
  }
  RawConnection none(h.port());
  ASSERT_TRUE(none.Send("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " +
                        std::to_string(body.size()) + "\r\n\r\n" + body));
  EXPECT_EQ(StatusOf(none.ReadUntil("}}", seconds(5))), 415) << none.received();
}

// A client that leaves while its (non-streaming) completion runs cancels it.
TEST(ServerHardeningTest, ClientGoneCancelsAWholeResponse) {
  ServerHarness h;
  {
    RawConnection c(h.port());
    ASSERT_TRUE(c.Send(Post("/v1/completions", R"({"prompt":"Once","max_tokens":2000,"temperature":0})")));
    while (h.engine().Stats().running == 0) std::this_thread::sleep_for(milliseconds(1));
  }
  ASSERT_TRUE(h.WaitIdle(seconds(5)));
  EXPECT_LT(h.engine().Stats().completion_tokens_total, 1000u);
}

// ---- browsers ----

// DNS rebinding: a Host other than the server's own is refused.
TEST(ServerHardeningTest, ForeignHostIsRefused) {
  ServerHarness h;
  for (const auto& [host, status] : std::vector<std::pair<std::string, int>>{{"127.0.0.1:1234", 200},
                                                                            {"localhost", 200},
                                                                            {"[::1]:8080", 200},
                                                                            {"evil.example", 403},
                                                                            {"evil.example:8080", 403}}) {
    RawConnection c(h.port());
    ASSERT_TRUE(c.Send("GET /v1/models HTTP/1.1\r\nHost: " + host + "\r\n\r\n"));
    EXPECT_EQ(StatusOf(c.ReadUntil("}", seconds(3))), status) << host << ": " << c.received();
  }
  server::ServerOptions o;
  o.allowed_hosts = {"strata.lan"};
  ServerHarness allowed(o);
  RawConnection c(allowed.port());
  ASSERT_TRUE(c.Send("GET /v1/models HTTP/1.1\r\nHost: strata.lan:8080\r\n\r\n"));
  EXPECT_EQ(StatusOf(c.ReadUntil("}", seconds(3))), 200) << c.received();
}

// Cross-origin requests are refused unless --cors-origin allows them; the
// server's own origin always works.
TEST(ServerHardeningTest, CrossOriginRequestsNeedCorsOrigin) {
  ServerHarness h;
  RawConnection foreign(h.port());
  ASSERT_TRUE(foreign.Send(Get("/v1/models", "Origin: http://evil.example\r\n")));
  EXPECT_EQ(StatusOf(foreign.ReadUntil("}}", seconds(3))), 403) << foreign.received();
  RawConnection same(h.port());
  ASSERT_TRUE(same.Send(Get("/v1/models", "Origin: http://127.0.0.1\r\n")));
  EXPECT_EQ(StatusOf(same.ReadUntil("}", seconds(3))), 200) << same.received();

  server::ServerOptions o;
  o.cors_origins = {"http://app.example"};
  ServerHarness cors(o);
  RawConnection preflight(cors.port());
  ASSERT_TRUE(preflight.Send("OPTIONS /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             "Origin: http://app.example\r\nAccess-Control-Request-Method: POST\r\n\r\n"));
  const std::string& p = preflight.ReadUntil("\r\n\r\n", seconds(3));
  EXPECT_EQ(StatusOf(p), 204) << p;
  EXPECT_NE(p.find("Access-Control-Allow-Origin: http://app.example"), std::string::npos) << p;
  EXPECT_NE(p.find("Authorization, Content-Type"), std::string::npos) << p;
  RawConnection allowed(cors.port());
  ASSERT_TRUE(allowed.Send(Get("/v1/models", "Origin: http://app.example\r\n")));
  const std::string& a = allowed.ReadUntil("\"list\"}", seconds(3));
  EXPECT_EQ(StatusOf(a), 200) << a;
  EXPECT_NE(a.find("Access-Control-Allow-Origin: http://app.example"), std::string::npos) << a;
  RawConnection other(cors.port());
  ASSERT_TRUE(other.Send(Get("/v1/models", "Origin: http://evil.example\r\n")));
  EXPECT_EQ(StatusOf(other.ReadUntil("}}", seconds(3))), 403) << other.received();
}

// ---- shutdown ----

// Shutdown closes idle and slow connections at once and lets a running
// generation finish within the grace period.
TEST(ServerHardeningTest, ShutdownLetsRunningGenerationsFinish) {
  server::ServerOptions o;
  o.shutdown_grace = seconds(10);
  ServerHarness h(o);
  std::vector<RawConnection> slow;
  for (int i = 0; i < 20; ++i) {
    slow.emplace_back(h.port());
    slow.back().Send("GET /health HTTP/1.1\r\n");
  }
  RawConnection running(h.port());
  ASSERT_TRUE(running.Send(Post("/v1/completions", R"({"prompt":"Once","max_tokens":200,"temperature":0})")));
  while (h.engine().Stats().running == 0) std::this_thread::sleep_for(milliseconds(1));
  const auto t0 = Clock::now();
  h.server().Shutdown();
  EXPECT_LT(h.Join().count(), 10000);
  EXPECT_LT(std::chrono::duration_cast<milliseconds>(Clock::now() - t0).count(), 10000);
  const std::string& r = running.ReadUntil("\"usage\"", seconds(5));
  EXPECT_EQ(StatusOf(r), 200) << r;
  EXPECT_NE(r.find("\"completion_tokens\":200"), std::string::npos) << r;
  for (RawConnection& c : slow) EXPECT_TRUE(c.ReadUntilClosed(seconds(1)));
}

}  // namespace
}  // namespace strata::testing
