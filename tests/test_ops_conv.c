/* Convolution op family against PyTorch float64 twins (tests/ref/ref_conv.py, cases in $FSD_REF_DIR/conv):
 *  - forward rel err <= 1e-4, every input/parameter gradient rel err <= 1e-3 (rel err as in testutil.h);
 *  - conv2d through every algorithm that applies (im2col+sgemm, Winograd, stride-2 Winograd, direct) and with 1, 2 and 3
 *    threads (changes how the work is cut into bands/chunks and the two-phase col2im);
 *  - backward accumulates (a second call gives 2x the gradient) and NULL gradients are skipped;
 *  - central finite differences of every backward on tiny shapes (loss = sum dy*y in double);
 *  - bad shapes and a too-small workspace arena fail with a status, and the arena is handed back. */
#include "fsdiff/ops_conv.h"
#include "ops/am_vec.h" /* AM_V16_NATIVE: which direct paths AUTO may take */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL_FWD 1e-4
#define TOL_GRAD 1e-3

static fsd_arena g_ws;

/* a[i] = s * b[i] */
static float *scaled(const float *b, size_t n, float s) {
    float *a = tu_zeros(n);
    for (size_t i = 0; i < n; i++) a[i] = s * b[i];
    return a;
}

static const char *algo_name(fsd_conv_algo a) {
    return a == FSD_CONV_WINOGRAD ? "winograd" : a == FSD_CONV_WINOGRAD_S2 ? "winograd-s2" : a == FSD_CONV_DIRECT ? "direct" : "im2col";
}

/* ---------------------------------------------------------------- conv2d vs torch */
static void run_conv_case(const fsd_safetensors *st, const char *name) {
    const int B = tu_meta_int(st, "B", 0), Ci = tu_meta_int(st, "Cin", 0), H = tu_meta_int(st, "H", 0),
              W = tu_meta_int(st, "W", 0), Co = tu_meta_int(st, "Cout", 0), k = tu_meta_int(st, "k", 0),
              s = tu_meta_int(st, "stride", 0), p = tu_meta_int(st, "pad", 0);
    const int Ho = fsd_conv2d_out_size(H, k, s, p), Wo = fsd_conv2d_out_size(W, k, s, p);
    size_t nx, nw, ny, nb = 0;
    float *x = tu_get(st, "x", &nx), *w = tu_get(st, "w", &nw), *b = tu_get_opt(st, "b", &nb);
    float *yr = tu_get(st, "y", &ny), *dy = tu_get(st, "dy", NULL), *dxr = tu_get(st, "dx", NULL);
    float *dwr = tu_get(st, "dw", NULL), *dbr = b ? tu_get(st, "db", NULL) : NULL;
    if (!x || !w || !yr || !dy || !dxr || !dwr || (b && !dbr)) return;
    tu_check(ny == (size_t)B * Co * Ho * Wo, "%s: output shape [%d,%d,%d,%d]", name, B, Co, Ho, Wo);
    float *dx2 = scaled(dxr, nx, 2), *dw2 = scaled(dwr, nw, 2), *db2 = b ? scaled(dbr, nb, 2) : NULL;

    /* every algorithm that applies to the shape */
    fsd_conv_algo algos[4] = {FSD_CONV_IM2COL};
    int nalgo = 1;
    if (k == 3 && s == 1 && p == 1) algos[nalgo++] = FSD_CONV_WINOGRAD;
    if (k == 3 && s == 2 && p == 1) algos[nalgo++] = FSD_CONV_WINOGRAD_S2;
    if (k == 3 && s <= 2 && p == 1) algos[nalgo++] = FSD_CONV_DIRECT; /* forward direct, backward AUTO */
    for (int ai = 0; ai < nalgo; ai++) {
        const fsd_conv_algo algo = algos[ai];
        fsd_conv2d_set_algo(algo);
        const char *an = algo_name(algo);
        for (int nt = 1; nt <= 3; nt++) {
            fsd_set_threads(nt);
            float *y = tu_zeros(ny), *dx = tu_zeros(nx), *dw = tu_zeros(nw), *db = tu_zeros(nb);
            const size_t need = fsd_conv2d_workspace(B, Ci, H, W, Co, k, s, p);
            g_ws.peak = 0;
            fsd_status st1 = fsd_conv2d_forward(y, x, w, b, B, Ci, H, W, Co, k, s, p, &g_ws);
            fsd_status st2 = fsd_conv2d_backward(dx, dw, b ? db : NULL, dy, x, w, B, Ci, H, W, Co, k, s, p, &g_ws);
            tu_check(st1 == FSD_OK && st2 == FSD_OK && g_ws.used == 0 && g_ws.peak <= need,
                     "%s [%s, %d threads]: ok status, arena handed back, peak %zu <= workspace %zu", name, an, nt,
                     g_ws.peak, need);
            char what[400]; /* case name + algorithm + thread count, with room to spare (-Wformat-truncation) */
            snprintf(what, sizeof what, "%s [%s, %d thr] y", name, an, nt);
            tu_check_close(what, y, yr, ny, TOL_FWD);
            snprintf(what, sizeof what, "%s [%s, %d thr] dx", name, an, nt);
            tu_check_close(what, dx, dxr, nx, TOL_GRAD);
            snprintf(what, sizeof what, "%s [%s, %d thr] dw", name, an, nt);
            tu_check_close(what, dw, dwr, nw, TOL_GRAD);
            if (b) {
                snprintf(what, sizeof what, "%s [%s, %d thr] db", name, an, nt);
                tu_check_close(what, db, dbr, nb, TOL_GRAD);
            }
            if (nt == 2) {
                /* accumulation: a second backward adds the same gradient again */
                fsd_conv2d_backward(dx, dw, b ? db : NULL, dy, x, w, B, Ci, H, W, Co, k, s, p, &g_ws);
                double e = fmax(tu_rel_err(dx, dx2, nx), tu_rel_err(dw, dw2, nw));
                if (b) e = fmax(e, tu_rel_err(db, db2, nb));
                tu_check(e <= TOL_GRAD, "%s [%s]: backward accumulates (2 calls = 2x grad, rel err %.2g)", name, an, e);
                /* NULL gradients skipped: dx only, then dW only (x and w may then be NULL respectively) */
                float *dxo = tu_zeros(nx), *dwo = tu_zeros(nw);
                fsd_status sa = fsd_conv2d_backward(dxo, NULL, NULL, dy, NULL, w, B, Ci, H, W, Co, k, s, p, &g_ws);
                fsd_status sb = fsd_conv2d_backward(NULL, dwo, NULL, dy, x, NULL, B, Ci, H, W, Co, k, s, p, &g_ws);
                tu_check(sa == FSD_OK && sb == FSD_OK && tu_rel_err(dxo, dxr, nx) <= TOL_GRAD &&
                             tu_rel_err(dwo, dwr, nw) <= TOL_GRAD,
                         "%s [%s]: dx-only and dW-only backward (NULL grads skipped)", name, an);
                fsd_free(dxo);
                fsd_free(dwo);
            }
            fsd_free(y), fsd_free(dx), fsd_free(dw), fsd_free(db);
        }
    }
    fsd_conv2d_set_algo(FSD_CONV_AUTO);
    fsd_set_threads(2);
    float *bufs[] = {x, w, b, yr, dy, dxr, dwr, dbr, dx2, dw2, db2};
    for (int i = 0; i < 11; i++) fsd_free(bufs[i]);
}

