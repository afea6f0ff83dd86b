/* Orthonormal DCT-II / DCT-III of any length in O(n log n).
 *
 * DCT-II by Makhoul's reordering (J. Makhoul, "A fast cosine transform in one and two dimensions",
 * IEEE TASSP 1980): v = (x0, x2, x4, ..., x5, x3, x1), V = FFT_n(v), X_k = Re(e^{-i pi k / 2n} V_k).
 * The inverse runs the steps backwards: V_k = e^{i pi k / 2n} (X_k - i X_{n-k}), v = IFFT(V).
 * The length-n complex FFT is iterative radix 2 when n is a power of two, otherwise Bluestein's
 * chirp-z: X_k = c_k sum_j (x_j c_j) conj(c_{k-j}), c_j = e^{-i pi j^2 / n}, a circular convolution
 * done with power-of-two FFTs of length m >= 2n - 1. */
#include "fusion_internal.h"

#include <math.h>
#include <string.h>

struct fsd_dct_plan {
    int n;         /* transform length */
    int m;         /* radix-2 FFT length (n itself when n is a power of two) */
    int bluestein;
    double *tw;    /* m/2 complex twiddles e^{-2 pi i k / m} */
    double *chirp; /* n complex c_j (Bluestein) */
    double *bft;   /* m complex FFT of the conj-chirp filter (Bluestein) */
    double *rot;   /* n complex e^{-i pi k / 2n} */
    double *scale; /* n: orthonormal scale s_k */
};

static int is_pow2(int n) { return n > 0 && (n & (n - 1)) == 0; }

/* In-place radix-2 FFT of m complex values (interleaved re, im); inverse = conjugate twiddles,
 * unscaled. */
static void fft_radix2(double *z, int m, const double *tw, int inverse) {
    for (int i = 1, j = 0; i < m; i++) { /* bit reversal */
        int bit = m >> 1;
        for (; j & bit; bit >>= 1) j ^= bit;
        j |= bit;
        if (i < j) {
            double tr = z[2 * i], ti = z[2 * i + 1];
            z[2 * i] = z[2 * j];
            z[2 * i + 1] = z[2 * j + 1];
            z[2 * j] = tr;
            z[2 * j + 1] = ti;
        }
    }
    double sgn = inverse ? -1.0 : 1.0;
    for (int len = 2; len <= m; len <<= 1) {
        int half = len >> 1, step = m / len;
        for (int s = 0; s < m; s += len) {
            for (int k = 0; k < half; k++) {
                double wr = tw[2 * k * step], wi = sgn * tw[2 * k * step + 1];
                double *p = z + 2 * (s + k), *q = z + 2 * (s + k + half);
                double xr = q[0] * wr - q[1] * wi, xi = q[0] * wi + q[1] * wr;
                q[0] = p[0] - xr;
                q[1] = p[1] - xi;
                p[0] += xr;
                p[1] += xi;
            }
        }
    }
}

/* Forward complex DFT of length n in place (z: n complex); work: m complex. */
static void fft_any(const fsd_dct_plan *pl, double *z, double *work) {
    if (!pl->bluestein) {
        fft_radix2(z, pl->n, pl->tw, 0);
        return;
    }
    int n = pl->n, m = pl->m;
    const double *c = pl->chirp;
    for (int j = 0; j < n; j++) { /* a_j = x_j c_j */
        work[2 * j] = z[2 * j] * c[2 * j] - z[2 * j + 1] * c[2 * j + 1];
        work[2 * j + 1] = z[2 * j] * c[2 * j + 1] + z[2 * j + 1] * c[2 * j];
    }
    memset(work + 2 * n, 0, (size_t)(m - n) * 2 * sizeof(double));
    fft_radix2(work, m, pl->tw, 0);
    for (int k = 0; k < m; k++) {
        double ar = work[2 * k], ai = work[2 * k + 1], br = pl->bft[2 * k], bi = pl->bft[2 * k + 1];
        work[2 * k] = ar * br - ai * bi;
        work[2 * k + 1] = ar * bi + ai * br;
    }
    fft_radix2(work, m, pl->tw, 1);
    double inv = 1.0 / m;
    for (int k = 0; k < n; k++) { /* X_k = c_k (a * b)_k */
        double ar = work[2 * k] * inv, ai = work[2 * k + 1] * inv;
        z[2 * k] = ar * c[2 * k] - ai * c[2 * k + 1];
        z[2 * k + 1] = ar * c[2 * k + 1] + ai * c[2 * k];
    }
}

