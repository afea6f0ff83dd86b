/* Images as float planes, loaders/savers, colour conversion, PIL-compatible resampling and the
 * degradation model that makes low-resolution inputs. */
#ifndef FSDIFF_IMAGE_H
#define FSDIFF_IMAGE_H

#include "fsdiff/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Planar float image: c planes of h*w values, each on the 0..255 scale (8-bit values exactly;
 * 16-bit sources are divided by 257). c is 1 (grey) or 3 (RGB). */
typedef struct fsd_image {
    int w, h, c;
    float *data; /* owned: fsd_image_free */
} fsd_image;

fsd_status fsd_image_alloc(fsd_image *im, int w, int h, int c); /* zeroed */
void fsd_image_free(fsd_image *im);
fsd_status fsd_image_copy(fsd_image *dst, const fsd_image *src);

/* Load PNG (8/16-bit), JPEG, BMP, TGA, PNM (PGM/PPM). Grey and grey+alpha -> c=1; RGB, RGBA and
 * palette -> c=3 (alpha dropped). Refuses (clear message) corrupt/truncated files, zero sizes and
 * images over max_pixels (0 = default limit of 2^28 pixels) before decoding the pixel data. */
fsd_status fsd_image_load(const char *path, fsd_image *out);
fsd_status fsd_image_load_mem(const unsigned char *buf, size_t n, const char *label, fsd_image *out);
void fsd_image_set_max_pixels(int64_t max_pixels);

/* Save as 8-bit PNG (values rounded and clipped to 0..255) atomically (temp + rename).
 * Optional tEXt chunks: text[2k] = keyword, text[2k+1] = value, for k < n_text. */
fsd_status fsd_image_save_png(const char *path, const fsd_image *im, const char *const *text, int n_text);
/* Encode to an in-memory PNG (fsd_free *out). */
fsd_status fsd_image_encode_png(const fsd_image *im, const char *const *text, int n_text,
                                unsigned char **out, size_t *n_out);

/* Colour. Grey = round(0.299 R + 0.587 G + 0.114 B) when round_grey, else unrounded.
 * YCbCr: ITU-R BT.601 full range (JPEG/JFIF): Y = .299R+.587G+.114B, Cb = 128 + (B-Y)*.564,
 * Cr = 128 + (R-Y)*.713 (exact JFIF coefficients), and its inverse. */
fsd_status fsd_image_to_grey(const fsd_image *in, fsd_image *out, int round_grey);
fsd_status fsd_image_grey_to_rgb(const fsd_image *in, fsd_image *out);
fsd_status fsd_image_rgb_to_ycbcr(const fsd_image *in, fsd_image *out);
fsd_status fsd_image_ycbcr_to_rgb(const fsd_image *in, fsd_image *out);
/* Round every value to the nearest integer and clip to 0..255 (what saving as 8-bit does). */
void fsd_image_quantize(fsd_image *im);

/* PIL-compatible bicubic resize (Image.resize(size, Image.BICUBIC), a = -0.5, support scaled by
 * the factor when shrinking). With `u8_exact` set the input must hold integers 0..255 and the
 * result reproduces Pillow's 8-bit path (fixed-point taps, horizontal then vertical pass, rounding
 * between them); otherwise it is computed in float without intermediate rounding. */
fsd_status fsd_image_resize_bicubic(const fsd_image *in, int out_w, int out_h, int u8_exact, fsd_image *out);

/* Degradation model for low-resolution inputs: optional Gaussian blur (sigma px, on the HR image),
 * PIL bicubic down by `scale` (any real >= 1: size = round(w/scale), round(h/scale)), optional
 * Gaussian noise (sigma on the 0..255 scale) from the counter RNG with `seed`; result quantised
 * to 8 bits like a saved image. Fails if the result would be smaller than 8 px. */
typedef struct fsd_degrade_params {
    double scale;
    double blur_sigma;  /* 0 = none */
    double noise_sigma; /* 0 = none */
    uint64_t seed;
} fsd_degrade_params;
fsd_status fsd_degrade(const fsd_image *hr, const fsd_degrade_params *p, fsd_image *lr);

#ifdef __cplusplus
}
#endif
#endif
