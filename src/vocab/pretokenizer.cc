#include "vocab/pretokenizer.h"

#include <utility>

#include "core/utf8.h"

namespace strata {

Status PreTokenizer::Create(const std::vector<std::string>& patterns, std::unique_ptr<PreTokenizer>* out) {
  std::unique_ptr<PreTokenizer> pre(new PreTokenizer());
  for (const std::string& pattern : patterns) {
    std::unique_ptr<Regex> regex;
    STRATA_RETURN_IF_ERROR(Regex::Compile(pattern, &regex));
    pre->regexes_.push_back(std::move(regex));
  }
  *out = std::move(pre);
  return Status::Ok();
}

void PreTokenizer::SplitBy(const Regex& regex, const std::vector<std::string_view>& in,
                           std::vector<std::string_view>* out) {
  Regex::MatchScratch scratch(regex);
  for (std::string_view piece : in) {
    size_t emitted = 0;  // end of the last piece emitted
    size_t search = 0;   // where the next search starts
    size_t begin = 0, end = 0;
    while (search < piece.size() && regex.Find(piece, search, &scratch, &begin, &end)) {
      if (begin == end) {
        // An empty match splits nothing: search again one character later.
        if (begin == piece.size()) break;
        search = begin + utf8::CharLength(piece.substr(begin));
        continue;
      }
      if (begin > emitted) out->push_back(piece.substr(emitted, begin - emitted));
      out->push_back(piece.substr(begin, end - begin));
      emitted = search = end;
    }
    if (emitted < piece.size()) out->push_back(piece.substr(emitted));
  }
}

void PreTokenizer::Split(std::string_view text, std::vector<std::string_view>* pieces) const {
  if (text.empty()) return;
  std::vector<std::string_view> current = {text};
  std::vector<std::string_view> next;
  for (const auto& regex : regexes_) {
    next.clear();
    SplitBy(*regex, current, &next);
    std::swap(current, next);
  }
  pieces->insert(pieces->end(), current.begin(), current.end());
}

}  // namespace strata
