/* Multi-head attention core: out_h = softmax(q_h k_h^T * dh^-1/2) v_h per (batch, head).
 *
 * Heads are contiguous dh-channel slices of token-major (B, N, H*dh) tensors, so a head is a
 * strided matrix (row stride H*dh) and cblas_sgemm works on it in place through the leading
 * dimension: no split/merge-heads copies. The query rows are processed in blocks of R rows so the
 * R x Nk logit block stays in L2 between the Q K^T product, the softmax and the P V product.
 * Parallel over (batch, head[, row block]) with OpenMP; the OpenBLAS is the OpenMP build, so the
 * sgemm calls inside the parallel region run single-threaded.
 */
#include "fsdiff/ops_attention.h"

#include "am_vec.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

/* Few keys: direct kernels instead of GEMMs (see small_forward below). */
#define SMALL_NK 16
#define SMALL_DH 256
#define USE_SMALL(Nk, dh) ((Nk) <= SMALL_NK && (dh) <= SMALL_DH)

/* Rows per query block: the logit block R x Nk is ~256 KiB (fits L2), at least 32 rows so the
 * GEMMs keep a reasonable M, at most Nq. */
static int rows_per_block(int Nq, int Nk) {
    int R = 65536 / (Nk > 0 ? Nk : 1);
    if (R < 32) R = 32;
    if (R > Nq) R = Nq;
    return R;
}

static fsd_status check_args(const char *op, int B, int Nq, int Nk, int H, int dh) {
    if (B < 1 || Nq < 1 || Nk < 1 || H < 1 || dh < 1)
        return fsd_fail(FSD_ERR_INVALID, "%s: bad shape B=%d Nq=%d Nk=%d H=%d dh=%d", op, B, Nq, Nk, H, dh);
    if ((int64_t)H * dh > (1 << 24) || (int64_t)Nq * Nk > ((int64_t)1 << 40))
        return fsd_fail(FSD_ERR_INVALID, "%s: shape too large (Nq=%d Nk=%d H*dh=%d)", op, Nq, Nk, H * dh);
    return FSD_OK;
}

size_t fsd_attention_ws_bytes(int backward, int B, int Nq, int Nk, int H, int dh, int nthreads) {
    if (nthreads <= 0) nthreads = omp_get_max_threads();
    if (B < 1 || Nq < 1 || Nk < 1 || H < 1 || dh < 1) return 0;
    const size_t T = (size_t)nthreads, C = (size_t)H * dh, pad = 64;
    if (USE_SMALL(Nk, dh)) /* key/value tiles, per-thread dk/dv accumulators */
        return backward ? (2 * (size_t)B * C * SMALL_NK + 2 * T * B * Nk * C) * sizeof(float) + 3 * pad
                        : (size_t)B * C * SMALL_NK * sizeof(float) + pad;
    size_t R = (size_t)rows_per_block(Nq, Nk);
    return T * R * (size_t)Nk * sizeof(float) * (backward ? 2 : 1) + 2 * pad;
}

/* In-place row softmax of S (nr, n), max-subtracted. */
static void softmax_rows(float *S, int nr, int n) {
    for (int r = 0; r < nr; r++) {
        float *s = S + (size_t)r * n;
        float m = s[0];
#pragma omp simd reduction(max : m)
        for (int j = 0; j < n; j++) m = s[j] > m ? s[j] : m;
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < n; j++) {
            float e = fsd_expf(s[j] - m);
            s[j] = e;
            sum += e;
        }
        float inv = 1.0f / sum;
#pragma omp simd
        for (int j = 0; j < n; j++) s[j] *= inv;
    }
}

/* Few keys (cross-attention on a handful of context tokens): the GEMMs would have N or K <= 16,
 * where BLAS call and packing overhead dominate, so the rows are done directly. Every head's keys
 * (and values, for the backward) are transposed once into (dh, 16) tiles zero-padded to 16
 * columns: the Nk logits of a row are then dh broadcast-FMAs into one 16-wide vector (no
 * horizontal sums), and the softmax runs on that vector with padded lanes forced to probability 0.
 * Rows go RB = 8 at a time (independent FMA chains hide the FMA latency; dk/dv get one memory
 * update per group), and a task is a block of rows of one batch item with all heads inside, so
 * q/out/dout are streamed row by row instead of one strided 128-byte head slice per 1 KiB row
 * (which defeats the prefetchers and was ~2x slower). */
