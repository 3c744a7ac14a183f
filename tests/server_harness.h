// ServerHarness: a real strata::server::Server over the bundled stories260K
// model, serving on a free loopback port in a background thread, for the
// server_*_test.cc suites; plus small helpers to talk to it.
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "engine/engine.h"
#include "model/model.h"
#include "server/server.h"
#include "test_util.h"

namespace strata::testing {

inline std::string StoriesModelPath() { return SharedPath("models/stories260K.gguf"); }

class ServerHarness {
 public:
  // chat_template: a built-in renderer's name; jinja_template: a Jinja
  // template's source (wins if given); neither: the model's (plain).
  explicit ServerHarness(server::ServerOptions options = {}, EngineParams engine_params = DefaultEngineParams(),
                         const std::string& chat_template = "", const std::string& jinja_template = "") {
    ModelLoadOptions mo;
    mo.path = StoriesModelPath();
    Status s = Model::Load(Env::Default(), mo, &model_);
    if (s.ok()) s = Engine::Create(*model_, engine_params, &engine_);
    server::ChatTemplate tmpl;
    if (s.ok() && !chat_template.empty()) s = server::ChatTemplate::FromName(chat_template, "", "", &tmpl);
    if (s.ok() && !jinja_template.empty()) s = server::ChatTemplate::FromJinja(jinja_template, "", "", "", &tmpl);
    options.host = "127.0.0.1";
    options.port = 0;
    if (s.ok()) s = server::Server::Create(engine_.get(), tmpl, options, &server_);
    if (s.ok()) s = server_->Bind(&port_);
    EXPECT_TRUE(s.ok()) << s.ToString();
    if (!s.ok()) return;
    thread_ = std::thread([this] { serve_status_ = server_->Serve(); });
  }

  ~ServerHarness() {
    if (server_) server_->Shutdown();
    if (thread_.joinable()) thread_.join();
    EXPECT_TRUE(serve_status_.ok()) << serve_status_.ToString();
  }

  static EngineParams DefaultEngineParams() {
    EngineParams p;
    p.n_threads = 1;
    p.parallel = 4;
    p.max_queue = 64;
    return p;
  }

  int port() const { return port_; }
  Engine& engine() { return *engine_; }
  const Model& model() const { return *model_; }
  server::Server& server() { return *server_; }
  // Joins the serving thread after Shutdown; returns how long that took.
  std::chrono::milliseconds Join() {
    const auto t0 = std::chrono::steady_clock::now();
    if (thread_.joinable()) thread_.join();
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  }

  std::unique_ptr<httplib::Client> Client() const {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", port_);
    c->set_read_timeout(60, 0);
    c->set_keep_alive(true);  // requests on one client are then served in order
    c->set_tcp_nodelay(true);
    return c;
  }

  // Polls the engine until nothing runs or waits; false on timeout.
  bool WaitIdle(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      const EngineStats st = engine_->Stats();
      if (st.running == 0 && st.queue_depth == 0) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

 private:
  std::unique_ptr<Model> model_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<server::Server> server_;
  int port_ = 0;
  std::thread thread_;
  Status serve_status_;
};

// The "data: ..." payloads of a server-sent-event body, in order (comments
// and blank lines skipped). *well_formed is false if a line is neither.
inline std::vector<std::string> SseData(const std::string& body, bool* well_formed) {
  std::vector<std::string> data;
  *well_formed = true;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find('\n', pos);
    if (end == std::string::npos) end = body.size();
    const std::string line = body.substr(pos, end - pos);
    pos = end + 1;
    if (line.empty() || line[0] == ':') continue;
    if (line.rfind("data: ", 0) != 0) {
      *well_formed = false;
      continue;
    }
    data.push_back(line.substr(6));
  }
  return data;
}

}  // namespace strata::testing
