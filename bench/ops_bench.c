/* Op benchmark: forward and backward time (median of several runs) and throughput of every op case in
 * CASES below, plus the machine's sgemm GFLOP/s through the same OpenBLAS. `bench/ops` runs this and
 * the PyTorch twin (bench/ops_torch.py) and prints one table with the ratios.
 *
 * Adding an op family: write setup/forward/backward/teardown for it (see the conv2d block), add one
 * bench_op descriptor, add its shapes to CASES, and give bench/ops_torch.py the same op name.
 *
 * Usage: bench_ops_bench [--threads N] [--filter SUBSTR] [--case I] [--no-sgemm] [--sgemm-only]
 *                        [--min-time S] [--reps R] [--best] [--conv-algo A] [--tsv] [--list]
 *   --case I     only case I (0-based index in CASES, as --list prints them); bench/ops runs the
 *                cases one at a time, each right before its PyTorch twin, so both see the same load
 *   --no-sgemm   skip the sgemm measurement;  --sgemm-only  only measure sgemm
 *   --best  report the fastest run instead of the median (tuning on a busy machine)
 *   --conv-algo auto|im2col|winograd   force the conv2d algorithm (Winograd only applies to 3x3 s1 p1)
 *   --tsv   machine-readable lines for bench/ops:  case<TAB>op<TAB>args<TAB>label<TAB>unit<TAB>
 *           fwd_work<TAB>bwd_work<TAB>fwd_ms<TAB>bwd_ms   and   sgemm<TAB>M,N,K<TAB>gflops<TAB>ms
 *   --list  print the cases (index, op and integer arguments) and exit. */
#include "fsdiff/core.h"
#include "fsdiff/ops_conv.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ARGS 8

/* ---------------------------------------------------------------- op descriptors */
typedef struct bench_op {
    const char *name;
    int nargs;        /* integer arguments of a case (printed for the PyTorch side) */
    const char *unit; /* "GFLOP/s" (work = FLOPs) or "GB/s" (work = bytes read + written) */
    /* a[]: the case's integer arguments. Returns the op's state (NULL on failure, message printed);
     * writes a human label and the work of one forward and one backward call. */
    void *(*setup)(const int *a, char *label, size_t label_n, double *fwd_work, double *bwd_work);
    void (*forward)(void *state);
    void (*backward)(void *state);
    void (*teardown)(void *state);
} bench_op;

static float *rand_buf(size_t n, uint64_t seed) {
    float *p = fsd_alloc((n ? n : 1) * sizeof(float));
    if (!p) return NULL;
    fsd_rng r = {seed, 0};
    fsd_rng_uniform(&r, 0, p, n);
    for (size_t i = 0; i < n; i++) p[i] = 2.0f * p[i] - 1.0f;
    return p;
}

static void die_status(const char *what) {
    fprintf(stderr, "bench_ops: %s: %s\n", what, fsd_error_message());
    exit(1);
}

/* ---------------------------------------------------------------- conv2d
 * args: B, Cin, H, W, Cout, k, stride, pad. Forward with bias; backward computes dx, dW and db. */
typedef struct {
    int a[MAX_ARGS];
    float *x, *w, *b, *y, *dy, *dx, *dw, *db;
    fsd_arena ws;
} conv_state;

