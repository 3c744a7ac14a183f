// llamacpp_conformance: llama.cpp's side of strata's conformance tests
// (tests/conformance_test.cc), driving the prebuilt llama.cpp CPU libraries
// through their public C API (built by bench/install_llamacpp.sh, like the
// bench harness).
//
//   logits -m MODEL -t ID,ID,... -o OUT [--kv f32|f16] [--threads N] [--lora FILE[:SCALE]]...
//       Decodes the tokens as one sequence in one batch (no BOS added) and
//       writes every position's logits to OUT: F32 [n_vocab, n_tokens], row
//       after row. Prints {"n_vocab": V, "n_tokens": N} on stdout. With
//       --lora (up to 8) the context runs with those LoRA adapters
//       (llama_adapter_lora_init, llama_set_adapters_lora; scale default 1).
//   quantize IN OUT FTYPE [--output-type TYPE] [--threads N]
//       llama_model_quantize with llama.cpp's defaults for FTYPE (q8_0, q4_0,
//       q4_1, q5_0, q5_1, q4_k_m, q5_k_m, q6_k, f16); --output-type overrides
//       the type of output.weight (f32, f16, q8_0, q4_0, q6_k).
//   perplexity -m MODEL -f TEXT [-c N_CTX] [--chunks N] [--kv f32|f16] [--threads N]
//       llama-perplexity's computation: the text (one trailing newline dropped,
//       as llama.cpp reads -f) tokenized with BOS, cut into
//       chunks of N_CTX tokens (default 512), each decoded from an empty cache
//       with its first token replaced by BOS (when the vocabulary adds one),
//       the second half of each chunk scored. Prints
//       "Final estimate: PPL = X +/- Y" and a JSON line {"ppl", "ppl_err", "tokens", "chunks"}.
//   generate -m MODEL -p PROMPT -n N [--threads N]
//       Greedy generation (argmax): prints the N generated pieces as text,
//       stopping early at an end-of-generation token.
//   grammar -m MODEL -g GRAMMAR_FILE [-t ID,ID,...]
//       llama.cpp's grammar sampler (llama_sampler_init_grammar, root "root")
//       over the model's vocabulary: prints {"parsed": false} if the grammar
//       is refused; else {"parsed": true}, then for each prefix of the tokens
//       (the empty one first) a JSON array of the token ids the grammar
//       allows next, accepting the next token only while it is allowed.
//
// --threads defaults to 1: the test models are tiny, and ggml's spinning
// thread sync is slow on a machine whose cores are busy with other work.
// Errors: one line on stderr, exit 1.

#define _GNU_SOURCE
#include <dlfcn.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml-backend.h"
#include "ggml.h"
#include "llama.h"

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "llamacpp_conformance: error: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static void quiet_log(enum ggml_log_level level, const char *text, void *user) {
    (void)user;
    if (level == GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

// llama.cpp's CPU backend variants (libggml-cpu-<arch>.so) live beside libllama.
static void load_backends(void) {
    llama_log_set(quiet_log, NULL);
    char dir[4096] = ".";
    Dl_info di;
    if (dladdr((void *)&llama_backend_init, &di) && di.dli_fname) {
        snprintf(dir, sizeof dir, "%s", di.dli_fname);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = '\0';
    }
    ggml_backend_load_all_from_path(dir);
    if (!ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU)) die("no CPU backend could be loaded from %s", dir);
    llama_backend_init();
}

typedef struct {
    const char *model, *tokens, *out, *text, *prompt, *output_type, *grammar;
    const char *kv;
    int threads, n_ctx, chunks, n_gen;
    const char *loras[8];
    int n_loras;
} options;

static int parse_int(const char *s, const char *what) {
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (!s[0] || *end || v < 0 || v > 1000000000) die("invalid %s '%s'", what, s);
    return (int)v;
}

