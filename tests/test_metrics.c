/* Fusion metrics against the numpy twin (tests/ref/ref_metrics.py) on real image pairs, SSIM against
 * scikit-image, the single-metric and SR entry points against fsd_metrics_compute, and properties
 * that hold exactly: SSIM(X,X) = 1, VIFp(X,X) = 1, MI(X,X) = EN(X), EN/SD/SF/AG of a constant = 0,
 * PSNR of identical images = inf, closed-form values on synthetic images, A<->B symmetry, thread-count
 * independence, and refusal of bad input.
 *
 * Tolerance: every metric within 1e-4 relative of the twin, rel = |got - ref| / max(|ref|, 1e-6). */
#include "fsdiff/metrics.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-4

static double rel(double got, double ref) { return fabs(got - ref) / fmax(fabs(ref), 1e-6); }

static double worst[FSD_METRIC_COUNT]; /* max rel error per metric over all cases */
static double worst_sr[FSD_SR_METRIC_COUNT], worst_skimage;

static double meta_d(const fsd_safetensors *st, const char *key) {
    const char *v = fsd_st_meta_get(st, key);
    if (!v) {
        tu_check(0, "%s: metadata '%s' missing", st->path, key);
        return NAN;
    }
    return strtod(v, NULL);
}

/* Single-metric entry points must give the same numbers as the combined pass. */
static void check_singles(const float *a, const float *b, const float *f, int w, int h, const fsd_metrics *m,
                          const char *name) {
    typedef fsd_status (*fn3)(const float *, const float *, const float *, int, int, double *);
    typedef fsd_status (*fn1)(const float *, int, int, double *);
    fn1 f1[4] = {fsd_metric_en, fsd_metric_sd, fsd_metric_sf, fsd_metric_ag};
    fn3 f3[7] = {fsd_metric_mi, fsd_metric_scd, fsd_metric_vif, fsd_metric_qabf,
                 fsd_metric_ssim, fsd_metric_cc, fsd_metric_psnr};
    double e = 0;
    int ok = 1;
    for (int i = 0; i < 4; i++) {
        double v = NAN;
        ok &= f1[i](f, w, h, &v) == FSD_OK;
        e = fmax(e, rel(v, m->v[i]));
    }
    for (int i = 0; i < 7; i++) {
        double v = NAN;
        ok &= f3[i](a, b, f, w, h, &v) == FSD_OK;
        e = fmax(e, rel(v, m->v[FSD_METRIC_MI + i]));
    }
    tu_check(ok && e <= 1e-12, "%s: single-metric functions equal fsd_metrics_compute (max rel %.2g)", name, e);
}

