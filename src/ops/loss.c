/* L1 and MSE losses, means over n elements.
 * Forward sums in double over fixed chunks (independent of the thread count) and adds the chunk
 * totals in order, so the loss is bit-identical for any number of threads. */
/* Contraction of a*b+c into fma is left to the explicit FSD_FMAF calls (vmath.h): GCC otherwise
 * contracts the vector loop body and its scalar peel/remainder differently, and an element's
 * value would depend on where the OpenMP chunk boundaries fall, i.e. on the thread count. */
#pragma GCC optimize("fp-contract=off")

#include "fsdiff/ops_linear.h"

#include <string.h>

#include <math.h>

#define PAR_MIN_ELEMS 32768
#define MAX_CHUNKS 1024
#define LANES 32
#define BLOCK 1024

/* sum over [0, m) of |p - t| (kind 0) or (p - t)^2 (kind 1): float lanes per block, double across */
static double chunk_sum(const float *p, const float *t, size_t m, int kind) {
    double total = 0.0;
    for (size_t i0 = 0; i0 < m; i0 += BLOCK) {
        size_t k = m - i0 < BLOCK ? m - i0 : BLOCK;
        float acc[LANES] = {0};
        size_t i = 0;
        for (; i + LANES <= k; i += LANES)
            for (int j = 0; j < LANES; j++) {
                float d = p[i0 + i + j] - t[i0 + i + j];
                acc[j] += kind ? d * d : fabsf(d);
            }
        double s = 0.0;
        for (; i < k; i++) {
            float d = p[i0 + i] - t[i0 + i];
            s += kind ? d * d : fabsf(d);
        }
        for (int j = 0; j < LANES; j++) s += acc[j];
        total += s;
    }
    return total;
}

static double mean_loss(const float *p, const float *t, size_t n, int kind) {
    if (n == 0) return 0.0;
    size_t chunk = 16384;
    if ((n + chunk - 1) / chunk > MAX_CHUNKS) chunk = (n + MAX_CHUNKS - 1) / MAX_CHUNKS;
    const long nch = (long)((n + chunk - 1) / chunk);
    double part[MAX_CHUNKS];
#pragma omp parallel for schedule(static) if (n >= PAR_MIN_ELEMS)
    for (long c = 0; c < nch; c++) {
        size_t i0 = (size_t)c * chunk, m = n - i0 < chunk ? n - i0 : chunk;
        part[c] = chunk_sum(p + i0, t + i0, m, kind);
    }
    double s = 0.0;
    for (long c = 0; c < nch; c++) s += part[c];
    return s / (double)n;
}

double fsd_l1_loss_forward(const float *pred, const float *target, size_t n) { return mean_loss(pred, target, n, 0); }

double fsd_mse_loss_forward(const float *pred, const float *target, size_t n) { return mean_loss(pred, target, n, 1); }

/* Backward loops: g_i = G(i), dpred += g, dtarget -= g. One loop per (loss, NULL pattern), so
 * every OpenMP body is straight-line code (a loop-invariant `kind` test inside the outlined body
 * kept GCC from vectorising the L1 loop). */
#define LOSS_BACKWARD_LOOPS(G)                                                                                  \
    if (dpred && dtarget) {                                                                                    \
        _Pragma("omp parallel for simd schedule(static) if (n >= PAR_MIN_ELEMS)")                              \
        for (size_t i = 0; i < n; i++) {                                                                       \
            float g = G(i);                                                                                    \
            dpred[i] += g;                                                                                     \
            dtarget[i] -= g;                                                                                   \
        }                                                                                                      \
    } else if (dpred) {                                                                                        \
        _Pragma("omp parallel for simd schedule(static) if (n >= PAR_MIN_ELEMS)")                              \
        for (size_t i = 0; i < n; i++) dpred[i] += G(i);                                                       \
    } else if (dtarget) {                                                                                      \
        _Pragma("omp parallel for simd schedule(static) if (n >= PAR_MIN_ELEMS)")                              \
        for (size_t i = 0; i < n; i++) dtarget[i] -= G(i);                                                     \
    }

void fsd_l1_loss_backward(float *dpred, float *dtarget, const float *pred, const float *target, size_t n,
                          float dloss) {
    if (n == 0) return;
    const float s = (float)((double)dloss / (double)n);
    const float *p = pred, *t = target;
    /* s sign(p - t) with sign(0) = 0, as torch.sign in L1Loss's backward */
#define L1_G(i) (p[i] > t[i] ? s : (p[i] < t[i] ? -s : 0.0f))
    LOSS_BACKWARD_LOOPS(L1_G)
#undef L1_G
}

void fsd_mse_loss_backward(float *dpred, float *dtarget, const float *pred, const float *target, size_t n,
                           float dloss) {
    if (n == 0) return;
    const float s = (float)(2.0 * (double)dloss / (double)n);
    const float *p = pred, *t = target;
#define MSE_G(i) (s * (p[i] - t[i]))
    LOSS_BACKWARD_LOOPS(MSE_G)
#undef MSE_G
}

fsd_status fsd_loss_kind_parse(const char *name, fsd_loss_kind *out) {
    if (name && !strcmp(name, "l1")) *out = FSD_LOSS_L1;
    else if (name && !strcmp(name, "l2")) *out = FSD_LOSS_L2;
    else return fsd_fail(FSD_ERR_INVALID, "unknown loss '%s' (l1, l2)", name ? name : "(null)");
    return FSD_OK;
}

double fsd_loss_forward(fsd_loss_kind k, const float *pred, const float *target, size_t n) {
    return k == FSD_LOSS_L2 ? fsd_mse_loss_forward(pred, target, n) : fsd_l1_loss_forward(pred, target, n);
}

void fsd_loss_backward(fsd_loss_kind k, float *dpred, const float *pred, const float *target, size_t n, float dloss) {
    if (k == FSD_LOSS_L2) fsd_mse_loss_backward(dpred, NULL, pred, target, n, dloss);
    else fsd_l1_loss_backward(dpred, NULL, pred, target, n, dloss);
}
