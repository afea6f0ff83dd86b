/* GroupNorm (NCHW), LayerNorm over rows (N, C), channel-major LayerNorm over (B, C, L).
 *
 * All three are memory bound. Forward does, per group / row / tile, an exact two-pass mean and
 * variance and then the affine write while the data is still in L1/L2, so x streams from DRAM
 * once. Backward computes the two per-channel reductions sum(dy) and sum(dy (x - mean)) in one pass
 * and writes dx in a second pass over the (cache resident) group. Reductions run in float SIMD
 * lanes over blocks of 1024 values and combine the block totals in double.
 * Parameter gradients are reduced through per-task partials in scratch, summed in a fixed order,
 * so results do not depend on the thread count. */
#include "fsdiff/ops_norm.h"

#include "ops/vmath.h"
#include "ops/ws_scratch.h"

#include <math.h>
#include <string.h>

#define BLOCK 1024 /* floats summed in float (SIMD lanes) before the block total goes to double */

/* The float reductions below use `omp simd reduction`, which lets GCC keep one vector
 * accumulator in registers and reassociate across its lanes without -ffast-math. */

/* sum x[0..n) */
static double sum_f(const float *x, size_t n) {
    double total = 0.0;
    for (size_t i0 = 0; i0 < n; i0 += BLOCK) {
        const size_t m = n - i0 < BLOCK ? n - i0 : BLOCK;
        const float *p = x + i0;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (size_t i = 0; i < m; i++) s += p[i];
        total += s;
    }
    return total;
}

/* sum (x - mu)^2 over x[0..n) */
static double sumsq_dev_f(const float *x, size_t n, float mu) {
    double total = 0.0;
    for (size_t i0 = 0; i0 < n; i0 += BLOCK) {
        const size_t m = n - i0 < BLOCK ? n - i0 : BLOCK;
        const float *p = x + i0;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (size_t i = 0; i < m; i++) s += (p[i] - mu) * (p[i] - mu);
        total += s;
    }
    return total;
}

/* s1 = sum dy, s2 = sum dy (x - mu) over n elements */
static void dy_sums_f(const float *dy, const float *x, size_t n, float mu, double *s1, double *s2) {
    double t1 = 0.0, t2 = 0.0;
    for (size_t i0 = 0; i0 < n; i0 += BLOCK) {
        const size_t m = n - i0 < BLOCK ? n - i0 : BLOCK;
        const float *g = dy + i0, *p = x + i0;
        float a1 = 0.0f, a2 = 0.0f;
#pragma omp simd reduction(+ : a1, a2)
        for (size_t i = 0; i < m; i++) {
            a1 += g[i];
            a2 += g[i] * (p[i] - mu);
        }
        t1 += a1;
        t2 += a2;
    }
    *s1 = t1;
    *s2 = t2;
}

/* One LayerNorm row (C values) of the backward pass: a = sum w dy, e = sum w dy (x - m), and,
 * when pw / pb are given, pw += dy (x - m) r, pb += dy. */
static void ln_row_sums(const float *gr, const float *xr, const float *wv, int C, float m, float r, float *pw,
                        float *pb, float *a_out, float *e_out) {
    double ta = 0.0, te = 0.0;
    for (int c0 = 0; c0 < C; c0 += BLOCK) {
        const int n = C - c0 < BLOCK ? C - c0 : BLOCK;
        const float *g = gr + c0, *p = xr + c0, *w = wv + c0;
        float a = 0.0f, e = 0.0f;
        /* a, e from one loop whether or not partials are wanted: with the partial updates in the same
         * loop the compiler vectorises the reduction differently (AVX2), and dx would change with them */
#pragma omp simd reduction(+ : a, e)
        for (int i = 0; i < n; i++) {
            float wg = g[i] * w[i];
            a += wg;
            e += wg * (p[i] - m);
        }
        if (pw) {
            float *qw = pw + c0, *qb = pb + c0;
#pragma omp simd
            for (int i = 0; i < n; i++) {
                float gg = g[i];
                qw[i] += gg * (p[i] - m) * r;
                qb[i] += gg;
            }
        }
        ta += a;
        te += e;
    }
    *a_out = (float)ta;
    *e_out = (float)te;
}

