/* plot: charts rendered into images and checked pixel by pixel. Geometry (data -> pixel, frame,
 * series through the expected pixels), log axes (decades equally spaced, major/minor tick marks at
 * the right columns), gaps (NaN/Inf, non-positive on log), degenerate data (empty, one point, flat),
 * decimation of 1e6 points against the full polyline, panels, legend placement, dashes, the 5x7 font,
 * the EMA helper, PNG round trip and refusal of bad arguments. No reference data needed.
 * Tolerances are stated at each check. */
#include "fsdiff/plot.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- helpers */

static const unsigned char RED[3] = {255, 0, 0}, BLUE[3] = {0, 0, 255}, BLACK[3] = {0, 0, 0};

static float at(const fsd_image *im, int x, int y, int ch) {
    if (x < 0 || y < 0 || x >= im->w || y >= im->h) return -1;
    return im->data[(size_t)ch * im->w * im->h + (size_t)y * im->w + x];
}

static int is_white(const fsd_image *im, int x, int y) {
    return at(im, x, y, 0) == 255 && at(im, x, y, 1) == 255 && at(im, x, y, 2) == 255;
}

static int is_dark(const fsd_image *im, int x, int y) {
    return at(im, x, y, 0) >= 0 && at(im, x, y, 0) < 80 && at(im, x, y, 1) < 80 && at(im, x, y, 2) < 80;
}

/* Pixel within `tol` (every channel) of rgb. */
static int is_col(const fsd_image *im, int x, int y, const unsigned char rgb[3], float tol) {
    for (int c = 0; c < 3; c++)
        if (!(fabsf(at(im, x, y, c) - rgb[c]) <= tol)) return 0;
    return 1;
}

/* Some pixel within `rad` px (Chebyshev) of continuous point (px, py) has colour rgb +- tol. */
static int col_near(const fsd_image *im, double px, double py, const unsigned char rgb[3], float tol, int rad) {
    int cx = (int)floor(px), cy = (int)floor(py);
    for (int y = cy - rad; y <= cy + rad; y++)
        for (int x = cx - rad; x <= cx + rad; x++)
            if (is_col(im, x, y, rgb, tol)) return 1;
    return 0;
}

static fsd_plot *mk(int w, int h) {
    fsd_plot *p = NULL;
    if (fsd_plot_create(&p, w, h) != FSD_OK) tu_check(0, "create %dx%d: %s", w, h, fsd_error_message());
    return p;
}

static int render(fsd_plot *p, fsd_image *im) {
    fsd_status s = fsd_plot_render(p, im);
    return tu_check(s == FSD_OK, "render: %s", s ? fsd_error_message() : "ok");
}

static fsd_plot_style solid(const unsigned char rgb[3], float width) {
    fsd_plot_style st = {.color = -1, .width = width};
    memcpy(st.rgb, rgb, 3);
    return st;
}

/* ---------------------------------------------------------------- geometry */

static void test_geometry(void) {
    printf("# geometry: diagonal red line on [0,10]^2, grid lines off\n");
    fsd_plot *p = mk(400, 300);
    if (!p) return;
    fsd_plot_xlim(p, 0, 10);
    fsd_plot_ylim(p, 0, 10);
    fsd_plot_grid_lines(p, 0);
    fsd_plot_axis_labels(p, "x", "y");
    double xs[2] = {0, 10}, ys[2] = {0, 10};
    fsd_plot_style st = solid(RED, 2);
    fsd_plot_series(p, NULL, xs, ys, 2, &st);
    fsd_image im;
    if (!render(p, &im)) goto out;
    tu_check(im.w == 400 && im.h == 300 && im.c == 3, "image is 400x300 RGB (%dx%dx%d)", im.w, im.h, im.c);
    double x0, y0, x1, y1, px, py;
    fsd_plot_area(p, 0, &x0, &y0, &x1, &y1);
    tu_check(x0 > 0 && y0 > 0 && x1 < 400 && y1 < 300 && x1 - x0 > 200 && y1 - y0 > 150,
             "plot area inside the image and most of it (%g,%g)-(%g,%g)", x0, y0, x1, y1);
    /* the mapping, against the area alone: limits land on the area's edges, exact */
    fsd_plot_map(p, 0, 0, 0, &px, &py);
    tu_check(px == x0 && py == y1, "map(0,0) = bottom-left corner (%g,%g)", px, py);
    fsd_plot_map(p, 0, 10, 10, &px, &py);
    tu_check(px == x1 && py == y0, "map(10,10) = top-right corner (%g,%g)", px, py);
    fsd_plot_map(p, 0, 5, 2.5, &px, &py);
    tu_check(fabs(px - 0.5 * (x0 + x1)) < 1e-9 && fabs(py - (y1 - 0.25 * (y1 - y0))) < 1e-9,
             "map(5,2.5) at the area's centre column, a quarter up (%g,%g)", px, py);
    /* background */
    tu_check(is_white(&im, 0, 0) && is_white(&im, 399, 299) && is_white(&im, 399, 0), "image corners white");
    fsd_plot_map(p, 0, 2, 8, &px, &py);
    tu_check(is_white(&im, (int)px, (int)py), "plot area away from the line is white (pixel at data (2,8))");
    /* frame just outside the area */
    int my = (int)(0.5 * (y0 + y1)), mx = (int)(0.5 * (x0 + x1));
    tu_check(is_dark(&im, (int)x0 - 1, my) && is_dark(&im, (int)x1, my), "left/right axis lines dark at mid height");
    tu_check(is_dark(&im, mx, (int)y1) && is_dark(&im, mx, (int)y0 - 1), "bottom/top axis lines dark at mid width");
    /* the series passes through the expected pixels: within 1 px, colour within 30 of pure red */
    int ok = 1, bad = -1;
    for (int k = 1; k < 20; k++) {
        double t = k * 0.5;
        fsd_plot_map(p, 0, t, t, &px, &py);
        if (!col_near(&im, px, py, RED, 30, 1)) ok = 0, bad = k;
    }
    tu_check(ok, "diagonal red (+-30) within 1 px of data (t,t), t = 0.5..9.5 (first miss at k=%d)", bad);
    /* and only there: pixels 4 px off the line, perpendicular, are white */
    ok = 1;
    for (int k = 2; k < 19; k++) {
        fsd_plot_map(p, 0, k * 0.5, k * 0.5, &px, &py);
        double ux = (x1 - x0), uy = -(y1 - y0), ul = hypot(ux, uy); /* direction of the line on screen */
        double nx = -uy / ul * 4, ny = ux / ul * 4;
        if (!is_white(&im, (int)floor(px + nx), (int)floor(py + ny)) ||
            !is_white(&im, (int)floor(px - nx), (int)floor(py - ny)))
            ok = 0;
    }
    tu_check(ok, "pixels 4 px either side of the 2 px line are white");
    /* tick labels left of the y axis: ink in the margin band between the axis label and the ticks */
    int ink = 0;
    for (int y = (int)y0; y < (int)y1; y++)
        for (int x = 12; x < (int)x0 - 6; x++) ink += is_dark(&im, x, y);
    tu_check(ink > 30, "y tick labels drawn (%d dark pixels in the left margin)", ink);
    fsd_image_free(&im);
out:
    fsd_plot_free(p);
}

