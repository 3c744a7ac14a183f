#include "jinja/py_string.h"

#include <algorithm>

#include "core/utf8.h"
#include "jinja/py_unicode.h"

namespace strata::jinja::py {
namespace {

// Code point at s[*i] (valid UTF-8), advancing *i.
uint32_t Next(std::string_view s, size_t* i) {
  const auto b = static_cast<unsigned char>(s[*i]);
  if (b < 0x80) {
    ++*i;
    return b;
  }
  const int n = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
  uint32_t cp = b & (0x7F >> n);
  for (int k = 1; k < n && *i + k < s.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[*i + k]) & 0x3F);
  *i += n;
  return cp;
}

bool InSet(const std::u32string& set, uint32_t cp) { return set.find(static_cast<char32_t>(cp)) != std::u32string::npos; }

bool IsLineBreak(uint32_t cp) {
  return cp == '\n' || cp == '\r' || cp == 0x0B || cp == 0x0C || cp == 0x1C || cp == 0x1D || cp == 0x1E ||
         cp == 0x85 || cp == 0x2028 || cp == 0x2029;
}

template <class Map>
std::string MapEach(std::string_view s, Map map) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) map(Next(s, &i), &out);
  return Encode(out);
}

// Python's clamping of optional [start:end] bounds for find/count.
void ClampRange(int64_t n, std::optional<int64_t> start, std::optional<int64_t> end, int64_t* b, int64_t* e) {
  *b = start.value_or(0);
  *e = end.value_or(n);
  if (*b < 0) *b = std::max<int64_t>(0, *b + n);
  if (*e < 0) *e = std::max<int64_t>(0, *e + n);
  *e = std::min(*e, n);
}

}  // namespace

std::u32string Decode(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) out.push_back(static_cast<char32_t>(Next(s, &i)));
  return out;
}

std::string Encode(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) utf8::Append(static_cast<uint32_t>(c), &out);
  return out;
}

size_t Length(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

bool IsAscii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

std::string Strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right) {
  const std::u32string u = Decode(s);
  const std::u32string set = chars ? Decode(*chars) : std::u32string();
  auto strip = [&](char32_t c) { return chars ? InSet(set, c) : unicode::IsSpace(c); };
  size_t b = 0, e = u.size();
  if (left)
    while (b < e && strip(u[b])) ++b;
  if (right)
    while (e > b && strip(u[e - 1])) --e;
  return Encode(std::u32string_view(u).substr(b, e - b));
}

std::vector<std::string> Split(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit) {
  std::vector<std::string> out;
  if (sep) {
    size_t pos = 0;
    while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
      const size_t hit = s.find(*sep, pos);
      if (hit == std::string_view::npos) break;
      out.emplace_back(s.substr(pos, hit - pos));
      pos = hit + sep->size();
    }
    out.emplace_back(s.substr(pos));
    return out;
  }
  const std::u32string u = Decode(s);
  size_t i = 0;
  while (true) {
    while (i < u.size() && unicode::IsSpace(u[i])) ++i;
    if (i == u.size()) break;
    if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
      out.push_back(Encode(std::u32string_view(u).substr(i)));
      break;
    }
    size_t j = i;
    while (j < u.size() && !unicode::IsSpace(u[j])) ++j;
    out.push_back(Encode(std::u32string_view(u).substr(i, j - i)));
    i = j;
  }
  return out;
}

std::vector<std::string> RSplit(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit) {
  std::vector<std::string> out;
  if (sep) {
    size_t end = s.size();
    while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
      if (end < sep->size()) break;
      const size_t hit = s.rfind(*sep, end - sep->size());
      if (hit == std::string_view::npos) break;
      out.emplace_back(s.substr(hit + sep->size(), end - hit - sep->size()));
      end = hit;
    }
    out.emplace_back(s.substr(0, end));
    std::reverse(out.begin(), out.end());
    return out;
  }
  const std::u32string u = Decode(s);
  size_t e = u.size();
  while (true) {
    while (e > 0 && unicode::IsSpace(u[e - 1])) --e;
    if (e == 0) break;
    if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
      out.push_back(Encode(std::u32string_view(u).substr(0, e)));
      break;
    }
    size_t b = e;
    while (b > 0 && !unicode::IsSpace(u[b - 1])) --b;
    out.push_back(Encode(std::u32string_view(u).substr(b, e - b)));
    e = b;
  }
  std::reverse(out.begin(), out.end());
  return out;
}

