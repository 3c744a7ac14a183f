// llamacpp_harness: the llama.cpp side of `strata bench --peer llamacpp`.
//
// Drives the prebuilt llama.cpp CPU libraries (shipped by the pinned npm
// package @node-llama-cpp/linux-x64, see bench/README.md) through the public
// C API of that exact version (llama.h extracted from the package's git
// bundle at build time by bench/install_llamacpp.sh).
//
// Tests, mirroring llama-bench's methodology:
//   pp<N>   N_PROMPT random non-special tokens decoded in ONE llama_decode
//           (n_batch = n_ubatch = N_PROMPT), KV cleared before each rep.
//   tg<N>   N_GEN tokens decoded one per llama_decode, starting from an empty
//           KV cache (cleared before each rep), no prompt.
//   bs<S>x<N> (--batch-seqs S > 1) S sequences, each prefilled with a short
//           prompt (untimed), then N_GEN steps that decode S tokens per
//           llama_decode (one per sequence id); aggregate tokens/s.
// Each test gets one untimed warm-up run (like llama-bench) unless --no-warmup.
// --paired-probe BYTES replaces tg's timed repetitions by strata's paired
// roofline run (src/bench/roofline.h): N_GEN tokens, each decoded right after
// one read of a BYTES buffer by THREADS threads with strata's read loop
// (ggml's thread pool paused meanwhile, so its polling threads do not share
// the cores with the readers).
//
// Build: see install_llamacpp.sh (gcc -std=c11 ... -lllama -lggml -lggml-base).

#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <math.h>
#include <pthread.h>
#include <sys/mman.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ggml-backend.h"
#include "stream_sum.h"  // strata's probe read loop (src/bench), shared so both engines divide by the same reads
#include "ggml-cpu.h"
#include "ggml.h"
#include "llama.h"

#ifndef PEER_PACKAGE
#define PEER_PACKAGE "unknown"
#endif

#define MAX_REPS 1000

typedef struct {
    const char *model;
    int n_prompt;
    int n_gen;
    int threads;
    int reps;
    int batch_seqs;
    int batch_prompt;
    int json;
    int warmup;
    int verbose;
    enum llama_flash_attn_type flash_attn;
    uint64_t seed;
    int poll;  // ggml thread pool polling level 0..100 (llama-bench --poll, default 50)
    uint64_t paired_probe;  // bytes; 0: no paired roofline run
} options;

// ---------------------------------------------------------------- utilities

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "llamacpp_harness: error: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng_next(void) {  // xorshift64*
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static void json_str(FILE *f, const char *s) {
    if (!s) {
        fputs("null", f);
        return;
    }
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
            case '"': fputs("\\\"", f); break;
            case '\\': fputs("\\\\", f); break;
            case '\n': fputs("\\n", f); break;
            case '\r': fputs("\\r", f); break;
            case '\t': fputs("\\t", f); break;
            default:
                if (*p < 0x20) fprintf(f, "\\u%04x", *p);
                else fputc(*p, f);
        }
    }
    fputc('"', f);
}

// 1-minute load average and online CPUs: lets a reader spot contended runs.
static double loadavg_1m(void) {
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1) l = -1;
        fclose(f);
    }
    return l;
}