/* ---------------------------------------------------------------- log axes */

static void test_log_axis(void) {
    printf("# log x axis on [1, 1000]: markers at 10 and 100, ticks\n");
    fsd_plot *p = mk(500, 300);
    if (!p) return;
    fsd_plot_log_x(p, 1);
    fsd_plot_xlim(p, 1, 1000);
    fsd_plot_ylim(p, 0, 2);
    fsd_plot_grid_lines(p, 0);
    fsd_plot_font_scale(p, 1);
    double xs[2] = {10, 100}, ys[2] = {1, 1};
    fsd_plot_style st = solid(BLUE, 1);
    st.marker = FSD_MARKER_SQUARE;
    st.marker_size = 4;
    st.no_line = 1;
    fsd_plot_series(p, NULL, xs, ys, 2, &st);
    fsd_image im;
    if (!render(p, &im)) goto out;
    double x0, y0, x1, y1, p1, p10, p100, p1000, p15, p20, q;
    fsd_plot_area(p, 0, &x0, &y0, &x1, &y1);
    fsd_plot_map(p, 0, 1, 1, &p1, &q);
    fsd_plot_map(p, 0, 10, 1, &p10, &q);
    fsd_plot_map(p, 0, 100, 1, &p100, &q);
    fsd_plot_map(p, 0, 1000, 1, &p1000, &q);
    fsd_plot_map(p, 0, 15, 1, &p15, &q);
    fsd_plot_map(p, 0, 20, 1, &p20, &q);
    double dec = (x1 - x0) / 3;
    tu_check(fabs((p10 - p1) - dec) < 1e-6 && fabs((p100 - p10) - dec) < 1e-6 && fabs((p1000 - p100) - dec) < 1e-6,
             "decades 1-10-100-1000 each a third of the width (%.4f %.4f %.4f, want %.4f; tol 1e-6 px)", p10 - p1,
             p100 - p10, p1000 - p100, dec);
    tu_check(fabs((p20 - p10) - dec * log10(2)) < 1e-6, "10 -> 20 is log10(2) of a decade");
    /* markers drawn at those columns (pure blue +-10 within 1 px) */
    tu_check(col_near(&im, p10, q, BLUE, 10, 1) && col_near(&im, p100, q, BLUE, 10, 1),
             "square markers at x = 10 and x = 100");
    tu_check(is_white(&im, (int)floor(0.5 * (p10 + p100)), (int)floor(q)), "no line between them (no_line)");
    /* tick marks below the frame (frame row y1, ticks y1+1 .. y1+4; minor ticks half as long) */
    int r_major = (int)y1 + 3, r_both = (int)y1 + 1;
    tu_check(is_dark(&im, (int)floor(p10), r_major) && is_dark(&im, (int)floor(p100), r_major),
             "major tick marks at 10 and 100 reach row y1+3");
    tu_check(is_dark(&im, (int)floor(p20), r_both) && !is_dark(&im, (int)floor(p20), r_major),
             "minor tick at 20: at row y1+1, not at y1+3");
    tu_check(is_white(&im, (int)floor(p15), r_both), "no tick at 15");
    fsd_image_free(&im);

    printf("# log y with non-positive values: skipped as gaps\n");
    fsd_plot_free(p);
    p = mk(300, 200);
    if (!p) return;
    fsd_plot_log_y(p, 1);
    double ly[6] = {1, -1, 0, 10, 100, 1000};
    fsd_plot_series(p, "y", NULL, ly, 6, NULL);
    if (render(p, &im)) {
        double a0, b0, a1, b1, px, py;
        fsd_plot_area(p, 0, &a0, &b0, &a1, &b1);
        fsd_plot_map(p, 0, 0, 1, &px, &py);
        tu_check(py < b1 && py > b1 - 0.1 * (b1 - b0), "auto log range starts just below the smallest positive y");
        fsd_plot_map(p, 0, 0, -1, &px, &py);
        tu_check(isnan(py), "map of y = -1 on a log axis is NaN");
        fsd_image_free(&im);
    }
out:
    fsd_plot_free(p);
}

