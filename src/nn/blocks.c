/* Network modules: Block (GN-SiLU-Dropout-Conv), ResnetBlock, SpatialTransformer, Mamba block.
 * Forward saves into c->act what backward needs (train), or releases it (inference); backward
 * accumulates parameter gradients into c->G and input gradients into dx. */
#include "nn_internal.h"

#include "fsdiff/ops.h"
#include "../ops/vmath.h" /* the same sigmoid as the SiLU op (bit-identical recompute) */

#include <math.h>
#include <stdio.h>
#include <string.h>


float *nn_alloc(nn_ctx *c, fsd_arena *a, size_t n) {
    float *p = fsd_arena_floats(a, n ? n : 1);
    if (!p) {
        if (a == c->act) c->act_short = 1;
        else c->ws_short = 1;
    }
    return p;
}

float *nn_zalloc(nn_ctx *c, fsd_arena *a, size_t n) {
    float *p = nn_alloc(c, a, n);
    if (p) memset(p, 0, n * sizeof(float));
    return p;
}

void nn_transpose(float *out, const float *x, int B, int C, int L) {
    /* 32x32 tiles keep both sides cache friendly */
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * C * L > 65536)
    for (int b = 0; b < B; b++)
        for (int c0 = 0; c0 < C; c0 += 32) {
            const float *xb = x + (size_t)b * C * L;
            float *ob = out + (size_t)b * C * L;
            int c1 = c0 + 32 < C ? c0 + 32 : C;
            for (int l0 = 0; l0 < L; l0 += 32) {
                int l1 = l0 + 32 < L ? l0 + 32 : L;
                for (int cc = c0; cc < c1; cc++)
                    for (int l = l0; l < l1; l++) ob[(size_t)l * C + cc] = xb[(size_t)cc * L + l];
            }
        }
}

static void name2(char *buf, size_t n, const char *prefix, const char *suffix) { snprintf(buf, n, "%s.%s", prefix, suffix); }

#define ADD(off, suffix, init, nd, a0, a1, a2, a3)          \
    do {                                                    \
        char nm_[160];                                      \
        name2(nm_, sizeof nm_, prefix, suffix);             \
        off = fsd_params_add(p, nm_, init, nd, a0, a1, a2, a3); \
    } while (0)

/* =============================================================== Block */
void nn_block_setup(nn_block *b, fsd_params *p, const char *prefix, int cin, int cout, int groups, float dropout,
                    uint64_t drop_id) {
    memset(b, 0, sizeof *b);
    b->cin = cin, b->cout = cout, b->groups = groups, b->dropout = dropout, b->drop_id = drop_id;
    ADD(b->gn_w, "block.0.weight", FSD_INIT_ONE, 1, cin, 0, 0, 0);
    ADD(b->gn_b, "block.0.bias", FSD_INIT_ZERO, 1, cin, 0, 0, 0);
    ADD(b->conv_w, "block.3.weight", FSD_INIT_ORTHO, 4, cout, cin, 3, 3);
    ADD(b->conv_b, "block.3.bias", FSD_INIT_ZERO, 1, cout, 0, 0, 0);
}

/* Dropout keep mask: element i of block drop_id is kept iff u(seed, step, id<<40 | (i + sample0 * n/B))
 * >= p (i counts from the first sample this process holds, sample0 its global index, so data-parallel
 * ranks draw the masks one process would); kept elements are scaled by 1/(1-p). The mask is saved (1 byte per element) for the backward. */
static fsd_status dropout_forward(nn_ctx *c, const nn_block *b, float *a, unsigned char *keep, size_t n) {
    float *u = nn_alloc(c, c->ws, n);
    NEED(u);
    fsd_rng r = {c->seed, c->step};
    fsd_rng_uniform(&r, (b->drop_id << 40) + c->sample0 * (n / (size_t)c->B), u, n);
    float p = b->dropout, sc = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        keep[i] = u[i] >= p;
        a[i] = keep[i] ? a[i] * sc : 0.0f;
    }
    fsd_arena_reset(c->ws, (size_t)((unsigned char *)u - c->ws->base));
    return FSD_OK;
}

