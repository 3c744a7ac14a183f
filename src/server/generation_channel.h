// GenerationChannel: hands one request's GenerationEvents from the engine's
// step thread to the connection that answers the request, stamped with their
// arrival time (for latency metrics). The engine side never blocks beyond a
// short mutex: when the queue goes from empty to non-empty it calls the
// notifier (which only posts work to the connection's thread). Once the
// consumer abandons the channel (client gone, response over), Push returns
// false, which tells the engine to cancel the request, and the notifier is
// never called again.
//
// Thread-safety: Push from one producer thread; the rest from any thread.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <mutex>
#include <vector>

#include "engine/output_processor.h"

namespace strata::server {

struct TimedEvent {
  GenerationEvent event;
  std::chrono::steady_clock::time_point at;
};

class GenerationChannel {
 public:
  // Called (under the channel's lock: it must not call back into the
  // channel) each time events arrive in an empty queue.
  void SetNotifier(std::function<void()> notifier);
  // Engine side (an EventSink): queues e. Returns false once abandoned.
  bool Push(const GenerationEvent& e);
  // Moves all queued events to *out (cleared first), without waiting.
  void Take(std::vector<TimedEvent>* out);
  // The consumer is gone: drop queued events, refuse later ones, forget the notifier.
  void Abandon();

 private:
  std::mutex mu_;
  std::deque<TimedEvent> queue_;
  std::function<void()> notifier_;
  bool abandoned_ = false;
};

}  // namespace strata::server