static void *conv_setup(const int *a, char *label, size_t n, double *fw, double *bw) {
    conv_state *s = calloc(1, sizeof *s);
    memcpy(s->a, a, sizeof s->a);
    const int B = a[0], Ci = a[1], H = a[2], W = a[3], Co = a[4], k = a[5], st = a[6], pad = a[7];
    const int Ho = fsd_conv2d_out_size(H, k, st, pad), Wo = fsd_conv2d_out_size(W, k, st, pad);
    const size_t nx = (size_t)B * Ci * H * W, nw = (size_t)Co * Ci * k * k, ny = (size_t)B * Co * Ho * Wo;
    s->x = rand_buf(nx, 1), s->w = rand_buf(nw, 2), s->b = rand_buf(Co, 3), s->dy = rand_buf(ny, 4);
    s->y = fsd_calloc(ny, sizeof(float)), s->dx = fsd_calloc(nx, sizeof(float));
    s->dw = fsd_calloc(nw, sizeof(float)), s->db = fsd_calloc(Co, sizeof(float));
    if (fsd_arena_init(&s->ws, fsd_conv2d_workspace(B, Ci, H, W, Co, k, st, pad)) != FSD_OK) die_status("arena");
    const fsd_conv_algo algo = fsd_conv2d_algo_for(B, Ci, H, W, Co, k, st, pad);
    snprintf(label, n, "%dx%dx%dx%d->%d k%d s%d%s", B, Ci, H, W, Co, k, st,
             algo == FSD_CONV_WINOGRAD ? " (wino)" : "");
    *fw = 2.0 * B * Co * Ho * Wo * (double)Ci * k * k; /* direct-convolution FLOPs, whatever the algorithm */
    *bw = 2.0 * *fw;                                   /* dx and dW */
    return s;
}
static void conv_fwd(void *p) {
    conv_state *s = p;
    const int *a = s->a;
    if (fsd_conv2d_forward(s->y, s->x, s->w, s->b, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], &s->ws))
        die_status("conv2d_forward");
}
static void conv_bwd(void *p) {
    conv_state *s = p;
    const int *a = s->a;
    if (fsd_conv2d_backward(s->dx, s->dw, s->db, s->dy, s->x, s->w, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7],
                            &s->ws))
        die_status("conv2d_backward");
}
static void conv_free(void *p) {
    conv_state *s = p;
    float *bufs[] = {s->x, s->w, s->b, s->y, s->dy, s->dx, s->dw, s->db};
    for (int i = 0; i < 8; i++) fsd_free(bufs[i]);
    fsd_arena_free(&s->ws);
    free(s);
}
static const bench_op OP_CONV2D = {"conv2d", 8, "GFLOP/s", conv_setup, conv_fwd, conv_bwd, conv_free};

/* ---------------------------------------------------------------- memory-bound channel ops
 * One state for upsample2x (B,C,H,W), channel_bias (B,C,H,W) and concat (B,Ca,Cb,H,W). */
typedef struct {
    int a[MAX_ARGS];
    float *in1, *in2, *out, *g1, *g2, *gout;
} chan_state;

static chan_state *chan_alloc(const int *a, size_t n1, size_t n2, size_t nout) {
    chan_state *s = calloc(1, sizeof *s);
    memcpy(s->a, a, sizeof s->a);
    s->in1 = rand_buf(n1, 11), s->in2 = rand_buf(n2, 12), s->gout = rand_buf(nout, 13);
    s->out = fsd_calloc(nout, sizeof(float));
    s->g1 = fsd_calloc(n1, sizeof(float)), s->g2 = fsd_calloc(n2, sizeof(float));
    return s;
}
static void chan_free(void *p) {
    chan_state *s = p;
    float *bufs[] = {s->in1, s->in2, s->out, s->g1, s->g2, s->gout};
    for (int i = 0; i < 6; i++) fsd_free(bufs[i]);
    free(s);
}

static void *up_setup(const int *a, char *label, size_t n, double *fw, double *bw) {
    const size_t nin = (size_t)a[0] * a[1] * a[2] * a[3];
    snprintf(label, n, "%dx%dx%dx%d -> x2", a[0], a[1], a[2], a[3]);
    *fw = 4.0 * (nin + 4 * nin);         /* read x, write out */
    *bw = 4.0 * (4 * nin + 2 * nin);     /* read dout, read+write dx */
    return chan_alloc(a, nin, 0, 4 * nin);
}
static void up_fwd(void *p) {
    chan_state *s = p;
    fsd_upsample2x_forward(s->out, s->in1, s->a[0], s->a[1], s->a[2], s->a[3]);
}
static void up_bwd(void *p) {
    chan_state *s = p;
    fsd_upsample2x_backward(s->g1, s->gout, s->a[0], s->a[1], s->a[2], s->a[3]);
}
static const bench_op OP_UPSAMPLE = {"upsample2x", 4, "GB/s", up_setup, up_fwd, up_bwd, chan_free};

