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
 *   --conv-algo auto|im2col|winograd|winograd-s2|direct   force the conv2d algorithm (winograd only applies to
 *                        3x3 s1 p1, winograd-s2 to 3x3 s2 p1, direct to 3x3 p1 forward; other shapes use im2col)
 *   --tsv   machine-readable lines for bench/ops:  case<TAB>op<TAB>args<TAB>label<TAB>unit<TAB>
 *           fwd_work<TAB>bwd_work<TAB>fwd_ms<TAB>bwd_ms   and   sgemm<TAB>M,N,K<TAB>gflops<TAB>ms
 *   --list  print the cases (index, op and integer arguments) and exit. */
#include "fsdiff/core.h"
#include "fsdiff/ops.h"

#include <cblas.h>
#include <math.h>
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

static const char *algo_tag(fsd_conv_algo a) {
    return a == FSD_CONV_WINOGRAD ? "wino" : a == FSD_CONV_WINOGRAD_S2 ? "wino-s2" : a == FSD_CONV_DIRECT ? "direct" : "im2col";
}

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
    /* tag: the forward algorithm, then the backward one when it differs (direct is forward-only) */
    const fsd_conv_algo fa = fsd_conv2d_algo_for(B, Ci, H, W, Co, k, st, pad),
                        ba = fsd_conv2d_backward_algo_for(B, Ci, H, W, Co, k, st, pad);
    char tag[48] = "";
    if (fa != FSD_CONV_IM2COL || ba != FSD_CONV_IM2COL) {
        if (fa == ba) snprintf(tag, sizeof tag, " (%s)", algo_tag(fa));
        else snprintf(tag, sizeof tag, " (%s/%s)", algo_tag(fa), algo_tag(ba));
    }
    snprintf(label, n, "%dx%dx%dx%d->%d k%d s%d%s", B, Ci, H, W, Co, k, st, tag);
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

/* ---------------------------------------------------------------- generic state for the other families
 * Every buffer goes through gs_rand / gs_zero so one teardown frees them all; `ws` is an arena sized
 * by the family's own workspace query (or a fixed 64 MiB for ops whose scratch is small). */
typedef struct {
    int a[MAX_ARGS];
    float *bufs[24];
    int nbufs;
    fsd_arena ws;
    int64_t step; /* Adam step counter */
} gstate;

static void *gs_new(size_t size, const int *a, size_t ws_bytes) {
    gstate *g = calloc(1, size);
    if (!g) return NULL;
    memcpy(g->a, a, sizeof g->a);
    if (ws_bytes && fsd_arena_init(&g->ws, ws_bytes) != FSD_OK) die_status("arena");
    return g;
}
static float *gs_keep(gstate *g, float *p) {
    if (!p || g->nbufs >= 24) {
        fprintf(stderr, "bench_ops: out of memory\n");
        exit(1);
    }
    return g->bufs[g->nbufs++] = p;
}
static float *gs_rand(gstate *g, size_t n, uint64_t seed) { return gs_keep(g, rand_buf(n, seed)); }
static float *gs_zero(gstate *g, size_t n) { return gs_keep(g, fsd_calloc(n ? n : 1, sizeof(float))); }
static void gs_free(void *p) {
    gstate *g = p;
    for (int i = 0; i < g->nbufs; i++) fsd_free(g->bufs[i]);
    fsd_arena_free(&g->ws);
    free(g);
}
static void check(fsd_status st, const char *what) {
    if (st != FSD_OK) die_status(what);
}
#define WS_SMALL ((size_t)64 << 20)

/* ---------------------------------------------------------------- normalisation
 * groupnorm: B, C, H, W, G (eps 1e-5);  layernorm: N, C (rows);  layernorm_cm: B, C, H, W (over C
 * at each pixel). Affine weight and bias; backward computes dx, dweight and dbias.
 * Work: bytes of one compulsory pass: forward reads x and writes y (8 B/elem), backward reads dy
 * and x and reads+writes dx (16 B/elem); the statistics / parameter gradients are negligible. */
typedef struct {
    gstate g;
    float *x, *y, *w, *b, *mean, *rstd, *dy, *dx, *dw, *db;
    int rows, C, L; /* groupnorm: rows = B, L = HW; layernorm: rows = N; layernorm_cm: rows = B, L = HW */
} norm_state;