/* ---------------------------------------------------------------- gaps and degenerate data */

static void test_gaps(void) {
    printf("# gaps: y = 5 on x = 0..10 with NaN at x=5 and Inf at x=9\n");
    fsd_plot *p = mk(400, 300);
    if (!p) return;
    fsd_plot_xlim(p, 0, 10);
    fsd_plot_ylim(p, 0, 10);
    fsd_plot_grid_lines(p, 0);
    double xs[11], ys[11];
    for (int i = 0; i <= 10; i++) xs[i] = i, ys[i] = 5;
    ys[5] = NAN;
    ys[9] = INFINITY;
    fsd_plot_style st = solid(RED, 2);
    fsd_plot_series(p, NULL, xs, ys, 11, &st);
    fsd_image im;
    if (!render(p, &im)) goto out;
    double px, py;
    int ok = 1;
    /* segments 4-5, 5-6, 8-9, 9-10 are gone; x = 10 is left alone: a dot */
    const double on[] = {0.5, 2, 3.5, 6.5, 7.5, 10}, off[] = {4.6, 5, 5.4, 8.6, 9, 9.4};
    for (int i = 0; i < 6; i++) {
        fsd_plot_map(p, 0, on[i], 5, &px, &py);
        if (!col_near(&im, px, py, RED, 30, 1)) ok = 0;
    }
    tu_check(ok, "line drawn between valid neighbours, isolated last point as a dot");
    ok = 1;
    for (int i = 0; i < 6; i++) {
        fsd_plot_map(p, 0, off[i], 5, &px, &py);
        if (!is_white(&im, (int)floor(px), (int)floor(py))) ok = 0;
    }
    tu_check(ok, "gaps around the NaN (x 4.6..5.4) and the Inf (8.6..9.4) are white");
    fsd_image_free(&im);
    fsd_plot_free(p);

    printf("# degenerate: empty, all-NaN, a single point, a flat series, NaN x\n");
    p = mk(400, 300);
    if (!p) return;
    fsd_plot_grid_lines(p, 0);
    double nan3[3] = {NAN, NAN, NAN};
    tu_check(fsd_plot_series(p, "empty", NULL, NULL, 0, NULL) == FSD_OK, "empty series accepted");
    tu_check(fsd_plot_series(p, "nan", nan3, nan3, 3, NULL) == FSD_OK, "all-NaN series accepted");
    tu_check(fsd_plot_series(p, "bad", NULL, NULL, 3, NULL) == FSD_ERR_INVALID, "n > 0 without y refused");
    if (render(p, &im)) { /* nothing valid: default ranges */
        double px, py;
        fsd_plot_map(p, 0, 0.5, 0.5, &px, &py);
        tu_check(isfinite(px) && isfinite(py), "only empty/NaN series: renders with a default range");
        fsd_image_free(&im);
    }
    double one_x = 3, one_y = 7;
    fsd_plot_style st2 = solid(BLUE, 2);
    fsd_plot_series(p, NULL, &one_x, &one_y, 1, &st2);
    if (render(p, &im)) {
        double x0, y0, x1, y1, px, py;
        fsd_plot_area(p, 0, &x0, &y0, &x1, &y1);
        fsd_plot_map(p, 0, 3, 7, &px, &py);
        tu_check(fabs(px - 0.5 * (x0 + x1)) < 1e-6 && fabs(py - 0.5 * (y0 + y1)) < 1e-6,
                 "single point: padded range centred on it");
        tu_check(col_near(&im, px, py, BLUE, 40, 1), "single point drawn as a dot");
        fsd_image_free(&im);
    }
    fsd_plot_free(p);

    p = mk(400, 300);
    if (!p) return;
    fsd_plot_grid_lines(p, 0);
    double fy[50], fx[50];
    for (int i = 0; i < 50; i++) fx[i] = i, fy[i] = -2.5;
    fx[20] = NAN;
    fsd_plot_series(p, "flat", fx, fy, 50, &st2);
    if (render(p, &im)) {
        double x0, y0, x1, y1, px, py;
        fsd_plot_area(p, 0, &x0, &y0, &x1, &y1);
        fsd_plot_map(p, 0, 10, -2.5, &px, &py);
        tu_check(fabs(py - 0.5 * (y0 + y1)) < 1e-6, "all-equal y: the value sits mid-height (range padded)");
        tu_check(col_near(&im, px, py, BLUE, 40, 1), "flat line drawn");
        fsd_plot_map(p, 0, 20, -2.5, &px, &py);
        tu_check(is_white(&im, (int)floor(px), (int)floor(py)), "NaN x makes a gap too");
        fsd_image_free(&im);
    }
out:
    fsd_plot_free(p);
}

