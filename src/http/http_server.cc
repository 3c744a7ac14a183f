#include "http/http_server.h"

#include <utility>  // before Asio: its awaitable.hpp uses std::exchange without it

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fmt/format.h>

#include <thread>
#include <unordered_map>

#include "http/http_connection.h"

namespace strata::http {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {
// After accept fails (e.g. out of file descriptors), wait this long before
// accepting again rather than spinning.
constexpr std::chrono::milliseconds kAcceptBackoff{50};
}  // namespace

struct HttpServer::Impl : ConnectionOwner {
  Impl(HttpHandler* h, HttpLimits l, int threads)
      : handler(*h), limits(l), io_threads(std::max(threads, 1)), acceptor(io) {}

  void Forget(Connection* c) override {
    std::lock_guard<std::mutex> l(mu);
    open.erase(c);
  }
  bool stopping() const override { return stop_requested.load(); }

  asio::awaitable<void> Accept() {
    for (;;) {
      boost::system::error_code ec;
      tcp::socket socket = co_await acceptor.async_accept(asio::make_strand(io),
                                                          asio::redirect_error(asio::use_awaitable, ec));
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      if (ec) {
        asio::steady_timer backoff(io, kAcceptBackoff);
        co_await backoff.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        continue;
      }
      socket.set_option(tcp::no_delay(true), ec);  // each event-stream chunk goes out at once
      std::shared_ptr<Connection> c;
      {
        std::lock_guard<std::mutex> l(mu);
        if (open.size() < limits.max_connections) {
          c = std::make_shared<Connection>(std::move(socket), handler, limits, *this);
          open.emplace(c.get(), c);
        }
      }
      if (c) {
        c->Start();
      } else {
        Connection::Refuse(std::move(socket), handler);
      }
    }
  }

  // Calls fn(connection) on each open connection's strand.
  void ForEach(std::function<void(Connection&)> fn) {
    std::vector<std::shared_ptr<Connection>> all;
    {
      std::lock_guard<std::mutex> l(mu);
      for (auto& [ptr, weak] : open)
        if (auto c = weak.lock()) all.push_back(std::move(c));
    }
    for (auto& c : all) c->Post([c, fn] { fn(*c); });
  }

  HttpHandler& handler;
  const HttpLimits limits;
  const int io_threads;
  asio::io_context io;
  tcp::acceptor acceptor;
  std::atomic<bool> stop_requested{false};
  mutable std::mutex mu;
  std::unordered_map<Connection*, std::weak_ptr<Connection>> open;
};

HttpServer::HttpServer(HttpHandler* handler, HttpLimits limits, int io_threads)
    : impl_(std::make_unique<Impl>(handler, limits, io_threads)) {}

HttpServer::~HttpServer() = default;

Status HttpServer::Bind(const std::string& host, int port, int* bound_port) {
  boost::system::error_code ec;
  tcp::resolver resolver(impl_->io);
  const auto endpoints = resolver.resolve(host, std::to_string(port), tcp::resolver::passive, ec);
  if (ec || endpoints.empty()) return Status::IOError(fmt::format("cannot resolve {}: {}", host, ec.message()));
  const tcp::endpoint endpoint = endpoints.begin()->endpoint();
  tcp::acceptor& a = impl_->acceptor;
  // SO_REUSEADDR only (no SO_REUSEPORT): a second server on the port fails to
  // bind instead of silently sharing it.
  a.open(endpoint.protocol(), ec);
  if (!ec) a.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) a.bind(endpoint, ec);
  if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
  if (!ec) {
    *bound_port = a.local_endpoint().port();
    return Status::Ok();
  }
  a.close();
  return Status::IOError(fmt::format("cannot listen on {}:{}: {}", host, port, ec.message()));
}

void HttpServer::Run() {
  asio::co_spawn(impl_->io, [this] { return impl_->Accept(); }, asio::detached);
  std::vector<std::thread> threads;
  for (int i = 1; i < impl_->io_threads; ++i) threads.emplace_back([this] { impl_->io.run(); });
  impl_->io.run();
  for (std::thread& t : threads) t.join();
}

void HttpServer::StopAccepting() {
  if (impl_->stop_requested.exchange(true)) return;
  asio::post(impl_->io, [this] {
    boost::system::error_code ec;
    impl_->acceptor.close(ec);
  });
  impl_->ForEach([](Connection& c) { c.Stop(false); });
}

void HttpServer::CloseAll() {
  StopAccepting();
  impl_->ForEach([](Connection& c) { c.Stop(true); });
}

size_t HttpServer::connections() const {
  std::lock_guard<std::mutex> l(impl_->mu);
  return impl_->open.size();
}

}  // namespace strata::http
