// The ggml peer of the conformance tests: bench/.peer/ggml_types_harness
// (ggml's own block formats, dot products and llama_model_quantize), built by
// bench/install_llamacpp.sh. Without it the tests that need it skip, unless
// STRATA_REQUIRE_PEER=1 (CI), where they fail.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <unistd.h>

namespace strata::testing {

// $STRATA_GGML_TYPES_HARNESS, else the one install_llamacpp.sh builds in this source tree.
inline std::string GgmlTypesHarness() {
  const char* env = std::getenv("STRATA_GGML_TYPES_HARNESS");
  if (env != nullptr && *env != '\0') return env;
  return STRATA_SOURCE_DIR "/bench/.peer/ggml_types_harness";
}

inline bool PeerRequired() {
  const char* env = std::getenv("STRATA_REQUIRE_PEER");
  return env != nullptr && std::string(env) == "1";
}

}  // namespace strata::testing

// In a test body: skips (or, with STRATA_REQUIRE_PEER=1, fails) the test when
// the harness is not built.
#define STRATA_NEED_GGML_PEER()                                                                              \
  do {                                                                                                       \
    const std::string harness_path_ = ::strata::testing::GgmlTypesHarness();                                 \
    if (access(harness_path_.c_str(), X_OK) != 0) {                                                          \
      if (::strata::testing::PeerRequired())                                                                 \
        FAIL() << "STRATA_REQUIRE_PEER=1 but " << harness_path_ << " is missing: run bench/install_llamacpp.sh"; \
      GTEST_SKIP() << harness_path_ << " not built (bench/install_llamacpp.sh)";                              \
    }                                                                                                        \
  } while (0)
