// Connection: one accepted TCP connection of an HttpServer, served by one
// coroutine on the connection's strand: read a head (deadline), ask the
// handler to admit it, read and decode the body (deadline, caps), hand the
// request over, write the response the exchange queues, and repeat while the
// client keeps the connection alive. While a request is being answered the
// connection watches its socket, so a client that goes away is noticed even
// before the next write.
//
// Thread-safety: everything runs on the connection's strand; other threads
// reach it only through Post (HttpExchange, HttpServer).
#pragma once

#include <utility>  // before Asio: its awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>

#include "http/http_exchange.h"
#include "http/http_handler.h"
#include "http/http_limits.h"

namespace strata::http {

// What a connection needs from its server.
class ConnectionOwner {
 public:
  virtual ~ConnectionOwner() = default;
  virtual void Forget(Connection* connection) = 0;  // the connection is closed
  virtual bool stopping() const = 0;                // no more requests after the current one
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  // REQUIRES: socket's executor is a strand; handler and owner outlive the connection.
  Connection(boost::asio::ip::tcp::socket socket, HttpHandler& handler, const HttpLimits& limits,
             ConnectionOwner& owner);
  ~Connection();

  // Starts serving (the coroutine holds the connection alive).
  void Start();
  // Runs fn on the connection's strand.
  void Post(std::function<void()> fn);
  // On the strand: the server stops. force: close now; else close now if no
  // request is in progress, otherwise after its response.
  void Stop(bool force);

  // Exchange side (on the strand). Calls for another request than the current
  // one, or after its response is complete, are ignored.
  struct Out {
    enum class Kind { kWhole, kStreamHead, kData, kEnd } kind;
    HttpResponse response;  // kWhole, kStreamHead
    std::string data;       // kData
    StreamOptions stream;   // kStreamHead
  };
  void Enqueue(uint64_t request, Out out);
  void SetAbandon(uint64_t request, std::function<void()> fn);

  // A 503 for a connection over the server's limit, then close.
  static void Refuse(boost::asio::ip::tcp::socket socket, HttpHandler& handler);

 private:
  enum class State { kHead, kBody, kHandling, kClosed };

  boost::asio::awaitable<void> Serve();
  // One request: false when the connection must close afterwards.
  boost::asio::awaitable<bool> ServeOne();
  // Writes the queued response of the current request; false if the client is gone.
  boost::asio::awaitable<bool> WriteResponse(const HttpRequestHead& head);
  // A whole response (the handler's or the server's own error).
  boost::asio::awaitable<bool> WriteWhole(HttpResponse response, const HttpRequestHead* head, bool keep_alive);
  boost::asio::awaitable<bool> WriteStreamHead(const HttpResponse& response, const HttpRequestHead& head);
  boost::asio::awaitable<bool> WriteRaw(std::string bytes);
  // Half-closes, then reads and drops what the client still sends (bounded).
  boost::asio::awaitable<void> Linger();

  // Cancels the pending socket operation when d passes (sets timed_out_).
  void Arm(std::chrono::milliseconds d);
  void Disarm();
  // While a request is answered: notices a client that closes the connection.
  void Watch();
  void MarkGone();
  void Close();

  boost::asio::ip::tcp::socket socket_;
  HttpHandler& handler_;
  const HttpLimits& limits_;
  ConnectionOwner& owner_;
  boost::asio::steady_timer deadline_;
  boost::asio::steady_timer wake_;  // cancelled to wake WriteResponse when something is queued
  boost::beast::flat_buffer buffer_;
  State state_ = State::kHead;
  bool stop_after_response_ = false;
  bool timed_out_ = false;  // the armed deadline passed
  bool linger_ = false;     // closing with part of a request unread

  // The request being answered.
  uint64_t request_ = 0;
  bool response_done_ = true;
  bool keep_alive_ = false;
  bool gone_ = false;  // the client went away (or the server dropped it)
  bool streaming_ = false;
  bool chunked_ = false;
  StreamOptions stream_;
  std::deque<Out> outbox_;
  size_t outbox_bytes_ = 0;
  std::function<void()> on_abandon_;
  uint64_t watch_ = 0;  // generation of the current Watch
  bool watching_ = false;
};

}  // namespace strata::http