fsd_status fsd_dct_plan_create(int n, fsd_dct_plan **plan) {
    *plan = NULL;
    if (n < 1 || n > (1 << 24)) return fsd_fail(FSD_ERR_INVALID, "dct: length %d out of range", n);
    fsd_dct_plan *pl = fsd_calloc(1, sizeof *pl);
    if (!pl) return FSD_ERR_NOMEM;
    pl->n = n;
    pl->bluestein = !is_pow2(n);
    int m = n;
    if (pl->bluestein)
        for (m = 1; m < 2 * n - 1; m <<= 1) {}
    pl->m = m;
    pl->tw = fsd_alloc((size_t)(m > 1 ? m : 2) * sizeof(double));
    pl->rot = fsd_alloc((size_t)2 * n * sizeof(double));
    pl->scale = fsd_alloc((size_t)n * sizeof(double));
    if (pl->bluestein) {
        pl->chirp = fsd_alloc((size_t)2 * n * sizeof(double));
        pl->bft = fsd_alloc((size_t)2 * m * sizeof(double));
    }
    if (!pl->tw || !pl->rot || !pl->scale || (pl->bluestein && (!pl->chirp || !pl->bft))) {
        fsd_dct_plan_free(pl);
        return fsd_fail(FSD_ERR_NOMEM, "dct: out of memory for length %d", n);
    }
    for (int k = 0; k < m / 2; k++) {
        double t = -2.0 * M_PI * k / m;
        pl->tw[2 * k] = cos(t);
        pl->tw[2 * k + 1] = sin(t);
    }
    for (int k = 0; k < n; k++) {
        double t = -M_PI * k / (2.0 * n);
        pl->rot[2 * k] = cos(t);
        pl->rot[2 * k + 1] = sin(t);
        pl->scale[k] = sqrt((k ? 2.0 : 1.0) / n);
    }
    if (pl->bluestein) {
        for (int j = 0; j < n; j++) {
            /* j^2 mod 2n keeps the angle small and exact */
            long long q = ((long long)j * j) % (2LL * n);
            double t = -M_PI * (double)q / n;
            pl->chirp[2 * j] = cos(t);
            pl->chirp[2 * j + 1] = sin(t);
        }
        memset(pl->bft, 0, (size_t)2 * m * sizeof(double));
        for (int j = 0; j < n; j++) { /* b_d = conj(c_d) for d in (-n, n), circular in m */
            pl->bft[2 * j] = pl->chirp[2 * j];
            pl->bft[2 * j + 1] = -pl->chirp[2 * j + 1];
            if (j) {
                pl->bft[2 * (m - j)] = pl->chirp[2 * j];
                pl->bft[2 * (m - j) + 1] = -pl->chirp[2 * j + 1];
            }
        }
        fft_radix2(pl->bft, m, pl->tw, 0);
    }
    *plan = pl;
    return FSD_OK;
}

void fsd_dct_plan_free(fsd_dct_plan *pl) {
    if (!pl) return;
    fsd_free(pl->tw);
    fsd_free(pl->rot);
    fsd_free(pl->scale);
    fsd_free(pl->chirp);
    fsd_free(pl->bft);
    fsd_free(pl);
}

/* v (n complex) + Bluestein work (m complex) */
size_t fsd_dct_scratch(const fsd_dct_plan *pl) { return (size_t)2 * pl->n + (size_t)2 * pl->m; }

void fsd_dct2(const fsd_dct_plan *pl, double *x, double *scratch) {
    int n = pl->n;
    double *v = scratch, *work = scratch + 2 * n;
    for (int j = 0; 2 * j < n; j++) {
        v[2 * j] = x[2 * j];
        v[2 * j + 1] = 0.0;
    }
    for (int j = 0; 2 * j + 1 < n; j++) {
        v[2 * (n - 1 - j)] = x[2 * j + 1];
        v[2 * (n - 1 - j) + 1] = 0.0;
    }
    fft_any(pl, v, work);
    for (int k = 0; k < n; k++) /* Re(e^{-i pi k/2n} V_k) */
        x[k] = pl->scale[k] * (pl->rot[2 * k] * v[2 * k] - pl->rot[2 * k + 1] * v[2 * k + 1]);
}

void fsd_dct3(const fsd_dct_plan *pl, double *x, double *scratch) {
    int n = pl->n;
    double *v = scratch, *work = scratch + 2 * n;
    for (int k = 0; k < n; k++) {
        /* V_k = e^{+i pi k/2n} (X_k - i X_{n-k}) on the unscaled coefficients; store conj(V_k) so
         * that a forward FFT gives n * conj(IFFT(V)), whose real part is what we need */
        double xr = x[k] / pl->scale[k];
        double xi = k ? -x[n - k] / pl->scale[n - k] : 0.0;
        double cr = pl->rot[2 * k], ci = -pl->rot[2 * k + 1]; /* e^{+i pi k/2n} */
        double vr = cr * xr - ci * xi, vi = cr * xi + ci * xr;
        v[2 * k] = vr;
        v[2 * k + 1] = -vi;
    }
    fft_any(pl, v, work);
    double inv = 1.0 / n;
    for (int j = 0; 2 * j < n; j++) x[2 * j] = v[2 * j] * inv;
    for (int j = 0; 2 * j + 1 < n; j++) x[2 * j + 1] = v[2 * (n - 1 - j)] * inv;
}