/* ---------------------------------------------------------------- memory-bound ops vs torch */
static void run_simple_case(const fsd_safetensors *st, const char *op, const char *name) {
    const int B = tu_meta_int(st, "B", 0), H = tu_meta_int(st, "H", 0), W = tu_meta_int(st, "W", 0);
    char what[160];
    if (!strcmp(op, "upsample2x")) {
        const int C = tu_meta_int(st, "C", 0);
        size_t nx, ny;
        float *x = tu_get(st, "x", &nx), *yr = tu_get(st, "y", &ny), *dy = tu_get(st, "dy", NULL),
              *dxr = tu_get(st, "dx", NULL);
        if (!x || !yr || !dy || !dxr) return;
        float *y = tu_zeros(ny), *dx = tu_zeros(nx);
        fsd_upsample2x_forward(y, x, B, C, H, W);
        fsd_upsample2x_backward(dx, dy, B, C, H, W);
        snprintf(what, sizeof what, "%s y", name);
        tu_check_close(what, y, yr, ny, TOL_FWD);
        snprintf(what, sizeof what, "%s dx", name);
        tu_check_close(what, dx, dxr, nx, TOL_GRAD);
        float *bufs[] = {x, yr, dy, dxr, y, dx};
        for (int i = 0; i < 6; i++) fsd_free(bufs[i]);
    } else if (!strcmp(op, "channel_bias")) {
        const int C = tu_meta_int(st, "C", 0);
        size_t nx, nb;
        float *x = tu_get(st, "x", &nx), *bias = tu_get(st, "bias", &nb), *yr = tu_get(st, "y", NULL),
              *dy = tu_get(st, "dy", NULL), *dxr = tu_get(st, "dx", NULL), *dbr = tu_get(st, "dbias", NULL);
        if (!x || !bias || !yr || !dy || !dxr || !dbr) return;
        float *y = tu_zeros(nx), *dx = tu_zeros(nx), *db = tu_zeros(nb);
        fsd_channel_bias_forward(y, x, bias, B, C, H * W);
        fsd_channel_bias_backward(dx, db, dy, B, C, H * W);
        snprintf(what, sizeof what, "%s y", name);
        tu_check_close(what, y, yr, nx, TOL_FWD);
        snprintf(what, sizeof what, "%s dx", name);
        tu_check_close(what, dx, dxr, nx, TOL_GRAD);
        snprintf(what, sizeof what, "%s dbias", name);
        tu_check_close(what, db, dbr, nb, TOL_GRAD);
        /* in place (out == x) gives the same result */
        float *xi = scaled(x, nx, 1);
        fsd_channel_bias_forward(xi, xi, bias, B, C, H * W);
        snprintf(what, sizeof what, "%s in-place y", name);
        tu_check_close(what, xi, yr, nx, TOL_FWD);
        float *bufs[] = {x, bias, yr, dy, dxr, dbr, y, dx, db, xi};
        for (int i = 0; i < 10; i++) fsd_free(bufs[i]);
    } else if (!strcmp(op, "concat")) {
        const int Ca = tu_meta_int(st, "Ca", 0), Cb = tu_meta_int(st, "Cb", 0);
        size_t na, nb, ny;
        float *a = tu_get(st, "a", &na), *b = tu_get(st, "b", &nb), *yr = tu_get(st, "y", &ny),
              *dy = tu_get(st, "dy", NULL), *dar = tu_get(st, "da", NULL), *dbr = tu_get(st, "db", NULL);
        if (!a || !b || !yr || !dy || !dar || !dbr) return;
        float *y = tu_zeros(ny), *da = tu_zeros(na), *db = tu_zeros(nb);
        fsd_concat_forward(y, a, b, B, Ca, Cb, H * W);
        fsd_concat_backward(da, db, dy, B, Ca, Cb, H * W);
        snprintf(what, sizeof what, "%s y", name);
        tu_check_close(what, y, yr, ny, TOL_FWD);
        snprintf(what, sizeof what, "%s da", name);
        tu_check_close(what, da, dar, na, TOL_GRAD);
        snprintf(what, sizeof what, "%s db", name);
        tu_check_close(what, db, dbr, nb, TOL_GRAD);
        float *bufs[] = {a, b, yr, dy, dar, dbr, y, da, db};
        for (int i = 0; i < 9; i++) fsd_free(bufs[i]);
    } else if (!strcmp(op, "split")) {
        const int Ca = tu_meta_int(st, "Ca", 0), Cb = tu_meta_int(st, "Cb", 0);
        size_t nx, na, nb;
        float *x = tu_get(st, "x", &nx), *yar = tu_get(st, "y_a", &na), *ybr = tu_get(st, "y_b", &nb),
              *dya = tu_get(st, "dy_a", NULL), *dyb = tu_get(st, "dy_b", NULL), *dxr = tu_get(st, "dx", NULL);
        if (!x || !yar || !ybr || !dya || !dyb || !dxr) return;
        float *ya = tu_zeros(na), *yb = tu_zeros(nb), *dx = tu_zeros(nx);
        fsd_split_forward(ya, yb, x, B, Ca, Cb, H * W);
        fsd_split_backward(dx, dya, dyb, B, Ca, Cb, H * W);
        snprintf(what, sizeof what, "%s y_a", name);
        tu_check_close(what, ya, yar, na, TOL_FWD);
        snprintf(what, sizeof what, "%s y_b", name);
        tu_check_close(what, yb, ybr, nb, TOL_FWD);
        snprintf(what, sizeof what, "%s dx", name);
        tu_check_close(what, dx, dxr, nx, TOL_GRAD);
        float *bufs[] = {x, yar, ybr, dya, dyb, dxr, ya, yb, dx};
        for (int i = 0; i < 9; i++) fsd_free(bufs[i]);
    } else {
        tu_check(0, "%s: unknown op '%s'", name, op);
    }
}