// Parses the options after the subcommand and its positional arguments.
static void parse_options(int argc, char **argv, int first, options *o) {
    for (int i = first; i < argc; ++i) {
        const char *a = argv[i];
        if (i + 1 >= argc) die("option %s needs a value", a);
        const char *v = argv[++i];
        if (!strcmp(a, "-m")) o->model = v;
        else if (!strcmp(a, "-t")) o->tokens = v;
        else if (!strcmp(a, "-o")) o->out = v;
        else if (!strcmp(a, "-f")) o->text = v;
        else if (!strcmp(a, "-p")) o->prompt = v;
        else if (!strcmp(a, "-n")) o->n_gen = parse_int(v, "-n");
        else if (!strcmp(a, "-c")) o->n_ctx = parse_int(v, "-c");
        else if (!strcmp(a, "--chunks")) o->chunks = parse_int(v, "--chunks");
        else if (!strcmp(a, "--threads")) o->threads = parse_int(v, "--threads");
        else if (!strcmp(a, "--kv")) o->kv = v;
        else if (!strcmp(a, "--output-type")) o->output_type = v;
        else if (!strcmp(a, "-g")) o->grammar = v;
        else if (!strcmp(a, "--lora")) {
            if (o->n_loras == (int)(sizeof o->loras / sizeof o->loras[0])) die("too many --lora");
            o->loras[o->n_loras++] = v;
        }
        else die("unknown option %s", a);
    }
}

static enum ggml_type parse_kv_type(const char *s) {
    if (!strcmp(s, "f32")) return GGML_TYPE_F32;
    if (!strcmp(s, "f16")) return GGML_TYPE_F16;
    die("unknown KV type '%s' (f32, f16)", s);
    return GGML_TYPE_F32;
}

static struct llama_model *load_model(const options *o) {
    if (!o->model) die("-m MODEL is required");
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    struct llama_model *m = llama_model_load_from_file(o->model, mp);
    if (!m) die("llama.cpp cannot load %s", o->model);
    return m;
}

static struct llama_context *new_context(struct llama_model *m, const options *o, int n_ctx, int n_batch) {
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)n_ctx;
    cp.n_batch = cp.n_ubatch = (uint32_t)n_batch;
    cp.n_seq_max = 1;
    cp.n_threads = cp.n_threads_batch = o->threads > 0 ? o->threads : 1;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;  // plain F32 softmax
    cp.type_k = cp.type_v = parse_kv_type(o->kv ? o->kv : "f16");
    cp.no_perf = true;
    struct llama_context *c = llama_init_from_model(m, cp);
    if (!c) die("llama.cpp cannot create a context of %d tokens", n_ctx);
    return c;
}

// The comma-separated token ids of list (NULL: none); *n receives the count.
static llama_token *parse_token_list(const char *list, int *n) {
    int cap = 16;
    llama_token *toks = malloc(sizeof(llama_token) * (size_t)cap);
    *n = 0;
    for (const char *p = list ? list : ""; *p;) {
        char *end = NULL;
        long v = strtol(p, &end, 10);
        if (end == p) die("invalid token list '%s'", list);
        if (*n == cap) toks = realloc(toks, sizeof(llama_token) * (size_t)(cap *= 2));
        toks[(*n)++] = (llama_token)v;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') die("invalid token list '%s'", list);
    }
    return toks;
}

// Loads o's --lora FILE[:SCALE] adapters for m and sets them on c.
static void set_loras(struct llama_model *m, struct llama_context *c, const options *o) {
    if (o->n_loras == 0) return;
    struct llama_adapter_lora *adapters[8];
    float scales[8];
    for (int i = 0; i < o->n_loras; ++i) {
        char path[4096];
        snprintf(path, sizeof path, "%s", o->loras[i]);
        scales[i] = 1.0f;
        char *colon = strrchr(path, ':');
        if (colon) {
            char *end = NULL;
            const float v = strtof(colon + 1, &end);
            if (end != colon + 1 && *end == '\0') {
                scales[i] = v;
                *colon = '\0';
            }
        }
        adapters[i] = llama_adapter_lora_init(m, path);
        if (!adapters[i]) die("llama.cpp cannot load the LoRA adapter %s", path);
    }
    if (llama_set_adapters_lora(c, adapters, (size_t)o->n_loras, scales) != 0) die("llama_set_adapters_lora failed");
}

