/* Classical fusion methods (src/fusion): parity with the numpy twins (tests/ref/ref_fusion.py) on
 * crops of real pairs, DCT against the direct sum, screened-Poisson residuals and properties of
 * gradient fusion, the YCbCr colour wrapper and error paths.
 *
 * Tolerances (absolute, on the 0..255 scale):
 *   average / laplacian / gff / gradient vs numpy:  max |c - numpy| <= 1e-3
 *     (the C code computes in double and stores float32: float rounding alone is <= 255 * 2^-24 ~ 1.5e-5)
 *   DCT-II vs direct O(n^2) sum: <= 1e-11 * sqrt(n) * max|x|; DCT-III(DCT-II(x)) = x within 1e-12 * max|x|
 *   screened Poisson residual |(lambda + L) u - f| <= 1e-9 * max|f| (double solve)
 *   gradient fusion of A with itself returns A within 0.5; of a constant pair, that constant within 1e-3. */
#include "fsdiff/fusion.h"
#include "fsdiff/image.h"
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int check_maxabs(const char *what, const float *got, const float *ref, size_t n, double tol) {
    double worst = 0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)ref[i]);
        if (!(d <= worst)) {
            worst = isnan(d) ? INFINITY : d;
            wi = i;
        }
    }
    if (worst <= tol) return tu_check(1, "%s: max abs err %.3g <= %.0e", what, worst, tol);
    return tu_check(0, "%s: max abs err %.3g > %.0e (at %zu: got %.7g ref %.7g)", what, worst, tol, wi,
                    (double)got[wi], (double)ref[wi]);
}

/* ---------------------------------------------------------------- parity with numpy */
static void test_reference_cases(void) {
    char **paths;
    int nc = tu_list_cases("fusion", &paths);
    tu_check(nc >= 4, "fusion reference cases found (%d; run tests/ref/gen_all.py --only ref_fusion)", nc);
    for (int c = 0; c < nc; c++) {
        fsd_safetensors st;
        if (fsd_st_open(&st, paths[c]) != FSD_OK) {
            tu_check(0, "%s: %s", paths[c], fsd_error_message());
            continue;
        }
        const char *name = strrchr(paths[c], '/') ? strrchr(paths[c], '/') + 1 : paths[c];
        int64_t shp[4];
        tu_shape(&st, "a", shp);
        int h = (int)shp[0], w = (int)shp[1];
        size_t n = (size_t)w * h;
        float *a = tu_get(&st, "a", NULL), *b = tu_get(&st, "b", NULL);
        float *ya = tu_get(&st, "y_average", NULL), *yl = tu_get(&st, "y_laplacian", NULL);
        float *yg = tu_get(&st, "y_gff", NULL), *yd = tu_get(&st, "y_gradient", NULL);
        float *out = tu_zeros(n);
        int levels = tu_meta_int(&st, "lap_levels", 0);
        double lam = tu_meta_double(&st, "lambda", 0.05);
        char what[256];
        if (a && b && ya && yl && yg && yd) {
            if (levels == 0)
                tu_check(fsd_laplacian_default_levels(w, h) == tu_meta_int(&st, "lap_levels_used", -1),
                         "%s: default laplacian levels %d for %dx%d", name, fsd_laplacian_default_levels(w, h), w, h);
            tu_check(fsd_fuse_average(a, b, w, h, out) == FSD_OK, "%s: average runs", name);
            snprintf(what, sizeof what, "%s %dx%d average", name, w, h);
            check_maxabs(what, out, ya, n, 1e-3);

            tu_check(fsd_fuse_laplacian(a, b, w, h, levels, out) == FSD_OK, "%s: laplacian runs", name);
            snprintf(what, sizeof what, "%s %dx%d laplacian (levels %d)", name, w, h,
                     levels ? levels : fsd_laplacian_default_levels(w, h));
            check_maxabs(what, out, yl, n, 1e-3);

            tu_check(fsd_fuse_gff(a, b, w, h, NULL, out) == FSD_OK, "%s: gff runs", name);
            snprintf(what, sizeof what, "%s %dx%d gff", name, w, h);
            check_maxabs(what, out, yg, n, 1e-3);

            tu_check(fsd_fuse_gradient(a, b, w, h, lam, 0, out) == FSD_OK, "%s: gradient runs", name);
            snprintf(what, sizeof what, "%s %dx%d gradient (raw solution, lambda %g)", name, w, h, lam);
            check_maxabs(what, out, yd, n, 1e-3);
            /* the method itself clips to 0..255 */
            tu_check(fsd_fuse_gradient(a, b, w, h, lam, 1, out) == FSD_OK, "%s: gradient clipped runs", name);
            for (size_t i = 0; i < n; i++) yd[i] = fminf(fmaxf(yd[i], 0.0f), 255.0f);
            snprintf(what, sizeof what, "%s %dx%d gradient (clipped)", name, w, h);
            check_maxabs(what, out, yd, n, 1e-3);

            /* dispatcher with default parameters = the direct calls */
            float *o2 = tu_zeros(n);
            if (levels == 0) {
                fsd_fuse_plane(FSD_FUSE_LAPLACIAN, NULL, a, b, w, h, o2);
                snprintf(what, sizeof what, "%s dispatch laplacian", name);
                check_maxabs(what, o2, yl, n, 1e-3);
            }
            fsd_fuse_plane(FSD_FUSE_GFF, NULL, a, b, w, h, o2);
            snprintf(what, sizeof what, "%s dispatch gff", name);
            check_maxabs(what, o2, yg, n, 1e-3);
            fsd_free(o2);
        }
        fsd_free(a); fsd_free(b); fsd_free(ya); fsd_free(yl); fsd_free(yg); fsd_free(yd); fsd_free(out);
        fsd_st_close(&st);
    }
    tu_free_list(paths, nc);
}