/* ---------------------------------------------------------------- finite differences
 * loss = sum_i dy_i * y_i in double, y recomputed by the float forward. The ops are linear in
 * each input, so the central difference has no truncation error; h is large to beat rounding. */
typedef struct {
    int kind; /* 0 conv, 1 upsample, 2 channel bias, 3 concat, 4 split */
    int a[8];
    float *in[3]; /* conv: x, w, b; upsample: x; bias: x, bias; concat: a, b; split: x */
    float *y, *y2, *dy, *dy2;
    size_t ny, ny2;
} fd_ctx;

static double fd_loss(void *p) {
    fd_ctx *c = p;
    const int *a = c->a;
    switch (c->kind) {
    case 0: fsd_conv2d_forward(c->y, c->in[0], c->in[1], c->in[2], a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], &g_ws); break;
    case 1: fsd_upsample2x_forward(c->y, c->in[0], a[0], a[1], a[2], a[3]); break;
    case 2: fsd_channel_bias_forward(c->y, c->in[0], c->in[1], a[0], a[1], a[2] * a[3]); break;
    case 3: fsd_concat_forward(c->y, c->in[0], c->in[1], a[0], a[1], a[2], a[3] * a[4]); break;
    case 4: fsd_split_forward(c->y, c->y2, c->in[0], a[0], a[1], a[2], a[3] * a[4]); break;
    }
    double s = 0;
    for (size_t i = 0; i < c->ny; i++) s += (double)c->dy[i] * c->y[i];
    for (size_t i = 0; i < c->ny2; i++) s += (double)c->dy2[i] * c->y2[i];
    return s;
}

