/* SiLU, exact GELU, softplus and GEGLU against PyTorch (tests/ref/ref_act.py, float64 autograd),
 * finite differences, accumulation semantics, and the accuracy of the vectorisable math in
 * src/ops/vmath.h against double-precision libm over dense sweeps.
 * Tolerances (rel_err of testutil.h): forward <= 1e-4, dx <= 1e-3; finite differences (h = 1e-2):
 * |fd - analytic| <= 1e-3 + 1e-2 max|analytic|; vmath: exp / sigmoid / log1p / sqrt / rsqrt
 * <= 4 ulp-equivalent relative error (4 * 2^-23 = 4.8e-7); erf <= 2.5e-7 absolute on [-6, 6] and
 * <= 4.8e-7 relative on |x| < 1 (the series branch); erf_abs <= 6e-7 absolute (A&S bound plus float rounding of 1 - tP(t)e near 0); GELU <= 2.5e-7 and
 * GELU' <= 5e-7 absolute per max(1, |x|) on [-6, 6]. */
#include "fsdiff/ops_linear.h"
#include "ops/vmath.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL_FWD 1e-4
#define TOL_GRAD 1e-3
#define ACC0 -0.5f

typedef void (*act_fwd)(float *, const float *, size_t);
typedef void (*act_bwd)(float *, const float *, const float *, size_t);

static void run_case(const char *path) {
    fsd_safetensors st;
    if (fsd_st_open(&st, path) != FSD_OK) {
        tu_check(0, "open %s: %s", path, fsd_error_message());
        return;
    }
    const char *name = strrchr(path, '/') + 1;
    const char *op = tu_meta_str(&st, "op", "?");
    size_t nx = 0, ny = 0;
    float *x = tu_get(&st, "x", &nx), *yref = tu_get(&st, "y", &ny), *dy = tu_get(&st, "dy", NULL),
          *dxref = tu_get(&st, "dx", NULL);
    if (!x || !yref || !dy || !dxref) goto done;
    float *y = tu_zeros(ny), *dx = tu_zeros(nx);
    for (size_t i = 0; i < nx; i++) dx[i] = ACC0;
    if (!strcmp(op, "geglu")) {
        int N = tu_meta_int(&st, "N", 0), F = tu_meta_int(&st, "F", 0);
        if (tu_check((size_t)N * 2 * F == nx && (size_t)N * F == ny, "%s: shapes match metadata", name)) {
            fsd_geglu_forward(y, x, N, F);
            fsd_geglu_backward(dx, dy, x, N, F);
        }
    } else {
        act_fwd f = NULL;
        act_bwd b = NULL;
        if (!strcmp(op, "silu")) f = fsd_silu_forward, b = fsd_silu_backward;
        if (!strcmp(op, "gelu")) f = fsd_gelu_forward, b = fsd_gelu_backward;
        if (!strcmp(op, "softplus")) f = fsd_softplus_forward, b = fsd_softplus_backward;
        if (tu_check(f != NULL && nx == ny, "%s: known op %s", name, op)) {
            f(y, x, nx);
            b(dx, dy, x, nx);
            /* in place y == x */
            float *z = tu_zeros(nx);
            memcpy(z, x, nx * sizeof(float));
            f(z, z, nx);
            tu_check(!memcmp(z, y, nx * sizeof(float)), "%s: in-place forward gives the same y", name);
            fsd_free(z);
        }
    }
    for (size_t i = 0; i < nx; i++) dx[i] -= ACC0;
    char what[256];
    snprintf(what, sizeof what, "%s %s: y", name, op);
    tu_check_close(what, y, yref, ny, TOL_FWD);
    snprintf(what, sizeof what, "%s %s: dx (accumulated)", name, op);
    tu_check_close(what, dx, dxref, nx, TOL_GRAD);
    fsd_free(y), fsd_free(dx);
done:
    fsd_free(x), fsd_free(yref), fsd_free(dy), fsd_free(dxref);
    fsd_st_close(&st);
}

/* ---------------------------------------------------------------- finite differences */
typedef struct fdctx {
    int op; /* 0 silu 1 gelu 2 softplus 3 geglu */
    float *x, *y;
    const float *w;
    size_t n, ny;
    int N, F;
} fdctx;

static double fd_loss(void *p) {
    fdctx *c = p;
    switch (c->op) {
    case 0: fsd_silu_forward(c->y, c->x, c->n); break;
    case 1: fsd_gelu_forward(c->y, c->x, c->n); break;
    case 2: fsd_softplus_forward(c->y, c->x, c->n); break;
    default: fsd_geglu_forward(c->y, c->x, c->N, c->F); break;
    }
    double s = 0.0;
    for (size_t i = 0; i < c->ny; i++) s += (double)c->w[i] * c->y[i];
    return s;
}

