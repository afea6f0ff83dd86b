/* Mamba ops: depthwise causal conv1d and the selective scan, forward and backward.
 *
 * Selective scan layout: u, delta, z, y are (B, E, L) so one channel's sequence is contiguous;
 * Bm, Cm are (B, N, L). The inner loops run over the N states of one channel at one step (N = 16
 * in the model: one or two SIMD registers), so B and C are first transposed to (B, L, N) in *scan
 * order* (step k is time L-1-k when reversed). After that the kernels only ever walk forward or
 * backward over k, and the reverse direction costs nothing extra.
 *
 * Backward memory is bounded by checkpointing: the forward saves the state h only at the start of
 * each chunk of `chunk` steps. The backward then runs in two phases:
 *   1. per (b, e), a reverse sweep of the adjoint recurrence g_{k-1} = a_k * (dys_k C_k + g_k)
 *      (it needs no h, only a_k = exp(delta_k A)), saving g at chunk boundaries;
 *   2. per (b, chunk), for every e: recompute the chunk's states from the h checkpoint, then
 *      back-propagate through the chunk starting from the saved g.
 * Phase 2 gives every task a disjoint time range, so dB and dC (sums over e) are accumulated in the
 * task's own chunk-sized buffers and written without atomics or a global reduction; only dA_log
 * and dD (sums over b and t) go through per-thread accumulators reduced at the end in thread order
 * (tasks are statically assigned, so the sums are reproducible for a given thread count).
 */
#include "fsdiff/ops_mamba.h"

#include "am_vec.h"

#include <math.h>
#include <omp.h>
#include <string.h>


/* ================================================================ depthwise causal conv1d */

static fsd_status conv1d_check(const char *op, int B, int D, int L, int K) {
    if (B < 1 || D < 1 || L < 1 || K < 1)
        return fsd_fail(FSD_ERR_INVALID, "%s: bad shape B=%d D=%d L=%d K=%d", op, B, D, L, K);
    return FSD_OK;
}

/* Tap k reads x[t + off(k)]: causal off = k-(K-1) <= 0, reversed off = (K-1)-k >= 0. */
static inline int conv_off(int k, int K, int reverse) { return reverse ? (K - 1) - k : k - (K - 1); }

fsd_status fsd_conv1d_causal_forward(float *y, const float *x, const float *w, const float *bias,
                                     int B, int D, int L, int K, int reverse) {
    fsd_status st = conv1d_check("conv1d_causal_forward", B, D, L, K);
    if (st) return st;
    if (!y || !x || !w) return fsd_fail(FSD_ERR_INVALID, "conv1d_causal_forward: NULL tensor");
    const int BD = B * D;
#pragma omp parallel for schedule(static)
    for (int bd = 0; bd < BD; bd++) {
        const int d = bd % D;
        const float *xr = x + (size_t)bd * L;
        float *yr = y + (size_t)bd * L;
        const float b0 = bias ? bias[d] : 0.0f;
        for (int t = 0; t < L; t++) yr[t] = b0;
        for (int k = 0; k < K; k++) {
            const int off = conv_off(k, K, reverse);
            const float wk = w[(size_t)d * K + k];
            /* valid t: 0 <= t + off < L (the rest reads the zero padding) */
            const int t0 = off < 0 ? -off : 0, t1 = off > 0 ? L - off : L;
#pragma omp simd
            for (int t = t0; t < t1; t++) yr[t] += wk * xr[t + off];
        }
    }
    return FSD_OK;
}

