/* Gradient-domain fusion: keep, at each pixel, the stronger of the two source gradients and find
 * the image whose gradient is closest to it while staying near a data term u0:
 *     min_u  lambda/2 |u - u0|^2 + 1/2 |grad u - g|^2
 * whose Euler-Lagrange equation is the screened Poisson equation
 *     lambda (u - u0) - div(grad u - g) = 0,   Neumann borders.
 * (In the spirit of Perez, Gangnet & Blake, "Poisson image editing", SIGGRAPH 2003, and the
 * gradient-domain fusion line of work; the screened form as in Bhat et al., "GradientShop", 2010.)
 *
 * Discretisation: grad = forward differences, zero across the last column / row (Neumann);
 * div = -grad^T, so -div grad = L = D^T D is the 5-point Neumann Laplacian, which the 2-D DCT-II
 * diagonalises: eigenvalues 4 sin^2(pi k / 2w) + 4 sin^2(pi l / 2h). The solve is therefore
 *     u = IDCT( DCT(lambda u0 - div g) / (lambda + mu_x(k) + mu_y(l)) ).
 * u0 = max(a, b): the brighter source (hot targets in IR, bone in CT, the active region in PET);
 * lambda = 0.05 px^-2 by default: structures larger than about 2 pi / sqrt(lambda) ~ 28 px follow
 * u0, finer ones follow the selected gradients. */
#include "fusion_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Apply the 1-D orthonormal DCT (forward or inverse) to every row, then every column of x (h, w). */
static fsd_status dct_2d(double *x, int w, int h, int inverse) {
    fsd_dct_plan *pw = NULL, *ph = NULL;
    fsd_status s = fsd_dct_plan_create(w, &pw);
    if (!s) s = fsd_dct_plan_create(h, &ph);
    if (s) {
        fsd_dct_plan_free(pw);
        return s;
    }
    size_t scr_w = fsd_dct_scratch(pw), scr_h = fsd_dct_scratch(ph);
    int failed = 0;
#pragma omp parallel if (fsd_fusion_par((long)w * h))
    {
        /* per thread: scratch for the longer transform + a strip of columns */
        enum { CS = 8 };
        double *scr = fsd_alloc((scr_w > scr_h ? scr_w : scr_h) * sizeof(double));
        double *col = fsd_alloc((size_t)CS * h * sizeof(double));
        if (!scr || !col) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp barrier
        if (!failed) {
#pragma omp for schedule(static)
            for (int y = 0; y < h; y++) {
                if (inverse) fsd_dct3(pw, x + (size_t)y * w, scr);
                else fsd_dct2(pw, x + (size_t)y * w, scr);
            }
            /* columns in strips of CS: gather, transform, scatter */
            int nstrips = (w + CS - 1) / CS;
#pragma omp for schedule(static)
            for (int si = 0; si < nstrips; si++) {
                int x0 = si * CS, nx = w - x0 < CS ? w - x0 : CS;
                for (int y = 0; y < h; y++)
                    for (int i = 0; i < nx; i++) col[(size_t)i * h + y] = x[(size_t)y * w + x0 + i];
                for (int i = 0; i < nx; i++) {
                    if (inverse) fsd_dct3(ph, col + (size_t)i * h, scr);
                    else fsd_dct2(ph, col + (size_t)i * h, scr);
                }
                for (int y = 0; y < h; y++)
                    for (int i = 0; i < nx; i++) x[(size_t)y * w + x0 + i] = col[(size_t)i * h + y];
            }
        }
        fsd_free(scr);
        fsd_free(col);
    }
    fsd_dct_plan_free(pw);
    fsd_dct_plan_free(ph);
    if (failed) return fsd_fail(FSD_ERR_NOMEM, "dct: out of memory for %dx%d", w, h);
    return FSD_OK;
}

fsd_status fsd_poisson_neumann_solve(const double *f, int w, int h, double lambda, double *u) {
    if (!f || !u || w < 1 || h < 1) return fsd_fail(FSD_ERR_INVALID, "poisson solve: bad arguments");
    if (!(lambda > 0) || !isfinite(lambda))
        return fsd_fail(FSD_ERR_INVALID, "poisson solve: lambda must be > 0 (got %g)", lambda);
    size_t n = (size_t)w * h;
    double *mx = fsd_alloc((size_t)(w + h) * sizeof(double));
    if (!mx) return fsd_fail(FSD_ERR_NOMEM, "poisson solve: out of memory");
    double *my = mx + w;
    for (int k = 0; k < w; k++) {
        double sk = sin(M_PI * k / (2.0 * w));
        mx[k] = 4.0 * sk * sk;
    }
    for (int l = 0; l < h; l++) {
        double sl = sin(M_PI * l / (2.0 * h));
        my[l] = 4.0 * sl * sl;
    }
    if (u != f) memcpy(u, f, n * sizeof(double));
    fsd_status s = dct_2d(u, w, h, 0);
    if (!s) {
        for (int l = 0; l < h; l++)
            for (int k = 0; k < w; k++) u[(size_t)l * w + k] /= lambda + mx[k] + my[l];
        s = dct_2d(u, w, h, 1);
    }
    fsd_free(mx);
    return s;
}

fsd_status fsd_fuse_gradient(const float *a, const float *b, int w, int h, double lambda, int clip, float *out) {
    fsd_status s = fsd_fusion_check("gradient", a, b, w, h, out);
    if (s) return s;
    if (!(lambda > 0) || !isfinite(lambda))
        return fsd_fail(FSD_ERR_INVALID, "gradient fusion: lambda must be > 0 (got %g)", lambda);
    size_t n = (size_t)w * h;
    double *buf = fsd_alloc(3 * n * sizeof(double));
    if (!buf) return fsd_fail(FSD_ERR_NOMEM, "gradient fusion: out of memory for %dx%d", w, h);
    double *gx = buf, *gy = buf + n, *f = buf + 2 * n;
    /* g = the source gradient (forward differences) of larger magnitude, a on ties */
#pragma omp parallel for schedule(static) if (fsd_fusion_par((long)w * h))
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            double ax = x + 1 < w ? (double)a[i + 1] - a[i] : 0.0, ay = y + 1 < h ? (double)a[i + w] - a[i] : 0.0;
            double bx = x + 1 < w ? (double)b[i + 1] - b[i] : 0.0, by = y + 1 < h ? (double)b[i + w] - b[i] : 0.0;
            int use_b = bx * bx + by * by > ax * ax + ay * ay;
            gx[i] = use_b ? bx : ax;
            gy[i] = use_b ? by : ay;
        }
    }
    /* right-hand side lambda u0 - div g, div g = backward differences of g (g = 0 outside) */
#pragma omp parallel for schedule(static) if (fsd_fusion_par((long)w * h))
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            double div = gx[i] - (x ? gx[i - 1] : 0.0) + gy[i] - (y ? gy[i - w] : 0.0);
            double u0 = a[i] > b[i] ? (double)a[i] : (double)b[i];
            f[i] = lambda * u0 - div;
        }
    }
    s = fsd_poisson_neumann_solve(f, w, h, lambda, f);
    if (!s)
        for (size_t i = 0; i < n; i++) out[i] = (float)(clip ? fsd_clip255(f[i]) : f[i]);
    fsd_free(buf);
    return s;
}
