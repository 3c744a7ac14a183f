/*
 * strata: fast Llama-family inference on CPUs — the public C API.
 *
 * Conventions
 *  - Opaque handles with init/free pairs; every free accepts NULL.
 *  - Fallible calls return strata_status (STRATA_OK = 0). On failure,
 *    strata_last_error() returns a one-line message for the calling thread,
 *    valid until that thread's next strata call.
 *  - No C++ exception ever crosses this boundary.
 *  - Enums are append-only; values never change.
 *
 * Thread-safety: a strata_model is immutable after load and may be shared by
 * any number of contexts on any threads. A strata_context, strata_sampler or
 * strata_detokenizer must be used by one thread at a time.
 */
#ifndef STRATA_STRATA_H_
#define STRATA_STRATA_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define STRATA_API_VERSION 1

typedef enum strata_status {
  STRATA_OK = 0,
  STRATA_ERR_INVALID_ARGUMENT = 1,   /* malformed argument */
  STRATA_ERR_NOT_FOUND = 2,          /* file, tensor or session missing */
  STRATA_ERR_CORRUPT = 3,            /* file fails validation */
  STRATA_ERR_UNSUPPORTED = 4,        /* valid but not supported (architecture, weight type) */
  STRATA_ERR_IO = 5,                 /* the OS refused a file operation */
  STRATA_ERR_RESOURCE_EXHAUSTED = 6, /* out of memory, disk or context; or buffer too small */
  STRATA_ERR_INTERNAL = 7,           /* a bug in strata */
  STRATA_ERR_CANCELLED = 8,
  STRATA_ERR_UNAVAILABLE = 9,        /* temporarily unable; the same call may succeed later */
  STRATA_ERR_OUT_OF_RANGE = 10,      /* beyond a fixed limit (e.g. the context); retrying cannot succeed */
  STRATA_ERR_BUSY = 11,              /* held by another process: a locked session */
} strata_status;

typedef int32_t strata_token;

typedef struct strata_model strata_model;
typedef struct strata_context strata_context;
typedef struct strata_sampler strata_sampler;
typedef struct strata_detokenizer strata_detokenizer;
typedef struct strata_session_lock strata_session_lock;
typedef struct strata_speculator strata_speculator;
typedef struct strata_lora strata_lora;

/* Message of the last failed call on this thread ("" if none). */
const char* strata_last_error(void);
/* Static name of a status code, e.g. "corrupt". */
const char* strata_status_name(strata_status status);

/* ---- model ---- */

typedef struct strata_model_params {
  const char* path;           /* .gguf or llama2.c .bin */
  const char* tokenizer_path; /* llama2.c tokenizer.bin, required for .bin models; else NULL */
} strata_model_params;

strata_model_params strata_model_default_params(void);
/* Maps the model (weights are not copied). REQUIRES: params, out non-NULL. */
strata_status strata_model_load(const strata_model_params* params, strata_model** out);
void strata_model_free(strata_model* model);

int32_t strata_model_n_vocab(const strata_model* model);
int32_t strata_model_n_ctx_train(const strata_model* model);
strata_token strata_model_bos(const strata_model* model); /* -1 if none */
strata_token strata_model_eos(const strata_model* model); /* -1 if none */
/* True for tokens that end generation (EOS, EOT, ...). */
bool strata_model_is_eog(const strata_model* model, strata_token token);

/* Text (len bytes, any content) -> tokens. add_special: BOS/EOS as the
 * vocabulary asks; parse_special: control-token text is recognised.
 * If n_max is too small, returns STRATA_ERR_RESOURCE_EXHAUSTED and sets
 * *n_out to the count needed. */
strata_status strata_tokenize(const strata_model* model, const char* text, size_t len, bool add_special,
                              bool parse_special, strata_token* tokens, size_t n_max, size_t* n_out);

/* ---- detokenizer: tokens -> always-complete UTF-8 text ---- */

strata_status strata_detokenizer_init(const strata_model* model, strata_detokenizer** out);
void strata_detokenizer_free(strata_detokenizer* detok);
/* Text that token completes, given the previous token of the sequence
 * (-1 if none). Bytes of a character split across tokens are held back.
 * Returned pointer valid until the next call on detok; *len receives its length. */
const char* strata_detokenizer_push(strata_detokenizer* detok, strata_token token, strata_token prev, size_t* len);
/* Whatever is held back (an incomplete final character as U+FFFD). */
const char* strata_detokenizer_flush(strata_detokenizer* detok, size_t* len);