static norm_state *norm_alloc(const int *a, size_t nx, int C, size_t nstat) {
    norm_state *s = gs_new(sizeof *s, a, WS_SMALL);
    gstate *g = &s->g;
    s->x = gs_rand(g, nx, 31), s->dy = gs_rand(g, nx, 32), s->w = gs_rand(g, C, 33), s->b = gs_rand(g, C, 34);
    s->y = gs_zero(g, nx), s->dx = gs_zero(g, nx), s->dw = gs_zero(g, C), s->db = gs_zero(g, C);
    s->mean = gs_zero(g, nstat), s->rstd = gs_zero(g, nstat);
    return s;
}
static void norm_work(size_t nx, double *fw, double *bw) {
    *fw = 8.0 * nx;
    *bw = 16.0 * nx;
}

static void *gn_setup(const int *a, char *label, size_t n, double *fw, double *bw) {
    const size_t nx = (size_t)a[0] * a[1] * a[2] * a[3];
    snprintf(label, n, "%dx%dx%dx%d G%d", a[0], a[1], a[2], a[3], a[4]);
    norm_work(nx, fw, bw);
    norm_state *s = norm_alloc(a, nx, a[1], (size_t)a[0] * a[4]);
    s->rows = a[0], s->C = a[1], s->L = a[2] * a[3];
    return s;
}
static void gn_fwd(void *p) {
    norm_state *s = p;
    check(fsd_groupnorm_forward(s->y, s->mean, s->rstd, s->x, s->w, s->b, s->rows, s->C, s->L, s->g.a[4], 1e-5f),
          "groupnorm_forward");
}
static void gn_bwd(void *p) {
    norm_state *s = p;
    check(fsd_groupnorm_backward(s->dx, s->dw, s->db, s->dy, s->x, s->mean, s->rstd, s->w, s->rows, s->C, s->L,
                                 s->g.a[4], &s->g.ws),
          "groupnorm_backward");
}
static const bench_op OP_GROUPNORM = {"groupnorm", 5, "GB/s", gn_setup, gn_fwd, gn_bwd, gs_free};

static void *ln_setup(const int *a, char *label, size_t n, double *fw, double *bw) {
    const size_t nx = (size_t)a[0] * a[1];
    snprintf(label, n, "(%d, %d) rows", a[0], a[1]);
    norm_work(nx, fw, bw);
    norm_state *s = norm_alloc(a, nx, a[1], (size_t)a[0]);
    s->rows = a[0], s->C = a[1];
    return s;
}
static void ln_fwd(void *p) {
    norm_state *s = p;
    check(fsd_layernorm_forward(s->y, s->mean, s->rstd, s->x, s->w, s->b, s->rows, s->C, 1e-5f), "layernorm_forward");
}
static void ln_bwd(void *p) {
    norm_state *s = p;
    check(fsd_layernorm_backward(s->dx, s->dw, s->db, s->dy, s->x, s->mean, s->rstd, s->w, s->rows, s->C, &s->g.ws),
          "layernorm_backward");
}
static const bench_op OP_LAYERNORM = {"layernorm", 2, "GB/s", ln_setup, ln_fwd, ln_bwd, gs_free};

static void *lncm_setup(const int *a, char *label, size_t n, double *fw, double *bw) {
    const size_t nx = (size_t)a[0] * a[1] * a[2] * a[3];
    snprintf(label, n, "%dx%dx%dx%d over C", a[0], a[1], a[2], a[3]);
    norm_work(nx, fw, bw);
    norm_state *s = norm_alloc(a, nx, a[1], (size_t)a[0] * a[2] * a[3]);
    s->rows = a[0], s->C = a[1], s->L = a[2] * a[3];
    return s;
}
static void lncm_fwd(void *p) {
    norm_state *s = p;
    check(fsd_layernorm_cm_forward(s->y, s->mean, s->rstd, s->x, s->w, s->b, s->rows, s->C, s->L, 1e-5f),
          "layernorm_cm_forward");
}
static void lncm_bwd(void *p) {
    norm_state *s = p;
    check(fsd_layernorm_cm_backward(s->dx, s->dw, s->db, s->dy, s->x, s->mean, s->rstd, s->w, s->rows, s->C, s->L,
                                    &s->g.ws),
          "layernorm_cm_backward");
}
static const bench_op OP_LAYERNORM_CM = {"layernorm_cm", 4, "GB/s", lncm_setup, lncm_fwd, lncm_bwd, gs_free};

