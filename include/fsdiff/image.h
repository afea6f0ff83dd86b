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
 * palette -> c=3 (alpha dropped, not composited). Refuses, with one message naming the file and the
 * decoder's reason: corrupt or truncated files (FSD_ERR_FORMAT; PNG chunk CRCs are checked, and any
 * decoder read past the end of the data counts as truncation), zero sizes (FSD_ERR_FORMAT), images
 * over the pixel limit (FSD_ERR_NOMEM, checked from the header before decoding). Missing or
 * unreadable file: FSD_ERR_IO. */
fsd_status fsd_image_load(const char *path, fsd_image *out);
fsd_status fsd_image_load_mem(const unsigned char *buf, size_t n, const char *label, fsd_image *out);
/* Pixel limit for the loaders (w*h); <= 0 restores the default of 2^28. Process-wide. */
void fsd_image_set_max_pixels(int64_t max_pixels);

/* Save as 8-bit PNG (values rounded half up and clipped to 0..255, NaN -> 0) atomically (temp +
 * fsync + rename: on failure the destination is untouched). Optional tEXt chunks, placed right
 * after IHDR: text[2k] = keyword, text[2k+1] = value, for k < n_text. Keywords must be 1..79
 * printable Latin-1 characters without leading, trailing or double spaces (PNG rule), else
 * FSD_ERR_INVALID and nothing is written; values are any NUL-free bytes (Latin-1 by the spec). */
fsd_status fsd_image_save_png(const char *path, const fsd_image *im, const char *const *text, int n_text);
/* Encode to an in-memory PNG (fsd_free *out). */
fsd_status fsd_image_encode_png(const fsd_image *im, const char *const *text, int n_text,
                                unsigned char **out, size_t *n_out);

/* Colour. Grey = round(0.299 R + 0.587 G + 0.114 B) when round_grey, else unrounded (a grey input
 * is copied, rounded when round_grey). YCbCr: ITU-R BT.601 full range (JPEG/JFIF):
 * Y = .299R+.587G+.114B, Cb = 128 + (B-Y)/1.772, Cr = 128 + (R-Y)/1.402 (the exact JFIF
 * coefficients; .564 and .713 rounded), and its exact inverse. No rounding or clipping. */
fsd_status fsd_image_to_grey(const fsd_image *in, fsd_image *out, int round_grey);
fsd_status fsd_image_grey_to_rgb(const fsd_image *in, fsd_image *out);
fsd_status fsd_image_rgb_to_ycbcr(const fsd_image *in, fsd_image *out);
fsd_status fsd_image_ycbcr_to_rgb(const fsd_image *in, fsd_image *out);
/* Round every value to the nearest integer and clip to 0..255 (what saving as 8-bit does). */
void fsd_image_quantize(fsd_image *im);

/* PIL-compatible bicubic resize (Image.resize(size, Image.BICUBIC), a = -0.5, support scaled by
 * the factor when shrinking). With `u8_exact` the input is first rounded and clipped to integers
 * 0..255 and the result reproduces Pillow's 8-bit path (fixed-point taps, horizontal then vertical
 * pass, rounding and clipping after each); otherwise it is computed in double per pass, stored as
 * float between passes, no rounding or clipping (Pillow's mode "F" path). */
fsd_status fsd_image_resize_bicubic(const fsd_image *in, int out_w, int out_h, int u8_exact, fsd_image *out);

/* Separable Gaussian blur: taps exp(-x^2 / (2 sigma^2)) for x = -r..r, r = ceil(3 sigma), normalised
 * to sum 1; borders mirrored without repeating the edge pixel (numpy/PyTorch "reflect"), folded
 * again when r exceeds the image. 0 < sigma <= 1000. Float result, no rounding. */
fsd_status fsd_image_gaussian_blur(const fsd_image *in, double sigma, fsd_image *out);

/* Degradation model for low-resolution inputs: optional Gaussian blur (sigma px, on the HR image,
 * fsd_image_gaussian_blur), then the HR image is rounded to 8 bits (as if saved) and shrunk with
 * Pillow's 8-bit bicubic by `scale` (any real >= 1: size = round(w/scale), round(h/scale), halves
 * up), then optional Gaussian noise (sigma on the 0..255 scale; element i of the planar LR image
 * gets sigma * fsd_rng_normal({seed, 0}, i), so it does not depend on the thread count); result
 * quantised to 8 bits like a saved image. Fails (FSD_ERR_INVALID) if the result would be smaller
 * than FSD_DEGRADE_MIN_SIZE px on either side. */
#define FSD_DEGRADE_MIN_SIZE 8
typedef struct fsd_degrade_params {
    double scale;
    double blur_sigma;  /* 0 = none */
    double noise_sigma; /* 0 = none */
    uint64_t seed;
} fsd_degrade_params;
fsd_status fsd_degrade(const fsd_image *hr, const fsd_degrade_params *p, fsd_image *lr);
/* The LR size fsd_degrade produces: round(w / scale) x round(h / scale). */
void fsd_degrade_size(int w, int h, double scale, int *ow, int *oh);

#ifdef __cplusplus
}
#endif
#endif