// This process's peak resident set so far (VmHWM of /proc/self/status), bytes;
// 0 if unknown. Counts the touched pages of the mmapped model as well as
// anonymous memory (KV cache, compute buffers, repacked weights), like
// strata's own figure. Not getrusage's ru_maxrss: Linux carries that across
// execve, so a harness spawned by a big parent (strata bench uses posix_spawn)
// would report the parent's peak.
static unsigned long long peak_rss_bytes(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    unsigned long long kib = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %llu kB", &kib) == 1) break;
    fclose(f);
    return kib * 1024ull;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// ------------------------------------------------------ llama.cpp build info

typedef struct {
    char lib_dir[4096];        // directory of libllama (the npm package's bins/)
    char cpu_backend[256];     // file name of the libggml-cpu-*.so that got loaded
    char cpu_backend_path[4096];
    const char *cpu_device;    // ggml CPU device description (CPU model name)
    const char *llama_version; // llama_version()
    const char *ggml_version;
    const char *ggml_commit;
    int have_build_number;
    int build_number;          // LLAMA_BUILD_NUMBER from libllama-common.so
    const char *commit;        // LLAMA_COMMIT
    const char *compiler;      // LLAMA_COMPILER
    const char *build_target;  // LLAMA_BUILD_TARGET
    const char *system_info;   // llama_print_system_info()
} build_info;

static build_info BI;

static int find_cpu_backend_cb(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    (void)data;
    const char *name = info->dlpi_name;
    if (!name || !*name) return 0;
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    if (strncmp(base, "libggml-cpu", 11) == 0) {
        snprintf(BI.cpu_backend, sizeof BI.cpu_backend, "%s", base);
        snprintf(BI.cpu_backend_path, sizeof BI.cpu_backend_path, "%s", name);
        return 1;
    }
    return 0;
}

static void collect_lib_dir(void) {
    Dl_info di;
    if (dladdr((void *)&llama_backend_init, &di) && di.dli_fname) {
        snprintf(BI.lib_dir, sizeof BI.lib_dir, "%s", di.dli_fname);
        char *slash = strrchr(BI.lib_dir, '/');
        if (slash) *slash = '\0';
        else snprintf(BI.lib_dir, sizeof BI.lib_dir, ".");
    } else {
        snprintf(BI.lib_dir, sizeof BI.lib_dir, ".");
    }
}

static void collect_build_info(void) {
    BI.llama_version = llama_version();
    BI.ggml_version = ggml_version();
    BI.ggml_commit = ggml_commit();
    BI.system_info = llama_print_system_info();
    ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    BI.cpu_device = cpu ? ggml_backend_dev_description(cpu) : NULL;
    dl_iterate_phdr(find_cpu_backend_cb, NULL);

    // Build number / commit live in libllama-common.so (C++ globals with C
    // linkage names); it is optional, so look them up dynamically.
    char path[4200];
    snprintf(path, sizeof path, "%s/libllama-common.so", BI.lib_dir);
    void *h = dlopen(path, RTLD_LAZY | RTLD_LOCAL);
    if (h) {
        int *bn = (int *)dlsym(h, "LLAMA_BUILD_NUMBER");
        const char **c = (const char **)dlsym(h, "LLAMA_COMMIT");
        const char **comp = (const char **)dlsym(h, "LLAMA_COMPILER");
        const char **tgt = (const char **)dlsym(h, "LLAMA_BUILD_TARGET");
        if (bn) {
            BI.have_build_number = 1;
            BI.build_number = *bn;
        }
        if (c) BI.commit = *c;
        if (comp) BI.compiler = *comp;
        if (tgt) BI.build_target = *tgt;
        // keep h open: the strings point into it
    }
}

// What "flash_attn = auto" resolved to for the last context created
// (llama.cpp only reports it in its log).
static const char *fa_resolved = "unknown";
static int log_verbose = 0;

static void harness_log(enum ggml_log_level level, const char *text, void *user) {
    (void)user;
    if (strstr(text, "Flash Attention enabled")) fa_resolved = "enabled";
    else if (strstr(text, "Flash Attention not supported")) fa_resolved = "disabled";
    if (log_verbose || level == GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

// ---------------------------------------------------------------- tokens

typedef struct {
    const struct llama_vocab *vocab;
    int32_t n_vocab;
    llama_token *pool;  // non-special token ids
    int32_t n_pool;
    int add_bos;
    llama_token bos;
} token_source;

static void token_source_init(token_source *ts, const struct llama_model *model) {
    ts->vocab = llama_model_get_vocab(model);
    ts->n_vocab = llama_vocab_n_tokens(ts->vocab);
    ts->add_bos = llama_vocab_get_add_bos(ts->vocab);
    ts->bos = llama_vocab_bos(ts->vocab);
    ts->pool = malloc(sizeof(llama_token) * (size_t)(ts->n_vocab > 0 ? ts->n_vocab : 1));
    ts->n_pool = 0;
    for (llama_token t = 0; t < ts->n_vocab; t++) {
        enum llama_token_attr a = llama_vocab_get_attr(ts->vocab, t);
        if ((a & (LLAMA_TOKEN_ATTR_NORMAL | LLAMA_TOKEN_ATTR_BYTE)) &&
            !(a & (LLAMA_TOKEN_ATTR_CONTROL | LLAMA_TOKEN_ATTR_UNKNOWN | LLAMA_TOKEN_ATTR_UNUSED)) &&
            !llama_vocab_is_eog(ts->vocab, t) && !llama_vocab_is_control(ts->vocab, t)) {
            ts->pool[ts->n_pool++] = t;
        }
    }
    if (ts->n_pool == 0) {  // odd vocab: fall back to every id
        for (llama_token t = 0; t < ts->n_vocab; t++) ts->pool[ts->n_pool++] = t;
    }
}

static llama_token token_random(const token_source *ts) {
    return ts->pool[rng_next() % (uint64_t)ts->n_pool];
}

// first token of a sequence: BOS when the model wants one (like llama-bench)
static llama_token token_first(const token_source *ts) {
    return (ts->add_bos && ts->bos >= 0) ? ts->bos : token_random(ts);
}

// ---------------------------------------------------------------- contexts

typedef struct {
    struct llama_context *ctx;
    struct ggml_threadpool *tp;
    uint32_t n_ctx, n_batch, n_ubatch, n_seq_max;
    const char *flash_attn;  // resolved: enabled / disabled / unknown
} bench_ctx;

typedef struct ggml_threadpool *(*threadpool_new_fn)(struct ggml_threadpool_params *);
typedef void (*threadpool_free_fn)(struct ggml_threadpool *);
static threadpool_new_fn tp_new;
static threadpool_free_fn tp_free;

static void bench_ctx_open(bench_ctx *bc, struct llama_model *model, const options *o, uint32_t n_ctx,
                           uint32_t n_batch, uint32_t n_ubatch, uint32_t n_seq_max) {
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_batch = n_batch;
    cp.n_ubatch = n_ubatch;
    cp.n_seq_max = n_seq_max;
    cp.n_threads = o->threads;
    cp.n_threads_batch = o->threads;
    cp.type_k = GGML_TYPE_F16;  // llama-bench defaults
    cp.type_v = GGML_TYPE_F16;
    cp.flash_attn_type = o->flash_attn;
    cp.embeddings = false;
    cp.swa_full = false;  // as llama-bench
    cp.no_perf = true;
    fa_resolved = o->flash_attn == LLAMA_FLASH_ATTN_TYPE_ENABLED    ? "enabled"
                  : o->flash_attn == LLAMA_FLASH_ATTN_TYPE_DISABLED ? "disabled"
                                                                    : "unknown";
    bc->ctx = llama_init_from_model(model, cp);
    if (!bc->ctx) die("llama_init_from_model failed (n_ctx=%u n_batch=%u n_ubatch=%u n_seq_max=%u)", n_ctx, n_batch,
                      n_ubatch, n_seq_max);
    bc->n_ctx = llama_n_ctx(bc->ctx);
    bc->n_batch = llama_n_batch(bc->ctx);
    bc->n_ubatch = llama_n_ubatch(bc->ctx);
    bc->n_seq_max = n_seq_max;
    bc->flash_attn = fa_resolved;
    bc->tp = NULL;
    if (tp_new) {  // explicit threadpool, exactly as llama-bench sets it up
        struct ggml_threadpool_params tpp = ggml_threadpool_params_default(o->threads);
        tpp.poll = (uint32_t)o->poll;
        bc->tp = tp_new(&tpp);
        if (!bc->tp) die("ggml_threadpool_new failed for %d threads", o->threads);
        llama_attach_threadpool(bc->ctx, bc->tp, NULL);
    }
    llama_set_n_threads(bc->ctx, o->threads, o->threads);
    llama_memory_clear(llama_get_memory(bc->ctx), false);
}

static void bench_ctx_close(bench_ctx *bc) {
    if (bc->ctx) {
        llama_detach_threadpool(bc->ctx);
        llama_free(bc->ctx);
    }
    if (bc->tp && tp_free) tp_free(bc->tp);
    memset(bc, 0, sizeof *bc);
}

static void decode_or_die(struct llama_context *ctx, struct llama_batch b, const char *what) {
    int32_t rc = llama_decode(ctx, b);
    if (rc != 0) die("llama_decode failed during %s (rc=%d)", what, rc);
}

// ---------------------------------------------------------------- paired roofline probe

// strata's ReadProbe (src/bench/read_bandwidth.h) in C: a buffer in huge pages
// where the OS allows, each thread's share written by that thread, readers
// parked at a barrier between reads; a read lasts from the first start to
// the last end, as the readers stamp them.
typedef struct {
    uint8_t *buf;
    uint64_t bytes;
    int threads;
    int avx512;
    int stop;
    pthread_barrier_t bar;  // the readers and the caller
    pthread_t *th;
    double *starts, *ends;
    int wrong_sum;
} probe;

typedef struct {
    probe *p;
    int t;
} probe_arg;

static void *probe_reader(void *arg) {
    probe *p = ((probe_arg *)arg)->p;
    const int t = ((probe_arg *)arg)->t;
    const uint64_t chunk = p->bytes / 8 / (uint64_t)p->threads, first = chunk * (uint64_t)t;
    uint64_t *w = (uint64_t *)p->buf + first;
    for (uint64_t i = 0; i < chunk; i++) w[i] = first + i;
    // sum of first .. first+chunk-1 mod 2^64, halving the even factor first
    const uint64_t ends = 2 * first + chunk - 1;
    const uint64_t expected = chunk % 2 == 0 ? chunk / 2 * ends : ends / 2 * chunk;
    pthread_barrier_wait(&p->bar);
    for (;;) {
        pthread_barrier_wait(&p->bar);
        if (p->stop) return NULL;
        p->starts[t] = now_s();
        const uint64_t sum = p->avx512 ? strata_stream_sum_avx512((const uint8_t *)w, chunk * 8)
                                       : strata_stream_sum_portable((const uint8_t *)w, chunk * 8);
        p->ends[t] = now_s();
        if (sum != expected) p->wrong_sum = 1;
        pthread_barrier_wait(&p->bar);
    }
}

static void probe_open(probe *p, uint64_t bytes, int threads) {
    static probe_arg args[1024];
    if (threads > 1024) die("--paired-probe supports up to 1024 threads");
    memset(p, 0, sizeof *p);
    p->bytes = bytes;
    p->threads = threads;
    p->avx512 = __builtin_cpu_supports("avx512f");
    void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) die("cannot map the %llu-byte probe buffer", (unsigned long long)bytes);
    madvise(m, bytes, MADV_HUGEPAGE);
    p->buf = m;
    p->th = calloc((size_t)threads, sizeof *p->th);
    p->starts = calloc((size_t)threads, sizeof(double));
    p->ends = calloc((size_t)threads, sizeof(double));
    if (!p->th || !p->starts || !p->ends) die("out of memory");
    pthread_barrier_init(&p->bar, NULL, (unsigned)threads + 1);
    for (int t = 0; t < threads; t++) {
        args[t].p = p;
        args[t].t = t;
        if (pthread_create(&p->th[t], NULL, probe_reader, &args[t]) != 0) die("cannot start a probe thread");
    }
    pthread_barrier_wait(&p->bar);  // every page written
}

// One read of the whole buffer: bytes/s.
static double probe_read(probe *p) {
    pthread_barrier_wait(&p->bar);
    pthread_barrier_wait(&p->bar);
    if (p->wrong_sum) die("probe: a streaming sum does not match the buffer's contents");
    double first = p->starts[0], last = p->ends[0];
    for (int t = 1; t < p->threads; t++) {
        if (p->starts[t] < first) first = p->starts[t];
        if (p->ends[t] > last) last = p->ends[t];
    }
    return (double)p->bytes / (last - first);
}

static void probe_close(probe *p) {
    p->stop = 1;
    pthread_barrier_wait(&p->bar);
    for (int t = 0; t < p->threads; t++) pthread_join(p->th[t], NULL);
    pthread_barrier_destroy(&p->bar);
    munmap(p->buf, p->bytes);
    free(p->th);
    free(p->starts);
    free(p->ends);
}

// ggml_threadpool_pause/resume of the loaded CPU variant (exported by it, not
// by the backend registry); NULL if it lacks them.
typedef void (*threadpool_fn)(struct ggml_threadpool *);
static threadpool_fn tp_pause, tp_resume;

// ---------------------------------------------------------------- tests

// pp: all n_prompt tokens in one llama_decode call.
static double run_pp(bench_ctx *bc, const token_source *ts, int n_prompt, llama_token *buf) {
    llama_memory_clear(llama_get_memory(bc->ctx), false);
    buf[0] = token_first(ts);
    for (int i = 1; i < n_prompt; i++) buf[i] = token_random(ts);
    double t0 = now_s();
    decode_or_die(bc->ctx, llama_batch_get_one(buf, n_prompt), "prompt processing");
    llama_synchronize(bc->ctx);
    return now_s() - t0;
}

// tg: n_gen single-token decodes from an empty KV cache.
static double run_tg(bench_ctx *bc, const token_source *ts, int n_gen) {
    llama_memory_clear(llama_get_memory(bc->ctx), false);
    llama_token tok = token_first(ts);
    double t0 = now_s();
    for (int i = 0; i < n_gen; i++) {
        decode_or_die(bc->ctx, llama_batch_get_one(&tok, 1), "generation");
        llama_synchronize(bc->ctx);
        tok = token_random(ts);
    }
    return now_s() - t0;
}

// tg as strata's paired roofline run: token i is decoded right after probe
// read i, the pool paused during the read.
static void run_tg_paired(bench_ctx *bc, const token_source *ts, int n_gen, probe *p, double *token_s,
                          double *probe_bps) {
    llama_memory_clear(llama_get_memory(bc->ctx), false);
    llama_token tok = token_first(ts);
    for (int i = 0; i < n_gen; i++) {
        if (bc->tp && tp_pause) tp_pause(bc->tp);
        probe_bps[i] = probe_read(p);
        if (bc->tp && tp_resume) tp_resume(bc->tp);
        double t0 = now_s();
        decode_or_die(bc->ctx, llama_batch_get_one(&tok, 1), "generation");
        llama_synchronize(bc->ctx);
        token_s[i] = now_s() - t0;
        tok = token_random(ts);
    }
}

static void batch_add(struct llama_batch *b, llama_token tok, llama_pos pos, llama_seq_id seq, int8_t logits) {
    int i = b->n_tokens++;
    b->token[i] = tok;
    b->pos[i] = pos;
    b->n_seq_id[i] = 1;
    b->seq_id[i][0] = seq;
    b->logits[i] = logits;
}

// batched generation: prefill S sequences with n_pre tokens each (untimed),
// then n_gen steps of S tokens (one per sequence) per llama_decode.
// Returns the timed seconds of the generation steps; *prefill_s gets the
// prefill time.
static double run_batched(bench_ctx *bc, const token_source *ts, int S, int n_pre, int n_gen, struct llama_batch *b,
                          double *prefill_s) {
    llama_memory_clear(llama_get_memory(bc->ctx), false);
    b->n_tokens = 0;
    for (int s = 0; s < S; s++) {
        for (int i = 0; i < n_pre; i++) {
            batch_add(b, i == 0 ? token_first(ts) : token_random(ts), i, s, i == n_pre - 1);
        }
    }
    double t0 = now_s();
    decode_or_die(bc->ctx, *b, "batched prefill");
    llama_synchronize(bc->ctx);
    double t1 = now_s();
    if (prefill_s) *prefill_s = t1 - t0;
    for (int step = 0; step < n_gen; step++) {
        b->n_tokens = 0;
        for (int s = 0; s < S; s++) batch_add(b, token_random(ts), n_pre + step, s, 1);
        decode_or_die(bc->ctx, *b, "batched generation");
        llama_synchronize(bc->ctx);
    }
    return now_s() - t1;
}

// ---------------------------------------------------------------- reporting

typedef struct {
    const char *kind;  // "pp", "tg", "batched"
    char name[64];
    int n_prompt, n_gen, batch_seqs, batch_prompt;
    int reps;
    double tps[MAX_REPS];
    double secs[MAX_REPS];
    double prefill_tps[MAX_REPS];  // batched only
    long tokens_per_rep;
    double load_before, load_after;
    bench_ctx bc;  // for reporting the effective context geometry
    int paired;                        // tokens in the paired run (tg with --paired-probe)
    double *paired_token_s, *paired_probe_bps;  // [paired]
    int paired_pool_paused;
} result;

typedef struct {
    double median, min, max, mean, stddev;
} stats;

static stats compute_stats(const double *v, int n) {
    stats st = {0, 0, 0, 0, 0};
    if (n <= 0) return st;
    double tmp[MAX_REPS];
    memcpy(tmp, v, sizeof(double) * (size_t)n);
    qsort(tmp, (size_t)n, sizeof(double), cmp_double);
    st.min = tmp[0];
    st.max = tmp[n - 1];
    st.median = (n % 2) ? tmp[n / 2] : 0.5 * (tmp[n / 2 - 1] + tmp[n / 2]);
    double sum = 0;
    for (int i = 0; i < n; i++) sum += v[i];
    st.mean = sum / n;
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (v[i] - st.mean) * (v[i] - st.mean);
    st.stddev = n > 1 ? sqrt(ss / (n - 1)) : 0.0;
    return st;
}

static void json_array(FILE *f, const double *v, int n, const char *fmt) {
    fputc('[', f);
    for (int i = 0; i < n; i++) {
        if (i) fputc(',', f);
        fprintf(f, fmt, v[i]);
    }
    fputc(']', f);
}

static const char *fa_name(enum llama_flash_attn_type t) {
    switch (t) {
        case LLAMA_FLASH_ATTN_TYPE_AUTO: return "auto";
        case LLAMA_FLASH_ATTN_TYPE_ENABLED: return "on";
        case LLAMA_FLASH_ATTN_TYPE_DISABLED: return "off";
    }
    return "?";
}

typedef struct {
    char desc[256];
    uint64_t size;
    uint64_t n_params;
    double load_seconds;  // wall time of llama_model_load_from_file
    int32_t n_vocab;
    int32_t n_layer;
    int32_t n_embd;
} model_info;

static void print_json(const result *r, const options *o, const model_info *mi) {
    stats st = compute_stats(r->tps, r->reps);
    FILE *f = stdout;
    fprintf(f, "{\"engine\":\"llamacpp\",\"test\":");
    json_str(f, r->name);
    fprintf(f, ",\"kind\":\"%s\",\"n_prompt\":%d,\"n_gen\":%d,\"batch_seqs\":%d", r->kind, r->n_prompt, r->n_gen,
            r->batch_seqs);
    if (strcmp(r->kind, "batched") == 0) fprintf(f, ",\"batch_prompt\":%d", r->batch_prompt);
    fprintf(f, ",\"threads\":%d,\"reps\":%d,\"warmup\":%s,\"tokens_per_rep\":%ld", o->threads, r->reps,
            o->warmup ? "true" : "false", r->tokens_per_rep);
    fprintf(f, ",\"unit\":\"tokens/s\",\"tokens_per_s\":");
    json_array(f, r->tps, r->reps, "%.4f");
    fprintf(f, ",\"median\":%.4f,\"min\":%.4f,\"max\":%.4f,\"mean\":%.4f,\"stddev\":%.4f", st.median, st.min, st.max,
            st.mean, st.stddev);
    fprintf(f, ",\"seconds\":");
    json_array(f, r->secs, r->reps, "%.6f");
    fprintf(f, ",\"peak_rss_bytes\":%llu,\"load_seconds\":%.6f", peak_rss_bytes(), mi->load_seconds);
    if (r->paired) {
        fprintf(f, ",\"paired_probe_bytes\":%llu,\"paired_pool_paused\":%s,\"paired_token_s\":",
                (unsigned long long)o->paired_probe, r->paired_pool_paused ? "true" : "false");
        json_array(f, r->paired_token_s, r->paired, "%.7f");
        fprintf(f, ",\"paired_probe_bytes_per_s\":");
        json_array(f, r->paired_probe_bps, r->paired, "%.6e");
    }
    if (strcmp(r->kind, "batched") == 0) {
        fprintf(f, ",\"prefill_tokens_per_s\":");
        json_array(f, r->prefill_tps, r->reps, "%.4f");
    }
    fprintf(f, ",\"context\":{\"n_ctx\":%u,\"n_batch\":%u,\"n_ubatch\":%u,\"n_seq_max\":%u,\"type_k\":\"f16\","
               "\"type_v\":\"f16\",\"flash_attn\":\"%s\",\"flash_attn_resolved\":\"%s\"}",
            r->bc.n_ctx, r->bc.n_batch, r->bc.n_ubatch, r->bc.n_seq_max, fa_name(o->flash_attn), r->bc.flash_attn);
    fprintf(f, ",\"host\":{\"n_cpus_online\":%ld,\"loadavg_1m_before\":%.2f,\"loadavg_1m_after\":%.2f,"
               "\"poll\":%d}",
            sysconf(_SC_NPROCESSORS_ONLN), r->load_before, r->load_after, o->poll);
    fprintf(f, ",\"model\":{\"path\":");
    json_str(f, o->model);
    fprintf(f, ",\"desc\":");
    json_str(f, mi->desc);
    fprintf(f, ",\"size_bytes\":%llu,\"n_params\":%llu,\"n_vocab\":%d,\"n_layer\":%d,\"n_embd\":%d}",
            (unsigned long long)mi->size, (unsigned long long)mi->n_params, mi->n_vocab, mi->n_layer, mi->n_embd);
    fprintf(f, ",\"llamacpp\":{\"package\":");
    json_str(f, PEER_PACKAGE);
    fprintf(f, ",\"llama_version\":");
    json_str(f, BI.llama_version);
    fprintf(f, ",\"build_number\":");
    if (BI.have_build_number) fprintf(f, "%d", BI.build_number);
    else fputs("null", f);
    fprintf(f, ",\"commit\":");
    json_str(f, BI.commit);
    fprintf(f, ",\"compiler\":");
    json_str(f, BI.compiler);
    fprintf(f, ",\"build_target\":");
    json_str(f, BI.build_target);
    fprintf(f, ",\"ggml_version\":");
    json_str(f, BI.ggml_version);
    fprintf(f, ",\"ggml_commit\":");
    json_str(f, BI.ggml_commit);
    fprintf(f, ",\"cpu_backend\":");
    json_str(f, BI.cpu_backend[0] ? BI.cpu_backend : NULL);
    fprintf(f, ",\"cpu_backend_path\":");
    json_str(f, BI.cpu_backend_path[0] ? BI.cpu_backend_path : NULL);
    fprintf(f, ",\"cpu_device\":");
    json_str(f, BI.cpu_device);
    fprintf(f, ",\"system_info\":");
    json_str(f, BI.system_info);
    fprintf(f, "}}\n");
    fflush(f);
}

static void print_text(const result *r, const options *o) {
    stats st = compute_stats(r->tps, r->reps);
    (void)o;
    printf("%-14s median %10.2f t/s  min %10.2f  max %10.2f  (reps:", r->name, st.median, st.min, st.max);
    for (int i = 0; i < r->reps; i++) printf(" %.2f", r->tps[i]);
    printf(")  peak RSS %.1f MiB\n", peak_rss_bytes() / 1048576.0);
    fflush(stdout);
}

// ---------------------------------------------------------------- main

static void usage(FILE *f, const char *argv0) {
    fprintf(f,
            "usage: %s -m MODEL.gguf -p N_PROMPT -n N_GEN -t THREADS -r REPS [options]\n"
            "  -m, --model PATH        GGUF model\n"
            "  -p, --n-prompt N        prompt-processing test: N tokens in one llama_decode (0 = skip; default 512)\n"
            "  -n, --n-gen N           generation test: N single-token decodes (0 = skip; default 128)\n"
            "  -t, --threads N         threads (default 2)\n"
            "  -r, --reps N            measured repetitions per test (default 3)\n"
            "  --batch-seqs S          also run the batched test with S sequences (S > 1)\n"
            "  --batch-prompt P        prompt tokens per sequence before the batched test (default 16)\n"
            "  --flash-attn auto|on|off  (default auto, as llama-bench)\n"
            "  --seed N                token RNG seed (default 42)\n"
            "  --poll N                thread pool polling level 0..100 (default 50, as llama-bench)\n"
            "  --paired-probe MIB      tg: instead of timed reps, decode each token right after one read of a MIB MiB\n"
            "                          buffer (strata's paired roofline run)\n"
            "  --no-warmup             skip the untimed warm-up run of each test\n"
            "  --json                  one JSON object per test on stdout\n"
            "  --verbose               show llama.cpp's log\n"
            "  --version               print llama.cpp build info and exit\n",
            argv0);
}

static int parse_int(const char *s, const char *what) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < 0 || v > 1000000000L) die("bad value for %s: '%s'", what, s);
    return (int)v;
}