/* ---------------------------------------------------------------- linear
 * args: N (tokens), in, out. y = x W^T + b; backward dx, dW, db. FLOPs 2*N*in*out fwd, 2x bwd. */
typedef struct {
    gstate g;
    float *x, *W, *b, *y, *dy, *dx, *dW, *db;
} linear_state;

static void *linear_setup(const int *a, char *label, size_t n, double *fw, double *bw) {
    const int N = a[0], in = a[1], out = a[2];
    linear_state *s = gs_new(sizeof *s, a, WS_SMALL);
    gstate *g = &s->g;
    s->x = gs_rand(g, (size_t)N * in, 41), s->W = gs_rand(g, (size_t)out * in, 42), s->b = gs_rand(g, out, 43);
    s->dy = gs_rand(g, (size_t)N * out, 44), s->y = gs_zero(g, (size_t)N * out);
    s->dx = gs_zero(g, (size_t)N * in), s->dW = gs_zero(g, (size_t)out * in), s->db = gs_zero(g, out);
    snprintf(label, n, "%d tok, %d->%d", N, in, out);
    *fw = 2.0 * N * (double)in * out;
    *bw = 2.0 * *fw;
    return s;
}
static void linear_fwd(void *p) {
    linear_state *s = p;
    const int *a = s->g.a;
    check(fsd_linear_forward(s->y, s->x, s->W, s->b, a[0], a[1], a[2]), "linear_forward");
}
static void linear_bwd(void *p) {
    linear_state *s = p;
    const int *a = s->g.a;
    check(fsd_linear_backward(s->dx, s->dW, s->db, s->dy, s->x, s->W, a[0], a[1], a[2], &s->g.ws), "linear_backward");
}
static const bench_op OP_LINEAR = {"linear", 3, "GFLOP/s", linear_setup, linear_fwd, linear_bwd, gs_free};

/* ---------------------------------------------------------------- elementwise activations
 * args: B, C, H, W (n = product). Work: forward reads x, writes y (8 B/elem); backward reads dy
 * and x, reads+writes dx (16 B/elem). GEGLU args: N, F (x is (N, 2F), y (N, F)). */
typedef struct {
    gstate g;
    size_t n;
    float *x, *y, *dy, *dx;
} act_state;

static void *act_setup(const int *a, char *label, size_t n, double *fw, double *bw) {
    act_state *s = gs_new(sizeof *s, a, 0);
    s->n = (size_t)a[0] * a[1] * a[2] * a[3];
    s->x = gs_rand(&s->g, s->n, 51), s->dy = gs_rand(&s->g, s->n, 52);
    for (size_t i = 0; i < s->n; i++) s->x[i] *= 4.0f; /* [-4, 4]: both tails of the nonlinearity */
    s->y = gs_zero(&s->g, s->n), s->dx = gs_zero(&s->g, s->n);
    snprintf(label, n, "%dx%dx%dx%d", a[0], a[1], a[2], a[3]);
    *fw = 8.0 * s->n;
    *bw = 16.0 * s->n;
    return s;
}
#define ACT_OP(NAME, FN)                                                                                              \
    static void NAME##_fwd(void *p) {                                                                                 \
        act_state *s = p;                                                                                             \
        FN##_forward(s->y, s->x, s->n);                                                                               \
    }                                                                                                                 \
    static void NAME##_bwd(void *p) {                                                                                 \
        act_state *s = p;                                                                                             \
        FN##_backward(s->dx, s->dy, s->x, s->n);                                                                      \
    }                                                                                                                 \
    static const bench_op OP_##NAME = {#NAME, 4, "GB/s", act_setup, NAME##_fwd, NAME##_bwd, gs_free};
ACT_OP(silu, fsd_silu)
ACT_OP(gelu, fsd_gelu)
ACT_OP(softplus, fsd_softplus)