/* ---------------------------------------------------------------- DCT */
static void test_dct(void) {
    const int sizes[] = {1, 2, 3, 4, 5, 7, 8, 17, 64, 97, 128, 459, 623};
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        int n = sizes[si];
        fsd_dct_plan *pl;
        if (!tu_check(fsd_dct_plan_create(n, &pl) == FSD_OK, "dct plan n=%d", n)) continue;
        double *x = malloc(n * sizeof(double)), *y = malloc(n * sizeof(double)), *ref = malloc(n * sizeof(double));
        double *scr = malloc(fsd_dct_scratch(pl) * sizeof(double));
        float *r = malloc(n * sizeof(float));
        tu_fill_uniform(r, n, 100 + n, 100.0f);
        double mx = 0;
        for (int i = 0; i < n; i++) {
            x[i] = y[i] = r[i];
            mx = fmax(mx, fabs(x[i]));
        }
        for (int k = 0; k < n; k++) {
            long double s = 0;
            for (int j = 0; j < n; j++) s += (long double)x[j] * cosl(acosl(-1.0L) * (2 * j + 1) * k / (2.0L * n));
            ref[k] = (double)(s * sqrtl((k ? 2.0L : 1.0L) / n));
        }
        fsd_dct2(pl, y, scr);
        double e2 = 0, e3 = 0;
        for (int k = 0; k < n; k++) e2 = fmax(e2, fabs(y[k] - ref[k]));
        fsd_dct3(pl, y, scr);
        for (int k = 0; k < n; k++) e3 = fmax(e3, fabs(y[k] - x[k]));
        tu_check(e2 <= 1e-11 * sqrt(n) * mx, "dct2 n=%d vs direct sum: max err %.3g", n, e2);
        tu_check(e3 <= 1e-12 * mx * (1 + log2(n)), "dct3(dct2(x)) = x, n=%d: max err %.3g", n, e3);
        free(x); free(y); free(ref); free(scr); free(r);
        fsd_dct_plan_free(pl);
    }
    fsd_dct_plan *pl;
    tu_check(fsd_dct_plan_create(0, &pl) != FSD_OK, "dct plan n=0 rejected");
}

/* (lambda + L) u, L = D^T D with forward differences, Neumann */
static void apply_screened(const double *u, int w, int h, double lam, double *out) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            double s = lam * u[i];
            if (x > 0) s += u[i] - u[i - 1];
            if (x + 1 < w) s += u[i] - u[i + 1];
            if (y > 0) s += u[i] - u[i - w];
            if (y + 1 < h) s += u[i] - u[i + w];
            out[i] = s;
        }
}