static void test_extremes(void) {
    printf("# extreme values: far outside fixed limits, huge and tiny ranges\n");
    fsd_plot *p = mk(300, 200);
    if (!p) return;
    fsd_plot_xlim(p, 0, 1);
    fsd_plot_ylim(p, 0, 1);
    fsd_plot_grid_lines(p, 0);
    double xs[6] = {-1e300, 0.25, 1e300, 0.5, 1e308, 0.75}, ys[6] = {0.5, 0.5, -1e300, 0.5, 1e308, 0.5};
    fsd_plot_style st = solid(RED, 2);
    st.marker = FSD_MARKER_DIAMOND;
    fsd_plot_series(p, NULL, xs, ys, 6, &st);
    fsd_plot_hline(p, 1e300, NULL, NULL);
    fsd_plot_vline(p, NAN, NULL, NULL);
    fsd_image im;
    if (render(p, &im)) {
        double px, py;
        fsd_plot_map(p, 0, 0.1, 0.5, &px, &py);
        tu_check(col_near(&im, px, py, RED, 30, 1), "segment from x = -1e300 clipped into view at x = 0.1");
        fsd_plot_map(p, 0, 0.75, 0.5, &px, &py);
        tu_check(col_near(&im, px, py, RED, 30, 1), "marker at (0.75, 0.5) drawn");
        fsd_image_free(&im);
    }
    fsd_plot_free(p);
    /* automatic ranges: 1e307 spread (finite span) renders; +-1e308 (span overflows) is refused */
    p = mk(300, 200);
    if (!p) return;
    double big[3] = {0, 5e307, 1e307}, tiny[3] = {1e-300, 1.5e-300, 2e-300}, same[3] = {1e15, 1e15 + 1, 1e15};
    fsd_plot_series(p, NULL, NULL, big, 3, NULL);
    tu_check(render(p, &im), "y over 0..5e307 renders");
    fsd_image_free(&im);
    fsd_plot_free(p);
    p = mk(300, 200);
    if (!p) return;
    fsd_plot_series(p, NULL, NULL, tiny, 3, NULL);
    fsd_plot_panel(p, 0);
    tu_check(render(p, &im), "y over 1e-300..2e-300 renders");
    fsd_image_free(&im);
    fsd_plot_free(p);
    p = mk(300, 200);
    if (!p) return;
    fsd_plot_series(p, NULL, NULL, same, 3, NULL);
    tu_check(render(p, &im), "y = 1e15 +- 1 renders");
    fsd_image_free(&im);
    fsd_plot_free(p);
    p = mk(300, 200);
    if (!p) return;
    double huge[2] = {-1e308, 1e308};
    fsd_plot_series(p, NULL, NULL, huge, 2, NULL);
    fsd_status s = fsd_plot_render(p, &im);
    tu_check(s == FSD_ERR_INVALID, "y over +-1e308 refused: %s", fsd_error_message());
    if (s == FSD_OK) fsd_image_free(&im);
    fsd_plot_free(p);
}

/* ---------------------------------------------------------------- 1e6 points */

/* Per plot-area column: first and last row where the pixel is clearly the series colour (blue: red
 * channel < 128). -1 when the column has none. */
static void col_extent(const fsd_image *im, int x0, int y0, int x1, int y1, int *top, int *bot) {
    for (int x = x0; x < x1; x++) {
        top[x - x0] = bot[x - x0] = -1;
        for (int y = y0; y < y1; y++)
            if (at(im, x, y, 0) < 128) {
                if (top[x - x0] < 0) top[x - x0] = y;
                bot[x - x0] = y;
            }
    }
}

