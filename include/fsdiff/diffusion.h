/* Diffusion process, independent of the network: β schedules (SR3 `make_beta_schedule`), the SR3
 * training draw (continuous noise level γ = √ᾱ), the ε loss selector, the samplers (ddpm, ddim,
 * dpmpp2m over any subset of noise levels) driven by a denoiser callback, and the frame grid of
 * `--save-steps`. Equations and conventions: docs/diffusion.md.
 *
 * Indexing (as the authors' code): noise levels i = 0..T-1 with ᾱ_i = Π_{k<=i} (1 - β_k) and
 * ᾱ_{-1} = 1; the network is fed γ_i = √ᾱ_i = sqrt_prev[i + 1].
 * Tensors are n = B * n_per_sample floats (B samples of any C*H*W layout); the samplers never look at
 * the layout, the conditioning is the denoiser callback's business. */
#ifndef FSDIFF_DIFFUSION_H
#define FSDIFF_DIFFUSION_H

#include "fsdiff/core.h"
#include "fsdiff/image.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- schedules */
typedef enum fsd_beta_kind {
    FSD_BETA_LINEAR = 0, /* linspace(beta_start, beta_end, T) */
    FSD_BETA_QUAD,       /* linspace(√beta_start, √beta_end, T)^2 */
    FSD_BETA_COSINE,     /* Nichol & Dhariwal, s = 8e-3, β clamped at 0.999 (beta_start/end unused) */
    FSD_BETA_WARMUP10,   /* beta_end everywhere, linspace(beta_start, beta_end) over the first int(0.1 T) */
    FSD_BETA_WARMUP50,   /* same over the first int(0.5 T) */
    FSD_BETA_CONST       /* beta_end everywhere */
} fsd_beta_kind;

/* "linear", "quad", "cosine", "warmup10", "warmup50", "const" */
const char *fsd_beta_kind_name(fsd_beta_kind k);
fsd_status fsd_beta_kind_parse(const char *name, fsd_beta_kind *out); /* FSD_ERR_INVALID if unknown */

/* All buffers in double (computed in double, as SR3 computes them in numpy float64), one block. */
typedef struct fsd_schedule {
    int T;
    fsd_beta_kind kind;
    double beta_start, beta_end;
    double *betas;      /* [T] β_i */
    double *alphas;     /* [T] α_i = 1 - β_i */
    double *acp;        /* [T] ᾱ_i (alphas_cumprod) */
    double *acp_prev;   /* [T] ᾱ_{i-1}, ᾱ_{-1} = 1 */
    double *sqrt_prev;  /* [T+1] √[1, ᾱ_0, ..., ᾱ_{T-1}] (SR3 sqrt_alphas_cumprod_prev) */
    double *post_var;   /* [T] β_i (1 - ᾱ_{i-1}) / (1 - ᾱ_i) */
    double *post_logvar;/* [T] log(max(post_var, 1e-20)) */
    double *post_c1;    /* [T] β_i √ᾱ_{i-1} / (1 - ᾱ_i) */
    double *post_c2;    /* [T] (1 - ᾱ_{i-1}) √α_i / (1 - ᾱ_i) */
    double *block_;     /* owner of the arrays above */
} fsd_schedule;

/* 1 <= T <= 1000000; for linear/quad/warmup: 0 < beta_start, beta_end < 1; const: 0 < beta_end < 1.
 * Every β must end up in (0, 1), so every ᾱ_i is in (0, 1) and every level is usable. */
fsd_status fsd_schedule_init(fsd_schedule *s, fsd_beta_kind kind, int T, double beta_start, double beta_end);
void fsd_schedule_free(fsd_schedule *s);

/* ---------------------------------------------------------------- training draw */
/* For b < B, sample index g = sample0 + b (a global counter, e.g. epoch * dataset size + position):
 *   t   in {1..T}: one per batch (per_sample_t = 0, the authors': drawn with the batch's first index
 *       sample0) or one per sample (per_sample_t = 1, drawn with g): t = 1 + (fsd_rng_u32(rng, idx) * T >> 32)
 *   γ_b = sqrt_prev[t-1] + (sqrt_prev[t] - sqrt_prev[t-1]) * fsd_rng_uniform1(rng, g), stored as float
 *       (numpy.random.uniform(sqrt_prev[t-1], sqrt_prev[t]) in SR3 p_losses)
 *   ε   = fsd_rng_normal(rng, offset g * n_per_sample), n_per_sample values
 *   x_t = γ_b x0 + √(1 - γ_b²) ε (double arithmetic from the float γ_b, stored as float)
 * x0, eps, x_t: [B * n_per_sample]; gamma: [B]; t_out: [B] or NULL. Same (rng, sample0) -> same draw,
 * whatever the thread count. */
