/* A model file: everything `fsdiff fuse` needs, in one safetensors file (docs/model.md "Model files").
 *
 *   tensors                      metadata key          contents
 *   authors' U-Net names         "fsdiff.config"       the network (fsd_net)
 *   "clarity.*"                  "fsdiff.clarity"      the clarity encoder (optional: without it the
 *                                                      context must come from a --context-file)
 *                                "fsdiff.diffusion"    the β schedule the net was trained with and the
 *                                                      recommended sampler / steps / context mode
 *   ("train.*", checkpoints only: optimiser state, ignored here)
 *                                anything else         provenance (e.g. "fsdiff.train": step, data)
 */
#ifndef FSDIFF_MODEL_H
#define FSDIFF_MODEL_H

#include "fsdiff/clarity.h"
#include "fsdiff/core.h"
#include "fsdiff/diffusion.h"
#include "fsdiff/fusion.h"
#include "fsdiff/nn.h"
#include "fsdiff/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FSD_DIFFUSION_META_KEY "fsdiff.diffusion"

typedef struct fsd_diffusion_config {
    /* training schedule (the sampler must use the same one) */
    fsd_beta_kind schedule;
    int T;
    double beta_start, beta_end;
    /* recommended sampling (what `fsdiff fuse` uses when not told otherwise) */
    fsd_sampler_kind sampler;
    int steps;
    fsd_spacing spacing;
    double eta;
    fsd_context_mode context;
    /* what the diffusion generates (docs/model.md "Residual target"): the fused image itself (residual = 0,
     * the paper's), or residual_scale * (fused - base), base = residual_method applied to the upsampled
     * sources ("upsample then fuse"), added back after sampling. The base carries the low frequencies,
     * which a small model trained briefly gets wrong (grey backgrounds); the diffusion adds the detail. */
    int residual;
    fsd_fuse_method residual_method;
    double residual_scale;
    /* soft threshold of the added detail, in grey levels of 255 (0: off): fused = base + sign(r) max(|r| - t, 0)
     * with r = x / residual_scale. The mean-estimate residual carries a few grey levels of noise where the
     * target detail is zero (black backgrounds), which SSIM punishes hard; docs/training.md "Residual target". */
    double residual_shrink;
    /* what the network outputs: ε (the paper's) or v (docs/diffusion.md "Prediction") */
    fsd_prediction prediction;
} fsd_diffusion_config;

/* linear 1e-6 -> 1e-2, T = 2000 (SR3's); ddim, 50 steps, linspace, eta 0; context clarity. */
void fsd_diffusion_config_default(fsd_diffusion_config *c);
/* Ranges as fsd_schedule_init; 1 <= steps <= T; eta >= 0. One-line FSD_ERR_INVALID naming the field. */
fsd_status fsd_diffusion_config_validate(const fsd_diffusion_config *c);
/* One JSON line (fsd_free it) <-> config; parsing starts from the defaults, unknown keys are errors. */
char *fsd_diffusion_config_to_json(const fsd_diffusion_config *c);
fsd_status fsd_diffusion_config_from_json(fsd_diffusion_config *c, const char *text, size_t len, const char *label);

/* The base of a residual model for one sample: cond (6, h, w) = [A x3 | B x3] in [-1, 1] (grey
 * replicated; ca, cb = 1 or 3 say which source is grey), fused with method m (default parameters,
 * colour as fsd_fuse_images: the same rule as the teacher targets), written to base (3, h, w) in
 * [-1, 1], grey replicated. m is d->residual_method when cond is the whole image; where cond is a
 * crop and d->residual_method is auto, the caller passes the method decided on the whole pair. */
fsd_status fsd_residual_base(fsd_fuse_method m, const float *cond, int ca, int cb, int w, int h, float *base);
/* x (3 * hw) <- clamp(base + shrink(x / residual_scale), -1, 1): a sampled residual back to an image
 * (shrink: the soft threshold residual_shrink / 127.5, identity when 0). */
void fsd_residual_apply(const fsd_diffusion_config *d, const float *base, float *x, size_t n);

typedef struct fsd_model {
    fsd_net *net;
    fsd_clarity *clarity;      /* NULL when the file has none */
    fsd_diffusion_config diff; /* defaults when the file has no "fsdiff.diffusion" */
    char path[1024];
    char *train_info;          /* copy of "fsdiff.train" metadata or NULL (fsd_free'd by close) */
} fsd_model;

/* Opens a model (or checkpoint) file: creates the net from its config and loads it, the clarity
 * encoder if present (it must fit the net: fsd_clarity_check_net), the diffusion config. */
fsd_status fsd_model_open(fsd_model *m, const char *path);
void fsd_model_close(fsd_model *m);

/* Adds the net, the clarity encoder (if not NULL) and the diffusion config to a writer. */
fsd_status fsd_model_add_to_writer(const fsd_net *net, const fsd_clarity *clarity, const fsd_diffusion_config *d,
                                   fsd_st_writer *w, fsd_dtype dtype);
/* Writes a model file atomically; extra metadata pairs (n_extra) are added as given. */
fsd_status fsd_model_save(const fsd_net *net, const fsd_clarity *clarity, const fsd_diffusion_config *d,
                          const char *path, fsd_dtype dtype, int n_extra, const char *const *keys,
                          const char *const *vals);

#ifdef __cplusplus
}
#endif
#endif