static int cmd_logits(const options *o) {
    if (!o->tokens || !o->out) die("logits needs -t TOKENS and -o OUT");
    int n = 0;
    llama_token *toks = parse_token_list(o->tokens, &n);
    if (n == 0) die("no tokens");
    struct llama_model *m = load_model(o);
    const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(m));
    for (int i = 0; i < n; ++i)
        if (toks[i] < 0 || toks[i] >= n_vocab) die("token %d out of range", toks[i]);
    struct llama_context *c = new_context(m, o, n, n);
    set_loras(m, c, o);
    struct llama_batch b = llama_batch_init(n, 0, 1);
    for (int i = 0; i < n; ++i) {
        b.token[i] = toks[i];
        b.pos[i] = i;
        b.n_seq_id[i] = 1;
        b.seq_id[i][0] = 0;
        b.logits[i] = 1;
    }
    b.n_tokens = n;
    if (llama_decode(c, b) != 0) die("llama_decode failed");
    FILE *f = fopen(o->out, "wb");
    if (!f) die("cannot write %s", o->out);
    for (int i = 0; i < n; ++i) {
        const float *row = llama_get_logits_ith(c, i);
        if (!row || fwrite(row, sizeof(float), (size_t)n_vocab, f) != (size_t)n_vocab) die("cannot write logits");
    }
    if (fclose(f) != 0) die("cannot write %s", o->out);
    printf("{\"n_vocab\": %d, \"n_tokens\": %d}\n", n_vocab, n);
    llama_batch_free(b);
    llama_free(c);
    llama_model_free(m);
    free(toks);
    return 0;
}

static enum llama_ftype parse_ftype(const char *s) {
    static const struct { const char *name; enum llama_ftype t; } k[] = {
        {"f32", LLAMA_FTYPE_ALL_F32},         {"f16", LLAMA_FTYPE_MOSTLY_F16},       {"q8_0", LLAMA_FTYPE_MOSTLY_Q8_0},
        {"q4_0", LLAMA_FTYPE_MOSTLY_Q4_0},     {"q4_1", LLAMA_FTYPE_MOSTLY_Q4_1},     {"q5_0", LLAMA_FTYPE_MOSTLY_Q5_0},
        {"q5_1", LLAMA_FTYPE_MOSTLY_Q5_1},     {"q4_k_m", LLAMA_FTYPE_MOSTLY_Q4_K_M}, {"q5_k_m", LLAMA_FTYPE_MOSTLY_Q5_K_M},
        {"q6_k", LLAMA_FTYPE_MOSTLY_Q6_K},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; ++i)
        if (!strcmp(s, k[i].name)) return k[i].t;
    die("unknown file type '%s'", s);
    return LLAMA_FTYPE_ALL_F32;
}

static enum ggml_type parse_tensor_type(const char *s) {
    static const struct { const char *name; enum ggml_type t; } k[] = {
        {"f32", GGML_TYPE_F32}, {"f16", GGML_TYPE_F16}, {"q8_0", GGML_TYPE_Q8_0},
        {"q4_0", GGML_TYPE_Q4_0}, {"q6_k", GGML_TYPE_Q6_K},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; ++i)
        if (!strcmp(s, k[i].name)) return k[i].t;
    die("unknown tensor type '%s'", s);
    return GGML_TYPE_F32;
}