fsd_status fsd_diffusion_train_draw(const fsd_schedule *s, const fsd_rng *rng, uint64_t sample0, int B,
                                    size_t n_per_sample, int per_sample_t, const float *x0, int *t_out,
                                    float *gamma, float *eps, float *x_t);

/* What the network predicts (docs/diffusion.md "Prediction"): ε (SR3's, the default) or
 * v = γ ε - σ x0 (σ = √(1 - γ²), Salimans & Ho 2022). With v the one-step estimate at the top level
 * is the network's own x̂₀ = γ x_t - σ v̂ (the posterior mean for an L2 loss), which ε cannot give
 * there: x̂₀ = (x_t - σ ε̂) / γ divides by γ ≈ 0.05. */
typedef enum fsd_prediction {
    FSD_PRED_EPS = 0,
    FSD_PRED_V = 1
} fsd_prediction;
const char *fsd_prediction_name(fsd_prediction p);
fsd_status fsd_prediction_parse(const char *name, fsd_prediction *out); /* "eps" | "v" */

/* The v target in place: eps[b * nps + e] <- γ_b eps - √(1 - γ_b²) x0 (double arithmetic, stored as
 * float), for the eps and gamma of fsd_diffusion_train_draw. */
void fsd_diffusion_v_target(int B, size_t n_per_sample, const float *gamma, const float *x0, float *eps);

/* The loss is fsd_loss_forward/backward with fsd_loss_kind (ops_linear.h), on ε or v. */

/* ---------------------------------------------------------------- step selection */
typedef enum fsd_sampler_kind {
    FSD_SAMPLER_DDPM = 0, /* ancestral (the authors'), respaced for a subset of levels */
    FSD_SAMPLER_DDIM,     /* DDIM with eta (0 = deterministic) */
    FSD_SAMPLER_DPMPP2M   /* DPM-Solver++(2M), data prediction, deterministic */
} fsd_sampler_kind;

typedef enum fsd_spacing {
    FSD_SPACING_LINSPACE = 0, /* default: round((T-1) j / (K-1)), j = K-1..0: first T-1, last 0 */
    FSD_SPACING_TRAILING,     /* round(T - j T / K) - 1, j = 0..K-1: first T-1, last round(T/K)-1 */
    FSD_SPACING_LEADING,      /* floor(j T / K), j = K-1..0: first floor((K-1)T/K), last 0 */
    FSD_SPACING_LOGSNR        /* uniform in λ = log(√ᾱ/√(1-ᾱ)) from level T-1 to level 0, nearest level
                                 (needs the schedule; see fsd_diffusion_levels_for) */
} fsd_spacing;
const char *fsd_spacing_name(fsd_spacing sp);
/* "linspace" | "trailing" | "leading" | "logsnr" */
fsd_status fsd_spacing_parse(const char *name, fsd_spacing *out);
/* The recommended spacing per sampler: logsnr for dpmpp2m (its step-size ratios stay bounded),
 * linspace for ddpm and ddim. */
fsd_spacing fsd_default_spacing(fsd_sampler_kind k);
/* levels[K]: strictly decreasing noise-level indices in [0, T-1]; 1 <= K <= T. K = T gives every
 * level (T-1..0) for every spacing. Rounding is half up. The schedule-free spacings only. */
fsd_status fsd_diffusion_levels(int T, int K, fsd_spacing sp, int *levels);
/* Any spacing, logsnr included: level j (visit order) is the level whose λ is nearest to
 * λ_{T-1} + (λ_0 - λ_{T-1}) j / (K-1), then pushed down to keep the list strictly decreasing and
 * to leave room for the remaining steps (level >= K-1-j); first T-1, last 0. */
fsd_status fsd_diffusion_levels_for(const fsd_schedule *s, int K, fsd_spacing sp, int *levels);

