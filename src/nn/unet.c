/* The whole FS-Diff network: build from config, init, load/save, forward, backward, loss. */
#include "nn_internal.h"

#include "fsdiff/json.h"
#include "fsdiff/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>



enum { L_CONV = 0, L_RES, L_DOWN, L_UP };

typedef struct nn_layer {
    int type, cin, cout, has_attn;
    size_t w, b;            /* conv_in / Downsample / Upsample conv */
    nn_resblock rb;
    nn_attn at;
    /* saved */
    const float *in;        /* conv input (upsampled for L_UP) */
    float *cat, *mid, *out;
    int H, W;               /* input resolution */
} nn_layer;

struct fsd_net {
    fsd_net_config cfg;
    fsd_params params;
    size_t mlp1_w, mlp1_b, mlp3_w, mlp3_b;
    int has_stem, has_midm;
    nn_mamba stem, midm;
    nn_layer *downs, *ups, mid[2];
    int n_downs, n_ups;
    nn_block final;
    fsd_arena act, ws;
    size_t act_peak, ws_peak;
    uint64_t forward_runs; /* passes run, re-runs after an arena grew included */
    /* saved by the last forward */
    int B, H, W, have_fwd, bwd_proven;
    uint64_t drop_seed, drop_step, drop_sample0;
    float *xin, *ctx, *emb, *h, *s, *temb, *x0, *mm_out;
    int bot_H, bot_W, bot_C;
    size_t max_act; /* largest (B, C, H, W) buffer among layer inputs/outputs */
};

/* ---------------------------------------------------------------- construction */
static int has_attn_at(const fsd_net_config *c, int res) {
    for (int i = 0; i < c->n_attn; i++)
        if (c->attn_res[i] == res) return 1;
    return 0;
}

static fsd_status add_res(fsd_net *n, nn_layer *L, const char *prefix, int din, int dout, int attn, uint64_t drop_id) {
    const fsd_net_config *c = &n->cfg;
    char pre[160];
    L->type = L_RES, L->cin = din, L->cout = dout, L->has_attn = attn;
    snprintf(pre, sizeof pre, "%s.res_block", prefix);
    nn_resblock_setup(&L->rb, &n->params, pre, din, dout, c->base_channels, c->norm_groups, c->dropout, drop_id);
    if (attn) {
        int heads = din / c->d_head; /* the authors take heads from the block's INPUT channels */
        if (heads < 1) return fsd_fail(FSD_ERR_INVALID, "network config: %s has %d input channels < d_head %d", prefix, din, c->d_head);
        snprintf(pre, sizeof pre, "%s.attn", prefix);
        nn_attn_setup(&L->at, &n->params, pre, dout, heads, c->d_head, c->context_dim, c->context_tokens, c->norm_groups);
    }
    return FSD_OK;
}

static void add_conv(fsd_net *n, nn_layer *L, const char *prefix, int type, int cin, int cout) {
    char nm[160];
    L->type = type, L->cin = cin, L->cout = cout;
    snprintf(nm, sizeof nm, "%s.weight", prefix);
    L->w = fsd_params_add(&n->params, nm, FSD_INIT_ORTHO, 4, cout, cin, 3, 3);
    snprintf(nm, sizeof nm, "%s.bias", prefix);
    L->b = fsd_params_add(&n->params, nm, FSD_INIT_ZERO, 1, cout, 0, 0, 0);
}

