#include "core/dtype.h"

#include <cctype>
#include <string>

namespace strata {
namespace {

struct Entry {
  DType type;
  DTypeInfo info;
};

// {name, block size, bytes per block, supported, quantized}: ggml's values
// (checked against ggml itself by tests/ggml_types_test.cc).
constexpr Entry kTable[] = {
    {DType::kF32, {"f32", 1, 4, true, false}},
    {DType::kF16, {"f16", 1, 2, true, false}},
    {DType::kQ4_0, {"q4_0", 32, 18, true, true}},
    {DType::kQ4_1, {"q4_1", 32, 20, true, true}},
    {DType::kQ5_0, {"q5_0", 32, 22, true, true}},
    {DType::kQ5_1, {"q5_1", 32, 24, true, true}},
    {DType::kQ8_0, {"q8_0", 32, 34, true, true}},
    {DType::kQ8_1, {"q8_1", 32, 36, false, true}},
    {DType::kQ2_K, {"q2_K", 256, 84, true, true}},
    {DType::kQ3_K, {"q3_K", 256, 110, true, true}},
    {DType::kQ4_K, {"q4_K", 256, 144, true, true}},
    {DType::kQ5_K, {"q5_K", 256, 176, true, true}},
    {DType::kQ6_K, {"q6_K", 256, 210, true, true}},
    {DType::kQ8_K, {"q8_K", 256, 292, false, true}},
    {DType::kIQ2_XXS, {"iq2_xxs", 256, 66, false, true}},
    {DType::kIQ2_XS, {"iq2_xs", 256, 74, false, true}},
    {DType::kIQ3_XXS, {"iq3_xxs", 256, 98, false, true}},
    {DType::kIQ1_S, {"iq1_s", 256, 50, false, true}},
    {DType::kIQ4_NL, {"iq4_nl", 32, 18, true, true}},
    {DType::kIQ3_S, {"iq3_s", 256, 110, false, true}},
    {DType::kIQ2_S, {"iq2_s", 256, 82, false, true}},
    {DType::kIQ4_XS, {"iq4_xs", 256, 136, true, true}},
    {DType::kI8, {"i8", 1, 1, false, false}},
    {DType::kI16, {"i16", 1, 2, false, false}},
    {DType::kI32, {"i32", 1, 4, false, false}},
    {DType::kI64, {"i64", 1, 8, false, false}},
    {DType::kF64, {"f64", 1, 8, false, false}},
    {DType::kIQ1_M, {"iq1_m", 256, 56, false, true}},
    {DType::kBF16, {"bf16", 1, 2, true, false}},
    {DType::kTQ1_0, {"tq1_0", 256, 54, false, true}},
    {DType::kTQ2_0, {"tq2_0", 256, 66, false, true}},
    {DType::kMXFP4, {"mxfp4", 32, 17, false, true}},
    {DType::kNVFP4, {"nvfp4", 64, 36, false, true}},
    {DType::kQ1_0, {"q1_0", 128, 18, false, true}},
    {DType::kQ2_0, {"q2_0", 64, 18, false, true}},
};

std::string Lower(std::string_view s) {
  std::string out;
  for (char c : s) out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::optional<DTypeInfo> GetDTypeInfo(uint32_t raw) {
  for (const Entry& e : kTable)
    if (static_cast<uint32_t>(e.type) == raw) return e.info;
  return std::nullopt;
}

const DTypeInfo& Info(DType t) {
  for (const Entry& e : kTable)
    if (e.type == t) return e.info;
  static const DTypeInfo kUnknown{"unknown", 1, 1, false, false};
  return kUnknown;
}

std::optional<DType> ParseDType(std::string_view name) {
  const std::string lower = Lower(name);
  for (const Entry& e : kTable)
    if (Lower(e.info.name) == lower) return e.type;
  return std::nullopt;
}

std::string SupportedDTypeNames() {
  std::string out;
  for (const Entry& e : kTable) {
    if (!e.info.supported) continue;
    if (!out.empty()) out += ", ";
    out += e.info.name;
  }
  return out;
}

std::optional<uint64_t> RowBytes(DType t, uint64_t n) {
  const DTypeInfo& info = Info(t);
  if (n % static_cast<uint64_t>(info.block_size) != 0) return std::nullopt;
  uint64_t blocks = n / static_cast<uint64_t>(info.block_size);
  if (blocks > UINT64_MAX / static_cast<uint64_t>(info.type_size)) return std::nullopt;
  return blocks * static_cast<uint64_t>(info.type_size);
}

}  // namespace strata