static void test_million(void) {
    printf("# 1e6 points: per-column decimation vs every segment drawn\n");
    const size_t n = 1000000;
    double *y = malloc(n * sizeof(double));
    if (!tu_check(y != NULL, "alloc")) return;
    fsd_rng r = {7, 3};
    for (size_t i = 0; i < n; i++) {
        double t = (double)i / n;
        y[i] = sin(2 * M_PI * 3 * t) + 0.3 * (fsd_rng_uniform1(&r, i) - 0.5) + (i == n / 2 ? 3 : 0); /* one spike */
        if (i % 99991 == 0) y[i] = NAN;
    }
    fsd_plot *p = mk(640, 360);
    fsd_image a = {0}, b = {0};
    int *ta = NULL, *ba = NULL, *tb = NULL, *bb = NULL;
    if (!p) goto out;
    fsd_plot_grid_lines(p, 0);
    fsd_plot_style st = solid(BLUE, 1);
    fsd_plot_series(p, NULL, NULL, y, n, &st);
    double t0 = fsd_time_seconds();
    if (!render(p, &a)) goto out;
    double t1 = fsd_time_seconds();
    fsd_plot_decimate(p, 0);
    if (!render(p, &b)) goto out;
    double t2 = fsd_time_seconds();
    printf("#   decimated %.3f s, every segment %.3f s (not checked)\n", t1 - t0, t2 - t1);
    double x0, y0, x1, y1;
    fsd_plot_area(p, 0, &x0, &y0, &x1, &y1);
    int w = (int)(x1 - x0);
    ta = malloc(w * sizeof(int)), ba = malloc(w * sizeof(int)), tb = malloc(w * sizeof(int)), bb = malloc(w * sizeof(int));
    col_extent(&a, (int)x0, (int)y0, (int)x1, (int)y1, ta, ba);
    col_extent(&b, (int)x0, (int)y0, (int)x1, (int)y1, tb, bb);
    double pa, pb, q;
    fsd_plot_map(p, 0, 0, 0, &pa, &q);
    fsd_plot_map(p, 0, (double)(n - 1), 0, &pb, &q);
    int want_cols = (int)floor(pb) - (int)floor(pa) + 1; /* columns the data spans */
    int worst = 0, empty_mismatch = 0, cols = 0;
    for (int i = 0; i < w; i++) {
        if ((ta[i] < 0) != (tb[i] < 0)) {
            empty_mismatch++;
            continue;
        }
        if (ta[i] < 0) continue;
        cols++;
        int d = abs(ta[i] - tb[i]) > abs(ba[i] - bb[i]) ? abs(ta[i] - tb[i]) : abs(ba[i] - bb[i]);
        if (d > worst) worst = d;
    }
    tu_check(cols >= want_cols - 1 && cols <= want_cols + 1 && empty_mismatch == 0,
             "both renders cover the same %d columns (data spans %d, %d disagree)", cols, want_cols, empty_mismatch);
    tu_check(worst <= 1, "per-column vertical extent of the line agrees within 1 px (worst %d px; tol 1)", worst);
    /* whole-image difference: fraction of pixels off by more than 64 levels in a channel */
    size_t hw = (size_t)a.w * a.h, big = 0;
    for (size_t i = 0; i < hw; i++)
        for (int c = 0; c < 3; c++)
            if (fabsf(a.data[c * hw + i] - b.data[c * hw + i]) > 64) {
                big++;
                break;
            }
    tu_check(big <= hw / 200, "pixels differing by > 64 levels: %zu of %zu (tol 0.5%%)", big, hw);
    /* the spike at n/2 (3 above the curve) is kept by the decimation */
    double px, py;
    fsd_plot_map(p, 0, (double)(n / 2), y[n / 2], &px, &py);
    tu_check(col_near(&a, px, py, BLUE, 100, 1), "single-sample spike survives decimation");
    fsd_image_free(&a);
    fsd_image_free(&b);

    /* a long run with x going back and forth is not decimated (same image either way) */
    printf("# long non-monotonic run: drawn in full\n");
    fsd_plot_free(p);
    p = mk(300, 200);
    if (!p) goto out;
    size_t m = 5000;
    double *xz = malloc(m * sizeof(double));
    for (size_t i = 0; i < m; i++) xz[i] = fsd_rng_uniform1(&r, n + i), y[i] = fsd_rng_uniform1(&r, 2 * n + i);
    fsd_plot_series(p, NULL, xz, y, m, NULL);
    free(xz);
    if (render(p, &a)) {
        fsd_plot_decimate(p, 0);
        if (render(p, &b)) {
            tu_check(memcmp(a.data, b.data, (size_t)a.w * a.h * 3 * sizeof(float)) == 0,
                     "identical with and without decimation (bitwise)");
        }
    }
out:
    fsd_image_free(&a);
    fsd_image_free(&b);
    free(ta), free(ba), free(tb), free(bb);
    free(y);
    fsd_plot_free(p);
}

/* ---------------------------------------------------------------- panels, legend, dashes */

static void test_panels(void) {
    printf("# 1x2 panels: red on the left, blue on the right\n");
    fsd_plot *p = mk(700, 300);
    if (!p) return;
    tu_check(fsd_plot_grid(p, 1, 2) == FSD_OK, "grid 1x2");
    fsd_plot_suptitle(p, "two panels");
    double ys[4] = {1, 3, 2, 4};
    fsd_plot_style r = solid(RED, 2), b = solid(BLUE, 2);
    fsd_plot_panel(p, 0);
    fsd_plot_title(p, "left");
    fsd_plot_series(p, NULL, NULL, ys, 4, &r);
    fsd_plot_panel(p, 1);
    fsd_plot_title(p, "right");
    fsd_plot_log_y(p, 1);
    fsd_plot_series(p, NULL, NULL, ys, 4, &b);
    fsd_image im;
    if (!render(p, &im)) goto out;
    double a0, b0, a1, b1, c0, d0, c1, d1;
    fsd_plot_area(p, 0, &a0, &b0, &a1, &b1);
    fsd_plot_area(p, 1, &c0, &d0, &c1, &d1);
    tu_check(a0 >= 0 && a1 <= 350 && c0 >= 350 && c1 <= 700, "areas in their halves ([%g,%g] and [%g,%g])", a0, a1, c0, c1);
    tu_check(b0 > 20 && d0 > 20, "panels start below the figure title");
    long red_left = 0, red_right = 0, blue_left = 0, blue_right = 0;
    for (int y = 0; y < im.h; y++)
        for (int x = 0; x < im.w; x++) {
            if (is_col(&im, x, y, RED, 40)) *(x < 350 ? &red_left : &red_right) += 1;
            if (is_col(&im, x, y, BLUE, 40)) *(x < 350 ? &blue_left : &blue_right) += 1;
        }
    tu_check(red_left > 100 && red_right == 0 && blue_right > 100 && blue_left == 0,
             "each series only in its panel (red %ld/%ld, blue %ld/%ld)", red_left, red_right, blue_left, blue_right);
    double px, py;
    fsd_plot_map(p, 1, 3, 4, &px, &py);
    tu_check(col_near(&im, px, py, BLUE, 40, 1), "right panel point (3,4) on its log axis");
    fsd_image_free(&im);
out:
    fsd_plot_free(p);
}

/* Bounding box of pixels exactly the legend frame grey (200) inside the area; 0 if none. */
static int legend_box(const fsd_image *im, double x0, double y0, double x1, double y1, int box[4]) {
    const unsigned char g[3] = {200, 200, 200};
    box[0] = box[1] = 1 << 30;
    box[2] = box[3] = -1;
    for (int y = (int)y0; y < (int)y1; y++)
        for (int x = (int)x0; x < (int)x1; x++)
            if (is_col(im, x, y, g, 0)) {
                if (x < box[0]) box[0] = x;
                if (y < box[1]) box[1] = y;
                if (x > box[2]) box[2] = x;
                if (y > box[3]) box[3] = y;
            }
    return box[2] >= 0;
}