fsd_status fsd_net_create(fsd_net **out, const fsd_net_config *cfg) {
    *out = NULL;
    CK(fsd_net_config_validate(cfg));
    fsd_blas_init(); /* before the network's first product (embedders may never call fsd_set_threads) */
    fsd_net *n = calloc(1, sizeof *n);
    NEED(n);
    n->cfg = *cfg;
    const fsd_net_config *c = &n->cfg;
    fsd_params *p = &n->params;
    int C = c->base_channels, nm = c->n_mults, rb = c->res_blocks;
    fsd_status s = FSD_OK;
    n->mlp1_w = fsd_params_add(p, "noise_level_mlp.1.weight", FSD_INIT_ORTHO, 2, 4 * C, C, 0, 0);
    n->mlp1_b = fsd_params_add(p, "noise_level_mlp.1.bias", FSD_INIT_ZERO, 1, 4 * C, 0, 0, 0);
    n->mlp3_w = fsd_params_add(p, "noise_level_mlp.3.weight", FSD_INIT_ORTHO, 2, C, 4 * C, 0, 0);
    n->mlp3_b = fsd_params_add(p, "noise_level_mlp.3.bias", FSD_INIT_ZERO, 1, C, 0, 0, 0);
    /* encoder: conv_in, per level rb res blocks (+Downsample except last) */
    n->n_downs = 1 + nm * rb + (nm - 1);
    n->n_ups = nm * (rb + 1) + (nm - 1);
    n->downs = calloc((size_t)n->n_downs, sizeof(nn_layer));
    n->ups = calloc((size_t)n->n_ups, sizeof(nn_layer));
    int *feat = calloc((size_t)n->n_downs, sizeof(int));
    if (!n->downs || !n->ups || !feat) {
        free(feat);
        fsd_net_free(n);
        return fsd_fail(FSD_ERR_NOMEM, "out of memory building the network");
    }
    char pre[64];
    int li = 0, nf = 0, pre_ch = C, res = c->image_size;
    uint64_t drop_id = 1;
    add_conv(n, &n->downs[li++], "downs.0", L_CONV, c->in_channels, C);
    feat[nf++] = C;
    for (int i = 0; i < nm && !s; i++) {
        int ch = C * c->mults[i];
        for (int r = 0; r < rb && !s; r++) {
            snprintf(pre, sizeof pre, "downs.%d", li);
            s = add_res(n, &n->downs[li++], pre, pre_ch, ch, has_attn_at(c, res), drop_id++);
            feat[nf++] = ch;
            pre_ch = ch;
        }
        if (i < nm - 1) {
            snprintf(pre, sizeof pre, "downs.%d.conv", li);
            add_conv(n, &n->downs[li++], pre, L_DOWN, pre_ch, pre_ch);
            feat[nf++] = pre_ch;
            res /= 2;
        }
    }
    if (!s) s = add_res(n, &n->mid[0], "mid.0", pre_ch, pre_ch, 1, drop_id++);
    if (!s) s = add_res(n, &n->mid[1], "mid.1", pre_ch, pre_ch, 0, drop_id++);
    li = 0;
    for (int i = nm - 1; i >= 0 && !s; i--) {
        int ch = C * c->mults[i];
        for (int r = 0; r < rb + 1 && !s; r++) {
            snprintf(pre, sizeof pre, "ups.%d", li);
            s = add_res(n, &n->ups[li++], pre, pre_ch + feat[--nf], ch, has_attn_at(c, res), drop_id++);
            pre_ch = ch;
        }
        if (i > 0) {
            snprintf(pre, sizeof pre, "ups.%d.conv", li);
            add_conv(n, &n->ups[li++], pre, L_UP, pre_ch, pre_ch);
            res *= 2;
        }
    }
    free(feat);
    nn_block_setup(&n->final, p, "final_conv", pre_ch, c->out_channels, c->norm_groups, 0.0f, 0);
    if (c->mamba != FSD_MAMBA_NONE) {
        n->has_stem = 1;
        nn_mamba_setup(&n->stem, p, "mamba", c->in_channels, c->d_state, c->d_conv, c->expand,
                       c->mamba == FSD_MAMBA_BIDIR ? 2 : 1, c->mamba_divide_out);
    }
    if (c->mamba_bottleneck != FSD_MAMBA_NONE) {
        n->has_midm = 1;
        nn_mamba_setup(&n->midm, p, "mid_mamba", C * c->mults[nm - 1], c->d_state, c->d_conv, c->expand,
                       c->mamba_bottleneck == FSD_MAMBA_BIDIR ? 2 : 1, c->mamba_divide_out);
    }
    if (!s) {
        p->data = fsd_calloc(p->total, sizeof(float));
        p->grad = fsd_calloc(p->total, sizeof(float));
        if (!p->data || !p->grad) s = fsd_fail(FSD_ERR_NOMEM, "cannot allocate %zu parameters", p->total);
    }
    if (!s) s = fsd_arena_init(&n->act, (size_t)16 << 20);
    if (!s) s = fsd_arena_init(&n->ws, (size_t)16 << 20);
    if (s) {
        fsd_net_free(n);
        return s;
    }
    *out = n;
    return FSD_OK;
}