static void test_poisson(void) {
    const int dims[][2] = {{1, 1}, {1, 7}, {37, 23}, {64, 32}, {623, 459}};
    for (size_t di = 0; di < sizeof dims / sizeof *dims; di++) {
        int w = dims[di][0], h = dims[di][1];
        size_t n = (size_t)w * h;
        double *f = malloc(n * sizeof(double)), *u = malloc(n * sizeof(double)), *r = malloc(n * sizeof(double));
        float *t = malloc(n * sizeof(float));
        tu_fill_uniform(t, n, 7 + di, 50.0f);
        double mf = 0;
        for (size_t i = 0; i < n; i++) {
            f[i] = t[i];
            mf = fmax(mf, fabs(f[i]));
        }
        for (int li = 0; li < 2; li++) {
            double lam = li ? 1.0 : 0.01;
            int ok = fsd_poisson_neumann_solve(f, w, h, lam, u) == FSD_OK;
            apply_screened(u, w, h, lam, r);
            double e = 0;
            for (size_t i = 0; i < n; i++) e = fmax(e, fabs(r[i] - f[i]));
            tu_check(ok && e <= 1e-9 * mf, "screened poisson %dx%d lambda %g: residual %.3g", w, h, lam, e);
        }
        free(f); free(u); free(r); free(t);
    }
    double f1 = 1, u1;
    tu_check(fsd_poisson_neumann_solve(&f1, 1, 1, 0.0, &u1) == FSD_ERR_INVALID, "lambda 0 rejected");
}

/* smooth synthetic test pattern with edges, 0..255 */
static void pattern(float *x, int w, int h, int kind) {
    for (int y = 0; y < h; y++)
        for (int i = 0; i < w; i++) {
            double v;
            if (kind == 0) v = 128 + 100 * sin(i * 0.05) * cos(y * 0.031) + ((i / 40 + y / 40) % 2 ? 20 : -20);
            else v = (hypot(i - w * 0.4, y - h * 0.6) < h * 0.2 ? 230 : 30) + 10 * sin(i * 0.3);
            x[(size_t)y * w + i] = (float)floor(v);
        }
}

static void test_gradient_properties(void) {
    int w = 623, h = 459;
    size_t n = (size_t)w * h;
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float)), *o = malloc(n * sizeof(float));
    pattern(a, w, h, 0);
    pattern(b, w, h, 1);
    double lam = 0.05;
    /* raw solution of the fused problem satisfies the screened Poisson equation */
    int ok = fsd_fuse_gradient(a, b, w, h, lam, 0, o) == FSD_OK;
    double *u = malloc(n * sizeof(double)), *r = malloc(n * sizeof(double)), *gx = malloc(n * sizeof(double)),
           *gy = malloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) u[i] = o[i];
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            double ax = x + 1 < w ? a[i + 1] - a[i] : 0, ay = y + 1 < h ? a[i + w] - a[i] : 0;
            double bx = x + 1 < w ? b[i + 1] - b[i] : 0, by = y + 1 < h ? b[i + w] - b[i] : 0;
            int ub = bx * bx + by * by > ax * ax + ay * ay;
            gx[i] = ub ? bx : ax;
            gy[i] = ub ? by : ay;
        }
    /* residual lambda (u - u0) - div(grad u - g) */
    double e = 0, scale = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            double px = (x + 1 < w ? u[i + 1] - u[i] : 0) - gx[i];
            double pxl = x ? (u[i] - u[i - 1]) - gx[i - 1] : 0;
            double py = (y + 1 < h ? u[i + w] - u[i] : 0) - gy[i];
            double pyu = y ? (u[i] - u[i - w]) - gy[i - w] : 0;
            double u0 = fmax(a[i], b[i]);
            double res = lam * (u[i] - u0) - ((px - pxl) + (py - pyu));
            e = fmax(e, fabs(res));
            scale = fmax(scale, fabs(lam * u0));
        }
    /* u is stored as float32 (rel. 6e-8 of ~255), the 5-point stencil multiplies that by ~8 */
    tu_check(ok && e <= 2e-4, "gradient fusion %dx%d: screened Poisson residual %.3g <= 2e-4 (rhs scale %.3g)", w, h,
             e, scale);
    /* A with itself */
    fsd_fuse_gradient(a, a, w, h, lam, 1, o);
    double ea = 0;
    for (size_t i = 0; i < n; i++) ea = fmax(ea, fabs(o[i] - a[i]));
    tu_check(ea <= 0.5, "gradient fusion of A with itself = A: max err %.3g <= 0.5", ea);
    /* constant pairs: equal constants, and two constants (u0 = the brighter) */
    for (size_t i = 0; i < n; i++) a[i] = b[i] = 100.0f;
    fsd_fuse_gradient(a, b, w, h, lam, 1, o);
    double ec = 0;
    for (size_t i = 0; i < n; i++) ec = fmax(ec, fabs(o[i] - 100.0));
    tu_check(ec <= 1e-3, "gradient fusion of a constant pair = constant: max err %.3g", ec);
    for (size_t i = 0; i < n; i++) b[i] = 180.0f;
    fsd_fuse_gradient(a, b, w, h, lam, 1, o);
    ec = 0;
    for (size_t i = 0; i < n; i++) ec = fmax(ec, fabs(o[i] - 180.0));
    tu_check(ec <= 1e-3, "gradient fusion of constants 100 and 180 = 180 (brighter): max err %.3g", ec);
    tu_check(fsd_fuse_gradient(a, b, w, h, -1.0, 1, o) == FSD_ERR_INVALID, "gradient fusion: lambda < 0 rejected");
    free(a); free(b); free(o); free(u); free(r); free(gx); free(gy);
}