static void *geglu_setup(const int *a, char *label, size_t n, double *fw, double *bw) {
    act_state *s = gs_new(sizeof *s, a, 0);
    const size_t nf = (size_t)a[0] * a[1];
    s->x = gs_rand(&s->g, 2 * nf, 53), s->dy = gs_rand(&s->g, nf, 54);
    s->y = gs_zero(&s->g, nf), s->dx = gs_zero(&s->g, 2 * nf);
    snprintf(label, n, "N %d, F %d (x N x 2F)", a[0], a[1]);
    *fw = 4.0 * (2 * nf + nf);          /* read x, write y */
    *bw = 4.0 * (nf + 2 * nf + 4 * nf); /* read dy and x, read+write dx */
    return s;
}
static void geglu_fwd(void *p) {
    act_state *s = p;
    fsd_geglu_forward(s->y, s->x, s->g.a[0], s->g.a[1]);
}
static void geglu_bwd(void *p) {
    act_state *s = p;
    fsd_geglu_backward(s->dx, s->dy, s->x, s->g.a[0], s->g.a[1]);
}
static const bench_op OP_GEGLU = {"geglu", 2, "GB/s", geglu_setup, geglu_fwd, geglu_bwd, gs_free};

/* ---------------------------------------------------------------- noise-level embedding
 * args: B, C. Tiny (a per-call overhead measurement more than a throughput one). Work: bytes of
 * gamma in + (B, C) out forward; dout in + dgamma read+write backward. */
typedef struct {
    gstate g;
    float *gamma, *out, *dout, *dgamma;
} emb_state;

static void *emb_setup(const int *a, char *label, size_t n, double *fw, double *bw) {
    emb_state *s = gs_new(sizeof *s, a, 0);
    const size_t no = (size_t)a[0] * a[1];
    s->gamma = gs_rand(&s->g, a[0], 61), s->dout = gs_rand(&s->g, no, 62);
    s->out = gs_zero(&s->g, no), s->dgamma = gs_zero(&s->g, a[0]);
    for (int i = 0; i < a[0]; i++) s->gamma[i] = 0.5f + 0.5f * s->gamma[i]; /* noise levels in (0, 1) */
    snprintf(label, n, "B %d, C %d", a[0], a[1]);
    *fw = 4.0 * (a[0] + no);
    *bw = 4.0 * (no + 3.0 * a[0]);
    return s;
}
static void emb_fwd(void *p) {
    emb_state *s = p;
    check(fsd_noise_embedding_forward(s->out, s->gamma, s->g.a[0], s->g.a[1]), "noise_embedding_forward");
}
static void emb_bwd(void *p) {
    emb_state *s = p;
    check(fsd_noise_embedding_backward(s->dgamma, s->dout, s->gamma, s->g.a[0], s->g.a[1]),
          "noise_embedding_backward");
}
static const bench_op OP_NOISE_EMB = {"noise_emb", 2, "GB/s", emb_setup, emb_fwd, emb_bwd, gs_free};

/* ---------------------------------------------------------------- losses (mean over n)
 * args: B, C, H, W. Forward reads pred and target (8 B/elem); backward (dloss = 1) reads pred and
 * target and reads+writes dpred and dtarget (24 B/elem). */
typedef struct {
    gstate g;
    size_t n;
    float *pred, *target, *dpred, *dtarget;
    volatile double sink; /* keeps the forward's result alive */
} loss_state;

static void *loss_setup(const int *a, char *label, size_t n, double *fw, double *bw) {
    loss_state *s = gs_new(sizeof *s, a, 0);
    s->n = (size_t)a[0] * a[1] * a[2] * a[3];
    s->pred = gs_rand(&s->g, s->n, 71), s->target = gs_rand(&s->g, s->n, 72);
    s->dpred = gs_zero(&s->g, s->n), s->dtarget = gs_zero(&s->g, s->n);
    snprintf(label, n, "%dx%dx%dx%d mean", a[0], a[1], a[2], a[3]);
    *fw = 8.0 * s->n;
    *bw = 24.0 * s->n;
    return s;
}
static void l1_fwd(void *p) {
    loss_state *s = p;
    s->sink = fsd_l1_loss_forward(s->pred, s->target, s->n);
}
static void l1_bwd(void *p) {
    loss_state *s = p;
    fsd_l1_loss_backward(s->dpred, s->dtarget, s->pred, s->target, s->n, 1.0f);
}
static void mse_fwd(void *p) {
    loss_state *s = p;
    s->sink = fsd_mse_loss_forward(s->pred, s->target, s->n);
}
static void mse_bwd(void *p) {
    loss_state *s = p;
    fsd_mse_loss_backward(s->dpred, s->dtarget, s->pred, s->target, s->n, 1.0f);
}
static const bench_op OP_L1 = {"l1_loss", 4, "GB/s", loss_setup, l1_fwd, l1_bwd, gs_free};
static const bench_op OP_MSE = {"mse_loss", 4, "GB/s", loss_setup, mse_fwd, mse_bwd, gs_free};

