#include "http/http_connection.h"

#include <sys/socket.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http.hpp>

#include <cerrno>
#include <fmt/format.h>

#include "http/body_decoder.h"
#include "http/request_head.h"

namespace strata::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using asio::redirect_error;
using asio::use_awaitable;

constexpr size_t kBodyPiece = 16 * 1024;
constexpr std::chrono::seconds kRefuseTimeout{2};
// After refusing a request whose body was not read, the rest of the body is
// read and dropped for this long (at most the body limit) before closing, so
// that the client reads the answer instead of a connection reset.
constexpr std::chrono::seconds kLingerTimeout{2};

bool ExpectsContinue(const HttpRequestHead& head) {
  const auto expect = head.Header("Expect");
  return expect && EqualsIgnoreCase(*expect, "100-continue");
}

// Serializes a response head plus body into one buffer (responses are small or streamed).
std::string Serialize(const HttpResponse& r, int version, bool keep_alive) {
  bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(r.status), static_cast<unsigned>(version)};
  res.reason(std::string(ReasonPhrase(r.status)));
  for (const HttpHeader& h : r.headers) res.insert(h.name, h.value);
  res.body() = r.body;
  res.keep_alive(keep_alive);
  res.prepare_payload();
  std::ostringstream os;
  os << res;
  return os.str();
}

}  // namespace

Connection::Connection(asio::ip::tcp::socket socket, HttpHandler& handler, const HttpLimits& limits,
                       ConnectionOwner& owner)
    : socket_(std::move(socket)),
      handler_(handler),
      limits_(limits),
      owner_(owner),
      deadline_(socket_.get_executor()),
      wake_(socket_.get_executor()),
      buffer_(limits.max_header_bytes + kBodyPiece) {}

Connection::~Connection() = default;

void Connection::Start() {
  asio::co_spawn(socket_.get_executor(), [self = shared_from_this()]() { return self->Serve(); }, asio::detached);
}

void Connection::Post(std::function<void()> fn) { asio::post(socket_.get_executor(), std::move(fn)); }

void Connection::Stop(bool force) {
  if (state_ == State::kClosed) return;
  stop_after_response_ = true;
  if (force || state_ == State::kHead || state_ == State::kBody) {
    MarkGone();
    Close();
  }
}

void Connection::Enqueue(uint64_t request, Out out) {
  if (request != request_ || response_done_ || gone_) return;
  outbox_bytes_ += out.data.size() + out.response.body.size();
  outbox_.push_back(std::move(out));
  if (outbox_bytes_ > limits_.max_pending_write_bytes) {
    MarkGone();  // reads far slower than the response is made
    Close();
    return;
  }
  wake_.cancel();
}

void Connection::SetAbandon(uint64_t request, std::function<void()> fn) {
  if (request != request_ || response_done_) return;
  if (gone_) return fn();
  on_abandon_ = std::move(fn);
}

void Connection::Refuse(asio::ip::tcp::socket socket, HttpHandler& handler) {
  auto s = std::make_shared<asio::ip::tcp::socket>(std::move(socket));
  auto timer = std::make_shared<asio::steady_timer>(s->get_executor(), kRefuseTimeout);
  timer->async_wait([s](beast::error_code ec) {
    if (!ec) s->close(ec);
  });
  HttpResponse r = handler.Error(503, "the server has too many open connections; retry later", nullptr);
  handler.Responded(nullptr, 503);
  auto bytes = std::make_shared<std::string>(Serialize(r, 11, false));
  asio::async_write(*s, asio::buffer(*bytes), [s, timer, bytes](beast::error_code ec, size_t) {
    s->shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    s->close(ec);
    timer->cancel();
  });
}

asio::awaitable<void> Connection::Serve() {
  auto self = shared_from_this();
  try {
    while (state_ != State::kClosed && !stop_after_response_ && !owner_.stopping()) {
      if (!co_await ServeOne()) break;
    }
  } catch (const std::exception&) {
    // A failed allocation or a library error: drop this connection only.
  }
  if (linger_ && state_ != State::kClosed) co_await Linger();
  MarkGone();
  Close();
}

asio::awaitable<void> Connection::Linger() {
  beast::error_code ec;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
  Arm(kLingerTimeout);
  char sink[4096];
  size_t discarded = 0;
  while (!ec && discarded < limits_.max_body_bytes) {
    discarded += co_await socket_.async_read_some(asio::buffer(sink), redirect_error(use_awaitable, ec));
  }
  Disarm();
}

