/* Internal module structs of the network (src/nn). Each module holds parameter offsets into the
 * one parameter buffer and, after a training forward, pointers to what its backward needs (in the
 * activation arena). Every module instance runs once per forward. */
#ifndef FSDIFF_NN_INTERNAL_H
#define FSDIFF_NN_INTERNAL_H

#include "fsdiff/nn.h"

/* Per-call context: parameter/gradient bases, arenas, mode. */
typedef struct nn_ctx {
    float *P, *G;     /* parameters, gradients (offsets index both) */
    fsd_arena *act;   /* saved activations (train) / released per module (inference) */
    fsd_arena *ws;    /* scratch, always released by the module that took it */
    int train, B;
    uint64_t seed, step; /* dropout stream */
    uint64_t sample0;    /* global index of sample 0 of the batch (dropout masks of data-parallel ranks) */
    int act_short, ws_short; /* set when an allocation of ours failed (arena grown and retried) */
} nn_ctx;

float *nn_alloc(nn_ctx *c, fsd_arena *a, size_t n);     /* NULL + flag on exhaustion */
float *nn_zalloc(nn_ctx *c, fsd_arena *a, size_t n);    /* zeroed */
/* (B, C, L) <-> (B, L, C) */
void nn_transpose(float *out, const float *x, int B, int C, int L);

/* GroupNorm -> SiLU -> Dropout -> Conv3x3 (authors' Block: block.0 GN, block.3 conv). */
typedef struct nn_block {
    size_t gn_w, gn_b, conv_w, conv_b;
    int cin, cout, groups;
    float dropout;
    uint64_t drop_id;
    /* saved (train): x, GN statistics, the conv input a = dropout(SiLU(GN(x))) and the dropout keep
     * mask; GN(x) itself is recomputed in the backward from x, mean, rstd (one elementwise pass
     * instead of one more saved activation) */
    const float *x; float *mean, *rstd, *a; unsigned char *keep; int H, W;
} nn_block;
void nn_block_setup(nn_block *b, fsd_params *p, const char *prefix, int cin, int cout, int groups, float dropout,
                    uint64_t drop_id);
fsd_status nn_block_forward(nn_ctx *c, nn_block *b, float *out, const float *x, int H, int W);
fsd_status nn_block_backward(nn_ctx *c, nn_block *b, float *dx, const float *dout);

/* ResnetBlock: block1 + Linear(temb) bias, block2 (dropout), + res_conv(x) or x. */
typedef struct nn_resblock {
    nn_block b1, b2;
    size_t nf_w, nf_b, res_w, res_b;
    int din, dout, temb_dim, has_res;
    const float *x, *temb; float *h1; int H, W; /* saved */
} nn_resblock;
void nn_resblock_setup(nn_resblock *r, fsd_params *p, const char *prefix, int din, int dout, int temb_dim,
                       int groups, float dropout, uint64_t drop_id);
fsd_status nn_resblock_forward(nn_ctx *c, nn_resblock *r, float *out, const float *x, const float *temb, int H,
                               int W);
fsd_status nn_resblock_backward(nn_ctx *c, nn_resblock *r, float *dx, float *dtemb, const float *dout);

/* SpatialTransformer (depth 1): GN(eps 1e-6) -> proj_in -> [LN1 self-attn, LN2 cross-attn to ctx,
 * LN3 GEGLU FF] -> proj_out -> + x. */
typedef struct nn_attn {
    size_t gn_w, gn_b, pin_w, pin_b, pout_w, pout_b;
    size_t ln_w[3], ln_b[3];
    size_t q1, k1, v1, o1_w, o1_b, q2, k2, v2, o2_w, o2_b, ff0_w, ff0_b, ff2_w, ff2_b;
    int ch, heads, dh, I, cdim, T, groups;
    /* saved */
    const float *x, *ctx; int HW;
    float *gmean, *grstd, *t0, *u, *l1, *m1, *r1, *q, *k, *v, *att1, *u2, *l2, *m2, *r2, *qq, *kk, *vv, *att2,
        *u3, *l3, *m3, *r3, *g, *f, *u4;
} nn_attn;
void nn_attn_setup(nn_attn *a, fsd_params *p, const char *prefix, int ch, int heads, int dh, int cdim, int T,
                   int groups);
fsd_status nn_attn_forward(nn_ctx *c, nn_attn *a, float *out, const float *x, const float *ctx, int HW);
/* dx += ..., dctx (B, T, cdim) += ... (may be NULL) */
fsd_status nn_attn_backward(nn_ctx *c, nn_attn *a, float *dx, float *dctx, const float *dout);

typedef struct nn_mamba_saved { float *xc, *xa, *dtl, *Bm, *Cm, *dtr, *delta, *hckpt; } nn_mamba_saved;

/* Mamba block on channel-major (B, dm, L): out = x + out_proj(sum_dir gated scan(...)) on LN(x). */
typedef struct nn_mamba {
    size_t ln_w, ln_b, in_w, out_w;
    struct { size_t conv_w, conv_b, xp_w, dt_w, dt_b, A_log, D; } dir[2];
    int dm, E, N, R, K, ndir, divide;
    /* saved */
    const float *x; int L;
    float *ln, *mean, *rstd, *xs, *zs, *ysum;
    nn_mamba_saved sv[2];
} nn_mamba;
void nn_mamba_setup(nn_mamba *m, fsd_params *p, const char *prefix, int dm, int d_state, int d_conv, int expand,
                    int ndir, int divide);
fsd_status nn_mamba_forward(nn_ctx *c, nn_mamba *m, float *out, const float *x, int L);
fsd_status nn_mamba_backward(nn_ctx *c, nn_mamba *m, float *dx, const float *dout);

/* Early return on failure / allocation failure inside the nn modules. */
#define CK(expr)                     \
    do {                             \
        fsd_status s_ = (expr);      \
        if (s_ != FSD_OK) return s_; \
    } while (0)
#define NEED(ptr)                         \
    do {                                  \
        if (!(ptr)) return FSD_ERR_NOMEM; \
    } while (0)

#endif