fsd_status fsd_conv1d_causal_backward(float *dx, float *dw, float *dbias, const float *dy, const float *x,
                                      const float *w, int B, int D, int L, int K, int reverse) {
    fsd_status st = conv1d_check("conv1d_causal_backward", B, D, L, K);
    if (st) return st;
    if (!dy || !x || !w) return fsd_fail(FSD_ERR_INVALID, "conv1d_causal_backward: NULL tensor");
    /* one task per channel d so dw[d,:] and dbias[d] sum over b without sharing */
#pragma omp parallel for schedule(static)
    for (int d = 0; d < D; d++) {
        double db = 0.0;
        for (int b = 0; b < B; b++) {
            const float *xr = x + ((size_t)b * D + d) * L;
            const float *gr = dy + ((size_t)b * D + d) * L;
            float s = 0.0f;
#pragma omp simd reduction(+ : s)
            for (int t = 0; t < L; t++) s += gr[t];
            db += s;
            for (int k = 0; k < K; k++) {
                const int off = conv_off(k, K, reverse);
                const int t0 = off < 0 ? -off : 0, t1 = off > 0 ? L - off : L;
                if (dw) {
                    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
                    for (int t = t0; t < t1; t++) acc += gr[t] * xr[t + off];
                    dw[(size_t)d * K + k] += acc;
                }
                if (dx) {
                    float *dxr = dx + ((size_t)b * D + d) * L;
                    const float wk = w[(size_t)d * K + k];
#pragma omp simd
                    for (int t = t0; t < t1; t++) dxr[t + off] += wk * gr[t];
                }
            }
        }
        if (dbias) dbias[d] += (float)db;
    }
    return FSD_OK;
}

/* ================================================================ selective scan */

static int scan_chunk(int chunk) { return chunk > 0 ? chunk : FSD_SCAN_CHUNK; }

static int scan_nchunks(int L, int chunk) { return (L + chunk - 1) / chunk; }

size_t fsd_selective_scan_ckpt_floats(int B, int E, int N, int L, int chunk) {
    if (B < 1 || E < 1 || N < 1 || L < 1) return 0;
    chunk = scan_chunk(chunk);
    return (size_t)B * E * (size_t)scan_nchunks(L, chunk) * N;
}

static fsd_status scan_check(const char *op, int B, int E, int N, int L) {
    if (B < 1 || E < 1 || N < 1 || L < 1)
        return fsd_fail(FSD_ERR_INVALID, "%s: bad shape B=%d E=%d N=%d L=%d", op, B, E, N, L);
    if (N > 4096) return fsd_fail(FSD_ERR_INVALID, "%s: d_state N=%d too large", op, N);
    return FSD_OK;
}

/* Time index of scan step k. */
static inline int step_t(int k, int L, int reverse) { return reverse ? L - 1 - k : k; }

/* XT (B, L, N) in scan order <- X (B, N, L). */
static void transpose_scan_order(float *XT, const float *X, int B, int N, int L, int reverse) {
    const int TB = 256; /* time tile: N x TB source floats stay in L1 */
    const int ntile = (L + TB - 1) / TB;
#pragma omp parallel for schedule(static)
    for (int bt = 0; bt < B * ntile; bt++) {
        const int b = bt / ntile, k0 = (bt % ntile) * TB, k1 = k0 + TB < L ? k0 + TB : L;
        const float *src = X + (size_t)b * N * L;
        float *dst = XT + (size_t)b * L * N;
        for (int k = k0; k < k1; k++) {
            const int t = step_t(k, L, reverse);
            for (int n = 0; n < N; n++) dst[(size_t)k * N + n] = src[(size_t)n * L + t];
        }
    }
}

/* One channel, whole sequence, any N: pre-gate output ys[t] (NULL: none) and the state at every
 * chunk start in ckpt[c*N..] (NULL: none). BT/CT: this batch's (L, N) scan-order rows. */
static void scan_channel(float *restrict ys, float *restrict ckpt, const float *restrict ur,
                         const float *restrict dr, const float *restrict A, const float *restrict BT,
                         const float *restrict CT, float Dv, int L, int N, int chunk, int reverse) {
    float h[N];
    memset(h, 0, sizeof h);
    for (int k = 0, left = 0, c = 0; k < L; k++, left--) {
        if (left == 0) { /* chunk start (a countdown: no division per step) */
            if (ckpt) memcpy(ckpt + (size_t)c * N, h, (size_t)N * sizeof(float));
            c++;
            left = chunk;
        }
        const int t = step_t(k, L, reverse);
        const float dt = dr[t], dtu = dt * ur[t];
        const float *Bk = BT + (size_t)k * N, *Ck = CT + (size_t)k * N;
        float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
        for (int n = 0; n < N; n++) {
            float hn = fsd_expf(dt * A[n]) * h[n] + dtu * Bk[n];
            h[n] = hn;
            acc += Ck[n] * hn;
        }
        if (ys) ys[t] = acc + Dv * ur[t];
    }
}

