#include "core/dtype.h"

#include <cctype>
#include <string>

namespace strata {
namespace {

struct Entry {
  DType type;
  DTypeInfo info;
};

constexpr Entry kTable[] = {
    {DType::kF32, {"f32", 1, 4, true}},
    {DType::kF16, {"f16", 1, 2, true}},
    {DType::kQ4_0, {"q4_0", 32, 18, true}},
    {DType::kQ4_1, {"q4_1", 32, 20, false}},
    {DType::kQ5_0, {"q5_0", 32, 22, false}},
    {DType::kQ5_1, {"q5_1", 32, 24, false}},
    {DType::kQ8_0, {"q8_0", 32, 34, true}},
    {DType::kQ8_1, {"q8_1", 32, 36, false}},
    {DType::kQ2_K, {"q2_K", 256, 84, false}},
    {DType::kQ3_K, {"q3_K", 256, 110, false}},
    {DType::kQ4_K, {"q4_K", 256, 144, false}},
    {DType::kQ5_K, {"q5_K", 256, 176, false}},
    {DType::kQ6_K, {"q6_K", 256, 210, false}},
    {DType::kQ8_K, {"q8_K", 256, 292, false}},
    {DType::kI8, {"i8", 1, 1, false}},
    {DType::kI16, {"i16", 1, 2, false}},
    {DType::kI32, {"i32", 1, 4, false}},
    {DType::kI64, {"i64", 1, 8, false}},
    {DType::kF64, {"f64", 1, 8, false}},
    {DType::kBF16, {"bf16", 1, 2, true}},
};

}  // namespace

std::optional<DTypeInfo> GetDTypeInfo(uint32_t raw) {
  for (const Entry& e : kTable)
    if (static_cast<uint32_t>(e.type) == raw) return e.info;
  return std::nullopt;
}

const DTypeInfo& Info(DType t) {
  for (const Entry& e : kTable)
    if (e.type == t) return e.info;
  static const DTypeInfo kUnknown{"unknown", 1, 1, false};
  return kUnknown;
}

std::optional<DType> ParseDType(std::string_view name) {
  std::string lower;
  for (char c : name) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const Entry& e : kTable) {
    std::string n = e.info.name;
    for (char& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (n == lower) return e.type;
  }
  return std::nullopt;
}

std::optional<uint64_t> RowBytes(DType t, uint64_t n) {
  const DTypeInfo& info = Info(t);
  if (n % static_cast<uint64_t>(info.block_size) != 0) return std::nullopt;
  uint64_t blocks = n / static_cast<uint64_t>(info.block_size);
  if (blocks > UINT64_MAX / static_cast<uint64_t>(info.type_size)) return std::nullopt;
  return blocks * static_cast<uint64_t>(info.type_size);
}

}  // namespace strata