asio::awaitable<bool> Connection::ServeOne() {
  beast::error_code ec;
  RequestParser parser;
  PrepareHeadParser(&parser, limits_);

  state_ = State::kHead;
  Arm(limits_.head_timeout);
  co_await bhttp::async_read_header(socket_, buffer_, parser, redirect_error(use_awaitable, ec));
  Disarm();
  if (ec) {
    if (timed_out_) co_return false;  // idle or trickling: close without a word
    linger_ = true;
    if (const int status = StatusOfHeadError(ec); status != 0) {
      const std::string message = status == 431
                                      ? fmt::format("the request head exceeds {} bytes", limits_.max_header_bytes)
                                      : "malformed HTTP request: " + ec.message();
      co_await WriteWhole(handler_.Error(status, message, nullptr), nullptr, false);
    }
    co_return false;  // closed, reset or unreadable
  }
  HttpRequestHead head = HeadOf(parser);
  if (CheckHeadFields(head, limits_) != 0) {
    linger_ = true;
    co_await WriteWhole(
        handler_.Error(431, fmt::format("the request has more than {} header fields", limits_.max_header_fields), &head),
        &head, false);
    co_return false;
  }
  if (std::optional<HttpResponse> refusal = handler_.Admit(head)) {
    // An announced body is not read: the connection closes after the answer.
    const bool keep = parser.keep_alive() && !head.has_body;
    linger_ = head.has_body;
    co_return co_await WriteWhole(std::move(*refusal), &head, keep) && keep;
  }
  if (LimitBody(&parser, limits_) != 0) {
    linger_ = true;
    co_await WriteWhole(
        handler_.Error(413, fmt::format("the request body exceeds {} bytes", limits_.max_body_bytes), &head), &head,
        false);
    co_return false;
  }
  std::unique_ptr<BodyDecoder> decoder =
      BodyDecoder::Create(head.Header("Content-Encoding").value_or(""), limits_.max_body_bytes);
  if (!decoder) {
    linger_ = true;
    co_await WriteWhole(handler_.Error(415, "unsupported Content-Encoding (identity, gzip or deflate)", &head), &head,
                        false);
    co_return false;
  }

  // The body, decoded as it arrives.
  std::string body;
  if (head.has_body) {
    if (ExpectsContinue(head) && head.version >= 11 && !co_await WriteRaw("HTTP/1.1 100 Continue\r\n\r\n"))
      co_return false;
    state_ = State::kBody;
    Arm(limits_.body_timeout);
    char piece[kBodyPiece];
    BodyDecoder::Result result = BodyDecoder::Result::kOk;
    while (!parser.is_done() && result == BodyDecoder::Result::kOk) {
      parser.get().body().data = piece;
      parser.get().body().size = sizeof(piece);
      co_await bhttp::async_read(socket_, buffer_, parser, redirect_error(use_awaitable, ec));
      if (ec == bhttp::error::need_buffer) ec = {};
      if (ec) break;
      result = decoder->Feed(std::string_view(piece, sizeof(piece) - parser.get().body().size), &body);
    }
    if (!ec && result == BodyDecoder::Result::kOk) result = decoder->Finish();
    Disarm();
    linger_ = true;
    if (timed_out_) {
      co_await WriteWhole(handler_.Error(408, fmt::format("the request body did not arrive within {} s",
                                                          limits_.body_timeout.count() / 1000),
                                         &head),
                          &head, false);
      co_return false;
    }
    if (ec == bhttp::error::body_limit || result == BodyDecoder::Result::kTooLarge) {
      co_await WriteWhole(
          handler_.Error(413, fmt::format("the request body exceeds {} bytes", limits_.max_body_bytes), &head), &head,
          false);
      co_return false;
    }
    if (ec) {
      if (StatusOfHeadError(ec) == 400)
        co_await WriteWhole(handler_.Error(400, "malformed request body: " + ec.message(), &head), &head, false);
      co_return false;
    }
    if (result != BodyDecoder::Result::kOk) {
      co_await WriteWhole(handler_.Error(400, "the request body is not valid for its Content-Encoding", &head), &head,
                          false);
      co_return false;
    }
    linger_ = false;
  }

  // Hand it over and write what the handler answers.
  state_ = State::kHandling;
  ++request_;
  response_done_ = false;
  gone_ = false;
  streaming_ = false;
  keep_alive_ = parser.keep_alive();
  outbox_.clear();
  outbox_bytes_ = 0;
  const HttpRequestHead head_copy = head;
  handler_.Handle(HttpRequest{std::move(head), std::move(body)},
                  std::make_shared<HttpExchange>(weak_from_this(), request_));
  Watch();
  const bool ok = co_await WriteResponse(head_copy);
  watching_ = false;
  ++watch_;
  response_done_ = true;
  on_abandon_ = nullptr;
  if (ok && state_ != State::kClosed) {
    beast::error_code ignored;
    socket_.cancel(ignored);  // the watch's pending wait
  }
  co_return ok && keep_alive_;
}

