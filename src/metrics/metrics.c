/* Fusion metric table, input checks, the F-only metrics (EN, SD, SF, AG), the histogram and
 * correlation metrics (MI, CC, SCD), PSNR, and fsd_metrics_compute / fsd_metrics_sr.
 * Formulas and references: docs/metrics.md. */
#include "metrics_internal.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

const fsd_metric_info fsd_metric_table[FSD_METRIC_COUNT] = {
    [FSD_METRIC_EN] = {"EN", "entropy of F (bits)", 1, 0},
    [FSD_METRIC_SD] = {"SD", "standard deviation of F", 1, 0},
    [FSD_METRIC_SF] = {"SF", "spatial frequency of F", 1, 0},
    [FSD_METRIC_AG] = {"AG", "average gradient of F", 1, 0},
    [FSD_METRIC_MI] = {"MI", "mutual information MI(F,A) + MI(F,B) (bits)", 1, 1},
    [FSD_METRIC_SCD] = {"SCD", "sum of correlations of differences", 1, 1},
    [FSD_METRIC_VIF] = {"VIF", "pixel-domain VIF, VIFp(A,F) + VIFp(B,F)", 1, 1},
    [FSD_METRIC_QABF] = {"Qabf", "edge preservation (Xydeas-Petrovic)", 1, 1},
    [FSD_METRIC_SSIM] = {"SSIM", "SSIM(F,A) + SSIM(F,B)", 1, 1},
    [FSD_METRIC_CC] = {"CC", "mean correlation (corr(F,A) + corr(F,B)) / 2", 1, 1},
    [FSD_METRIC_PSNR] = {"PSNR", "PSNR of F against A and B (dB)", 1, 1},
};

const fsd_metric_info fsd_sr_metric_table[FSD_SR_METRIC_COUNT] = {
    [FSD_SR_PSNR] = {"PSNR", "PSNR of F against REF (dB)", 1, 1},
    [FSD_SR_SSIM] = {"SSIM", "SSIM of F against REF", 1, 1},
};

int fsd_metric_find(const char *name) {
    if (!name) return -1;
    for (int i = 0; i < FSD_METRIC_COUNT; i++)
        if (!strcasecmp(name, fsd_metric_table[i].name)) return i;
    return -1;
}

int fsd_metrics_min_size(void) { return FSDM_MIN_VIF; }

/* ------------------------------------------------------------------------------------- helpers */
fsd_status fsdm_check(const char *what, const float *const *imgs, int n, int w, int h, int min_side,
                      const void *out) {
    if (!out) return fsd_fail(FSD_ERR_INVALID, "%s: NULL output", what);
    for (int i = 0; i < n; i++)
        if (!imgs[i]) return fsd_fail(FSD_ERR_INVALID, "%s: NULL image", what);
    if (w < min_side || h < min_side)
        return fsd_fail(FSD_ERR_INVALID, "%s: image %dx%d is too small (needs at least %dx%d)", what, w, h,
                        min_side, min_side);
    if ((int64_t)w * h > ((int64_t)1 << 31))
        return fsd_fail(FSD_ERR_INVALID, "%s: image %dx%d is too large", what, w, h);
    size_t np = (size_t)w * h;
    for (int i = 0; i < n; i++)
        for (size_t p = 0; p < np; p++)
            if (!isfinite(imgs[i][p]))
                return fsd_fail(FSD_ERR_INVALID, "%s: non-finite value at (%zu, %zu)", what, p % (size_t)w,
                                p / (size_t)w);
    return FSD_OK;
}

