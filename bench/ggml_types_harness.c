// ggml_types_harness: ggml's own block formats, for strata's conformance
// tests (tests/ggml_types_test.cc). Links the prebuilt llama.cpp libraries
// of the pinned release (see bench/README.md); built by install_llamacpp.sh.
//
// Commands (TYPE is a ggml_type number; files are raw little-endian arrays):
//   info                              one line per ggml type:
//                                     "<type> <name> <blck_size> <type_size> <to_float> <from_float_ref>"
//   dequant TYPE N IN OUT             ggml_get_type_traits(TYPE)->to_float on N elements
//   quant-ref TYPE N IN OUT           ggml_get_type_traits(TYPE)->from_float_ref on N floats
//                                     (output zeroed first: ggml leaves fields of all-zero Q8_K blocks unset)
//   quant-chunk TYPE NROWS NCOLS IN OUT
//                                     ggml_quantize_chunk without an importance matrix
//                                     (what llama-quantize writes)
//   vec-dot TYPE N NROWS W X OUT XQ   ggml-cpu's matrix-vector product as its mul_mat runs it:
//                                     X (N floats) quantized with the CPU traits' from_float of
//                                     TYPE's vec_dot_type (written to XQ), then vec_dot with each
//                                     of the NROWS rows of W (TYPE); results to OUT (NROWS floats).
//                                     Uses libggml-cpu-x64.so (the baseline x86-64 variant,
//                                     dlopen'ed: it runs on any x86-64 CPU)
//   model-quantize IN OUT FTYPE       llama_model_quantize with default parameters and
//                                     the llama_ftype FTYPE, 1 thread
// Errors: a message on stderr, exit status 1.

#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml-cpu.h"
#include "ggml.h"
#include "llama.h"

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("ggml_types_harness: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static long long parse_int(const char *s, const char *what) {
    char *end = NULL;
    const long long v = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || v < 0) die("bad %s '%s'", what, s);
    return v;
}

static const struct ggml_type_traits *traits_of(const char *arg) {
    const long long t = parse_int(arg, "type");
    if (t >= GGML_TYPE_COUNT) die("type %lld out of range", t);
    const struct ggml_type_traits *tr = ggml_get_type_traits((enum ggml_type)t);
    if (tr->blck_size <= 0) die("type %lld is retired", t);
    return tr;
}

static void *read_file(const char *path, size_t want) {
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot open %s", path);
    void *buf = malloc(want ? want : 1);
    if (!buf) die("out of memory");
    if (fread(buf, 1, want, f) != want) die("%s is shorter than %zu bytes", path, want);
    fclose(f);
    return buf;
}

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) die("cannot write %s", path);
}

static size_t row_bytes(const struct ggml_type_traits *tr, long long n) {
    if (n % tr->blck_size != 0) die("%lld elements are not whole %s blocks", n, tr->type_name);
    return (size_t)(n / tr->blck_size) * tr->type_size;
}

static void cmd_info(void) {
    for (int t = 0; t < GGML_TYPE_COUNT; ++t) {
        const struct ggml_type_traits *tr = ggml_get_type_traits((enum ggml_type)t);
        if (tr->blck_size <= 0) continue;
        printf("%d %s %lld %zu %d %d\n", t, tr->type_name, (long long)tr->blck_size, tr->type_size,
               tr->to_float != NULL, tr->from_float_ref != NULL);
    }
}

static void cmd_dequant(char **a) {
    const struct ggml_type_traits *tr = traits_of(a[0]);
    const long long n = parse_int(a[1], "element count");
    if (!tr->to_float) die("%s has no to_float", tr->type_name);
    void *in = read_file(a[2], row_bytes(tr, n));
    float *out = malloc(sizeof(float) * (size_t)(n ? n : 1));
    if (!out) die("out of memory");
    tr->to_float(in, out, n);
    write_file(a[3], out, sizeof(float) * (size_t)n);
}

static void cmd_quant_ref(char **a) {
    const struct ggml_type_traits *tr = traits_of(a[0]);
    const long long n = parse_int(a[1], "element count");
    if (!tr->from_float_ref) die("%s has no from_float_ref", tr->type_name);
    const size_t nbytes = row_bytes(tr, n);
    float *in = read_file(a[2], sizeof(float) * (size_t)n);
    void *out = calloc(1, nbytes ? nbytes : 1);
    if (!out) die("out of memory");
    tr->from_float_ref(in, out, n);
    write_file(a[3], out, nbytes);
}

