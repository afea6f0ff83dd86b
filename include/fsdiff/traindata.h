/* The trainer's data pipeline: an 8-bit in-memory cache of training pairs and their teacher
 * fusions, and deterministic, resumable batches made from it (random crops, dihedral transforms,
 * per-modality degradation -> bicubic back up). See docs/training-data.md.
 *
 * Determinism: sample b of batch k (global sample index i = k*B + b) is a pure function of
 * (seed, B, crop-size set, scale set, blur/noise settings, pair list, i). Nothing depends on the
 * thread count, on which batches were made before, or on their order, so a checkpoint that holds
 * the next batch index k (the "data cursor") resumes the exact same stream of batches. */
#ifndef FSDIFF_TRAINDATA_H
#define FSDIFF_TRAINDATA_H

#include "fsdiff/core.h"
#include "fsdiff/fusion.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FSD_TD_MAX_SIZES 8
#define FSD_TD_MAX_SCALES 8

typedef struct fsd_traindata_config {
    uint64_t seed;
    int batch;                          /* B >= 1 */
    int crop_sizes[FSD_TD_MAX_SIZES];   /* side S of the square crops, one drawn per batch */
    int n_crop_sizes;
    int align;                          /* every S must be a multiple of this (U-Net: 2^downsamplings) */
    int scales[FSD_TD_MAX_SCALES];      /* integer SR factors, drawn per sample AND per modality */
    int n_scales;
    int augment;                        /* 1: one of the 8 dihedral transforms per sample; 0: identity */
    /* Optional extra degradation, per sample and modality: with probability p, sigma ~ U(0, max). */
    double blur_p, blur_max;            /* Gaussian blur on the HR crop (px) */
    double noise_p, noise_max;          /* Gaussian noise on the LR image (0..255 scale) */
    /* whole_frame 1: degrade and upsample the whole HR frame, then cut the crop from it -- what
     * `fsdiff fuse` conditions on, borders and all; 0: degrade the crop itself. */
    int whole_frame;
    /* residual_base 1 (with whole_frame): also make each sample's residual base, the crop of the
     * base_method fusion of the whole upsampled frame (auto: decided on the whole HR pair), as
     * fsdiff fuse makes it. A fusion of the crop alone differs: laplacian's pyramid depth follows
     * the image size, gradient's solve is global (docs/training.md "Whole-frame samples"). */
    int residual_base;
    fsd_fuse_method base_method;
} fsd_traindata_config;

/* Defaults: seed 0, B 4, S in {64, 96, 128}, align 16, scales {2, 4, 8}, augment on, no blur/noise,
 * crops degraded on their own (whole_frame 0), no residual base. */
void fsd_traindata_config_default(fsd_traindata_config *c);

/* The checks fsd_traindata_open makes on a config (crop sizes vs align and scales, ranges). */
fsd_status fsd_traindata_config_validate(const fsd_traindata_config *c);

/* Everything that was drawn for one sample (also what a test needs to recompute it). */
typedef struct fsd_td_plan {
    int64_t index;       /* global sample index i = k*B + b */
    int pair;            /* pair index in the loader (0..n_pairs-1) */
    int x, y, size;      /* crop rectangle in the HR pair: [x, x+size) x [y, y+size) */
    int transform;       /* 0..7: F^(t>>2) o R^(t&3), R = rot90 counter-clockwise, F = left-right flip */
    int scale[2];        /* SR factor of A and of B */
    double blur[2];      /* blur sigma of A, B (0 = none) */
    double noise[2];     /* noise sigma of A, B (0 = none) */
    uint64_t noise_seed[2]; /* fsd_degrade seed of A, B */
} fsd_td_plan;

/* One batch, NCHW float32. Buffers are owned by the batch and grow as needed; free with
 * fsd_td_batch_free. A zero-initialised struct is an empty batch. */