int main(int argc, char **argv) {
    options o = {NULL, 512, 128, 2, 3, 1, 16, 0, 1, 0, LLAMA_FLASH_ATTN_TYPE_AUTO, 42, 50, 0};
    int want_version = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
#define NEXT() (i + 1 < argc ? argv[++i] : (die("missing value after %s", a), (char *)NULL))
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) o.model = NEXT();
        else if (!strcmp(a, "-p") || !strcmp(a, "--n-prompt")) o.n_prompt = parse_int(NEXT(), a);
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-gen")) o.n_gen = parse_int(NEXT(), a);
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) o.threads = parse_int(NEXT(), a);
        else if (!strcmp(a, "-r") || !strcmp(a, "--reps")) o.reps = parse_int(NEXT(), a);
        else if (!strcmp(a, "--batch-seqs")) o.batch_seqs = parse_int(NEXT(), a);
        else if (!strcmp(a, "--batch-prompt")) o.batch_prompt = parse_int(NEXT(), a);
        else if (!strcmp(a, "--seed")) o.seed = (uint64_t)parse_int(NEXT(), a);
        else if (!strcmp(a, "--poll")) o.poll = parse_int(NEXT(), a);
        else if (!strcmp(a, "--paired-probe")) o.paired_probe = (uint64_t)parse_int(NEXT(), a) << 20;
        else if (!strcmp(a, "--flash-attn") || !strcmp(a, "-fa")) {
            const char *v = NEXT();
            if (!strcmp(v, "auto")) o.flash_attn = LLAMA_FLASH_ATTN_TYPE_AUTO;
            else if (!strcmp(v, "on") || !strcmp(v, "1")) o.flash_attn = LLAMA_FLASH_ATTN_TYPE_ENABLED;
            else if (!strcmp(v, "off") || !strcmp(v, "0")) o.flash_attn = LLAMA_FLASH_ATTN_TYPE_DISABLED;
            else die("--flash-attn wants auto, on or off");
        } else if (!strcmp(a, "--no-warmup")) o.warmup = 0;
        else if (!strcmp(a, "--json")) o.json = 1;
        else if (!strcmp(a, "--verbose") || !strcmp(a, "-v")) o.verbose = 1;
        else if (!strcmp(a, "--version")) want_version = 1;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout, argv[0]);
            return 0;
        } else {
            usage(stderr, argv[0]);
            die("unknown argument '%s'", a);
        }
