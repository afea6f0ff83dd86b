/* Inference with a trained FS-Diff model: two low-resolution sources in, one fused image at the
 * output resolution out (docs/fuse.md). This is what `fsdiff fuse` and the eval method
 * "model:PATH" run.
 *
 * Sources: a = IR / MRI (clarity source 0), b = VI / the other modality (source 1), fsd_image on
 * the 0..255 scale, c = 1 or 3, any sizes that satisfy the size rule.
 *
 * Size rule (fsd_fuse_run): the output is `scale` x the LARGER input (by width; on equal widths
 * a); each input's own factor out_w / in_w must be an integer and equal out_h / in_h exactly.
 * Example: IR 80x60 + VI 160x120 with scale 4 -> 640x480 (IR x8, VI x4). scale is 1..16; the
 * model was trained on factors 2, 4 and 8, so any other factor of an input is allowed with a
 * warning in the log. fsd_fuse_run_size skips the rule and resizes both inputs to any size.
 *
 * Conditioning, exactly as the training batches are made (src/diffusion/traindata.c):
 *   each input rounded to 8 bits, Pillow-exact 8-bit bicubic up to the output size
 *   (fsd_image_resize_bicubic(.., u8_exact = 1)), v / 127.5 - 1, grey replicated to 3 channels;
 *   cond (6, H, W) = [A_up x3 | B_up x3].
 * Context: the model's clarity encoder runs ONCE on the two upsampled sources of the whole image
 * (B = 1) in mode opts.context (mean | clarity), or opts.context_ext (required when the model has
 * no clarity encoder) is used as given.
 * Sampling: the model's training schedule, levels from fsd_diffusion_levels_for, the sampler of
 * fsd_diffusion_sample with a tiled denoiser (tiles.h): every tile crops cond, runs the U-Net on
 * [cond | x_t] (9, th, tw) with the whole-image context. Without opts.tile, or when the image
 * fits one tile, the plan has one tile (= untiled sampling of the image padded to the U-Net's
 * multiple). Output: the final clamped x0_hat, (v + 1) * 127.5 (not rounded): RGB (c = 3) when
 * either input has colour, else grey, the mean of the 3 output channels.
 *
 * Determinism: the same model, inputs, options, seed and thread count give a bit-identical output;
 * whatever the thread count too when fsd_blas_split_invariant() (docs/fuse.md).
 * Threads: the network keeps work arenas, so one model runs one fsd_fuse_run at a time (callers that
 * share a model between threads serialise, as the eval's model:PATH method does). */
#ifndef FSDIFF_FUSE_H
#define FSDIFF_FUSE_H

#include "fsdiff/clarity.h"
#include "fsdiff/core.h"
#include "fsdiff/diffusion.h"
#include "fsdiff/image.h"
#include "fsdiff/model.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FSD_FUSE_MAX_SCALE 16

/* Called after every tile of every sampler step: step = steps completed so far (0..steps-1 while
 * the step runs), tile = tiles done in this step (1..tiles). */
typedef void (*fsd_fuse_progress_fn)(void *ctx, int step, int steps, int tile, int tiles);

typedef struct fsd_fuse_opts {
    /* sampling; "unset" values take the model's recommendation (m->diff) */
    int sampler;          /* fsd_sampler_kind, < 0: the model's */
    int steps;            /* 1..T, 0: the model's */
    int spacing;          /* fsd_spacing, < 0: the model's when the sampler is the model's, else
                             fsd_default_spacing(sampler) */
    double eta;           /* ddim, 0..1; < 0: the model's */
    uint64_t seed;        /* x_T and the sampler noise (default 0) */
    double residual_shrink; /* residual models: soft threshold in grey levels, 0..64; < 0: the model's */
    /* tiling (tiles.h) */
    int tile;             /* max tile side, a multiple of the U-Net factor; 0: one tile */
    int overlap;          /* < 0: tile / 4 rounded down to the factor */
    int guard;            /* < 0: overlap / 4 */
    /* context */
    int context;          /* fsd_context_mode, < 0: the model's */
    const float *context_ext; /* (context_tokens * context_dim) floats or NULL (fsd_context_file_load) */
    /* outputs besides the image */
    fsd_frames *frames;   /* --save-steps: if not NULL, a zeroed fsd_frames that is initialised here
                             (C = 3, output size) and receives cond A, cond B, then the state every
                             frames_every steps (the authors' sr_process); fsd_frames_free it */
    int frames_every;     /* 0: fsd_frames_default_every(steps) */
    fsd_fuse_progress_fn progress; /* may be NULL */
    void *progress_ctx;
    volatile int *cancel; /* optional: non-zero stops after the current step (FSD_ERR_INVALID) */
    size_t max_memory;    /* > 0: refuse (FSD_ERR_NOMEM) before sampling when the estimate exceeds it */
} fsd_fuse_opts;

