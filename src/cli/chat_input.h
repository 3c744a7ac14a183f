// ChatInput: the messages typed to `strata chat`, one at a time, from a
// terminal or a pipe (scripted use). A line is a message, except:
//   - a line ending in a backslash continues on the next line (the
//     backslash becomes a line break);
//   - a line holding only """ opens a block that runs to the next such line
//     (pasted text, taken as it is).
// Prompts ("> ", "... " inside a message) go to stderr when the input is a
// terminal. A trailing carriage return is dropped from each line.
//
// Thread-safety: one thread.
#pragma once

#include <cstdint>
#include <string>

namespace strata::cli {

class ChatInput {
 public:
  enum class Event {
    kMessage,    // *text holds the message
    kInterrupt,  // Ctrl-C (cli/interrupt.h): the message being typed is dropped
    kTooLong,    // the message passed kMaxMessageBytes and was dropped
    kEnd,        // end of input (a last line without a newline came as a message first)
  };

  // The longest message kept: more text than the largest context holds.
  static constexpr size_t kMaxMessageBytes = size_t{16} << 20;

  // fd: where messages come from (standard input); prompts are shown if it is a terminal.
  explicit ChatInput(int fd);

  bool interactive() const { return interactive_; }
  // Waits for the next message, a Ctrl-C or the end of input.
  // REQUIRES: InstallInterruptHandler() succeeded.
  Event Next(std::string* text);

 private:
  enum class Line { kLine, kInterrupt, kEnd };
  // The next line without its "\n" or "\r\n" (the last one may have none).
  // A line longer than kMaxMessageBytes sets *too_long and loses its bytes so far.
  Line ReadLine(std::string* line, bool* too_long);
  // Reads more bytes into buffer_; false at the end of input, an error or a
  // Ctrl-C (*interrupted set).
  bool Fill(bool* interrupted);
  void Prompt(bool continuation) const;

  int fd_;
  bool interactive_;
  bool eof_ = false;
  std::string buffer_;  // bytes read; those from taken_ on are not yet taken
  size_t taken_ = 0;
};

}  // namespace strata::cli
