// libFuzzer target for the LoRA adapter loader: LoraAdapter::Bind over any
// bytes GgufFile::Parse accepts, against two small synthetic base models (a
// llama one, and a phi3 one whose fused attn_qkv and ffn_up feed several
// Linears each; the first input byte picks). Bind must refuse cleanly, and
// whatever it accepts must be what the forward pass multiplies by: for every
// adapted Linear, a pair of its n_in and n_out (Bᵀ's columns inside its
// rows); the token embedding's of n_vocab rows and n_embd outputs.
// Aborts on a broken property.
//   ./build-fuzz/lora_fuzz -max_total_time=60
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "core/env.h"
#include "format/gguf.h"
#include "model/lora_adapter.h"
#include "model/model.h"
#include "model/synth.h"

namespace {

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "lora_fuzz: property violated: %s\n", what);
    std::abort();
  }
}

// A synthetic F32 model of arch, loaded from an in-memory file once.
const strata::Model& Base(strata::Arch arch) {
  static strata::Env* env = strata::NewMemEnv().release();
  static std::unique_ptr<strata::Model> models[2];
  std::unique_ptr<strata::Model>& m = models[arch == strata::Arch::kPhi3 ? 1 : 0];
  if (!m) {
    strata::SynthSpec s;
    s.arch = arch;
    s.n_layer = 2;
    s.n_embd = 32;
    s.n_ff = 64;
    s.n_head = 2;
    s.n_head_kv = 2;
    s.n_vocab = 260;
    s.n_ctx = 64;
    const std::string path = std::string("/") + strata::ArchName(arch) + ".gguf";
    Check(strata::SynthesizeModel(env, s, path, 1).ok(), "the base model synthesizes");
    strata::ModelLoadOptions o;
    o.path = path;
    o.pack_weights = false;
    Check(strata::Model::Load(env, o, &m).ok(), "the base model loads");
  }
  return *m;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const strata::Model& base = Base((data[0] & 1) != 0 ? strata::Arch::kPhi3 : strata::Arch::kLlama);
  // The file's bytes at an aligned address, as a mapped file's are.
  const std::vector<uint8_t> bytes(data + 1, data + size);
  std::unique_ptr<strata::gguf::GgufFile> file;
  if (!strata::gguf::GgufFile::Parse(bytes.data(), bytes.size(), &file).ok()) return 0;
  std::unique_ptr<strata::LoraAdapter> adapter;
  if (!strata::LoraAdapter::Bind(*file, base.hparams(), base.weights(), &adapter).ok()) return 0;
  float sum = 0;  // every copied value is read (ASan flags a bad pointer)
  const strata::ModelWeights& w = base.weights();
  for (size_t slot = 0; slot < w.linear_sources.size(); ++slot) {
    const strata::LoraPair* p = adapter->pair(static_cast<int32_t>(slot));
    if (p == nullptr) continue;
    const strata::LinearSource& src = w.linear_sources[slot];
    Check(p->n_in == src.n_in && p->n_out == src.rows && p->rank > 0 && p->bt_stride == src.file_rows,
          "pair shapes");
    sum += p->at[p->rank * p->n_in - 1] + p->bt[(p->rank - 1) * p->bt_stride + p->n_out - 1];
  }
  if (const strata::LoraPair* e = adapter->token_embd()) {
    Check(e->n_in == base.hparams().n_vocab && e->n_out == base.hparams().n_embd && e->rank > 0, "token_embd pair shapes");
    sum += e->at[e->n_in * e->rank - 1] + e->bt[(e->rank - 1) * e->bt_stride + e->n_out - 1];
  }
  static volatile float sink;
  sink = sink + sum;
  return 0;
}
