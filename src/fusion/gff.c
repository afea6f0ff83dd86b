/* Guided filtering fusion: S. Li, X. Kang, J. Hu, "Image Fusion with Guided Filtering",
 * IEEE Trans. Image Process. 22(7), 2013; guided filter: K. He, J. Sun, X. Tang, "Guided Image
 * Filtering", ECCV 2010 / TPAMI 2013.
 *
 *   B_n = mean_{31x31}(I_n), D_n = I_n - B_n                      two-scale decomposition
 *   S_n = gauss_{11x11, sigma 5}(|laplacian_3x3(I_n)|)           saliency
 *   P_n = [S_n == max_k S_k] (source a on ties)                   binary weight maps
 *   W^B_n = GF_{r1, eps1}(P_n, guide I_n), W^D_n = GF_{r2, eps2}(P_n, guide I_n), normalised
 *   F = sum_n W^B_n B_n + W^D_n D_n
 * Borders: box means average over the part of the window inside the image (He's boxfilter / N);
 * the Laplacian [0 1 0; 1 -4 1; 0 1 0] and the Gaussian replicate the edge pixel.
 * eps is given for images in [0,1] (the paper's values); on our 0..255 planes it is eps * 255^2,
 * which gives the same filter output. Weights are clamped to [0,1] before normalising so that the
 * guided filter's small overshoots cannot make the normaliser vanish or change sign. */
#include "fusion_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The saliency comparison must round like the numpy twin: no fused multiply-adds. */
#pragma GCC optimize("fp-contract=off")

void fsd_box_mean(const double *in, double *out, int w, int h, int r, double *tmp) {
    /* horizontal running sums: in -> tmp */
#pragma omp parallel for schedule(static) if (fsd_fusion_par((long)w * h))
    for (int y = 0; y < h; y++) {
        const double *row = in + (size_t)y * w;
        double *t = tmp + (size_t)y * w;
        double s = 0.0;
        for (int x = 0; x <= r && x < w; x++) s += row[x];
        for (int x = 0; x < w; x++) {
            int lo = x - r < 0 ? 0 : x - r, hi = x + r >= w ? w - 1 : x + r;
            t[x] = s / (double)(hi - lo + 1);
            if (x + r + 1 < w) s += row[x + r + 1];
            if (x - r >= 0) s -= row[x - r];
        }
    }
    /* vertical running sums over column strips: tmp -> out */
    enum { STRIP = 64 };
    int nstrips = (w + STRIP - 1) / STRIP;
#pragma omp parallel for schedule(static) if (fsd_fusion_par((long)w * h))
    for (int sidx = 0; sidx < nstrips; sidx++) {
        int x0 = sidx * STRIP, nx = w - x0 < STRIP ? w - x0 : STRIP;
        double cs[STRIP];
        for (int i = 0; i < nx; i++) cs[i] = 0.0;
        for (int y = 0; y <= r && y < h; y++)
            for (int i = 0; i < nx; i++) cs[i] += tmp[(size_t)y * w + x0 + i];
        for (int y = 0; y < h; y++) {
            int lo = y - r < 0 ? 0 : y - r, hi = y + r >= h ? h - 1 : y + r;
            double inv = 1.0 / (double)(hi - lo + 1);
            double *o = out + (size_t)y * w + x0;
            for (int i = 0; i < nx; i++) o[i] = cs[i] * inv;
            if (y + r + 1 < h)
                for (int i = 0; i < nx; i++) cs[i] += tmp[(size_t)(y + r + 1) * w + x0 + i];
            if (y - r >= 0)
                for (int i = 0; i < nx; i++) cs[i] -= tmp[(size_t)(y - r) * w + x0 + i];
        }
    }
}

/* Guided filter q = mean(a) * I + mean(b), a = cov(I,p) / (var(I) + eps), b = mean(p) - a mean(I).
 * guide, p, q: (h, w); q may not alias guide or p. ws: 5 planes of scratch. */
static void guided_filter(const double *guide, const double *p, int w, int h, int r, double eps, double *q,
                          double *ws) {
    size_t n = (size_t)w * h;
    double *mI = ws, *mP = ws + n, *mII = ws + 2 * n, *mIP = ws + 3 * n, *tmp = ws + 4 * n;
    for (size_t i = 0; i < n; i++) {
        mII[i] = guide[i] * guide[i];
        mIP[i] = guide[i] * p[i];
    }
    fsd_box_mean(guide, mI, w, h, r, tmp);
    fsd_box_mean(p, mP, w, h, r, tmp);
    fsd_box_mean(mII, mII, w, h, r, tmp);
    fsd_box_mean(mIP, mIP, w, h, r, tmp);
    for (size_t i = 0; i < n; i++) {
        double var = mII[i] - mI[i] * mI[i], cov = mIP[i] - mI[i] * mP[i];
        double a = cov / (var + eps);
        mII[i] = a;                 /* a */
        mIP[i] = mP[i] - a * mI[i]; /* b */
    }
    fsd_box_mean(mII, mII, w, h, r, tmp);
    fsd_box_mean(mIP, mIP, w, h, r, tmp);
    for (size_t i = 0; i < n; i++) q[i] = mII[i] * guide[i] + mIP[i];
}

