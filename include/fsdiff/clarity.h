/* Clarity encoder: our trainable replacement for the paper's DA-CLIP clarity sensing
 * (reference §3; docs/model.md "Clarity encoder").
 *
 * One small CNN with shared weights runs on each upsampled source (IR/MRI = source 0,
 * VI/other = source 1), (B, 3, H, W) in [-1, 1] (grey IR replicated to 3 channels):
 *   stages i = 0..S-1: conv3x3 stride 2 pad 1 -> GroupNorm(groups, eps 1e-5) -> SiLU
 *   g = global average pool of the last map (C)
 *   degradation head: Linear(C, C) -> SiLU -> Linear(C, 3): normalised (log2 scale, blur sigma,
 *                     noise sigma) of that source, trained by MSE against the synthesis parameters
 *   tokens: 1 global token Linear_g(C -> D)(g) + P = pool^2 tokens Linear_p(C -> D) of the
 *           adaptive-average-pooled pool x pool grid (+ a learned per-cell embedding),
 *           + a learned modality embedding, + a learned role embedding (neutral / lead / follow).
 * Context = [source 0 tokens | source 1 tokens], T = 2 (1 + P) tokens of width D.
 *
 * Context rule (mode "clarity"): per sample, score_s = log2 scale_s + blur_weight * blur_s from
 * the PREDICTED degradation (physical units); a source is "blurred" if score > threshold, else
 * "clear". Exactly one blurred and one clear -> the blurred one's tokens get the "lead" role
 * embedding and the other's the "follow" embedding; otherwise both "neutral". Mode "mean": both
 * neutral always (ablation). The choice is hard (no gradient through the comparison).
 *
 * Parameters live in their own fsd_params store with names "clarity.*" so the trainer can store
 * them in the U-Net's model file. Backward accumulates into that store's grad buffer. */
#ifndef FSDIFF_CLARITY_H
#define FSDIFF_CLARITY_H

#include "fsdiff/core.h"
#include "fsdiff/nn.h"
#include "fsdiff/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FSD_CLARITY_MAX_STAGES 6
#define FSD_CLARITY_META_KEY "fsdiff.clarity"

/* Nominal ranges used to normalise the degradation targets to about [-1, 1]:
 *   log2 scale in [0, 3]       -> (v - 1.5) / 1.5
 *   blur sigma (HR px) [0, 4]  -> (v - 2) / 2
 *   noise sigma (0..255) [0, 25] -> (v - 12.5) / 12.5
 * Values outside the range are allowed (the map is linear). */
#define FSD_CLARITY_N_DEG 3
void fsd_clarity_normalise(float *norm3, const float *phys3);
void fsd_clarity_denormalise(float *phys3, const float *norm3);

typedef enum fsd_context_mode { FSD_CONTEXT_MEAN = 0, FSD_CONTEXT_CLARITY = 1 } fsd_context_mode;
/* "mean" | "clarity"; FSD_ERR_INVALID otherwise. */
fsd_status fsd_context_mode_parse(const char *name, fsd_context_mode *out);
const char *fsd_context_mode_name(fsd_context_mode m);

/* Role of a source's tokens; index into the role embedding clarity.role_emb [3, D]. */
typedef enum fsd_clarity_role { FSD_ROLE_NEUTRAL = 0, FSD_ROLE_LEAD = 1, FSD_ROLE_FOLLOW = 2 } fsd_clarity_role;

typedef struct fsd_clarity_config {
    int n_stages;                        /* 4 */
    int widths[FSD_CLARITY_MAX_STAGES];  /* 32, 64, 96, 128 (multiples of groups) */
    int groups;                          /* GroupNorm groups, 8 */
    int pool;                            /* grid side of the pooled tokens: P = pool^2 (2 -> 4) */
    int context_dim;                     /* D, must equal the U-Net's context_dim */
    float blur_weight;                   /* k in score = log2 scale + k * blur sigma (0.5) */
    float threshold;                     /* blurred iff score > threshold (1.5) */
    float lambda;                        /* weight of the degradation MSE (0.1) */
} fsd_clarity_config;

