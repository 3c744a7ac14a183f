// Histogram: a Prometheus histogram of non-negative observations (seconds)
// with fixed upper bounds, rendered in the text exposition format.
//
// Thread-safety: Observe and Render may be called concurrently.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace strata::server {

class Histogram {
 public:
  // REQUIRES: bounds strictly increasing (the +Inf bucket is implicit).
  explicit Histogram(std::vector<double> bounds);

  void Observe(double value);
  // Appends "# HELP", "# TYPE" and the _bucket/_sum/_count samples of name.
  void Render(const std::string& name, const std::string& help, std::string* out) const;

 private:
  const std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::vector<uint64_t> counts_;  // per bound, not cumulative; last = above every bound
  double sum_ = 0;
  uint64_t count_ = 0;
};

}  // namespace strata::server
