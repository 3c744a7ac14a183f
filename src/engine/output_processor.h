// OutputProcessor: turns one request's token events from the engine
// (engine/engine.h: TokenEvent, ids only) into text events — as vLLM's
// OutputProcessor does for its EngineCore. Per request it detokenizes
// (vocab's StreamDecoder: only complete UTF-8 leaves it), holds back text
// that might begin a stop string (StopMatcher) together with the logprobs of
// the tokens behind that text, and, when a stop string completes, asks the
// engine to end the request (SinkReply::kStop): the engine frees its KV and
// counts it, then sends the final event, which carries the text before the
// stop string. The grammar is not here: it must act when the token is drawn
// (engine/sampler.h).
//
// It runs inside the engine's sink, on the step thread (TextSink), so a stop
// string ends generation at the very token that completes it.
//
// Thread-safety: not thread-safe; one per request, called by one thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "engine/stop_matcher.h"
#include "vocab/vocab.h"

namespace strata {

struct OutputParams {
  std::vector<std::string> stop;  // generation ends before any of these strings
  // Stop strings are looked for only in the text of the tokens after the
  // first min_tokens (as vLLM's min_tokens; GenerationRequest::min_tokens
  // holds back end-of-generation tokens likewise).
  int32_t min_tokens = 0;
};

// One request's progress as text.
struct GenerationEvent {
  std::string text;                     // new, complete UTF-8 text since the previous event
  std::vector<TokenLogprob> logprobs;   // one per token behind `text` (when requested), text filled in
  // prompt_logprobs requests, in the first event only: [prompt.size() - 1]
  // logprobs of prompt tokens 1.. in order, text filled in.
  std::vector<TokenLogprob> prompt_logprobs;
  bool finished = false;
  FinishReason reason = FinishReason::kNone;
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;
  int32_t cached_tokens = 0;            // final event: as TokenEvent's
  Status error;                         // set when reason == kError
  std::shared_ptr<RetainedSequence> retained;  // final event: as TokenEvent's (sessions)
};

// Returns false to cancel the request (e.g. the client disconnected).
using EventSink = std::function<bool(const GenerationEvent&)>;

class OutputProcessor {
 public:
  // REQUIRES: vocab outlives the processor. last_prompt_token: the token the
  // completion follows (detokenization strips a leading space after BOS; -1: none).
  OutputProcessor(const Vocab& vocab, int32_t last_prompt_token, OutputParams params, EventSink sink);

  // The engine's sink: passes what e adds to the sink as text (an event only
  // when there is something to send, and always the final one).
  SinkReply OnTokens(const TokenEvent& e);

 private:
  // Moves the text and logprobs of e's tokens into out_ (held logprobs
  // follow their text). Returns true if a stop string completed.
  bool Consume(const TokenEvent& e);

  const Vocab& vocab_;
  int32_t prev_;  // the token before the next one to decode
  StreamDecoder decoder_;
  StopMatcher stop_;
  int32_t min_tokens_;
  int32_t n_tokens_ = 0;  // tokens decoded so far
  EventSink sink_;
  GenerationEvent out_;                     // what goes out with the next event
  std::vector<TokenLogprob> held_logprobs_;  // tokens whose text the stop matcher still holds
  bool stopped_ = false;                     // a stop string completed: the rest is dropped
};

// An engine sink that runs a new OutputProcessor feeding sink:
// engine.Submit(request, TextSink(vocab, request.prompt.back(), params, sink), &id).
TokenSink TextSink(const Vocab& vocab, int32_t last_prompt_token, OutputParams params, EventSink sink);

}  // namespace strata
