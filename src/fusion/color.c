/* Colour handling for fusion (the convention of the IVF / medical fusion literature): fuse the
 * luminance, keep the colour source's chroma. Y, Cb, Cr are BT.601 full range (fsdiff/image.h).
 *   grey + grey -> grey
 *   RGB + grey or grey + RGB -> Y of the RGB source fused with the grey one; Cb, Cr of the RGB
 *                               source unchanged (bit for bit); converted back to RGB
 *   RGB + RGB -> Y fused, Cb and Cr averaged (neither source's colour is preferred). */
#include "fusion_internal.h"

#include <math.h>
#include <string.h>

fsd_status fsd_fuse_images_ycbcr(fsd_fuse_method m, const fsd_fuse_params *p, const fsd_image *a,
                                 const fsd_image *b, fsd_image *out) {
    memset(out, 0, sizeof *out);
    if (!a || !b || !a->data || !b->data) return fsd_fail(FSD_ERR_INVALID, "fusion: missing input image");
    if ((a->c != 1 && a->c != 3) || (b->c != 1 && b->c != 3))
        return fsd_fail(FSD_ERR_INVALID, "fusion: images must have 1 or 3 channels (got %d and %d)", a->c, b->c);
    if (a->w != b->w || a->h != b->h)
        return fsd_fail(FSD_ERR_INVALID, "fusion: sources differ in size (%dx%d vs %dx%d)", a->w, a->h, b->w, b->h);
    int w = a->w, h = a->h;
    size_t n = (size_t)w * h;
    fsd_image ya = {0}, yb = {0};
    fsd_status s = FSD_OK;
    /* luminance (or the grey plane) of each source */
    if (a->c == 3) s = fsd_image_rgb_to_ycbcr(a, &ya);
    if (!s && b->c == 3) s = fsd_image_rgb_to_ycbcr(b, &yb);
    if (!s) s = fsd_image_alloc(out, w, h, (a->c == 3 || b->c == 3) ? 3 : 1);
    if (!s) {
        const float *pa = a->c == 3 ? ya.data : a->data;
        const float *pb = b->c == 3 ? yb.data : b->data;
        s = fsd_fuse_plane(m, p, pa, pb, w, h, out->data);
    }
    if (!s && out->c == 3) {
        float *cb = out->data + n, *cr = out->data + 2 * n;
        if (a->c == 3 && b->c == 3) {
            for (size_t i = 0; i < n; i++) {
                cb[i] = 0.5f * (ya.data[n + i] + yb.data[n + i]);
                cr[i] = 0.5f * (ya.data[2 * n + i] + yb.data[2 * n + i]);
            }
        } else {
            const fsd_image *src = a->c == 3 ? &ya : &yb;
            memcpy(cb, src->data + n, 2 * n * sizeof(float));
        }
    }
    fsd_image_free(&ya);
    fsd_image_free(&yb);
    if (s) fsd_image_free(out);
    return s;
}

fsd_status fsd_fuse_images(fsd_fuse_method m, const fsd_fuse_params *p, const fsd_image *a, const fsd_image *b,
                           fsd_image *out) {
    fsd_image ycc;
    fsd_status s = fsd_fuse_images_ycbcr(m, p, a, b, &ycc);
    if (s) {
        memset(out, 0, sizeof *out);
        return s;
    }
    if (ycc.c == 1) {
        *out = ycc;
        return FSD_OK;
    }
    s = fsd_image_ycbcr_to_rgb(&ycc, out);
    fsd_image_free(&ycc);
    return s;
}

/* Upsample by `scale` (PIL bicubic); the 8-bit exact path when the image holds 8-bit values. */
static fsd_status upscale(const fsd_image *in, double scale, fsd_image *out) {
    int ow = (int)lround(in->w * scale), oh = (int)lround(in->h * scale);
    size_t n = (size_t)in->w * in->h * in->c;
    int u8 = 1;
    for (size_t i = 0; i < n && u8; i++) {
        float v = in->data[i];
        u8 = v >= 0.0f && v <= 255.0f && v == floorf(v);
    }
    return fsd_image_resize_bicubic(in, ow, oh, u8, out);
}

fsd_status fsd_fuse_images_upscaled(fsd_fuse_method m, const fsd_fuse_params *p, const fsd_image *a,
                                    double scale_a, const fsd_image *b, double scale_b, fsd_image *out) {
    memset(out, 0, sizeof *out);
    if (!a || !b || !a->data || !b->data) return fsd_fail(FSD_ERR_INVALID, "fusion: missing input image");
    if (!(scale_a >= 1.0 && scale_a <= 64.0) || !(scale_b >= 1.0 && scale_b <= 64.0))
        return fsd_fail(FSD_ERR_INVALID, "fusion: scale must be in [1, 64] (got %g and %g)", scale_a, scale_b);
    long aw = lround(a->w * scale_a), ah = lround(a->h * scale_a);
    long bw = lround(b->w * scale_b), bh = lround(b->h * scale_b);
    if (aw != bw || ah != bh)
        return fsd_fail(FSD_ERR_INVALID,
                        "fusion: upsampled sizes differ: a %dx%d x%g -> %ldx%ld, b %dx%d x%g -> %ldx%ld", a->w,
                        a->h, scale_a, aw, ah, b->w, b->h, scale_b, bw, bh);
    fsd_image ua = {0}, ub = {0};
    fsd_status s = upscale(a, scale_a, &ua);
    if (!s) s = upscale(b, scale_b, &ub);
    if (!s) s = fsd_fuse_images(m, p, &ua, &ub, out);
    fsd_image_free(&ua);
    fsd_image_free(&ub);
    return s;
}
