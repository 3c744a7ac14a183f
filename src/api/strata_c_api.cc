// The C API: thin wrappers that translate Status to strata_status and catch
// every exception once, here.
#include <algorithm>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "engine/context.h"
#include "engine/load_summary.h"
#include "engine/rank_server.h"
#include "engine/sampler.h"
#include "engine/speculator.h"
#include "grammar/gbnf_parser.h"
#include "grammar/grammar_matcher.h"
#include "grammar/token_trie.h"
#include "grammar/vocab_gbnf_options.h"
#include "kv/session_file.h"
#include "model/lora_adapter.h"
#include "model/model.h"
#include "strata/strata.h"
#include "vocab/vocab.h"

struct strata_model {
  std::unique_ptr<strata::Model> model;
  // The vocabulary's token trie, built by the first strata_sampler_set_grammar.
  mutable std::mutex trie_mu;
  mutable std::shared_ptr<const strata::grammar::TokenTrie> trie;
};
struct strata_context {
  std::unique_ptr<strata::Context> ctx;
  std::string load_summary;  // strata::LoadSummary at init
  std::string kv_nodes_summary;  // the last strata_context_kv_nodes_summary
};
struct strata_sampler {
  strata::Sampler sampler;
};
struct strata_lora {
  std::unique_ptr<strata::LoraAdapter> adapter;
};
struct strata_detokenizer {
  strata::StreamDecoder decoder;
  std::string out;
};
struct strata_speculator {
  std::unique_ptr<strata::Speculator> spec;
  std::vector<int32_t> out;  // scratch of strata_speculator_next
};
struct strata_session_lock {
  std::unique_ptr<strata::FileLock> lock;
};

namespace {

thread_local std::string g_last_error;

strata_status Report(const strata::Status& s) {
  if (s.ok()) return STRATA_OK;
  g_last_error = s.ToString();
  return static_cast<strata_status>(static_cast<int>(s.code()));
}

// Runs fn, converting exceptions (bad_alloc above all) into statuses.
template <class Fn>
strata_status Guard(Fn&& fn) {
  try {
    return Report(fn());
  } catch (const std::bad_alloc&) {
    return Report(strata::Status::ResourceExhausted("out of memory"));
  } catch (const std::exception& e) {
    return Report(strata::Status::Internal(e.what()));
  } catch (...) {
    return Report(strata::Status::Internal("unknown exception"));
  }
}

strata_status NullArgument(const char* what) {
  return Report(strata::Status::InvalidArgument(std::string(what) + " is NULL"));
}

}  // namespace