/* dweight[c] += sum_k part[k][c], dbias[c] += sum_k part[k][C + c] for part laid out [nk][2C]:
 * added in k order in double (fixed order: no dependence on the thread count), walking rows of
 * part contiguously (a column walk with a 4 KiB stride lands every read in one L1 set).
 * acc: scratch for 2C doubles. */
static void reduce_partials(float *dweight, float *dbias, const float *part, int nk, int C, double *acc) {
    const int C2 = 2 * C;
    for (int c = 0; c < C2; c++) acc[c] = 0.0;
    for (int k = 0; k < nk; k++) {
        const float *pk = part + (size_t)k * C2;
        for (int c = 0; c < C2; c++) acc[c] += pk[c];
    }
    for (int c = 0; c < C; c++) {
        if (dweight) dweight[c] += (float)acc[c];
        if (dbias) dbias[c] += (float)acc[C + c];
    }
}

/* floats of scratch for [nk][2C] partials followed by 2C doubles */
static size_t partials_floats(int nk, int C) { return (size_t)nk * 2 * C + 4 * (size_t)C; }

/* Parallelise only when there is enough work to pay for waking the threads. */
#define PAR_MIN_ELEMS 32768

/* ================================================================ GroupNorm */

fsd_status fsd_groupnorm_forward(float *y, float *mean, float *rstd, const float *x, const float *weight,
                                 const float *bias, int B, int C, int HW, int G, float eps) {
    if (!y || !x || B <= 0 || C <= 0 || HW <= 0 || G <= 0 || C % G != 0 || !(eps >= 0.0f))
        return fsd_fail(FSD_ERR_INVALID, "groupnorm_forward: bad arguments (B %d, C %d, HW %d, G %d, eps %g)", B,
                        C, HW, G, (double)eps);
    const int cpg = C / G;
    const size_t M = (size_t)cpg * HW; /* elements per group, contiguous in NCHW */
    const size_t total = (size_t)B * C * HW;
#pragma omp parallel for schedule(static) if (total >= PAR_MIN_ELEMS)
    for (int bg = 0; bg < B * G; bg++) {
        const int g = bg % G;
        const float *xg = x + (size_t)bg * M;
        float *yg = y + (size_t)bg * M;
        double mu = sum_f(xg, M) / (double)M;
        double var = sumsq_dev_f(xg, M, (float)mu) / (double)M;
        double r = 1.0 / sqrt(var + (double)eps);
        if (mean) mean[bg] = (float)mu;
        if (rstd) rstd[bg] = (float)r;
        for (int cc = 0; cc < cpg; cc++) {
            const int c = g * cpg + cc;
            /* y = (x - mu) (r w) + b; subtracting mu first (rather than x s + (b - mu s)) keeps
             * full precision when |mu| >> std or rstd is large */
            const float s = (float)(r * (weight ? weight[c] : 1.0f));
            const float t = bias ? bias[c] : 0.0f, m = (float)mu;
            const float *xc = xg + (size_t)cc * HW;
            float *yc = yg + (size_t)cc * HW;
            for (int i = 0; i < HW; i++) yc[i] = (xc[i] - m) * s + t;
        }
    }
    return FSD_OK;
}

