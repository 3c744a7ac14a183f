#include "engine/output_processor.h"

#include <memory>

namespace strata {

OutputProcessor::OutputProcessor(const Vocab& vocab, int32_t last_prompt_token, OutputParams params, EventSink sink)
    : vocab_(vocab),
      prev_(last_prompt_token),
      decoder_(vocab),
      stop_(std::move(params.stop)),
      min_tokens_(params.min_tokens),
      sink_(std::move(sink)) {}

bool OutputProcessor::Consume(const TokenEvent& e) {
  for (const TokenLogprob& lp : e.prompt_logprobs) {
    out_.prompt_logprobs.push_back(lp);
    out_.prompt_logprobs.back().text = vocab_.TokenToPiece(lp.id);
  }
  for (size_t i = 0; i < e.tokens.size() && !stopped_; ++i) {
    const int32_t t = e.tokens[i];
    if (i < e.logprobs.size()) {
      held_logprobs_.push_back(e.logprobs[i]);
      held_logprobs_.back().text = vocab_.TokenToPiece(t);
    }
    const size_t before = out_.text.size();
    const std::string piece = decoder_.Push(t, prev_);
    prev_ = t;
    if (++n_tokens_ <= min_tokens_) {
      out_.text += piece;
    } else {
      stopped_ = stop_.Push(piece, &out_.text);
    }
    if (out_.text.size() > before || stopped_) {
      out_.logprobs.insert(out_.logprobs.end(), held_logprobs_.begin(), held_logprobs_.end());
      held_logprobs_.clear();
    }
  }
  return stopped_;
}

SinkReply OutputProcessor::OnTokens(const TokenEvent& e) {
  const bool stopped_before = stopped_;
  const bool hit = Consume(e) && !stopped_before;
  out_.prompt_tokens = e.prompt_tokens;
  out_.completion_tokens = e.completion_tokens;
  if (e.finished) {
    out_.finished = true;
    // A stop string completed by the last token ends the request as a stop, not at its length.
    out_.reason = hit && e.reason == FinishReason::kLength ? FinishReason::kStop : e.reason;
    out_.error = e.error;
    out_.cached_tokens = e.cached_tokens;
    out_.retained = e.retained;
    if ((out_.reason == FinishReason::kLength || out_.reason == FinishReason::kStop) && !stopped_) {
      out_.text += stop_.Flush() + decoder_.Flush();
      out_.logprobs.insert(out_.logprobs.end(), held_logprobs_.begin(), held_logprobs_.end());
      held_logprobs_.clear();
    }
    sink_(out_);
    out_ = GenerationEvent{};
    return SinkReply::kContinue;
  }
  if (hit) return SinkReply::kStop;  // the final event that follows carries out_
  if (out_.text.empty() && out_.logprobs.empty() && out_.prompt_logprobs.empty()) return SinkReply::kContinue;
  const bool keep = sink_(out_);
  out_ = GenerationEvent{};
  return keep ? SinkReply::kContinue : SinkReply::kCancel;
}

TokenSink TextSink(const Vocab& vocab, int32_t last_prompt_token, OutputParams params, EventSink sink) {
  auto processor = std::make_shared<OutputProcessor>(vocab, last_prompt_token, std::move(params), std::move(sink));
  return [processor](const TokenEvent& e) { return processor->OnTokens(e); };
}

}  // namespace strata