/* Fusing an image with itself returns it (all methods reconstruct exactly). */
static void test_identity(void) {
    int w = 97, h = 75;
    size_t n = (size_t)w * h;
    float *a = malloc(n * sizeof(float)), *o = malloc(n * sizeof(float));
    pattern(a, w, h, 0);
    for (int m = 0; m < FSD_FUSE_COUNT; m++) {
        fsd_fuse_plane((fsd_fuse_method)m, NULL, a, a, w, h, o);
        double e = 0;
        for (size_t i = 0; i < n; i++) e = fmax(e, fabs(o[i] - a[i]));
        tu_check(e <= (m == FSD_FUSE_GRADIENT || m == FSD_FUSE_AUTO ? 0.5 : 1e-3), "%s: fuse(A, A) = A, max err %.3g",
                 fsd_fuse_method_name((fsd_fuse_method)m), e);
    }
    /* laplacian with explicit levels on a tiny image (borders reflect more than once) */
    for (int lv = 1; lv <= 5; lv++) {
        int ok = fsd_fuse_laplacian(a, a, 5, 3, lv, o) == FSD_OK;
        double e = 0;
        for (int i = 0; i < 5; i++)
            for (int y = 0; y < 3; y++) e = fmax(e, fabs(o[y * 5 + i] - a[y * 5 + i]));
        tu_check(ok && e <= 1e-3, "laplacian 5x3 levels %d: fuse(A, A) = A, err %.3g", lv, e);
    }
    tu_check(fsd_fuse_laplacian(a, a, w, h, 13, o) == FSD_ERR_INVALID, "laplacian: 13 levels rejected");
    free(a); free(o);
}