/* ---------------------------------------------------------------- samplers */
/* The network: eps_out[B * n_per_sample] = ε̂(x_t, γ) (or v̂, see fsd_sampler_opts.prediction) with
 * gamma[B] the noise level per sample. */
typedef fsd_status (*fsd_denoise_fn)(void *ctx, const float *x_t, const float *gamma, float *eps_out, int B);

const char *fsd_sampler_name(fsd_sampler_kind k);
fsd_status fsd_sampler_parse(const char *name, fsd_sampler_kind *out); /* "ddpm" | "ddim" | "dpmpp2m" */

/* Passed to the observer after step k (0-based, of K) at noise level `level`. */
typedef struct fsd_step_info {
    int k, K;
    int level;          /* noise-level index i of this step */
    double gamma;       /* √ᾱ_i fed to the network */
    const float *x;     /* [B * n_per_sample] state after this step (after the last step: the result) */
    const float *x0_hat;/* [B * n_per_sample] clamped x̂₀ predicted at this step */
    int B;
    size_t n_per_sample;
} fsd_step_info;
/* Non-OK stops sampling with that status (e.g. interrupted). */
typedef fsd_status (*fsd_step_fn)(void *ctx, const fsd_step_info *info);

typedef struct fsd_sampler_opts {
    fsd_sampler_kind kind;
    const int *levels;  /* [K] strictly decreasing level indices (fsd_diffusion_levels) */
    int K;
    double eta;         /* ddim: 0 <= eta; ignored otherwise */
    uint64_t seed;      /* x_T from stream 0 (unless x_given), step k's noise z from stream k + 1 */
    int x_given;        /* 1: x holds x_T on entry; 0: x_T ~ N(0, I) drawn here */
    double x0_clip;     /* x̂₀ is clamped to [-x0_clip, x0_clip]; <= 0 means 1 (images in [-1, 1]) */
    fsd_prediction prediction; /* what the denoiser returns: ε̂ (default) or v̂ */
    fsd_step_fn observer;  /* may be NULL */
    void *observer_ctx;
} fsd_sampler_opts;
void fsd_sampler_opts_default(fsd_sampler_opts *o); /* ddpm, eta 0, seed 0, no levels */

/* Runs the sampler: K denoiser calls; on return x[B * n_per_sample] holds the sample (the clamped x̂₀
 * of the last visited level, see docs/diffusion.md). Bit-identical for the same inputs and seed
 * whatever the thread count (element-wise arithmetic only; noise from the counter RNG). */
fsd_status fsd_diffusion_sample(const fsd_schedule *s, const fsd_sampler_opts *o, fsd_denoise_fn fn,
                                void *fn_ctx, float *x, int B, size_t n_per_sample);

/* ---------------------------------------------------------------- --save-steps frames */
/* A growing list of planar C x H x W frames with values in [-1, 1] (C = 1 or 3). */
typedef struct fsd_frames {
    int C, H, W;
    int n, cap;
    float *data; /* [cap][C*H*W] */
} fsd_frames;
fsd_status fsd_frames_init(fsd_frames *f, int C, int H, int W);
fsd_status fsd_frames_push(fsd_frames *f, const float *chw);
/* Pushes an fsd_image (0..255 scale, same C/H/W) mapped to [-1, 1]: the condition frame. */
fsd_status fsd_frames_push_image(fsd_frames *f, const fsd_image *im);
void fsd_frames_free(fsd_frames *f);
/* Tiles the frames left to right, `cols` per row (cols <= 0: one row), wrapping rows, `pad` pixels
 * of white between frames and none around; value v in [-1,1] -> (clamp(v) + 1) * 127.5. */
fsd_status fsd_frames_grid(const fsd_frames *f, int cols, int pad, fsd_image *out);

/* An fsd_step_fn recording sample `sample` of the batch: the state x (what = 0, the authors'
 * sr_process) or x̂₀ (what = 1), at steps with (K-1-k) % every == 0, so the last step (the result)
 * is always recorded. */
typedef struct fsd_frame_recorder {
    fsd_frames *frames;
    int every;  /* fsd_frames_default_every(K) = 1 | (K / 10), the authors' interval */
    int sample;
    int what;
} fsd_frame_recorder;
int fsd_frames_default_every(int K);
fsd_status fsd_frame_recorder_step(void *ctx, const fsd_step_info *info);

#ifdef __cplusplus
}
#endif
#endif