double *fsdm_to_double(const float *x, size_t n) {
    double *d = fsd_alloc(n * sizeof(double));
    if (!d) return NULL;
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

double fsdm_sum(const double *rows, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += rows[i];
    return s;
}

/* Histogram bin of an 8-bit value: nearest integer, clamped to 0..255. */
static inline int bin8(float v) {
    double r = floor((double)v + 0.5);
    return r < 0 ? 0 : r > 255 ? 255 : (int)r;
}

static double *row_buf(int h, int k) { return fsd_alloc((size_t)k * h * sizeof(double)); }

/* --------------------------------------------------------------------------------- F-only metrics */
/* EN = -sum_k p_k log2 p_k over the 256-bin histogram of F. */
static double en_impl(const float *f, size_t np) {
    int64_t hist[256] = {0};
    for (size_t i = 0; i < np; i++) hist[bin8(f[i])]++;
    double e = 0;
    for (int k = 0; k < 256; k++)
        if (hist[k]) {
            double p = (double)hist[k] / (double)np;
            e -= p * log2(p);
        }
    return e;
}

/* Population mean and SD of x[h*w] (two passes). */
static fsd_status mean_sd(const float *x, int w, int h, double *mean, double *sd) {
    double *rows = row_buf(h, 1);
    if (!rows) return FSD_ERR_NOMEM;
    double np = (double)w * h;
#pragma omp parallel for schedule(static)
    for (int y = 0; y < h; y++) {
        double s = 0;
        for (int j = 0; j < w; j++) s += x[(size_t)y * w + j];
        rows[y] = s;
    }
    double mu = fsdm_sum(rows, h) / np;
#pragma omp parallel for schedule(static)
    for (int y = 0; y < h; y++) {
        double s = 0;
        for (int j = 0; j < w; j++) {
            double d = x[(size_t)y * w + j] - mu;
            s += d * d;
        }
        rows[y] = s;
    }
    *mean = mu;
    *sd = sqrt(fsdm_sum(rows, h) / np);
    fsd_free(rows);
    return FSD_OK;
}

/* SF = sqrt(RF^2 + CF^2), RF^2 = mean over h x (w-1) of (F[i][j] - F[i][j-1])^2,
 * CF^2 = mean over (h-1) x w of (F[i][j] - F[i-1][j])^2. */
static fsd_status sf_impl(const float *f, int w, int h, double *out) {
    double *rows = row_buf(h, 2);
    if (!rows) return FSD_ERR_NOMEM;
#pragma omp parallel for schedule(static)
    for (int y = 0; y < h; y++) {
        const float *r = f + (size_t)y * w;
        double sr = 0, sc = 0;
        for (int j = 1; j < w; j++) {
            double d = (double)r[j] - r[j - 1];
            sr += d * d;
        }
        if (y > 0)
            for (int j = 0; j < w; j++) {
                double d = (double)r[j] - r[j - (ptrdiff_t)w];
                sc += d * d;
            }
        rows[y] = sr;
        rows[h + y] = sc;
    }
    double rf2 = fsdm_sum(rows, h) / ((double)h * (w - 1));
    double cf2 = fsdm_sum(rows + h, h) / ((double)(h - 1) * w);
    fsd_free(rows);
    *out = sqrt(rf2 + cf2);
    return FSD_OK;
}

/* numpy.gradient along a line: central difference inside, one-sided at both ends (n >= 2). */
static inline double grad1(const float *p, ptrdiff_t stride, int i, int n) {
    if (i == 0) return (double)p[stride] - p[0];
    if (i == n - 1) return (double)p[0] - p[-stride];
    return 0.5 * ((double)p[stride] - p[-stride]);
}

/* AG = mean over all pixels of sqrt((Gx^2 + Gy^2) / 2), numpy.gradient differences. */
static fsd_status ag_impl(const float *f, int w, int h, double *out) {
    double *rows = row_buf(h, 1);
    if (!rows) return FSD_ERR_NOMEM;
#pragma omp parallel for schedule(static)
    for (int y = 0; y < h; y++) {
        double s = 0;
        for (int x = 0; x < w; x++) {
            const float *p = f + (size_t)y * w + x;
            double gx = grad1(p, 1, x, w), gy = grad1(p, w, y, h);
            s += sqrt(0.5 * (gx * gx + gy * gy));
        }
        rows[y] = s;
    }
    *out = fsdm_sum(rows, h) / ((double)w * h);
    fsd_free(rows);
    return FSD_OK;
}

/* -------------------------------------------------------------------------- two-image statistics */
/* MI(X;Y) = sum p(x,y) log2(p(x,y) / (p(x) p(y))) from the 256x256 joint histogram. */
static fsd_status mi_impl(const float *x, const float *y, size_t np, double *out) {
    int64_t *joint = fsd_calloc(256 * 256 + 512, sizeof(int64_t));
    if (!joint) return FSD_ERR_NOMEM;
    int64_t *hx = joint + 256 * 256, *hy = hx + 256;
    for (size_t i = 0; i < np; i++) {
        int bx = bin8(x[i]), by = bin8(y[i]);
        joint[bx * 256 + by]++;
        hx[bx]++;
        hy[by]++;
    }
    double n = (double)np, mi = 0;
    for (int i = 0; i < 256; i++) {
        if (!hx[i]) continue;
        for (int j = 0; j < 256; j++) {
            int64_t c = joint[i * 256 + j];
            if (c) mi += (double)c / n * log2((double)c * n / ((double)hx[i] * (double)hy[j]));
        }
    }
    fsd_free(joint);
    *out = mi;
    return FSD_OK;
}

/* Pearson correlation of (p - q) with r; q may be NULL (plain p). 0 when either side is constant. */
static fsd_status corr_impl(const float *p, const float *q, const float *r, int w, int h, double *out) {
    double *rows = row_buf(h, 3);
    if (!rows) return FSD_ERR_NOMEM;
#pragma omp parallel for schedule(static)
    for (int y = 0; y < h; y++) {
        double su = 0, sv = 0;
        for (int j = 0; j < w; j++) {
            size_t i = (size_t)y * w + j;
            su += (double)p[i] - (q ? (double)q[i] : 0.0);
            sv += r[i];
        }
        rows[y] = su;
        rows[h + y] = sv;
    }
    double np = (double)w * h;
    double mu = fsdm_sum(rows, h) / np, mv = fsdm_sum(rows + h, h) / np;
#pragma omp parallel for schedule(static)
    for (int y = 0; y < h; y++) {
        double suv = 0, suu = 0, svv = 0;
        for (int j = 0; j < w; j++) {
            size_t i = (size_t)y * w + j;
            double u = (double)p[i] - (q ? (double)q[i] : 0.0) - mu, v = r[i] - mv;
            suv += u * v;
            suu += u * u;
            svv += v * v;
        }
        rows[y] = suv;
        rows[h + y] = suu;
        rows[2 * (size_t)h + y] = svv;
    }
    double cuv = fsdm_sum(rows, h), cuu = fsdm_sum(rows + h, h), cvv = fsdm_sum(rows + 2 * (size_t)h, h);
    fsd_free(rows);
    *out = (cuu > 0 && cvv > 0) ? cuv / sqrt(cuu * cvv) : 0.0;
    return FSD_OK;
}

static fsd_status mse_impl(const float *x, const float *y, int w, int h, double *out) {
    double *rows = row_buf(h, 1);
    if (!rows) return FSD_ERR_NOMEM;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < h; r++) {
        double s = 0;
        for (int j = 0; j < w; j++) {
            double d = (double)x[(size_t)r * w + j] - y[(size_t)r * w + j];
            s += d * d;
        }
        rows[r] = s;
    }
    *out = fsdm_sum(rows, h) / ((double)w * h);
    fsd_free(rows);
    return FSD_OK;
}

