/* --save-steps: record frames of the denoising trajectory and tile them into one image (the
 * authors' `sr_process` picture: the condition image, then the state every 1 | (T/10) steps, the
 * result last). */
#include "fsdiff/diffusion.h"

#include <string.h>

fsd_status fsd_frames_init(fsd_frames *f, int C, int H, int W) {
    memset(f, 0, sizeof *f);
    if ((C != 1 && C != 3) || H < 1 || W < 1 || (int64_t)H * W > (1 << 28))
        return fsd_fail(FSD_ERR_INVALID, "frames: bad frame shape %dx%dx%d (C must be 1 or 3)", C, H, W);
    f->C = C, f->H = H, f->W = W;
    return FSD_OK;
}

void fsd_frames_free(fsd_frames *f) {
    if (!f) return;
    fsd_free(f->data);
    memset(f, 0, sizeof *f);
}

static float *frames_slot(fsd_frames *f) {
    size_t fs = (size_t)f->C * f->H * f->W;
    if (f->n == f->cap) {
        int cap = f->cap ? 2 * f->cap : 8;
        float *d = fsd_alloc((size_t)cap * fs * sizeof(float));
        if (!d) return NULL;
        if (f->n) memcpy(d, f->data, (size_t)f->n * fs * sizeof(float));
        fsd_free(f->data);
        f->data = d, f->cap = cap;
    }
    return f->data + (size_t)f->n++ * fs;
}

fsd_status fsd_frames_push(fsd_frames *f, const float *chw) {
    if (!f || !chw || !f->C) return fsd_fail(FSD_ERR_INVALID, "frames: push on an uninitialised list");
    float *d = frames_slot(f);
    if (!d) return fsd_fail(FSD_ERR_NOMEM, "frames: out of memory for frame %d", f->n);
    memcpy(d, chw, (size_t)f->C * f->H * f->W * sizeof(float));
    return FSD_OK;
}

fsd_status fsd_frames_push_image(fsd_frames *f, const fsd_image *im) {
    if (!f || !im || !im->data || !f->C) return fsd_fail(FSD_ERR_INVALID, "frames: NULL image");
    if (im->w != f->W || im->h != f->H || im->c != f->C)
        return fsd_fail(FSD_ERR_INVALID, "frames: image %dx%dx%d does not match frames %dx%dx%d", im->w, im->h, im->c,
                        f->W, f->H, f->C);
    float *d = frames_slot(f);
    if (!d) return fsd_fail(FSD_ERR_NOMEM, "frames: out of memory for frame %d", f->n);
    size_t fs = (size_t)f->C * f->H * f->W;
    for (size_t e = 0; e < fs; e++) d[e] = im->data[e] / 127.5f - 1.0f;
    return FSD_OK;
}

fsd_status fsd_frames_grid(const fsd_frames *f, int cols, int pad, fsd_image *out) {
    if (!f || !out || f->n < 1) return fsd_fail(FSD_ERR_INVALID, "frames: no frames to tile");
    if (pad < 0 || pad > 256) return fsd_fail(FSD_ERR_INVALID, "frames: pad %d outside 0..256", pad);
    if (cols <= 0 || cols > f->n) cols = f->n;
    int rows = (f->n + cols - 1) / cols;
    int64_t gw = (int64_t)cols * f->W + (int64_t)(cols - 1) * pad, gh = (int64_t)rows * f->H + (int64_t)(rows - 1) * pad;
    if (gw > 65535 || gh > 65535 || gw * gh > (1 << 28))
        return fsd_fail(FSD_ERR_INVALID, "frames: grid %lldx%lld too large", (long long)gw, (long long)gh);
    fsd_status st = fsd_image_alloc(out, (int)gw, (int)gh, f->C);
    if (st != FSD_OK) return st;
    size_t plane = (size_t)gw * gh, fs = (size_t)f->C * f->H * f->W;
    for (size_t e = 0; e < plane * f->C; e++) out->data[e] = 255.0f; /* white gaps */
    for (int q = 0; q < f->n; q++) {
        int ox = (q % cols) * (f->W + pad), oy = (q / cols) * (f->H + pad);
        const float *src = f->data + (size_t)q * fs;
        for (int c = 0; c < f->C; c++)
            for (int y = 0; y < f->H; y++)
                for (int x = 0; x < f->W; x++) {
                    float v = src[((size_t)c * f->H + y) * f->W + x];
                    v = v < -1.0f ? -1.0f : v > 1.0f ? 1.0f : v;
                    if (v != v) v = -1.0f;
                    out->data[(size_t)c * plane + (size_t)(oy + y) * gw + ox + x] = (v + 1.0f) * 127.5f;
                }
    }
    return FSD_OK;
}

int fsd_frames_default_every(int K) { return 1 | (K / 10); }

fsd_status fsd_frame_recorder_step(void *ctx, const fsd_step_info *info) {
    fsd_frame_recorder *r = ctx;
    if (!r || !r->frames || r->sample < 0 || r->sample >= info->B)
        return fsd_fail(FSD_ERR_INVALID, "frame recorder: bad sample index");
    if (info->n_per_sample != (size_t)r->frames->C * r->frames->H * r->frames->W)
        return fsd_fail(FSD_ERR_INVALID, "frame recorder: %zu values per sample, frames hold %dx%dx%d",
                        info->n_per_sample, r->frames->C, r->frames->H, r->frames->W);
    int every = r->every > 0 ? r->every : 1;
    if ((info->K - 1 - info->k) % every != 0) return FSD_OK;
    const float *src = (r->what ? info->x0_hat : info->x) + (size_t)r->sample * info->n_per_sample;
    return fsd_frames_push(r->frames, src);
}
