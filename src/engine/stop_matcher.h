// StopMatcher: ends generation at the first occurrence of any stop string and
// never emits text that might turn out to be the start of one. Text arrives
// in pieces (one token's worth of complete UTF-8 at a time).
//
// Thread-safety: not thread-safe; one per request.
#pragma once

#include <string>
#include <vector>

namespace strata {

class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops);

  // Appends piece; moves the text that is certainly not part of a stop string
  // to *out. Returns true if a stop string is now complete: *out then holds
  // everything before it, and nothing more will be emitted.
  bool Push(const std::string& piece, std::string* out);
  // The held-back tail (when generation ends for another reason).
  std::string Flush();

 private:
  std::vector<std::string> stops_;  // non-empty strings only
  std::string held_;
  bool stopped_ = false;
};

}  // namespace strata