fsd_status nn_block_forward(nn_ctx *c, nn_block *b, float *out, const float *x, int H, int W) {
    size_t mark = fsd_arena_mark(c->act), wmark = fsd_arena_mark(c->ws);
    size_t n = (size_t)c->B * b->cin * H * W;
    b->x = x, b->H = H, b->W = W, b->keep = NULL;
    b->mean = nn_alloc(c, c->act, (size_t)c->B * b->groups);
    b->rstd = nn_alloc(c, c->act, (size_t)c->B * b->groups);
    /* a: saved in training (conv backward needs it), else scratch; GN output goes to a too and SiLU
     * runs in place */
    b->a = nn_alloc(c, c->train ? c->act : c->ws, n);
    NEED(b->mean && b->rstd && b->a);
    int drop = c->train && b->dropout > 0.0f;
    if (drop && !(b->keep = fsd_arena_alloc(c->act, n))) {
        c->act_short = 1;
        return FSD_ERR_NOMEM;
    }
    const float *P = c->P;
    CK(fsd_groupnorm_forward(b->a, b->mean, b->rstd, x, P + b->gn_w, P + b->gn_b, c->B, b->cin, H * W, b->groups,
                             1e-5f));
    fsd_silu_forward(b->a, b->a, n);
    if (drop) CK(dropout_forward(c, b, b->a, b->keep, n));
    CK(fsd_conv2d_forward(out, b->a, P + b->conv_w, P + b->conv_b, c->B, b->cin, H, W, b->cout, 3, 1, 1, c->ws));
    fsd_arena_reset(c->ws, wmark);
    if (!c->train) fsd_arena_reset(c->act, mark);
    return FSD_OK;
}

/* dn = d/dn of a = drop(SiLU(n)) given da, with n = GN(x) recomputed from the saved statistics
 * exactly as fsd_groupnorm_forward computes it: n = (x - mean) (rstd w) + b, then SiLU'(n) = s (1 + n (1 - s)), s = sigmoid(n). dn is written. */
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off") /* no FMA: n must equal the forward's GN output bit for bit */
static void gn_silu_drop_backward(float *dn, const float *da, const nn_block *b, const float *P, int B) {
    int C = b->cin, G = b->groups, cpg = C / G;
    size_t HW = (size_t)b->H * b->W;
    const float *w = P + b->gn_w, *bb = P + b->gn_b;
    const unsigned char *keep = b->keep;
    float sc = keep ? 1.0f / (1.0f - b->dropout) : 1.0f;
#pragma omp parallel for collapse(2) schedule(static)
    for (int bi = 0; bi < B; bi++)
        for (int ch = 0; ch < C; ch++) {
            int g = bi * G + ch / cpg;
            float m = b->mean[g], scale = (float)((double)b->rstd[g] * w[ch]), shift = bb[ch];
            size_t off = ((size_t)bi * C + ch) * HW;
            const float *xr = b->x + off, *dr = da + off;
            float *o = dn + off;
            if (keep) {
                const unsigned char *k = keep + off;
                for (size_t i = 0; i < HW; i++) {
                    float nv = (xr[i] - m) * scale + shift, s = fsd_sigmoidf(nv);
                    o[i] = k[i] ? dr[i] * sc * s * (1.0f + nv * (1.0f - s)) : 0.0f;
                }
            } else {
                for (size_t i = 0; i < HW; i++) {
                    float nv = (xr[i] - m) * scale + shift, s = fsd_sigmoidf(nv);
                    o[i] = dr[i] * s * (1.0f + nv * (1.0f - s));
                }
            }
        }
}

#pragma GCC pop_options

fsd_status nn_block_backward(nn_ctx *c, nn_block *b, float *dx, const float *dout) {
    size_t mark = fsd_arena_mark(c->ws);
    size_t n = (size_t)c->B * b->cin * b->H * b->W;
    float *da = nn_zalloc(c, c->ws, n);
    NEED(da);
    const float *P = c->P;
    float *G = c->G;
    CK(fsd_conv2d_backward(da, G + b->conv_w, G + b->conv_b, dout, b->a, P + b->conv_w, c->B, b->cin, b->H, b->W,
                           b->cout, 3, 1, 1, c->ws));
    gn_silu_drop_backward(da, da, b, P, c->B); /* in place: element i reads da[i] before writing it */
    CK(fsd_groupnorm_backward(dx, G + b->gn_w, G + b->gn_b, da, b->x, b->mean, b->rstd, P + b->gn_w, c->B, b->cin,
                              b->H * b->W, b->groups, c->ws));
    fsd_arena_reset(c->ws, mark);
    return FSD_OK;
}

/* =============================================================== ResnetBlock */
void nn_resblock_setup(nn_resblock *r, fsd_params *p, const char *prefix, int din, int dout, int temb_dim,
                       int groups, float dropout, uint64_t drop_id) {
    memset(r, 0, sizeof *r);
    char pre[160];
    r->din = din, r->dout = dout, r->temb_dim = temb_dim, r->has_res = din != dout;
    ADD(r->nf_w, "noise_func.noise_func.0.weight", FSD_INIT_ORTHO, 2, dout, temb_dim, 0, 0);
    ADD(r->nf_b, "noise_func.noise_func.0.bias", FSD_INIT_ZERO, 1, dout, 0, 0, 0);
    snprintf(pre, sizeof pre, "%s.block1", prefix);
    nn_block_setup(&r->b1, p, pre, din, dout, groups, 0.0f, 0);
    snprintf(pre, sizeof pre, "%s.block2", prefix);
    nn_block_setup(&r->b2, p, pre, dout, dout, groups, dropout, drop_id);
    if (r->has_res) {
        ADD(r->res_w, "res_conv.weight", FSD_INIT_ORTHO, 4, dout, din, 1, 1);
        ADD(r->res_b, "res_conv.bias", FSD_INIT_ZERO, 1, dout, 0, 0, 0);
    }
}

