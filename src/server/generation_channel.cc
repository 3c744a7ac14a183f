#include "server/generation_channel.h"

namespace strata::server {

bool GenerationChannel::Push(const GenerationEvent& e) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (abandoned_) return false;
    queue_.push_back(TimedEvent{e, std::chrono::steady_clock::now()});
  }
  cv_.notify_one();
  return true;
}

bool GenerationChannel::Wait(std::chrono::milliseconds timeout, std::vector<TimedEvent>* out) {
  out->clear();
  std::unique_lock<std::mutex> l(mu_);
  if (!cv_.wait_for(l, timeout, [&] { return !queue_.empty(); })) return false;
  out->assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
  queue_.clear();
  return true;
}

void GenerationChannel::Abandon() {
  std::lock_guard<std::mutex> l(mu_);
  abandoned_ = true;
  queue_.clear();
}

}  // namespace strata::server
