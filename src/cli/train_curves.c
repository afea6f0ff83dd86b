/* Loss-curve picture of a training run (RUN_DIR/loss-curve.png from train.csv and val.csv). */
#include "cli.h"
#include "fsdiff/plot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

fsd_status train_read_csv_cols(const char *path, int c0, int c1, double **xs, double **ys, int *n);
fsd_status train_draw_curves(const char *run);

/* ---------------------------------------------------------------- loss curve */
/* Reads train.csv (step, loss, ...) and val.csv (step, pairs, psnr_model, psnr_base, ...) and draws
 * loss-curve.png: the loss per logged window (log y) and, when present, validation PSNR. */
fsd_status train_read_csv_cols(const char *path, int c0, int c1, double **xs, double **ys, int *n) {
    *xs = *ys = NULL, *n = 0;
    struct stat sb;
    if (stat(path, &sb) != 0) return FSD_OK;
    unsigned char *data;
    size_t len;
    fsd_status s = fsd_read_file(path, &data, &len);
    if (s) return s;
    char *txt = (char *)data;
    int cap = 0;
    size_t i = 0;
    int line = 0;
    while (i < len) {
        size_t e = i;
        while (e < len && txt[e] != '\n') e++;
        if (line > 0 && e < len) {
            double vals[16];
            int nv = 0;
            const char *p = txt + i;
            while (p < txt + e && nv < 16) {
                char *end;
                vals[nv++] = strtod(p, &end);
                p = end;
                while (p < txt + e && *p != ',') p++;
                if (p < txt + e) p++;
            }
            if (nv > c0 && nv > c1) {
                if (*n == cap) {
                    cap = cap ? 2 * cap : 256;
                    double *nx = realloc(*xs, (size_t)cap * sizeof(double)), *ny = realloc(*ys, (size_t)cap * sizeof(double));
                    if (nx) *xs = nx;
                    if (ny) *ys = ny;
                    if (!nx || !ny) break;
                }
                (*xs)[*n] = vals[c0], (*ys)[*n] = vals[c1], (*n)++;
            }
        }
        i = e + 1, line++;
    }
    fsd_free(data);
    return FSD_OK;
}

fsd_status train_draw_curves(const char *run) {
    char tp[4096], vp[4096], out[4096];
    snprintf(tp, sizeof tp, "%s/train.csv", run);
    snprintf(vp, sizeof vp, "%s/val.csv", run);
    snprintf(out, sizeof out, "%s/loss-curve.png", run);
    double *lx, *ly, *ex, *ey, *vx, *vm, *bx, *bm;
    int ln, en, vn, bn;
    fsd_status s = train_read_csv_cols(tp, 0, 1, &lx, &ly, &ln);
    if (!s) s = train_read_csv_cols(tp, 0, 2, &ex, &ey, &en);
    if (!s) s = train_read_csv_cols(vp, 0, 2, &vx, &vm, &vn);
    if (!s) s = train_read_csv_cols(vp, 0, 3, &bx, &bm, &bn);
    if (s || ln < 2) {
        free(lx), free(ly), free(ex), free(ey), free(vx), free(vm), free(bx), free(bm);
        return s;
    }
    fsd_plot *p = NULL;
    double *sm = malloc((size_t)ln * sizeof(double));
    s = sm ? fsd_plot_create(&p, vn > 0 ? 1280 : 720, 480) : fsd_fail(FSD_ERR_NOMEM, "out of memory");
    if (!s && vn > 0) s = fsd_plot_grid(p, 1, 2);
    if (!s) {
        fsd_plot_title(p, "training loss (eps + degradation)");
        fsd_plot_axis_labels(p, "step", "loss per log window");
        fsd_plot_log_y(p, 1);
        /* raw windows faint, a smoothed line on top so the trend is readable */
        fsd_plot_style raw = {0}, smooth = {0}, eps = {0};
        raw.color = 0, raw.alpha = 0.35f, smooth.color = 0, smooth.width = 2, eps.color = 1, eps.alpha = 0.6f;
        fsd_plot_smooth_ema(ly, (size_t)ln, 0.8, sm);
        s = fsd_plot_series(p, "loss", lx, ly, (size_t)ln, &raw);
        if (!s) s = fsd_plot_series(p, "loss (smoothed)", lx, sm, (size_t)ln, &smooth);
        if (!s) s = fsd_plot_series(p, "eps loss", ex, ey, (size_t)en, &eps);
        if (!s && vn > 0) {
            fsd_plot_style m = {0}, b = {0};
            m.color = 0, m.width = 2, m.marker = FSD_MARKER_CIRCLE;
            b.color = 3, b.dashed = 1, b.width = 2;
            s = fsd_plot_panel(p, 1);
            if (!s) fsd_plot_title(p, "validation (EMA weights)");
            if (!s) fsd_plot_axis_labels(p, "step", "PSNR vs HR teacher fusion (dB)");
            if (!s) s = fsd_plot_series(p, "model", vx, vm, (size_t)vn, &m);
            if (!s) s = fsd_plot_series(p, "bicubic + teacher", bx, bm, (size_t)bn, &b);
        }
        if (!s) s = fsd_plot_save_png(p, out);
    }
    fsd_plot_free(p);
    free(sm);
    free(lx), free(ly), free(ex), free(ey), free(vx), free(vm), free(bx), free(bm);
    return s;
}