/* ---- context: one sequence's KV cache and forward pass ---- */

typedef struct strata_context_params {
  int32_t n_ctx;         /* 0: the model's training context */
  int32_t n_batch;       /* tokens per forward pass, default 512 */
  int32_t n_threads;     /* 0: all cores */
  const char* kv_type;   /* "f32", "f16", "q8_0"; NULL: f32 for an f32 model, else f16 */
  int32_t kv_block;      /* positions per KV block, default 32 */
  uint64_t kv_ram;       /* RAM budget for KV blocks in bytes; UINT64_MAX: unlimited */
  const char* kv_disk;   /* directory of the KV disk tier; NULL: none */
  uint64_t kv_disk_max;  /* disk tier budget in bytes; UINT64_MAX: unlimited */
  const char* tune_cache; /* attention grid tuned at init and cached in this file; NULL: no tuning, default grid */
} strata_context_params;

strata_context_params strata_context_default_params(void);
/* REQUIRES: model outlives the context. */
strata_status strata_context_init(const strata_model* model, const strata_context_params* params,
                                  strata_context** out);
void strata_context_free(strata_context* ctx);
/* One line describing the loaded model and this context: architecture, name,
 * parameters, tensor types, file size, context and KV type and size. Owned by ctx. */
const char* strata_context_load_summary(const strata_context* ctx);
/* Under mpirun --kv-nodes: one line on where the KV blocks live and how
 * remote ones were read so far; "" otherwise. Owned by ctx, valid until the next call. */
const char* strata_context_kv_nodes_summary(strata_context* ctx);

/* Appends n tokens to the sequence and runs the forward pass. On error the
 * sequence is unchanged. all_logits: keep logits of every token, else of the last. */
strata_status strata_decode(strata_context* ctx, const strata_token* tokens, size_t n, bool all_logits);
/* F32 [n_vocab] logits of token i of the last strata_decode (i = 0 with all_logits false). */
const float* strata_get_logits(const strata_context* ctx, int32_t i);
int32_t strata_context_n_past(const strata_context* ctx);
/* Forgets every position >= n_keep (roll back). */
strata_status strata_context_truncate(strata_context* ctx, int32_t n_keep);
/* Copies the sequence's tokens into tokens[0..n_max); *n_out receives the
 * count (STRATA_ERR_RESOURCE_EXHAUSTED if n_max is too small). */
strata_status strata_context_tokens(const strata_context* ctx, strata_token* tokens, size_t n_max, size_t* n_out);

/* ---- LoRA adapters ---- */

/* Loads a LoRA adapter in llama.cpp's GGUF adapter format for model, every
 * tensor checked against the model's (wrong shapes, missing or extra tensors,
 * another architecture: an error naming it). REQUIRES: model outlives it. */
strata_status strata_lora_load(const strata_model* model, const char* path, strata_lora** out);
void strata_lora_free(strata_lora* lora);
/* ctx runs with these n adapters (their products summed, loras[i] scaled by
 * scales[i]; n = 0: none), as llama.cpp applies a context's adapters. Only
 * before the first token: STRATA_ERR_INVALID_ARGUMENT once ctx has tokens.
 * Sessions do not record adapters: with any set, strata_session_save and
 * _load are STRATA_ERR_UNSUPPORTED. REQUIRES: the adapters outlive ctx. */
strata_status strata_context_set_loras(strata_context* ctx, strata_lora* const* loras, const float* scales, size_t n);

/* ---- sampler ---- */

typedef struct strata_sampler_params {
  float temperature;     /* <= 0: greedy */
  int32_t top_k;         /* <= 0: off */
  float top_p;           /* >= 1: off */
  float min_p;           /* <= 0: off */
  float repeat_penalty;  /* 1: off */
  int32_t repeat_last_n;
  uint64_t seed;
} strata_sampler_params;

strata_sampler_params strata_sampler_default_params(void);
strata_status strata_sampler_init(const strata_sampler_params* params, strata_sampler** out);
void strata_sampler_free(strata_sampler* sampler);
/* Picks a token from logits F32 [n_vocab]. With a grammar, only a token it
 * allows; -1 if it allows none (no token of the vocabulary continues it, or
 * it is too ambiguous to follow). */
strata_token strata_sampler_sample(strata_sampler* sampler, const float* logits, int32_t n_vocab);
/* Records a generated token for the penalties and, once a grammar is set,
 * moves the grammar past it. false if the grammar refuses the token (nothing
 * changes then). */
