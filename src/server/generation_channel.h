// GenerationChannel: hands one request's GenerationEvents from the engine's
// step thread to the HTTP thread serving the request, stamped with their
// arrival time (for latency metrics). The engine side never blocks beyond a
// short mutex; once the HTTP side abandons the channel (client gone), Push
// returns false, which tells the engine to cancel the request.
//
// Thread-safety: Push from one producer thread; Wait/Abandon from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <vector>

#include "engine/engine.h"

namespace strata::server {

struct TimedEvent {
  GenerationEvent event;
  std::chrono::steady_clock::time_point at;
};

class GenerationChannel {
 public:
  // Engine side (an EventSink): queues e. Returns false once abandoned.
  bool Push(const GenerationEvent& e);
  // Waits up to timeout for events and moves all queued ones to *out (cleared
  // first). Returns false if none arrived in time.
  bool Wait(std::chrono::milliseconds timeout, std::vector<TimedEvent>* out);
  // The consumer is gone: drop queued events, refuse later ones.
  void Abandon();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<TimedEvent> queue_;
  bool abandoned_ = false;
};

}  // namespace strata::server