fsd_status nn_resblock_forward(nn_ctx *c, nn_resblock *r, float *out, const float *x, const float *temb, int H,
                               int W) {
    size_t mark = fsd_arena_mark(c->act), wmark = fsd_arena_mark(c->ws);
    int B = c->B, HW = H * W;
    size_t no = (size_t)B * r->dout * HW;
    r->x = x, r->temb = temb, r->H = H, r->W = W;
    r->h1 = nn_alloc(c, c->act, no);
    float *nb = nn_alloc(c, c->ws, (size_t)B * r->dout);
    NEED(r->h1 && nb);
    const float *P = c->P;
    CK(nn_block_forward(c, &r->b1, r->h1, x, H, W));
    CK(fsd_linear_forward(nb, temb, P + r->nf_w, P + r->nf_b, B, r->temb_dim, r->dout));
    fsd_channel_bias_forward(r->h1, r->h1, nb, B, r->dout, HW); /* noise-level injection */
    CK(nn_block_forward(c, &r->b2, out, r->h1, H, W));
    if (r->has_res) {
        float *res = nn_alloc(c, c->ws, no);
        NEED(res);
        CK(fsd_conv2d_forward(res, x, P + r->res_w, P + r->res_b, B, r->din, H, W, r->dout, 1, 1, 0, c->ws));
#pragma omp parallel for schedule(static) if (no > 65536)
        for (size_t i = 0; i < no; i++) out[i] += res[i];
    } else {
#pragma omp parallel for schedule(static) if (no > 65536)
        for (size_t i = 0; i < no; i++) out[i] += x[i];
    }
    fsd_arena_reset(c->ws, wmark);
    if (!c->train) fsd_arena_reset(c->act, mark);
    return FSD_OK;
}

fsd_status nn_resblock_backward(nn_ctx *c, nn_resblock *r, float *dx, float *dtemb, const float *dout) {
    size_t mark = fsd_arena_mark(c->ws);
    int B = c->B, HW = r->H * r->W;
    size_t no = (size_t)B * r->dout * HW;
    const float *P = c->P;
    float *G = c->G;
    if (r->has_res)
        CK(fsd_conv2d_backward(dx, G + r->res_w, G + r->res_b, dout, r->x, P + r->res_w, B, r->din, r->H, r->W,
                               r->dout, 1, 1, 0, c->ws));
    else {
#pragma omp parallel for schedule(static) if (no > 65536)
        for (size_t i = 0; i < no; i++) dx[i] += dout[i];
    }
    float *dh1 = nn_zalloc(c, c->ws, no);
    float *dnb = nn_zalloc(c, c->ws, (size_t)B * r->dout);
    NEED(dh1 && dnb);
    CK(nn_block_backward(c, &r->b2, dh1, dout));
    fsd_channel_bias_backward(NULL, dnb, dh1, B, r->dout, HW);
    CK(fsd_linear_backward(dtemb, G + r->nf_w, G + r->nf_b, dnb, r->temb, P + r->nf_w, B, r->temb_dim, r->dout,
                           c->ws));
    CK(nn_block_backward(c, &r->b1, dx, dh1));
    fsd_arena_reset(c->ws, mark);
    return FSD_OK;
}