static void check_case(const char *path) {
    fsd_safetensors st;
    if (!tu_check(fsd_st_open(&st, path) == FSD_OK, "open %s", path)) return;
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    int w = tu_meta_int(&st, "w", 0), h = tu_meta_int(&st, "h", 0);
    size_t n = 0;
    float *a = tu_get(&st, "a", &n), *b = tu_get(&st, "b", NULL), *f = tu_get(&st, "f", NULL);
    if (!a || !b || !f || n != (size_t)w * h) {
        tu_check(0, "%s: inputs present with %dx%d values", name, w, h);
        goto out;
    }
    fsd_metrics m;
    if (!tu_check(fsd_metrics_compute(a, b, f, w, h, &m) == FSD_OK, "%s: compute %s", name, fsd_error_message()))
        goto out;
    char line[1024];
    int off = 0, all = 1;
    for (int i = 0; i < FSD_METRIC_COUNT; i++) {
        const char *key = fsd_metric_table[i].name;
        double ref = meta_d(&st, key), e = rel(m.v[i], ref);
        if (!(e <= worst[i])) worst[i] = e;
        if (!(e <= TOL)) {
            all = 0;
            printf("      %s %s: got %.10g want %.10g (rel %.3g)\n", name, key, m.v[i], ref, e);
        }
        off += snprintf(line + off, sizeof line - (size_t)off, " %s %.1e", key, e);
    }
    tu_check(all, "%s (%dx%d) all metrics vs twin <= %.0e:%s", name, w, h, TOL, line);

    /* SSIM also against scikit-image (its reflect-padded map cropped by 5 = our valid region). */
    double s_fa;
    if (fsd_st_meta_get(&st, "skimage_ssim_a") && fsd_ssim(f, a, w, h, &s_fa) == FSD_OK) {
        double e = rel(s_fa, meta_d(&st, "skimage_ssim_a"));
        if (e > worst_skimage) worst_skimage = e;
        tu_check(e <= TOL, "%s: SSIM(F,A) vs skimage structural_similarity rel %.2g", name, e);
    }

    /* Super-resolution pair with REF = A. */
    fsd_sr_metrics sr;
    if (tu_check(fsd_metrics_sr(a, f, w, h, &sr) == FSD_OK, "%s: SR metrics", name)) {
        double e0 = rel(sr.v[FSD_SR_PSNR], meta_d(&st, "sr_PSNR")), e1 = rel(sr.v[FSD_SR_SSIM], meta_d(&st, "sr_SSIM"));
        worst_sr[0] = fmax(worst_sr[0], e0);
        worst_sr[1] = fmax(worst_sr[1], e1);
        tu_check(e0 <= TOL && e1 <= TOL, "%s: SR PSNR rel %.2g, SSIM rel %.2g", name, e0, e1);
    }
    check_singles(a, b, f, w, h, &m, name);

    /* Every fusion metric is symmetric in the two sources. */
    fsd_metrics ms;
    double es = 0;
    if (fsd_metrics_compute(b, a, f, w, h, &ms) == FSD_OK)
        for (int i = 0; i < FSD_METRIC_COUNT; i++) es = fmax(es, rel(ms.v[i], m.v[i]));
    else
        es = INFINITY;
    tu_check(es <= 1e-12, "%s: metrics(B, A, F) == metrics(A, B, F) (max rel %.2g)", name, es);
out:
    fsd_free(a);
    fsd_free(b);
    fsd_free(f);
    fsd_st_close(&st);
}

/* Deterministic 8-bit test image: smooth pattern plus hashed noise. */
static void make_image(float *x, int w, int h, unsigned seed) {
    for (int y = 0; y < h; y++)
        for (int i = 0; i < w; i++) {
            unsigned u = (unsigned)(y * 7919 + i * 104729) ^ (seed * 2654435761u);
            u ^= u >> 13, u *= 0x5bd1e995u, u ^= u >> 15;
            double v = 128 + 60 * sin(0.11 * i + seed) * cos(0.07 * y) + (double)(u % 41) - 20;
            x[(size_t)y * w + i] = (float)floor(fmin(255, fmax(0, v)));
        }
}