fsd_status fsd_groupnorm_backward(float *dx, float *dweight, float *dbias, const float *dy, const float *x,
                                  const float *mean, const float *rstd, const float *weight, int B, int C,
                                  int HW, int G, fsd_arena *ws) {
    if (!dy || !x || !mean || !rstd || B <= 0 || C <= 0 || HW <= 0 || G <= 0 || C % G != 0)
        return fsd_fail(FSD_ERR_INVALID, "groupnorm_backward: bad arguments (B %d, C %d, HW %d, G %d)", B, C, HW,
                        G);
    const int cpg = C / G;
    const size_t M = (size_t)cpg * HW;
    const size_t total = (size_t)B * C * HW;
    fsd_ws_scratch sc;
    /* [B][2C]: sum dy (x - mu) rstd per (b, c), then sum dy per (b, c); reduced over b */
    float *part = fsd_ws_floats(&sc, ws, partials_floats(B, C));
    if (!part) return FSD_ERR_NOMEM;
#pragma omp parallel for schedule(static) if (total >= PAR_MIN_ELEMS)
    for (int bg = 0; bg < B * G; bg++) {
        const int b = bg / G, g = bg % G;
        const float *xg = x + (size_t)bg * M, *dyg = dy + (size_t)bg * M;
        const float mu = mean[bg], r = rstd[bg];
        /* over the group: A = sum w dy, E = sum w dy (x - mu); per channel s1 = sum dy,
         * s2 = sum dy (x - mu) also give dbias and dweight (= s2 rstd) */
        double A = 0.0, E = 0.0;
        for (int cc = 0; cc < cpg; cc++) {
            const int c = g * cpg + cc;
            double s1, s2;
            dy_sums_f(dyg + (size_t)cc * HW, xg + (size_t)cc * HW, (size_t)HW, mu, &s1, &s2);
            const double w = weight ? weight[c] : 1.0;
            A += w * s1;
            E += w * s2;
            part[(size_t)b * 2 * C + c] = (float)(s2 * r);
            part[(size_t)b * 2 * C + C + c] = (float)s1;
        }
        if (!dx) continue;
        /* xhat = (x - mu) r, dxhat = w dy:
         * dx = r (dxhat - mean(dxhat) - xhat mean(dxhat xhat)) = r w dy - r A/M - (x - mu) r^3 E/M */
        const float beta = (float)(-(double)r * r * r * E / (double)M);
        const float gam = (float)(-(double)r * A / (double)M);
        float *dxg = dx + (size_t)bg * M;
        for (int cc = 0; cc < cpg; cc++) {
            const int c = g * cpg + cc;
            const float alpha = r * (weight ? weight[c] : 1.0f);
            const float *xc = xg + (size_t)cc * HW, *gc = dyg + (size_t)cc * HW;
            float *dc = dxg + (size_t)cc * HW;
            for (int i = 0; i < HW; i++) dc[i] += alpha * gc[i] + beta * (xc[i] - mu) + gam;
        }
    }
    if (dweight || dbias) reduce_partials(dweight, dbias, part, B, C, (double *)(part + (size_t)B * 2 * C));
    fsd_ws_release(&sc);
    return FSD_OK;
}

/* ================================================================ LayerNorm over rows */

fsd_status fsd_layernorm_forward(float *y, float *mean, float *rstd, const float *x, const float *weight,
                                 const float *bias, int N, int C, float eps) {
    if (!y || !x || N <= 0 || C <= 0 || !(eps >= 0.0f))
        return fsd_fail(FSD_ERR_INVALID, "layernorm_forward: bad arguments (N %d, C %d, eps %g)", N, C, (double)eps);
    const size_t total = (size_t)N * C;
#pragma omp parallel for schedule(static) if (total >= PAR_MIN_ELEMS)
    for (int n = 0; n < N; n++) {
        const float *xr = x + (size_t)n * C;
        float *yr = y + (size_t)n * C;
        double mu = sum_f(xr, (size_t)C) / C;
        double var = sumsq_dev_f(xr, (size_t)C, (float)mu) / C;
        const float r = (float)(1.0 / sqrt(var + (double)eps));
        const float m = (float)mu;
        if (mean) mean[n] = m;
        if (rstd) rstd[n] = r;
        if (weight && bias)
            for (int c = 0; c < C; c++) yr[c] = (xr[c] - m) * r * weight[c] + bias[c];
        else
            for (int c = 0; c < C; c++)
                yr[c] = (xr[c] - m) * r * (weight ? weight[c] : 1.0f) + (bias ? bias[c] : 0.0f);
    }
    return FSD_OK;
}