/* =============================================================== SpatialTransformer */
void nn_attn_setup(nn_attn *a, fsd_params *p, const char *prefix, int ch, int heads, int dh, int cdim, int T,
                   int groups) {
    memset(a, 0, sizeof *a);
    int I = heads * dh;
    a->ch = ch, a->heads = heads, a->dh = dh, a->I = I, a->cdim = cdim, a->T = T, a->groups = groups;
    ADD(a->gn_w, "norm.weight", FSD_INIT_ONE, 1, ch, 0, 0, 0);
    ADD(a->gn_b, "norm.bias", FSD_INIT_ZERO, 1, ch, 0, 0, 0);
    ADD(a->pin_w, "proj_in.weight", FSD_INIT_ORTHO, 4, I, ch, 1, 1);
    ADD(a->pin_b, "proj_in.bias", FSD_INIT_ZERO, 1, I, 0, 0, 0);
    ADD(a->q1, "transformer_blocks.0.attn1.to_q.weight", FSD_INIT_ORTHO, 2, I, I, 0, 0);
    ADD(a->k1, "transformer_blocks.0.attn1.to_k.weight", FSD_INIT_ORTHO, 2, I, I, 0, 0);
    ADD(a->v1, "transformer_blocks.0.attn1.to_v.weight", FSD_INIT_ORTHO, 2, I, I, 0, 0);
    ADD(a->o1_w, "transformer_blocks.0.attn1.to_out.0.weight", FSD_INIT_ORTHO, 2, I, I, 0, 0);
    ADD(a->o1_b, "transformer_blocks.0.attn1.to_out.0.bias", FSD_INIT_ZERO, 1, I, 0, 0, 0);
    ADD(a->ff0_w, "transformer_blocks.0.ff.net.0.proj.weight", FSD_INIT_ORTHO, 2, 8 * I, I, 0, 0);
    ADD(a->ff0_b, "transformer_blocks.0.ff.net.0.proj.bias", FSD_INIT_ZERO, 1, 8 * I, 0, 0, 0);
    ADD(a->ff2_w, "transformer_blocks.0.ff.net.2.weight", FSD_INIT_ORTHO, 2, I, 4 * I, 0, 0);
    ADD(a->ff2_b, "transformer_blocks.0.ff.net.2.bias", FSD_INIT_ZERO, 1, I, 0, 0, 0);
    ADD(a->q2, "transformer_blocks.0.attn2.to_q.weight", FSD_INIT_ORTHO, 2, I, I, 0, 0);
    ADD(a->k2, "transformer_blocks.0.attn2.to_k.weight", FSD_INIT_ORTHO, 2, I, cdim, 0, 0);
    ADD(a->v2, "transformer_blocks.0.attn2.to_v.weight", FSD_INIT_ORTHO, 2, I, cdim, 0, 0);
    ADD(a->o2_w, "transformer_blocks.0.attn2.to_out.0.weight", FSD_INIT_ORTHO, 2, I, I, 0, 0);
    ADD(a->o2_b, "transformer_blocks.0.attn2.to_out.0.bias", FSD_INIT_ZERO, 1, I, 0, 0, 0);
    static const char *ln[3] = {"transformer_blocks.0.norm1", "transformer_blocks.0.norm2", "transformer_blocks.0.norm3"};
    for (int i = 0; i < 3; i++) {
        char s[96];
        snprintf(s, sizeof s, "%s.weight", ln[i]);
        ADD(a->ln_w[i], s, FSD_INIT_ONE, 1, I, 0, 0, 0);
        snprintf(s, sizeof s, "%s.bias", ln[i]);
        ADD(a->ln_b[i], s, FSD_INIT_ZERO, 1, I, 0, 0, 0);
    }
    ADD(a->pout_w, "proj_out.weight", FSD_INIT_ORTHO, 4, ch, I, 1, 1);
    ADD(a->pout_b, "proj_out.bias", FSD_INIT_ZERO, 1, ch, 0, 0, 0);
}