/* Defaults above with the given context width. */
void fsd_clarity_config_default(fsd_clarity_config *c, int context_dim);
fsd_status fsd_clarity_config_validate(const fsd_clarity_config *c);
/* Tokens the encoder emits for P pooled tokens per source: 2 (1 + P). */
static inline int fsd_clarity_tokens(int P) { return 2 * (1 + P); }
/* The encoder's context must fit the network: T == context_tokens, D == context_dim. */
fsd_status fsd_clarity_check_net(const fsd_clarity_config *c, const fsd_net_config *net);
/* One JSON line (fsd_free it) <-> config (unknown keys are errors; parsing starts from defaults). */
char *fsd_clarity_config_to_json(const fsd_clarity_config *c);
fsd_status fsd_clarity_config_from_json(fsd_clarity_config *c, const char *text, size_t len, const char *label);

/* Clarity score of one source from its physical degradation (log2 scale, blur, noise). */
float fsd_clarity_score(const fsd_clarity_config *c, const float *phys3);
/* The context rule. deg (B, 2, 3) physical units (source 0, source 1); roles (B, 2) written. */
void fsd_clarity_decide(const fsd_clarity_config *c, fsd_context_mode mode, const float *deg, int B, int *roles);

typedef struct fsd_clarity fsd_clarity; /* opaque */

fsd_status fsd_clarity_create(fsd_clarity **out, const fsd_clarity_config *c);
void fsd_clarity_free(fsd_clarity *e);
const fsd_clarity_config *fsd_clarity_cfg(const fsd_clarity *e);
fsd_params *fsd_clarity_params(fsd_clarity *e);
/* Orthogonal conv/linear weights and embeddings, zero biases, GroupNorm 1/0 (same scheme as
 * fsd_net_init); depends only on seed. */
fsd_status fsd_clarity_init(fsd_clarity *e, uint64_t seed);
void fsd_clarity_zero_grad(fsd_clarity *e);

/* Forward.
 *   src0, src1 (B, 3, H, W) in [-1, 1]; any H, W whose last map (each stage: n -> (n + 1) / 2)
 *     is at least pool x pool (4 stages, pool 2: H, W >= 17).
 *   roles_in (B, 2): use these roles instead of the rule (e.g. from known degradations); NULL =
 *     decide with `mode` from the predicted degradation.
 *   target (B, 2, 3) physical degradation of each source, or NULL (then *loss = 0).
 *   ctx (B, T, D) written; deg (B, 2, 3) predicted physical degradation (may be NULL);
 *   roles (B, 2) the roles used (may be NULL); loss = lambda * mean((pred_n - target_n)^2) over
 *   B * 2 * 3 normalised values (may be NULL).
 * train = 1 keeps what fsd_clarity_backward needs. */
fsd_status fsd_clarity_forward(fsd_clarity *e, const float *src0, const float *src1, int B, int H, int W,
                               fsd_context_mode mode, const int *roles_in, const float *target, float *ctx,
                               float *deg, int *roles, double *loss, int train);
/* Backward of the last training forward: ACCUMULATES into fsd_clarity_params(e)->grad the
 * gradient of  sum(dctx * ctx) + dloss * loss  (dctx (B, T, D) from fsd_net_backward, may be
 * NULL; dloss scales the degradation loss, which needs the forward's target). */
fsd_status fsd_clarity_backward(fsd_clarity *e, const float *dctx, float dloss);

/* Saving inside the model file: adds every "clarity.*" tensor (borrowed until save) and the
 * config under __metadata__[FSD_CLARITY_META_KEY]. */
fsd_status fsd_clarity_add_to_writer(const fsd_clarity *e, fsd_st_writer *w, fsd_dtype dtype);
/* Loads every "clarity.*" parameter by name from an open file (other tensors are ignored).
 * Missing or mis-shaped tensors, or a stored config that differs: one FSD_ERR_FORMAT line. */
fsd_status fsd_clarity_load(fsd_clarity *e, const fsd_safetensors *st);
/* Creates an encoder from the file's FSD_CLARITY_META_KEY config and loads it. */
fsd_status fsd_clarity_open(fsd_clarity **out, const fsd_safetensors *st);

/* External context (--context-file): a safetensors file with one float tensor "context" of shape
 * (N, D) or (1, N, D); N must equal tokens and D dim, values finite. *out = (N * D) floats
 * (fsd_free it), the same context for every sample. */
fsd_status fsd_context_file_load(const char *path, int tokens, int dim, float **out);

#ifdef __cplusplus
}
#endif
#endif