/* Everything unset: the model's sampler/steps/spacing/eta/context, seed 0, one tile. */
void fsd_fuse_opts_default(fsd_fuse_opts *o);

/* What was run (for logs, PNG text chunks and --json). */
typedef struct fsd_fuse_info {
    char model[1024];
    int in_w[2], in_h[2], in_c[2]; /* a, b */
    int factor[2];                  /* out_w / in_w of a and b (0 when not an integer: run_size) */
    int out_w, out_h, out_c;
    fsd_sampler_kind sampler;
    int steps;
    fsd_spacing spacing;
    double eta;
    uint64_t seed;
    double residual_shrink;         /* residual models: the soft threshold used (grey levels); 0 otherwise */
    fsd_context_mode context;
    int context_external;           /* 1: opts.context_ext was used (no clarity prediction) */
    int align, tile, overlap, guard, tiles; /* tiles = tiles per step (1: untiled) */
    int have_deg;                   /* 1: deg and roles below come from the clarity encoder */
    float deg[2][3];                /* predicted degradation of a and b: log2 scale, blur, noise */
    int roles[2];                   /* fsd_clarity_role of a and b (-1: none) */
    long long net_calls;            /* U-Net forwards (steps x tiles) */
    /* memory, bytes (estimate: before sampling; the net's peaks are measured after) */
    size_t mem_weights;             /* parameters + gradient buffers of the net and the encoder */
    size_t mem_net_tile;            /* the U-Net's arenas for one tile (extrapolated from probes) */
    size_t mem_sampler;             /* fsd_tiled_memory_bytes without the net term */
    size_t mem_images;              /* conditioning, clarity input/maps, output, frames */
    size_t mem_total;               /* the sum: compared with opts.max_memory */
    size_t mem_net_measured;        /* act + scratch peaks of the U-Net during sampling */
    double seconds, seconds_context, seconds_sampling;
} fsd_fuse_info;

/* The size rule above: the output size and each input's integer factor, or one FSD_ERR_INVALID
 * line giving both sizes, the scale and the rule. */
fsd_status fsd_fuse_output_size(int aw, int ah, int bw, int bh, int scale, int *out_w, int *out_h, int *fa,
                                 int *fb);

/* Fuses a_lr + b_lr at `scale` (size rule) into *out (allocated here; c = 3 if either input has
 * colour, else 1; values 0..255 not rounded). info may be NULL. On failure *out is empty. */
fsd_status fsd_fuse_run(const fsd_model *m, const fsd_image *a_lr, const fsd_image *b_lr, int scale,
                        const fsd_fuse_opts *opts, fsd_image *out, fsd_fuse_info *info);
/* Same with any output size (each input bicubic-resized to out_w x out_h), e.g. the eval's HR size
 * when round(w / S) * S misses it by a pixel. The output must be at least 8 x 8. */
fsd_status fsd_fuse_run_size(const fsd_model *m, const fsd_image *a_lr, const fsd_image *b_lr, int out_w, int out_h,
                             const fsd_fuse_opts *opts, fsd_image *out, fsd_fuse_info *info);

/* One JSON object (no newline) describing info, for --json. */
void fsd_fuse_info_json(FILE *fp, const fsd_fuse_info *info);

#ifdef __cplusplus
}
#endif
#endif