/* 10 log10(255^2 / mse); +INFINITY for mse = 0. */
static double psnr_of_mse(double mse) { return mse > 0 ? 10.0 * log10(255.0 * 255.0 / mse) : INFINITY; }

/* ------------------------------------------------------------------------------ public: singles */
#define CHECK(what, n, minside, ...)                                                                     \
    do {                                                                                                \
        const float *imgs_[] = {__VA_ARGS__};                                                           \
        fsd_status st_ = fsdm_check(what, imgs_, n, w, h, minside, out);                                \
        if (st_ != FSD_OK) return st_;                                                                  \
    } while (0)

fsd_status fsd_metric_en(const float *f, int w, int h, double *out) {
    CHECK("EN", 1, 1, f);
    *out = en_impl(f, (size_t)w * h);
    return FSD_OK;
}

fsd_status fsd_metric_sd(const float *f, int w, int h, double *out) {
    CHECK("SD", 1, 1, f);
    double mu;
    return mean_sd(f, w, h, &mu, out);
}

fsd_status fsd_metric_sf(const float *f, int w, int h, double *out) {
    CHECK("SF", 1, 2, f);
    return sf_impl(f, w, h, out);
}

fsd_status fsd_metric_ag(const float *f, int w, int h, double *out) {
    CHECK("AG", 1, 2, f);
    return ag_impl(f, w, h, out);
}

