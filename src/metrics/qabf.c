/* Qabf: gradient-based fusion performance of Xydeas & Petrovic (Electronics Letters 36(4), 2000).
 *
 * Sobel responses with zero padding ('same' size), in the sign convention of the common MATLAB code
 * (conv2 with h3 = [-1 0 1; -2 0 2; -1 0 1] and h1 = [1 2 1; 0 0 0; -1 -2 -1], i.e. a true
 * convolution): gx = left column - right column, gy = lower row - upper row. The convention matters
 * only through the gx = 0 rule below, which fixes alpha = pi/2 whatever the sign of gy. */
#include "metrics_internal.h"

#include <math.h>

#define QG_GAMMA 0.9994
#define QG_KAPPA -15.0
#define QG_SIGMA 0.5
#define QA_GAMMA 0.9879
#define QA_KAPPA -22.0
#define QA_SIGMA 0.8

/* Pixel value with zero padding outside the image. */
static inline double px(const float *im, int w, int h, int x, int y) {
    return (x < 0 || y < 0 || x >= w || y >= h) ? 0.0 : (double)im[(size_t)y * w + x];
}

/* Edge strength g = sqrt(gx^2 + gy^2) and orientation alpha = atan(gy / gx) (pi/2 when gx = 0, as in
 * the reference code) of pixel (x, y). */
static inline void sobel_at(const float *im, int w, int h, int x, int y, double *g, double *alpha) {
    double l = px(im, w, h, x - 1, y - 1) + 2 * px(im, w, h, x - 1, y) + px(im, w, h, x - 1, y + 1);
    double r = px(im, w, h, x + 1, y - 1) + 2 * px(im, w, h, x + 1, y) + px(im, w, h, x + 1, y + 1);
    double u = px(im, w, h, x - 1, y - 1) + 2 * px(im, w, h, x, y - 1) + px(im, w, h, x + 1, y - 1);
    double d = px(im, w, h, x - 1, y + 1) + 2 * px(im, w, h, x, y + 1) + px(im, w, h, x + 1, y + 1);
    double gx = l - r, gy = d - u;
    *g = sqrt(gx * gx + gy * gy);
    *alpha = gx == 0 ? M_PI / 2 : atan(gy / gx);
}

/* Edge preservation Q^XF of one source pixel (strength gs, orientation as) in F (gf, af):
 * relative strength G = min/max of the two strengths (1 when equal, also when both are 0: such a pixel
 * has weight 0), relative orientation A = 1 - |as - af| / (pi/2), each through its sigmoid. */
static inline double edge_preservation(double gs, double as, double gf, double af) {
    double G = gs > gf ? gf / gs : gs < gf ? gs / gf : 1.0;
    double A = 1.0 - fabs(as - af) / (M_PI / 2);
    double qg = QG_GAMMA / (1.0 + exp(QG_KAPPA * (G - QG_SIGMA)));
    double qa = QA_GAMMA / (1.0 + exp(QA_KAPPA * (A - QA_SIGMA)));
    return qg * qa;
}

/* Qabf = sum(Q^AF w^A + Q^BF w^B) / sum(w^A + w^B), w = g^L with L = 1; 0 when both sources are flat. */
fsd_status fsdm_qabf(const float *a, const float *b, const float *f, int w, int h, double *out) {
    double *rows = fsd_alloc(2 * (size_t)h * sizeof(double)); /* [num row sums | den row sums] */
    if (!rows) return FSD_ERR_NOMEM;
#pragma omp parallel for schedule(static)
    for (int y = 0; y < h; y++) {
        double num = 0, den = 0;
        for (int x = 0; x < w; x++) {
            double ga, aa, gb, ab, gf, af;
            sobel_at(a, w, h, x, y, &ga, &aa);
            sobel_at(b, w, h, x, y, &gb, &ab);
            sobel_at(f, w, h, x, y, &gf, &af);
            num += edge_preservation(ga, aa, gf, af) * ga + edge_preservation(gb, ab, gf, af) * gb;
            den += ga + gb;
        }
        rows[y] = num;
        rows[h + y] = den;
    }
    double num = fsdm_sum(rows, h), den = fsdm_sum(rows + h, h);
    fsd_free(rows);
    *out = den > 0 ? num / den : 0.0;
    return FSD_OK;
}
