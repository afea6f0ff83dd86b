/* Contact-sheet images: a thumbnail and a zoomed crop per column (LR inputs, HR sources, each
 * method's output). LR inputs are shown with nearest neighbours so their resolution is visible. */
#include "eval_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void fsd_eval_sheet_file(char *buf, size_t n, int pair, int col, int kind) {
    static const char *const in_names[4] = {"lr_a", "lr_b", "hr_a", "hr_b"};
    char c[32];
    if (col < 0) snprintf(c, sizeof c, "%s", in_names[col + 4]);
    else snprintf(c, sizeof c, "m%02d", col);
    snprintf(buf, n, "p%03d_%s_%s.png", pair, c, kind ? "crop" : "full");
}

fsd_status fsd_eval_write_bytes(const char *path, const void *data, size_t n) {
    FILE *fp = fopen(path, "wb");
    if (!fp) return fsd_fail(FSD_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    size_t wr = fwrite(data, 1, n, fp);
    int bad = wr != n;
    if (fclose(fp) != 0) bad = 1;
    if (bad) {
        remove(path);
        return fsd_fail(FSD_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    }
    return FSD_OK;
}

void fsd_eval_thumb_size(int w, int h, int *tw, int *th) {
    int big = w > h ? w : h;
    if (big <= FSD_EVAL_THUMB) {
        *tw = w;
        *th = h;
        return;
    }
    *tw = (int)((double)w * FSD_EVAL_THUMB / big + 0.5);
    *th = (int)((double)h * FSD_EVAL_THUMB / big + 0.5);
    if (*tw < 1) *tw = 1;
    if (*th < 1) *th = 1;
}

void fsd_eval_pick_crop(const float *ga, const float *gb, int w, int h, int crop[4]) {
    int cs = FSD_EVAL_CROP;
    if (cs > w) cs = w;
    if (cs > h) cs = h;
    int zoom = (FSD_EVAL_CROP * FSD_EVAL_ZOOM) / cs;
    /* integral image of e = |dx a| + |dy a| + |dx b| + |dy b| (forward differences, 0 at the end) */
    double *I = calloc((size_t)(w + 1) * (h + 1), sizeof *I);
    crop[0] = (w - cs) / 2;
    crop[1] = (h - cs) / 2;
    crop[2] = cs;
    crop[3] = zoom;
    if (!I) return; /* centre crop */
    for (int y = 0; y < h; y++) {
        double row = 0;
        for (int x = 0; x < w; x++) {
            size_t i = (size_t)y * w + x;
            double e = 0;
            if (x + 1 < w) e += fabsf(ga[i + 1] - ga[i]) + fabsf(gb[i + 1] - gb[i]);
            if (y + 1 < h) e += fabsf(ga[i + w] - ga[i]) + fabsf(gb[i + w] - gb[i]);
            row += e;
            I[(size_t)(y + 1) * (w + 1) + x + 1] = I[(size_t)y * (w + 1) + x + 1] + row;
        }
    }
    /* Only windows inside the central 80 %: registration borders (black strips in MSRS IR, the
     * frame of medical slices) are strong edges that say nothing about the methods. */
    int mx = w / 10, my = h / 10;
    if (mx + cs > w - mx) mx = (w - cs) / 2;
    if (my + cs > h - my) my = (h - cs) / 2;
    double best = -1;
    for (int y = my; y + cs <= h - my; y += 4)
        for (int x = mx; x + cs <= w - mx; x += 4) {
            double s = I[(size_t)(y + cs) * (w + 1) + x + cs] - I[(size_t)y * (w + 1) + x + cs] -
                       I[(size_t)(y + cs) * (w + 1) + x] + I[(size_t)y * (w + 1) + x];
            if (s > best) {
                best = s;
                crop[0] = x;
                crop[1] = y;
            }
        }
    free(I);
}

/* out = the region (x0, y0, cw, ch) of src seen stretched to vw x vh (nearest neighbour), each
 * pixel repeated zoom times. */
static fsd_status render(const fsd_image *src, int vw, int vh, int x0, int y0, int cw, int ch, int zoom,
                         fsd_image *out) {
    fsd_status s = fsd_image_alloc(out, cw * zoom, ch * zoom, src->c);
    if (s) return s;
    for (int c = 0; c < src->c; c++) {
        const float *sp = src->data + (size_t)c * src->w * src->h;
        float *op = out->data + (size_t)c * out->w * out->h;
        for (int v = 0; v < out->h; v++) {
            int Y = y0 + v / zoom;
            int sy = (int)(((double)Y + 0.5) * src->h / vh);
            if (sy >= src->h) sy = src->h - 1;
            for (int u = 0; u < out->w; u++) {
                int X = x0 + u / zoom;
                int sx = (int)(((double)X + 0.5) * src->w / vw);
                if (sx >= src->w) sx = src->w - 1;
                op[(size_t)v * out->w + u] = sp[(size_t)sy * src->w + sx];
            }
        }
    }
    return FSD_OK;
}

/* A 1-px yellow frame around the crop on an HR thumbnail (turned RGB). */
static fsd_status frame_crop(fsd_image *t, int w, int h, const int crop[4]) {
    if (t->c == 1) {
        fsd_image rgb = {0};
        fsd_status s = fsd_image_grey_to_rgb(t, &rgb);
        if (s) return s;
        fsd_image_free(t);
        *t = rgb;
    }
    double sx = (double)t->w / w, sy = (double)t->h / h;
    int x0 = (int)(crop[0] * sx), y0 = (int)(crop[1] * sy);
    int x1 = (int)((crop[0] + crop[2]) * sx + 0.5) - 1, y1 = (int)((crop[1] + crop[2]) * sy + 0.5) - 1;
    if (x1 >= t->w) x1 = t->w - 1;
    if (y1 >= t->h) y1 = t->h - 1;
    static const float col[3] = {255, 220, 0};
    size_t n = (size_t)t->w * t->h;
    for (int c = 0; c < 3; c++) {
        float *p = t->data + c * n;
        for (int x = x0; x <= x1; x++) p[(size_t)y0 * t->w + x] = p[(size_t)y1 * t->w + x] = col[c];
        for (int y = y0; y <= y1; y++) p[(size_t)y * t->w + x0] = p[(size_t)y * t->w + x1] = col[c];
    }
    return FSD_OK;
}

static fsd_status save(const char *dir, int pair, int col, int kind, const fsd_image *im) {
    char name[64], path[4096];
    fsd_eval_sheet_file(name, sizeof name, pair, col, kind);
    int n = snprintf(path, sizeof path, "%s/%s", dir, name);
    if (n < 0 || n >= (int)sizeof path) return fsd_fail(FSD_ERR_INVALID, "%s: path too long", dir);
    unsigned char *png = NULL;
    size_t np = 0;
    fsd_status s = fsd_image_encode_png(im, NULL, 0, &png, &np);
    if (!s) s = fsd_eval_write_bytes(path, png, np);
    fsd_free(png);
    return s;
}

fsd_status fsd_eval_sheet_column(const char *img_dir, int pair, int col, const fsd_image *src, int w, int h,
                                 const int crop[4]) {
    int tw, th;
    fsd_eval_thumb_size(w, h, &tw, &th);
    fsd_image t = {0}, c = {0};
    fsd_status s;
    int lr = col == FSD_EVAL_COL_LR_A || col == FSD_EVAL_COL_LR_B;
    if (lr || (tw == src->w && th == src->h)) {
        s = render(src, tw, th, 0, 0, tw, th, 1, &t); /* nearest: LR blocks stay visible */
    } else {
        fsd_image q = {0}; /* 8-bit values, so Pillow's 8-bit antialiased bicubic shrink */
        s = fsd_image_copy(&q, src);
        if (!s) {
            fsd_image_quantize(&q);
            s = fsd_image_resize_bicubic(&q, tw, th, 1, &t);
        }
        fsd_image_free(&q);
    }
    if (!s && (col == FSD_EVAL_COL_HR_A || col == FSD_EVAL_COL_HR_B)) s = frame_crop(&t, w, h, crop);
    if (!s) s = save(img_dir, pair, col, 0, &t);
    if (!s) s = render(src, w, h, crop[0], crop[1], crop[2], crop[2], crop[3], &c);
    if (!s) s = save(img_dir, pair, col, 1, &c);
    fsd_image_free(&t);
    fsd_image_free(&c);
    return s;
}