fsd_status nn_attn_forward(nn_ctx *c, nn_attn *a, float *out, const float *x, const float *ctx, int HW) {
    size_t mark = fsd_arena_mark(c->act), wmark = fsd_arena_mark(c->ws);
    const float *P = c->P;
    int B = c->B, I = a->I, ch = a->ch, T = a->T;
    int N = B * HW; /* token rows */
    size_t nI = (size_t)N * I, nC = (size_t)N * ch;
    fsd_arena *A = c->act;
    a->x = x, a->ctx = ctx, a->HW = HW;
#define AL(v, n) NEED(a->v = nn_alloc(c, A, (n)))
    AL(gmean, (size_t)B * a->groups); AL(grstd, (size_t)B * a->groups); AL(t0, nC); AL(u, nI);
    AL(l1, nI); AL(m1, N); AL(r1, N); AL(q, nI); AL(k, nI); AL(v, nI); AL(att1, nI); AL(u2, nI);
    AL(l2, nI); AL(m2, N); AL(r2, N); AL(qq, nI); AL(kk, (size_t)B * T * I); AL(vv, (size_t)B * T * I);
    AL(att2, nI); AL(u3, nI); AL(l3, nI); AL(m3, N); AL(r3, N); AL(g, nI * 8); AL(f, nI * 4); AL(u4, nI);
#undef AL
    float *tmp = nn_alloc(c, c->ws, nC > nI ? nC : nI);
    NEED(tmp);
    /* GN over the image, then tokens (B, HW, ch) */
    CK(fsd_groupnorm_forward(tmp, a->gmean, a->grstd, x, P + a->gn_w, P + a->gn_b, B, ch, HW, a->groups, 1e-6f));
    nn_transpose(a->t0, tmp, B, ch, HW);
    CK(fsd_linear_forward(a->u, a->t0, P + a->pin_w, P + a->pin_b, N, ch, I));
    /* 1. self-attention */
    CK(fsd_layernorm_forward(a->l1, a->m1, a->r1, a->u, P + a->ln_w[0], P + a->ln_b[0], N, I, 1e-5f));
    CK(fsd_linear_forward(a->q, a->l1, P + a->q1, NULL, N, I, I));
    CK(fsd_linear_forward(a->k, a->l1, P + a->k1, NULL, N, I, I));
    CK(fsd_linear_forward(a->v, a->l1, P + a->v1, NULL, N, I, I));
    CK(fsd_attention_forward(a->att1, NULL, a->q, a->k, a->v, B, HW, HW, a->heads, a->dh, c->ws));
    CK(fsd_linear_forward(a->u2, a->att1, P + a->o1_w, P + a->o1_b, N, I, I));
    for (size_t i = 0; i < nI; i++) a->u2[i] += a->u[i];
    /* 2. cross-attention to the T context tokens */
    CK(fsd_layernorm_forward(a->l2, a->m2, a->r2, a->u2, P + a->ln_w[1], P + a->ln_b[1], N, I, 1e-5f));
    CK(fsd_linear_forward(a->qq, a->l2, P + a->q2, NULL, N, I, I));
    CK(fsd_linear_forward(a->kk, ctx, P + a->k2, NULL, B * T, a->cdim, I));
    CK(fsd_linear_forward(a->vv, ctx, P + a->v2, NULL, B * T, a->cdim, I));
    CK(fsd_attention_forward(a->att2, NULL, a->qq, a->kk, a->vv, B, HW, T, a->heads, a->dh, c->ws));
    CK(fsd_linear_forward(a->u3, a->att2, P + a->o2_w, P + a->o2_b, N, I, I));
    for (size_t i = 0; i < nI; i++) a->u3[i] += a->u2[i];
    /* 3. GEGLU feed-forward */
    CK(fsd_layernorm_forward(a->l3, a->m3, a->r3, a->u3, P + a->ln_w[2], P + a->ln_b[2], N, I, 1e-5f));
    CK(fsd_linear_forward(a->g, a->l3, P + a->ff0_w, P + a->ff0_b, N, I, 8 * I));
    fsd_geglu_forward(a->f, a->g, N, 4 * I);
    CK(fsd_linear_forward(a->u4, a->f, P + a->ff2_w, P + a->ff2_b, N, 4 * I, I));
    for (size_t i = 0; i < nI; i++) a->u4[i] += a->u3[i];
    /* proj_out, back to the image, residual */
    CK(fsd_linear_forward(tmp, a->u4, P + a->pout_w, P + a->pout_b, N, I, ch));
    nn_transpose(out, tmp, B, HW, ch);
    for (size_t i = 0; i < nC; i++) out[i] += x[i];
    fsd_arena_reset(c->ws, wmark);
    if (!c->train) fsd_arena_reset(c->act, mark);
    return FSD_OK;
}