static void fd_checks(void) {
    const char *names[4] = {"silu", "gelu", "softplus", "geglu"};
    for (int op = 0; op < 4; op++) {
        fdctx c = {op, NULL, NULL, NULL, 40, 40, 0, 0};
        if (op == 3) c.N = 4, c.F = 5, c.n = 40, c.ny = 20;
        c.x = tu_zeros(c.n), c.y = tu_zeros(c.ny);
        float *w = tu_zeros(c.ny), *dx = tu_zeros(c.n);
        tu_fill_uniform(c.x, c.n, 40 + op, 4.0f);
        tu_fill_uniform(w, c.ny, 50 + op, 1.0f);
        c.w = w;
        switch (op) {
        case 0: fsd_silu_backward(dx, w, c.x, c.n); break;
        case 1: fsd_gelu_backward(dx, w, c.x, c.n); break;
        case 2: fsd_softplus_backward(dx, w, c.x, c.n); break;
        default: fsd_geglu_backward(dx, w, c.x, c.N, c.F); break;
        }
        char what[64];
        snprintf(what, sizeof what, "fd %s", names[op]);
        tu_fd_check(what, fd_loss, &c, c.x, dx, c.n, (int)c.n, 1e-2, 1e-3, 1e-2);
        fsd_free(c.x), fsd_free(c.y), fsd_free(w), fsd_free(dx);
    }
}

/* ---------------------------------------------------------------- vmath accuracy */
#define ULP24 5.9604644775390625e-08 /* 2^-24: half an ulp of 1 */

static void vmath_accuracy(void) {
    double e_exp = 0, e_sig = 0, e_l1p = 0, e_erf = 0, e_erf_rel = 0, e_sqrt = 0, e_rsq = 0, e_sp = 0;
    double e_erf_abs = 0, e_gelu = 0, e_gelu_g = 0;
    /* exp on [-87, 88] (the clamp range), relative */
    for (int i = 0; i <= 2000000; i++) {
        float x = (float)(-87.0 + 175.0 * i / 2000000.0);
        double r = exp((double)x), e = fabs(fsd_expf(x) - r) / r;
        if (e > e_exp) e_exp = e;
    }
    /* sigmoid and softplus on [-40, 40] */
    for (int i = 0; i <= 800000; i++) {
        float x = (float)(-40.0 + 80.0 * i / 800000.0);
        double r = 1.0 / (1.0 + exp(-(double)x)), e = fabs(fsd_sigmoidf(x) - r) / r;
        if (e > e_sig) e_sig = e;
        double sp = x > 20.0f ? (double)x : log1p(exp((double)x));
        e = fabs(fsd_softplusf(x) - sp) / sp;
        if (e > e_sp) e_sp = e;
    }
    /* log1p on [0, 1], including tiny arguments */
    for (int i = 0; i <= 1000000; i++) {
        float u = (float)(i / 1000000.0);
        if (i < 1000) u = ldexpf(1.0f, -i % 140); /* powers of two down to 2^-139 */
        double r = log1p((double)u), e = r > 0 ? fabs(fsd_log1pf_pos(u) - r) / r : fabs(fsd_log1pf_pos(u));
        if (e > e_l1p) e_l1p = e;
    }
    /* erf on [-6, 6], absolute */
    for (int i = 0; i <= 1200000; i++) {
        float x = (float)(-6.0 + 12.0 * i / 1200000.0);
        double r = erf((double)x), e = fabs(fsd_erff(x) - r);
        if (e > e_erf) e_erf = e;
        if (fabsf(x) < 1.0f && r != 0.0 && e / fabs(r) > e_erf_rel) e_erf_rel = e / fabs(r);
        e = fabs(fsd_erff_abs(x) - r);
        if (e > e_erf_abs) e_erf_abs = e;
        /* GELU and its derivative, absolute error scaled by max(1, |x|) */
        double xd = x, cdf = 0.5 * (1.0 + erf(xd / sqrt(2.0))), sc = fabs(xd) > 1.0 ? fabs(xd) : 1.0;
        e = fabs(fsd_geluf(x) - xd * cdf) / sc;
        if (e > e_gelu) e_gelu = e;
        e = fabs(fsd_gelu_gradf(x) - (cdf + xd * exp(-0.5 * xd * xd) / sqrt(2.0 * M_PI))) / sc;
        if (e > e_gelu_g) e_gelu_g = e;
    }
    /* sqrt / rsqrt over many binades, including subnormals for sqrt */
    for (int k = -149; k <= 127; k++)
        for (int j = 0; j < 1000; j++) {
            float x = ldexpf(1.0f + j / 1000.0f, k);
            if (x == 0.0f || isinf(x)) continue;
            double r = sqrt((double)x), e = fabs(fsd_sqrtf(x) - r) / r;
            if (e > e_sqrt) e_sqrt = e;
            if (k >= -126 && k < 126) {
                e = fabs(fsd_rsqrtf(x) - 1.0 / r) * r;
                if (e > e_rsq) e_rsq = e;
            }
        }
    const double tol = 4 * 2 * ULP24; /* 4 ulp of a value in [1, 2) */
    tu_check(e_exp <= tol, "vmath exp relative error %.3g (%.2f ulp) on [-87, 88]", e_exp, e_exp / (2 * ULP24));
    tu_check(e_sig <= tol, "vmath sigmoid relative error %.3g on [-40, 40]", e_sig);
    tu_check(e_sp <= tol, "vmath softplus relative error %.3g on [-40, 40]", e_sp);
    tu_check(e_l1p <= tol, "vmath log1p relative error %.3g on [0, 1]", e_l1p);
    tu_check(e_erf <= 2.5e-7, "vmath erf absolute error %.3g on [-6, 6] (A&S 7.1.26 bound 1.5e-7 + rounding)", e_erf);
    tu_check(e_erf_rel <= tol, "vmath erf relative error %.3g on |x| < 1", e_erf_rel);
    tu_check(e_erf_abs <= 6e-7, "vmath erf_abs (A&S only, used by GELU) absolute error %.3g on [-6, 6]", e_erf_abs);
    tu_check(e_gelu <= 2.5e-7 && e_gelu_g <= 5e-7,
             "vmath GELU / GELU' error %.3g / %.3g (absolute, / max(1,|x|)) on [-6, 6]", e_gelu, e_gelu_g);
    tu_check(e_sqrt <= tol, "vmath sqrt relative error %.3g over all binades", e_sqrt);
    tu_check(e_rsq <= tol, "vmath rsqrt relative error %.3g over normal binades", e_rsq);
    tu_check(fsd_sqrtf(0.0f) == 0.0f && fsd_expf(-1000.0f) < 1.3e-38f && isfinite(fsd_expf(1000.0f)) &&
                 isnan(fsd_expf(NAN)) && fsd_softplusf(1000.0f) == 1000.0f && fsd_sigmoidf(-1000.0f) >= 0.0f,
             "vmath edge values: sqrt(0) = 0, exp clamps without inf, NaN propagates, softplus(1000) = 1000");
}