void fsd_net_free(fsd_net *n) {
    if (!n) return;
    free(n->downs);
    free(n->ups);
    free(n->params.t);
    fsd_free(n->params.data);
    fsd_free(n->params.grad);
    fsd_arena_free(&n->act);
    fsd_arena_free(&n->ws);
    free(n);
}

const fsd_net_config *fsd_net_cfg(const fsd_net *n) { return &n->cfg; }
fsd_params *fsd_net_params(fsd_net *n) { return &n->params; }
fsd_status fsd_net_init(fsd_net *n, uint64_t seed) { return fsd_params_init(&n->params, seed); }
void fsd_net_set_sample0(fsd_net *n, uint64_t sample0) { n->drop_sample0 = sample0; }

void fsd_net_zero_grad(fsd_net *n) { memset(n->params.grad, 0, n->params.total * sizeof(float)); }

/* ---------------------------------------------------------------- load / save */
static int config_equal(const fsd_net_config *a, const fsd_net_config *b) {
    char *ja = fsd_net_config_to_json(a), *jb = fsd_net_config_to_json(b);
    int eq = ja && jb && !strcmp(ja, jb);
    fsd_free(ja), fsd_free(jb);
    return eq;
}

fsd_status fsd_net_load_st(fsd_net *n, const fsd_safetensors *st) {
    const char *meta = fsd_st_meta_get(st, FSD_NET_CONFIG_META_KEY);
    if (meta) {
        fsd_net_config fc;
        CK(fsd_net_config_from_json(&fc, meta, strlen(meta), st->path));
        if (!config_equal(&fc, &n->cfg))
            return fsd_fail(FSD_ERR_FORMAT, "%s: its network config differs from the one requested", st->path);
    }
    /* A model file may also hold the clarity encoder ("clarity.*", loaded by fsd_clarity_load) and a
     * training checkpoint its optimiser state ("train.*", read by the trainer). */
    for (int k = 0; k < st->n_tensors; k++)
        if (strncmp(st->tensors[k].name, "clarity.", 8) != 0 && strncmp(st->tensors[k].name, "train.", 6) != 0 &&
            !fsd_params_find(&n->params, st->tensors[k].name))
            return fsd_fail(FSD_ERR_FORMAT, "%s: unexpected tensor '%s' (not a parameter of this network)", st->path,
                            st->tensors[k].name);
    for (int k = 0; k < n->params.n; k++) {
        const fsd_param *e = &n->params.t[k];
        if (!fsd_st_find(st, e->name))
            return fsd_fail(FSD_ERR_FORMAT, "%s: missing tensor '%s'", st->path, e->name);
        float *buf;
        size_t cnt;
        CK(fsd_st_load_f32(st, e->name, e->ndim, e->shape, 1, &buf, &cnt));
        memcpy(n->params.data + e->offset, buf, e->numel * sizeof(float));
        fsd_free(buf);
    }
    return FSD_OK;
}

fsd_status fsd_net_load(fsd_net *n, const char *path) {
    fsd_safetensors st;
    CK(fsd_st_open(&st, path));
    fsd_status s = fsd_net_load_st(n, &st);
    fsd_st_close(&st);
    return s;
}