fsd_status nn_attn_backward(nn_ctx *c, nn_attn *a, float *dx, float *dctx, const float *dout) {
    size_t mark = fsd_arena_mark(c->ws);
    const float *P = c->P;
    float *G = c->G;
    int B = c->B, I = a->I, ch = a->ch, T = a->T, HW = a->HW;
    int N = B * HW;
    size_t nI = (size_t)N * I, nC = (size_t)N * ch, nT = (size_t)B * T * I;
    fsd_arena *W = c->ws;
    for (size_t i = 0; i < nC; i++) dx[i] += dout[i];
    float *dp = nn_alloc(c, W, nC), *du = nn_zalloc(c, W, nI), *dtmp = nn_alloc(c, W, nI * 8);
    float *d1 = nn_alloc(c, W, nI > nC ? nI : nC), *d2 = nn_alloc(c, W, nI), *d3 = nn_alloc(c, W, nI);
    float *dk = nn_alloc(c, W, nT), *dv = nn_alloc(c, W, nT);
    NEED(dp && du && dtmp && d1 && d2 && d3 && dk && dv);
#define Z(p, n) memset(p, 0, (n) * sizeof(float))
    nn_transpose(dp, dout, B, ch, HW);
    CK(fsd_linear_backward(du, G + a->pout_w, G + a->pout_b, dp, a->u4, P + a->pout_w, N, I, ch, W));
    /* 3. FF: du is the residual-stream gradient at u4 = u3 + FF */
    Z(dtmp, nI * 4);
    CK(fsd_linear_backward(dtmp, G + a->ff2_w, G + a->ff2_b, du, a->f, P + a->ff2_w, N, 4 * I, I, W));
    float *dg = nn_zalloc(c, W, nI * 8);
    NEED(dg);
    fsd_geglu_backward(dg, dtmp, a->g, N, 4 * I);
    Z(d1, nI);
    CK(fsd_linear_backward(d1, G + a->ff0_w, G + a->ff0_b, dg, a->l3, P + a->ff0_w, N, I, 8 * I, W));
    CK(fsd_layernorm_backward(du, G + a->ln_w[2], G + a->ln_b[2], d1, a->u3, a->m3, a->r3, P + a->ln_w[2], N, I, W));
    /* 2. cross-attention */
    Z(d1, nI);
    CK(fsd_linear_backward(d1, G + a->o2_w, G + a->o2_b, du, a->att2, P + a->o2_w, N, I, I, W));
    Z(d2, nI), Z(dk, nT), Z(dv, nT);
    CK(fsd_attention_backward(d2, dk, dv, d1, NULL, a->qq, a->kk, a->vv, B, HW, T, a->heads, a->dh, W));
    CK(fsd_linear_backward(dctx, G + a->k2, NULL, dk, a->ctx, P + a->k2, B * T, a->cdim, I, W));
    CK(fsd_linear_backward(dctx, G + a->v2, NULL, dv, a->ctx, P + a->v2, B * T, a->cdim, I, W));
    Z(d3, nI);
    CK(fsd_linear_backward(d3, G + a->q2, NULL, d2, a->l2, P + a->q2, N, I, I, W));
    CK(fsd_layernorm_backward(du, G + a->ln_w[1], G + a->ln_b[1], d3, a->u2, a->m2, a->r2, P + a->ln_w[1], N, I, W));
    /* 1. self-attention */
    Z(d1, nI);
    CK(fsd_linear_backward(d1, G + a->o1_w, G + a->o1_b, du, a->att1, P + a->o1_w, N, I, I, W));
    float *dq = d2, *dkk = d3, *dvv = dtmp; /* reuse: (N, I) each */
    Z(dq, nI), Z(dkk, nI), Z(dvv, nI);
    CK(fsd_attention_backward(dq, dkk, dvv, d1, NULL, a->q, a->k, a->v, B, HW, HW, a->heads, a->dh, W));
    Z(d1, nI);
    CK(fsd_linear_backward(d1, G + a->q1, NULL, dq, a->l1, P + a->q1, N, I, I, W));
    CK(fsd_linear_backward(d1, G + a->k1, NULL, dkk, a->l1, P + a->k1, N, I, I, W));
    CK(fsd_linear_backward(d1, G + a->v1, NULL, dvv, a->l1, P + a->v1, N, I, I, W));
    CK(fsd_layernorm_backward(du, G + a->ln_w[0], G + a->ln_b[0], d1, a->u, a->m1, a->r1, P + a->ln_w[0], N, I, W));
    /* proj_in, tokens back to the image, GN */
    Z(dp, nC);
    CK(fsd_linear_backward(dp, G + a->pin_w, G + a->pin_b, du, a->t0, P + a->pin_w, N, ch, I, W));
    nn_transpose(d1, dp, B, HW, ch); /* d1 holds max(nI, nC) floats */
    CK(fsd_groupnorm_backward(dx, G + a->gn_w, G + a->gn_b, d1, a->x, a->gmean, a->grstd, P + a->gn_w, B, ch, HW,
                              a->groups, W));
#undef Z
    fsd_arena_reset(c->ws, mark);
    return FSD_OK;
}

/* =============================================================== Mamba block */
void nn_mamba_setup(nn_mamba *m, fsd_params *p, const char *prefix, int dm, int d_state, int d_conv, int expand,
                    int ndir, int divide) {
    memset(m, 0, sizeof *m);
    int E = expand * dm, R = (dm + 15) / 16, N = d_state, K = d_conv;
    m->dm = dm, m->E = E, m->N = N, m->R = R, m->K = K, m->ndir = ndir, m->divide = divide && ndir == 2;
    ADD(m->ln_w, "norm.weight", FSD_INIT_ONE, 1, dm, 0, 0, 0);
    ADD(m->ln_b, "norm.bias", FSD_INIT_ZERO, 1, dm, 0, 0, 0);
    ADD(m->in_w, "mixer.in_proj.weight", FSD_INIT_ORTHO, 2, 2 * E, dm, 0, 0);
    static const char *sfx[2][7] = {
        {"mixer.conv1d.weight", "mixer.conv1d.bias", "mixer.x_proj.weight", "mixer.dt_proj.weight",
         "mixer.dt_proj.bias", "mixer.A_log", "mixer.D"},
        {"mixer.conv1d_b.weight", "mixer.conv1d_b.bias", "mixer.x_proj_b.weight", "mixer.dt_proj_b.weight",
         "mixer.dt_proj_b.bias", "mixer.A_b_log", "mixer.D_b"}};
    for (int d = 0; d < ndir; d++) {
        ADD(m->dir[d].conv_w, sfx[d][0], FSD_INIT_ORTHO, 3, E, 1, K, 0);
        ADD(m->dir[d].conv_b, sfx[d][1], FSD_INIT_ZERO, 1, E, 0, 0, 0);
        ADD(m->dir[d].xp_w, sfx[d][2], FSD_INIT_ORTHO, 2, R + 2 * N, E, 0, 0);
        ADD(m->dir[d].dt_w, sfx[d][3], FSD_INIT_ORTHO, 2, E, R, 0, 0);
        ADD(m->dir[d].dt_b, sfx[d][4], FSD_INIT_ZERO, 1, E, 0, 0, 0);
        ADD(m->dir[d].A_log, sfx[d][5], FSD_INIT_ALOG, 2, E, N, 0, 0);
        ADD(m->dir[d].D, sfx[d][6], FSD_INIT_ONE, 1, E, 0, 0, 0);
    }
    ADD(m->out_w, "mixer.out_proj.weight", FSD_INIT_ORTHO, 2, dm, E, 0, 0);
}

