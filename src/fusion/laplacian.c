/* Laplacian pyramid fusion (Burt & Adelson, "The Laplacian pyramid as a compact image code",
 * IEEE Trans. Commun. 1983; fusion rule as in Burt & Kolczynski 1993 without the match measure):
 * detail coefficients chosen by max absolute value, base level averaged, then reconstructed.
 * Computed in double; the tap order of every sum is fixed (k = -2..2, horizontal pass first) so
 * that the numpy twin (tests/ref/ref_fusion.py) reproduces the values bit for bit where they are
 * exact, and the max-|.| choice never flips on rounding noise. */
#include "fusion_internal.h"

#include <math.h>
#include <string.h>

/* The reference comparison needs the same rounding as numpy: no fused multiply-adds here. */
#pragma GCC optimize("fp-contract=off")

#define LAP_MAX_LEVELS 12
static const double k_binom[5] = {1.0 / 16, 4.0 / 16, 6.0 / 16, 4.0 / 16, 1.0 / 16};

int fsd_laplacian_default_levels(int w, int h) {
    int levels = 1;
    while (levels < 6) {
        w = (w + 1) / 2;
        h = (h + 1) / 2;
        if (w < 8 || h < 8) break;
        levels++;
    }
    return levels;
}

/* REDUCE: blur with the binomial kernel (reflect borders) and keep even pixels.
 * in: (h, w), out: (h2, w2) with w2 = ceil(w/2), h2 = ceil(h/2); tmp: (h, w2). */
static void pyr_reduce(const double *in, int w, int h, double *out, double *tmp) {
    int w2 = (w + 1) / 2, h2 = (h + 1) / 2;
#pragma omp parallel for schedule(static) if (fsd_fusion_par((long)w * h))
    for (int y = 0; y < h; y++) {
        const double *row = in + (size_t)y * w;
        double *t = tmp + (size_t)y * w2;
        for (int i = 0; i < w2; i++) {
            double acc = 0.0;
            for (int k = -2; k <= 2; k++) acc = acc + k_binom[k + 2] * row[fsd_reflect(2 * i + k, w)];
            t[i] = acc;
        }
    }
#pragma omp parallel for schedule(static) if (fsd_fusion_par((long)w2 * h2))
    for (int j = 0; j < h2; j++) {
        double *o = out + (size_t)j * w2;
        for (int i = 0; i < w2; i++) o[i] = 0.0;
        for (int k = -2; k <= 2; k++) {
            const double *t = tmp + (size_t)fsd_reflect(2 * j + k, h) * w2;
            for (int i = 0; i < w2; i++) o[i] = o[i] + k_binom[k + 2] * t[i];
        }
    }
}

/* EXPAND to (h, w): zero-interleave g (h2, w2) onto the (h, w) grid (g at even coordinates),
 * blur with 2 x binomial per axis, reflect borders of the interleaved grid.
 * out (h, w) is written (=) or, with accumulate, added to (+=). tmp: (h2, w). */
static void pyr_expand(const double *g, int w2, int h2, double *out, int w, int h, double *tmp, int accumulate) {
#pragma omp parallel for schedule(static) if (fsd_fusion_par((long)w * h2))
    for (int j = 0; j < h2; j++) {
        const double *row = g + (size_t)j * w2;
        double *t = tmp + (size_t)j * w;
        for (int x = 0; x < w; x++) {
            double acc = 0.0;
            for (int k = -2; k <= 2; k++) {
                int xi = fsd_reflect(x + k, w);
                if (!(xi & 1)) acc = acc + (2.0 * k_binom[k + 2]) * row[xi >> 1];
            }
            t[x] = acc;
        }
    }
#pragma omp parallel for schedule(static) if (fsd_fusion_par((long)w * h))
    for (int y = 0; y < h; y++) {
        double *o = out + (size_t)y * w;
        double acc_row[256];
        /* process the row in chunks so the accumulator stays on the stack */
        for (int x0 = 0; x0 < w; x0 += 256) {
            int n = w - x0 < 256 ? w - x0 : 256;
            for (int i = 0; i < n; i++) acc_row[i] = 0.0;
            for (int k = -2; k <= 2; k++) {
                int yi = fsd_reflect(y + k, h);
                if (yi & 1) continue;
                const double *t = tmp + (size_t)(yi >> 1) * w + x0;
                for (int i = 0; i < n; i++) acc_row[i] = acc_row[i] + (2.0 * k_binom[k + 2]) * t[i];
            }
            if (accumulate)
                for (int i = 0; i < n; i++) o[x0 + i] = o[x0 + i] + acc_row[i];
            else
                for (int i = 0; i < n; i++) o[x0 + i] = acc_row[i];
        }
    }
}