#undef NEXT
    }
    if (!want_version && !o.model) {
        usage(stderr, argv[0]);
        die("-m MODEL is required");
    }
    if (o.threads < 1) die("-t must be >= 1");
    if (o.reps < 1 || o.reps > MAX_REPS) die("-r must be in 1..%d", MAX_REPS);
    if (o.batch_seqs < 1) die("--batch-seqs must be >= 1");
    if (o.batch_seqs > 1 && o.n_gen < 1) die("--batch-seqs needs -n N_GEN > 0");
    if (o.batch_seqs > (int)llama_max_parallel_sequences())
        die("--batch-seqs %d exceeds llama.cpp's limit of %zu", o.batch_seqs, llama_max_parallel_sequences());
    if (o.batch_prompt < 1) die("--batch-prompt must be >= 1");
    if (o.poll > 100) die("--poll must be in 0..100");
    if (o.paired_probe && (o.n_gen < 1 || o.paired_probe % ((uint64_t)o.threads << 21) != 0))
        die("--paired-probe needs -n N_GEN > 0 and a size that splits into 2 MiB pages per thread");
    rng_state ^= o.seed * 0xD1B54A32D192ED03ull;
    if (!rng_state) rng_state = 1;

    log_verbose = o.verbose;
    llama_log_set(harness_log, NULL);

    // llama.cpp's CPU backend is a set of runtime-selected variants
    // (libggml-cpu-<arch>.so) living beside libllama: load the best one.
    collect_lib_dir();
    ggml_backend_load_all_from_path(BI.lib_dir);
    ggml_backend_dev_t cpu_dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    if (!cpu_dev) die("no CPU backend could be loaded from %s", BI.lib_dir);
    ggml_backend_reg_t cpu_reg = ggml_backend_dev_backend_reg(cpu_dev);
    tp_new = (threadpool_new_fn)ggml_backend_reg_get_proc_address(cpu_reg, "ggml_threadpool_new");
    tp_free = (threadpool_free_fn)ggml_backend_reg_get_proc_address(cpu_reg, "ggml_threadpool_free");

    llama_backend_init();
    collect_build_info();
    if (BI.cpu_backend_path[0]) {
        void *cpu_lib = dlopen(BI.cpu_backend_path, RTLD_LAZY | RTLD_NOLOAD);
        if (cpu_lib) {
            tp_pause = (threadpool_fn)dlsym(cpu_lib, "ggml_threadpool_pause");
            tp_resume = (threadpool_fn)dlsym(cpu_lib, "ggml_threadpool_resume");
        }
    }

    if (want_version) {
        printf("llama.cpp  version %s  build %d  commit %s\n", BI.llama_version ? BI.llama_version : "?",
               BI.have_build_number ? BI.build_number : -1, BI.commit ? BI.commit : "?");
        printf("package    %s\n", PEER_PACKAGE);
        printf("ggml       %s (%s)\n", BI.ggml_version, BI.ggml_commit);
        printf("compiler   %s  target %s\n", BI.compiler ? BI.compiler : "?", BI.build_target ? BI.build_target : "?");
        printf("cpu        %s  backend %s\n", BI.cpu_device ? BI.cpu_device : "?", BI.cpu_backend_path);
        printf("system     %s\n", BI.system_info);
        return 0;
    }

    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;  // CPU only
    const double load_t0 = now_s();
    struct llama_model *model = llama_model_load_from_file(o.model, mp);
    if (!model) die("failed to load model '%s'", o.model);

    model_info mi;
    memset(&mi, 0, sizeof mi);
    mi.load_seconds = now_s() - load_t0;
    llama_model_desc(model, mi.desc, sizeof mi.desc);
    mi.size = llama_model_size(model);
    mi.n_params = llama_model_n_params(model);
    mi.n_layer = llama_model_n_layer(model);
    mi.n_embd = llama_model_n_embd(model);

    token_source ts;
    token_source_init(&ts, model);
    mi.n_vocab = ts.n_vocab;

    if (!o.json) {
        printf("llama.cpp %s (build %d, %s) via %s, CPU backend %s, %d threads\n", BI.llama_version,
               BI.have_build_number ? BI.build_number : -1, BI.commit ? BI.commit : "?", PEER_PACKAGE,
               BI.cpu_backend[0] ? BI.cpu_backend : "?", o.threads);
        printf("model %s: %s, %.2f MiB, %.2f M params, loaded in %.3f s\n", o.model, mi.desc, mi.size / 1048576.0,
               mi.n_params / 1e6, mi.load_seconds);
    }

    {
        double l = loadavg_1m();
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        if (ncpu > 0 && l > 0.5 * (double)ncpu)
            fprintf(stderr,
                    "llamacpp_harness: warning: load average %.2f on %ld CPUs: other work shares the cores, "
                    "numbers will be noisy (ggml threads spin at barriers)\n",
                    l, ncpu);
    }

    static result r;

    // ---- pp
    if (o.n_prompt > 0) {
        memset(&r, 0, sizeof r);
        r.kind = "pp";
        snprintf(r.name, sizeof r.name, "pp%d", o.n_prompt);
        r.n_prompt = o.n_prompt;
        r.batch_seqs = 1;
        r.reps = o.reps;
        r.load_before = loadavg_1m();
        r.tokens_per_rep = o.n_prompt;
        bench_ctx_open(&r.bc, model, &o, (uint32_t)o.n_prompt, (uint32_t)o.n_prompt, (uint32_t)o.n_prompt, 1);
        llama_token *buf = malloc(sizeof(llama_token) * (size_t)o.n_prompt);
        if (o.warmup) run_pp(&r.bc, &ts, o.n_prompt, buf);
        for (int i = 0; i < o.reps; i++) {
            r.secs[i] = run_pp(&r.bc, &ts, o.n_prompt, buf);
            r.tps[i] = o.n_prompt / r.secs[i];
        }
        free(buf);
        r.load_after = loadavg_1m();
        if (o.json) print_json(&r, &o, &mi);
        else print_text(&r, &o);
        bench_ctx_close(&r.bc);
    }

    // ---- tg
    if (o.n_gen > 0) {
        memset(&r, 0, sizeof r);
        r.kind = "tg";
        snprintf(r.name, sizeof r.name, "tg%d", o.n_gen);
        r.n_gen = o.n_gen;
        r.batch_seqs = 1;
        r.reps = o.reps;
        r.load_before = loadavg_1m();
        r.tokens_per_rep = o.n_gen;
        bench_ctx_open(&r.bc, model, &o, (uint32_t)o.n_gen, 512, 512, 1);
        if (o.warmup) run_tg(&r.bc, &ts, 1);
        if (o.paired_probe) {
            probe p;
            probe_open(&p, o.paired_probe, o.threads);
            r.reps = 0;
            r.paired = o.n_gen;
            r.paired_token_s = malloc(sizeof(double) * (size_t)o.n_gen);
            r.paired_probe_bps = malloc(sizeof(double) * (size_t)o.n_gen);
            if (!r.paired_token_s || !r.paired_probe_bps) die("out of memory");
            r.paired_pool_paused = r.bc.tp && tp_pause && tp_resume;
            run_tg_paired(&r.bc, &ts, o.n_gen, &p, r.paired_token_s, r.paired_probe_bps);
            probe_close(&p);
        }
        for (int i = 0; i < r.reps; i++) {
            r.secs[i] = run_tg(&r.bc, &ts, o.n_gen);
            r.tps[i] = o.n_gen / r.secs[i];
        }
        r.load_after = loadavg_1m();
        if (o.json) print_json(&r, &o, &mi);
        else print_text(&r, &o);
        free(r.paired_token_s);
        free(r.paired_probe_bps);
        bench_ctx_close(&r.bc);
    }

    // ---- batched
    if (o.batch_seqs > 1) {
        const int S = o.batch_seqs, P = o.batch_prompt;
        memset(&r, 0, sizeof r);
        r.kind = "batched";
        snprintf(r.name, sizeof r.name, "bs%dx%d", S, o.n_gen);
        r.n_gen = o.n_gen;
        r.batch_seqs = S;
        r.batch_prompt = P;
        r.reps = o.reps;
        r.load_before = loadavg_1m();
        r.tokens_per_rep = (long)S * o.n_gen;
        uint32_t nb = (uint32_t)(S * P > S ? S * P : S);
        // per-sequence KV of P + N_GEN cells (llama.cpp pads each to 256)
        uint32_t per_seq = (uint32_t)(((P + o.n_gen) + 255) / 256 * 256);
        bench_ctx_open(&r.bc, model, &o, per_seq * (uint32_t)S, nb, nb, (uint32_t)S);
        struct llama_batch b = llama_batch_init((int32_t)nb, 0, 1);
        double pre;
        if (o.warmup) run_batched(&r.bc, &ts, S, P, 1, &b, &pre);
        for (int i = 0; i < o.reps; i++) {
            r.secs[i] = run_batched(&r.bc, &ts, S, P, o.n_gen, &b, &pre);
            r.tps[i] = (double)S * o.n_gen / r.secs[i];
            r.prefill_tps[i] = (double)S * P / pre;
        }
        llama_batch_free(b);
        r.load_after = loadavg_1m();
        if (o.json) print_json(&r, &o, &mi);
        else print_text(&r, &o);
        bench_ctx_close(&r.bc);
    }

    free(ts.pool);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