static void fd_conv(const char *label, fsd_conv_algo algo, int B, int Ci, int H, int W, int Co, int k, int s, int p) {
    fsd_conv2d_set_algo(algo);
    const int Ho = fsd_conv2d_out_size(H, k, s, p), Wo = fsd_conv2d_out_size(W, k, s, p);
    const size_t nx = (size_t)B * Ci * H * W, nw = (size_t)Co * Ci * k * k, ny = (size_t)B * Co * Ho * Wo;
    fd_ctx c = {.kind = 0, .a = {B, Ci, H, W, Co, k, s, p}, .ny = ny};
    c.in[0] = tu_zeros(nx), c.in[1] = tu_zeros(nw), c.in[2] = tu_zeros(Co);
    tu_fill_uniform(c.in[0], nx, 1, 1.0f), tu_fill_uniform(c.in[1], nw, 2, 0.5f), tu_fill_uniform(c.in[2], Co, 3, 1.0f);
    c.y = tu_zeros(ny), c.dy = tu_zeros(ny);
    tu_fill_uniform(c.dy, ny, 4, 1.0f);
    float *dx = tu_zeros(nx), *dw = tu_zeros(nw), *db = tu_zeros(Co);
    fsd_conv2d_backward(dx, dw, db, c.dy, c.in[0], c.in[1], B, Ci, H, W, Co, k, s, p, &g_ws);
    char what[128];
    snprintf(what, sizeof what, "fd conv2d %s dx", label);
    tu_fd_check(what, fd_loss, &c, c.in[0], dx, nx, 40, 0.05, 1e-3, 1e-3);
    snprintf(what, sizeof what, "fd conv2d %s dw", label);
    tu_fd_check(what, fd_loss, &c, c.in[1], dw, nw, 40, 0.05, 1e-3, 1e-3);
    snprintf(what, sizeof what, "fd conv2d %s db", label);
    tu_fd_check(what, fd_loss, &c, c.in[2], db, Co, Co, 0.05, 1e-3, 1e-3);
    float *bufs[] = {c.in[0], c.in[1], c.in[2], c.y, c.dy, dx, dw, db};
    for (int i = 0; i < 8; i++) fsd_free(bufs[i]);
    fsd_conv2d_set_algo(FSD_CONV_AUTO);
}

static void fd_simple(void) {
    char what[128];
    { /* upsample 2x3x3x5 */
        const int B = 2, C = 3, H = 3, W = 5;
        const size_t nx = (size_t)B * C * H * W, ny = 4 * nx;
        fd_ctx c = {.kind = 1, .a = {B, C, H, W}, .ny = ny};
        c.in[0] = tu_zeros(nx), c.y = tu_zeros(ny), c.dy = tu_zeros(ny);
        tu_fill_uniform(c.in[0], nx, 5, 1.0f), tu_fill_uniform(c.dy, ny, 6, 1.0f);
        float *dx = tu_zeros(nx);
        fsd_upsample2x_backward(dx, c.dy, B, C, H, W);
        snprintf(what, sizeof what, "fd upsample2x dx");
        tu_fd_check(what, fd_loss, &c, c.in[0], dx, nx, 30, 0.05, 1e-3, 1e-3);
        fsd_free(c.in[0]), fsd_free(c.y), fsd_free(c.dy), fsd_free(dx);
    }
    { /* channel bias 2x3x4x3 */
        const int B = 2, C = 3, H = 4, W = 3;
        const size_t nx = (size_t)B * C * H * W, nb = (size_t)B * C;
        fd_ctx c = {.kind = 2, .a = {B, C, H, W}, .ny = nx};
        c.in[0] = tu_zeros(nx), c.in[1] = tu_zeros(nb), c.y = tu_zeros(nx), c.dy = tu_zeros(nx);
        tu_fill_uniform(c.in[0], nx, 7, 1.0f), tu_fill_uniform(c.in[1], nb, 8, 1.0f), tu_fill_uniform(c.dy, nx, 9, 1.0f);
        float *dx = tu_zeros(nx), *db = tu_zeros(nb);
        fsd_channel_bias_backward(dx, db, c.dy, B, C, H * W);
        tu_fd_check("fd channel_bias dx", fd_loss, &c, c.in[0], dx, nx, 30, 0.05, 1e-3, 1e-3);
        tu_fd_check("fd channel_bias dbias", fd_loss, &c, c.in[1], db, nb, (int)nb, 0.05, 1e-3, 1e-3);
        fsd_free(c.in[0]), fsd_free(c.in[1]), fsd_free(c.y), fsd_free(c.dy), fsd_free(dx), fsd_free(db);
    }
    { /* concat 2x(2+3)x3x3 and split of the same */
        const int B = 2, Ca = 2, Cb = 3, HW = 9;
        const size_t na = (size_t)B * Ca * HW, nb = (size_t)B * Cb * HW, ny = na + nb;
        fd_ctx c = {.kind = 3, .a = {B, Ca, Cb, 3, 3}, .ny = ny};
        c.in[0] = tu_zeros(na), c.in[1] = tu_zeros(nb), c.y = tu_zeros(ny), c.dy = tu_zeros(ny);
        tu_fill_uniform(c.in[0], na, 10, 1.0f), tu_fill_uniform(c.in[1], nb, 11, 1.0f), tu_fill_uniform(c.dy, ny, 12, 1.0f);
        float *da = tu_zeros(na), *db = tu_zeros(nb);
        fsd_concat_backward(da, db, c.dy, B, Ca, Cb, HW);
        tu_fd_check("fd concat da", fd_loss, &c, c.in[0], da, na, 20, 0.05, 1e-3, 1e-3);
        tu_fd_check("fd concat db", fd_loss, &c, c.in[1], db, nb, 20, 0.05, 1e-3, 1e-3);

        fd_ctx s = {.kind = 4, .a = {B, Ca, Cb, 3, 3}, .ny = na, .ny2 = nb};
        s.in[0] = tu_zeros(ny), s.y = tu_zeros(na), s.y2 = tu_zeros(nb), s.dy = tu_zeros(na), s.dy2 = tu_zeros(nb);
        tu_fill_uniform(s.in[0], ny, 13, 1.0f), tu_fill_uniform(s.dy, na, 14, 1.0f), tu_fill_uniform(s.dy2, nb, 15, 1.0f);
        float *dx = tu_zeros(ny);
        fsd_split_backward(dx, s.dy, s.dy2, B, Ca, Cb, HW);
        tu_fd_check("fd split dx", fd_loss, &s, s.in[0], dx, ny, 30, 0.05, 1e-3, 1e-3);
        float *bufs[] = {c.in[0], c.in[1], c.y, c.dy, da, db, s.in[0], s.y, s.y2, s.dy, s.dy2, dx};
        for (int i = 0; i < 12; i++) fsd_free(bufs[i]);
    }
}

