/* Linear layer y = x W^T + b with W in PyTorch's (out, in) layout, through cblas_sgemm.
 * The BLAS threads itself (OpenMP build of OpenBLAS); the bias broadcast and the bias gradient
 * are our own OpenMP loops. */
#include "fsdiff/ops_linear.h"

#include "ops/ws_scratch.h"

#include <cblas.h>
#include <string.h>

#define PAR_MIN_ELEMS 32768

static fsd_status check_dims(const char *op, int N, int in, int out) {
    if (N <= 0 || in <= 0 || out <= 0)
        return fsd_fail(FSD_ERR_INVALID, "%s: bad shape (N %d, in %d, out %d)", op, N, in, out);
    return FSD_OK;
}

fsd_status fsd_linear_forward(float *y, const float *x, const float *W, const float *b, int N, int in, int out) {
    fsd_status st = check_dims("linear_forward", N, in, out);
    if (st) return st;
    if (!y || !x || !W) return fsd_fail(FSD_ERR_INVALID, "linear_forward: NULL tensor");
    /* bias first, then y += x . W^T (as PyTorch's addmm): one write pass instead of the GEMM zeroing y and
     * a read-write bias pass after it (Zen 3, 1024 x 256 -> 2048: 172-174 -> 181-185 GFLOP/s, 3 runs each) */
    if (b) {
#pragma omp parallel for schedule(static) if ((size_t)N * out >= PAR_MIN_ELEMS)
        for (int n = 0; n < N; n++) memcpy(y + (size_t)n * out, b, (size_t)out * sizeof(float));
    }
    /* y (N, out) = x (N, in) . W^T (in, out) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, out, in, 1.0f, x, in, W, in, b ? 1.0f : 0.0f, y, out);
    return FSD_OK;
}

fsd_status fsd_linear_backward(float *dx, float *dW, float *db, const float *dy, const float *x, const float *W,
                               int N, int in, int out, fsd_arena *ws) {
    fsd_status st = check_dims("linear_backward", N, in, out);
    if (st) return st;
    if (!dy || (dx && !W) || (dW && !x)) return fsd_fail(FSD_ERR_INVALID, "linear_backward: NULL tensor");
    /* dx (N, in) += dy (N, out) . W (out, in) */
    if (dx) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, in, out, 1.0f, dy, out, W, in, 1.0f, dx, in);
    /* dW (out, in) += dy^T (out, N) . x (N, in) */
    if (dW) cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, N, 1.0f, dy, out, x, in, 1.0f, dW, in);
    if (db) {
        /* Column sums of dy. Rows go in a fixed number of groups (independent of the thread count),
         * each group sums its rows contiguously (vectorised over columns) into a float partial;
         * partials are added in group order in double. */
        const int rows_per_grp = N / 64 > 256 ? (N + 63) / 64 : 256;
        const int ngrp = (N + rows_per_grp - 1) / rows_per_grp;
        fsd_ws_scratch sc;
        /* [ngrp][out] float partials, then out doubles (8-byte aligned) */
        float *part = fsd_ws_floats(&sc, ws, (size_t)ngrp * out + 1 + 2 * (size_t)out);
        if (!part) return FSD_ERR_NOMEM;
#pragma omp parallel for schedule(static) if ((size_t)N * out >= PAR_MIN_ELEMS)
        for (int gi = 0; gi < ngrp; gi++) {
            float *p = part + (size_t)gi * out;
            const int n0 = gi * rows_per_grp, n1 = n0 + rows_per_grp < N ? n0 + rows_per_grp : N;
            memcpy(p, dy + (size_t)n0 * out, (size_t)out * sizeof(float));
            for (int n = n0 + 1; n < n1; n++) {
                const float *g = dy + (size_t)n * out;
                for (int j = 0; j < out; j++) p[j] += g[j];
            }
        }
        /* add the group partials row by row (contiguous), in group order, in double */
        const size_t off = (size_t)ngrp * out;
        double *acc = (double *)(part + off + (off & 1));
        for (int j = 0; j < out; j++) acc[j] = 0.0;
        for (int gi = 0; gi < ngrp; gi++) {
            const float *p = part + (size_t)gi * out;
            for (int j = 0; j < out; j++) acc[j] += p[j];
        }
        for (int j = 0; j < out; j++) db[j] += (float)acc[j];
        fsd_ws_release(&sc);
    }
    return FSD_OK;
}