/* channel-major linear (B, out, L) = W (out, in) x (B, in, L): a 1x1 conv over a 1 x L image */
static fsd_status cm_linear(float *y, const float *x, const float *w, const float *b, int B, int in, int out, int L,
                            fsd_arena *ws) {
    return fsd_conv2d_forward(y, x, w, b, B, in, 1, L, out, 1, 1, 0, ws);
}
static fsd_status cm_linear_bwd(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                                int B, int in, int out, int L, fsd_arena *ws) {
    return fsd_conv2d_backward(dx, dw, db, dy, x, w, B, in, 1, L, out, 1, 1, 0, ws);
}

fsd_status nn_mamba_forward(nn_ctx *c, nn_mamba *m, float *out, const float *x, int L) {
    size_t mark = fsd_arena_mark(c->act), wmark = fsd_arena_mark(c->ws);
    const float *P = c->P;
    int B = c->B, E = m->E, N = m->N, R = m->R, dm = m->dm;
    size_t nE = (size_t)B * E * L;
    fsd_arena *A = c->act;
    m->x = x, m->L = L;
    NEED(m->ln = nn_alloc(c, A, (size_t)B * dm * L));
    NEED(m->mean = nn_alloc(c, A, (size_t)B * L));
    NEED(m->rstd = nn_alloc(c, A, (size_t)B * L));
    NEED(m->xs = nn_alloc(c, A, nE));
    NEED(m->zs = nn_alloc(c, A, nE));
    NEED(m->ysum = nn_alloc(c, A, nE));
    float *xz = nn_alloc(c, c->ws, 2 * nE), *dbc = nn_alloc(c, c->ws, (size_t)B * (R + 2 * N) * L);
    float *bc = nn_alloc(c, c->ws, (size_t)B * 2 * N * L), *yb = nn_alloc(c, c->ws, nE);
    NEED(xz && dbc && bc && yb);
    CK(fsd_layernorm_cm_forward(m->ln, m->mean, m->rstd, x, P + m->ln_w, P + m->ln_b, B, dm, L, 1e-5f));
    CK(cm_linear(xz, m->ln, P + m->in_w, NULL, B, dm, 2 * E, L, c->ws));
    fsd_split_forward(m->xs, m->zs, xz, B, E, E, L); /* in_proj split [x | z] */
    for (int d = 0; d < m->ndir; d++) {
        nn_mamba_saved *s = &m->sv[d];
        NEED(s->xc = nn_alloc(c, A, nE));
        NEED(s->xa = nn_alloc(c, A, nE));
        NEED(s->dtl = nn_alloc(c, A, (size_t)B * R * L));
        NEED(s->Bm = nn_alloc(c, A, (size_t)B * N * L));
        NEED(s->Cm = nn_alloc(c, A, (size_t)B * N * L));
        NEED(s->dtr = nn_alloc(c, A, nE));
        NEED(s->delta = nn_alloc(c, A, nE));
        s->hckpt = NULL;
        if (c->train) NEED(s->hckpt = nn_alloc(c, A, fsd_selective_scan_ckpt_floats(B, E, N, L, 0)));
        CK(fsd_conv1d_causal_forward(s->xc, m->xs, P + m->dir[d].conv_w, P + m->dir[d].conv_b, B, E, L, m->K, d));
        fsd_silu_forward(s->xa, s->xc, nE);
        CK(cm_linear(dbc, s->xa, P + m->dir[d].xp_w, NULL, B, E, R + 2 * N, L, c->ws));
        fsd_split_forward(s->dtl, bc, dbc, B, R, 2 * N, L); /* x_proj split [dt | B | C] */
        fsd_split_forward(s->Bm, s->Cm, bc, B, N, N, L);
        CK(cm_linear(s->dtr, s->dtl, P + m->dir[d].dt_w, P + m->dir[d].dt_b, B, R, E, L, c->ws));
        fsd_softplus_forward(s->delta, s->dtr, nE);
        CK(fsd_selective_scan_forward(d ? yb : m->ysum, s->hckpt, s->xa, s->delta, P + m->dir[d].A_log, s->Bm, s->Cm,
                                      P + m->dir[d].D, m->zs, B, E, N, L, 0, d, c->ws));
    }
    if (m->ndir == 2) {
        float sc = m->divide ? 0.5f : 1.0f;
        for (size_t i = 0; i < nE; i++) m->ysum[i] = (m->ysum[i] + yb[i]) * sc;
    }
    CK(cm_linear(out, m->ysum, P + m->out_w, NULL, B, E, dm, L, c->ws));
    size_t nx = (size_t)B * dm * L;
    for (size_t i = 0; i < nx; i++) out[i] += x[i];
    fsd_arena_reset(c->ws, wmark);
    if (!c->train) fsd_arena_reset(c->act, mark);
    return FSD_OK;
}

