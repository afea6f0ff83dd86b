/* PIL-compatible bicubic resampling (what Image.resize(size, Image.BICUBIC) computes).
 *
 * Separable convolution, horizontal pass first, then vertical. For output pixel o of an axis that
 * maps in_size -> out_size:
 *   scale   = in_size / out_size,  fscale = max(scale, 1)   (shrinking stretches the kernel: antialiasing)
 *   support = 2 * fscale            (Keys cubic with a = -0.5 has radius 2)
 *   centre  = (o + 0.5) * scale     (source coordinate of the output pixel centre)
 *   taps j in [lo, hi): lo = trunc(centre - support + 0.5) clamped to 0, hi = trunc(centre + support + 0.5)
 *   clamped to in_size; weight(j) = cubic((j - centre + 0.5) / fscale), normalised to sum 1.
 * Taps that would fall outside the image are dropped and the rest renormalised (no border padding).
 *
 * 8-bit mode (u8_exact) reproduces Pillow's integer path: weights become signed fixed point with 22
 * fractional bits (rounded half away from zero), each pass accumulates in int32 starting from 0.5 and
 * clips to 0..255, so the intermediate image is 8-bit too. The float mode accumulates in double and
 * stores float between passes (Pillow's mode "F" path). The weight formula is evaluated with the same
 * operation order as Pillow so the fixed-point taps come out identical. */
#include "fsdiff/image.h"

#include <limits.h>
#include <omp.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FIX_BITS 22 /* 32 bits - 8 for the pixel - 2 of headroom for negative lobes / overshoot */

/* Keys (1981) cubic convolution kernel, a = -0.5 (Catmull-Rom). */
static double cubic_kernel(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
    return 0.0;
}

/* Filter taps of one axis: output o reads in[lo[o] .. lo[o]+len[o]) with weights w[o*ksize ..]. */
typedef struct taps {
    int ksize;
    int *lo, *len;
    double *w;   /* [out_size * ksize] normalised weights */
    int32_t *wi; /* same, fixed point (u8 mode) */
} taps;

static void taps_free(taps *t) {
    fsd_free(t->lo);
    fsd_free(t->len);
    fsd_free(t->w);
    fsd_free(t->wi);
    memset(t, 0, sizeof *t);
}

static fsd_status taps_init(taps *t, int in_size, int out_size, int fixed) {
    memset(t, 0, sizeof *t);
    double scale = (double)in_size / out_size;
    double fscale = scale < 1.0 ? 1.0 : scale;
    double support = 2.0 * fscale;
    double inv = 1.0 / fscale;
    int ksize = (int)ceil(support) * 2 + 1;
    if ((size_t)ksize > SIZE_MAX / sizeof(double) / (size_t)out_size)
        return fsd_fail(FSD_ERR_NOMEM, "resize: filter of %d taps x %d outputs is too large", ksize, out_size);
    t->ksize = ksize;
    t->lo = fsd_alloc((size_t)out_size * sizeof(int));
    t->len = fsd_alloc((size_t)out_size * sizeof(int));
    t->w = fsd_calloc((size_t)out_size * ksize, sizeof(double));
    if (fixed) t->wi = fsd_calloc((size_t)out_size * ksize, sizeof(int32_t));
    if (!t->lo || !t->len || !t->w || (fixed && !t->wi)) {
        taps_free(t);
        return FSD_ERR_NOMEM;
    }
    for (int o = 0; o < out_size; o++) {
        double centre = (o + 0.5) * scale;
        int lo = (int)(centre - support + 0.5);
        int hi = (int)(centre + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in_size) hi = in_size;
        int n = hi - lo;
        double *w = t->w + (size_t)o * ksize;
        double sum = 0.0;
        for (int j = 0; j < n; j++) {
            w[j] = cubic_kernel(((double)(j + lo) - centre + 0.5) * inv);
            sum += w[j];
        }
        if (sum != 0.0)
            for (int j = 0; j < n; j++) w[j] /= sum;
        if (fixed) {
            int32_t *wi = t->wi + (size_t)o * ksize;
            const double one = (double)(1 << FIX_BITS);
            for (int j = 0; j < n; j++) wi[j] = (int32_t)(w[j] < 0.0 ? w[j] * one - 0.5 : w[j] * one + 0.5);
        }
        t->lo[o] = lo;
        t->len[o] = n;
    }
    return FSD_OK;
}