/* ---------------------------------------------------------------- Adam / AdamW step
 * args: n. One step over a contiguous buffer (the step counter advances each call, as torch's
 * does). Adam: lr 1e-4, betas (0.9, 0.999), eps 1e-8, no weight decay; AdamW: weight decay 1e-2
 * (torch's default). Work: reads p, g, m, v and writes p, m, v (28 B/param). No backward. */
typedef struct {
    gstate g;
    float *p, *grad, *m, *v;
    fsd_adam_config cfg;
} adam_state;

static void *adam_setup_common(const int *a, char *label, size_t n, double *fw, double *bw, int decoupled) {
    adam_state *s = gs_new(sizeof *s, a, 0);
    const size_t np = (size_t)a[0];
    s->p = gs_rand(&s->g, np, 81), s->grad = gs_rand(&s->g, np, 82);
    s->m = gs_zero(&s->g, np), s->v = gs_zero(&s->g, np);
    s->cfg = (fsd_adam_config){1e-4f, 0.9f, 0.999f, 1e-8f, decoupled ? 1e-2f : 0.0f, decoupled};
    snprintf(label, n, "n = %d params%s", a[0], decoupled ? ", wd 1e-2" : "");
    *fw = 28.0 * np;
    *bw = 0;
    return s;
}
static void *adam_setup(const int *a, char *label, size_t n, double *fw, double *bw) {
    return adam_setup_common(a, label, n, fw, bw, 0);
}
static void *adamw_setup(const int *a, char *label, size_t n, double *fw, double *bw) {
    return adam_setup_common(a, label, n, fw, bw, 1);
}
static void adam_fwd(void *p) {
    adam_state *s = p;
    fsd_adam_step(s->p, s->grad, s->m, s->v, (size_t)s->g.a[0], &s->cfg, ++s->g.step);
}
static const bench_op OP_ADAM = {"adam", 1, "GB/s", adam_setup, adam_fwd, NULL, gs_free};
static const bench_op OP_ADAMW = {"adamw", 1, "GB/s", adamw_setup, adam_fwd, NULL, gs_free};

/* ---------------------------------------------------------------- attention core
 * args: B, Nq, Nk, H, dh, saveP. Token-major q (B, Nq, H*dh), k, v (B, Nk, H*dh) (our layout).
 * saveP = 1: the forward writes the probabilities P (B, H, Nq, Nk) and the backward reads them
 * (what autograd does); 0: P = NULL, the backward recomputes P (memory-saving mode, one more
 * Q K^T). FLOPs: 4*B*H*Nq*Nk*dh forward (QK^T, PV), 8*B*H*Nq*Nk*dh backward (dV, dP, dQ, dK),
 * softmax and the recompute not counted. */
typedef struct {
    gstate g;
    float *q, *k, *v, *out, *P, *dout, *dq, *dk, *dv;
} attn_state;