/* ---------------------------------------------------------------- colour wrapper */
static void test_colour(void) {
    int w = 40, h = 30;
    size_t n = (size_t)w * h;
    fsd_image rgb, grey, rgb2;
    fsd_image_alloc(&rgb, w, h, 3);
    fsd_image_alloc(&rgb2, w, h, 3);
    fsd_image_alloc(&grey, w, h, 1);
    pattern(grey.data, w, h, 1);
    pattern(rgb.data, w, h, 0);
    for (size_t i = 0; i < n; i++) {
        rgb.data[n + i] = (float)((i * 7) % 256);
        rgb.data[2 * n + i] = (float)((i * 13 + 50) % 256);
        rgb2.data[i] = (float)((i * 3) % 256);
        rgb2.data[n + i] = 200.0f;
        rgb2.data[2 * n + i] = (float)((i * 5) % 256);
    }
    fsd_image ycc_src, ycc_src2;
    fsd_image_rgb_to_ycbcr(&rgb, &ycc_src);
    fsd_image_rgb_to_ycbcr(&rgb2, &ycc_src2);
    float *py = malloc(n * sizeof(float));
    for (int order = 0; order < 2; order++) {
        fsd_image out;
        const fsd_image *a = order ? &rgb : &grey, *b = order ? &grey : &rgb;
        fsd_status s = fsd_fuse_images_ycbcr(FSD_FUSE_GFF, NULL, a, b, &out);
        tu_check(s == FSD_OK && out.c == 3 && out.w == w && out.h == h, "ycbcr wrapper (%s first): 3 planes",
                 order ? "rgb" : "grey");
        if (s) continue;
        tu_check(!memcmp(out.data + n, ycc_src.data + n, 2 * n * sizeof(float)),
                 "ycbcr wrapper (%s first): Cb, Cr of the colour source kept bit for bit", order ? "rgb" : "grey");
        fsd_fuse_plane(FSD_FUSE_GFF, NULL, order ? ycc_src.data : grey.data, order ? grey.data : ycc_src.data, w, h,
                       py);
        tu_check(!memcmp(out.data, py, n * sizeof(float)), "ycbcr wrapper (%s first): Y = plane fusion of Y and grey",
                 order ? "rgb" : "grey");
        fsd_image_free(&out);
        /* RGB output: back to YCbCr gives the source chroma (no clipping in the float path) */
        fsd_image o2, back;
        s = fsd_fuse_images(FSD_FUSE_GFF, NULL, a, b, &o2);
        if (tu_check(s == FSD_OK && o2.c == 3, "rgb wrapper returns RGB")) {
            fsd_image_rgb_to_ycbcr(&o2, &back);
            check_maxabs("rgb wrapper: chroma after RGB round trip", back.data + n, ycc_src.data + n, 2 * n, 1e-3);
            check_maxabs("rgb wrapper: luma after RGB round trip", back.data, py, n, 1e-3);
            fsd_image_free(&back);
            fsd_image_free(&o2);
        }
    }
    /* both RGB: chroma averaged */
    fsd_image out;
    if (tu_check(fsd_fuse_images_ycbcr(FSD_FUSE_AVERAGE, NULL, &rgb, &rgb2, &out) == FSD_OK, "two RGB sources")) {
        double e = 0;
        for (size_t i = 0; i < 2 * n; i++)
            e = fmax(e, fabs(out.data[n + i] - 0.5 * (ycc_src.data[n + i] + ycc_src2.data[n + i])));
        tu_check(e <= 1e-4, "two RGB sources: chroma averaged (err %.3g)", e);
        fsd_image_free(&out);
    }
    /* both grey: grey */
    if (tu_check(fsd_fuse_images(FSD_FUSE_LAPLACIAN, NULL, &grey, &grey, &out) == FSD_OK && out.c == 1,
                 "two grey sources give grey")) {
        check_maxabs("grey + itself = itself", out.data, grey.data, n, 1e-3);
        fsd_image_free(&out);
    }
    /* size mismatch names both sizes */
    fsd_image small;
    fsd_image_alloc(&small, w - 1, h, 1);
    fsd_status s = fsd_fuse_images(FSD_FUSE_AVERAGE, NULL, &grey, &small, &out);
    tu_check(s == FSD_ERR_INVALID && strstr(fsd_error_message(), "40x30") && strstr(fsd_error_message(), "39x30"),
             "size mismatch: '%s'", fsd_error_message());
    /* SR then fuse: x2 of 20x15 = 40x30 matches 40x30 at x1; 39x30 x1 does not */
    fsd_image lr;
    fsd_image_alloc(&lr, 20, 15, 1);
    for (size_t i = 0; i < 300; i++) lr.data[i] = (float)(i % 256);
    s = fsd_fuse_images_upscaled(FSD_FUSE_AVERAGE, NULL, &lr, 2.0, &rgb, 1.0, &out);
    tu_check(s == FSD_OK && out.w == 40 && out.h == 30 && out.c == 3, "upscaled fusion x2 + x1 -> 40x30 RGB");
    if (!s) fsd_image_free(&out);
    s = fsd_fuse_images_upscaled(FSD_FUSE_AVERAGE, NULL, &lr, 2.0, &small, 1.0, &out);
    tu_check(s == FSD_ERR_INVALID, "upscaled sizes differ: '%s'", fsd_error_message());
    fsd_image_free(&lr);
    fsd_image_free(&small);
    fsd_image_free(&rgb);
    fsd_image_free(&rgb2);
    fsd_image_free(&grey);
    fsd_image_free(&ycc_src);
    fsd_image_free(&ycc_src2);
    free(py);
}