typedef struct fsd_td_batch {
    int n, w, h;            /* samples, width, height (w == h for training crops) */
    float *cond;            /* (n, 6, h, w): [A_up x3 | B_up x3] in [-1, 1]; grey replicated */
    float *x0;              /* (n, 3, h, w): teacher fusion in [-1, 1]; grey replicated */
    float *base;            /* (n, 3, h, w): the residual base in [-1, 1]; valid when has_base */
    int has_base;
    float *synth;           /* (n, 2, 3): per modality (A, B): log2 scale, blur sigma, noise sigma */
    fsd_td_plan *plan;      /* (n) */
    const char **names;     /* (n) pair names, owned by the loader */
    size_t cap_px, cap_n;   /* allocated capacity (pixels per plane * n, samples) */
} fsd_td_batch;
void fsd_td_batch_free(fsd_td_batch *b);

typedef struct fsd_traindata fsd_traindata;

/* Opens the pairs of the split folders dirs[0..n_dirs) (each .../<set>/<split>, read with
 * fsd_pairs_scan) and their teacher targets TEACHER/<set>/<split>/NAME.png, and decodes all of them
 * into an 8-bit cache. Fails with one message naming the file: a missing teacher target (suggesting
 * `fsdiff teacher`), a size mismatch (A vs B, or teacher vs pair), an image smaller than the largest
 * crop size, an empty or malformed split folder, an unreadable image; and on a bad config. cfg may
 * be NULL for a validation-only loader (defaults). */
fsd_status fsd_traindata_open(const char *const *dirs, int n_dirs, const char *teacher_dir,
                              const fsd_traindata_config *cfg, fsd_traindata **out);
void fsd_traindata_close(fsd_traindata *td);

int fsd_traindata_n_pairs(const fsd_traindata *td);
const char *fsd_traindata_pair_name(const fsd_traindata *td, int pair);
/* Size of the pair (HR); channel counts of A, B and the teacher target (1 or 3). */
void fsd_traindata_pair_info(const fsd_traindata *td, int pair, int *w, int *h, int *ca, int *cb, int *ct);
/* Share of the pair's HR pixels where max(Y_A, Y_B) < FSD_FUSE_DARK_LEVEL (Y: BT.601 luma of a colour
 * source): what the "auto" fusion method decides by, taken on the whole pair (fusion.h). */
double fsd_traindata_pair_dark_share(const fsd_traindata *td, int pair);
/* The fusion method m stands for on this pair: m itself, or for FSD_FUSE_AUTO what auto picks from
 * the pair's HR dark share (teacher, residual base and validation baseline all decide this way). */
fsd_fuse_method fsd_traindata_pair_method(const fsd_traindata *td, int pair, fsd_fuse_method m);
size_t fsd_traindata_cache_bytes(const fsd_traindata *td);

/* The drawn parameters of sample b of batch k (pure; no image work). */
fsd_status fsd_traindata_plan(const fsd_traindata *td, int64_t k, int b, fsd_td_plan *out);
/* Makes batch k (k >= 0) into out. Samples are made in parallel (OpenMP); the result does not
 * depend on the thread count nor on earlier calls. Not reentrant on one loader. */
fsd_status fsd_traindata_batch(fsd_traindata *td, int64_t k, fsd_td_batch *out);
/* Samples first..first+count-1 of batch k only (out->n = count): what one of several data-parallel
 * ranks makes; identical to the same samples of fsd_traindata_batch. */
fsd_status fsd_traindata_batch_range(fsd_traindata *td, int64_t k, int first, int count, fsd_td_batch *out);

/* Validation: pair `pair` at fixed scales (scale_a, scale_b), no augmentation, no blur/noise,
 * noise seed 0. crop > 0: the centred crop x crop (crop must be a multiple of 8, of align and of
 * both scales, and fit the image); crop == 0: the whole image, centre-cropped to the largest
 * multiple of lcm(8, align, scale_a, scale_b) on each side. Writes a batch of one sample. */
fsd_status fsd_traindata_val(fsd_traindata *td, int pair, int scale_a, int scale_b, int crop, fsd_td_batch *out);
/* A fixed, spread-out choice of n validation pairs: pair j*N/n for j < n (n clipped to N). */
int fsd_traindata_val_pick(const fsd_traindata *td, int n, int j);

#ifdef __cplusplus
}
#endif
#endif
