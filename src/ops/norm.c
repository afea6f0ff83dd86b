/* GroupNorm (NCHW), LayerNorm over rows (N, C), channel-major LayerNorm over (B, C, L).
 *
 * All three are memory bound. Forward does, per group / row / tile, an exact two-pass mean and
 * variance and then the affine write while the data is still in L1/L2, so x streams from DRAM
 * once. Backward computes the two per-channel reductions sum(dy) and sum(dy (x - mean)) in one pass
 * and writes dx in a second pass over the (cache resident) group. Reductions use float lanes over
 * short blocks (so GCC vectorises them without -ffast-math) and combine blocks in double.
 * Parameter gradients are reduced through per-task partials in scratch, summed in a fixed order,
 * so results do not depend on the thread count. */
#include "fsdiff/ops_norm.h"

#include "ops/vmath.h"
#include "ops/ws_scratch.h"

#include <math.h>
#include <string.h>

#define LANES 32   /* independent float accumulators: enough to hide add latency */
#define BLOCK 1024 /* floats summed in float before the block total goes to double */

/* sum x[0..n) */
static double sum_f(const float *x, size_t n) {
    double total = 0.0;
    for (size_t i0 = 0; i0 < n; i0 += BLOCK) {
        size_t m = n - i0 < BLOCK ? n - i0 : BLOCK;
        const float *p = x + i0;
        float acc[LANES] = {0};
        size_t i = 0;
        for (; i + LANES <= m; i += LANES)
            for (int j = 0; j < LANES; j++) acc[j] += p[i + j];
        float tail = 0.0f;
        for (; i < m; i++) tail += p[i];
        double s = tail;
        for (int j = 0; j < LANES; j++) s += acc[j];
        total += s;
    }
    return total;
}

/* sum (x - mu)^2 over x[0..n) */
static double sumsq_dev_f(const float *x, size_t n, float mu) {
    double total = 0.0;
    for (size_t i0 = 0; i0 < n; i0 += BLOCK) {
        size_t m = n - i0 < BLOCK ? n - i0 : BLOCK;
        const float *p = x + i0;
        float acc[LANES] = {0};
        size_t i = 0;
        for (; i + LANES <= m; i += LANES)
            for (int j = 0; j < LANES; j++) {
                float d = p[i + j] - mu;
                acc[j] += d * d;
            }
        float tail = 0.0f;
        for (; i < m; i++) tail += (p[i] - mu) * (p[i] - mu);
        double s = tail;
        for (int j = 0; j < LANES; j++) s += acc[j];
        total += s;
    }
    return total;
}

/* s1 = sum dy, s2 = sum dy (x - mu) over n elements */
static void dy_sums_f(const float *dy, const float *x, size_t n, float mu, double *s1, double *s2) {
    double t1 = 0.0, t2 = 0.0;
    for (size_t i0 = 0; i0 < n; i0 += BLOCK) {
        size_t m = n - i0 < BLOCK ? n - i0 : BLOCK;
        const float *g = dy + i0, *p = x + i0;
        float a1[LANES] = {0}, a2[LANES] = {0};
        size_t i = 0;
        for (; i + LANES <= m; i += LANES)
            for (int j = 0; j < LANES; j++) {
                a1[j] += g[i + j];
                a2[j] += g[i + j] * (p[i + j] - mu);
            }
        float r1 = 0.0f, r2 = 0.0f;
        for (; i < m; i++) {
            r1 += g[i];
            r2 += g[i] * (p[i] - mu);
        }
        double u1 = r1, u2 = r2;
        for (int j = 0; j < LANES; j++) {
            u1 += a1[j];
            u2 += a2[j];
        }
        t1 += u1;
        t2 += u2;
    }
    *s1 = t1;
    *s2 = t2;
}

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
    /* per (b, c): [0] sum dy, [1] sum dy (x - mu) rstd  -> reduced over b for dbias / dweight */
    float *part = fsd_ws_floats(&sc, ws, (size_t)B * C * 2);
    if (!part) return FSD_ERR_NOMEM;
#pragma omp parallel for schedule(static) if (total >= PAR_MIN_ELEMS)
    for (int bg = 0; bg < B * G; bg++) {
        const int b = bg / G, g = bg % G;
        const float *xg = x + (size_t)bg * M, *dyg = dy + (size_t)bg * M;
        const float mu = mean[bg], r = rstd[bg];
        /* A = sum_c w_c s1_c = sum dxhat / rstd-free; E = sum_c w_c s2_c */
        double A = 0.0, E = 0.0;
        for (int cc = 0; cc < cpg; cc++) {
            const int c = g * cpg + cc;
            double s1, s2;
            dy_sums_f(dyg + (size_t)cc * HW, xg + (size_t)cc * HW, (size_t)HW, mu, &s1, &s2);
            const double w = weight ? weight[c] : 1.0;
            A += w * s1;
            E += w * s2;
            part[((size_t)b * C + c) * 2 + 0] = (float)s1;
            part[((size_t)b * C + c) * 2 + 1] = (float)(s2 * r);
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
    if (dweight || dbias) {
        for (int c = 0; c < C; c++) {
            double sb = 0.0, sw = 0.0;
            for (int b = 0; b < B; b++) {
                sb += part[((size_t)b * C + c) * 2 + 0];
                sw += part[((size_t)b * C + c) * 2 + 1];
            }
            if (dbias) dbias[c] += (float)sb;
            if (dweight) dweight[c] += (float)sw;
        }
    }
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
    float *part = fsd_ws_floats(&sc, ws, want_p ? (size_t)nblk * 2 * C : 1);
    if (!part) return FSD_ERR_NOMEM;
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
            if (want_p)
                for (int c = 0; c < C; c++) {
                    pw[c] += gr[c] * (xr[c] - m) * r;
                    pb[c] += gr[c];
                }
            if (!dx) continue;
            /* a = sum w dy, e = sum w dy (x - m); dx = r w dy - r a/C - (x - m) r^3 e / C */
            float a = 0.0f, e = 0.0f;
#pragma omp simd reduction(+ : a, e)
            for (int c = 0; c < C; c++) {
                float wg = gr[c] * (weight ? weight[c] : 1.0f);
                a += wg;
                e += wg * (xr[c] - m);
            }
            const float gam = -r * a / C, beta = -r * r * r * e / C;
            float *dr = dx + (size_t)n * C;
            for (int c = 0; c < C; c++)
                dr[c] += r * (weight ? weight[c] : 1.0f) * gr[c] + beta * (xr[c] - m) + gam;
        }
    }
    if (want_p) {
        for (int c = 0; c < C; c++) {
            double sw = 0.0, sb = 0.0;
            for (int blk = 0; blk < nblk; blk++) {
                sw += part[(size_t)blk * 2 * C + c];
                sb += part[(size_t)blk * 2 * C + C + c];
            }
            if (dweight) dweight[c] += (float)sw;
            if (dbias) dbias[c] += (float)sb;
        }
    }
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
    float *part = fsd_ws_floats(&sc, ws, want_p ? (size_t)ntiles * 2 * C : 1);
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
    if (want_p) {
        for (int c = 0; c < C; c++) {
            double sw = 0.0, sb = 0.0;
            for (int t = 0; t < ntiles; t++) {
                sw += part[(size_t)t * 2 * C + c];
                sb += part[(size_t)t * 2 * C + C + c];
            }
            if (dweight) dweight[c] += (float)sw;
            if (dbias) dbias[c] += (float)sb;
        }
    }
    fsd_ws_release(&sc);
    return FSD_OK;
}
