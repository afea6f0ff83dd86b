/* The FS-Diff trainer (docs/training.md): the U-Net and the clarity encoder trained jointly on
 * batches from fsd_traindata, ε-loss (L1 or L2) on the SR3 continuous noise level plus the clarity
 * encoder's degradation loss, Adam with linear warm-up and cosine decay, global gradient clipping,
 * EMA weights, atomic checkpoints that resume bit-exactly, optional data parallelism through a
 * caller-provided all-reduce (the CLI plugs in MPI; the library does not depend on it).
 *
 * Determinism: step k uses batch k of the data stream (its samples k*B .. k*B+B-1), the diffusion
 * draw of those global sample indices, dropout stream (seed, k); nothing depends on earlier steps
 * except through the weights, the Adam moments and the EMA, all of which the checkpoint holds in
 * float32. So a run resumed from the checkpoint of step k continues bit-identically (same thread
 * count: the BLAS reductions in the backward depend on it). */
#ifndef FSDIFF_TRAINER_H
#define FSDIFF_TRAINER_H

#include "fsdiff/clarity.h"
#include "fsdiff/core.h"
#include "fsdiff/model.h"
#include "fsdiff/nn.h"
#include "fsdiff/ops.h"
#include "fsdiff/traindata.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FSD_TRAIN_CONFIG_META_KEY "fsdiff.train_config"
#define FSD_TRAIN_STATE_META_KEY "fsdiff.train_state"

typedef struct fsd_train_config {
    fsd_net_config net;
    fsd_clarity_config clarity;
    fsd_diffusion_config diff;     /* schedule used for training (+ recommended sampling, stored) */
    fsd_traindata_config data;     /* data.batch = the GLOBAL batch (all ranks together) */
    uint64_t seed;                 /* init, diffusion draws, dropout (data has its own data.seed) */
    int64_t steps;                 /* total optimiser steps of the run */
    double lr;                     /* peak learning rate */
    double lr_min;                 /* final learning rate of the cosine decay */
    int64_t warmup;                /* linear warm-up steps from lr/warmup to lr */
    double beta1, beta2, adam_eps, weight_decay; /* AdamW when weight_decay > 0 */
    double clip;                   /* global gradient L2 norm clip, 0 = off */
    double ema;                    /* EMA decay (0 = EMA equals the weights) */
    fsd_loss_kind loss;            /* ε loss: L1 (the authors') or L2 */
    int per_sample_t;              /* 1: a noise level per sample (default); 0: one per batch (authors') */
    fsd_context_mode context;      /* roles for the context tokens during training (from the TRUE degradations) */
    int64_t ckpt_every;            /* checkpoint + model every N steps (and at the end) */
    int64_t log_every;             /* train.csv row every N steps */
    int64_t val_every;             /* validation every N steps (0 = off) */
    int val_pairs, val_steps, val_crop, val_scale_a, val_scale_b;
} fsd_train_config;

/* Defaults for a net preset: B 4, crops {64, 96, 128}, scales {2, 4, 8}, lr 2e-4 -> 2e-6 cosine,
 * warm-up 500, Adam 0.9/0.999/1e-8, clip 1.0, EMA 0.999, L1, per-sample t, context clarity,
 * checkpoints every 500, log every 10, validation every 1000 on 6 pairs, ddim 20 steps, crop 128, x4/x4. */
fsd_status fsd_train_config_default(fsd_train_config *c, const char *preset);
fsd_status fsd_train_config_validate(const fsd_train_config *c);
/* The data-pipeline config a run opens its loaders with: c->data plus, for a residual target with
 * whole-frame samples, the per-sample residual base of the whole frame (traindata.h). */
fsd_traindata_config fsd_train_config_data(const fsd_train_config *c);
/* Everything that must match for a resume to continue the same run, as one JSON line (fsd_free);
 * steps, ckpt_every, log_every and the val_* fields are excluded (they may change on resume). */
char *fsd_train_config_identity_json(const fsd_train_config *c);

/* Data parallelism: ranks hold identical weights; each makes its slice of the global batch and the
 * gradients (already scaled by 1/size) are summed with allreduce. size 1: no communication. */
typedef struct fsd_train_comm {
    int rank, size;
    /* in-place sum over ranks of buf[n]; every rank must call it with the same n */
    fsd_status (*allreduce_sum)(void *ctx, float *buf, size_t n);
    /* in-place sum of a few doubles (losses for the log) */
    fsd_status (*allreduce_sum_f64)(void *ctx, double *buf, size_t n);
    void *ctx;
} fsd_train_comm;