/* ---------------------------------------------------------------- bad input */
static void bad_input(void) {
    float buf[64] = {0};
    fsd_status st = fsd_conv2d_forward(buf, buf, buf, NULL, 1, 1, 2, 2, 1, 3, 1, 0, &g_ws);
    tu_check(st == FSD_ERR_INVALID, "conv2d: kernel larger than the (unpadded) input -> FSD_ERR_INVALID (%s)",
             fsd_error_message());
    st = fsd_conv2d_forward(buf, buf, buf, NULL, 1, -1, 2, 2, 1, 1, 1, 0, &g_ws);
    tu_check(st == FSD_ERR_INVALID, "conv2d: negative channel count -> FSD_ERR_INVALID (%s)", fsd_error_message());
    st = fsd_conv2d_backward(buf, buf, NULL, buf, buf, buf, 1, 1, 2, 2, 1, 1, 0, 0, &g_ws);
    tu_check(st == FSD_ERR_INVALID, "conv2d backward: stride 0 -> FSD_ERR_INVALID (%s)", fsd_error_message());
    tu_check(fsd_conv2d_workspace(1, 1, 2, 2, 1, 3, 1, 0) == 0, "conv2d workspace of a bad shape is 0");

    /* arena too small: a status, no write past it, arena unchanged */
    for (int algo = FSD_CONV_IM2COL; algo <= FSD_CONV_DIRECT; algo++) {
        fsd_conv2d_set_algo((fsd_conv_algo)algo);
        const int s = algo == FSD_CONV_WINOGRAD_S2 || algo == FSD_CONV_DIRECT ? 2 : 1;
        fsd_arena small;
        fsd_arena_init(&small, 256);
        const int B = 1, C = 16, H = 12, W = 12;
        float *x = tu_zeros((size_t)B * C * H * W), *w = tu_zeros((size_t)C * C * 9), *y = tu_zeros((size_t)B * C * H * W);
        fsd_status a = fsd_conv2d_forward(y, x, w, NULL, B, C, H, W, C, 3, s, 1, &small);
        fsd_status b = fsd_conv2d_backward(x, w, NULL, y, x, w, B, C, H, W, C, 3, s, 1, &small);
        tu_check(a == FSD_ERR_NOMEM && b == FSD_ERR_NOMEM && small.used == 0,
                 "conv2d [%s]: arena too small -> FSD_ERR_NOMEM, arena reset (%s)",
                 algo_name((fsd_conv_algo)algo), fsd_error_message());
        fsd_arena_free(&small);
        fsd_free(x), fsd_free(w), fsd_free(y);
    }
    fsd_conv2d_set_algo(FSD_CONV_AUTO);
    /* AUTO takes the direct stride-2 backward only where 16-lane vectors are native (AVX-512; src/ops/conv.c);
     * elsewhere the GEMM paths it replaced. The direct forward has both widths. */
    /* On Intel AVX-512 cores im2col takes the stride-2 backward up to 128 input channels (measured there). */
    int intel = 0;
#if defined(__x86_64__)
    __builtin_cpu_init();
    intel = __builtin_cpu_is("intel");
#endif
#if AM_V16_NATIVE
    const fsd_conv_algo dir_w = intel ? FSD_CONV_IM2COL : FSD_CONV_DIRECT, dir_i = FSD_CONV_DIRECT;
    const fsd_conv_algo wino_w = intel ? FSD_CONV_IM2COL : FSD_CONV_WINOGRAD_S2;
    const fsd_conv_algo wino_f = intel ? FSD_CONV_DIRECT : FSD_CONV_WINOGRAD_S2; /* Intel: direct forward */
#else
    /* narrower vectors: the stride-2 backward goes through im2col up to 128 input channels */
    const fsd_conv_algo dir_w = FSD_CONV_IM2COL, dir_i = FSD_CONV_IM2COL, wino_w = FSD_CONV_IM2COL,
                        wino_f = FSD_CONV_WINOGRAD_S2;
    (void)intel;
#endif
    /* and the direct forward only with 8+ lanes and FMA (not in portable SSE2 builds) */
#if (AM_V16_NATIVE || defined(__AVX__)) && defined(__FMA__)
    const fsd_conv_algo dir_f = FSD_CONV_DIRECT, dir_fw = FSD_CONV_DIRECT, dir_fo = FSD_CONV_DIRECT;
#else
    const fsd_conv_algo dir_f = FSD_CONV_IM2COL, dir_fw = FSD_CONV_WINOGRAD_S2, dir_fo = FSD_CONV_WINOGRAD;
#endif
    tu_check(fsd_conv2d_algo_for(4, 64, 32, 32, 64, 3, 1, 1) == FSD_CONV_WINOGRAD &&
                 fsd_conv2d_algo_for(4, 128, 64, 64, 128, 3, 2, 1) == wino_f &&
                 fsd_conv2d_backward_algo_for(4, 128, 64, 64, 128, 3, 2, 1) == dir_w &&
                 fsd_conv2d_backward_algo_for(4, 128, 64, 64, 120, 3, 2, 1) == wino_w &&
                 fsd_conv2d_algo_for(4, 64, 128, 128, 64, 3, 2, 1) == dir_fw &&
                 fsd_conv2d_backward_algo_for(4, 64, 128, 128, 64, 3, 2, 1) == dir_w &&
                 fsd_conv2d_algo_for(4, 256, 32, 32, 256, 3, 2, 1) == dir_f &&
                 fsd_conv2d_backward_algo_for(4, 256, 32, 32, 256, 3, 2, 1) == dir_i &&
                 fsd_conv2d_backward_algo_for(4, 256, 16, 16, 256, 3, 2, 1) == FSD_CONV_IM2COL &&
                 fsd_conv2d_algo_for(4, 9, 128, 128, 64, 3, 1, 1) == dir_f &&
                 fsd_conv2d_algo_for(4, 64, 128, 128, 3, 3, 1, 1) == dir_fo &&
                 fsd_conv2d_algo_for(4, 64, 128, 128, 32, 3, 1, 1) == FSD_CONV_WINOGRAD &&
                 fsd_conv2d_backward_algo_for(4, 64, 128, 128, 3, 3, 1, 1) == dir_fo &&
                 fsd_conv2d_backward_algo_for(4, 64, 128, 128, 5, 3, 1, 1) == FSD_CONV_WINOGRAD &&
                 fsd_conv2d_backward_algo_for(4, 9, 128, 128, 64, 3, 1, 1) == FSD_CONV_IM2COL &&
                 fsd_conv2d_algo_for(4, 9, 8, 8, 64, 3, 1, 1) == FSD_CONV_IM2COL &&
                 fsd_conv2d_algo_for(4, 64, 32, 32, 64, 1, 1, 0) == FSD_CONV_IM2COL,
             "AUTO: Winograd for 3x3 s1 p1 with many channels, direct forward for few input or output channels and for "
             "stride 2 except 128x64^2 (Winograd; direct on Intel AVX-512), direct stride-2 backward when Cout %% 16 == 0 and stride-1 when Cout <= 4 (im2col up to 128 input channels on Intel AVX-512 "
             "and without AVX-512), im2col for "
             "1x1 and narrow maps");
    fsd_conv2d_set_algo(FSD_CONV_DIRECT);
    tu_check(fsd_conv2d_algo_for(1, 4, 9, 9, 4, 3, 1, 1) == FSD_CONV_DIRECT &&
                 fsd_conv2d_backward_algo_for(1, 4, 9, 9, 5, 3, 1, 1) == FSD_CONV_IM2COL &&
                 fsd_conv2d_backward_algo_for(1, 4, 9, 9, 4, 3, 1, 1) == FSD_CONV_DIRECT &&
                 fsd_conv2d_backward_algo_for(1, 4, 9, 9, 16, 3, 2, 1) == FSD_CONV_DIRECT &&
                 fsd_conv2d_backward_algo_for(1, 4, 9, 9, 12, 3, 2, 1) == FSD_CONV_IM2COL &&
                 fsd_conv2d_backward_algo_for(1, 32, 9, 9, 5, 3, 1, 1) == FSD_CONV_WINOGRAD &&
                 fsd_conv2d_algo_for(1, 4, 9, 9, 4, 1, 1, 0) == FSD_CONV_IM2COL,
             "forced direct: forward on 3x3 p1, backward on 3x3 s2 with Cout %% 16 == 0 and on 3x3 s1 with Cout <= 4, else the AUTO choice, "
             "im2col where direct does not apply");
    fsd_conv2d_set_algo(FSD_CONV_AUTO);
}

