/* Degradation model for the low-resolution inputs: Gaussian blur -> PIL bicubic downscale ->
 * Gaussian noise -> 8-bit quantisation. */
#include "fsdiff/image.h"

#include <math.h>
#include <string.h>

/* Mirror an index into [0, n) without repeating the edge sample (numpy/PyTorch "reflect"):
 * ... 2 1 | 0 1 2 ... n-1 | n-2 ... ; folds repeatedly, so any radius works on any size. */
static inline int reflect_index(int i, int n) {
    if (n == 1) return 0;
    int period = 2 * (n - 1);
    i %= period;
    if (i < 0) i += period;
    return i < n ? i : period - i;
}

fsd_status fsd_image_gaussian_blur(const fsd_image *in, double sigma, fsd_image *out) {
    memset(out, 0, sizeof *out);
    if (!(sigma > 0.0) || !isfinite(sigma) || sigma > 1000.0)
        return fsd_fail(FSD_ERR_INVALID, "blur: sigma %g must be in (0, 1000]", sigma);
    const int w = in->w, h = in->h, c = in->c;
    const int r = (int)ceil(3.0 * sigma);
    double *k = fsd_alloc((size_t)(2 * r + 1) * sizeof(double));
    float *tmp = fsd_alloc((size_t)w * h * c * sizeof(float));
    fsd_status s = (k && tmp) ? fsd_image_alloc(out, w, h, c) : FSD_ERR_NOMEM;
    if (s) {
        fsd_free(k);
        fsd_free(tmp);
        return s;
    }
    double sum = 0.0;
    for (int i = -r; i <= r; i++) sum += k[i + r] = exp(-(double)i * i / (2.0 * sigma * sigma));
    for (int i = 0; i <= 2 * r; i++) k[i] /= sum;

    /* horizontal: in -> tmp, then vertical: tmp -> out (double accumulation) */
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)w * h * c > 65536)
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < h; y++) {
            const float *src = in->data + ((size_t)ch * h + y) * w;
            float *dst = tmp + ((size_t)ch * h + y) * w;
            for (int x = 0; x < w; x++) {
                double acc = 0.0;
                if (x - r >= 0 && x + r < w)
                    for (int i = -r; i <= r; i++) acc += k[i + r] * src[x + i];
                else
                    for (int i = -r; i <= r; i++) acc += k[i + r] * src[reflect_index(x + i, w)];
                dst[x] = (float)acc;
            }
        }
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)w * h * c > 65536)
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < h; y++) {
            const float *src = tmp + (size_t)ch * h * w;
            float *dst = out->data + ((size_t)ch * h + y) * w;
            for (int x = 0; x < w; x++) {
                double acc = 0.0;
                for (int i = -r; i <= r; i++) acc += k[i + r] * src[(size_t)reflect_index(y + i, h) * w + x];
                dst[x] = (float)acc;
            }
        }
    fsd_free(k);
    fsd_free(tmp);
    return FSD_OK;
}

void fsd_degrade_size(int w, int h, double scale, int *ow, int *oh) {
    *ow = (int)floor(w / scale + 0.5);
    *oh = (int)floor(h / scale + 0.5);
}

fsd_status fsd_degrade(const fsd_image *hr, const fsd_degrade_params *p, fsd_image *lr) {
    memset(lr, 0, sizeof *lr);
    if (!hr || !hr->data || hr->w <= 0 || hr->h <= 0 || (hr->c != 1 && hr->c != 3))
        return fsd_fail(FSD_ERR_INVALID, "degrade: bad input image");
    if (!isfinite(p->scale) || p->scale < 1.0)
        return fsd_fail(FSD_ERR_INVALID, "degrade: scale %g must be a number >= 1", p->scale);
    if (!isfinite(p->blur_sigma) || p->blur_sigma < 0.0)
        return fsd_fail(FSD_ERR_INVALID, "degrade: blur sigma %g must be >= 0", p->blur_sigma);
    if (!isfinite(p->noise_sigma) || p->noise_sigma < 0.0)
        return fsd_fail(FSD_ERR_INVALID, "degrade: noise sigma %g must be >= 0", p->noise_sigma);
    int ow, oh;
    fsd_degrade_size(hr->w, hr->h, p->scale, &ow, &oh);
    if (ow < FSD_DEGRADE_MIN_SIZE || oh < FSD_DEGRADE_MIN_SIZE)
        return fsd_fail(FSD_ERR_INVALID, "degrade: %dx%d / %g gives %dx%d, smaller than the %d px minimum", hr->w,
                        hr->h, p->scale, ow, oh, FSD_DEGRADE_MIN_SIZE);

    /* The HR image is treated as an 8-bit picture: the blurred result is rounded like a saved
     * image, so the downscale is exactly Pillow's 8-bit bicubic on it. */
    fsd_image work;
    fsd_status s = p->blur_sigma > 0.0 ? fsd_image_gaussian_blur(hr, p->blur_sigma, &work) : fsd_image_copy(&work, hr);
    if (s) return s;
    fsd_image_quantize(&work);
    s = fsd_image_resize_bicubic(&work, ow, oh, 1, lr);
    fsd_image_free(&work);
    if (s) return s;

    if (p->noise_sigma > 0.0) {
        /* One normal draw per LR value (planar order), stream 0 of the seed: the same numbers
         * whatever the thread count. */
        size_t n = (size_t)ow * oh * lr->c;
        float *z = fsd_alloc(n * sizeof(float));
        if (!z) {
            fsd_image_free(lr);
            return FSD_ERR_NOMEM;
        }
        fsd_rng rng = {p->seed, 0};
        fsd_rng_normal(&rng, 0, z, n);
        const float sg = (float)p->noise_sigma;
        for (size_t i = 0; i < n; i++) lr->data[i] += sg * z[i];
        fsd_free(z);
    }
    fsd_image_quantize(lr);
    return FSD_OK;
}