#define SMALL_ROWS 32 /* rows per task */
#define RB 8
#define AM_INLINE static inline __attribute__((always_inline))

/* Tiles (B, H, dh, 16) <- X (B, Nk, H*dh), zero-padded beyond Nk. */
static void small_tiles(float *T, const float *x, int B, int Nk, int H, int dh) {
    const int C = H * dh;
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * H; bh++) {
        const int b = bh / H, h = bh % H;
        const float *xb = x + (size_t)b * Nk * C + (size_t)h * dh;
        float *t = T + (size_t)bh * dh * SMALL_NK;
        for (int d = 0; d < dh; d++)
            for (int j = 0; j < SMALL_NK; j++) t[d * SMALL_NK + j] = j < Nk ? xb[(size_t)j * C + d] : 0.0f;
    }
}

/* s[r][j] = scale * x_r . T[:, j] for the RB rows x_r = x0 + r*C (rows >= nrow repeat row 0).
 * The inner update is RB FMAs with a broadcast operand; scale is applied once at the end. */
AM_INLINE void rows_times_tile(float s[RB][SMALL_NK], const float *x0, int C, int nrow, const float *T, float scale,
                               const int dh) {
    const float *x[RB];
    float a[RB][SMALL_NK];
#pragma GCC unroll 8
    for (int r = 0; r < RB; r++) {
        x[r] = x0 + (size_t)(r < nrow ? r : 0) * C;
#pragma omp simd
        for (int j = 0; j < SMALL_NK; j++) a[r][j] = 0.0f;
    }
    for (int d = 0; d < dh; d++) {
        const float *t = T + d * SMALL_NK;
#pragma GCC unroll 8
        for (int r = 0; r < RB; r++) {
            const float b = x[r][d];
#pragma omp simd
            for (int j = 0; j < SMALL_NK; j++) a[r][j] += b * t[j];
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < RB; r++)
#pragma omp simd
        for (int j = 0; j < SMALL_NK; j++) s[r][j] = a[r][j] * scale;
}

/* In place: s[r] -> softmax over lanes < Nk; lanes >= Nk and rows >= nrow -> 0.
 * The lane operations come in two spellings: 16-lane GNU vectors where they are one register
 * (AM_V16_NATIVE), plain 16-float loops elsewhere (with am_v16 the few-key forward ran 0.55-0.9x
 * PyTorch on a Zen 3, AVX2). */
#if AM_V16_NATIVE
static inline void small_softmax(float s[RB][SMALL_NK], int Nk, int nrow) {
    const am_i16 valid = v16_lanes_below(Nk);
    const am_v16 ninf = v16_set1(-INFINITY), zero = {0};
    for (int r = 0; r < RB; r++) {
        const am_v16 v = v16_select(valid, v16_load(s[r]), ninf);
        const am_v16 e = v16_select(valid, am_expv16(v - v16_allmax(v)), zero);
        v16_store(s[r], r < nrow ? e / v16_allsum(e) : zero);
    }
}
/* p[r] <- the r-th of nrow packed rows of Nk probabilities in flat, zero-padded to 16 lanes */
static inline void small_unpack_p(float p[RB][SMALL_NK], const float *flat, int Nk, int nrow) {
    const am_i16 valid = v16_lanes_below(Nk);
    for (int r = 0; r < RB; r++)
        v16_store(p[r], r < nrow ? v16_select(valid, v16_load(flat + r * Nk), (am_v16){0}) : (am_v16){0});
}
/* ds[r] <- scale p (dp - p.dp), with dp given in ds */
static inline void small_softmax_grad(float ds[RB][SMALL_NK], const float p[RB][SMALL_NK], float scale) {
    for (int r = 0; r < RB; r++) {
        const am_v16 pv = v16_load(p[r]), dp = v16_load(ds[r]);
        v16_store(ds[r], scale * pv * (dp - v16_allsum(pv * dp)));
    }
}
#else
static inline void small_softmax(float s[RB][SMALL_NK], int Nk, int nrow) {
    for (int r = 0; r < RB; r++) {
        if (r < nrow) softmax_rows(s[r], 1, Nk);
        for (int j = r < nrow ? Nk : 0; j < SMALL_NK; j++) s[r][j] = 0.0f;
    }
}
static inline void small_unpack_p(float p[RB][SMALL_NK], const float *flat, int Nk, int nrow) {
    for (int r = 0; r < RB; r++)
        for (int j = 0; j < SMALL_NK; j++) p[r][j] = r < nrow && j < Nk ? flat[r * Nk + j] : 0.0f;
}
static inline void small_softmax_grad(float ds[RB][SMALL_NK], const float p[RB][SMALL_NK], float scale) {
    for (int r = 0; r < RB; r++) {
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (int j = 0; j < SMALL_NK; j++) dot += p[r][j] * ds[r][j];
#pragma omp simd
        for (int j = 0; j < SMALL_NK; j++) ds[r][j] = scale * p[r][j] * (ds[r][j] - dot);
    }
}
#endif

/* One group of nrow <= RB rows of one head: ob = softmax(scale qb K^T) vb with K given as its
 * tile kT; P rows (nrow, Nk) saved when Pb. qb/ob/vb: head slices with row stride C. */
AM_INLINE void small_forward_group(float *ob, float *Pb, const float *qb, const float *kT, const float *vb, int nrow,
                                   int Nk, int C, float scale, const int dh) {
    float p[RB][SMALL_NK], o[RB][dh];
    rows_times_tile(p, qb, C, nrow, kT, scale, dh);
    small_softmax(p, Nk, nrow);
    for (int r = 0; r < RB; r++)
        for (int d = 0; d < dh; d++) o[r][d] = 0.0f;
    for (int j = 0; j < Nk; j++) {
        const float *vj = vb + (size_t)j * C;
#pragma GCC unroll 8
        for (int r = 0; r < RB; r++) {
            const float pr = p[r][j];
#pragma omp simd
            for (int d = 0; d < dh; d++) o[r][d] += pr * vj[d];
        }
    }
    for (int r = 0; r < nrow; r++) memcpy(ob + (size_t)r * C, o[r], (size_t)dh * sizeof(float));
    if (Pb) { /* the group's P rows are one contiguous run: pack, then one copy */
        float flat[RB * SMALL_NK];
        for (int r = 0; r < nrow; r++)
            for (int j = 0; j < Nk; j++) flat[r * Nk + j] = p[r][j];
        memcpy(Pb, flat, (size_t)nrow * Nk * sizeof(float));
    }
}

/* Backward of small_forward_group for one group of nrow <= RB rows of one head. Per row:
 * dp = dO_i V^T (via the V tile), ds = scale p (dp - p.dp); then dq_i += ds K, and into the
 * accumulators (Nk rows, stride C) dk_j += ds_j q_i, dv_j += p_j dO_i, each summed over the group
 * before touching memory. */
AM_INLINE void small_backward_group(float *dqb, float *dkacc, float *dvacc, const float *dob, const float *Pb,
                                    const float *qb, const float *kb, const float *kT, const float *vT, int nrow,
                                    int Nk, int C, float scale, const int dh) {
    float p[RB][SMALL_NK], ds[RB][SMALL_NK], g[RB][dh];
    if (Pb) { /* the group's P rows are one contiguous run: one copy, then padded 16-lane loads */
        float flat[RB * SMALL_NK + SMALL_NK];
        memcpy(flat, Pb, (size_t)nrow * Nk * sizeof(float));
        small_unpack_p(p, flat, Nk, nrow);
    } else {
        rows_times_tile(p, qb, C, nrow, kT, scale, dh);
        small_softmax(p, Nk, nrow);
    }
    rows_times_tile(ds, dob, C, nrow, vT, 1.0f, dh); /* dp */
    small_softmax_grad(ds, p, scale);
    /* rows >= nrow have p = ds = 0 and read row 0: they add nothing below */
    const float *x[RB], *gr[RB];
    for (int r = 0; r < RB; r++) {
        x[r] = qb + (size_t)(r < nrow ? r : 0) * C;
        gr[r] = dob + (size_t)(r < nrow ? r : 0) * C;
    }
    if (dqb) {
        for (int r = 0; r < RB; r++)
            for (int d = 0; d < dh; d++) g[r][d] = 0.0f;
        for (int j = 0; j < Nk; j++) {
            const float *kj = kb + (size_t)j * C;
#pragma GCC unroll 8
            for (int r = 0; r < RB; r++) {
                const float sr = ds[r][j];
#pragma omp simd
                for (int d = 0; d < dh; d++) g[r][d] += sr * kj[d];
            }
        }
        for (int r = 0; r < nrow; r++) {
            float *dqi = dqb + (size_t)r * C;
#pragma omp simd
            for (int d = 0; d < dh; d++) dqi[d] += g[r][d];
        }
    }
    for (int j = 0; j < Nk; j++) {
        float tk[dh], tv[dh]; /* this group's contribution to dk_j, dv_j: one memory update each */
#pragma omp simd
        for (int d = 0; d < dh; d++) tk[d] = tv[d] = 0.0f;
#pragma GCC unroll 8
        for (int r = 0; r < RB; r++) {
            const float sr = ds[r][j], pr = p[r][j];
            const float *xr = x[r], *gr_ = gr[r];
#pragma omp simd
            for (int d = 0; d < dh; d++) {
                tk[d] += sr * xr[d];
                tv[d] += pr * gr_[d];
            }
        }
        if (dkacc) {
            float *dkj = dkacc + (size_t)j * C;
#pragma omp simd
            for (int d = 0; d < dh; d++) dkj[d] += tk[d];
        }
        if (dvacc) {
            float *dvj = dvacc + (size_t)j * C;
#pragma omp simd
            for (int d = 0; d < dh; d++) dvj[d] += tv[d];
        }
    }
}

static fsd_status small_forward(float *out, float *P, const float *q, const float *k, const float *v, int B, int Nq,
                                int Nk, int H, int dh, float scale, fsd_arena *ws) {
    const int C = H * dh, nblk = (Nq + SMALL_ROWS - 1) / SMALL_ROWS;
    size_t mark = fsd_arena_mark(ws);
    float *kT = fsd_arena_floats(ws, (size_t)B * C * SMALL_NK);
    if (!kT) return FSD_ERR_NOMEM;
    small_tiles(kT, k, B, Nk, H, dh);
#pragma omp parallel for schedule(static)
    for (int task = 0; task < B * nblk; task++) {
        const int b = task / nblk, r0 = (task % nblk) * SMALL_ROWS;
        const int nr = Nq - r0 < SMALL_ROWS ? Nq - r0 : SMALL_ROWS;
        /* heads innermost: each row of q and out is walked front to back */
        for (int i0 = r0; i0 < r0 + nr; i0 += RB) {
            const int nrow = r0 + nr - i0 < RB ? r0 + nr - i0 : RB;
            for (int h = 0; h < H; h++) {
                const size_t qo = ((size_t)b * Nq + i0) * C + (size_t)h * dh;
                const float *vb = v + (size_t)b * Nk * C + (size_t)h * dh, *t = kT + ((size_t)b * H + h) * dh * SMALL_NK;
                float *Pb = P ? P + (((size_t)b * H + h) * Nq + i0) * Nk : NULL;
                if (dh == 32) /* the model's head width: constant trip counts */
                    small_forward_group(out + qo, Pb, q + qo, t, vb, nrow, Nk, C, scale, 32);
                else
                    small_forward_group(out + qo, Pb, q + qo, t, vb, nrow, Nk, C, scale, dh);
            }
        }
    }
    fsd_arena_reset(ws, mark);
    return FSD_OK;
}

/* dk/dv sum over all query rows, and tasks are row blocks, so every thread accumulates them in its
 * own (B, Nk, C) buffers (tiny: Nk <= 16), added up at the end. */
static fsd_status small_backward(float *dq, float *dk, float *dv, const float *dout, const float *P, const float *q,
                                 const float *k, const float *v, int B, int Nq, int Nk, int H, int dh, float scale,
                                 fsd_arena *ws) {
    const int C = H * dh, nblk = (Nq + SMALL_ROWS - 1) / SMALL_ROWS, T = omp_get_max_threads();
    const size_t nkv = (size_t)B * Nk * C;
    size_t mark = fsd_arena_mark(ws);
    float *kT = fsd_arena_floats(ws, (size_t)B * C * SMALL_NK);
    float *vT = kT ? fsd_arena_floats(ws, (size_t)B * C * SMALL_NK) : NULL;
    float *acc = vT ? fsd_arena_floats(ws, 2 * (size_t)T * nkv) : NULL;
    if (!acc) {
        fsd_arena_reset(ws, mark);
        return FSD_ERR_NOMEM;
    }
    memset(acc, 0, 2 * (size_t)T * nkv * sizeof(float));
    small_tiles(kT, k, B, Nk, H, dh);
    small_tiles(vT, v, B, Nk, H, dh);
#pragma omp parallel num_threads(T)
    {
        float *myk = acc + (size_t)omp_get_thread_num() * 2 * nkv, *myv = myk + nkv;
#pragma omp for schedule(static)
        for (int task = 0; task < B * nblk; task++) {
            const int b = task / nblk, r0 = (task % nblk) * SMALL_ROWS;
            const int nr = Nq - r0 < SMALL_ROWS ? Nq - r0 : SMALL_ROWS;
            for (int i0 = r0; i0 < r0 + nr; i0 += RB) {
                const int nrow = r0 + nr - i0 < RB ? r0 + nr - i0 : RB;
                for (int h = 0; h < H; h++) {
                    const size_t qo = ((size_t)b * Nq + i0) * C + (size_t)h * dh;
                    const size_t ko = (size_t)b * Nk * C + (size_t)h * dh, to = ((size_t)b * H + h) * dh * SMALL_NK;
                    const float *Pb = P ? P + (((size_t)b * H + h) * Nq + i0) * Nk : NULL;
                    float *dqb = dq ? dq + qo : NULL, *dka = dk ? myk + ko : NULL, *dva = dv ? myv + ko : NULL;
                    if (dh == 32)
                        small_backward_group(dqb, dka, dva, dout + qo, Pb, q + qo, k + ko, kT + to, vT + to, nrow, Nk,
                                             C, scale, 32);
                    else
                        small_backward_group(dqb, dka, dva, dout + qo, Pb, q + qo, k + ko, kT + to, vT + to, nrow, Nk,
                                             C, scale, dh);
                }
            }
        }
#pragma omp for schedule(static)
        for (size_t i = 0; i < nkv; i++) {
            float sk = 0.0f, sv = 0.0f;
            for (int t = 0; t < T; t++) {
                sk += acc[(size_t)t * 2 * nkv + i];
                sv += acc[(size_t)t * 2 * nkv + nkv + i];
            }
            if (dk) dk[i] += sk;
            if (dv) dv[i] += sv;
        }
    }
    fsd_arena_reset(ws, mark);
    return FSD_OK;
}

/* S (nr, Nk) = softmax(scale * Qblk Kh^T); qb, kb head slices with row stride C. */
static void probs_block(float *S, const float *qb, const float *kb, int nr, int Nk, int dh, int C, float scale) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, Nk, dh, scale, qb, C, kb, C, 0.0f, S, Nk);
    softmax_rows(S, nr, Nk);
}