fsd_status fsd_net_open(fsd_net **out, const char *path) {
    *out = NULL;
    fsd_safetensors st;
    CK(fsd_st_open(&st, path));
    const char *meta = fsd_st_meta_get(&st, FSD_NET_CONFIG_META_KEY);
    fsd_net_config cfg;
    fsd_status s = meta ? fsd_net_config_from_json(&cfg, meta, strlen(meta), path)
                        : fsd_fail(FSD_ERR_FORMAT, "%s: no '%s' metadata (not an fsdiff network file)", path,
                                   FSD_NET_CONFIG_META_KEY);
    fsd_net *n = NULL;
    if (!s) s = fsd_net_create(&n, &cfg);
    if (!s) s = fsd_net_load_st(n, &st);
    fsd_st_close(&st);
    if (s) {
        fsd_net_free(n);
        return s;
    }
    *out = n;
    return FSD_OK;
}

fsd_status fsd_net_add_to_writer(const fsd_net *n, fsd_st_writer *w, fsd_dtype dtype) {
    if (dtype != FSD_F32 && dtype != FSD_F16 && dtype != FSD_BF16)
        return fsd_fail(FSD_ERR_INVALID, "save: dtype must be F32, F16 or BF16");
    for (int k = 0; k < n->params.n; k++) {
        const fsd_param *e = &n->params.t[k];
        CK(fsd_st_writer_add(w, e->name, dtype, e->ndim, e->shape, n->params.data + e->offset));
    }
    char *cj = fsd_net_config_to_json(&n->cfg);
    if (!cj) return FSD_ERR_NOMEM;
    fsd_status s = fsd_st_writer_meta(w, FSD_NET_CONFIG_META_KEY, cj);
    fsd_free(cj);
    return s;
}

fsd_status fsd_net_save(const fsd_net *n, const char *path, fsd_dtype dtype, int n_extra, const char *const *keys,
                        const char *const *vals) {
    fsd_st_writer w;
    fsd_st_writer_init(&w);
    fsd_status s = fsd_net_add_to_writer(n, &w, dtype);
    for (int i = 0; i < n_extra && !s; i++) s = fsd_st_writer_meta(&w, keys[i], vals[i]);
    if (!s) s = fsd_st_writer_save(&w, path);
    fsd_st_writer_free(&w);
    return s;
}

/* ---------------------------------------------------------------- forward */
static fsd_status conv_layer_fwd(nn_ctx *c, nn_layer *L, float *out, const float *x, int H, int W, int stride) {
    return fsd_conv2d_forward(out, x, c->P + L->w, c->P + L->b, c->B, L->cin, H, W, L->cout, 3, stride, 1, c->ws);
}

static fsd_status res_layer_fwd(nn_ctx *c, fsd_net *n, nn_layer *L, const float *x, int H, int W) {
    size_t no = (size_t)c->B * L->cout * H * W;
    L->in = x, L->H = H, L->W = W;
    NEED(L->out = nn_alloc(c, c->act, no));
    if (L->has_attn) {
        NEED(L->mid = nn_alloc(c, c->act, no));
        CK(nn_resblock_forward(c, &L->rb, L->mid, x, n->temb, H, W));
        CK(nn_attn_forward(c, &L->at, L->out, L->mid, n->ctx, H * W));
    } else {
        CK(nn_resblock_forward(c, &L->rb, L->out, x, n->temb, H, W));
    }
    if (no > n->max_act) n->max_act = no;
    return FSD_OK;
}