/* S = gauss(|laplacian(I)|), replicate borders. Sums in tap order k = -R..R, horizontal first. */
static void saliency(const double *im, int w, int h, const double *gk, int R, double *s, double *tmp) {
#pragma omp parallel for schedule(static) if (fsd_fusion_par((long)w * h))
    for (int y = 0; y < h; y++) {
        const double *up = im + (size_t)fsd_clampi(y - 1, h) * w, *row = im + (size_t)y * w;
        const double *dn = im + (size_t)fsd_clampi(y + 1, h) * w;
        for (int x = 0; x < w; x++) {
            double lap = up[x] + dn[x] + row[fsd_clampi(x - 1, w)] + row[fsd_clampi(x + 1, w)] - 4.0 * row[x];
            s[(size_t)y * w + x] = fabs(lap);
        }
    }
#pragma omp parallel for schedule(static) if (fsd_fusion_par((long)w * h))
    for (int y = 0; y < h; y++) {
        const double *row = s + (size_t)y * w;
        double *t = tmp + (size_t)y * w;
        for (int x = 0; x < w; x++) {
            double acc = 0.0;
            for (int k = -R; k <= R; k++) acc = acc + gk[k + R] * row[fsd_clampi(x + k, w)];
            t[x] = acc;
        }
    }
#pragma omp parallel for schedule(static) if (fsd_fusion_par((long)w * h))
    for (int y = 0; y < h; y++) {
        double *o = s + (size_t)y * w;
        for (int x = 0; x < w; x++) o[x] = 0.0;
        for (int k = -R; k <= R; k++) {
            const double *t = tmp + (size_t)fsd_clampi(y + k, h) * w;
            for (int x = 0; x < w; x++) o[x] = o[x] + gk[k + R] * t[x];
        }
    }
}

fsd_status fsd_fuse_gff(const float *a, const float *b, int w, int h, const fsd_fuse_params *p, float *out) {
    fsd_status st = fsd_fusion_check("gff", a, b, w, h, out);
    if (st) return st;
    fsd_fuse_params def;
    if (!p) {
        fsd_fuse_params_default(&def);
        p = &def;
    }
    if (p->gff_mean_r < 0 || p->gff_r1 < 0 || p->gff_r2 < 0 || p->gff_gauss_r < 0 || p->gff_gauss_r > 64 ||
        !(p->gff_gauss_sigma > 0) || !(p->gff_eps1 > 0) || !(p->gff_eps2 > 0))
        return fsd_fail(FSD_ERR_INVALID, "gff fusion: bad parameters (radii >= 0, gauss radius <= 64, sigma and eps > 0)");

    /* Gaussian taps, normalised; summed in order so the twin computes the same doubles */
    int R = p->gff_gauss_r;
    double gk[129], gsum = 0.0;
    for (int k = -R; k <= R; k++) {
        gk[k + R] = exp(-(double)(k * k) / (2.0 * p->gff_gauss_sigma * p->gff_gauss_sigma));
        gsum = gsum + gk[k + R];
    }
    for (int k = 0; k <= 2 * R; k++) gk[k] = gk[k] / gsum;

    size_t n = (size_t)w * h;
    double *buf = fsd_alloc(15 * n * sizeof(double));
    if (!buf) return fsd_fail(FSD_ERR_NOMEM, "gff fusion: out of memory for %dx%d", w, h);
    double *ia = buf, *ib = buf + n, *ba = buf + 2 * n, *bb = buf + 3 * n, *pa = buf + 4 * n, *pb = buf + 5 * n;
    double *wba = buf + 6 * n, *wbb = buf + 7 * n, *wda = buf + 8 * n, *wdb = buf + 9 * n, *ws = buf + 10 * n;
    for (size_t i = 0; i < n; i++) {
        ia[i] = a[i];
        ib[i] = b[i];
    }
    /* two-scale decomposition: base layers */
    fsd_box_mean(ia, ba, w, h, p->gff_mean_r, ws);
    fsd_box_mean(ib, bb, w, h, p->gff_mean_r, ws);
    /* saliency and binary maps */
    saliency(ia, w, h, gk, R, pa, ws);
    saliency(ib, w, h, gk, R, pb, ws);
    for (size_t i = 0; i < n; i++) {
        double sel = pa[i] >= pb[i] ? 1.0 : 0.0;
        pa[i] = sel;
        pb[i] = 1.0 - sel;
    }
    /* refined weights; eps for [0,1] images -> 0..255 scale */
    const double s2 = 255.0 * 255.0;
    guided_filter(ia, pa, w, h, p->gff_r1, p->gff_eps1 * s2, wba, ws);
    guided_filter(ib, pb, w, h, p->gff_r1, p->gff_eps1 * s2, wbb, ws);
    guided_filter(ia, pa, w, h, p->gff_r2, p->gff_eps2 * s2, wda, ws);
    guided_filter(ib, pb, w, h, p->gff_r2, p->gff_eps2 * s2, wdb, ws);

    for (size_t i = 0; i < n; i++) {
        double xa = fmin(fmax(wba[i], 0.0), 1.0), xb = fmin(fmax(wbb[i], 0.0), 1.0);
        double ya = fmin(fmax(wda[i], 0.0), 1.0), yb = fmin(fmax(wdb[i], 0.0), 1.0);
        double sb = xa + xb, sd = ya + yb;
        if (sb > 1e-12) { xa /= sb; xb /= sb; } else { xa = xb = 0.5; }
        if (sd > 1e-12) { ya /= sd; yb /= sd; } else { ya = yb = 0.5; }
        double f = xa * ba[i] + xb * bb[i] + ya * (ia[i] - ba[i]) + yb * (ib[i] - bb[i]);
        out[i] = (float)fsd_clip255(f);
    }
    fsd_free(buf);
    return FSD_OK;
}