static void *cb_setup(const int *a, char *label, size_t n, double *fw, double *bw) {
    const size_t nx = (size_t)a[0] * a[1] * a[2] * a[3];
    snprintf(label, n, "%dx%dx%dx%d + bias[B,C]", a[0], a[1], a[2], a[3]);
    *fw = 4.0 * 2 * nx; /* read x, write out */
    *bw = 4.0 * 3 * nx; /* read dout, read+write dx (dbias is a by-product) */
    return chan_alloc(a, nx, (size_t)a[0] * a[1], nx);
}
static void cb_fwd(void *p) {
    chan_state *s = p;
    fsd_channel_bias_forward(s->out, s->in1, s->in2, s->a[0], s->a[1], s->a[2] * s->a[3]);
}
static void cb_bwd(void *p) {
    chan_state *s = p;
    fsd_channel_bias_backward(s->g1, s->g2, s->gout, s->a[0], s->a[1], s->a[2] * s->a[3]);
}
static const bench_op OP_CHANNEL_BIAS = {"channel_bias", 4, "GB/s", cb_setup, cb_fwd, cb_bwd, chan_free};

static void *cat_setup(const int *a, char *label, size_t n, double *fw, double *bw) {
    const size_t hw = (size_t)a[3] * a[4], na = (size_t)a[0] * a[1] * hw, nb = (size_t)a[0] * a[2] * hw;
    snprintf(label, n, "%dx(%d+%d)x%dx%d", a[0], a[1], a[2], a[3], a[4]);
    *fw = 4.0 * 2 * (na + nb);  /* read a and b, write out */
    *bw = 4.0 * 3 * (na + nb);  /* read dout, read+write da and db */
    return chan_alloc(a, na, nb, na + nb);
}
static void cat_fwd(void *p) {
    chan_state *s = p;
    fsd_concat_forward(s->out, s->in1, s->in2, s->a[0], s->a[1], s->a[2], s->a[3] * s->a[4]);
}
static void cat_bwd(void *p) {
    chan_state *s = p;
    fsd_concat_backward(s->g1, s->g2, s->gout, s->a[0], s->a[1], s->a[2], s->a[3] * s->a[4]);
}
static const bench_op OP_CONCAT = {"concat", 5, "GB/s", cat_setup, cat_fwd, cat_bwd, chan_free};

/* ---------------------------------------------------------------- the cases
 * Shapes of the FS-Diff U-Net (C=64, mults 1,2,4,8,8 at 128x128, batch 4). */
typedef struct {
    const bench_op *op;
    int a[MAX_ARGS];
} bench_case;