fsd_status fsd_mutual_info(const float *x, const float *y, int w, int h, double *out) {
    CHECK("MI", 2, 1, x, y);
    return mi_impl(x, y, (size_t)w * h, out);
}

fsd_status fsd_correlation(const float *x, const float *y, int w, int h, double *out) {
    CHECK("CC", 2, 1, x, y);
    return corr_impl(x, NULL, y, w, h, out);
}

fsd_status fsd_psnr(const float *ref, const float *x, int w, int h, double *out) {
    CHECK("PSNR", 2, 1, ref, x);
    double mse;
    fsd_status st = mse_impl(ref, x, w, h, &mse);
    if (st == FSD_OK) *out = psnr_of_mse(mse);
    return st;
}

/* SSIM / VIF entry points take float images; the windowed statistics run on double copies. */
static fsd_status windowed(int vif, const float *d, const float *r0, const float *r1, int w, int h, double *out) {
    size_t np = (size_t)w * h;
    double *dd = fsdm_to_double(d, np), *d0 = fsdm_to_double(r0, np), *d1 = r1 ? fsdm_to_double(r1, np) : NULL;
    fsd_status st = FSD_ERR_NOMEM;
    if (dd && d0 && (d1 || !r1)) {
        const double *refs[2] = {d0, d1};
        st = vif ? fsdm_vif_multi(dd, refs, r1 ? 2 : 1, w, h, out) : fsdm_ssim_multi(dd, refs, r1 ? 2 : 1, w, h, out);
    }
    fsd_free(dd);
    fsd_free(d0);
    fsd_free(d1);
    return st;
}

fsd_status fsd_ssim(const float *x, const float *y, int w, int h, double *out) {
    CHECK("SSIM", 2, FSDM_MIN_SSIM, x, y);
    return windowed(0, x, y, NULL, w, h, out);
}

fsd_status fsd_vifp(const float *ref, const float *dist, int w, int h, double *out) {
    CHECK("VIF", 2, FSDM_MIN_VIF, ref, dist);
    return windowed(1, dist, ref, NULL, w, h, out);
}

fsd_status fsd_metric_mi(const float *a, const float *b, const float *f, int w, int h, double *out) {
    CHECK("MI", 3, 1, a, b, f);
    double ma, mb;
    fsd_status st = mi_impl(f, a, (size_t)w * h, &ma);
    if (st == FSD_OK) st = mi_impl(f, b, (size_t)w * h, &mb);
    if (st == FSD_OK) *out = ma + mb;
    return st;
}

/* SCD = corr(F - B, A) + corr(F - A, B) (Aslantas & Bendes 2015). */
fsd_status fsd_metric_scd(const float *a, const float *b, const float *f, int w, int h, double *out) {
    CHECK("SCD", 3, 1, a, b, f);
    double c1, c2;
    fsd_status st = corr_impl(f, b, a, w, h, &c1);
    if (st == FSD_OK) st = corr_impl(f, a, b, w, h, &c2);
    if (st == FSD_OK) *out = c1 + c2;
    return st;
}

fsd_status fsd_metric_vif(const float *a, const float *b, const float *f, int w, int h, double *out) {
    CHECK("VIF", 3, FSDM_MIN_VIF, a, b, f);
    double v[2];
    fsd_status st = windowed(1, f, a, b, w, h, v);
    if (st == FSD_OK) *out = v[0] + v[1];
    return st;
}

fsd_status fsd_metric_qabf(const float *a, const float *b, const float *f, int w, int h, double *out) {
    CHECK("Qabf", 3, 1, a, b, f);
    return fsdm_qabf(a, b, f, w, h, out);
}

fsd_status fsd_metric_ssim(const float *a, const float *b, const float *f, int w, int h, double *out) {
    CHECK("SSIM", 3, FSDM_MIN_SSIM, a, b, f);
    double v[2];
    fsd_status st = windowed(0, f, a, b, w, h, v);
    if (st == FSD_OK) *out = v[0] + v[1];
    return st;
}