extern "C" {

const char* strata_last_error(void) { return g_last_error.c_str(); }

const char* strata_status_name(strata_status status) {
  return strata::StatusCodeName(static_cast<strata::StatusCode>(status));
}

strata_model_params strata_model_default_params(void) { return {nullptr, nullptr}; }

strata_status strata_model_load(const strata_model_params* params, strata_model** out) {
  if (params == nullptr || params->path == nullptr || out == nullptr) return NullArgument("params, path or out");
  *out = nullptr;
  return Guard([&] {
    strata::ModelLoadOptions opts;
    opts.path = params->path;
    if (params->tokenizer_path != nullptr) opts.tokenizer_path = params->tokenizer_path;
    auto m = std::make_unique<strata_model>();
    // In an MPI job (dist/cluster.h) this rank's shard, checked against rank 0's.
    STRATA_RETURN_IF_ERROR(strata::LoadRankModel(strata::Env::Default(), opts, &m->model));
    *out = m.release();
    return strata::Status::Ok();
  });
}

void strata_model_free(strata_model* model) { delete model; }

int32_t strata_model_n_vocab(const strata_model* model) { return model->model->hparams().n_vocab; }
int32_t strata_model_n_ctx_train(const strata_model* model) { return model->model->hparams().n_ctx_train; }
strata_token strata_model_bos(const strata_model* model) { return model->model->vocab().bos(); }
strata_token strata_model_eos(const strata_model* model) { return model->model->vocab().eos(); }
bool strata_model_is_eog(const strata_model* model, strata_token token) { return model->model->vocab().IsEog(token); }

strata_status strata_tokenize(const strata_model* model, const char* text, size_t len, bool add_special,
                              bool parse_special, strata_token* tokens, size_t n_max, size_t* n_out) {
  if (model == nullptr || (text == nullptr && len > 0) || n_out == nullptr) return NullArgument("model, text or n_out");
  return Guard([&] {
    std::vector<strata::TokenId> ids =
        model->model->vocab().Encode(std::string_view(text == nullptr ? "" : text, len), add_special, parse_special);
    *n_out = ids.size();
    if (ids.size() > n_max) return strata::Status::ResourceExhausted("token buffer too small");
    if (!ids.empty()) std::memcpy(tokens, ids.data(), ids.size() * sizeof(strata_token));
    return strata::Status::Ok();
  });
}

strata_status strata_detokenizer_init(const strata_model* model, strata_detokenizer** out) {
  if (model == nullptr || out == nullptr) return NullArgument("model or out");
  return Guard([&] {
    *out = new strata_detokenizer{strata::StreamDecoder(model->model->vocab()), {}};
    return strata::Status::Ok();
  });
}

void strata_detokenizer_free(strata_detokenizer* detok) { delete detok; }

const char* strata_detokenizer_push(strata_detokenizer* detok, strata_token token, strata_token prev, size_t* len) {
  detok->out = detok->decoder.Push(token, prev);
  *len = detok->out.size();
  return detok->out.c_str();
}

const char* strata_detokenizer_flush(strata_detokenizer* detok, size_t* len) {
  detok->out = detok->decoder.Flush();
  *len = detok->out.size();
  return detok->out.c_str();
}

strata_context_params strata_context_default_params(void) {
  return {0, 512, 0, nullptr, 32, UINT64_MAX, nullptr, UINT64_MAX, nullptr};
}

const char* strata_context_load_summary(const strata_context* ctx) {
  return ctx != nullptr ? ctx->load_summary.c_str() : "";
}

const char* strata_context_kv_nodes_summary(strata_context* ctx) {
  if (ctx == nullptr) return "";
  const strata::KvNodes* nodes = ctx->ctx->kv_nodes();
  ctx->kv_nodes_summary = nodes != nullptr ? strata::KvNodesSummary(nodes->stats()) : "";
  return ctx->kv_nodes_summary.c_str();
}

strata_status strata_context_init(const strata_model* model, const strata_context_params* params,
                                  strata_context** out) {
  if (model == nullptr || params == nullptr || out == nullptr) return NullArgument("model, params or out");
  *out = nullptr;
  return Guard([&] {
    strata::ContextParams p;
    p.n_ctx = params->n_ctx;
    p.n_batch = params->n_batch;
    p.n_threads = params->n_threads;
    if (params->kv_type != nullptr) {
      std::optional<strata::DType> t = strata::ParseDType(params->kv_type);
      if (!t) return strata::Status::InvalidArgument(std::string("unknown KV type '") + params->kv_type + "'");
      p.kv_type = *t;
    }
    p.kv_block_tokens = params->kv_block;
    p.kv_tiers.ram_bytes = params->kv_ram;
    if (params->kv_disk != nullptr) p.kv_tiers.disk_dir = params->kv_disk;
    p.kv_tiers.disk_bytes = params->kv_disk_max;
    if (params->tune_cache != nullptr) p.tune_cache_path = params->tune_cache;
    auto c = std::make_unique<strata_context>();
    STRATA_RETURN_IF_ERROR(strata::Context::Create(*model->model, p, &c->ctx));
    c->load_summary = strata::LoadSummary(*model->model, c->ctx->n_ctx(), c->ctx->kv().layout());
    *out = c.release();
    return strata::Status::Ok();
  });
}

void strata_context_free(strata_context* ctx) { delete ctx; }

strata_status strata_decode(strata_context* ctx, const strata_token* tokens, size_t n, bool all_logits) {
  if (ctx == nullptr || (tokens == nullptr && n > 0)) return NullArgument("ctx or tokens");
  return Guard([&] {
    return ctx->ctx->Decode(std::span<const int32_t>(tokens, n),
                            all_logits ? strata::LogitsMode::kAll : strata::LogitsMode::kLast);
  });
}

const float* strata_get_logits(const strata_context* ctx, int32_t i) { return ctx->ctx->logits(i); }

int32_t strata_context_n_past(const strata_context* ctx) { return ctx->ctx->n_past(); }

strata_status strata_context_truncate(strata_context* ctx, int32_t n_keep) {
  if (ctx == nullptr) return NullArgument("ctx");
  if (n_keep < 0 || n_keep > ctx->ctx->n_past())
    return Report(strata::Status::InvalidArgument("truncate position outside the sequence"));
  ctx->ctx->Truncate(n_keep);
  return STRATA_OK;
}

strata_status strata_context_tokens(const strata_context* ctx, strata_token* tokens, size_t n_max, size_t* n_out) {
  if (ctx == nullptr || n_out == nullptr) return NullArgument("ctx or n_out");
  const std::vector<int32_t>& t = ctx->ctx->tokens();
  *n_out = t.size();
  if (t.size() > n_max) return Report(strata::Status::ResourceExhausted("token buffer too small"));
  if (!t.empty()) std::memcpy(tokens, t.data(), t.size() * sizeof(strata_token));
  return STRATA_OK;
}

strata_status strata_lora_load(const strata_model* model, const char* path, strata_lora** out) {
  if (model == nullptr || path == nullptr || out == nullptr) return NullArgument("model, path or out");
  *out = nullptr;
  return Guard([&] {
    auto l = std::make_unique<strata_lora>();
    STRATA_RETURN_IF_ERROR(strata::LoraAdapter::Load(strata::Env::Default(), path, *model->model, &l->adapter));
    *out = l.release();
    return strata::Status::Ok();
  });
}

void strata_lora_free(strata_lora* lora) { delete lora; }

strata_status strata_context_set_loras(strata_context* ctx, strata_lora* const* loras, const float* scales, size_t n) {
  if (ctx == nullptr || (n > 0 && (loras == nullptr || scales == nullptr))) return NullArgument("ctx, loras or scales");
  return Guard([&] {
    strata::LoraSet set;
    for (size_t i = 0; i < n; ++i) {
      if (loras[i] == nullptr) return strata::Status::InvalidArgument("a LoRA adapter is NULL");
      set.push_back({loras[i]->adapter.get(), scales[i]});
    }
    return ctx->ctx->SetAdapters(std::move(set));
  });
}

strata_status strata_session_save(strata_context* ctx, const strata_sampler* sampler, const char* path) {
  if (ctx == nullptr || sampler == nullptr || path == nullptr) return NullArgument("ctx, sampler or path");
  return Guard([&] { return ctx->ctx->SaveSession(strata::Env::Default(), path, sampler->sampler); });
}

strata_status strata_session_load(strata_context* ctx, strata_sampler* sampler, const char* path) {
  if (ctx == nullptr || sampler == nullptr || path == nullptr) return NullArgument("ctx, sampler or path");
  return Guard([&] { return ctx->ctx->LoadSession(strata::Env::Default(), path, &sampler->sampler); });
}

strata_status strata_session_lock_init(const char* path, strata_session_lock** out) {
  if (path == nullptr || out == nullptr) return NullArgument("path or out");
  *out = nullptr;
  return Guard([&] {
    auto l = std::make_unique<strata_session_lock>();
    STRATA_RETURN_IF_ERROR(strata::LockSession(strata::Env::Default(), path, &l->lock));
    *out = l.release();
    return strata::Status::Ok();
  });
}

void strata_session_lock_free(strata_session_lock* lock) { delete lock; }

strata_sampler_params strata_sampler_default_params(void) {
  strata::SamplerParams d;
  return {d.temperature, d.top_k, d.top_p, d.min_p, d.repeat_penalty, d.repeat_last_n, d.seed};
}

strata_status strata_sampler_init(const strata_sampler_params* params, strata_sampler** out) {
  if (params == nullptr || out == nullptr) return NullArgument("params or out");
  return Guard([&] {
    strata::SamplerParams p;
    p.temperature = params->temperature;
    p.top_k = params->top_k;
    p.top_p = params->top_p;
    p.min_p = params->min_p;
    p.repeat_penalty = params->repeat_penalty;
    p.repeat_last_n = params->repeat_last_n;
    p.seed = params->seed;
    *out = new strata_sampler{strata::Sampler(p)};
    return strata::Status::Ok();
  });
}

void strata_sampler_free(strata_sampler* sampler) { delete sampler; }

strata_token strata_sampler_sample(strata_sampler* sampler, const float* logits, int32_t n_vocab) {
  return sampler->sampler.Sample(logits, n_vocab);
}

bool strata_sampler_accept(strata_sampler* sampler, strata_token token) { return sampler->sampler.Accept(token); }

void strata_sampler_accept_prompt(strata_sampler* sampler, strata_token token) { sampler->sampler.AcceptPrompt(token); }

strata_status strata_sampler_set_grammar(strata_sampler* sampler, const strata_model* model, const char* gbnf,
                                         size_t len) {
  if (sampler == nullptr || model == nullptr || gbnf == nullptr) return NullArgument("sampler, model or gbnf");
  return Guard([&] {
    const strata::Vocab& vocab = model->model->vocab();
    auto grammar = std::make_shared<strata::grammar::Grammar>();
    STRATA_RETURN_IF_ERROR(strata::grammar::ParseGbnf(std::string_view(gbnf, len),
                                                      strata::grammar::VocabGbnfOptions(vocab), grammar.get())
                               .WithContext("grammar"));
    std::shared_ptr<const strata::grammar::TokenTrie> trie;
    {
      std::lock_guard<std::mutex> l(model->trie_mu);
      if (model->trie == nullptr) model->trie = strata::grammar::TokenTrie::Build(vocab);
      trie = model->trie;
    }
    std::unique_ptr<strata::grammar::GrammarMatcher> matcher;
    STRATA_RETURN_IF_ERROR(strata::grammar::GrammarMatcher::Create(std::move(grammar), std::move(trie), &matcher));
    sampler->sampler.set_grammar(std::move(matcher));
    return strata::Status::Ok();
  });
}

bool strata_sampler_grammar_can_end(const strata_sampler* sampler) {
  const strata::grammar::GrammarMatcher* g = sampler->sampler.grammar();
  return g == nullptr || g->CanEnd();
}

strata_speculator_params strata_speculator_default_params(void) {
  const strata::SpecParams d;
  return {d.draft_min, d.draft_max, d.ngram.ngram_min, d.ngram.ngram_max};
}

strata_status strata_speculator_init(strata_context* ctx, strata_context* draft_ctx,
                                     const strata_speculator_params* params, strata_speculator** out) {
  if (ctx == nullptr || params == nullptr || out == nullptr) return NullArgument("ctx, params or out");
  *out = nullptr;
  return Guard([&] {
    strata::SpecParams p;
    p.draft_min = params->draft_min;
    p.draft_max = params->draft_max;
    p.ngram.ngram_min = params->ngram_min;
    p.ngram.ngram_max = params->ngram_max;
    auto s = std::make_unique<strata_speculator>();
    STRATA_RETURN_IF_ERROR(
        strata::Speculator::Create(ctx->ctx.get(), draft_ctx != nullptr ? draft_ctx->ctx.get() : nullptr, p, &s->spec));
    *out = s.release();
    return strata::Status::Ok();
  });
}

void strata_speculator_free(strata_speculator* spec) { delete spec; }

strata_status strata_speculator_next(strata_speculator* spec, strata_sampler* sampler, strata_token* tokens,
                                     size_t n_max, size_t* n_out) {
  if (spec == nullptr || sampler == nullptr || tokens == nullptr || n_out == nullptr)
    return NullArgument("spec, sampler, tokens or n_out");
  *n_out = 0;
  return Guard([&] {
    const int32_t max_tokens = static_cast<int32_t>(std::min<size_t>(n_max, 1 << 30));
    STRATA_RETURN_IF_ERROR(spec->spec->Next(&sampler->sampler, max_tokens, &spec->out));
    std::memcpy(tokens, spec->out.data(), spec->out.size() * sizeof(strata_token));
    *n_out = spec->out.size();
    return strata::Status::Ok();
  });
}

strata_status strata_speculator_flush(strata_speculator* spec) {
  if (spec == nullptr) return NullArgument("spec");
  return Guard([&] { return spec->spec->Flush(); });
}

void strata_speculator_stats(const strata_speculator* spec, uint64_t* rounds, uint64_t* drafted, uint64_t* accepted) {
  const strata::SpecStats& s = spec->spec->stats();
  if (rounds != nullptr) *rounds = s.rounds;
  if (drafted != nullptr) *drafted = s.drafted;
  if (accepted != nullptr) *accepted = s.accepted;
}

}  // extern "C"
