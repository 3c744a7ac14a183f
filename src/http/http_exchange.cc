#include "http/http_exchange.h"

#include "http/http_connection.h"

namespace strata::http {
namespace {

// Runs fn(connection) on the connection's strand if the connection still exists.
template <class Fn>
void OnConnection(const std::weak_ptr<Connection>& weak, Fn fn) {
  if (std::shared_ptr<Connection> c = weak.lock()) {
    c->Post([weak, fn = std::move(fn)]() mutable {
      if (std::shared_ptr<Connection> c = weak.lock()) fn(*c);
    });
  }
}

}  // namespace

HttpExchange::HttpExchange(std::weak_ptr<Connection> connection, uint64_t request)
    : connection_(std::move(connection)), request_(request) {}

void HttpExchange::Respond(HttpResponse response) {
  OnConnection(connection_, [r = request_, response = std::move(response)](Connection& c) mutable {
    c.Enqueue(r, Connection::Out{Connection::Out::Kind::kWhole, std::move(response), {}, {}});
  });
}

void HttpExchange::StartStream(HttpResponse head, StreamOptions options) {
  head.body.clear();
  OnConnection(connection_, [r = request_, head = std::move(head), options = std::move(options)](Connection& c) mutable {
    c.Enqueue(r, Connection::Out{Connection::Out::Kind::kStreamHead, std::move(head), {}, std::move(options)});
  });
}

void HttpExchange::Write(std::string bytes) {
  OnConnection(connection_, [r = request_, bytes = std::move(bytes)](Connection& c) mutable {
    c.Enqueue(r, Connection::Out{Connection::Out::Kind::kData, {}, std::move(bytes), {}});
  });
}

void HttpExchange::End() {
  OnConnection(connection_, [r = request_](Connection& c) {
    c.Enqueue(r, Connection::Out{Connection::Out::Kind::kEnd, {}, {}, {}});
  });
}

void HttpExchange::Post(std::function<void()> fn) {
  OnConnection(connection_, [fn = std::move(fn)](Connection&) { fn(); });
}

void HttpExchange::OnAbandon(std::function<void()> fn) {
  OnConnection(connection_, [r = request_, fn = std::move(fn)](Connection& c) mutable { c.SetAbandon(r, std::move(fn)); });
}

}  // namespace strata::http