static void *attn_setup(const int *a, char *label, size_t n, double *fw, double *bw) {
    const int B = a[0], Nq = a[1], Nk = a[2], H = a[3], dh = a[4], saveP = a[5];
    const size_t C = (size_t)H * dh, ws0 = fsd_attention_ws_bytes(0, B, Nq, Nk, H, dh, 0),
                 ws1 = fsd_attention_ws_bytes(1, B, Nq, Nk, H, dh, 0);
    attn_state *s = gs_new(sizeof *s, a, (ws0 > ws1 ? ws0 : ws1) + 4096);
    gstate *g = &s->g;
    s->q = gs_rand(g, B * Nq * C, 91), s->k = gs_rand(g, B * Nk * C, 92), s->v = gs_rand(g, B * Nk * C, 93);
    s->dout = gs_rand(g, B * Nq * C, 94), s->out = gs_zero(g, B * Nq * C);
    s->dq = gs_zero(g, B * Nq * C), s->dk = gs_zero(g, B * Nk * C), s->dv = gs_zero(g, B * Nk * C);
    s->P = saveP ? gs_zero(g, (size_t)B * H * Nq * Nk) : NULL;
    snprintf(label, n, "%s B%d %dx%d h%dx%d%s", Nq == Nk ? "self" : "cross", B, Nq, Nk, H, dh, saveP ? " P" : " noP");
    *fw = 4.0 * B * H * (double)Nq * Nk * dh;
    *bw = 2.0 * *fw;
    return s;
}
static void attn_fwd(void *p) {
    attn_state *s = p;
    const int *a = s->g.a;
    check(fsd_attention_forward(s->out, s->P, s->q, s->k, s->v, a[0], a[1], a[2], a[3], a[4], &s->g.ws),
          "attention_forward");
}
static void attn_bwd(void *p) {
    attn_state *s = p;
    const int *a = s->g.a;
    check(fsd_attention_backward(s->dq, s->dk, s->dv, s->dout, s->P, s->q, s->k, s->v, a[0], a[1], a[2], a[3], a[4],
                                 &s->g.ws),
          "attention_backward");
}
static const bench_op OP_ATTENTION = {"attention", 6, "GFLOP/s", attn_setup, attn_fwd, attn_bwd, gs_free};

/* ---------------------------------------------------------------- Mamba: depthwise causal conv1d
 * args: B, D, L, K, reverse. With bias; backward dx, dw, dbias. Work: forward reads x, writes y
 * (8 B/elem); backward reads dy and x, reads+writes dx (16 B/elem). */
typedef struct {
    gstate g;
    float *x, *w, *bias, *y, *dy, *dx, *dw, *db;
} c1d_state;

static void *c1d_setup(const int *a, char *label, size_t n, double *fw, double *bw) {
    c1d_state *s = gs_new(sizeof *s, a, 0);
    gstate *g = &s->g;
    const size_t nx = (size_t)a[0] * a[1] * a[2], nw = (size_t)a[1] * a[3];
    s->x = gs_rand(g, nx, 101), s->w = gs_rand(g, nw, 102), s->bias = gs_rand(g, a[1], 103);
    s->dy = gs_rand(g, nx, 104), s->y = gs_zero(g, nx), s->dx = gs_zero(g, nx);
    s->dw = gs_zero(g, nw), s->db = gs_zero(g, a[1]);
    snprintf(label, n, "B%d D%d L%d K%d%s", a[0], a[1], a[2], a[3], a[4] ? " rev" : "");
    *fw = 8.0 * nx;
    *bw = 16.0 * nx;
    return s;
}
static void c1d_fwd(void *p) {
    c1d_state *s = p;
    const int *a = s->g.a;
    check(fsd_conv1d_causal_forward(s->y, s->x, s->w, s->bias, a[0], a[1], a[2], a[3], a[4]), "conv1d_forward");
}
static void c1d_bwd(void *p) {
    c1d_state *s = p;
    const int *a = s->g.a;
    check(fsd_conv1d_causal_backward(s->dx, s->dw, s->db, s->dy, s->x, s->w, a[0], a[1], a[2], a[3], a[4]),
          "conv1d_backward");
}
static const bench_op OP_CONV1D = {"conv1d_causal", 5, "GB/s", c1d_setup, c1d_fwd, c1d_bwd, gs_free};

/* ---------------------------------------------------------------- Mamba: selective scan
 * args: B, E, N, L, reverse. With z (SiLU gate) and D; training mode: the forward saves the chunk
 * checkpoints (FSD_SCAN_CHUNK), the backward uses them and computes all 7 gradients (du, ddelta,
 * dA_log, dBm, dCm, dD, dz). Inputs like the model's: delta = softplus(U(-1,1) - 1), A_log =
 * log(1..N) (S4D-real init). Unit "Gupd/s": 1e9 state updates h[b,e,n,t] per second, B*E*N*L per
 * call in both directions (the backward does several times the arithmetic of the forward). */
typedef struct {
    gstate g;
    float *u, *delta, *A_log, *Bm, *Cm, *D, *z, *y, *hckpt, *dy;
    float *du, *ddelta, *dA_log, *dBm, *dCm, *dD, *dz;
} scan_state;

