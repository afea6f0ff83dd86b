/* Windowed-statistics metrics: SSIM (Wang et al. 2004) and pixel-domain multi-scale VIF (Sheikh &
 * Bovik 2006, the vifp_mscale variant). Both use normalised Gaussian windows applied as 'valid'
 * correlations (no padding), done separably in double: the 2-D window k(i)k(j) normalised over the
 * square equals the outer product of the normalised 1-D kernel. */
#include "metrics_internal.h"

#include <math.h>
#include <string.h>

#define MAX_TAPS 33 /* VIF scale 1: N = 2^4 + 1 = 17; headroom */

/* k[n]: exp(-(i - c)^2 / (2 sd^2)) normalised to sum 1, c = (n - 1) / 2 (MATLAB fspecial('gaussian');
 * its cut-off of taps below eps * max never triggers for the windows used here). */
static void gauss_kernel(double *k, int n, double sd) {
    double c = 0.5 * (n - 1), s = 0;
    for (int i = 0; i < n; i++) {
        k[i] = exp(-(i - c) * (i - c) / (2.0 * sd * sd));
        s += k[i];
    }
    for (int i = 0; i < n; i++) k[i] /= s;
}

/* out[oh*ow] = 'valid' correlation of (x * z) with the separable window k[n] x k[n], oh = h - n + 1,
 * ow = w - n + 1; z NULL means plain x. The product is formed on the fly in the horizontal pass so
 * E[x^2] and E[xy] need no product images. tmp: [h*ow]. */
static void filt_valid(const double *x, const double *z, int w, int h, const double *k, int n, double *tmp,
                       double *out) {
    int ow = w - n + 1, oh = h - n + 1;
#pragma omp parallel for schedule(static)
    for (int y = 0; y < h; y++) {
        const double *xr = x + (size_t)y * w;
        const double *zr = z ? z + (size_t)y * w : NULL;
        double *tr = tmp + (size_t)y * ow;
        /* tap-outer loops so the inner loop runs over contiguous pixels (vectorises) */
        for (int j = 0; j < ow; j++) tr[j] = 0;
        for (int i = 0; i < n; i++) {
            double ki = k[i];
            const double *xi = xr + i;
            if (zr) {
                const double *zi = zr + i;
                for (int j = 0; j < ow; j++) tr[j] += ki * xi[j] * zi[j];
            } else {
                for (int j = 0; j < ow; j++) tr[j] += ki * xi[j];
            }
        }
    }
#pragma omp parallel for schedule(static)
    for (int y = 0; y < oh; y++) {
        double *orow = out + (size_t)y * ow;
        for (int j = 0; j < ow; j++) orow[j] = 0;
        for (int i = 0; i < n; i++) {
            const double *tr = tmp + (size_t)(y + i) * ow;
            double ki = k[i];
            for (int j = 0; j < ow; j++) orow[j] += ki * tr[j];
        }
    }
}

/* ------------------------------------------------------------------------------------------ SSIM */
/* Wang, Bovik, Sheikh, Simoncelli 2004: 11x11 Gaussian window (sd 1.5), K1 = 0.01, K2 = 0.03, L = 255,
 * population (1/N) moments, mean of the SSIM map over the valid region (h-10)x(w-10). */
fsd_status fsdm_ssim_multi(const double *d, const double *const *refs, int nref, int w, int h, double *out) {
    const int n = 11;
    const double C1 = (0.01 * 255) * (0.01 * 255), C2 = (0.03 * 255) * (0.03 * 255);
    double k[MAX_TAPS];
    gauss_kernel(k, n, 1.5);
    int ow = w - n + 1, oh = h - n + 1;
    size_t m = (size_t)ow * oh;
    double *buf = fsd_alloc(((size_t)h * ow + 5 * m + (size_t)oh) * sizeof(double));
    if (!buf) return FSD_ERR_NOMEM;
    double *tmp = buf, *mu_d = tmp + (size_t)h * ow, *sq_d = mu_d + m, *mu_r = sq_d + m, *sq_r = mu_r + m,
           *cr = sq_r + m, *rows = cr + m;
    /* F's moments are shared by SSIM(F,A) and SSIM(F,B). */
    filt_valid(d, NULL, w, h, k, n, tmp, mu_d);
    filt_valid(d, d, w, h, k, n, tmp, sq_d);
    for (int r = 0; r < nref; r++) {
        filt_valid(refs[r], NULL, w, h, k, n, tmp, mu_r);
        filt_valid(refs[r], refs[r], w, h, k, n, tmp, sq_r);
        filt_valid(d, refs[r], w, h, k, n, tmp, cr);
#pragma omp parallel for schedule(static)
        for (int y = 0; y < oh; y++) {
            double s = 0;
            for (int x = 0; x < ow; x++) {
                size_t i = (size_t)y * ow + x;
                double mx = mu_d[i], my = mu_r[i];
                double vx = sq_d[i] - mx * mx, vy = sq_r[i] - my * my, cxy = cr[i] - mx * my;
                s += ((2 * mx * my + C1) * (2 * cxy + C2)) / ((mx * mx + my * my + C1) * (vx + vy + C2));
            }
            rows[y] = s;
        }
        out[r] = fsdm_sum(rows, oh) / (double)m;
    }
    fsd_free(buf);
    return FSD_OK;
}

/* ------------------------------------------------------------------------------------------- VIF */
/* vifp_mscale: scale s = 1..4 uses an N = 2^(5-s) + 1 Gaussian window with sd N/5; from scale 2 on
 * the images are first filtered ('valid') with that window and subsampled by 2 (rows/cols 0, 2, ...).
 * Per pixel of the 'valid' statistics: s1 = var(ref), s2 = var(dist), s12 = cov, then the reference
 * code's clamps in its order (docs/metrics.md), sigma_n^2 = 2, and
 *   num += log10(1 + g^2 s1 / (sv^2 + sigma_n^2)),  den += log10(1 + s1 / sigma_n^2);
 * VIFp = sum num / sum den over all scales (0 when den = 0: a constant reference carries nothing). */