fsd_status fsd_attention_forward(float *out, float *P, const float *q, const float *k, const float *v,
                                 int B, int Nq, int Nk, int H, int dh, fsd_arena *ws) {
    fsd_status st = check_args("attention_forward", B, Nq, Nk, H, dh);
    if (st) return st;
    if (!out || !q || !k || !v) return fsd_fail(FSD_ERR_INVALID, "attention_forward: NULL tensor");
    if (!ws) return fsd_fail(FSD_ERR_INVALID, "attention_forward: no workspace arena");
    const int C = H * dh;
    const float scale = 1.0f / sqrtf((float)dh);
    if (USE_SMALL(Nk, dh)) return small_forward(out, P, q, k, v, B, Nq, Nk, H, dh, scale, ws);
    const int R = rows_per_block(Nq, Nk);
    const int nblk = (Nq + R - 1) / R;
    const int T = omp_get_max_threads();
    size_t mark = fsd_arena_mark(ws);
    float *scr = NULL;
    if (!P) {
        scr = fsd_arena_floats(ws, (size_t)T * R * Nk);
        if (!scr) return FSD_ERR_NOMEM;
    }
    const int64_t ntask = (int64_t)B * H * nblk;
#pragma omp parallel for schedule(static) num_threads(T)
    for (int64_t task = 0; task < ntask; task++) {
        const int blk = (int)(task % nblk), bh = (int)(task / nblk);
        const int h = bh % H, b = bh / H;
        const int r0 = blk * R, nr = Nq - r0 < R ? Nq - r0 : R;
        const float *qb = q + ((size_t)b * Nq + r0) * C + (size_t)h * dh;
        const float *kb = k + (size_t)b * Nk * C + (size_t)h * dh;
        const float *vb = v + (size_t)b * Nk * C + (size_t)h * dh;
        float *ob = out + ((size_t)b * Nq + r0) * C + (size_t)h * dh;
        /* with P given the logits are built directly in P's rows: no scratch, no copy */
        float *S = P ? P + ((size_t)bh * Nq + r0) * Nk : scr + (size_t)omp_get_thread_num() * R * Nk;
        probs_block(S, qb, kb, nr, Nk, dh, C, scale);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, dh, Nk, 1.0f, S, Nk, vb, C, 0.0f, ob, C);
    }
    fsd_arena_reset(ws, mark);
    return FSD_OK;
}