typedef struct fsd_trainer fsd_trainer;

/* Creates the net and the clarity encoder; initialised from cfg->seed, or from `init_model` (a model
 * or checkpoint file whose configs must match cfg's; fresh optimiser state, step 0). comm may be NULL. */
fsd_status fsd_trainer_create(fsd_trainer **out, const fsd_train_config *cfg, const char *init_model,
                              const fsd_train_comm *comm);
void fsd_trainer_free(fsd_trainer *t);
const fsd_train_config *fsd_trainer_cfg(const fsd_trainer *t);
int64_t fsd_trainer_step(const fsd_trainer *t); /* completed steps */
fsd_net *fsd_trainer_net(fsd_trainer *t);
fsd_clarity *fsd_trainer_clarity(fsd_trainer *t);
fsd_net *fsd_trainer_ema_net(fsd_trainer *t);
fsd_clarity *fsd_trainer_ema_clarity(fsd_trainer *t);

/* Learning rate of step k (0-based): warm-up then cosine from lr to lr_min over the remaining steps. */
double fsd_train_lr(const fsd_train_config *c, int64_t k);

typedef struct fsd_train_stats {
    int64_t step;        /* the step just done (1-based count of completed steps) */
    double loss;         /* loss_eps + loss_deg (mean over ranks) */
    double loss_eps, loss_deg;
    double grad_norm;    /* before clipping */
    double lr;
    int crop;            /* S of this batch */
} fsd_train_stats;

/* One optimiser step on batch `step` of td (whose config must equal cfg->data). */
fsd_status fsd_trainer_train_step(fsd_trainer *t, fsd_traindata *td, fsd_train_stats *st);

/* Checkpoint: the raw weights under the model names, the EMA and Adam moments as "train.*" tensors,
 * all F32, configs and state in metadata; atomic. */
fsd_status fsd_trainer_save_checkpoint(const fsd_trainer *t, const char *path);
/* Loads a checkpoint written with an equal identity config (else one FSD_ERR_FORMAT line naming the
 * first differing part). */
fsd_status fsd_trainer_load_checkpoint(fsd_trainer *t, const char *path);
/* Reads only the train config stored in a checkpoint (for --resume without a config). */
fsd_status fsd_train_config_from_checkpoint(fsd_train_config *c, const char *path);
/* The EMA weights as a model file (dtype F32/F16/BF16) with "fsdiff.train" provenance metadata. */
fsd_status fsd_trainer_save_model(const fsd_trainer *t, const char *path, fsd_dtype dtype, const char *provenance_json);

/* Validation on the EMA weights: the first val_pairs of fsd_traindata_val_pick, centre crop val_crop
 * at (val_scale_a, val_scale_b), ddim val_steps (seed fixed), vs "bicubic + teacher" (the teacher
 * method applied to the upsampled sources). Means over pairs of PSNR and SSIM against the teacher
 * fusion of the HR pair (the target). The teacher fusion of the upsampled pair is made by `baseline`
 * (a callback, as the caller knows the teacher's method and parameters): out (3, h, w) on 0..255
 * from a, b (3, h, w) on 0..255 with ca, cb real channels. auto_pick is what the "auto" method
 * resolves to for this pair, decided on the whole HR pair as the teacher target was (the crop alone
 * may have no dark background to decide by). With whole-frame residual samples (fsd_train_config_data)
 * the baseline is the sample's residual base instead -- the residual method's fusion of the whole
 * upsampled frame, the teacher's method in a run without the teacher/base warning -- and `baseline`
 * is not called: fusing the crop would give another image (docs/training.md "Whole-frame samples"). */
typedef fsd_status (*fsd_train_baseline_fn)(void *ctx, fsd_fuse_method auto_pick, const float *a, int ca,
                                            const float *b, int cb, int w, int h, float *out);
typedef struct fsd_val_result {
    int n;
    double psnr_model, psnr_base, ssim_model, ssim_base;
    double seconds;
} fsd_val_result;
fsd_status fsd_trainer_validate(fsd_trainer *t, fsd_traindata *val, fsd_train_baseline_fn baseline, void *bctx,
                                fsd_val_result *out);

#ifdef __cplusplus
}
#endif
#endif
