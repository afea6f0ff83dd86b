/* Fusion method table, parameters, dispatch, and the average rule. */
#include "fusion_internal.h"

#include <math.h>
#include <string.h>

static const char *const k_names[FSD_FUSE_COUNT] = {"average", "laplacian", "gff", "gradient", "auto"};

const char *fsd_fuse_method_name(fsd_fuse_method m) {
    return (unsigned)m < FSD_FUSE_COUNT ? k_names[m] : "?";
}

const char *fsd_fuse_method_list(void) { return "average, laplacian, gff, gradient, auto"; }

fsd_status fsd_fuse_method_parse(const char *name, fsd_fuse_method *m) {
    for (int i = 0; i < FSD_FUSE_COUNT; i++)
        if (name && !strcmp(name, k_names[i])) {
            *m = (fsd_fuse_method)i;
            return FSD_OK;
        }
    return fsd_fail(FSD_ERR_INVALID, "unknown fusion method '%s' (valid: %s)", name ? name : "",
                    fsd_fuse_method_list());
}

void fsd_fuse_params_default(fsd_fuse_params *p) {
    memset(p, 0, sizeof *p);
    p->lap_levels = 0;
    p->gff_mean_r = 15;
    p->gff_gauss_r = 5;
    p->gff_gauss_sigma = 5.0;
    p->gff_r1 = 45;
    p->gff_eps1 = 0.3;
    p->gff_r2 = 7;
    p->gff_eps2 = 1e-6;
    p->grad_lambda = 0.05;
}

fsd_status fsd_fusion_check(const char *method, const float *a, const float *b, int w, int h, const float *out) {
    if (!a || !b || !out) return fsd_fail(FSD_ERR_INVALID, "%s fusion: NULL plane", method);
    if (w < 1 || h < 1) return fsd_fail(FSD_ERR_INVALID, "%s fusion: bad size %dx%d", method, w, h);
    if ((int64_t)w * h > ((int64_t)1 << 28))
        return fsd_fail(FSD_ERR_INVALID, "%s fusion: %dx%d is too large", method, w, h);
    return FSD_OK;
}

fsd_status fsd_fuse_average(const float *a, const float *b, int w, int h, float *out) {
    fsd_status s = fsd_fusion_check("average", a, b, w, h, out);
    if (s) return s;
    size_t n = (size_t)w * h;
    for (size_t i = 0; i < n; i++) out[i] = (float)(0.5 * ((double)a[i] + (double)b[i]));
    return FSD_OK;
}

double fsd_fuse_dark_share(const float *a, const float *b, size_t n) {
    size_t dark = 0;
    for (size_t i = 0; i < n; i++) dark += (a[i] > b[i] ? a[i] : b[i]) < FSD_FUSE_DARK_LEVEL;
    return n ? (double)dark / (double)n : 0.0;
}

fsd_fuse_method fsd_fuse_auto_pick(double dark_share) {
    return dark_share >= FSD_FUSE_DARK_SHARE ? FSD_FUSE_GRADIENT : FSD_FUSE_LAPLACIAN;
}

fsd_status fsd_fuse_plane(fsd_fuse_method m, const fsd_fuse_params *p, const float *a, const float *b, int w,
                          int h, float *out) {
    fsd_fuse_params def;
    if (!p) {
        fsd_fuse_params_default(&def);
        p = &def;
    }
    switch (m) {
    case FSD_FUSE_AVERAGE: return fsd_fuse_average(a, b, w, h, out);
    case FSD_FUSE_LAPLACIAN: return fsd_fuse_laplacian(a, b, w, h, p->lap_levels, out);
    case FSD_FUSE_GFF: return fsd_fuse_gff(a, b, w, h, p, out);
    case FSD_FUSE_GRADIENT: return fsd_fuse_gradient(a, b, w, h, p->grad_lambda, 1, out);
    case FSD_FUSE_AUTO: {
        fsd_status s = fsd_fusion_check("auto", a, b, w, h, out);
        if (s) return s;
        return fsd_fuse_plane(fsd_fuse_auto_pick(fsd_fuse_dark_share(a, b, (size_t)w * h)), p, a, b, w, h, out);
    }
    default: return fsd_fail(FSD_ERR_INVALID, "unknown fusion method %d (valid: %s)", (int)m, fsd_fuse_method_list());
    }
}