static fsd_status forward_impl(nn_ctx *c, fsd_net *n, const float *x, const float *gamma, const float *ctx,
                               float *eps, int H, int W) {
    const fsd_net_config *cf = &n->cfg;
    int B = c->B, C = cf->base_channels, HW = H * W;
    const float *P = c->P;
    fsd_arena *A = c->act;
    n->max_act = (size_t)B * cf->in_channels * HW;
    /* inputs are copied: the backward must not depend on caller buffers */
    size_t nx = (size_t)B * cf->in_channels * HW, nctx = (size_t)B * cf->context_tokens * cf->context_dim;
    NEED(n->xin = nn_alloc(c, A, nx));
    memcpy(n->xin, x, nx * sizeof(float));
    n->ctx = NULL;
    if (ctx) {
        NEED(n->ctx = nn_alloc(c, A, nctx));
        memcpy(n->ctx, ctx, nctx * sizeof(float));
    }
    /* noise-level embedding -> MLP (B, C) */
    NEED(n->emb = nn_alloc(c, A, (size_t)B * C));
    NEED(n->h = nn_alloc(c, A, (size_t)B * 4 * C));
    NEED(n->s = nn_alloc(c, A, (size_t)B * 4 * C));
    NEED(n->temb = nn_alloc(c, A, (size_t)B * C));
    CK(fsd_noise_embedding_forward(n->emb, gamma, B, C));
    CK(fsd_linear_forward(n->h, n->emb, P + n->mlp1_w, P + n->mlp1_b, B, C, 4 * C));
    fsd_silu_forward(n->s, n->h, (size_t)B * 4 * C);
    CK(fsd_linear_forward(n->temb, n->s, P + n->mlp3_w, P + n->mlp3_b, B, 4 * C, C));
    /* Mamba stem on the raster-order token sequence of the 9-channel input */
    n->x0 = n->xin;
    if (n->has_stem) {
        NEED(n->x0 = nn_alloc(c, A, nx));
        CK(nn_mamba_forward(c, &n->stem, n->x0, n->xin, HW));
    }
    const float *cur = n->x0;
    int h = H, w = W;
    for (int i = 0; i < n->n_downs; i++) {
        nn_layer *L = &n->downs[i];
        if (L->type == L_RES) {
            CK(res_layer_fwd(c, n, L, cur, h, w));
        } else {
            int st = L->type == L_DOWN ? 2 : 1;
            int ho = st == 2 ? (h + 1) / 2 : h, wo = st == 2 ? (w + 1) / 2 : w;
            L->in = cur, L->H = h, L->W = w;
            NEED(L->out = nn_alloc(c, A, (size_t)B * L->cout * ho * wo));
            CK(conv_layer_fwd(c, L, L->out, cur, h, w, st));
            h = ho, w = wo;
        }
        cur = n->downs[i].out;
    }
    n->bot_H = h, n->bot_W = w, n->bot_C = n->mid[0].cin;
    if (n->has_midm) {
        NEED(n->mm_out = nn_alloc(c, A, (size_t)B * n->bot_C * h * w));
        CK(nn_mamba_forward(c, &n->midm, n->mm_out, cur, h * w));
        cur = n->mm_out;
    }
    for (int i = 0; i < 2; i++) {
        CK(res_layer_fwd(c, n, &n->mid[i], cur, h, w));
        cur = n->mid[i].out;
    }
    int sp = n->n_downs;
    int cur_ch = n->bot_C;
    for (int i = 0; i < n->n_ups; i++) {
        nn_layer *L = &n->ups[i];
        if (L->type == L_RES) {
            const nn_layer *F = &n->downs[--sp];
            size_t ncat = (size_t)B * L->cin * h * w;
            NEED(L->cat = nn_alloc(c, A, ncat));
            fsd_concat_forward(L->cat, cur, F->out, B, cur_ch, F->cout, h * w); /* [x, skip] */
            if (ncat > n->max_act) n->max_act = ncat;
            CK(res_layer_fwd(c, n, L, L->cat, h, w));
        } else {
            size_t nu = (size_t)B * L->cin * 4 * h * w;
            float *up = nn_alloc(c, A, nu);
            NEED(up);
            fsd_upsample2x_forward(up, cur, B, L->cin, h, w);
            h *= 2, w *= 2;
            L->in = up, L->H = h, L->W = w;
            NEED(L->out = nn_alloc(c, A, nu));
            CK(conv_layer_fwd(c, L, L->out, up, h, w, 1));
            if (nu > n->max_act) n->max_act = nu;
        }
        cur = L->out;
        cur_ch = L->cout;
    }
    CK(nn_block_forward(c, &n->final, eps, cur, h, w));
    return FSD_OK;
}

static fsd_status grow(fsd_arena *a, size_t *peak) {
    if (a->peak > *peak) *peak = a->peak;
    size_t cap = a->cap * 2;
    fsd_arena_free(a);
    fsd_status s = fsd_arena_init(a, cap);
    if (s) return fsd_fail(FSD_ERR_NOMEM, "network: cannot grow a work arena to %.1f GiB", cap / 1073741824.0);
    return FSD_OK;
}

