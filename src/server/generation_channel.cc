#include "server/generation_channel.h"

namespace strata::server {

void GenerationChannel::SetNotifier(std::function<void()> notifier) {
  std::lock_guard<std::mutex> l(mu_);
  notifier_ = std::move(notifier);
}

bool GenerationChannel::Push(const GenerationEvent& e) {
  std::lock_guard<std::mutex> l(mu_);
  if (abandoned_) return false;
  queue_.push_back(TimedEvent{e, std::chrono::steady_clock::now()});
  if (queue_.size() == 1 && notifier_) notifier_();
  return true;
}

void GenerationChannel::Take(std::vector<TimedEvent>* out) {
  out->clear();
  std::lock_guard<std::mutex> l(mu_);
  out->assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
  queue_.clear();
}

void GenerationChannel::Abandon() {
  std::lock_guard<std::mutex> l(mu_);
  abandoned_ = true;
  queue_.clear();
  notifier_ = nullptr;
}

}  // namespace strata::server