/* The same for N = 16 (the model's d_state): the state is one 16-lane vector held in registers
 * through the whole sequence and y_t's sum over n is a butterfly. */
static void scan_channel16(float *restrict ys, float *restrict ckpt, const float *restrict ur,
                           const float *restrict dr, const float *restrict A_, const float *restrict BT,
                           const float *restrict CT, float Dv, int L, int chunk, int reverse) {
    const am_v16 A = v16_load(A_);
    am_v16 h = {0};
    for (int k = 0, left = 0, c = 0; k < L; k++, left--) {
        if (left == 0) {
            if (ckpt) v16_store(ckpt + (size_t)c * 16, h);
            c++;
            left = chunk;
        }
        const int t = step_t(k, L, reverse);
        const float dt = dr[t], dtu = dt * ur[t];
        h = am_expv16(dt * A) * h + dtu * v16_load(BT + (size_t)k * 16);
        if (ys) ys[t] = v16_sum(v16_load(CT + (size_t)k * 16) * h) + Dv * ur[t];
    }
}

static inline float silu_gate(float z) { return z / (1.0f + fsd_expf(-z)); }

/* Forward over all (b, e); y NULL = checkpoints only (used by the backward to rebuild them). */
static void scan_forward_all(float *y, float *hckpt, const float *u, const float *delta, const float *A_log,
                             const float *BT, const float *CT, const float *D, const float *z,
                             int B, int E, int N, int L, int chunk, int reverse) {
    const int nc = scan_nchunks(L, chunk);
#pragma omp parallel for schedule(dynamic, 1)
    for (int be = 0; be < B * E; be++) {
        const int b = be / E, e = be % E;
        float A[N];
        for (int n = 0; n < N; n++) A[n] = -expf(A_log[(size_t)e * N + n]);
        const size_t row = (size_t)be * L;
        float *yr = y ? y + row : NULL;
        float *ck = hckpt ? hckpt + (size_t)be * nc * N : NULL;
        const float *BTb = BT + (size_t)b * L * N, *CTb = CT + (size_t)b * L * N, Dv = D ? D[e] : 0.0f;
        if (N == 16 && AM_V16_NATIVE)
            scan_channel16(yr, ck, u + row, delta + row, A, BTb, CTb, Dv, L, chunk, reverse);
        else
            scan_channel(yr, ck, u + row, delta + row, A, BTb, CTb, Dv, L, N, chunk, reverse);
        if (yr && z) {
            const float *zr = z + row;
#pragma omp simd
            for (int t = 0; t < L; t++) yr[t] *= silu_gate(zr[t]);
        }
    }
}

size_t fsd_selective_scan_ws_bytes(int backward, int have_ckpt, int B, int E, int N, int L, int chunk) {
    if (B < 1 || E < 1 || N < 1 || L < 1) return 0;
    chunk = scan_chunk(chunk);
    const size_t T = (size_t)omp_get_max_threads(), pad = 64;
    size_t f = 2 * ((size_t)B * L * N) + 2 * pad; /* BT, CT */
    if (backward) {
        const size_t ck = fsd_selective_scan_ckpt_floats(B, E, N, L, chunk);
        f += ck + pad;                                /* adjoint carries */
        if (!have_ckpt) f += ck + pad;                /* rebuilt checkpoints */
        f += (size_t)B * E * L + pad;                 /* gated dy */
        f += T * ((size_t)4 * chunk * N + chunk + 2 * (size_t)N) + pad; /* per-thread chunk buffers */
        f += T * ((size_t)E * N + E) + pad;           /* per-thread dA, dD */
    }
    return f * sizeof(float);
}

