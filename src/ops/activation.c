/* Elementwise activations (SiLU, exact GELU, softplus) and GEGLU.
 * The math lives in ops/vmath.h (inline, vectorisable exp / erf / log1p), so each loop below
 * compiles to SIMD code; large arrays are split over OpenMP threads in static chunks. */
/* Contraction of a*b+c into fma is left to the explicit FSD_FMAF calls (vmath.h): GCC otherwise
 * contracts the vector loop body and its scalar peel/remainder differently, and an element's
 * value would depend on where the OpenMP chunk boundaries fall, i.e. on the thread count. */
#pragma GCC optimize("fp-contract=off")

#include "fsdiff/ops_linear.h"

#include "ops/vmath.h"

#define PAR_MIN_ELEMS 32768

void fsd_silu_forward(float *y, const float *x, size_t n) {
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN_ELEMS)
    for (size_t i = 0; i < n; i++) y[i] = x[i] * fsd_sigmoidf(x[i]);
}

/* d/dx x s(x) = s(x) (1 + x (1 - s(x))) */
void fsd_silu_backward(float *dx, const float *dy, const float *x, size_t n) {
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN_ELEMS)
    for (size_t i = 0; i < n; i++) {
        float s = fsd_sigmoidf(x[i]);
        dx[i] += dy[i] * s * (1.0f + x[i] * (1.0f - s));
    }
}

void fsd_gelu_forward(float *y, const float *x, size_t n) {
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN_ELEMS)
    for (size_t i = 0; i < n; i++) y[i] = fsd_geluf(x[i]);
}

void fsd_gelu_backward(float *dx, const float *dy, const float *x, size_t n) {
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN_ELEMS)
    for (size_t i = 0; i < n; i++) dx[i] += dy[i] * fsd_gelu_gradf(x[i]);
}

void fsd_softplus_forward(float *y, const float *x, size_t n) {
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN_ELEMS)
    for (size_t i = 0; i < n; i++) y[i] = fsd_softplusf(x[i]);
}

/* d softplus = sigmoid(x) below the threshold, 1 above it (PyTorch's threshold rule) */
void fsd_softplus_backward(float *dx, const float *dy, const float *x, size_t n) {
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN_ELEMS)
    for (size_t i = 0; i < n; i++) dx[i] += x[i] > 20.0f ? dy[i] : dy[i] * fsd_sigmoidf(x[i]);
}

void fsd_geglu_forward(float *y, const float *x, int N, int F) {
#pragma omp parallel for schedule(static) if ((size_t)N * F >= PAR_MIN_ELEMS)
    for (int r = 0; r < N; r++) {
        const float *a = x + (size_t)r * 2 * F, *g = a + F;
        float *yr = y + (size_t)r * F;
        for (int j = 0; j < F; j++) yr[j] = a[j] * fsd_geluf(g[j]);
    }
}

void fsd_geglu_backward(float *dx, const float *dy, const float *x, int N, int F) {
#pragma omp parallel for schedule(static) if ((size_t)N * F >= PAR_MIN_ELEMS)
    for (int r = 0; r < N; r++) {
        const float *a = x + (size_t)r * 2 * F, *g = a + F;
        const float *gy = dy + (size_t)r * F;
        float *da = dx + (size_t)r * 2 * F, *dg = da + F;
        for (int j = 0; j < F; j++) {
            da[j] += gy[j] * fsd_geluf(g[j]);
            dg[j] += gy[j] * a[j] * fsd_gelu_gradf(g[j]);
        }
    }
}