static const bench_case CASES[] = {
    /* conv2d: B, Cin, H, W, Cout, k, stride, pad */
    {&OP_CONV2D, {4, 64, 128, 128, 64, 3, 1, 1}},   /* L0 ResBlock conv */
    {&OP_CONV2D, {4, 128, 64, 64, 128, 3, 1, 1}},   /* L1 */
    {&OP_CONV2D, {4, 256, 32, 32, 256, 3, 1, 1}},   /* L2 */
    {&OP_CONV2D, {4, 256, 16, 16, 256, 3, 1, 1}},   /* L3 at 16x16 (256 ch) */
    {&OP_CONV2D, {4, 192, 128, 128, 64, 3, 1, 1}},  /* decoder L0 first block (cat 128+64) */
    {&OP_CONV2D, {4, 64, 128, 128, 64, 3, 2, 1}},   /* Downsample 128 -> 64 */
    {&OP_CONV2D, {4, 128, 64, 64, 128, 3, 2, 1}},   /* Downsample 64 -> 32 */
    {&OP_CONV2D, {4, 256, 32, 32, 256, 3, 2, 1}},   /* Downsample 32 -> 16 */
    {&OP_CONV2D, {4, 64, 64, 64, 128, 1, 1, 0}},    /* 1x1 skip conv, Cin != Cout */
    {&OP_CONV2D, {4, 384, 64, 64, 128, 1, 1, 0}},   /* decoder 1x1 skip */
    {&OP_CONV2D, {4, 192, 128, 128, 64, 1, 1, 0}},  /* decoder 1x1 skip at 128 */
    {&OP_CONV2D, {4, 9, 128, 128, 64, 3, 1, 1}},    /* conv_in */
    {&OP_CONV2D, {4, 64, 128, 128, 3, 3, 1, 1}},    /* final conv */
    /* upsample2x: B, C, H, W */
    {&OP_UPSAMPLE, {4, 256, 16, 16}},
    {&OP_UPSAMPLE, {4, 128, 64, 64}},
    /* channel_bias: B, C, H, W */
    {&OP_CHANNEL_BIAS, {4, 64, 128, 128}},
    {&OP_CHANNEL_BIAS, {4, 256, 16, 16}},
    /* concat: B, Ca, Cb, H, W */
    {&OP_CONCAT, {4, 64, 64, 128, 128}},
    {&OP_CONCAT, {4, 256, 256, 16, 16}},
};
static const int N_CASES = (int)(sizeof CASES / sizeof CASES[0]);

/* ---------------------------------------------------------------- timing */
static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median wall time (s) of fn(state): one warm-up call, then at least min_reps calls and until
 * min_time seconds have passed (at most 200 calls). */
static int g_use_min = 0; /* --best: report the fastest run instead of the median */
static double time_median(void (*fn)(void *), void *state, int min_reps, double min_time) {
    double t[200];
    int n = 0;
    fn(state);
    double start = fsd_time_seconds();
    while (n < 200 && (n < min_reps || fsd_time_seconds() - start < min_time)) {
        double t0 = fsd_time_seconds();
        fn(state);
        t[n++] = fsd_time_seconds() - t0;
    }
    qsort(t, (size_t)n, sizeof(double), cmp_double);
    if (g_use_min) return t[0];
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

typedef struct {
    int M, N, K;
    float *A, *B, *C;
} sgemm_state;
static void sgemm_run(void *p) {
    sgemm_state *s = p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->M, s->N, s->K, 1.0f, s->A, s->K, s->B, s->N, 0.0f, s->C,
                s->N);
}

static void print_args(FILE *fp, const int *a, int n) {
    for (int i = 0; i < n; i++) fprintf(fp, i ? ",%d" : "%d", a[i]);
}