fsd_status nn_mamba_backward(nn_ctx *c, nn_mamba *m, float *dx, const float *dout) {
    size_t mark = fsd_arena_mark(c->ws);
    const float *P = c->P;
    float *G = c->G;
    int B = c->B, E = m->E, N = m->N, R = m->R, dm = m->dm, L = m->L;
    size_t nE = (size_t)B * E * L, nx = (size_t)B * dm * L;
    fsd_arena *W = c->ws;
    for (size_t i = 0; i < nx; i++) dx[i] += dout[i];
    float *dy = nn_zalloc(c, W, nE), *dxs = nn_zalloc(c, W, nE), *dzs = nn_zalloc(c, W, nE);
    float *dxa = nn_alloc(c, W, nE), *ddelta = nn_alloc(c, W, nE), *ddtr = nn_alloc(c, W, nE);
    float *dxc = nn_alloc(c, W, nE);
    float *dBm = nn_alloc(c, W, (size_t)B * N * L), *dCm = nn_alloc(c, W, (size_t)B * N * L);
    float *ddtl = nn_alloc(c, W, (size_t)B * R * L), *dbc = nn_alloc(c, W, (size_t)B * 2 * N * L);
    float *ddbc = nn_alloc(c, W, (size_t)B * (R + 2 * N) * L);
    float *dxz = nn_alloc(c, W, 2 * nE), *dln = nn_zalloc(c, W, nx);
    NEED(dy && dxs && dzs && dxa && ddelta && ddtr && dxc && dBm && dCm && ddtl && dbc && ddbc && dxz && dln);
    CK(cm_linear_bwd(dy, G + m->out_w, NULL, dout, m->ysum, P + m->out_w, B, E, dm, L, W));
    if (m->divide)
        for (size_t i = 0; i < nE; i++) dy[i] *= 0.5f;
#define Z(p, n) memset(p, 0, (n) * sizeof(float))
    for (int d = 0; d < m->ndir; d++) {
        nn_mamba_saved *s = &m->sv[d];
        Z(dxa, nE), Z(ddelta, nE), Z(dBm, (size_t)B * N * L), Z(dCm, (size_t)B * N * L);
        CK(fsd_selective_scan_backward(dxa, ddelta, G + m->dir[d].A_log, dBm, dCm, G + m->dir[d].D, dzs, dy,
                                       s->hckpt, s->xa, s->delta, P + m->dir[d].A_log, s->Bm, s->Cm, P + m->dir[d].D,
                                       m->zs, B, E, N, L, 0, d, W));
        Z(ddtr, nE);
        fsd_softplus_backward(ddtr, ddelta, s->dtr, nE);
        Z(ddtl, (size_t)B * R * L);
        CK(cm_linear_bwd(ddtl, G + m->dir[d].dt_w, G + m->dir[d].dt_b, ddtr, s->dtl, P + m->dir[d].dt_w, B, R, E, L, W));
        fsd_concat_forward(dbc, dBm, dCm, B, N, N, L);
        fsd_concat_forward(ddbc, ddtl, dbc, B, R, 2 * N, L);
        CK(cm_linear_bwd(dxa, G + m->dir[d].xp_w, NULL, ddbc, s->xa, P + m->dir[d].xp_w, B, E, R + 2 * N, L, W));
        Z(dxc, nE);
        fsd_silu_backward(dxc, dxa, s->xc, nE);
        CK(fsd_conv1d_causal_backward(dxs, G + m->dir[d].conv_w, G + m->dir[d].conv_b, dxc, m->xs,
                                      P + m->dir[d].conv_w, B, E, L, m->K, d));
    }
#undef Z
    fsd_concat_forward(dxz, dxs, dzs, B, E, E, L);
    CK(cm_linear_bwd(dln, G + m->in_w, NULL, dxz, m->ln, P + m->in_w, B, dm, 2 * E, L, W));
    CK(fsd_layernorm_cm_backward(dx, G + m->ln_w, G + m->ln_b, dln, m->x, m->mean, m->rstd, P + m->ln_w, B, dm, L, W));
    fsd_arena_reset(c->ws, mark);
    return FSD_OK;
}
