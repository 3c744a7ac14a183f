// libFuzzer target for the model-file readers: GgufFile::Parse and
// Llama2cFile::Parse must reject any input cleanly, and whatever they accept
// must be safe to walk: every metadata value and every tensor byte range.
// Accepted GGUF files also go through what reads their tensors and metadata
// next: each row decoder (a row of every tensor of a type strata computes
// with, whatever its bytes) and the quantization planner (hostile names and
// hyper-parameters).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "format/gguf.h"
#include "format/llama2c.h"
#include "kernels/kernels.h"
#include "model/quantize.h"

namespace {

// Folds a value (recursively, for arrays) into a checksum so every field is read.
uint64_t Touch(const strata::gguf::Value& v) {
  uint64_t h = static_cast<uint64_t>(v.type) + v.u + static_cast<uint64_t>(v.i) + (v.b ? 1 : 0) + v.str.size();
  if (v.as_double().has_value()) h += static_cast<uint64_t>(*v.as_double() != 0);
  if (!v.str.empty()) h += static_cast<uint8_t>(v.str.front()) + static_cast<uint8_t>(v.str.back());
  for (const strata::gguf::Value& e : v.arr) h = h * 31 + Touch(e);
  return h;
}

constexpr int64_t kMaxRowDecoded = 1 << 16;  // elements: bounds the fuzzer's memory

// Reads the first, middle and last byte of a tensor: ASan flags a bad pointer.
uint64_t TouchBytes(const void* data, uint64_t nbytes) {
  if (nbytes == 0) return 0;
  const auto* p = static_cast<const uint8_t*>(data);
  return p[0] + p[nbytes / 2] + p[nbytes - 1];
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  volatile uint64_t sink = 0;
  std::unique_ptr<strata::gguf::GgufFile> gguf;
  if (strata::gguf::GgufFile::Parse(data, size, &gguf).ok()) {
    for (const strata::gguf::KeyValue& kv : gguf->metadata()) sink = sink + kv.key.size() + Touch(kv.value);
    for (const strata::gguf::TensorInfo& t : gguf->tensors()) {
      sink = sink + TouchBytes(t.tensor.data, t.nbytes) + static_cast<uint64_t>(t.tensor.elements());
      if (gguf->FindTensor(t.name) != &t) __builtin_trap();  // names are unique and indexed
      if (strata::Info(t.tensor.type).supported && t.tensor.cols() <= kMaxRowDecoded) {
        std::vector<float> row(static_cast<size_t>(t.tensor.cols()));
        strata::kernels::DequantizeRow(t.tensor.type, t.tensor.data, row.data(), t.tensor.cols());
        sink = sink + static_cast<uint64_t>(std::count(row.begin(), row.end(), 0.0f));
      }
    }
    strata::QuantizeResult plan;
    if (strata::PlanQuantization(*gguf, strata::QuantizeOptions{strata::FileType::kQ4_K_M, 1, false}, &plan).ok())
      sink = sink + plan.bytes_out;
  }
  std::unique_ptr<strata::Llama2cFile> bin;
  if (strata::Llama2cFile::Parse(data, size, &bin).ok()) {
    for (const strata::NamedTensor& t : bin->tensors()) {
      sink = sink + TouchBytes(t.tensor.data, static_cast<uint64_t>(t.tensor.elements()) * sizeof(float));
    }
  }
  return 0;
}