static void cmd_quant_chunk(char **a) {
    const long long t = parse_int(a[0], "type");
    const struct ggml_type_traits *tr = traits_of(a[0]);
    const long long nrows = parse_int(a[1], "row count"), ncols = parse_int(a[2], "column count");
    const size_t nbytes = row_bytes(tr, ncols) * (size_t)nrows;
    float *in = read_file(a[3], sizeof(float) * (size_t)(nrows * ncols));
    void *out = calloc(1, nbytes ? nbytes : 1);
    if (!out) die("out of memory");
    const size_t wrote = ggml_quantize_chunk((enum ggml_type)t, in, out, 0, nrows, ncols, NULL);
    if (wrote != nbytes) die("ggml_quantize_chunk wrote %zu bytes, expected %zu", wrote, nbytes);
    write_file(a[4], out, nbytes);
}

static void cmd_vec_dot(char **a) {
    const long long t = parse_int(a[0], "type");
    const struct ggml_type_traits *tr = traits_of(a[0]);
    const long long n = parse_int(a[1], "element count"), nrows = parse_int(a[2], "row count");
    void *cpu = dlopen("libggml-cpu-x64.so", RTLD_NOW | RTLD_LOCAL);
    if (!cpu) die("dlopen libggml-cpu-x64.so: %s", dlerror());
    void (*cpu_init)(void) = (void (*)(void))dlsym(cpu, "ggml_cpu_init");
    const struct ggml_type_traits_cpu *(*get_traits)(enum ggml_type) =
        (const struct ggml_type_traits_cpu *(*)(enum ggml_type))dlsym(cpu, "ggml_get_type_traits_cpu");
    if (!cpu_init || !get_traits) die("libggml-cpu-x64.so lacks ggml_cpu_init / ggml_get_type_traits_cpu");
    cpu_init();
    const struct ggml_type_traits_cpu *ct = get_traits((enum ggml_type)t);
    if (!ct->vec_dot) die("%s has no vec_dot", tr->type_name);
    const struct ggml_type_traits_cpu *xt = get_traits(ct->vec_dot_type);
    const struct ggml_type_traits *xtr = ggml_get_type_traits(ct->vec_dot_type);
    if (!xt->from_float) die("%s has no from_float", xtr->type_name);
    const size_t w_row = row_bytes(tr, n), x_bytes = row_bytes(xtr, n);
    const char *w = read_file(a[3], w_row * (size_t)nrows);
    float *x = read_file(a[4], sizeof(float) * (size_t)n);
    void *xq = calloc(1, x_bytes ? x_bytes : 1);
    float *out = malloc(sizeof(float) * (size_t)(nrows ? nrows : 1));
    if (!xq || !out) die("out of memory");
    xt->from_float(x, xq, n);
    for (long long r = 0; r < nrows; ++r) ct->vec_dot((int)n, &out[r], 0, w + (size_t)r * w_row, 0, xq, 0, 1);
    write_file(a[5], out, sizeof(float) * (size_t)nrows);
    write_file(a[6], xq, x_bytes);
}

static void cmd_model_quantize(char **a) {
    llama_backend_init();
    struct llama_model_quantize_params p = llama_model_quantize_default_params();
    p.ftype = (enum llama_ftype)parse_int(a[2], "ftype");
    p.nthread = 1;
    if (llama_model_quantize(a[0], a[1], &p) != 0) die("llama_model_quantize failed");
    llama_backend_free();
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "info") == 0 && argc == 2) {
        cmd_info();
    } else if (argc == 6 && strcmp(argv[1], "dequant") == 0) {
        cmd_dequant(argv + 2);
    } else if (argc == 6 && strcmp(argv[1], "quant-ref") == 0) {
        cmd_quant_ref(argv + 2);
    } else if (argc == 7 && strcmp(argv[1], "quant-chunk") == 0) {
        cmd_quant_chunk(argv + 2);
    } else if (argc == 9 && strcmp(argv[1], "vec-dot") == 0) {
        cmd_vec_dot(argv + 2);
    } else if (argc == 5 && strcmp(argv[1], "model-quantize") == 0) {
        cmd_model_quantize(argv + 2);
    } else {
        fprintf(stderr,
                "usage: %s info | dequant TYPE N IN OUT | quant-ref TYPE N IN OUT |\n"
                "       quant-chunk TYPE NROWS NCOLS IN OUT | vec-dot TYPE N NROWS W X OUT XQ |\n"
                "       model-quantize IN OUT FTYPE\n",
                argv[0]);
        return 2;
    }
    return 0;
}
