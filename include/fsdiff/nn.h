/* FS-Diff network: config, parameter store and the whole U-Net (forward + backward).
 *
 * Architecture (docs/model.md): optional Mamba stem x + Mamba(LN_9(x)) on the 9-channel input
 * [IR_up x3 | VI_up x3 | x_t x3], then the SR3 U-Net of the authors' code (ResNet blocks with
 * noise-level injection, SpatialTransformer with cross-attention to T context tokens, skip concat
 * [x, skip]), optional Mamba block at the bottleneck, final GN-SiLU-conv -> eps_hat (3 ch).
 *
 * Parameters live in ONE contiguous float buffer (gradients in a second one of the same layout);
 * a table maps the authors' PyTorch state_dict names to (shape, offset). Modules are plain structs
 * of offsets into that buffer (llm.c style).
 *
 * Memory: a training forward saves what backward needs into an activation arena that persists
 * until the backward; scratch comes from a second arena. Both grow on demand (the first step at a
 * new shape may re-run the forward once per doubling); fsd_net_memory() reports their peaks.
 */
#ifndef FSDIFF_NN_H
#define FSDIFF_NN_H

#include "fsdiff/core.h"
#include "fsdiff/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- config */
typedef enum fsd_mamba_mode { FSD_MAMBA_NONE = 0, FSD_MAMBA_FORWARD = 1, FSD_MAMBA_BIDIR = 2 } fsd_mamba_mode;

#define FSD_NET_MAX_LEVELS 8
typedef struct fsd_net_config {
    int in_channels;        /* 9 */
    int out_channels;       /* 3 */
    int base_channels;      /* inner_channel C (multiple of norm_groups) */
    int n_mults;
    int mults[FSD_NET_MAX_LEVELS]; /* channel_mults */
    int res_blocks;
    int n_attn;
    int attn_res[FSD_NET_MAX_LEVELS]; /* resolutions (of image_size) with a SpatialTransformer */
    int image_size;         /* only decides where attention goes */
    int d_head;             /* 32 */
    int norm_groups;        /* 32 */
    int context_dim;        /* width of the context tokens (512 = CLIP) */
    int context_tokens;     /* T (1 = the authors' single vector) */
    float dropout;          /* ResNet block2 dropout, training only */
    fsd_mamba_mode mamba;            /* stem before the U-Net */
    fsd_mamba_mode mamba_bottleneck; /* block before the middle ResNet blocks */
    int mamba_divide_out;   /* bidirectional: (y_f + flip(y_b)) / 2 as Vim's released models */
    int d_state, d_conv, expand;
} fsd_net_config;

/* Presets: "paper" (64, [1,2,4,8,8], 2 res blocks, attention at 16, 128^2, dropout 0.2, context
 * 512 x 1 token), "cpu" (the CPU-sized default), "tiny" (test size: 32^2, base 32, [1,2], 1 res
 * block, attention at 16, context 64 x 2). FSD_ERR_INVALID for an unknown name. */
fsd_status fsd_net_config_preset(fsd_net_config *c, const char *name);
/* Checks every field; one-line FSD_ERR_INVALID message naming the bad field. */
fsd_status fsd_net_config_validate(const fsd_net_config *c);
/* JSON object text (all keys) <-> config. Parsing starts from the preset named by "preset" (default
 * "paper") so a file may give only what differs; unknown keys are an error. */
fsd_status fsd_net_config_from_json(fsd_net_config *c, const char *text, size_t len, const char *label);
fsd_status fsd_net_config_load(fsd_net_config *c, const char *path);
/* Writes the config as one JSON line into a malloc'd string (fsd_free it). */
char *fsd_net_config_to_json(const fsd_net_config *c);
const char *fsd_mamba_mode_name(fsd_mamba_mode m);

#define FSD_NET_CONFIG_META_KEY "fsdiff.config"

/* ---------------------------------------------------------------- parameter store */
typedef enum fsd_init_kind {
    FSD_INIT_ORTHO = 0, /* weight of a Conv/Linear: orthogonal, gain 1 (authors' init_weights) */
    FSD_INIT_ZERO,      /* biases */
    FSD_INIT_ONE,       /* norm weights, Mamba D */
    FSD_INIT_ALOG       /* Mamba A_log[e, n] = log(n + 1) (S4D-real) */
} fsd_init_kind;

typedef struct fsd_param {
    char name[112];
    int ndim;
    int64_t shape[4];
    size_t offset, numel;
    fsd_init_kind init;
} fsd_param;

typedef struct fsd_params {
    fsd_param *t;
    int n, cap;
    size_t total; /* floats */
    float *data;  /* [total] */
    float *grad;  /* [total] */
} fsd_params;