/* Direct forward on shapes whose planes exceed one band (several bands per image, a short last band),
 * with row lengths that leave a partial 16-lane run and channel counts that leave a partial tile,
 * against im2col on the same data: rel err <= 1e-5 (both sum the same products in float). */
static void direct_bands(void) {
    const int shapes[][7] = {/* B, Cin, H, W, Cout, stride, threads */
                             {1, 64, 70, 70, 6, 1, 2}, {2, 48, 141, 141, 5, 2, 3}, {1, 40, 61, 37, 9, 2, 1},
                             {1, 16, 20, 128, 7, 2, 2}}; /* rows of 71 and 64: planes padded to whole vectors */
    for (int i = 0; i < 4; i++) {
        const int *a = shapes[i], B = a[0], Ci = a[1], H = a[2], W = a[3], Co = a[4], s = a[5];
        const int Ho = fsd_conv2d_out_size(H, 3, s, 1), Wo = fsd_conv2d_out_size(W, 3, s, 1);
        const size_t nx = (size_t)B * Ci * H * W, nw = (size_t)Co * Ci * 9, ny = (size_t)B * Co * Ho * Wo;
        float *x = tu_zeros(nx), *w = tu_zeros(nw), *b = tu_zeros(Co), *y0 = tu_zeros(ny), *y1 = tu_zeros(ny);
        tu_fill_uniform(x, nx, 21, 1.0f), tu_fill_uniform(w, nw, 22, 0.2f), tu_fill_uniform(b, Co, 23, 1.0f);
        fsd_set_threads(a[6]);
        fsd_conv2d_set_algo(FSD_CONV_IM2COL);
        fsd_status s0 = fsd_conv2d_forward(y0, x, w, b, B, Ci, H, W, Co, 3, s, 1, &g_ws);
        fsd_conv2d_set_algo(FSD_CONV_DIRECT);
        const size_t need = fsd_conv2d_workspace(B, Ci, H, W, Co, 3, s, 1);
        g_ws.peak = 0;
        fsd_status s1 = fsd_conv2d_forward(y1, x, w, b, B, Ci, H, W, Co, 3, s, 1, &g_ws);
        const double e = tu_rel_err(y1, y0, ny);
        tu_check(s0 == FSD_OK && s1 == FSD_OK && e <= 1e-5 && g_ws.used == 0 && g_ws.peak <= need,
                 "direct vs im2col %dx%dx%dx%d->%d s%d, %d threads: rel err %.2g, arena peak %zu <= %zu", B, Ci, H, W,
                 Co, s, a[6], e, g_ws.peak, need);
        fsd_free(x), fsd_free(w), fsd_free(b), fsd_free(y0), fsd_free(y1);
    }
    /* direct stride-2 backward against im2col's: odd and even sizes, W = 1..3 (the dW column special
     * cases), Cout 48 (a 32-wide and a 16-wide dW block), several dx channel blocks and a partial one;
     * the stride-1 few-output backward (fewout_backward): Cout 1..4, rows with and without a tail
     * shorter than a vector, W below one vector */
    const int bshapes[][7] = {/* B, Cin, H, W, Cout, threads, stride */
                              {2, 22, 33, 37, 48, 3, 2}, {1, 5, 40, 70, 16, 2, 2}, {3, 2, 5, 1, 16, 2, 2},
                              {1, 3, 4, 2, 32, 1, 2},    {2, 6, 3, 3, 16, 2, 2},   {2, 19, 21, 37, 3, 3, 1},
                              {1, 7, 9, 64, 4, 2, 1},    {3, 4, 5, 5, 1, 2, 1},    {1, 33, 17, 130, 2, 1, 1}};
    for (int i = 0; i < 9; i++) {
        const int *a = bshapes[i], B = a[0], Ci = a[1], H = a[2], W = a[3], Co = a[4], st = a[6];
        const int Ho = fsd_conv2d_out_size(H, 3, st, 1), Wo = fsd_conv2d_out_size(W, 3, st, 1);
        const size_t nx = (size_t)B * Ci * H * W, nw = (size_t)Co * Ci * 9, ny = (size_t)B * Co * Ho * Wo;
        float *x = tu_zeros(nx), *w = tu_zeros(nw), *dy = tu_zeros(ny);
        float *dx0 = tu_zeros(nx), *dw0 = tu_zeros(nw), *dx1 = tu_zeros(nx), *dw1 = tu_zeros(nw);
        tu_fill_uniform(x, nx, 31, 1.0f), tu_fill_uniform(w, nw, 32, 0.3f), tu_fill_uniform(dy, ny, 33, 1.0f);
        tu_fill_uniform(dx0, nx, 34, 1.0f), memcpy(dx1, dx0, nx * sizeof(float)); /* backward accumulates */
        fsd_set_threads(a[5]);
        fsd_conv2d_set_algo(FSD_CONV_IM2COL);
        fsd_status s0 = fsd_conv2d_backward(dx0, dw0, NULL, dy, x, w, B, Ci, H, W, Co, 3, st, 1, &g_ws);
        fsd_conv2d_set_algo(FSD_CONV_DIRECT);
        const int is_direct = fsd_conv2d_backward_algo_for(B, Ci, H, W, Co, 3, st, 1) == FSD_CONV_DIRECT;
        const size_t need = fsd_conv2d_workspace(B, Ci, H, W, Co, 3, st, 1);
        g_ws.peak = 0;
        fsd_status s1 = fsd_conv2d_backward(dx1, dw1, NULL, dy, x, w, B, Ci, H, W, Co, 3, st, 1, &g_ws);
        const double ex = tu_rel_err(dx1, dx0, nx), ew = tu_rel_err(dw1, dw0, nw);
        tu_check(is_direct && s0 == FSD_OK && s1 == FSD_OK && ex <= 1e-5 && ew <= 1e-5 && g_ws.used == 0 &&
                     g_ws.peak <= need,
                 "direct s%d backward vs im2col %dx%dx%dx%d->%d, %d threads: dx rel err %.2g, dW %.2g, arena %zu <= %zu",
                 st, B, Ci, H, W, Co, a[5], ex, ew, g_ws.peak, need);
        float *bufs[] = {x, w, dy, dx0, dw0, dx1, dw1};
        for (int j = 0; j < 7; j++) fsd_free(bufs[j]);
    }
    fsd_conv2d_set_algo(FSD_CONV_AUTO);
    fsd_set_threads(2);
}

