// OutputProcessor: token events in, text events out — detokenization, stop
// strings (and the kStop it answers), logprobs following their text.
#include "engine/output_processor.h"

#include <gtest/gtest.h>

#include "model/model.h"
#include "test_util.h"

namespace strata {
namespace {

class OutputProcessorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ModelLoadOptions o;
    o.path = testing::SharedPath("models/stories260K.gguf");
    ASSERT_TRUE(Model::Load(Env::Default(), o, &model_).ok());
  }
  const Vocab& vocab() const { return model_->vocab(); }
  // One token per event, with a logprob each (its id as the value, to tell them apart).
  TokenEvent Token(int32_t id, int32_t n) const {
    TokenEvent e;
    e.tokens = {id};
    e.logprobs.push_back(TokenLogprob{id, "", static_cast<float>(-n), {}});
    e.completion_tokens = n;
    return e;
  }
  std::unique_ptr<Model> model_;
  std::vector<GenerationEvent> events_;
  EventSink Collect(bool keep = true) {
    return [this, keep](const GenerationEvent& e) {
      events_.push_back(e);
      return keep;
    };
  }
};

TEST_F(OutputProcessorTest, TextIsTheDecodingAndFinalEventFlushes) {
  const std::vector<int32_t> ids = vocab().Encode("Once upon a time there was a girl", false, false);
  ASSERT_GT(ids.size(), 4u);
  OutputProcessor p(vocab(), vocab().bos(), {}, Collect());
  std::string text;
  size_t logprobs = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    TokenEvent e = Token(ids[i], static_cast<int32_t>(i + 1));
    e.finished = i + 1 == ids.size();
    e.reason = e.finished ? FinishReason::kLength : FinishReason::kNone;
    EXPECT_EQ(p.OnTokens(e), SinkReply::kContinue);
  }
  for (const GenerationEvent& e : events_) {
    text += e.text;
    logprobs += e.logprobs.size();
    for (const TokenLogprob& lp : e.logprobs) EXPECT_EQ(lp.text, vocab().TokenToPiece(lp.id));
  }
  EXPECT_EQ(text, "Once upon a time there was a girl");  // the space after BOS stripped
  EXPECT_EQ(logprobs, ids.size());
  ASSERT_FALSE(events_.empty());
  EXPECT_TRUE(events_.back().finished);
  EXPECT_EQ(events_.back().reason, FinishReason::kLength);
  EXPECT_EQ(events_.back().completion_tokens, static_cast<int32_t>(ids.size()));
}

// Text that may begin a stop string is held with its tokens' logprobs; the
// token completing the stop string is answered kStop, and the final event
// that follows carries the text before it, every logprob up to that token
// and nothing after.
TEST_F(OutputProcessorTest, StopStringAsksTheEngineToStop) {
  const std::vector<int32_t> ids = vocab().Encode("Once upon a time there was a girl", false, false);
  OutputProcessor p(vocab(), vocab().bos(), OutputParams{{"there was"}}, Collect());
  size_t i = 0;
  SinkReply reply = SinkReply::kContinue;
  for (; i < ids.size() && reply == SinkReply::kContinue; ++i) reply = p.OnTokens(Token(ids[i], static_cast<int32_t>(i + 1)));
  ASSERT_EQ(reply, SinkReply::kStop);
  const size_t used = i;  // tokens consumed, the last completing "there was"
  std::string before;
  for (const GenerationEvent& e : events_) before += e.text;
  EXPECT_EQ(before.find("there"), std::string::npos) << before;  // held back while it may begin the stop string
  TokenEvent end;
  end.finished = true;
  end.reason = FinishReason::kStop;
  end.completion_tokens = static_cast<int32_t>(used);
  p.OnTokens(end);
  std::string text;
  std::vector<int32_t> logprob_ids;
  for (const GenerationEvent& e : events_) {
    text += e.text;
    for (const TokenLogprob& lp : e.logprobs) logprob_ids.push_back(lp.id);
  }
  EXPECT_EQ(text, "Once upon a time ");
  EXPECT_EQ(logprob_ids, std::vector<int32_t>(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(used)));
  EXPECT_TRUE(events_.back().finished);
  EXPECT_EQ(events_.back().reason, FinishReason::kStop);
}

TEST_F(OutputProcessorTest, StopOnTheFinalEventIsAStop) {
  const std::vector<int32_t> ids = vocab().Encode("Once upon a time", false, false);
  OutputProcessor p(vocab(), vocab().bos(), OutputParams{{"time"}}, Collect());
  for (size_t i = 0; i + 1 < ids.size(); ++i) EXPECT_EQ(p.OnTokens(Token(ids[i], 1)), SinkReply::kContinue);
  TokenEvent last = Token(ids.back(), static_cast<int32_t>(ids.size()));
  last.finished = true;
  last.reason = FinishReason::kLength;
  p.OnTokens(last);
  std::string text;
  for (const GenerationEvent& e : events_) text += e.text;
  EXPECT_EQ(text, "Once upon a ");
  EXPECT_EQ(events_.back().reason, FinishReason::kStop);
}

TEST_F(OutputProcessorTest, SinkRefusingCancels) {
  const std::vector<int32_t> ids = vocab().Encode("Once upon", false, false);
  OutputProcessor p(vocab(), vocab().bos(), {}, Collect(/*keep=*/false));
  EXPECT_EQ(p.OnTokens(Token(ids[0], 1)), SinkReply::kCancel);
}

// Bytes of one character split over tokens come out whole, once complete;
// an incomplete one at the end is flushed as U+FFFD.
TEST_F(OutputProcessorTest, SplitCharacterComesOutWhole) {
  // "€" = E2 82 AC, as the vocabulary's byte tokens.
  std::vector<int32_t> euro;
  for (const char* byte : {"<0xE2>", "<0x82>", "<0xAC>"})
    for (int32_t id = 0; id < vocab().n_tokens(); ++id)
      if (vocab().token_text(id) == byte) euro.push_back(id);
  ASSERT_EQ(euro.size(), 3u);
  OutputProcessor p(vocab(), -1, {}, Collect());
  for (int32_t id : euro) {
    EXPECT_TRUE(events_.empty());  // nothing to send before the character is whole
    p.OnTokens(Token(id, 1));
  }
  ASSERT_EQ(events_.size(), 1u);
  EXPECT_EQ(events_[0].text, "€");
  EXPECT_EQ(events_[0].logprobs.size(), 3u);  // the three tokens behind it
  events_.clear();
  OutputProcessor q(vocab(), -1, {}, Collect());
  q.OnTokens(Token(euro[0], 1));
  TokenEvent end;
  end.finished = true;
  end.reason = FinishReason::kLength;
  q.OnTokens(end);
  ASSERT_FALSE(events_.empty());
  EXPECT_EQ(events_.back().text, "\xEF\xBF\xBD");
}

}  // namespace
}  // namespace strata