asio::awaitable<bool> Connection::WriteResponse(const HttpRequestHead& head) {
  beast::error_code ec;
  for (;;) {
    while (outbox_.empty() && !gone_) {
      const bool beat = streaming_ && stream_.heartbeat.count() > 0;
      if (beat) {
        wake_.expires_after(stream_.heartbeat);
      } else {
        wake_.expires_at(asio::steady_timer::time_point::max());
      }
      co_await wake_.async_wait(redirect_error(use_awaitable, ec));
      if (!ec && beat && outbox_.empty() && !gone_) {
        // Counted like any queued bytes: they are subtracted when written.
        outbox_bytes_ += stream_.heartbeat_bytes.size();
        outbox_.push_back(Out{Out::Kind::kData, {}, stream_.heartbeat_bytes, {}});
      }
    }
    if (gone_) co_return false;
    Out out = std::move(outbox_.front());
    outbox_.pop_front();
    outbox_bytes_ -= out.data.size() + out.response.body.size();
    switch (out.kind) {
      case Out::Kind::kWhole:
        co_return co_await WriteWhole(std::move(out.response), &head, keep_alive_ && !stop_after_response_);
      case Out::Kind::kStreamHead:
        stream_ = std::move(out.stream);
        if (!co_await WriteStreamHead(out.response, head)) co_return false;
        break;
      case Out::Kind::kData: {
        // Everything queued goes out as one chunk.
        std::string data = std::move(out.data);
        while (!outbox_.empty() && outbox_.front().kind == Out::Kind::kData) {
          data += outbox_.front().data;
          outbox_bytes_ -= outbox_.front().data.size();
          outbox_.pop_front();
        }
        if (data.empty()) break;
        if (chunked_) data = fmt::format("{:x}\r\n{}\r\n", data.size(), data);
        if (!co_await WriteRaw(std::move(data))) co_return false;
        break;
      }
      case Out::Kind::kEnd:
        if (!chunked_) {
          keep_alive_ = false;  // the body ends with the connection
          co_return true;
        }
        co_return co_await WriteRaw("0\r\n\r\n");
    }
  }
}

asio::awaitable<bool> Connection::WriteWhole(HttpResponse response, const HttpRequestHead* head, bool keep_alive) {
  if (state_ == State::kClosed) co_return false;
  handler_.Responded(head, response.status);
  const int version = head != nullptr ? head->version : 11;
  if (!keep_alive) keep_alive_ = false;
  co_return co_await WriteRaw(Serialize(response, version, keep_alive && !stop_after_response_));
}

asio::awaitable<bool> Connection::WriteStreamHead(const HttpResponse& response, const HttpRequestHead& head) {
  handler_.Responded(&head, response.status);
  streaming_ = true;
  chunked_ = head.version >= 11;
  if (!chunked_) keep_alive_ = false;
  bhttp::response<bhttp::empty_body> res{static_cast<bhttp::status>(response.status),
                                         static_cast<unsigned>(head.version)};
  res.reason(std::string(ReasonPhrase(response.status)));
  for (const HttpHeader& h : response.headers) res.insert(h.name, h.value);
  res.keep_alive(keep_alive_ && !stop_after_response_);
  if (chunked_) res.chunked(true);
  std::ostringstream os;
  os << res.base();
  co_return co_await WriteRaw(os.str());
}

asio::awaitable<bool> Connection::WriteRaw(std::string bytes) {
  if (state_ == State::kClosed) co_return false;
  beast::error_code ec;
  Arm(limits_.write_timeout);
  co_await asio::async_write(socket_, asio::buffer(bytes), redirect_error(use_awaitable, ec));
  Disarm();
  if (ec || timed_out_) {
    MarkGone();
    co_return false;
  }
  co_return true;
}

void Connection::Arm(std::chrono::milliseconds d) {
  timed_out_ = false;
  deadline_.expires_after(d);
  deadline_.async_wait([self = shared_from_this()](beast::error_code ec) {
    if (ec) return;  // re-armed or disarmed
    self->timed_out_ = true;
    self->socket_.cancel(ec);  // fails the pending operation
  });
}

void Connection::Disarm() { deadline_.cancel(); }

void Connection::Watch() {
  watching_ = true;
  const uint64_t generation = ++watch_;
  socket_.async_wait(asio::ip::tcp::socket::wait_read, [self = shared_from_this(), generation](beast::error_code ec) {
    if (!self->watching_ || generation != self->watch_) return;
    if (ec) {
      if (ec != asio::error::operation_aborted) self->MarkGone();
      return;
    }
    char c;
    const ssize_t n = ::recv(self->socket_.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 && self->buffer_.size() == 0) {
      self->MarkGone();  // closed by the client (a pipelined request still in the buffer is answered)
    } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      self->MarkGone();
    }
    // Otherwise the next request is arriving: stop watching; a client that
    // leaves now is noticed by the next write.
  });
}

void Connection::MarkGone() {
  if (gone_ && !on_abandon_) return;
  gone_ = true;
  wake_.cancel();
  if (on_abandon_ && !response_done_) {
    std::function<void()> fn = std::move(on_abandon_);
    on_abandon_ = nullptr;
    fn();
  }
}

void Connection::Close() {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  beast::error_code ec;
  deadline_.cancel();
  wake_.cancel();
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  socket_.close(ec);
  owner_.Forget(this);
}

}  // namespace strata::http