static void test_legend(void) {
    printf("# legend: AUTO avoids the data; NONE draws none\n");
    for (int variant = 0; variant < 3; variant++) {
        fsd_plot *p = mk(400, 300);
        if (!p) return;
        fsd_plot_xlim(p, 0, 10);
        fsd_plot_ylim(p, 0, 10);
        fsd_plot_grid_lines(p, 0);
        double level = variant == 1 ? 1 : 9; /* line along the top (0, 2) or the bottom (1) */
        double xs[2] = {0, 10}, ys[2] = {level, level};
        fsd_plot_style st = solid(RED, 8);
        fsd_plot_series(p, "data", xs, ys, 2, &st);
        if (variant == 2) fsd_plot_legend(p, FSD_LEGEND_NONE);
        fsd_image im;
        if (!render(p, &im)) {
            fsd_plot_free(p);
            return;
        }
        double x0, y0, x1, y1;
        fsd_plot_area(p, 0, &x0, &y0, &x1, &y1);
        int box[4];
        int has = legend_box(&im, x0, y0, x1, y1, box);
        double mid = 0.5 * (y0 + y1);
        if (variant == 0)
            tu_check(has && box[1] > mid, "data along the top: legend box in the lower half (rows %d..%d, mid %.0f)",
                     box[1], box[3], mid);
        else if (variant == 1)
            tu_check(has && box[3] < mid, "data along the bottom: legend box in the upper half (rows %d..%d)", box[1],
                     box[3]);
        else
            tu_check(!has, "FSD_LEGEND_NONE: no legend frame");
        if (has && variant < 2) {
            int red = 0, ink = 0;
            for (int y = box[1] + 1; y < box[3]; y++)
                for (int x = box[0] + 1; x < box[2]; x++) red += is_col(&im, x, y, RED, 40), ink += is_dark(&im, x, y);
            tu_check(red > 20 && ink > 10, "legend holds a red sample line (%d px) and its label (%d dark px)", red, ink);
        }
        fsd_image_free(&im);
        fsd_plot_free(p);
    }
}

static void test_dashes(void) {
    printf("# hline: dashed vs solid\n");
    for (int dashed = 0; dashed < 2; dashed++) {
        fsd_plot *p = mk(400, 300);
        if (!p) return;
        fsd_plot_ylim(p, 0, 10);
        fsd_plot_xlim(p, 0, 10);
        fsd_plot_grid_lines(p, 0);
        fsd_plot_style st = solid(BLACK, 1);
        st.dashed = dashed;
        fsd_plot_hline(p, 5, NULL, &st);
        fsd_plot_vline(p, 2, NULL, &st);
        fsd_image im;
        if (!render(p, &im)) {
            fsd_plot_free(p);
            return;
        }
        double x0, y0, x1, y1, px, py;
        fsd_plot_area(p, 0, &x0, &y0, &x1, &y1);
        fsd_plot_map(p, 0, 2, 5, &px, &py);
        int on = 0, off = 0, row = (int)floor(py), col = (int)floor(px);
        for (int x = (int)x0; x < (int)x1; x++) {
            if (abs(x - col) <= 2) continue; /* crossing with the vline */
            if (is_dark(&im, x, row)) on++;
            else if (is_white(&im, x, row)) off++;
        }
        int total = (int)(x1 - x0) - 5;
        if (dashed)
            tu_check(on > total / 4 && off > total / 5, "dashed hline: %d dark, %d white of %d", on, off, total);
        else
            tu_check(on == total, "solid hline dark across the area (%d of %d)", on, total);
        int von = 0;
        for (int y = (int)y0; y < (int)y1; y++) von += is_dark(&im, col, y);
        tu_check(dashed ? (von > 0 && von < (int)(y1 - y0) * 9 / 10) : von == (int)(y1 - y0),
                 "vline at x = 2 %s (%d of %d rows)", dashed ? "dashed" : "solid", von, (int)(y1 - y0));
        fsd_image_free(&im);
        fsd_plot_free(p);
    }
}

/* ---------------------------------------------------------------- font */

/* Renders one string at scale s into a fresh white grey image; returns the ink count, bbox in box. */
static int ink_of(const char *text, int s, int w, int h, fsd_image *im, int box[4]) {
    fsd_image_alloc(im, w, h, 1);
    for (int i = 0; i < w * h; i++) im->data[i] = 255;
    fsd_draw_text(im, 3, 2, text, BLACK, s);
    int n = 0;
    box[0] = box[1] = 1 << 30;
    box[2] = box[3] = -1;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            if (im->data[y * w + x] != 255) {
                n++;
                if (x < box[0]) box[0] = x;
                if (y < box[1]) box[1] = y;
                if (x > box[2]) box[2] = x;
                if (y > box[3]) box[3] = y;
            }
    return n;
}