/* Fixed-point accumulator (started at 0.5 for rounding) -> 0..255. */
static inline unsigned char fix_to_u8(int32_t acc) {
    if (acc <= 0) return 0;
    if (acc >= (int32_t)(256 << FIX_BITS)) return 255;
    return (unsigned char)(acc >> FIX_BITS);
}

/* ---------------------------------------------------------------- 8-bit path */

/* src [c][h][w] -> dst [c][rows][ow]: rows y0 .. y0+rows of src, horizontally resampled. */
static void hpass_u8(const unsigned char *src, int c, int h, int w, int y0, int rows, const taps *t, int ow,
                     unsigned char *dst) {
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)c * rows * ow > 65536)
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < rows; y++) {
            const unsigned char *in = src + ((size_t)ch * h + y0 + y) * w;
            unsigned char *out = dst + ((size_t)ch * rows + y) * ow;
            for (int x = 0; x < ow; x++) {
                const int32_t *k = t->wi + (size_t)x * t->ksize;
                const unsigned char *p = in + t->lo[x];
                int32_t acc = 1 << (FIX_BITS - 1);
                for (int j = 0; j < t->len[x]; j++) acc += (int32_t)p[j] * k[j];
                out[x] = fix_to_u8(acc);
            }
        }
}

/* src [c][h][w] -> dst [c][oh][w]; tap indices are relative to row y0 of src. Rows are accumulated
 * whole (tap-outer loop) so the inner loop runs along contiguous memory. */
static void vpass_u8(const unsigned char *src, int c, int h, int w, int y0, const taps *t, int oh,
                     unsigned char *dst, void *scratch) {
#pragma omp parallel if ((size_t)c * oh * w > 65536)
    {
        int32_t *acc = (int32_t *)((double *)scratch + (size_t)omp_get_thread_num() * w);
#pragma omp for collapse(2) schedule(static)
        for (int ch = 0; ch < c; ch++)
            for (int y = 0; y < oh; y++) {
                const int32_t *k = t->wi + (size_t)y * t->ksize;
                const unsigned char *in = src + ((size_t)ch * h + (t->lo[y] - y0)) * w;
                unsigned char *out = dst + ((size_t)ch * oh + y) * w;
                for (int x = 0; x < w; x++) acc[x] = 1 << (FIX_BITS - 1);
                for (int j = 0; j < t->len[y]; j++) {
                    const unsigned char *row = in + (size_t)j * w;
                    const int32_t kj = k[j];
                    for (int x = 0; x < w; x++) acc[x] += (int32_t)row[x] * kj;
                }
                for (int x = 0; x < w; x++) out[x] = fix_to_u8(acc[x]);
            }
    }
}

/* ---------------------------------------------------------------- float path */

static void hpass_f(const float *src, int c, int h, int w, int y0, int rows, const taps *t, int ow, float *dst) {
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)c * rows * ow > 65536)
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < rows; y++) {
            const float *in = src + ((size_t)ch * h + y0 + y) * w;
            float *out = dst + ((size_t)ch * rows + y) * ow;
            for (int x = 0; x < ow; x++) {
                const double *k = t->w + (size_t)x * t->ksize;
                const float *p = in + t->lo[x];
                double acc = 0.0;
                for (int j = 0; j < t->len[x]; j++) acc += p[j] * k[j];
                out[x] = (float)acc;
            }
        }
}

static void vpass_f(const float *src, int c, int h, int w, int y0, const taps *t, int oh, float *dst,
                    void *scratch) {
#pragma omp parallel if ((size_t)c * oh * w > 65536)
    {
        double *acc = (double *)scratch + (size_t)omp_get_thread_num() * w;
#pragma omp for collapse(2) schedule(static)
        for (int ch = 0; ch < c; ch++)
            for (int y = 0; y < oh; y++) {
                const double *k = t->w + (size_t)y * t->ksize;
                const float *in = src + ((size_t)ch * h + (t->lo[y] - y0)) * w;
                float *out = dst + ((size_t)ch * oh + y) * w;
                for (int x = 0; x < w; x++) acc[x] = 0.0;
                for (int j = 0; j < t->len[y]; j++) {
                    const float *row = in + (size_t)j * w;
                    const double kj = k[j];
                    for (int x = 0; x < w; x++) acc[x] += row[x] * kj;
                }
                for (int x = 0; x < w; x++) out[x] = (float)acc[x];
            }
    }
}