/* An element's value must not depend on how the array is split (OpenMP chunks, thread count,
 * vector body vs scalar remainder): whole array on 2 threads == 1 thread == odd serial chunks. */
static void partition_independence(void) {
    const size_t big = 100003, chunk = 999;
    float *x = tu_zeros(big), *dy = tu_zeros(big), *r[3], *d[3];
    tu_fill_uniform(x, big, 77, 12.0f);
    tu_fill_uniform(dy, big, 78, 1.0f);
    act_fwd fw[3] = {fsd_silu_forward, fsd_gelu_forward, fsd_softplus_forward};
    act_bwd bw[3] = {fsd_silu_backward, fsd_gelu_backward, fsd_softplus_backward};
    const char *names[3] = {"silu", "gelu", "softplus"};
    for (int k = 0; k < 3; k++) r[k] = tu_zeros(big), d[k] = tu_zeros(big);
    for (int op = 0; op < 4; op++) {
        for (int v = 0; v < 3; v++) {
            memset(d[v], 0, big * 4);
            fsd_set_threads(v == 1 ? 1 : 2);
            if (op < 3 && v < 2) {
                fw[op](r[v], x, big);
                bw[op](d[v], dy, x, big);
            } else if (op < 3) {
                for (size_t i0 = 0; i0 < big; i0 += chunk) {
                    size_t m = big - i0 < chunk ? big - i0 : chunk;
                    fw[op](r[v] + i0, x + i0, m);
                    bw[op](d[v] + i0, dy + i0, x + i0, m);
                }
            } else { /* geglu: rows of 2F = 2 * 1001 inputs; the chunked variant runs row by row */
                const int F = 1001, N = (int)(big / (2 * F));
                if (v < 2) {
                    fsd_geglu_forward(r[v], x, N, F);
                    fsd_geglu_backward(d[v], dy, x, N, F);
                } else
                    for (int row = 0; row < N; row++) {
                        fsd_geglu_forward(r[v] + (size_t)row * F, x + (size_t)row * 2 * F, 1, F);
                        fsd_geglu_backward(d[v] + (size_t)row * 2 * F, dy + (size_t)row * F, x + (size_t)row * 2 * F, 1, F);
                    }
            }
        }
        fsd_set_threads(2);
        int same = !memcmp(r[0], r[1], big * 4) && !memcmp(r[0], r[2], big * 4) && !memcmp(d[0], d[1], big * 4) &&
                   !memcmp(d[0], d[2], big * 4);
        tu_check(same, "%s: forward and backward bit-identical for 2 threads, 1 thread and odd serial chunks",
                 op < 3 ? names[op] : "geglu");
    }
    for (int k = 0; k < 3; k++) fsd_free(r[k]), fsd_free(d[k]);
    fsd_free(x), fsd_free(dy);
}

int main(void) {
    fsd_set_threads(2);
    char **paths = NULL;
    int n = tu_list_cases("linear/act", &paths);
    tu_check(n >= 9, "found %d reference cases in %s/linear/act", n, tu_ref_dir());
    for (int i = 0; i < n; i++) run_case(paths[i]);
    tu_free_list(paths, n);
    fd_checks();
    vmath_accuracy();
    partition_independence();
    return tu_summary();
}
