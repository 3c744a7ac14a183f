#include "format/llama2c.h"

#include <climits>
#include <cstring>
#include <utility>

namespace strata {
namespace {

constexpr int32_t kMaxSize = 1 << 20;  // bound on every header field

// One stacked weight array of the file: n_layers copies (or one, if not per
// layer) of a matrix with ne = {ne0, ne1}, named gguf_name ("blk.%d." prefix
// added per layer). llama2c_name is used in errors.
struct Section {
  const char* llama2c_name;
  const char* gguf_name;
  bool per_layer;
  int64_t ne0;
  int64_t ne1;
};

Status ReadConfig(const uint8_t* data, size_t size, Llama2cConfig* c) {
  if (size < Llama2cFile::kHeaderBytes) {
    return Status::Corrupt("file truncated: the llama2.c header needs 28 bytes, the file has " +
                           std::to_string(size));
  }
  int32_t h[7];
  std::memcpy(h, data, sizeof h);  // little-endian hosts, as the format
  c->dim = h[0];
  c->hidden_dim = h[1];
  c->n_layers = h[2];
  c->n_heads = h[3];
  c->n_kv_heads = h[4];
  c->shared_classifier = h[5] > 0;
  c->vocab_size = h[5] > 0 ? h[5] : (h[5] == INT32_MIN ? 0 : -h[5]);
  c->seq_len = h[6];
  const std::pair<const char*, int32_t> fields[] = {
      {"dim", c->dim},           {"hidden_dim", c->hidden_dim}, {"n_layers", c->n_layers},
      {"n_heads", c->n_heads},   {"n_kv_heads", c->n_kv_heads}, {"vocab_size", c->vocab_size},
      {"seq_len", c->seq_len}};
  for (const auto& [name, v] : fields) {
    if (v <= 0 || v > kMaxSize) {
      return Status::Corrupt(std::string("llama2.c header field ") + name + " = " + std::to_string(v) +
                             " is out of range 1.." + std::to_string(kMaxSize));
    }
  }
  if (c->dim % c->n_heads != 0) {
    return Status::Corrupt("n_heads " + std::to_string(c->n_heads) + " does not divide dim " + std::to_string(c->dim));
  }
  if (c->n_heads % c->n_kv_heads != 0) {
    return Status::Corrupt("n_kv_heads " + std::to_string(c->n_kv_heads) + " does not divide n_heads " +
                           std::to_string(c->n_heads));
  }
  if (c->head_size() % 2 != 0) {
    return Status::Corrupt("head size " + std::to_string(c->head_size()) + " is odd");
  }
  return Status::Ok();
}

// Bytes of a section; each factor is <= 2^20, so the product is < 2^62.
uint64_t SectionBytes(const Section& s, const Llama2cConfig& c) {
  const uint64_t copies = s.per_layer ? static_cast<uint64_t>(c.n_layers) : 1;
  return copies * static_cast<uint64_t>(s.ne0) * static_cast<uint64_t>(s.ne1) * sizeof(float);
}

Status Truncated(const char* what, uint64_t offset, uint64_t bytes, size_t size) {
  return Status::Corrupt("file truncated: " + std::string(what) + " needs bytes [" + std::to_string(offset) + ", " +
                         std::to_string(offset + bytes) + "), the file has " + std::to_string(size));
}

Tensor F32Tensor(const uint8_t* data, int64_t ne0, int64_t ne1) {
  Tensor t;
  t.type = DType::kF32;
  t.ne = {ne0, ne1, 1, 1};
  t.data = data;
  return t;
}

}  // namespace

Status Llama2cFile::Parse(const uint8_t* data, size_t size, std::unique_ptr<Llama2cFile>* out) {
  std::unique_ptr<Llama2cFile> file(new Llama2cFile());
  Llama2cConfig& c = file->config_;
  STRATA_RETURN_IF_ERROR(ReadConfig(data, size, &c));
  const int64_t dim = c.dim, hidden = c.hidden_dim, kv_dim = c.kv_dim(), vocab = c.vocab_size;
  const Section sections[] = {
      {"token_embedding_table", "token_embd.weight", false, dim, vocab},
      {"rms_att_weight", "attn_norm.weight", true, dim, 1},
      {"wq", "attn_q.weight", true, dim, dim},
      {"wk", "attn_k.weight", true, dim, kv_dim},
      {"wv", "attn_v.weight", true, dim, kv_dim},
      {"wo", "attn_output.weight", true, dim, dim},
      {"rms_ffn_weight", "ffn_norm.weight", true, dim, 1},
      {"w1", "ffn_gate.weight", true, dim, hidden},
      {"w2", "ffn_down.weight", true, hidden, dim},
      {"w3", "ffn_up.weight", true, dim, hidden},
      {"rms_final_weight", "output_norm.weight", false, dim, 1},
  };
  uint64_t offset = kHeaderBytes;  // <= size from here on
  for (const Section& s : sections) {
    const uint64_t bytes = SectionBytes(s, c);
    if (bytes > size - offset) return Truncated(s.llama2c_name, offset, bytes, size);
    const int32_t copies = s.per_layer ? c.n_layers : 1;
    const uint64_t copy_bytes = bytes / static_cast<uint64_t>(copies);
    for (int32_t l = 0; l < copies; ++l) {
      std::string name = s.per_layer ? "blk." + std::to_string(l) + "." + s.gguf_name : s.gguf_name;
      file->tensors_.push_back({std::move(name), F32Tensor(data + offset + l * copy_bytes, s.ne0, s.ne1)});
    }
    offset += bytes;
  }
  STRATA_RETURN_IF_ERROR(file->ParseTail(data, size, offset));
  *out = std::move(file);
  return Status::Ok();
}

Status Llama2cFile::ParseTail(const uint8_t* data, size_t size, uint64_t offset) {
  const Llama2cConfig& c = config_;
  const uint64_t freq_bytes =
      2 * static_cast<uint64_t>(c.seq_len) * static_cast<uint64_t>(c.head_size() / 2) * sizeof(float);
  const uint64_t rest = size - offset;
  if (c.shared_classifier) {
    if (rest == 0 || rest == freq_bytes) return Status::Ok();
    if (rest < freq_bytes) return Truncated("freq_cis_real/imag", offset, freq_bytes, size);
    return Status::Corrupt(std::to_string(rest - freq_bytes) + " unexpected bytes after the freq_cis tables");
  }
  if (freq_bytes > rest) return Truncated("freq_cis_real/imag", offset, freq_bytes, size);
  offset += freq_bytes;
  const uint64_t wcls_bytes = static_cast<uint64_t>(c.dim) * static_cast<uint64_t>(c.vocab_size) * sizeof(float);
  if (wcls_bytes > size - offset) return Truncated("wcls", offset, wcls_bytes, size);
  tensors_.push_back({"output.weight", F32Tensor(data + offset, c.dim, c.vocab_size)});
  offset += wcls_bytes;
  if (offset != size) return Status::Corrupt(std::to_string(size - offset) + " unexpected bytes after wcls");
  return Status::Ok();
}

Status Llama2cFile::Open(Env* env, const std::string& path, std::unique_ptr<Llama2cFile>* out) {
  std::unique_ptr<MappedFile> mapping;
  STRATA_RETURN_IF_ERROR(env->MapFile(path, &mapping));
  std::unique_ptr<Llama2cFile> file;
  Status s = Parse(mapping->data(), mapping->size(), &file);
  if (!s.ok()) return s.WithContext(path);
  file->mapping_ = std::move(mapping);
  *out = std::move(file);
  return Status::Ok();
}

const Tensor* Llama2cFile::FindTensor(std::string_view name) const {
  for (const NamedTensor& t : tensors_) {
    if (t.name == name) return &t.tensor;
  }
  return nullptr;
}

}  // namespace strata