/* ---------------------------------------------------------------- driver */

fsd_status fsd_image_resize_bicubic(const fsd_image *in, int out_w, int out_h, int u8_exact, fsd_image *out) {
    memset(out, 0, sizeof *out);
    if (!in || !in->data || in->w <= 0 || in->h <= 0 || (in->c != 1 && in->c != 3))
        return fsd_fail(FSD_ERR_INVALID, "resize: bad input image");
    if (out_w <= 0 || out_h <= 0)
        return fsd_fail(FSD_ERR_INVALID, "resize: output size %dx%d must be positive", out_w, out_h);
    if ((int64_t)out_w * out_h > ((int64_t)1 << 31))
        return fsd_fail(FSD_ERR_NOMEM, "resize: output %dx%d is too large", out_w, out_h);
    const int w = in->w, h = in->h, c = in->c;
    fsd_status s = fsd_image_alloc(out, out_w, out_h, c);
    if (s) return s;
    const int need_h = out_w != w, need_v = out_h != h;
    taps th = {0}, tv = {0};
    void *scratch = NULL;
    if ((s = taps_init(&th, w, out_w, u8_exact)) || (s = taps_init(&tv, h, out_h, u8_exact))) goto fail;

    /* Only the source rows the vertical pass reads go through the horizontal pass. */
    int y0 = need_v ? tv.lo[0] : 0;
    int y1 = need_v ? tv.lo[out_h - 1] + tv.len[out_h - 1] : h;
    int rows = y1 - y0;
    size_t n_in = (size_t)w * h * c, n_out = (size_t)out_w * out_h * c;
    /* one accumulator row (out_w doubles) per thread for the vertical pass */
    scratch = fsd_alloc((size_t)omp_get_max_threads() * out_w * sizeof(double));
    if (!scratch) {
        s = FSD_ERR_NOMEM;
        goto fail;
    }

    if (u8_exact) {
        unsigned char *src = fsd_alloc(n_in), *tmp = NULL, *dst = fsd_alloc(n_out);
        if (!src || !dst) {
            fsd_free(src);
            fsd_free(dst);
            s = FSD_ERR_NOMEM;
            goto fail;
        }
        for (size_t i = 0; i < n_in; i++) {
            float v = in->data[i];
            v = v >= 0.0f ? v : 0.0f;
            v = v <= 255.0f ? v : 255.0f;
            src[i] = (unsigned char)(v + 0.5f);
        }
        if (need_h && need_v) {
            tmp = fsd_alloc((size_t)c * rows * out_w);
            if (!tmp) {
                fsd_free(src);
                fsd_free(dst);
                s = FSD_ERR_NOMEM;
                goto fail;
            }
            hpass_u8(src, c, h, w, y0, rows, &th, out_w, tmp);
            vpass_u8(tmp, c, rows, out_w, y0, &tv, out_h, dst, scratch);
        } else if (need_h) {
            hpass_u8(src, c, h, w, 0, h, &th, out_w, dst);
        } else if (need_v) {
            vpass_u8(src, c, h, w, 0, &tv, out_h, dst, scratch);
        } else {
            memcpy(dst, src, n_in);
        }
        for (size_t i = 0; i < n_out; i++) out->data[i] = dst[i];
        fsd_free(src);
        fsd_free(tmp);
        fsd_free(dst);
    } else {
        if (need_h && need_v) {
            float *tmp = fsd_alloc((size_t)c * rows * out_w * sizeof(float));
            if (!tmp) {
                s = FSD_ERR_NOMEM;
                goto fail;
            }
            hpass_f(in->data, c, h, w, y0, rows, &th, out_w, tmp);
            vpass_f(tmp, c, rows, out_w, y0, &tv, out_h, out->data, scratch);
            fsd_free(tmp);
        } else if (need_h) {
            hpass_f(in->data, c, h, w, 0, h, &th, out_w, out->data);
        } else if (need_v) {
            vpass_f(in->data, c, h, w, 0, &tv, out_h, out->data, scratch);
        } else {
            memcpy(out->data, in->data, n_in * sizeof(float));
        }
    }
    fsd_free(scratch);
    taps_free(&th);
    taps_free(&tv);
    return FSD_OK;
fail:
    fsd_free(scratch);
    taps_free(&th);
    taps_free(&tv);
    fsd_image_free(out);
    return s;
}