/* Grow arena a to at least want bytes, the new block allocated before the old one is freed (on failure
 * the arena is left as it was). */
static fsd_status reserve_arena(fsd_arena *a, size_t *peak, size_t want) {
    if (a->cap >= want) return FSD_OK;
    fsd_arena na;
    if (fsd_arena_init(&na, want))
        return fsd_fail(FSD_ERR_NOMEM, "network: cannot reserve a %.1f MiB work arena", want / 1048576.0);
    if (a->peak > *peak) *peak = a->peak;
    fsd_arena_free(a);
    *a = na;
    return FSD_OK;
}

fsd_status fsd_net_reserve(fsd_net *n, size_t act_bytes, size_t scratch_bytes) {
    n->have_fwd = 0; /* what a training forward saved is gone with the old block */
    CK(reserve_arena(&n->act, &n->act_peak, act_bytes));
    return reserve_arena(&n->ws, &n->ws_peak, scratch_bytes);
}

static nn_ctx make_ctx(fsd_net *n, int B, int train, uint64_t seed, uint64_t step) {
    nn_ctx c;
    memset(&c, 0, sizeof c);
    c.P = n->params.data, c.G = n->params.grad, c.act = &n->act, c.ws = &n->ws;
    c.train = train, c.B = B, c.seed = seed, c.step = step, c.sample0 = n->drop_sample0;
    return c;
}

fsd_status fsd_net_forward(fsd_net *n, const float *x, const float *gamma, const float *ctx, float *eps, int B,
                           int H, int W, int train, uint64_t seed, uint64_t step) {
    const fsd_net_config *cf = &n->cfg;
    int div = 1 << (cf->n_mults - 1);
    if (B < 1 || H < div || W < div || H % div || W % div)
        return fsd_fail(FSD_ERR_INVALID, "network forward: %dx%d input must be a positive multiple of %d", H, W, div);
    if (!ctx) return fsd_fail(FSD_ERR_INVALID, "network forward: context tokens (B, %d, %d) required",
                              cf->context_tokens, cf->context_dim);
    if (B != n->B || H != n->H || W != n->W) n->bwd_proven = 0;
    n->have_fwd = 0;
    for (int tries = 0;; tries++) {
        nn_ctx c = make_ctx(n, B, train, seed, step);
        fsd_arena_reset(&n->act, 0);
        fsd_arena_reset(&n->ws, 0);
        fsd_status s = forward_impl(&c, n, x, gamma, ctx, eps, H, W);
        n->forward_runs++;
        if (s == FSD_ERR_NOMEM && tries < 48) {
            CK(c.act_short ? grow(&n->act, &n->act_peak) : grow(&n->ws, &n->ws_peak));
            fsd_clear_error(); /* the exhaustion was handled; leave no stale message */
            continue;
        }
        if (s) return s;
        break;
    }
    if (n->act.peak > n->act_peak) n->act_peak = n->act.peak;
    if (n->ws.peak > n->ws_peak) n->ws_peak = n->ws.peak;
    n->B = B, n->H = H, n->W = W, n->have_fwd = train;
    n->drop_seed = seed, n->drop_step = step;
    return FSD_OK;
}

