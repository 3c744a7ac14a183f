#include "cli/chat_input.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string_view>

#include "cli/interrupt.h"

namespace strata::cli {

ChatInput::ChatInput(int fd) : fd_(fd), interactive_(::isatty(fd) == 1) {}

void ChatInput::Prompt(bool continuation) const {
  if (!interactive_) return;
  std::fputs(continuation ? "... " : "> ", stderr);
  std::fflush(stderr);
}

bool ChatInput::Fill(bool* interrupted) {
  if (eof_) return false;
  pollfd fds[2] = {{fd_, POLLIN, 0}, {InterruptFd(), POLLIN, 0}};
  while (true) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      eof_ = true;
      return false;
    }
    if (fds[1].revents != 0) {
      ClearInterrupt();
      *interrupted = true;
      return false;
    }
    char buf[1 << 16];
    const ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    buffer_.append(buf, static_cast<size_t>(n));
    return true;
  }
}

ChatInput::Line ChatInput::ReadLine(std::string* line, bool* too_long) {
  size_t scan = taken_;  // no line break before it
  while (true) {
    const size_t nl = buffer_.find('\n', scan);
    if (nl != std::string::npos) {
      line->assign(buffer_, taken_, nl - taken_);
      taken_ = nl + 1;
      break;
    }
    buffer_.erase(0, taken_);  // once per read, not per line
    taken_ = 0;
    scan = buffer_.size();
    if (buffer_.size() > kMaxMessageBytes) {
      buffer_.clear();
      scan = 0;
      *too_long = true;
    }
    bool interrupted = false;
    if (Fill(&interrupted)) continue;
    if (interrupted) return Line::kInterrupt;
    if (buffer_.empty()) return Line::kEnd;
    *line = std::move(buffer_);
    buffer_.clear();
    break;
  }
  if (!line->empty() && line->back() == '\r') line->pop_back();
  return Line::kLine;
}

ChatInput::Event ChatInput::Next(std::string* text) {
  text->clear();
  bool started = false;   // a line of this message was read
  bool block = false;     // inside """ ... """
  bool too_long = false;  // the message passed kMaxMessageBytes: its text is dropped
  auto append = [&](std::string_view s) {
    if (too_long) return;
    *text += s;
    if (text->size() > kMaxMessageBytes) {
      text->clear();
      too_long = true;
    }
  };
  auto done = [&] { return too_long ? Event::kTooLong : Event::kMessage; };
  Prompt(false);
  while (true) {
    std::string line;
    const Line got = ReadLine(&line, &too_long);
    if (got == Line::kInterrupt) return Event::kInterrupt;
    if (got == Line::kEnd) return started ? done() : Event::kEnd;  // the end of input ends a message too
    if (!started && line == "\"\"\"") {
      started = block = true;
      Prompt(true);
      continue;
    }
    started = true;
    if (block) {
      if (line == "\"\"\"") {
        if (!text->empty()) text->pop_back();  // the last line's break
        return done();
      }
      append(line);
      append("\n");
    } else {
      const bool continues = !line.empty() && line.back() == '\\';
      if (continues) line.back() = '\n';
      append(line);
      if (!continues) return done();
    }
    Prompt(true);
  }
}

}  // namespace strata::cli