static void test_font(void) {
    printf("# font: sizes, glyph boxes, distinct glyphs, scaling, rotation, clipping\n");
    int w, h;
    fsd_text_size("ab", 1, &w, &h);
    tu_check(w == 11 && h == 9, "size of 'ab' at scale 1 is 11x9 (%dx%d)", w, h);
    fsd_text_size("a\nbcd", 2, &w, &h);
    tu_check(w == 34 && h == 38, "size of 'a\\nbcd' at scale 2 is 34x38 (%dx%d)", w, h);
    fsd_text_size("", 3, &w, &h);
    tu_check(w == 0 && h == 0, "empty text is 0x0");

    fsd_image a, b;
    int ba[4], bb[4];
    int na = ink_of("1", 1, 12, 14, &a, ba), nb = ink_of(".", 1, 12, 14, &b, bb);
    tu_check(na > 5 && nb > 0, "'1' and '.' draw ink (%d, %d px)", na, nb);
    tu_check(ba[0] >= 3 && ba[2] < 3 + 5 && ba[1] >= 2 && ba[3] < 2 + 7, "'1' ink inside its 5x7 box");
    tu_check(memcmp(a.data, b.data, 12 * 14 * sizeof(float)) != 0 && bb[1] > ba[1], "'.' differs from '1' and sits lower");
    fsd_image_free(&a);
    fsd_image_free(&b);
    ink_of("g", 1, 12, 14, &a, ba);
    tu_check(ba[3] > 2 + 6 && ba[3] <= 2 + 8, "'g' has a descender (rows to %d)", ba[3] - 2);
    fsd_image_free(&a);

    /* every printable glyph has ink and no two are the same */
    static float glyphs[95][6 * 10];
    int empty = 0, same = 0;
    for (int c = 33; c <= 126; c++) {
        char s[2] = {(char)c, 0};
        int box[4];
        fsd_image g;
        if (ink_of(s, 1, 11, 13, &g, box) == 0) empty++;
        for (int y = 0; y < 10; y++)
            for (int x = 0; x < 6; x++) glyphs[c - 32][y * 6 + x] = g.data[(y + 2) * 11 + x + 3];
        fsd_image_free(&g);
    }
    for (int i = 1; i < 95; i++)
        for (int j = i + 1; j < 95; j++)
            if (!memcmp(glyphs[i], glyphs[j], sizeof glyphs[i])) same++;
    tu_check(empty == 0, "all 94 visible glyphs have ink (%d empty)", empty);
    tu_check(same == 0, "all glyph pairs differ (%d identical pairs)", same);
    fsd_image g;
    int gb[4];
    tu_check(ink_of(" ", 1, 11, 13, &g, gb) == 0, "space draws nothing");
    fsd_image_free(&g);
    tu_check(ink_of("\x01\xff", 1, 20, 13, &g, gb) > 0, "non-ASCII bytes draw a replacement glyph");
    fsd_image_free(&g);

    /* scale 3 = scale 1 with every pixel a 3x3 block */
    int n1 = ink_of("Ag9", 1, 24, 14, &a, ba), n3 = ink_of("Ag9", 3, 60, 34, &b, bb);
    int match = 1;
    for (int y = 0; y < 30; y++)
        for (int x = 0; x < 54; x++)
            if (b.data[(2 + y) * 60 + 3 + x] != a.data[(2 + y / 3) * 24 + 3 + x / 3]) match = 0;
    tu_check(n3 == 9 * n1 && match, "scale 3 is scale 1 blown up 3x (ink %d vs 9 x %d)", n3, n1);
    fsd_image_free(&a);
    fsd_image_free(&b);

    /* vertical: same ink, box transposed, reads bottom to top (first glyph at the bottom) */
    fsd_image_alloc(&a, 40, 40, 3);
    for (int i = 0; i < 40 * 40 * 3; i++) a.data[i] = 255;
    fsd_text_size("L.", 1, &w, &h);
    fsd_draw_text_vertical(&a, 5, 5, "L.", RED, 1);
    int nv = 0, vx0 = 99, vy0 = 99, vx1 = -1, vy1 = -1, all_red = 1;
    for (int y = 0; y < 40; y++)
        for (int x = 0; x < 40; x++)
            if (!is_white(&a, x, y)) {
                nv++;
                all_red &= is_col(&a, x, y, RED, 0);
                if (x < vx0) vx0 = x;
                if (x > vx1) vx1 = x;
                if (y < vy0) vy0 = y;
                if (y > vy1) vy1 = y;
            }
    tu_check(all_red, "vertical text pixels are exactly the text colour");
    int nh = ink_of("L.", 1, 20, 14, &b, bb);
    tu_check(nv == nh && vx0 >= 5 && vx1 < 5 + h && vy0 >= 5 && vy1 < 5 + w, "vertical 'L.': %d px in its %dx%d box", nv, h,
             w);
    /* 'L' has a full-height stem: after rotation CCW it is a full row at the bottom part */
    int stem_row_bottom = vy1 >= 5 + w - 5; /* the 'L' occupies the last 5 rows (its cell comes first) */
    tu_check(stem_row_bottom, "first glyph at the bottom (ink reaches row %d of %d..%d)", vy1, 5, 5 + w - 1);
    fsd_image_free(&a);
    fsd_image_free(&b);

    /* clipping: text hanging off every edge, colour on grey images = luma */
    fsd_image_alloc(&a, 16, 16, 1);
    fsd_draw_text(&a, -7, -5, "WWWW\nWWWW", RED, 2);
    fsd_draw_text(&a, 10, 12, "WWWW", RED, 2);
    fsd_draw_text_vertical(&a, -3, 12, "WWWW", RED, 2);
    int luma_ok = 1, inked = 0;
    for (int i = 0; i < 256; i++)
        if (a.data[i] != 0) inked++, luma_ok &= fabsf(a.data[i] - 0.299f * 255) < 1e-3f;
    tu_check(inked > 0 && luma_ok, "clipped text on a grey image: %d px, all luma(red) = 76.245", inked);
    fsd_image_free(&a);
}