/* ---------------------------------------------------------------- backward */
static void add_into(float *y, const float *x, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

/* dx (B, cin, H, W) += d(layer)/dx from dout; dtemb/dctx accumulated. dtmp: scratch >= max_act. */
static fsd_status res_layer_bwd(nn_ctx *c, fsd_net *n, nn_layer *L, float *dx, float *dtemb, float *dctx,
                                const float *dout, float *dtmp) {
    if (L->has_attn) {
        size_t no = (size_t)c->B * L->cout * L->H * L->W;
        memset(dtmp, 0, no * sizeof(float));
        CK(nn_attn_backward(c, &L->at, dtmp, dctx, dout));
        dout = dtmp;
    }
    return nn_resblock_backward(c, &L->rb, dx, dtemb, dout);
}

static fsd_status backward_impl(nn_ctx *c, fsd_net *n, const float *d_eps, float *dctx) {
    const fsd_net_config *cf = &n->cfg;
    int B = c->B, C = cf->base_channels;
    fsd_arena *W = c->ws;
    const float *P = c->P;
    float *G = c->G;
    size_t M = n->max_act;
    float *d0 = nn_alloc(c, W, M), *d1 = nn_alloc(c, W, M), *dt = nn_alloc(c, W, M);
    float *dtemb = nn_zalloc(c, W, (size_t)B * C);
    float **dfeat = (float **)fsd_arena_alloc(W, (size_t)n->n_downs * sizeof(float *));
    NEED(d0 && d1 && dt && dtemb && dfeat);
    for (int i = 0; i < n->n_downs; i++) {
        const nn_layer *L = &n->downs[i];
        size_t hw = (size_t)(L->type == L_DOWN ? ((L->H + 1) / 2) * ((L->W + 1) / 2) : L->H * L->W);
        NEED(dfeat[i] = nn_zalloc(c, W, (size_t)B * L->cout * hw));
    }
    int h = n->H, w = n->W;
    int cur_ch = n->final.cin;
    /* final GN-SiLU-conv */
    memset(d0, 0, (size_t)B * cur_ch * h * w * sizeof(float));
    CK(nn_block_backward(c, &n->final, d0, d_eps));
    int sp = 0; /* the last up block consumed downs[0] */
    for (int i = n->n_ups - 1; i >= 0; i--) {
        nn_layer *L = &n->ups[i];
        if (L->type == L_RES) {
            const nn_layer *F = &n->downs[sp];
            int cx = L->cin - F->cout;
            memset(d1, 0, (size_t)B * L->cin * h * w * sizeof(float));
            CK(res_layer_bwd(c, n, L, d1, dtemb, dctx, d0, dt));
            /* split d[x, skip]: x part to the previous layer, skip part to the encoder feature */
            memset(d0, 0, (size_t)B * cx * h * w * sizeof(float));
            fsd_concat_backward(d0, dfeat[sp], d1, B, cx, F->cout, h * w);
            sp++;
            cur_ch = cx;
        } else {
            memset(d1, 0, (size_t)B * L->cin * h * w * sizeof(float));
            CK(fsd_conv2d_backward(d1, G + L->w, G + L->b, d0, L->in, P + L->w, B, L->cin, h, w, L->cout, 3, 1, 1, W));
            h /= 2, w /= 2;
            memset(d0, 0, (size_t)B * L->cin * h * w * sizeof(float));
            fsd_upsample2x_backward(d0, d1, B, L->cin, h, w);
            cur_ch = L->cin;
        }
    }
    (void)cur_ch;
    /* middle */
    for (int i = 1; i >= 0; i--) {
        memset(d1, 0, (size_t)B * n->bot_C * h * w * sizeof(float));
        CK(res_layer_bwd(c, n, &n->mid[i], d1, dtemb, dctx, d0, dt));
        float *t = d0; d0 = d1; d1 = t;
    }
    if (n->has_midm) {
        memset(d1, 0, (size_t)B * n->bot_C * h * w * sizeof(float));
        CK(nn_mamba_backward(c, &n->midm, d1, d0));
        float *t = d0; d0 = d1; d1 = t;
    }
    add_into(dfeat[n->n_downs - 1], d0, (size_t)B * n->bot_C * h * w);
    /* encoder, last to first; downs[i] feeds downs[i+1] */
    size_t nx = (size_t)B * cf->in_channels * n->H * n->W;
    float *dx0 = nn_zalloc(c, W, nx);
    NEED(dx0);
    for (int i = n->n_downs - 1; i >= 0; i--) {
        nn_layer *L = &n->downs[i];
        float *dprev = i > 0 ? dfeat[i - 1] : dx0;
        if (L->type == L_RES) {
            CK(res_layer_bwd(c, n, L, dprev, dtemb, dctx, dfeat[i], dt));
        } else {
            int st = L->type == L_DOWN ? 2 : 1;
            int need_dx = i > 0 || n->has_stem;
            CK(fsd_conv2d_backward(need_dx ? dprev : NULL, G + L->w, G + L->b, dfeat[i], L->in, P + L->w, B, L->cin,
                                   L->H, L->W, L->cout, 3, st, 1, W));
        }
    }
    if (n->has_stem) {
        float *dxin = nn_zalloc(c, W, nx); /* input gradient, unused */
        NEED(dxin);
        CK(nn_mamba_backward(c, &n->stem, dxin, dx0));
    }
    /* noise-level MLP */
    float *ds = nn_zalloc(c, W, (size_t)B * 4 * C), *dh = nn_zalloc(c, W, (size_t)B * 4 * C);
    NEED(ds && dh);
    CK(fsd_linear_backward(ds, G + n->mlp3_w, G + n->mlp3_b, dtemb, n->s, P + n->mlp3_w, B, 4 * C, C, W));
    fsd_silu_backward(dh, ds, n->h, (size_t)B * 4 * C);
    CK(fsd_linear_backward(NULL, G + n->mlp1_w, G + n->mlp1_b, dh, n->emb, P + n->mlp1_w, B, C, 4 * C, W));
    return FSD_OK;
}

fsd_status fsd_net_backward(fsd_net *n, const float *d_eps, float *dctx) {
    if (!n->have_fwd) return fsd_fail(FSD_ERR_INVALID, "network backward: no training forward to go back through");
    const fsd_net_config *cf = &n->cfg;
    size_t nctx = (size_t)n->B * cf->context_tokens * cf->context_dim;
    /* The scratch arena may be too small the first time at a shape: then the gradients are restored
     * from a snapshot, the arena grown and the backward re-run. */
    float *snap = NULL, *snap_ctx = NULL;
    if (!n->bwd_proven) {
        snap = fsd_alloc(n->params.total * sizeof(float));
        NEED(snap);
        memcpy(snap, n->params.grad, n->params.total * sizeof(float));
        if (dctx) {
            snap_ctx = fsd_alloc(nctx * sizeof(float));
            if (!snap_ctx) { fsd_free(snap); return FSD_ERR_NOMEM; }
            memcpy(snap_ctx, dctx, nctx * sizeof(float));
        }
    }
    fsd_status s;
    for (int tries = 0;; tries++) {
        /* dropout masks are regenerated from the forward's (seed, step) stream */
        nn_ctx c = make_ctx(n, n->B, 1, n->drop_seed, n->drop_step);
        fsd_arena_reset(&n->ws, 0);
        s = backward_impl(&c, n, d_eps, dctx);
        if (s == FSD_ERR_NOMEM && snap && tries < 48) {
            memcpy(n->params.grad, snap, n->params.total * sizeof(float));
            if (snap_ctx) memcpy(dctx, snap_ctx, nctx * sizeof(float));
            s = grow(&n->ws, &n->ws_peak);
            if (s) break;
            fsd_clear_error();
            continue;
        }
        break;
    }
    if (!s) n->bwd_proven = 1;
    if (n->ws.peak > n->ws_peak) n->ws_peak = n->ws.peak;
    fsd_free(snap);
    fsd_free(snap_ctx);
    return s;
}

void fsd_net_memory(const fsd_net *n, size_t *act_peak, size_t *scratch_peak) {
    size_t a = n->act.peak > n->act_peak ? n->act.peak : n->act_peak;
    size_t w = n->ws.peak > n->ws_peak ? n->ws.peak : n->ws_peak;
    if (act_peak) *act_peak = a;
    if (scratch_peak) *scratch_peak = w;
}

uint64_t fsd_net_forward_runs(const fsd_net *n) { return n->forward_runs; }

void fsd_net_memory_reset(fsd_net *n) {
    n->act_peak = n->ws_peak = 0;
    n->act.peak = n->act.used;
    n->ws.peak = n->ws.used;
}