/* Per (b, h), per query block (P = probabilities, dO = upstream gradient):
 *   dV += P^T dO;  dP = dO V^T;  dS = P * (dP - rowsum(dP * P));  dQ += scale dS K;  dK += scale dS^T Q.
 * dK and dV sum over all query blocks of a head, so a task is one (b, h) and its blocks run in order. */
fsd_status fsd_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *P,
                                  const float *q, const float *k, const float *v,
                                  int B, int Nq, int Nk, int H, int dh, fsd_arena *ws) {
    fsd_status st = check_args("attention_backward", B, Nq, Nk, H, dh);
    if (st) return st;
    if (!dout || !q || !k || !v) return fsd_fail(FSD_ERR_INVALID, "attention_backward: NULL tensor");
    if (!dq && !dk && !dv) return FSD_OK;
    if (!ws) return fsd_fail(FSD_ERR_INVALID, "attention_backward: no workspace arena");
    const int C = H * dh;
    const float scale = 1.0f / sqrtf((float)dh);
    const int R = rows_per_block(Nq, Nk);
    const int T = omp_get_max_threads();
    const int need_ds = dq || dk;
    if (USE_SMALL(Nk, dh)) return small_backward(dq, dk, dv, dout, P, q, k, v, B, Nq, Nk, H, dh, scale, ws);
    size_t mark = fsd_arena_mark(ws);
    float *pscr = NULL, *dscr = NULL;
    if (!P && !(pscr = fsd_arena_floats(ws, (size_t)T * R * Nk))) return FSD_ERR_NOMEM;
    if (need_ds && !(dscr = fsd_arena_floats(ws, (size_t)T * R * Nk))) {
        fsd_arena_reset(ws, mark);
        return FSD_ERR_NOMEM;
    }
    const int BH = B * H;
#pragma omp parallel for schedule(dynamic, 1) num_threads(T)
    for (int bh = 0; bh < BH; bh++) {
        const int h = bh % H, b = bh / H, tid = omp_get_thread_num();
        const float *kb = k + (size_t)b * Nk * C + (size_t)h * dh;
        const float *vb = v + (size_t)b * Nk * C + (size_t)h * dh;
        float *dkb = dk ? dk + (size_t)b * Nk * C + (size_t)h * dh : NULL;
        float *dvb = dv ? dv + (size_t)b * Nk * C + (size_t)h * dh : NULL;
        for (int r0 = 0; r0 < Nq; r0 += R) {
            const int nr = Nq - r0 < R ? Nq - r0 : R;
            const float *qb = q + ((size_t)b * Nq + r0) * C + (size_t)h * dh;
            const float *dob = dout + ((size_t)b * Nq + r0) * C + (size_t)h * dh;
            const float *Pb;
            if (P) {
                Pb = P + ((size_t)bh * Nq + r0) * Nk;
            } else {
                float *S = pscr + (size_t)tid * R * Nk;
                probs_block(S, qb, kb, nr, Nk, dh, C, scale);
                Pb = S;
            }
            if (dvb)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Nk, dh, nr, 1.0f, Pb, Nk, dob, C, 1.0f, dvb, C);
            if (!need_ds) continue;
            float *dS = dscr + (size_t)tid * R * Nk;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, Nk, dh, 1.0f, dob, C, vb, C, 0.0f, dS, Nk);
            for (int r = 0; r < nr; r++) {
                const float *p = Pb + (size_t)r * Nk;
                float *d = dS + (size_t)r * Nk;
                float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
                for (int j = 0; j < Nk; j++) dot += p[j] * d[j];
#pragma omp simd
                for (int j = 0; j < Nk; j++) d[j] = p[j] * (d[j] - dot);
            }
            if (dq) {
                float *dqb = dq + ((size_t)b * Nq + r0) * C + (size_t)h * dh;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, dh, Nk, scale, dS, Nk, kb, C, 1.0f, dqb, C);
            }
            if (dkb)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Nk, dh, nr, scale, dS, Nk, qb, C, 1.0f, dkb, C);
        }
    }
    fsd_arena_reset(ws, mark);
    return FSD_OK;
}