fsd_status fsd_layernorm_backward(float *dx, float *dweight, float *dbias, const float *dy, const float *x,
                                  const float *mean, const float *rstd, const float *weight, int N, int C,
                                  fsd_arena *ws) {
    if (!dy || !x || !mean || !rstd || N <= 0 || C <= 0)
        return fsd_fail(FSD_ERR_INVALID, "layernorm_backward: bad arguments (N %d, C %d)", N, C);
    /* Rows are split into a fixed number of blocks (independent of the thread count); each block
     * accumulates its dweight / dbias partial, partials are then summed in block order. */
    const int rows_per_blk = N / 512 > 16 ? (N + 511) / 512 : 16;
    const int nblk = (N + rows_per_blk - 1) / rows_per_blk;
    const int want_p = dweight || dbias;
    fsd_ws_scratch sc;
    /* [nblk][2C] partials, then [C] weights (ones when weight is NULL: branch-free inner loops) */
    float *part = fsd_ws_floats(&sc, ws, (want_p ? partials_floats(nblk, C) : 0) + (size_t)C);
    if (!part) return FSD_ERR_NOMEM;
    float *wv = part + (want_p ? partials_floats(nblk, C) : 0);
    for (int c = 0; c < C; c++) wv[c] = weight ? weight[c] : 1.0f;
    const size_t total = (size_t)N * C;
#pragma omp parallel for schedule(static) if (total >= PAR_MIN_ELEMS)
    for (int blk = 0; blk < nblk; blk++) {
        float *pw = part + (size_t)blk * 2 * C, *pb = pw + C;
        if (want_p)
            for (int c = 0; c < 2 * C; c++) pw[c] = 0.0f;
        const int n1 = (blk + 1) * rows_per_blk < N ? (blk + 1) * rows_per_blk : N;
        for (int n = blk * rows_per_blk; n < n1; n++) {
            const float *xr = x + (size_t)n * C, *gr = dy + (size_t)n * C;
            const float m = mean[n], r = rstd[n];
            float a, e;
            ln_row_sums(gr, xr, wv, C, m, r, want_p ? pw : NULL, pb, &a, &e);
            if (!dx) continue;
            /* dx = r w dy - r a/C - (x - m) r^3 e / C */
            const float gam = -r * a / C, beta = -r * r * r * e / C;
            float *dr = dx + (size_t)n * C;
            for (int c = 0; c < C; c++) dr[c] += r * wv[c] * gr[c] + beta * (xr[c] - m) + gam;
        }
    }
    if (want_p) reduce_partials(dweight, dbias, part, nblk, C, (double *)(part + (size_t)nblk * 2 * C));
    fsd_ws_release(&sc);
    return FSD_OK;
}

/* ================================================================ channel-major LayerNorm */

/* positions per tile: the tile's C x T block stays in L1 between the passes */
static int cm_tile(int C) {
    int t = 8192 / (C > 0 ? C : 1);
    t = t / 16 * 16;
    if (t < 16) t = 16;
    if (t > 512) t = 512;
    return t;
}

fsd_status fsd_layernorm_cm_forward(float *y, float *mean, float *rstd, const float *x, const float *weight,
                                    const float *bias, int B, int C, int L, float eps) {
    if (!y || !x || B <= 0 || C <= 0 || L <= 0 || !(eps >= 0.0f))
        return fsd_fail(FSD_ERR_INVALID, "layernorm_cm_forward: bad arguments (B %d, C %d, L %d, eps %g)", B, C, L,
                        (double)eps);
    const int T = cm_tile(C);
    const int tiles_per_b = (L + T - 1) / T;
    const size_t total = (size_t)B * C * L;
    const float invC = 1.0f / C;
#pragma omp parallel for schedule(static) if (total >= PAR_MIN_ELEMS)
    for (int tile = 0; tile < B * tiles_per_b; tile++) {
        const int b = tile / tiles_per_b, l0 = (tile % tiles_per_b) * T;
        const int nl = L - l0 < T ? L - l0 : T;
        const float *xb = x + (size_t)b * C * L + l0;
        float *yb = y + (size_t)b * C * L + l0;
        float mu[512], rs[512];
        for (int l = 0; l < nl; l++) mu[l] = 0.0f;
        for (int c = 0; c < C; c++) {
            const float *xc = xb + (size_t)c * L;
            for (int l = 0; l < nl; l++) mu[l] += xc[l];
        }
        for (int l = 0; l < nl; l++) {
            mu[l] *= invC;
            rs[l] = 0.0f;
        }
        for (int c = 0; c < C; c++) {
            const float *xc = xb + (size_t)c * L;
            for (int l = 0; l < nl; l++) {
                float d = xc[l] - mu[l];
                rs[l] += d * d;
            }
        }
        for (int l = 0; l < nl; l++) rs[l] = fsd_rsqrtf(rs[l] * invC + eps);
        for (int c = 0; c < C; c++) {
            const float w = weight ? weight[c] : 1.0f, bb = bias ? bias[c] : 0.0f;
            const float *xc = xb + (size_t)c * L;
            float *yc = yb + (size_t)c * L;
            for (int l = 0; l < nl; l++) yc[l] = (xc[l] - mu[l]) * rs[l] * w + bb;
        }
        if (mean) memcpy(mean + (size_t)b * L + l0, mu, (size_t)nl * sizeof(float));
        if (rstd) memcpy(rstd + (size_t)b * L + l0, rs, (size_t)nl * sizeof(float));
    }
    return FSD_OK;
}

