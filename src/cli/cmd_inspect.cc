// strata inspect MODEL: prints a model file's header, metadata and tensor
// table to stdout. GGUF files are recognised by their magic; anything else is
// read as a llama2.c .bin checkpoint.
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "core/env.h"
#include "format/gguf.h"
#include "format/llama2c.h"

namespace strata::cli {
namespace {

constexpr size_t kMaxArrayShown = 8;   // array elements printed before "..."
constexpr size_t kMaxStringShown = 64;  // string bytes printed before "..."

// Quotes s, escaping quotes, backslashes and control bytes; long strings are cut.
std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (size_t k = 0; k < s.size() && k < kMaxStringShown; ++k) {
    const auto c = static_cast<unsigned char>(s[k]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20 || c == 0x7F) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
  if (s.size() > kMaxStringShown) out += fmt::format("...({} bytes)", s.size());
  return out;
}

std::string FormatValue(const gguf::Value& v) {
  using gguf::ValueType;
  switch (v.type) {
    case ValueType::kUint8: case ValueType::kUint16: case ValueType::kUint32: case ValueType::kUint64:
      return std::to_string(v.u);
    case ValueType::kInt8: case ValueType::kInt16: case ValueType::kInt32: case ValueType::kInt64:
      return std::to_string(v.i);
    case ValueType::kFloat32: case ValueType::kFloat64: return fmt::format("{:g}", v.f);
    case ValueType::kBool: return v.b ? "true" : "false";
    case ValueType::kString: return Quote(v.str);
    case ValueType::kArray: {
      std::string out = "[";
      for (size_t k = 0; k < v.arr.size() && k < kMaxArrayShown; ++k) {
        if (k > 0) out += ", ";
        out += FormatValue(v.arr[k]);
      }
      if (v.arr.size() > kMaxArrayShown) out += ", ...";
      return out + "]";
    }
  }
  return "?";
}

std::string TypeName(const gguf::Value& v) {
  if (v.type != gguf::ValueType::kArray) return gguf::ValueTypeName(v.type);
  return fmt::format("arr[{},{}]", gguf::ValueTypeName(v.elem_type), v.arr.size());
}

struct Row {
  std::string name;
  const Tensor* tensor;
  int n_dims;
  uint64_t nbytes;
};

// Prints name, type, shape (innermost first) and bytes of each tensor, then totals.
void PrintTensorTable(const std::vector<Row>& rows) {
  size_t width = 4;
  for (const Row& r : rows) width = std::max(width, r.name.size());
  fmt::print("tensors: {}\n", rows.size());
  fmt::print("  {:<{}}  {:<7}  {:<24}  {:>12}\n", "name", width, "type", "shape", "bytes");
  uint64_t total_bytes = 0;
  int64_t total_elements = 0;
  for (const Row& r : rows) {
    std::string shape = "[";
    for (int d = 0; d < r.n_dims; ++d) shape += (d > 0 ? ", " : "") + std::to_string(r.tensor->ne[d]);
    shape += "]";
    fmt::print("  {:<{}}  {:<7}  {:<24}  {:>12}\n", r.name, width, DTypeName(r.tensor->type), shape, r.nbytes);
    total_bytes += r.nbytes;
    total_elements += r.tensor->elements();
  }
  fmt::print("total: {} tensors, {} elements, {} bytes ({:.2f} MiB)\n", rows.size(), total_elements, total_bytes,
             static_cast<double>(total_bytes) / (1024.0 * 1024.0));
}

void PrintGguf(const gguf::GgufFile& f) {
  fmt::print("format: GGUF v{}\nalignment: {}\ndata offset: {}\nfile size: {}\n", f.version(), f.alignment(),
             f.data_offset(), f.file_size());
  fmt::print("metadata: {} keys\n", f.metadata().size());
  for (const gguf::KeyValue& kv : f.metadata()) {
    fmt::print("  {} {} = {}\n", kv.key, TypeName(kv.value), FormatValue(kv.value));
  }
  std::vector<Row> rows;
  for (const gguf::TensorInfo& t : f.tensors()) {
    rows.push_back({t.name, &t.tensor, static_cast<int>(t.n_dims), t.nbytes});
  }
  PrintTensorTable(rows);
}

void PrintLlama2c(const Llama2cFile& f, uint64_t file_size) {
  const Llama2cConfig& c = f.config();
  fmt::print("format: llama2.c checkpoint\nfile size: {}\n", file_size);
  fmt::print("config:\n  dim = {}\n  hidden_dim = {}\n  n_layers = {}\n  n_heads = {}\n  n_kv_heads = {}\n"
             "  vocab_size = {}\n  seq_len = {}\n  shared_classifier = {}\n",
             c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.seq_len,
             c.shared_classifier ? "true" : "false");
  std::vector<Row> rows;
  for (const NamedTensor& t : f.tensors()) {
    const int n_dims = t.tensor.ne[1] == 1 ? 1 : 2;
    rows.push_back({t.name, &t.tensor, n_dims, static_cast<uint64_t>(t.tensor.elements()) * sizeof(float)});
  }
  PrintTensorTable(rows);
}

void Inspect(const std::string& path) {
  std::unique_ptr<MappedFile> mapping;
  CheckOk("inspect", Env::Default()->MapFile(path, &mapping));
  uint32_t magic = 0;
  if (mapping->size() >= sizeof magic) std::memcpy(&magic, mapping->data(), sizeof magic);
  if (magic == gguf::kMagic) {
    std::unique_ptr<gguf::GgufFile> f;
    CheckOk("inspect", gguf::GgufFile::Parse(mapping->data(), mapping->size(), &f).WithContext(path));
    fmt::print("file: {}\n", path);
    PrintGguf(*f);
  } else {
    std::unique_ptr<Llama2cFile> f;
    CheckOk("inspect", Llama2cFile::Parse(mapping->data(), mapping->size(), &f)
                           .WithContext(path + " (not GGUF, read as llama2.c .bin)"));
    fmt::print("file: {}\n", path);
    PrintLlama2c(*f, mapping->size());
  }
}

}  // namespace

void AddInspectCommand(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("inspect", "Print a model file's metadata and tensor table (GGUF or llama2.c .bin)");
  auto path = std::make_shared<std::string>();
  cmd->add_option("MODEL", *path, "Model file")->required();
  cmd->callback([path] { Inspect(*path); });
}

}  // namespace strata::cli
