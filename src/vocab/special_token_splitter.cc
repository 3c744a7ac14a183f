#include "vocab/special_token_splitter.h"

#include <algorithm>
#include <utility>

namespace strata {

namespace {

// C-locale isspace, as llama.cpp strips with.
bool IsAsciiSpace(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

}  // namespace

SpecialTokenSplitter::SpecialTokenSplitter(std::vector<Entry> entries) : entries_(std::move(entries)) {
  std::stable_sort(entries_.begin(), entries_.end(),
                   [](const Entry& a, const Entry& b) { return a.text.size() > b.text.size(); });
}

void SpecialTokenSplitter::SplitFragment(std::string_view in, const Entry& e, std::vector<Fragment>* out) {
  size_t pos = 0;
  while (pos < in.size()) {
    const size_t match = in.find(e.text, pos);
    if (match == std::string_view::npos) break;
    size_t left_end = match;
    if (e.lstrip) {
      while (left_end > pos && IsAsciiSpace(in[left_end - 1])) --left_end;
    }
    if (left_end > pos) out->push_back({-1, in.substr(pos, left_end - pos)});
    out->push_back({e.id, {}});
    pos = match + e.text.size();
    if (e.rstrip) {
      while (pos < in.size() && IsAsciiSpace(in[pos])) ++pos;
    }
  }
  if (pos < in.size()) out->push_back({-1, in.substr(pos)});
}

void SpecialTokenSplitter::Split(std::string_view text, bool parse_special, std::vector<Fragment>* out) const {
  out->clear();
  if (text.empty()) return;
  out->push_back({-1, text});
  std::vector<Fragment> next;
  for (const Entry& e : entries_) {
    if (!e.always && !parse_special) continue;
    // Fragments are substrings of text: a token absent from text splits nothing.
    if (text.find(e.text) == std::string_view::npos) continue;
    next.clear();
    for (const Fragment& f : *out) {
      if (f.token >= 0) {
        next.push_back(f);
      } else {
        SplitFragment(f.text, e, &next);
      }
    }
    std::swap(*out, next);
  }
}

}  // namespace strata