static int cmd_quantize(int argc, char **argv) {
    if (argc < 5) die("usage: quantize IN OUT FTYPE [--output-type TYPE] [--threads N]");
    options o = {0};
    parse_options(argc, argv, 5, &o);
    struct llama_model_quantize_params qp = llama_model_quantize_default_params();
    qp.ftype = parse_ftype(argv[4]);
    qp.nthread = o.threads > 0 ? o.threads : 2;
    if (o.output_type) qp.output_tensor_type = parse_tensor_type(o.output_type);
    if (llama_model_quantize(argv[2], argv[3], &qp) != 0) die("llama_model_quantize %s -> %s failed", argv[2], argv[3]);
    return 0;
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot read %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (n < 0 || fread(s, 1, (size_t)n, f) != (size_t)n) die("cannot read %s", path);
    s[n] = '\0';
    fclose(f);
    return s;
}

static llama_token *tokenize(const struct llama_vocab *v, const char *text, int *n_out) {
    const int len = (int)strlen(text);
    int n = -llama_tokenize(v, text, len, NULL, 0, true, false);
    llama_token *t = malloc(sizeof(llama_token) * (size_t)(n > 0 ? n : 1));
    if (llama_tokenize(v, text, len, t, n, true, false) != n) die("tokenization failed");
    *n_out = n;
    return t;
}

static int cmd_perplexity(const options *o) {
    if (!o->text) die("perplexity needs -f TEXT");
    const int n_ctx = o->n_ctx > 0 ? o->n_ctx : 512;
    struct llama_model *m = load_model(o);
    const struct llama_vocab *v = llama_model_get_vocab(m);
    char *text = read_file(o->text);
    const size_t len = strlen(text);
    if (len > 0 && text[len - 1] == '\n') text[len - 1] = '\0';
    int n_tok = 0;
    llama_token *tokens = tokenize(v, text, &n_tok);
    if (n_tok < 2 * n_ctx) die("the text tokenizes to %d tokens; a context of %d needs at least %d", n_tok, n_ctx, 2 * n_ctx);
    const int n_chunk_max = n_tok / n_ctx;
    const int n_chunk = o->chunks > 0 && o->chunks < n_chunk_max ? o->chunks : n_chunk_max;
    const int n_vocab = llama_vocab_n_tokens(v);
    const int first = n_ctx / 2;
    struct llama_context *c = new_context(m, o, n_ctx, n_ctx);
    struct llama_batch b = llama_batch_init(n_ctx, 0, 1);
    double nll = 0, nll2 = 0;
    int count = 0;
    for (int i = 0; i < n_chunk; ++i) {
        const int start = i * n_ctx;
        llama_memory_clear(llama_get_memory(c), true);
        for (int k = 0; k < n_ctx; ++k) {
            b.token[k] = k == 0 && llama_vocab_get_add_bos(v) ? llama_vocab_bos(v) : tokens[start + k];
            b.pos[k] = k;
            b.n_seq_id[k] = 1;
            b.seq_id[k][0] = 0;
            b.logits[k] = k >= first;
        }
        b.n_tokens = n_ctx;
        if (llama_decode(c, b) != 0) die("llama_decode failed");
        for (int k = first; k < n_ctx - 1; ++k) {
            const float *logits = llama_get_logits_ith(c, k);
            float max_logit = logits[0];
            for (int j = 1; j < n_vocab; ++j) max_logit = logits[j] > max_logit ? logits[j] : max_logit;
            double sum_exp = 0;
            for (int j = 0; j < n_vocab; ++j) sum_exp += expf(logits[j] - max_logit);
            const double lp = logits[tokens[start + k + 1]] - max_logit - log(sum_exp);
            nll += -lp;
            nll2 += lp * lp;
            ++count;
        }
    }
    nll /= count;
    nll2 /= count;
    const double ppl = exp(nll);
    nll2 -= nll * nll;
    const double err = nll2 > 0 ? sqrt(nll2 / (count - 1)) * ppl : 0;
    printf("Final estimate: PPL = %.4lf +/- %.5lf\n", ppl, err);
    printf("{\"ppl\": %.9g, \"ppl_err\": %.9g, \"tokens\": %d, \"chunks\": %d}\n", ppl, err, n_tok, n_chunk);
    llama_batch_free(b);
    llama_free(c);
    llama_model_free(m);
    free(tokens);
    free(text);
    return 0;
}