std::vector<std::string> SplitLines(std::string_view s, bool keepends) {
  const std::u32string u = Decode(s);
  std::vector<std::string> out;
  size_t begin = 0;
  for (size_t i = 0; i < u.size();) {
    if (!IsLineBreak(u[i])) {
      ++i;
      continue;
    }
    size_t end = i + (u[i] == '\r' && i + 1 < u.size() && u[i + 1] == '\n' ? 2 : 1);
    out.push_back(Encode(std::u32string_view(u).substr(begin, (keepends ? end : i) - begin)));
    begin = i = end;
  }
  if (begin < u.size()) out.push_back(Encode(std::u32string_view(u).substr(begin)));
  return out;
}

std::string Upper(std::string_view s) { return MapEach(s, unicode::AppendUpper); }
std::string Lower(std::string_view s) { return MapEach(s, unicode::AppendLower); }

std::string SwapCase(std::string_view s) {
  return MapEach(s, [](uint32_t cp, std::u32string* out) {
    std::u32string up, low;
    unicode::AppendUpper(cp, &up);
    unicode::AppendLower(cp, &low);
    if (up.size() != 1 || up[0] != cp) {
      out->append(up);
    } else {
      out->append(low);
    }
  });
}

std::string Title(std::string_view s) {
  bool previous_cased = false;
  return MapEach(s, [&previous_cased](uint32_t cp, std::u32string* out) {
    if (previous_cased) {
      unicode::AppendLower(cp, out);
    } else {
      unicode::AppendTitle(cp, out);
    }
    previous_cased = unicode::IsCased(cp);
  });
}

std::string Capitalize(std::string_view s) {
  bool first = true;
  return MapEach(s, [&first](uint32_t cp, std::u32string* out) {
    if (first) {
      unicode::AppendTitle(cp, out);
    } else {
      unicode::AppendLower(cp, out);
    }
    first = false;
  });
}

std::string Replace(std::string_view s, std::string_view old, std::string_view replacement, int64_t count) {
  std::string out;
  if (old.empty()) {
    int64_t done = 0;
    size_t i = 0;
    while (true) {
      if (count >= 0 && done == count) break;
      out.append(replacement);
      ++done;
      if (i == s.size()) break;
      const size_t start = i;
      Next(s, &i);
      out.append(s.substr(start, i - start));
    }
    out.append(s.substr(i));
    return out;
  }
  size_t pos = 0;
  for (int64_t done = 0; count < 0 || done < count; ++done) {
    const size_t hit = s.find(old, pos);
    if (hit == std::string_view::npos) break;
    out.append(s.substr(pos, hit - pos));
    out.append(replacement);
    pos = hit + old.size();
  }
  out.append(s.substr(pos));
  return out;
}

int64_t Find(std::string_view s, std::string_view sub, std::optional<int64_t> start, std::optional<int64_t> end,
             bool reverse) {
  const std::u32string u = Decode(s), needle = Decode(sub);
  int64_t b = 0, e = 0;
  ClampRange(static_cast<int64_t>(u.size()), start, end, &b, &e);
  if (e - b < static_cast<int64_t>(needle.size())) return -1;
  const std::u32string_view window = std::u32string_view(u).substr(b, e - b);
  const size_t hit = reverse ? window.rfind(needle) : window.find(needle);
  return hit == std::u32string_view::npos ? -1 : b + static_cast<int64_t>(hit);
}