static void *scan_setup(const int *a, char *label, size_t n, double *fw, double *bw) {
    const int B = a[0], E = a[1], N = a[2], L = a[3], rev = a[4];
    const size_t ws0 = fsd_selective_scan_ws_bytes(0, 1, B, E, N, L, 0),
                 ws1 = fsd_selective_scan_ws_bytes(1, 1, B, E, N, L, 0);
    scan_state *s = gs_new(sizeof *s, a, (ws0 > ws1 ? ws0 : ws1) + 4096);
    gstate *g = &s->g;
    const size_t nel = (size_t)B * E * L, nbl = (size_t)B * N * L, nen = (size_t)E * N;
    s->u = gs_rand(g, nel, 111), s->delta = gs_rand(g, nel, 112), s->z = gs_rand(g, nel, 113);
    s->Bm = gs_rand(g, nbl, 114), s->Cm = gs_rand(g, nbl, 115), s->D = gs_rand(g, E, 116);
    s->dy = gs_rand(g, nel, 117), s->A_log = gs_zero(g, nen);
    for (size_t i = 0; i < nel; i++) s->delta[i] = log1pf(expf(s->delta[i] - 1.0f));
    for (int e = 0; e < E; e++)
        for (int j = 0; j < N; j++) s->A_log[(size_t)e * N + j] = logf((float)(j + 1));
    s->y = gs_zero(g, nel), s->hckpt = gs_zero(g, fsd_selective_scan_ckpt_floats(B, E, N, L, 0));
    s->du = gs_zero(g, nel), s->ddelta = gs_zero(g, nel), s->dz = gs_zero(g, nel);
    s->dA_log = gs_zero(g, nen), s->dBm = gs_zero(g, nbl), s->dCm = gs_zero(g, nbl), s->dD = gs_zero(g, E);
    snprintf(label, n, "B%d E%d N%d L%d z,D%s", B, E, N, L, rev ? " rev" : "");
    *fw = (double)B * E * N * L;
    *bw = *fw;
    return s;
}
static void scan_fwd(void *p) {
    scan_state *s = p;
    const int *a = s->g.a;
    check(fsd_selective_scan_forward(s->y, s->hckpt, s->u, s->delta, s->A_log, s->Bm, s->Cm, s->D, s->z, a[0], a[1],
                                     a[2], a[3], 0, a[4], &s->g.ws),
          "selective_scan_forward");
}
static void scan_bwd(void *p) {
    scan_state *s = p;
    const int *a = s->g.a;
    check(fsd_selective_scan_backward(s->du, s->ddelta, s->dA_log, s->dBm, s->dCm, s->dD, s->dz, s->dy, s->hckpt,
                                      s->u, s->delta, s->A_log, s->Bm, s->Cm, s->D, s->z, a[0], a[1], a[2], a[3], 0,
                                      a[4], &s->g.ws),
          "selective_scan_backward");
}
static const bench_op OP_SCAN = {"selective_scan", 5, "Gupd/s", scan_setup, scan_fwd, scan_bwd, gs_free};

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
    /* groupnorm: B, C, H, W, G (eps 1e-5) */
    {&OP_GROUPNORM, {4, 64, 128, 128, 32}},
    {&OP_GROUPNORM, {4, 256, 16, 16, 32}},
    /* layernorm rows: N, C (transformer tokens: 4 x 16x16 at I = 512 and I = 256) */
    {&OP_LAYERNORM, {1024, 512}},
    {&OP_LAYERNORM, {4 * 256, 256}},
    /* channel-major layernorm: B, C, H, W (the Mamba stem's LayerNorm(9)) */
    {&OP_LAYERNORM_CM, {4, 9, 128, 128}},
    /* linear: N tokens, in, out (GEGLU up-projection I -> 8I, q/k/v at 32x32 I=512, FF down 4I -> I) */
    {&OP_LINEAR, {4 * 256, 256, 2048}},
    {&OP_LINEAR, {4 * 1024, 512, 512}},
    {&OP_LINEAR, {4 * 256, 1024, 256}},
    /* activations: B, C, H, W;  GEGLU: N, F */
    {&OP_silu, {4, 64, 128, 128}},
    {&OP_gelu, {4, 64, 128, 128}},
    {&OP_softplus, {4, 64, 128, 128}},
    {&OP_GEGLU, {4 * 256, 1024}},
    /* noise-level embedding: B, C */
    {&OP_NOISE_EMB, {4, 64}},
    /* losses: B, C, H, W */
    {&OP_L1, {4, 3, 128, 128}},
    {&OP_MSE, {4, 3, 128, 128}},
    /* optimiser step: n params */
    {&OP_ADAM, {4 << 20}},
    {&OP_ADAMW, {4 << 20}},
    /* attention core: B, Nq, Nk, H, dh, saveP */
    {&OP_ATTENTION, {4, 256, 256, 8, 32, 1}},   /* self at 16x16, I = 256 */
    {&OP_ATTENTION, {4, 256, 256, 16, 32, 1}},  /* self at 16x16, I = 512 */
    {&OP_ATTENTION, {4, 1024, 1024, 8, 32, 1}}, /* self at 32x32, P saved (128 MiB) */
    {&OP_ATTENTION, {4, 1024, 1024, 8, 32, 0}}, /* self at 32x32, P recomputed in backward */
    {&OP_ATTENTION, {4, 1024, 1, 8, 32, 1}},    /* cross, one context token (the model's) */
    {&OP_ATTENTION, {4, 1024, 8, 8, 32, 1}},    /* cross, 8 context tokens */
    /* depthwise causal conv1d: B, D, L, K, reverse (Mamba stem at 128x128) */
    {&OP_CONV1D, {4, 18, 128 * 128, 4, 0}},
    {&OP_CONV1D, {4, 18, 128 * 128, 4, 1}},
    /* selective scan: B, E, N, L, reverse (Mamba stem at 128x128) */
    {&OP_SCAN, {4, 18, 16, 128 * 128, 0}},
    {&OP_SCAN, {4, 18, 16, 128 * 128, 1}},
    /* appended (earlier tables keep their case numbers): the shipped cpu model's final conv 32 -> 3
     * on one 640x480 frame, as each `fsdiff fuse` step of the README's x4 example runs it */
    {&OP_CONV2D, {1, 32, 480, 640, 3, 3, 1, 1}},
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
        if (!strcmp(argv[i], "--blas-core")) { /* for bench/ops, bench/model: PyTorch gets the same kernels */
            printf("%s\n", fsd_blas_core_name());
            return 0;
        }
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--filter") && i + 1 < argc) filter = argv[++i];
        else if (!strcmp(argv[i], "--min-time") && i + 1 < argc) min_time = atof(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--tsv")) tsv = 1;
        else if (!strcmp(argv[i], "--best")) g_use_min = 1;
        else if (!strcmp(argv[i], "--conv-algo") && i + 1 < argc) {
            const char *a = argv[++i];
            fsd_conv2d_set_algo(!strcmp(a, "im2col")        ? FSD_CONV_IM2COL
                                : !strcmp(a, "winograd")    ? FSD_CONV_WINOGRAD
                                : !strcmp(a, "winograd-s2") ? FSD_CONV_WINOGRAD_S2
                                : !strcmp(a, "direct")      ? FSD_CONV_DIRECT
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
        printf("%-14s %-34s %8s %10s %10s %10s %10s\n", "op", "shape", "unit", "fwd", "fwd ms", "bwd", "bwd ms");
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
        double tb = op->backward ? time_median(op->backward, st, reps, min_time) : 0; /* Adam: none */
        op->teardown(st);
        const double scale = 1e-9; /* GFLOP/s and GB/s alike */
        if (tsv) {
            printf("case\t%s\t", op->name);
            print_args(stdout, CASES[c].a, CASES[c].op->nargs);
            printf("\t%s\t%s\t%.6g\t%.6g\t%.4f\t%.4f\n", label, op->unit, fw, bw, tf * 1e3, tb * 1e3);
        } else {
            printf("%-14s %-34s %8s %10.1f %10.3f", op->name, label, op->unit, fw / tf * scale, tf * 1e3);
            if (tb > 0) printf(" %10.1f %10.3f", bw / tb * scale, tb * 1e3);
            else printf(" %10s %10s", "-", "-");
            if (!strcmp(op->unit, "GFLOP/s") && sgemm_gf > 0)
                printf("   fwd %3.0f%% of sgemm", 100.0 * fw / tf * scale / sgemm_gf);
            printf("\n");
        }
        fflush(stdout);
    }
    return 0;
}