static void check_properties(void) {
    const int w = 67, h = 53; /* odd, non-square, above the 41x41 minimum */
    size_t n = (size_t)w * h;
    float *a = tu_zeros(n), *b = tu_zeros(n), *c = tu_zeros(n), *g = tu_zeros(n);
    make_image(a, w, h, 1);
    make_image(b, w, h, 2);
    for (size_t i = 0; i < n; i++) c[i] = 77;
    double v = NAN, v2 = NAN;

    fsd_ssim(a, a, w, h, &v);
    tu_check(fabs(v - 1) < 1e-12, "SSIM(X,X) = 1 (got %.15g)", v);
    fsd_ssim(a, b, w, h, &v2);
    fsd_metric_ssim(a, b, a, w, h, &v);
    tu_check(fabs(v - (1 + v2)) < 1e-12, "SSIM metric with F = A is 1 + SSIM(A,B)");
    fsd_vifp(a, a, w, h, &v);
    tu_check(fabs(v - 1) < 1e-6, "VIFp(X,X) = 1 (got %.12g)", v);
    fsd_vifp(a, c, w, h, &v);
    tu_check(v == 0, "VIFp(X, constant) = 0 (got %g)", v);
    fsd_vifp(c, a, w, h, &v);
    tu_check(v == 0, "VIFp(constant reference, X) = 0 by definition (got %g)", v);
    double en;
    fsd_metric_en(a, w, h, &en);
    fsd_mutual_info(a, a, w, h, &v);
    tu_check(fabs(v - en) < 1e-12 && en > 4, "MI(X,X) = EN(X) (%.12g vs %.12g)", v, en);

    int zeros = 1;
    fsd_metric_en(c, w, h, &v), zeros &= v == 0;
    fsd_metric_sd(c, w, h, &v), zeros &= v == 0;
    fsd_metric_sf(c, w, h, &v), zeros &= v == 0;
    fsd_metric_ag(c, w, h, &v), zeros &= v == 0;
    tu_check(zeros, "EN, SD, SF, AG of a constant image are 0");

    fsd_psnr(a, a, w, h, &v);
    tu_check(isinf(v) && v > 0, "PSNR of identical images is +inf");
    fsd_metric_psnr(a, a, a, w, h, &v);
    tu_check(isinf(v) && v > 0, "PSNR metric with F = A = B is +inf");
    for (size_t i = 0; i < n; i++) g[i] = a[i] + 1; /* MSE exactly 1 */
    fsd_psnr(a, g, w, h, &v);
    tu_check(fabs(v - 20 * log10(255.0)) < 1e-12, "PSNR with MSE 1 = 20 log10 255 (got %.12g)", v);

    fsd_correlation(a, g, w, h, &v);
    tu_check(fabs(v - 1) < 1e-12, "corr(X, X + 1) = 1");
    fsd_correlation(a, c, w, h, &v);
    tu_check(v == 0, "corr with a constant image is 0 by definition");
    fsd_metric_cc(a, b, a, w, h, &v);
    fsd_correlation(a, b, w, h, &v2);
    tu_check(fabs(v - 0.5 * (1 + v2)) < 1e-12, "CC with F = A is (1 + corr(A,B)) / 2");
    fsd_metric_scd(a, b, b, w, h, &v);
    fsd_correlation(a, b, w, h, &v2);
    /* F = B: F - B = 0 (corr 0 by definition), F - A = B - A. */
    for (size_t i = 0; i < n; i++) g[i] = b[i] - a[i];
    double c2;
    fsd_correlation(g, b, w, h, &c2);
    tu_check(fabs(v - c2) < 1e-12, "SCD with F = B is corr(B - A, B)");

    /* Qabf(X, X, X): G = 1 and A = 1 everywhere, so Q is the product of the two sigmoids at 1. */
    double q0 = 0.9994 / (1 + exp(-15 * 0.5)) * 0.9879 / (1 + exp(-22 * 0.2));
    fsd_metric_qabf(a, a, a, w, h, &v);
    tu_check(fabs(v - q0) < 1e-12, "Qabf(X,X,X) = sigmoid_g(1) sigmoid_a(1) = %.12g (got %.12g)", q0, v);
    float *zero = tu_zeros(n); /* flat and 0: zero padding adds no border edges */
    fsd_metric_qabf(zero, zero, a, w, h, &v);
    tu_check(v == 0, "Qabf with two all-zero sources is 0 by definition");
    fsd_metric_qabf(c, c, a, w, h, &v);
    tu_check(v > 0, "a constant 77 source has edges at the border under zero padding (Qabf %.3g)", v);
    fsd_free(zero);

    /* Closed forms: horizontal ramp F = 3x: SF = 3, AG = 3/sqrt(2); two-level image: EN = 1 bit. */
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) g[(size_t)y * w + x] = 3.0f * x;
    fsd_metric_sf(g, w, h, &v);
    fsd_metric_ag(g, w, h, &v2);
    tu_check(fabs(v - 3) < 1e-12 && fabs(v2 - 3 / sqrt(2.0)) < 1e-12, "ramp: SF = 3 (%.12g), AG = 3/sqrt2 (%.12g)", v,
             v2);
    for (size_t i = 0; i < n; i++) g[i] = (i % 2) ? 255.0f : 0.0f;
    fsd_metric_en(g, 2, 2, &v);
    tu_check(fabs(v - 1) < 1e-12, "EN of a 2x2 two-level image = 1 bit (got %.12g)", v);
    fsd_metric_sd(g, 2, 2, &v);
    tu_check(fabs(v - 127.5) < 1e-12, "SD of a 2x2 two-level image = 127.5");
    /* histogram binning rounds to nearest and clamps */
    float hv[4] = {-3.0f, 0.49f, 254.6f, 300.0f};
    fsd_metric_en(hv, 2, 2, &v);
    tu_check(fabs(v - 1) < 1e-12, "out-of-range values are clamped into bins 0 and 255 (EN = 1)");

    /* Thread-count independence: bitwise identical results with 1 and 2 threads. */
    fsd_metrics m1, m2;
    for (size_t i = 0; i < n; i++) g[i] = floorf(0.5f * (a[i] + b[i]) + 0.5f);
    fsd_set_threads(1);
    fsd_metrics_compute(a, b, g, w, h, &m1);
    fsd_set_threads(2);
    fsd_metrics_compute(a, b, g, w, h, &m2);
    tu_check(!memcmp(&m1, &m2, sizeof m1), "results identical with 1 and 2 threads");

    /* Bad input. */
    fsd_metrics m;
    fsd_clear_error();
    fsd_status s = fsd_metrics_compute(a, b, c, 40, 40, &m);
    tu_check(s == FSD_ERR_INVALID && strstr(fsd_error_message(), "40x40") && strstr(fsd_error_message(), "41x41"),
             "40x40 refused, message names both sizes: %s", fsd_error_message());
    s = fsd_metrics_compute(a, NULL, c, w, h, &m);
    tu_check(s == FSD_ERR_INVALID, "NULL image refused: %s", fsd_error_message());
    float keep = b[5 * w + 7];
    b[5 * w + 7] = NAN;
    s = fsd_metrics_compute(a, b, c, w, h, &m);
    tu_check(s == FSD_ERR_INVALID && strstr(fsd_error_message(), "(7, 5)"), "NaN refused with its position: %s",
             fsd_error_message());
    b[5 * w + 7] = keep;
    s = fsd_ssim(a, b, 10, 12, &v);
    tu_check(s == FSD_ERR_INVALID, "SSIM on 10x12 refused: %s", fsd_error_message());
    s = fsd_metric_sf(a, 1, 5, &v);
    tu_check(s == FSD_ERR_INVALID, "SF on a 1-pixel-wide image refused");
    s = fsd_metrics_sr(a, b, 11, 11, NULL);
    tu_check(s == FSD_ERR_INVALID, "NULL output refused");

    /* Names table. */
    int uniq = 1;
    for (int i = 0; i < FSD_METRIC_COUNT; i++) {
        uniq &= fsd_metric_table[i].name && fsd_metric_table[i].description && fsd_metric_find(fsd_metric_table[i].name) == i;
    }
    tu_check(uniq && fsd_metric_find("qabf") == FSD_METRIC_QABF && fsd_metric_find("nope") == -1,
             "metric table: names unique and found case-insensitively");
    fsd_free(a);
    fsd_free(b);
    fsd_free(c);
    fsd_free(g);
}