/* ---------------------------------------------------------------- EMA, PNG, errors */

static void test_ema(void) {
    printf("# EMA smoothing (debiased)\n");
    double y[5] = {1, 2, NAN, 3, 3}, o[5];
    fsd_plot_smooth_ema(y, 5, 0.5, o);
    /* m1 = .5 -> 1; m2 = 1.25 -> 1.25/.75; m3 (third finite) = 2.125 -> 2.125/.875; m4 = 2.5625/.9375 */
    tu_check(fabs(o[0] - 1) < 1e-12 && fabs(o[1] - 1.25 / 0.75) < 1e-12 && isnan(o[2]) &&
                 fabs(o[3] - 2.125 / 0.875) < 1e-12 && fabs(o[4] - 2.5625 / 0.9375) < 1e-12,
             "hand values (1, 1.6667, NaN, 2.4286, 2.7333) got (%g %g %g %g %g), tol 1e-12", o[0], o[1], o[2], o[3], o[4]);
    double c[100];
    for (int i = 0; i < 100; i++) c[i] = 0.37;
    fsd_plot_smooth_ema(c, 100, 0.99, c); /* in place */
    double worst = 0;
    for (int i = 0; i < 100; i++) worst = fmax(worst, fabs(c[i] - 0.37));
    tu_check(worst < 1e-12, "constant stays constant, in place (max err %.2e, tol 1e-12)", worst);
}

static void test_png_and_errors(void) {
    printf("# PNG round trip and refusals\n");
    char path[256];
    snprintf(path, sizeof path, "/tmp/fsd_test_plot_%d.png", (int)getpid());
    fsd_plot *p = mk(320, 240);
    if (!p) return;
    fsd_plot_title(p, "round trip");
    fsd_plot_axis_labels(p, "step", "loss");
    fsd_plot_log_y(p, 1);
    double ys[5] = {1, 0.5, 0.3, 0.2, 0.15};
    fsd_plot_series(p, "loss", NULL, ys, 5, &(fsd_plot_style){.color = 3, .marker = FSD_MARKER_TRIANGLE});
    fsd_plot_hline(p, 0.2, "target", &(fsd_plot_style){.color = 7, .dashed = 1});
    fsd_image im, back;
    if (render(p, &im)) {
        tu_check(fsd_plot_save_png(p, path) == FSD_OK, "save_png: %s", fsd_error_message());
        if (tu_check(fsd_image_load(path, &back) == FSD_OK, "load back: %s", fsd_error_message())) {
            fsd_image_quantize(&im);
            tu_check(back.w == im.w && back.h == im.h && back.c == 3 &&
                         memcmp(back.data, im.data, (size_t)im.w * im.h * 3 * sizeof(float)) == 0,
                     "PNG equals the rendered image rounded to 8 bits (exact)");
            fsd_image_free(&back);
        }
        fsd_image_free(&im);
    }
    unlink(path);
    struct stat sb;
    tu_check(fsd_plot_save_png(p, "/nonexistent-dir/x.png") == FSD_ERR_IO && stat("/nonexistent-dir/x.png", &sb) != 0,
             "unwritable path: FSD_ERR_IO (%s)", fsd_error_message());

    /* bad limits */
    fsd_plot_xlim(p, 0, 5);
    fsd_plot_ylim(p, -1, 1); /* log y */
    fsd_status s = fsd_plot_render(p, &im);
    tu_check(s == FSD_ERR_INVALID && strstr(fsd_error_message(), "log"), "non-positive limit on a log axis: %s",
             fsd_error_message());
    fsd_plot_log_y(p, 0);
    fsd_plot_xlim(p, 5, 1);
    s = fsd_plot_render(p, &im);
    tu_check(s == FSD_ERR_INVALID, "xlim lo > hi refused: %s", fsd_error_message());
    fsd_plot_xlim(p, NAN, NAN);
    fsd_plot_ylim(p, 2, NAN); /* only lo fixed, data below: still a valid range */
    s = fsd_plot_render(p, &im);
    tu_check(s == FSD_OK, "one fixed side above all data still renders");
    if (s == FSD_OK) fsd_image_free(&im);
    fsd_plot_free(p);

    fsd_plot *q = NULL;
    tu_check(fsd_plot_create(&q, 10, 100) == FSD_ERR_INVALID && q == NULL, "10 px wide figure refused");
    q = mk(64, 48);
    if (!q) return;
    tu_check(fsd_plot_map(q, 0, 1, 1, &(double){0}, &(double){0}) == FSD_ERR_INVALID, "map before render refused");
    tu_check(fsd_plot_grid(q, 0, 2) == FSD_ERR_INVALID && fsd_plot_grid(q, 1, 17) == FSD_ERR_INVALID, "bad grid refused");
    tu_check(fsd_plot_panel(q, 1) == FSD_ERR_INVALID, "panel index out of range refused");
    fsd_plot_title(q, "a title much too big");
    fsd_plot_axis_labels(q, "x", "y");
    fsd_plot_font_scale(q, 4);
    s = fsd_plot_render(q, &im);
    tu_check(s == FSD_ERR_INVALID && strstr(fsd_error_message(), "too small"), "labels that leave no room: %s",
             fsd_error_message());
    fsd_plot_free(q);
}

int main(void) {
    test_geometry();
    test_log_axis();
    test_gaps();
    test_extremes();
    test_million();
    test_panels();
    test_legend();
    test_dashes();
    test_font();
    test_ema();
    test_png_and_errors();
    return tu_summary();
}