fsd_status fsd_layernorm_cm_backward(float *dx, float *dweight, float *dbias, const float *dy, const float *x,
                                     const float *mean, const float *rstd, const float *weight, int B, int C,
                                     int L, fsd_arena *ws) {
    if (!dy || !x || !mean || !rstd || B <= 0 || C <= 0 || L <= 0)
        return fsd_fail(FSD_ERR_INVALID, "layernorm_cm_backward: bad arguments (B %d, C %d, L %d)", B, C, L);
    const int T = cm_tile(C);
    const int tiles_per_b = (L + T - 1) / T;
    const int ntiles = B * tiles_per_b;
    const int want_p = dweight || dbias;
    fsd_ws_scratch sc;
    /* per tile: [C] sum dy (x - mu) r, [C] sum dy */
    float *part = fsd_ws_floats(&sc, ws, want_p ? partials_floats(ntiles, C) : 1);
    if (!part) return FSD_ERR_NOMEM;
    const size_t total = (size_t)B * C * L;
    const float invC = 1.0f / C;
#pragma omp parallel for schedule(static) if (total >= PAR_MIN_ELEMS)
    for (int tile = 0; tile < ntiles; tile++) {
        const int b = tile / tiles_per_b, l0 = (tile % tiles_per_b) * T;
        const int nl = L - l0 < T ? L - l0 : T;
        const size_t off = (size_t)b * C * L + l0;
        const float *xb = x + off, *gb = dy + off;
        const float *mu = mean + (size_t)b * L + l0, *rs = rstd + (size_t)b * L + l0;
        if (want_p) {
            float *pw = part + (size_t)tile * 2 * C, *pb = pw + C;
            for (int c = 0; c < C; c++) {
                const float *xc = xb + (size_t)c * L, *gc = gb + (size_t)c * L;
                float sw = 0.0f, sb = 0.0f;
#pragma omp simd reduction(+ : sw, sb)
                for (int l = 0; l < nl; l++) {
                    sw += gc[l] * (xc[l] - mu[l]) * rs[l];
                    sb += gc[l];
                }
                pw[c] = sw;
                pb[c] = sb;
            }
        }
        if (!dx) continue;
        float a[512], e[512];
        for (int l = 0; l < nl; l++) a[l] = e[l] = 0.0f;
        for (int c = 0; c < C; c++) {
            const float w = weight ? weight[c] : 1.0f;
            const float *xc = xb + (size_t)c * L, *gc = gb + (size_t)c * L;
            for (int l = 0; l < nl; l++) {
                float wg = w * gc[l];
                a[l] += wg;
                e[l] += wg * (xc[l] - mu[l]);
            }
        }
        /* dx = r w dy - r a/C - (x - mu) r^3 e / C; fold the per-position factors first */
        for (int l = 0; l < nl; l++) {
            float r = rs[l];
            a[l] = -r * a[l] * invC;
            e[l] = -r * r * r * e[l] * invC;
        }
        for (int c = 0; c < C; c++) {
            const float w = weight ? weight[c] : 1.0f;
            const float *xc = xb + (size_t)c * L, *gc = gb + (size_t)c * L;
            float *dc = dx + off + (size_t)c * L;
            for (int l = 0; l < nl; l++) dc[l] += rs[l] * w * gc[l] + e[l] * (xc[l] - mu[l]) + a[l];
        }
    }
    if (want_p) reduce_partials(dweight, dbias, part, ntiles, C, (double *)(part + (size_t)ntiles * 2 * C));
    fsd_ws_release(&sc);
    return FSD_OK;
}
