#define PCRE2_CODE_UNIT_WIDTH 8
#include "vocab/regex.h"

#include <pcre2.h>

#include <string>

namespace strata {

Regex::MatchScratch::MatchScratch(const Regex& regex)
    : data_(pcre2_match_data_create_from_pattern(regex.code_, nullptr)) {}

Regex::MatchScratch::~MatchScratch() { pcre2_match_data_free(data_); }

Status Regex::Compile(std::string_view pattern, std::unique_ptr<Regex>* out) {
  int error = 0;
  PCRE2_SIZE error_offset = 0;
  constexpr uint32_t kOptions = PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY | PCRE2_MATCH_INVALID_UTF;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), kOptions,
                                   &error, &error_offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof message);
    return Status::InvalidArgument("regex '" + std::string(pattern) + "' does not compile at offset " +
                                   std::to_string(error_offset) + ": " + reinterpret_cast<const char*>(message));
  }
  // JIT is an optimisation: where it is unavailable pcre2_match interprets.
  (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  out->reset(new Regex(code));
  return Status::Ok();
}

Regex::~Regex() { pcre2_code_free(code_); }

bool Regex::Find(std::string_view subject, size_t start, MatchScratch* scratch, size_t* begin, size_t* end) const {
  const int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(subject.data()), subject.size(), start, 0,
                             scratch->data_, nullptr);
  if (rc < 0) return false;
  const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(scratch->data_);
  // \K inside a lookahead can produce begin > end; no pattern here uses it,
  // but an inverted range must never reach the caller.
  if (ovector[0] > ovector[1] || ovector[1] > subject.size()) return false;
  *begin = ovector[0];
  *end = ovector[1];
  return true;
}

}  // namespace strata