fsd_status fsd_metric_cc(const float *a, const float *b, const float *f, int w, int h, double *out) {
    CHECK("CC", 3, 1, a, b, f);
    double c1, c2;
    fsd_status st = corr_impl(f, NULL, a, w, h, &c1);
    if (st == FSD_OK) st = corr_impl(f, NULL, b, w, h, &c2);
    if (st == FSD_OK) *out = 0.5 * (c1 + c2);
    return st;
}

/* PSNR = 10 log10(255^2 / ((MSE(F,A) + MSE(F,B)) / 2)). */
fsd_status fsd_metric_psnr(const float *a, const float *b, const float *f, int w, int h, double *out) {
    CHECK("PSNR", 3, 1, a, b, f);
    double m1, m2;
    fsd_status st = mse_impl(f, a, w, h, &m1);
    if (st == FSD_OK) st = mse_impl(f, b, w, h, &m2);
    if (st == FSD_OK) *out = psnr_of_mse(0.5 * (m1 + m2));
    return st;
}

/* --------------------------------------------------------------------------------- public: all */
fsd_status fsd_metrics_compute(const float *a, const float *b, const float *f, int w, int h, fsd_metrics *out) {
    CHECK("metrics", 3, FSDM_MIN_VIF, a, b, f);
    size_t np = (size_t)w * h;
    double *v = out->v, mu, x1, x2;
    fsd_status st = FSD_OK;
    v[FSD_METRIC_EN] = en_impl(f, np);
#define TRY(call)                                                                                       \
    do {                                                                                                \
        if ((st = (call)) != FSD_OK) goto done;                                                         \
    } while (0)
    double *dd = NULL, *da = NULL, *db = NULL;
    TRY(mean_sd(f, w, h, &mu, &v[FSD_METRIC_SD]));
    TRY(sf_impl(f, w, h, &v[FSD_METRIC_SF]));
    TRY(ag_impl(f, w, h, &v[FSD_METRIC_AG]));
    TRY(mi_impl(f, a, np, &x1));
    TRY(mi_impl(f, b, np, &x2));
    v[FSD_METRIC_MI] = x1 + x2;
    TRY(corr_impl(f, b, a, w, h, &x1));
    TRY(corr_impl(f, a, b, w, h, &x2));
    v[FSD_METRIC_SCD] = x1 + x2;
    TRY(corr_impl(f, NULL, a, w, h, &x1));
    TRY(corr_impl(f, NULL, b, w, h, &x2));
    v[FSD_METRIC_CC] = 0.5 * (x1 + x2);
    TRY(mse_impl(f, a, w, h, &x1));
    TRY(mse_impl(f, b, w, h, &x2));
    v[FSD_METRIC_PSNR] = psnr_of_mse(0.5 * (x1 + x2));
    TRY(fsdm_qabf(a, b, f, w, h, &v[FSD_METRIC_QABF]));
    /* One double copy of each image serves both SSIM and VIF; F's windowed moments are shared by
     * its two comparisons inside each. */
    st = FSD_ERR_NOMEM;
    dd = fsdm_to_double(f, np), da = fsdm_to_double(a, np), db = fsdm_to_double(b, np);
    if (!dd || !da || !db) goto done;
    const double *refs[2] = {da, db};
    double pair[2];
    TRY(fsdm_ssim_multi(dd, refs, 2, w, h, pair));
    v[FSD_METRIC_SSIM] = pair[0] + pair[1];
    TRY(fsdm_vif_multi(dd, refs, 2, w, h, pair));
    v[FSD_METRIC_VIF] = pair[0] + pair[1];
#undef TRY
done:
    fsd_free(dd);
    fsd_free(da);
    fsd_free(db);
    return st;
}

fsd_status fsd_metrics_sr(const float *ref, const float *f, int w, int h, fsd_sr_metrics *out) {
    CHECK("SR metrics", 2, FSDM_MIN_SSIM, ref, f);
    double mse;
    fsd_status st = mse_impl(f, ref, w, h, &mse);
    if (st != FSD_OK) return st;
    out->v[FSD_SR_PSNR] = psnr_of_mse(mse);
    return windowed(0, f, ref, NULL, w, h, &out->v[FSD_SR_SSIM]);
}