static void test_methods(void) {
    fsd_fuse_method m;
    tu_check(fsd_fuse_method_parse("gff", &m) == FSD_OK && m == FSD_FUSE_GFF, "parse 'gff'");
    fsd_status s = fsd_fuse_method_parse("pca", &m);
    tu_check(s == FSD_ERR_INVALID && strstr(fsd_error_message(), "average, laplacian, gff, gradient, auto"),
             "unknown method lists the valid ones: '%s'", fsd_error_message());
    float x = 1;
    tu_check(fsd_fuse_average(&x, &x, 0, 1, &x) == FSD_ERR_INVALID, "zero width rejected");
    tu_check(fsd_fuse_plane(FSD_FUSE_AUTO, NULL, &x, &x, 0, 1, &x) == FSD_ERR_INVALID, "auto: zero width rejected");
}

/* auto = gradient when max(A, B) < 4 on >= 6 % of the pixels, laplacian otherwise; the choice
 * is the same as calling that method, on both sides of the threshold and at it. */
static void test_auto(void) {
    int w = 80, h = 50;
    size_t n = (size_t)w * h;
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float)), *o = malloc(n * sizeof(float)),
          *r = malloc(n * sizeof(float));
    pattern(a, w, h, 0);
    pattern(b, w, h, 1);
    tu_check(fsd_fuse_dark_share(a, b, n) == 0.0, "auto: the patterns have no dark pixel");
    tu_check(fsd_fuse_auto_pick(0.0599) == FSD_FUSE_LAPLACIAN && fsd_fuse_auto_pick(0.06) == FSD_FUSE_GRADIENT,
             "auto: threshold at 0.06");
    /* darken rows from the top: k rows of w pixels, both sources below 4 (one at 3.9, one at 0) */
    const int rows[3] = {2, 4, 10}; /* 2/50 = 0.04 -> laplacian, 4/50 = 0.08 and 0.20 -> gradient */
    for (int t = 0; t < 3; t++) {
        for (size_t i = 0; i < (size_t)rows[t] * w; i++) a[i] = 3.9f, b[i] = 0.0f;
        double d = fsd_fuse_dark_share(a, b, n);
        fsd_fuse_method want = t == 0 ? FSD_FUSE_LAPLACIAN : FSD_FUSE_GRADIENT;
        fsd_status s = fsd_fuse_plane(FSD_FUSE_AUTO, NULL, a, b, w, h, o);
        fsd_fuse_plane(want, NULL, a, b, w, h, r);
        double e = 0;
        for (size_t i = 0; i < n; i++) e = fmax(e, fabs(o[i] - r[i]));
        tu_check(!s && fabs(d - rows[t] / 50.0) < 1e-12 && e == 0.0, "auto with dark share %.2f = %s (max diff %g)",
                 d, fsd_fuse_method_name(want), e);
    }
    a[0] = 4.0f; /* 4 is not dark */
    tu_check(fabs(fsd_fuse_dark_share(a, b, n) - (10.0 * w - 1) / n) < 1e-12, "auto: 4 grey levels are not dark");
    free(a), free(b), free(o), free(r);
}

int main(void) {
    test_methods();
    test_reference_cases();
    test_dct();
    test_poisson();
    test_gradient_properties();
    test_identity();
    test_auto();
    test_colour();
    return tu_summary();
}