fsd_status fsd_selective_scan_forward(float *y, float *hckpt, const float *u, const float *delta,
                                      const float *A_log, const float *Bm, const float *Cm, const float *D,
                                      const float *z, int B, int E, int N, int L, int chunk, int reverse,
                                      fsd_arena *ws) {
    fsd_status st = scan_check("selective_scan_forward", B, E, N, L);
    if (st) return st;
    if (!y || !u || !delta || !A_log || !Bm || !Cm || !ws)
        return fsd_fail(FSD_ERR_INVALID, "selective_scan_forward: NULL tensor or arena");
    chunk = scan_chunk(chunk);
    size_t mark = fsd_arena_mark(ws);
    float *BT = fsd_arena_floats(ws, (size_t)B * L * N);
    float *CT = BT ? fsd_arena_floats(ws, (size_t)B * L * N) : NULL;
    if (!CT) {
        fsd_arena_reset(ws, mark);
        return FSD_ERR_NOMEM;
    }
    transpose_scan_order(BT, Bm, B, N, L, reverse);
    transpose_scan_order(CT, Cm, B, N, L, reverse);
    scan_forward_all(y, hckpt, u, delta, A_log, BT, CT, D, z, B, E, N, L, chunk, reverse);
    fsd_arena_reset(ws, mark);
    return FSD_OK;
}

/* Phase 1 for one channel: reverse sweep of g over all steps, saving g entering each chunk
 * (from the later side) in gck[c]. g_{k-1} = a_k * (dys_k C_k + g_k), g_{L-1} = 0. */
static void adjoint_sweep(float *restrict gck, const float *restrict dys, const float *restrict dr,
                          const float *restrict A, const float *restrict CT, int L, int N, int chunk, int reverse) {
    float g[N];
    memset(g, 0, sizeof g);
    for (int c = scan_nchunks(L, chunk) - 1; c >= 0; c--) {
        memcpy(gck + (size_t)c * N, g, (size_t)N * sizeof(float));
        const int k0 = c * chunk, k1 = k0 + chunk < L ? k0 + chunk : L;
        for (int k = k1 - 1; k >= k0; k--) {
            const int t = step_t(k, L, reverse);
            const float dt = dr[t], gy = dys[t];
            const float *Ck = CT + (size_t)k * N;
#pragma omp simd
            for (int n = 0; n < N; n++) g[n] = fsd_expf(dt * A[n]) * (gy * Ck[n] + g[n]);
        }
    }
}

static void adjoint_sweep16(float *restrict gck, const float *restrict dys, const float *restrict dr,
                            const float *restrict A_, const float *restrict CT, int L, int chunk, int reverse) {
    const am_v16 A = v16_load(A_);
    am_v16 g = {0};
    for (int c = scan_nchunks(L, chunk) - 1; c >= 0; c--) {
        v16_store(gck + (size_t)c * 16, g);
        const int k0 = c * chunk, k1 = k0 + chunk < L ? k0 + chunk : L;
        for (int k = k1 - 1; k >= k0; k--) {
            const int t = step_t(k, L, reverse);
            g = am_expv16(dr[t] * A) * (dys[t] * v16_load(CT + (size_t)k * 16) + g);
        }
    }
}

/* Phase 2 for one channel and one chunk [k0, k1): recompute states from h0, back-propagate from
 * the carry g. Accumulates dB/dC (chunk-local, scan order, (k1-k0, N)), dA (N, before the
 * A chain factor), du/ddelta (NULL: skipped), *dDp, and writes the pre-gate output ys per step
 * into ysb. hs/as: (chunk, N) scratch. Per step k, with dh = dL/dh_k:
 *   dh = dys_k C_k + g;  dL/d(delta_k A) = dh h_{k-1} a_k;  g <- a_k dh. */