/* Registers a tensor during network construction (data not yet allocated); returns its offset. */
size_t fsd_params_add(fsd_params *p, const char *name, fsd_init_kind init, int ndim, int64_t d0, int64_t d1,
                      int64_t d2, int64_t d3);
const fsd_param *fsd_params_find(const fsd_params *p, const char *name);
/* Fills every registered tensor by its init kind (orthogonal weights from Philox normals, zeros,
 * ones, S4D-real A_log); depends only on (seed, registration order). */
fsd_status fsd_params_init(fsd_params *p, uint64_t seed);

/* ---------------------------------------------------------------- network */
typedef struct fsd_net fsd_net; /* opaque */

/* Builds the parameter table for `cfg` (validated) and allocates zeroed parameters/gradients. */
fsd_status fsd_net_create(fsd_net **out, const fsd_net_config *cfg);
void fsd_net_free(fsd_net *net);
const fsd_net_config *fsd_net_cfg(const fsd_net *net);
fsd_params *fsd_net_params(fsd_net *net);

/* Authors' init (§1.8): every Conv/Linear weight orthogonal (gain 1, Philox normal + modified
 * Gram-Schmidt in double, sign convention of torch's QR), biases 0, norms 1/0, A_log = log(1..N),
 * D = 1. Depends only on (seed, parameter name order). */
fsd_status fsd_net_init(fsd_net *net, uint64_t seed);

/* Loads every parameter by name (any float dtype, finite check). Missing, extra or mis-shaped
 * tensors: one FSD_ERR_FORMAT message naming the tensor. The file's config metadata, if present,
 * must equal the net's (else FSD_ERR_FORMAT). */
fsd_status fsd_net_load(fsd_net *net, const char *path);
/* Creates a net from a safetensors file whose __metadata__ holds "fsdiff.config", and loads it. */
fsd_status fsd_net_open(fsd_net **out, const char *path);
/* Saves all parameters (F32, F16 or BF16) with the config in __metadata__["fsdiff.config"];
 * extra metadata pairs (keys/vals, n_extra of them) may be added (e.g. training step). */
fsd_status fsd_net_save(const fsd_net *net, const char *path, fsd_dtype dtype, int n_extra,
                        const char *const *keys, const char *const *vals);

/* Adds every parameter (borrowed until save) and the config metadata to a writer (model files that
 * hold more than the network: fsd_model_save). */
fsd_status fsd_net_add_to_writer(const fsd_net *net, fsd_st_writer *w, fsd_dtype dtype);
/* Loads by name from an open file, as fsd_net_load ("clarity.*" and "train.*" tensors ignored). */
fsd_status fsd_net_load_st(fsd_net *net, const fsd_safetensors *st);

/* Forward. x (B, in_channels, H, W) in [-1,1]; gamma (B) noise level; ctx (B, T, context_dim)
 * (may be NULL only when the net has no attention); eps (B, out_channels, H, W) written.
 * H, W must be divisible by 2^(n_mults-1). train = 1 saves activations for fsd_net_backward and
 * applies dropout with the Philox stream (seed, step); train = 0 saves nothing. */
fsd_status fsd_net_forward(fsd_net *net, const float *x, const float *gamma, const float *ctx, float *eps,
                           int B, int H, int W, int train, uint64_t seed, uint64_t step);
/* Backward of the last training forward: ACCUMULATES dL/dparam into fsd_net_params(net)->grad
 * from d_eps (B, out_channels, H, W). dctx (B, T, context_dim) += dL/dctx if not NULL. */
fsd_status fsd_net_backward(fsd_net *net, const float *d_eps, float *dctx);
void fsd_net_zero_grad(fsd_net *net);
/* Global index of the first sample of the following forwards' batches (default 0): dropout masks
 * are drawn per global sample, so K data-parallel ranks with b samples each draw what one process
 * with K*b samples draws. */
void fsd_net_set_sample0(fsd_net *net, uint64_t sample0);

/* Peak bytes of the activation arena (saved for backward) and of the scratch arena, since create
 * or the last fsd_net_memory_reset. */
void fsd_net_memory(const fsd_net *net, size_t *act_peak, size_t *scratch_peak);
void fsd_net_memory_reset(fsd_net *net);
/* Grow the activation and scratch arenas to at least these sizes before a forward at a new, larger
 * shape, so that it runs once instead of once per doubling (e.g. from fsd_net_memory after a smaller
 * probe). Discards what the arenas hold (a training forward's saved activations). */
fsd_status fsd_net_reserve(fsd_net *net, size_t act_bytes, size_t scratch_bytes);
/* Forward passes run since create, the re-runs after an arena grew included. */
uint64_t fsd_net_forward_runs(const fsd_net *net);

#ifdef __cplusplus
}
#endif
#endif
