#include "server/access_log.h"

#include <fmt/format.h>

namespace strata::server {
namespace {

// Printable ASCII as itself, the rest (and the characters that would end a field) as %XX.
std::string Escaped(std::string_view s, std::string_view also) {
  std::string out;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x21 || u > 0x7e || c == '%' || c == '\\' || also.find(c) != std::string_view::npos) {
      out += fmt::format("%{:02X}", u);
    } else {
      out += c;
    }
  }
  return out.empty() ? "-" : out;
}

}  // namespace

bool ParseLogFormat(std::string_view name, LogFormat* out) {
  if (name == "text") {
    *out = LogFormat::kText;
  } else if (name == "json") {
    *out = LogFormat::kJson;
  } else {
    return false;
  }
  return true;
}

std::string AccessLine(const AccessRecord& r, LogFormat format) {
  if (format == LogFormat::kJson) {
    return fmt::format(R"({{"method":"{}","path":"{}","status":{},"prompt_tokens":{},"completion_tokens":{},"ms":{:.1f}}})",
                       Escaped(r.method, "\""), Escaped(r.path, "\""), r.status, r.prompt_tokens, r.completion_tokens,
                       r.ms);
  }
  return fmt::format("{} {} {} prompt_tokens={} completion_tokens={} ms={:.1f}", Escaped(r.method, "\""),
                     Escaped(r.path, "\""), r.status, r.prompt_tokens, r.completion_tokens, r.ms);
}

}  // namespace strata::server