/* Time of the combined pass on a 640x480 image (the largest common eval size); printed, not asserted. */
static void report_speed(void) {
    const int w = 640, h = 480;
    size_t n = (size_t)w * h;
    float *a = tu_zeros(n), *b = tu_zeros(n), *f = tu_zeros(n);
    make_image(a, w, h, 3);
    make_image(b, w, h, 4);
    for (size_t i = 0; i < n; i++) f[i] = floorf(0.5f * (a[i] + b[i]) + 0.5f);
    fsd_metrics m;
    double t0 = fsd_time_seconds();
    fsd_status s = fsd_metrics_compute(a, b, f, w, h, &m);
    double t = fsd_time_seconds() - t0;
    tu_check(s == FSD_OK, "640x480 all metrics in %.1f ms on %d threads", 1e3 * t, fsd_get_threads());
    fsd_free(a);
    fsd_free(b);
    fsd_free(f);
}

int main(void) {
    char **paths;
    int n = tu_list_cases("metrics", &paths);
    tu_check(n >= 3, "found %d metric reference cases in %s/metrics", n, tu_ref_dir());
    for (int i = 0; i < n; i++) check_case(paths[i]);
    tu_free_list(paths, n);
    printf("max rel error vs twin over %d cases:", n);
    for (int i = 0; i < FSD_METRIC_COUNT; i++) printf(" %s %.2g", fsd_metric_table[i].name, worst[i]);
    printf(" | SR PSNR %.2g SSIM %.2g | SSIM vs skimage %.2g\n", worst_sr[0], worst_sr[1], worst_skimage);
    check_properties();
    report_speed();
    return tu_summary();
}
