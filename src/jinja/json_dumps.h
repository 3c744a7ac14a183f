// Python's json.dumps over template values, as transformers' `tojson` filter
// calls it: json.dumps(x, ensure_ascii=False, indent=None, separators=None,
// sort_keys=False) unless the template passes other arguments. Dicts keep
// insertion order, non-ASCII is written as is, and the separators default to
// ", " / ": " (or "," / ": " with an indent), exactly as Python writes them.
//
// Thread-safety: pure function.
#pragma once

#include <optional>
#include <string>

#include "core/status.h"
#include "jinja/value.h"

namespace strata::jinja {

struct JsonDumpsOptions {
  bool ensure_ascii = false;
  std::optional<std::string> indent;  // nullopt: one line; else the unit of indentation
  std::optional<std::string> item_separator, key_separator;  // nullopt: Python's defaults
  bool sort_keys = false;
};

// Appends the JSON text of v to *out. kInvalidArgument (Python's TypeError)
// for values JSON cannot hold (Undefined, generators, namespaces, ...);
// kResourceExhausted beyond depth levels of nesting.
[[nodiscard]] Status JsonDumps(const Value& v, const JsonDumpsOptions& options, int depth, std::string* out);

}  // namespace strata::jinja