#define VIF_SCALES 4
#define VIF_NOISE 2.0
#define VIF_EPS 1e-10

static int vif_taps(int scale) { return (1 << (VIF_SCALES - scale + 1)) + 1; }

/* 1 if every scale has at least one statistics pixel. */
static int vif_sizes_ok(int w, int h) {
    for (int s = 1; s <= VIF_SCALES; s++) {
        int n = vif_taps(s);
        if (s > 1) {
            w -= n - 1, h -= n - 1;
            if (w < 1 || h < 1) return 0;
            w = (w + 1) / 2, h = (h + 1) / 2;
        }
        if (w < n || h < n) return 0;
    }
    return 1;
}

/* dst[ceil(oh/2) x ceil(ow/2)] = src[oh x ow] at even rows and columns. */
static void subsample2(const double *src, int ow, int oh, double *dst) {
    int w2 = (ow + 1) / 2, h2 = (oh + 1) / 2;
#pragma omp parallel for schedule(static)
    for (int y = 0; y < h2; y++)
        for (int x = 0; x < w2; x++) dst[(size_t)y * w2 + x] = src[(size_t)(2 * y) * ow + 2 * x];
}

fsd_status fsdm_vif_multi(const double *d, const double *const *refs, int nref, int w, int h, double *out) {
    if (!vif_sizes_ok(w, h))
        return fsd_fail(FSD_ERR_INVALID, "VIF: image %dx%d is too small for 4 scales (needs %dx%d)", w, h,
                        FSDM_MIN_VIF, FSDM_MIN_VIF);
    if (nref > 2) return fsd_fail(FSD_ERR_INTERNAL, "VIF: at most 2 references");
    size_t npix = (size_t)w * h;
    /* imgs[0] = distorted, imgs[1..nref] = references, each the current scale's image. */
    int nimg = nref + 1;
    double *buf = fsd_alloc(((size_t)nimg * npix + 6 * npix + 2 * (size_t)h) * sizeof(double));
    if (!buf) return FSD_ERR_NOMEM;
    double *imgs[3];
    for (int i = 0; i < nimg; i++) {
        imgs[i] = buf + (size_t)i * npix;
        memcpy(imgs[i], i == 0 ? d : refs[i - 1], npix * sizeof(double));
    }
    double *tmp = buf + (size_t)nimg * npix, *mu_d = tmp + npix, *sq_d = mu_d + npix, *mu_r = sq_d + npix,
           *sq_r = mu_r + npix, *cr = sq_r + npix, *rows = cr + npix;
    double num[2] = {0, 0}, den[2] = {0, 0};
    int cw = w, ch = h;
    for (int s = 1; s <= VIF_SCALES; s++) {
        int n = vif_taps(s);
        double k[MAX_TAPS];
        gauss_kernel(k, n, n / 5.0);
        if (s > 1) {
            /* Low-pass with this scale's window, then keep every second row and column. */
            int fw = cw - n + 1, fh = ch - n + 1;
            for (int i = 0; i < nimg; i++) {
                filt_valid(imgs[i], NULL, cw, ch, k, n, tmp, mu_r); /* mu_r: scratch here */
                subsample2(mu_r, fw, fh, imgs[i]);
            }
            cw = (fw + 1) / 2, ch = (fh + 1) / 2;
        }
        int ow = cw - n + 1, oh = ch - n + 1;
        filt_valid(imgs[0], NULL, cw, ch, k, n, tmp, mu_d);
        filt_valid(imgs[0], imgs[0], cw, ch, k, n, tmp, sq_d);
        for (int r = 0; r < nref; r++) {
            const double *ref = imgs[r + 1];
            filt_valid(ref, NULL, cw, ch, k, n, tmp, mu_r);
            filt_valid(ref, ref, cw, ch, k, n, tmp, sq_r);
            filt_valid(ref, imgs[0], cw, ch, k, n, tmp, cr);
            /* rows[y]: numerator sum of row y, rows[h + y]: denominator sum. */
#pragma omp parallel for schedule(static)
            for (int y = 0; y < oh; y++) {
                double sn = 0, sd = 0;
                for (int x = 0; x < ow; x++) {
                    size_t i = (size_t)y * ow + x;
                    double mr = mu_r[i], md = mu_d[i];
                    double s1 = sq_r[i] - mr * mr, s2 = sq_d[i] - md * md, s12 = cr[i] - mr * md;
                    if (s1 < 0) s1 = 0;
                    if (s2 < 0) s2 = 0;
                    double g = s12 / (s1 + VIF_EPS), sv = s2 - g * s12;
                    if (s1 < VIF_EPS) { g = 0; sv = s2; s1 = 0; }
                    if (s2 < VIF_EPS) { g = 0; sv = 0; }
                    if (g < 0) { sv = s2; g = 0; }
                    if (sv <= VIF_EPS) sv = VIF_EPS;
                    sn += log10(1 + g * g * s1 / (sv + VIF_NOISE));
                    sd += log10(1 + s1 / VIF_NOISE);
                }
                rows[y] = sn;
                rows[h + y] = sd;
            }
            num[r] += fsdm_sum(rows, oh);
            den[r] += fsdm_sum(rows + h, oh);
        }
    }
    for (int r = 0; r < nref; r++) out[r] = den[r] > 0 ? num[r] / den[r] : 0.0;
    fsd_free(buf);
    return FSD_OK;
}
