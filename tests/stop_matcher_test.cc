#include "engine/stop_matcher.h"

#include <gtest/gtest.h>

namespace strata {
namespace {

std::string Feed(StopMatcher& m, const std::vector<std::string>& pieces, bool* hit) {
  std::string out;
  *hit = false;
  for (const std::string& p : pieces)
    if (m.Push(p, &out)) {
      *hit = true;
      break;
    }
  if (!*hit) out += m.Flush();
  return out;
}

TEST(StopMatcherTest, StopsAcrossPieces) {
  StopMatcher m({"\n\n", "The end"});
  bool hit = false;
  EXPECT_EQ(Feed(m, {"Once", " upon", " a time.", " The", " e", "nd", " more"}, &hit), "Once upon a time. ");
  EXPECT_TRUE(hit);
}

TEST(StopMatcherTest, HoldsBackOnlyPossiblePrefixes) {
  StopMatcher m({"STOP"});
  std::string out;
  EXPECT_FALSE(m.Push("abcS", &out));
  EXPECT_EQ(out, "abc");
  EXPECT_FALSE(m.Push("Tx", &out));
  EXPECT_EQ(out, "abcSTx");
  EXPECT_EQ(m.Flush(), "");
}

TEST(StopMatcherTest, NoStopsPassesEverything) {
  StopMatcher m({""});
  bool hit = false;
  EXPECT_EQ(Feed(m, {"a", "b\n", "c"}, &hit), "ab\nc");
  EXPECT_FALSE(hit);
}

TEST(StopMatcherTest, FlushReturnsHeldTail) {
  StopMatcher m({"xyz"});
  std::string out;
  EXPECT_FALSE(m.Push("abx", &out));
  EXPECT_EQ(out, "ab");
  EXPECT_EQ(m.Flush(), "x");
}

TEST(StopMatcherTest, EarliestStopWins) {
  StopMatcher m({"cd", "b"});
  bool hit = false;
  EXPECT_EQ(Feed(m, {"abcd"}, &hit), "a");
  EXPECT_TRUE(hit);
}

}  // namespace
}  // namespace strata