static void chunk_backward(float *restrict dBl, float *restrict dCl, float *restrict dA, float *restrict dDp,
                           float *restrict du, float *restrict ddelta, float *restrict ysb, float *restrict hs,
                           float *restrict as, float *restrict g, const float *restrict h0,
                           const float *restrict dys, const float *restrict ur, const float *restrict dr,
                           const float *restrict A, const float *restrict BT, const float *restrict CT, float Dv,
                           int k0, int k1, int L, int N, int reverse) {
    for (int k = k0; k < k1; k++) { /* recompute a_k and h_k for the chunk */
        const int t = step_t(k, L, reverse), j = k - k0;
        const float dt = dr[t], dtu = dt * ur[t];
        const float *Bk = BT + (size_t)k * N, *hp = j ? hs + (size_t)(j - 1) * N : h0;
        float *hj = hs + (size_t)j * N, *aj = as + (size_t)j * N;
#pragma omp simd
        for (int n = 0; n < N; n++) {
            float a = fsd_expf(dt * A[n]);
            aj[n] = a;
            hj[n] = a * hp[n] + dtu * Bk[n];
        }
    }
    float dD = 0.0f;
    for (int k = k1 - 1; k >= k0; k--) {
        const int t = step_t(k, L, reverse), j = k - k0;
        const float dt = dr[t], ut = ur[t], gy = dys[t], dtu = dt * ut;
        const float *Bk = BT + (size_t)k * N, *Ck = CT + (size_t)k * N;
        const float *hj = hs + (size_t)j * N, *aj = as + (size_t)j * N, *hp = j ? hs + (size_t)(j - 1) * N : h0;
        float *dBj = dBl + (size_t)j * N, *dCj = dCl + (size_t)j * N;
        float ys = 0.0f, sA = 0.0f, sB = 0.0f;
#pragma omp simd reduction(+ : ys, sA, sB)
        for (int n = 0; n < N; n++) {
            const float dh = gy * Ck[n] + g[n];
            const float dx = dh * hp[n] * aj[n];
            ys += Ck[n] * hj[n];
            dCj[n] += gy * hj[n];
            dBj[n] += dh * dtu;
            dA[n] += dx * dt;
            sA += dx * A[n];
            sB += dh * Bk[n];
            g[n] = aj[n] * dh;
        }
        ysb[j] = ys + Dv * ut;
        dD += gy * ut;
        if (du) du[t] += sB * dt + gy * Dv;
        if (ddelta) ddelta[t] += sA + sB * ut;
    }
    *dDp += dD;
}

/* chunk_backward for N = 16: g, dA and each step's vectors in registers, the three sums over n
 * of a step (y, d/ddelta through A, d/ddelta through B) folded together. */
static void chunk_backward16(float *restrict dBl, float *restrict dCl, float *restrict dA_, float *restrict dDp,
                             float *restrict du, float *restrict ddelta, float *restrict ysb, float *restrict hs,
                             float *restrict as, float *restrict g_, const float *restrict h0,
                             const float *restrict dys, const float *restrict ur, const float *restrict dr,
                             const float *restrict A_, const float *restrict BT, const float *restrict CT, float Dv,
                             int k0, int k1, int L, int reverse) {
    const am_v16 A = v16_load(A_);
    am_v16 h = v16_load(h0);
    for (int k = k0; k < k1; k++) {
        const int t = step_t(k, L, reverse), j = k - k0;
        const float dt = dr[t];
        const am_v16 a = am_expv16(dt * A);
        h = a * h + (dt * ur[t]) * v16_load(BT + (size_t)k * 16);
        v16_store(as + (size_t)j * 16, a);
        v16_store(hs + (size_t)j * 16, h);
    }
    am_v16 g = v16_load(g_), dA = v16_load(dA_);
    float dD = 0.0f;
    for (int k = k1 - 1; k >= k0; k--) {
        const int t = step_t(k, L, reverse), j = k - k0;
        const float dt = dr[t], ut = ur[t], gy = dys[t];
        const am_v16 Bk = v16_load(BT + (size_t)k * 16), Ck = v16_load(CT + (size_t)k * 16);
        const am_v16 hj = v16_load(hs + (size_t)j * 16), aj = v16_load(as + (size_t)j * 16);
        const am_v16 hp = v16_load(j ? hs + (size_t)(j - 1) * 16 : h0);
        const am_v16 dh = gy * Ck + g;
        const am_v16 dx = dh * hp * aj;
        v16_store(dCl + (size_t)j * 16, v16_load(dCl + (size_t)j * 16) + gy * hj);
        v16_store(dBl + (size_t)j * 16, v16_load(dBl + (size_t)j * 16) + (dt * ut) * dh);
        dA += dt * dx;
        g = aj * dh;
        float ys, sA, sB;
        v16_sum3(Ck * hj, dx * A, dh * Bk, &ys, &sA, &sB);
        ysb[j] = ys + Dv * ut;
        dD += gy * ut;
        if (du) du[t] += sB * dt + gy * Dv;
        if (ddelta) ddelta[t] += sA + sB * ut;
    }
    v16_store(g_, g);
    v16_store(dA_, dA);
    *dDp += dD;
}