int main(void) {
    fsd_set_threads(2);
    if (fsd_arena_init(&g_ws, (size_t)64 << 20) != FSD_OK) return tu_check(0, "arena"), tu_summary();
    char **paths;
    int n = tu_list_cases("conv", &paths);
    tu_check(n >= 24, "found %d reference cases in %s/conv (ref_conv.py writes 24)", n, tu_ref_dir());
    for (int i = 0; i < n; i++) {
        fsd_safetensors st;
        if (!tu_check(fsd_st_open(&st, paths[i]) == FSD_OK, "open %s", paths[i])) continue;
        const char *op = tu_meta_str(&st, "op", "?");
        const char *base = strrchr(paths[i], '/') ? strrchr(paths[i], '/') + 1 : paths[i];
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)(strlen(base) - 12), base);
        if (!strcmp(op, "conv2d")) run_conv_case(&st, name);
        else run_simple_case(&st, op, name);
        fsd_st_close(&st);
    }
    tu_free_list(paths, n);

    fd_conv("3x3 s1 im2col 1x3x5x6->4", FSD_CONV_IM2COL, 1, 3, 5, 6, 4, 3, 1, 1);
    fd_conv("3x3 s1 winograd 2x3x5x5->2", FSD_CONV_WINOGRAD, 2, 3, 5, 5, 2, 3, 1, 1);
    fd_conv("3x3 s2 im2col 1x2x7x6->3", FSD_CONV_IM2COL, 1, 2, 7, 6, 3, 3, 2, 1);
    fd_conv("3x3 s2 winograd-s2 2x2x7x6->3", FSD_CONV_WINOGRAD_S2, 2, 2, 7, 6, 3, 3, 2, 1);
    fd_conv("3x3 s2 winograd-s2 1x3x6x9->2", FSD_CONV_WINOGRAD_S2, 1, 3, 6, 9, 2, 3, 2, 1);
    fd_conv("3x3 s1 direct 2x3x5x18->5", FSD_CONV_DIRECT, 2, 3, 5, 18, 5, 3, 1, 1);
    fd_conv("3x3 s2 direct 1x2x7x35->6", FSD_CONV_DIRECT, 1, 2, 7, 35, 6, 3, 2, 1);
    fd_conv("3x3 s2 direct (bwd too) 2x2x7x9->16", FSD_CONV_DIRECT, 2, 2, 7, 9, 16, 3, 2, 1);
    fd_conv("1x1 2x3x3x4->5", FSD_CONV_AUTO, 2, 3, 3, 4, 5, 1, 1, 0);
    direct_bands();
    fd_simple();
    bad_input();
    fsd_arena_free(&g_ws);
    return tu_summary();
}