int main(int argc, char **argv) {
    int threads = 2, tsv = 0, list = 0, reps = 5, only = -1, no_sgemm = 0, sgemm_only = 0;
    double min_time = 0.3;
    const char *filter = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--filter") && i + 1 < argc) filter = argv[++i];
        else if (!strcmp(argv[i], "--min-time") && i + 1 < argc) min_time = atof(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--tsv")) tsv = 1;
        else if (!strcmp(argv[i], "--best")) g_use_min = 1;
        else if (!strcmp(argv[i], "--conv-algo") && i + 1 < argc) {
            const char *a = argv[++i];
            fsd_conv2d_set_algo(!strcmp(a, "im2col") ? FSD_CONV_IM2COL : !strcmp(a, "winograd") ? FSD_CONV_WINOGRAD
                                                                                                 : FSD_CONV_AUTO);
        }
        else if (!strcmp(argv[i], "--list")) list = 1;
        else if (!strcmp(argv[i], "--no-sgemm")) no_sgemm = 1;
        else if (!strcmp(argv[i], "--sgemm-only")) sgemm_only = 1;
        else if (!strcmp(argv[i], "--case") && i + 1 < argc) only = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--threads N] [--filter SUBSTR] [--case I] [--no-sgemm] [--sgemm-only] [--min-time S] "
                            "[--reps R] [--best] [--conv-algo A] [--tsv] [--list]\n",
                    argv[0]);
            return 2;
        }
    }
    if (threads < 1 || reps < 1) {
        fprintf(stderr, "bench_ops: --threads and --reps must be >= 1\n");
        return 2;
    }
    fsd_set_threads(threads);

    if (list) {
        for (int c = 0; c < N_CASES; c++) {
            printf("%d\t%s\t", c, CASES[c].op->name);
            print_args(stdout, CASES[c].a, CASES[c].op->nargs);
            printf("\n");
        }
        return 0;
    }

    /* machine sgemm: large square-ish product through the same OpenBLAS and thread count */
    if (only >= N_CASES) {
        fprintf(stderr, "bench_ops: --case %d out of range (0..%d)\n", only, N_CASES - 1);
        return 2;
    }
    sgemm_state g = {2048, 2048, 2048, NULL, NULL, NULL};
    double sgemm_gf = 0, tg = 0;
    if (!no_sgemm) {
    g.A = rand_buf((size_t)g.M * g.K, 21), g.B = rand_buf((size_t)g.K * g.N, 22);
    g.C = fsd_calloc((size_t)g.M * g.N, sizeof(float));
    tg = time_median(sgemm_run, &g, reps, min_time);
    sgemm_gf = 2.0 * g.M * g.N * g.K / tg * 1e-9;
    fsd_free(g.A), fsd_free(g.B), fsd_free(g.C);
    if (tsv) printf("sgemm\t%d,%d,%d\t%.3f\t%.4f\n", g.M, g.N, g.K, sgemm_gf, tg * 1e3);
    else printf("threads %d; sgemm %dx%dx%d: %.1f GFLOP/s (%.2f ms)\n", threads, g.M, g.N, g.K, sgemm_gf, tg * 1e3);
    }
    if (sgemm_only) return 0;
    if (!tsv) {
        printf("%-13s %-34s %8s %10s %10s %10s %10s\n", "op", "shape", "unit", "fwd", "fwd ms", "bwd", "bwd ms");
    }
    fflush(stdout);

    for (int c = 0; c < N_CASES; c++) {
        const bench_op *op = CASES[c].op;
        char label[96];
        double fw = 0, bw = 0;
        snprintf(label, sizeof label, "%s", op->name);
        if (filter && !strstr(op->name, filter)) continue;
        if (only >= 0 && c != only) continue;
        void *st = op->setup(CASES[c].a, label, sizeof label, &fw, &bw);
        if (!st) return 1;
        double tf = time_median(op->forward, st, reps, min_time);
        double tb = time_median(op->backward, st, reps, min_time);
        op->teardown(st);
        const double scale = 1e-9; /* GFLOP/s and GB/s alike */
        if (tsv) {
            printf("case\t%s\t", op->name);
            print_args(stdout, CASES[c].a, CASES[c].op->nargs);
            printf("\t%s\t%s\t%.6g\t%.6g\t%.4f\t%.4f\n", label, op->unit, fw, bw, tf * 1e3, tb * 1e3);
        } else {
            printf("%-13s %-34s %8s %10.1f %10.2f %10.1f %10.2f", op->name, label, op->unit, fw / tf * scale, tf * 1e3,
                   bw / tb * scale, tb * 1e3);
            if (op == &OP_CONV2D && sgemm_gf > 0) printf("   fwd %3.0f%% of sgemm", 100.0 * fw / tf * scale / sgemm_gf);
            printf("\n");
        }
        fflush(stdout);
    }
    return 0;
}