fsd_status fsd_selective_scan_backward(float *du, float *ddelta, float *dA_log, float *dBm, float *dCm,
                                       float *dD, float *dz, const float *dy, const float *hckpt,
                                       const float *u, const float *delta, const float *A_log,
                                       const float *Bm, const float *Cm, const float *D, const float *z,
                                       int B, int E, int N, int L, int chunk, int reverse, fsd_arena *ws) {
    fsd_status st = scan_check("selective_scan_backward", B, E, N, L);
    if (st) return st;
    if (!dy || !u || !delta || !A_log || !Bm || !Cm || !ws)
        return fsd_fail(FSD_ERR_INVALID, "selective_scan_backward: NULL tensor or arena");
    chunk = scan_chunk(chunk);
    const int nc = scan_nchunks(L, chunk), T = omp_get_max_threads();
    const size_t ckn = fsd_selective_scan_ckpt_floats(B, E, N, L, chunk);
    const size_t BEL = (size_t)B * E * L;
    const size_t per_thread = (size_t)4 * chunk * N + chunk + 2 * (size_t)N;
    size_t mark = fsd_arena_mark(ws);
    float *BT = fsd_arena_floats(ws, (size_t)B * L * N);
    float *CT = BT ? fsd_arena_floats(ws, (size_t)B * L * N) : NULL;
    float *gck = CT ? fsd_arena_floats(ws, ckn) : NULL;
    float *hck = (float *)hckpt;
    if (gck && !hck) hck = fsd_arena_floats(ws, ckn);
    float *dysb = (hck && z) ? fsd_arena_floats(ws, BEL) : NULL;
    float *tbuf = hck && (dysb || !z) ? fsd_arena_floats(ws, (size_t)T * per_thread) : NULL;
    float *accA = tbuf ? fsd_arena_floats(ws, (size_t)T * ((size_t)E * N + E)) : NULL;
    if (!accA) {
        fsd_arena_reset(ws, mark);
        return FSD_ERR_NOMEM;
    }
    memset(accA, 0, (size_t)T * ((size_t)E * N + E) * sizeof(float));
    transpose_scan_order(BT, Bm, B, N, L, reverse);
    transpose_scan_order(CT, Cm, B, N, L, reverse);
    if (!hckpt) scan_forward_all(NULL, hck, u, delta, A_log, BT, CT, D, z, B, E, N, L, chunk, reverse);

    /* gradient reaching the pre-gate output: dy * SiLU(z) */
    const float *dys = dy;
    if (z) {
#pragma omp parallel for schedule(static)
        for (int be = 0; be < B * E; be++) {
            const size_t row = (size_t)be * L;
#pragma omp simd
            for (int t = 0; t < L; t++) dysb[row + t] = dy[row + t] * silu_gate(z[row + t]);
        }
        dys = dysb;
    }

    /* phase 1: adjoint carries at chunk boundaries, per (b, e) */
#pragma omp parallel for schedule(dynamic, 1)
    for (int be = 0; be < B * E; be++) {
        const int b = be / E, e = be % E;
        float A[N];
        for (int n = 0; n < N; n++) A[n] = -expf(A_log[(size_t)e * N + n]);
        const size_t row = (size_t)be * L;
        const float *CTb = CT + (size_t)b * L * N;
        if (N == 16 && AM_V16_NATIVE)
            adjoint_sweep16(gck + (size_t)be * nc * N, dys + row, delta + row, A, CTb, L, chunk, reverse);
        else
            adjoint_sweep(gck + (size_t)be * nc * N, dys + row, delta + row, A, CTb, L, N, chunk, reverse);
    }

    /* phase 2: per (b, chunk); every task owns a disjoint time range of dB/dC/du/ddelta/dz */
#pragma omp parallel num_threads(T)
    {
        const int tid = omp_get_thread_num();
        float *hs = tbuf + (size_t)tid * per_thread, *as = hs + (size_t)chunk * N;
        float *dBl = as + (size_t)chunk * N, *dCl = dBl + (size_t)chunk * N;
        float *ysb = dCl + (size_t)chunk * N, *g = ysb + chunk, *A = g + N;
        float *myA = accA + (size_t)tid * ((size_t)E * N + E), *myD = myA + (size_t)E * N;
        float dA[N];
        /* static: a fixed task -> thread map, so each thread's dA_log/dD partial sums (and hence the
         * result) are the same from run to run (training must resume bit-exactly) */
#pragma omp for schedule(static)
        for (int bc = 0; bc < B * nc; bc++) {
            const int b = bc / nc, c = bc % nc;
            const int k0 = c * chunk, k1 = k0 + chunk < L ? k0 + chunk : L, nk = k1 - k0;
            const float *BTb = BT + (size_t)b * L * N, *CTb = CT + (size_t)b * L * N;
            memset(dBl, 0, (size_t)nk * N * sizeof(float));
            memset(dCl, 0, (size_t)nk * N * sizeof(float));
            for (int e = 0; e < E; e++) {
                const size_t be = (size_t)b * E + e, row = be * L;
                for (int n = 0; n < N; n++) A[n] = -expf(A_log[(size_t)e * N + n]);
                memcpy(g, gck + (be * nc + c) * N, (size_t)N * sizeof(float));
                memset(dA, 0, sizeof dA);
                const float *h0 = hck + (be * nc + c) * N;
                float *dur = du ? du + row : NULL, *ddr = ddelta ? ddelta + row : NULL;
                if (N == 16 && AM_V16_NATIVE)
                    chunk_backward16(dBl, dCl, dA, &myD[e], dur, ddr, ysb, hs, as, g, h0, dys + row, u + row,
                                     delta + row, A, BTb, CTb, D ? D[e] : 0.0f, k0, k1, L, reverse);
                else
                    chunk_backward(dBl, dCl, dA, &myD[e], dur, ddr, ysb, hs, as, g, h0, dys + row, u + row,
                                   delta + row, A, BTb, CTb, D ? D[e] : 0.0f, k0, k1, L, N, reverse);
                for (int n = 0; n < N; n++) myA[(size_t)e * N + n] += dA[n] * A[n]; /* dA_log = dA * A */
                if (dz) {
                    const float *zr = z + row, *dyr = dy + row;
                    float *dzr = dz + row;
                    for (int j = 0; j < nk; j++) {
                        const int t = step_t(k0 + j, L, reverse);
                        const float s = 1.0f / (1.0f + fsd_expf(-zr[t]));
                        dzr[t] += dyr[t] * ysb[j] * s * (1.0f + zr[t] * (1.0f - s));
                    }
                }
            }
            for (int n = 0; n < N; n++) {
                float *dBr = dBm ? dBm + ((size_t)b * N + n) * L : NULL;
                float *dCr = dCm ? dCm + ((size_t)b * N + n) * L : NULL;
                for (int j = 0; j < nk; j++) {
                    const int t = step_t(k0 + j, L, reverse);
                    if (dBr) dBr[t] += dBl[(size_t)j * N + n];
                    if (dCr) dCr[t] += dCl[(size_t)j * N + n];
                }
            }
        }
    }
    /* reduce the per-thread dA_log and dD accumulators */
    for (int i = 0; i < T; i++) {
        const float *myA = accA + (size_t)i * ((size_t)E * N + E), *myD = myA + (size_t)E * N;
        if (dA_log)
            for (size_t j = 0; j < (size_t)E * N; j++) dA_log[j] += myA[j];
        if (dD)
            for (int e = 0; e < E; e++) dD[e] += myD[e];
    }
    fsd_arena_reset(ws, mark);
    return FSD_OK;
}