static int cmd_generate(const options *o) {
    if (!o->prompt) die("generate needs -p PROMPT");
    struct llama_model *m = load_model(o);
    const struct llama_vocab *v = llama_model_get_vocab(m);
    int n_prompt = 0;
    llama_token *prompt = tokenize(v, o->prompt, &n_prompt);
    const int n_vocab = llama_vocab_n_tokens(v);
    struct llama_context *c = new_context(m, o, n_prompt + o->n_gen + 1, n_prompt > 0 ? n_prompt : 1);
    struct llama_batch b = llama_batch_get_one(prompt, n_prompt);
    llama_token next = 0;
    for (int i = 0; i < o->n_gen; ++i) {
        if (llama_decode(c, b) != 0) die("llama_decode failed");
        const float *logits = llama_get_logits_ith(c, -1);
        llama_token best = 0;
        for (llama_token j = 1; j < n_vocab; ++j) best = logits[j] > logits[best] ? j : best;
        if (llama_vocab_is_eog(v, best)) break;
        char piece[256];
        const int len = llama_token_to_piece(v, best, piece, sizeof piece, 0, false);
        if (len < 0) die("token %d has no piece", best);
        fwrite(piece, 1, (size_t)len, stdout);
        next = best;
        b = llama_batch_get_one(&next, 1);
    }
    fflush(stdout);
    llama_free(c);
    llama_model_free(m);
    free(prompt);
    return 0;
}

static int cmd_grammar(const options *o) {
    if (!o->grammar) die("grammar needs -g GRAMMAR_FILE");
    int n = 0;
    llama_token *toks = parse_token_list(o->tokens, &n);
    char *text = read_file(o->grammar);
    struct llama_model *m = load_model(o);
    const struct llama_vocab *v = llama_model_get_vocab(m);
    const int n_vocab = llama_vocab_n_tokens(v);
    struct llama_sampler *g = llama_sampler_init_grammar(v, text, "root");
    if (!g) {
        printf("{\"parsed\": false}\n");
        return 0;
    }
    printf("{\"parsed\": true}\n");
    llama_token_data *cand = malloc(sizeof(llama_token_data) * (size_t)n_vocab);
    for (int step = 0; step <= n; ++step) {
        for (int t = 0; t < n_vocab; ++t) cand[t] = (llama_token_data){t, 0.0f, 0.0f};
        llama_token_data_array arr = {cand, (size_t)n_vocab, -1, false};
        llama_sampler_apply(g, &arr);
        int allowed_next = 0;
        printf("[");
        for (size_t i = 0, first = 1; i < arr.size; ++i) {
            if (isinf(arr.data[i].logit)) continue;
            printf(first ? "%d" : ",%d", arr.data[i].id);
            first = 0;
            if (step < n && arr.data[i].id == toks[step]) allowed_next = 1;
        }
        printf("]\n");
        if (step == n || !allowed_next) break;
        llama_sampler_accept(g, toks[step]);
    }
    llama_sampler_free(g);
    llama_model_free(m);
    free(cand);
    free(text);
    free(toks);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) die("usage: llamacpp_conformance logits|quantize|perplexity|generate|grammar ...");
    load_backends();
    const char *cmd = argv[1];
    if (!strcmp(cmd, "quantize")) return cmd_quantize(argc, argv);
    options o = {0};
    o.n_gen = 32;
    parse_options(argc, argv, 2, &o);
    if (!strcmp(cmd, "logits")) return cmd_logits(&o);
    if (!strcmp(cmd, "perplexity")) return cmd_perplexity(&o);
    if (!strcmp(cmd, "generate")) return cmd_generate(&o);
    if (!strcmp(cmd, "grammar")) return cmd_grammar(&o);
    die("unknown command '%s'", cmd);
    return 1;
}