fsd_status fsd_fuse_laplacian(const float *a, const float *b, int w, int h, int levels, float *out) {
    fsd_status s = fsd_fusion_check("laplacian", a, b, w, h, out);
    if (s) return s;
    if (levels == 0) levels = fsd_laplacian_default_levels(w, h);
    if (levels < 1 || levels > LAP_MAX_LEVELS)
        return fsd_fail(FSD_ERR_INVALID, "laplacian fusion: levels %d out of range [1, %d]", levels, LAP_MAX_LEVELS);

    int lw[LAP_MAX_LEVELS], lh[LAP_MAX_LEVELS];
    size_t off[LAP_MAX_LEVELS + 1];
    off[0] = 0;
    for (int l = 0; l < levels; l++) {
        lw[l] = l ? (lw[l - 1] + 1) / 2 : w;
        lh[l] = l ? (lh[l - 1] + 1) / 2 : h;
        off[l + 1] = off[l] + (size_t)lw[l] * lh[l];
    }
    size_t total = off[levels], n = (size_t)w * h;
    /* two pyramids + scratch: EXPAND needs (h/2 + h) * w */
    double *buf = fsd_alloc((2 * total + 2 * n) * sizeof(double));
    if (!buf) return fsd_fail(FSD_ERR_NOMEM, "laplacian fusion: out of memory for %dx%d", w, h);
    double *pa = buf, *pb = buf + total, *tmp = buf + 2 * total;

    for (size_t i = 0; i < n; i++) {
        pa[i] = a[i];
        pb[i] = b[i];
    }
    for (int side = 0; side < 2; side++) {
        double *p = side ? pb : pa;
        /* Gaussian pyramid G_l */
        for (int l = 1; l < levels; l++) pyr_reduce(p + off[l - 1], lw[l - 1], lh[l - 1], p + off[l], tmp);
        /* Laplacian in place, fine to coarse: L_l = G_l - EXPAND(G_{l+1}) (G_{l+1} still intact) */
        for (int l = 0; l + 1 < levels; l++) {
            double *e = tmp + (size_t)lh[l + 1] * lw[l]; /* expand output after its own scratch */
            pyr_expand(p + off[l + 1], lw[l + 1], lh[l + 1], e, lw[l], lh[l], tmp, 0);
            double *g = p + off[l];
            size_t m = (size_t)lw[l] * lh[l];
            for (size_t i = 0; i < m; i++) g[i] = g[i] - e[i];
        }
    }
    /* fuse into pa: details by max |.| (a on ties), base averaged */
    for (int l = 0; l + 1 < levels; l++)
        for (size_t i = off[l]; i < off[l + 1]; i++)
            if (fabs(pb[i]) > fabs(pa[i])) pa[i] = pb[i];
    for (size_t i = off[levels - 1]; i < total; i++) pa[i] = 0.5 * (pa[i] + pb[i]);
    /* reconstruct coarse to fine: F_l += EXPAND(F_{l+1}) */
    for (int l = levels - 2; l >= 0; l--)
        pyr_expand(pa + off[l + 1], lw[l + 1], lh[l + 1], pa + off[l], lw[l], lh[l], tmp, 1);
    for (size_t i = 0; i < n; i++) out[i] = (float)fsd_clip255(pa[i]);
    fsd_free(buf);
    return FSD_OK;
}