int64_t Count(std::string_view s, std::string_view sub, std::optional<int64_t> start, std::optional<int64_t> end) {
  const std::u32string u = Decode(s), needle = Decode(sub);
  int64_t b = 0, e = 0;
  ClampRange(static_cast<int64_t>(u.size()), start, end, &b, &e);
  if (e < b) return 0;
  if (needle.empty()) return e - b + 1;
  const std::u32string_view window = std::u32string_view(u).substr(b, e - b);
  int64_t n = 0;
  for (size_t pos = window.find(needle); pos != std::u32string_view::npos; pos = window.find(needle, pos))
    ++n, pos += needle.size();
  return n;
}

std::string Pad(std::string_view s, int64_t width, std::string_view fill, int align) {
  const int64_t len = static_cast<int64_t>(Length(s));
  if (width <= len) return std::string(s);
  const int64_t total = width - len;
  // str.center puts the odd extra fill on the left when total and width
  // are both odd (CPython's pad(): left = marg / 2 + (marg & width & 1)).
  const int64_t left = align < 0 ? 0 : align > 0 ? total : total / 2 + (total & width & 1);
  std::string out;
  for (int64_t i = 0; i < left; ++i) out.append(fill);
  out.append(s);
  for (int64_t i = left; i < total; ++i) out.append(fill);
  return out;
}

std::string Repr(std::string_view s) {
  const bool has_single = s.find('\'') != std::string_view::npos;
  const bool has_double = s.find('"') != std::string_view::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  static constexpr char kHex[] = "0123456789abcdef";
  for (size_t i = 0; i < s.size();) {
    const size_t start = i;
    const uint32_t cp = Next(s, &i);
    if (cp == static_cast<uint32_t>(quote) || cp == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(cp));
    } else if (cp == '\t') {
      out.append("\\t");
    } else if (cp == '\n') {
      out.append("\\n");
    } else if (cp == '\r') {
      out.append("\\r");
    } else if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && !unicode::IsPrintable(cp))) {
      const int digits = cp < 0x100 ? 2 : cp < 0x10000 ? 4 : 8;
      out.append(digits == 2 ? "\\x" : digits == 4 ? "\\u" : "\\U");
      for (int k = digits - 1; k >= 0; --k) out.push_back(kHex[(cp >> (4 * k)) & 0xF]);
    } else {
      out.append(s.substr(start, i - start));
    }
  }
  out.push_back(quote);
  return out;
}

std::string HtmlEscape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out.append("&amp;"); break;
      case '<': out.append("&lt;"); break;
      case '>': out.append("&gt;"); break;
      case '\'': out.append("&#39;"); break;
      case '"': out.append("&#34;"); break;
      default: out.push_back(c);
    }
  }
  return out;
}

void AdjustSlice(int64_t n, std::optional<int64_t> start, std::optional<int64_t> stop, int64_t step, int64_t* begin,
                 int64_t* end) {
  auto adjust = [&](std::optional<int64_t> v, int64_t fallback) {
    if (!v) return fallback;
    int64_t i = *v;
    if (i < 0) {
      i += n;
      if (i < 0) i = step < 0 ? -1 : 0;
    } else if (i >= n) {
      i = step < 0 ? n - 1 : n;
    }
    return i;
  };
  *begin = adjust(start, step < 0 ? n - 1 : 0);
  *end = adjust(stop, step < 0 ? -1 : n);
}

void SliceIndices(int64_t n, std::optional<int64_t> start, std::optional<int64_t> stop, int64_t step,
                  std::vector<int64_t>* out) {
  int64_t b = 0, e = 0;
  AdjustSlice(n, start, stop, step, &b, &e);
  if (step > 0) {
    for (int64_t i = b; i < e; i += step) out->push_back(i);
  } else {
    for (int64_t i = b; i > e; i += step) out->push_back(i);
  }
}

}  // namespace strata::jinja::py
