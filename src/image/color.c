/* Colour conversions between planar images: grey, RGB and YCbCr (ITU-R BT.601 full range, the JFIF
 * variant used by JPEG and PIL: Y in 0..255, chroma centred on 128). */
#include "fsdiff/image.h"

#include <math.h>
#include <string.h>

/* BT.601 luma weights. */
#define KR 0.299
#define KG 0.587
#define KB 0.114

fsd_status fsd_image_to_grey(const fsd_image *in, fsd_image *out, int round_grey) {
    memset(out, 0, sizeof *out);
    if (in->c == 1) {
        fsd_status s = fsd_image_copy(out, in);
        if (s == FSD_OK && round_grey)
            for (size_t i = 0; i < (size_t)in->w * in->h; i++) out->data[i] = floorf(out->data[i] + 0.5f);
        return s;
    }
    if (in->c != 3) return fsd_fail(FSD_ERR_INVALID, "to_grey: expected 1 or 3 channels, got %d", in->c);
    fsd_status s = fsd_image_alloc(out, in->w, in->h, 1);
    if (s) return s;
    size_t hw = (size_t)in->w * in->h;
    const float *r = in->data, *g = r + hw, *b = g + hw;
    for (size_t i = 0; i < hw; i++) {
        double y = KR * r[i] + KG * g[i] + KB * b[i];
        out->data[i] = (float)(round_grey ? floor(y + 0.5) : y);
    }
    return FSD_OK;
}

fsd_status fsd_image_grey_to_rgb(const fsd_image *in, fsd_image *out) {
    memset(out, 0, sizeof *out);
    if (in->c != 1) return fsd_fail(FSD_ERR_INVALID, "grey_to_rgb: expected 1 channel, got %d", in->c);
    fsd_status s = fsd_image_alloc(out, in->w, in->h, 3);
    if (s) return s;
    size_t hw = (size_t)in->w * in->h;
    for (int ch = 0; ch < 3; ch++) memcpy(out->data + ch * hw, in->data, hw * sizeof(float));
    return FSD_OK;
}

/* Y = Kr R + Kg G + Kb B; Cb = 128 + (B - Y) / (2 (1 - Kb)); Cr = 128 + (R - Y) / (2 (1 - Kr)).
 * (1 / 1.772 = 0.5643, 1 / 1.402 = 0.7133: the rounded .564 / .713 often quoted.) */
fsd_status fsd_image_rgb_to_ycbcr(const fsd_image *in, fsd_image *out) {
    memset(out, 0, sizeof *out);
    if (in->c != 3) return fsd_fail(FSD_ERR_INVALID, "rgb_to_ycbcr: expected 3 channels, got %d", in->c);
    fsd_status s = fsd_image_alloc(out, in->w, in->h, 3);
    if (s) return s;
    size_t hw = (size_t)in->w * in->h;
    const float *r = in->data, *g = r + hw, *b = g + hw;
    float *Y = out->data, *Cb = Y + hw, *Cr = Cb + hw;
    for (size_t i = 0; i < hw; i++) {
        double y = KR * r[i] + KG * g[i] + KB * b[i];
        Y[i] = (float)y;
        Cb[i] = (float)(128.0 + (b[i] - y) / (2.0 * (1.0 - KB)));
        Cr[i] = (float)(128.0 + (r[i] - y) / (2.0 * (1.0 - KR)));
    }
    return FSD_OK;
}

/* Inverse: R = Y + 2(1-Kr)(Cr-128), B = Y + 2(1-Kb)(Cb-128), G = (Y - Kr R - Kb B) / Kg. */
fsd_status fsd_image_ycbcr_to_rgb(const fsd_image *in, fsd_image *out) {
    memset(out, 0, sizeof *out);
    if (in->c != 3) return fsd_fail(FSD_ERR_INVALID, "ycbcr_to_rgb: expected 3 channels, got %d", in->c);
    fsd_status s = fsd_image_alloc(out, in->w, in->h, 3);
    if (s) return s;
    size_t hw = (size_t)in->w * in->h;
    const float *Y = in->data, *Cb = Y + hw, *Cr = Cb + hw;
    float *r = out->data, *g = r + hw, *b = g + hw;
    for (size_t i = 0; i < hw; i++) {
        double y = Y[i];
        double rr = y + 2.0 * (1.0 - KR) * (Cr[i] - 128.0);
        double bb = y + 2.0 * (1.0 - KB) * (Cb[i] - 128.0);
        r[i] = (float)rr;
        b[i] = (float)bb;
        g[i] = (float)((y - KR * rr - KB * bb) / KG);
    }
    return FSD_OK;
}