bool strata_sampler_accept(strata_sampler* sampler, strata_token token);
/* Records a token of the prompt: the repetition penalty's window only. */
void strata_sampler_accept_prompt(strata_sampler* sampler, strata_token token);
/* Structured output: tokens picked from now on follow the GBNF grammar
 * gbnf[0..len) (llama.cpp's format; <text> token references resolved with
 * model's vocabulary); the tokens accepted from now on are its text. An
 * end-of-generation token is picked only where the grammar can end.
 * STRATA_ERR_INVALID_ARGUMENT naming line and column if it does not parse.
 * REQUIRES: model outlives the sampler. */
strata_status strata_sampler_set_grammar(strata_sampler* sampler, const strata_model* model, const char* gbnf,
                                         size_t len);
/* true if the sampler has no grammar, or the text accepted so far completes it. */
bool strata_sampler_grammar_can_end(const strata_sampler* sampler);

/* ---- speculative decoding: several tokens per pass over the model ---- */

typedef struct strata_speculator_params {
  int32_t draft_min; /* the draft length adapts to the measured acceptance within [draft_min, draft_max]; default 1 */
  int32_t draft_max; /* default 8; both in [1, 64] */
  int32_t ngram_min; /* prompt lookup: the shortest suffix looked up; default 1 */
  int32_t ngram_max; /* the longest, tried first; default 4 */
} strata_speculator_params;

strata_speculator_params strata_speculator_default_params(void);
/* Speculative decoding for ctx: each round drafts tokens — with draft_ctx's
 * model (a smaller model with the same vocabulary, in a context of its own
 * at least as long as ctx's), or by prompt lookup (continuations of earlier
 * occurrences of the last tokens) if draft_ctx is NULL — and verifies them
 * in one pass over ctx's model. Greedy output is exactly the output of
 * sampling token by token; sampled output has exactly its distribution.
 * STRATA_ERR_INVALID_ARGUMENT if the vocabularies differ (naming the first
 * difference). REQUIRES: ctx's last strata_decode kept only the last logits
 * (they predict the first token); from now on ctx and draft_ctx are used
 * only through the speculator until strata_speculator_flush; both outlive it. */
strata_status strata_speculator_init(strata_context* ctx, strata_context* draft_ctx,
                                     const strata_speculator_params* params, strata_speculator** out);
void strata_speculator_free(strata_speculator* spec);
/* Generates 1..n_max tokens into tokens[0..*n_out), each accepted into
 * sampler (the same sampler every call), except a final end-of-generation
 * token or -1 (the sampler's grammar allows no token), which end the
 * generation. On error nothing was generated. */
strata_status strata_speculator_next(strata_speculator* spec, strata_sampler* sampler, strata_token* tokens,
                                     size_t n_max, size_t* n_out);
/* Runs the last generated token through ctx's model, so ctx holds every
 * generated token and its last logits predict the next (as after
 * strata_decode): needed only to keep ctx (sessions). */
strata_status strata_speculator_flush(strata_speculator* spec);
/* Multi-token verification passes, tokens drafted in them, and drafted tokens kept. */
void strata_speculator_stats(const strata_speculator* spec, uint64_t* rounds, uint64_t* drafted, uint64_t* accepted);

/* ---- sessions: a sequence's tokens, KV cache and sampler state on disk ---- */

/* Saves ctx's sequence and sampler's state to path atomically (temp file,
 * fsync, rename; checksummed). */
strata_status strata_session_save(strata_context* ctx, const strata_sampler* sampler, const char* path);
/* Restores a saved session into a fresh ctx (n_past 0) and sampler.
 * STRATA_ERR_NOT_FOUND if path does not exist; STRATA_ERR_INVALID_ARGUMENT if
 * it holds more tokens than the context; on any error nothing changes. */
strata_status strata_session_load(strata_context* ctx, strata_sampler* sampler, const char* path);
/* Locks the session at path against other processes (an flock on path.lock,
 * created if missing; the OS releases it if the process dies), without
 * waiting: STRATA_ERR_BUSY if another process holds it. Hold it from
 * strata_session_load to strata_session_save, so that two processes
 * continuing one session cannot silently lose one's tokens; free it after. */
strata_status strata_session_lock_init(const char* path, strata_session_lock** out);
void strata_session_lock_free(strata_session_lock* lock);

#ifdef __cplusplus
}
#endif

#endif /* STRATA_STRATA_H_ */
