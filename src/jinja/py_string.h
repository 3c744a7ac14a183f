// Python's str operations over UTF-8 strings, indexed by code point as Python
// indexes them. Every string the interpreter holds is valid UTF-8 (template
// sources are validated, JSON inputs are valid, and these functions preserve
// validity), so decoding never fails.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace strata::jinja::py {

// UTF-8 <-> code points. REQUIRES: s is valid UTF-8 (Decode; core/utf8.h's
// IsValid is Python's strict decoder).
std::u32string Decode(std::string_view s);
std::string Encode(std::u32string_view s);
// Code points in s (len(s)).
size_t Length(std::string_view s);
bool IsAscii(std::string_view s);

// str.strip / lstrip / rstrip: chars as a set of code points, or (nullopt)
// whitespace as str.isspace() defines it.
std::string Strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right);

// str.split / rsplit: sep nullopt splits on whitespace runs; maxsplit < 0 is
// unlimited. REQUIRES: sep, if given, is not empty.
std::vector<std::string> Split(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit);
std::vector<std::string> RSplit(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit);
// str.splitlines: \n \r \r\n \v \f \x1c \x1d \x1e \x85 U+2028 U+2029 end lines.
std::vector<std::string> SplitLines(std::string_view s, bool keepends);

std::string Upper(std::string_view s);
std::string Lower(std::string_view s);
std::string Title(std::string_view s);       // str.title()
std::string Capitalize(std::string_view s);  // str.capitalize()
std::string SwapCase(std::string_view s);

// str.replace; count < 0 replaces all. An empty old inserts new around every
// code point, as Python does.
std::string Replace(std::string_view s, std::string_view old, std::string_view replacement, int64_t count);
// str.find / rfind / count over s[start:end] (code point indices, Python's
// slice clamping); find returns a code point index or -1.
int64_t Find(std::string_view s, std::string_view sub, std::optional<int64_t> start, std::optional<int64_t> end,
             bool reverse);
int64_t Count(std::string_view s, std::string_view sub, std::optional<int64_t> start, std::optional<int64_t> end);
// str.center / ljust / rjust with a one-code-point fill.
std::string Pad(std::string_view s, int64_t width, std::string_view fill, int align /* <0 left, 0 center, >0 right */);

// repr(s): quoted with ' (or " if s holds ' and no "), escaping \\, the
// quote, \t \n \r and non-printable code points as \xNN, \uNNNN, \UNNNNNNNN.
std::string Repr(std::string_view s);
// markupsafe.escape: & < > ' " as &amp; &lt; &gt; &#39; &#34;.
std::string HtmlEscape(std::string_view s);

// Python's slice semantics on a sequence of length n: *begin / *end are
// slice(start, stop, step).indices(n)[:2] (CPython's PySlice_AdjustIndices),
// and SliceIndices fills the indices of s[start:stop:step] into *out.
// REQUIRES: step != 0.
void AdjustSlice(int64_t n, std::optional<int64_t> start, std::optional<int64_t> stop, int64_t step, int64_t* begin,
                 int64_t* end);
void SliceIndices(int64_t n, std::optional<int64_t> start, std::optional<int64_t> stop, int64_t step,
                  std::vector<int64_t>* out);

}  // namespace strata::jinja::py
