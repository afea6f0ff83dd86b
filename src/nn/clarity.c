/* Clarity encoder (include/fsdiff/clarity.h, docs/model.md "Clarity encoder"): a small shared CNN on
 * each upsampled source -> degradation prediction + context tokens, the clarity context rule, the
 * external context file, and save/load inside the model file. */
#include "fsdiff/clarity.h"

#include "fsdiff/json.h"
#include "fsdiff/ops.h"
#include "nn_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>



/* ---------------------------------------------------------------- degradation normalisation */
static const float DEG_CENTER[3] = {1.5f, 2.0f, 12.5f}, DEG_HALF[3] = {1.5f, 2.0f, 12.5f};

void fsd_clarity_normalise(float *n, const float *p) {
    for (int k = 0; k < 3; k++) n[k] = (p[k] - DEG_CENTER[k]) / DEG_HALF[k];
}

void fsd_clarity_denormalise(float *p, const float *n) {
    for (int k = 0; k < 3; k++) p[k] = n[k] * DEG_HALF[k] + DEG_CENTER[k];
}

/* ---------------------------------------------------------------- modes, config */
fsd_status fsd_context_mode_parse(const char *name, fsd_context_mode *out) {
    if (!strcmp(name, "mean")) *out = FSD_CONTEXT_MEAN;
    else if (!strcmp(name, "clarity")) *out = FSD_CONTEXT_CLARITY;
    else return fsd_fail(FSD_ERR_INVALID, "unknown context mode '%s' (mean, clarity)", name);
    return FSD_OK;
}

const char *fsd_context_mode_name(fsd_context_mode m) { return m == FSD_CONTEXT_CLARITY ? "clarity" : "mean"; }

void fsd_clarity_config_default(fsd_clarity_config *c, int context_dim) {
    memset(c, 0, sizeof *c);
    c->n_stages = 4;
    int w[4] = {32, 64, 96, 128};
    memcpy(c->widths, w, sizeof w);
    c->groups = 8;
    c->pool = 2;
    c->context_dim = context_dim;
    c->blur_weight = 0.5f;
    c->threshold = 1.5f;
    c->lambda = 0.1f;
}

fsd_status fsd_clarity_config_validate(const fsd_clarity_config *c) {
#define BAD(...) return fsd_fail(FSD_ERR_INVALID, "clarity config: " __VA_ARGS__)
    if (c->n_stages < 1 || c->n_stages > FSD_CLARITY_MAX_STAGES)
        BAD("n_stages %d out of range 1..%d", c->n_stages, FSD_CLARITY_MAX_STAGES);
    if (c->groups < 1 || c->groups > 64) BAD("groups %d out of range 1..64", c->groups);
    for (int i = 0; i < c->n_stages; i++)
        if (c->widths[i] < c->groups || c->widths[i] > 4096 || c->widths[i] % c->groups)
            BAD("widths[%d] = %d must be a multiple of groups %d (<= 4096)", i, c->widths[i], c->groups);
    if (c->pool < 0 || c->pool > 8) BAD("pool %d out of range 0..8", c->pool);
    if (c->context_dim < 1 || c->context_dim > 8192) BAD("context_dim %d out of range 1..8192", c->context_dim);
    if (!isfinite(c->blur_weight) || c->blur_weight < 0) BAD("blur_weight must be finite and >= 0");
    if (!isfinite(c->threshold)) BAD("threshold must be finite");
    if (!isfinite(c->lambda) || c->lambda < 0) BAD("lambda must be finite and >= 0");
#undef BAD
    return FSD_OK;
}

fsd_status fsd_clarity_check_net(const fsd_clarity_config *c, const fsd_net_config *net) {
    int T = fsd_clarity_tokens(c->pool * c->pool);
    if (net->context_dim != c->context_dim || net->context_tokens != T)
        return fsd_fail(FSD_ERR_INVALID,
                        "clarity encoder emits %d tokens of width %d but the network expects context_tokens %d, "
                        "context_dim %d (set context_tokens = 2 (1 + pool^2))",
                        T, c->context_dim, net->context_tokens, net->context_dim);
    return FSD_OK;
}

char *fsd_clarity_config_to_json(const fsd_clarity_config *c) {
    char w[160] = "", *o;
    size_t k = 0;
    for (int i = 0; i < c->n_stages; i++) k += (size_t)snprintf(w + k, sizeof w - k, "%s%d", i ? ", " : "", c->widths[i]);
    size_t n = 512;
    if (!(o = fsd_alloc(n))) return NULL;
    /* %.9g round-trips a float exactly */
    snprintf(o, n,
             "{\"widths\": [%s], \"groups\": %d, \"pool\": %d, \"context_dim\": %d, \"blur_weight\": %.9g, "
             "\"threshold\": %.9g, \"lambda\": %.9g}",
             w, c->groups, c->pool, c->context_dim, (double)c->blur_weight, (double)c->threshold, (double)c->lambda);
    return o;
}

static fsd_status json_int(const fsd_json *v, const char *label, const char *key, int *out) {
    if (v->type != FSD_JSON_NUMBER || !v->is_int || v->i64 < -1000000 || v->i64 > 1000000)
        return fsd_fail(FSD_ERR_FORMAT, "%s: clarity config key '%s' must be an integer", label, key);
    *out = (int)v->i64;
    return FSD_OK;
}

fsd_status fsd_clarity_config_from_json(fsd_clarity_config *c, const char *text, size_t len, const char *label) {
    fsd_json j;
    CK(fsd_json_parse(text, len, label, &j));
    fsd_status s = FSD_OK;
    fsd_clarity_config_default(c, 512);
    if (j.type != FSD_JSON_OBJECT) s = fsd_fail(FSD_ERR_FORMAT, "%s: clarity config must be a JSON object", label);
    for (int i = 0; i < j.n && !s; i++) {
        const char *k = j.keys[i];
        const fsd_json *v = &j.items[i];
        if (!strcmp(k, "widths")) {
            if (v->type != FSD_JSON_ARRAY || v->n < 1 || v->n > FSD_CLARITY_MAX_STAGES)
                s = fsd_fail(FSD_ERR_FORMAT, "%s: clarity config 'widths' must be an array of 1..%d integers", label,
                             FSD_CLARITY_MAX_STAGES);
            for (int q = 0; !s && q < v->n; q++) s = json_int(&v->items[q], label, "widths", &c->widths[q]);
            if (!s) c->n_stages = v->n;
        } else if (!strcmp(k, "groups")) s = json_int(v, label, k, &c->groups);
        else if (!strcmp(k, "pool")) s = json_int(v, label, k, &c->pool);
        else if (!strcmp(k, "context_dim")) s = json_int(v, label, k, &c->context_dim);
        else if (!strcmp(k, "blur_weight") || !strcmp(k, "threshold") || !strcmp(k, "lambda")) {
            if (v->type != FSD_JSON_NUMBER) s = fsd_fail(FSD_ERR_FORMAT, "%s: clarity config '%s' must be a number", label, k);
            else if (!strcmp(k, "blur_weight")) c->blur_weight = (float)v->num;
            else if (!strcmp(k, "threshold")) c->threshold = (float)v->num;
            else c->lambda = (float)v->num;
        } else s = fsd_fail(FSD_ERR_FORMAT, "%s: unknown clarity config key '%s'", label, k);
    }
    fsd_json_free(&j);
    if (!s && (s = fsd_clarity_config_validate(c)) != FSD_OK) {
        char msg[512]; /* name the file, as the network config does */
        snprintf(msg, sizeof msg, "%s", fsd_error_message());
        s = fsd_fail(s, "%s: %s", label, msg);
    }
    return s;
}

/* ---------------------------------------------------------------- the context rule */
float fsd_clarity_score(const fsd_clarity_config *c, const float *phys3) {
    return phys3[0] + c->blur_weight * phys3[1];
}

void fsd_clarity_decide(const fsd_clarity_config *c, fsd_context_mode mode, const float *deg, int B, int *roles) {
    for (int b = 0; b < B; b++) {
        int r0 = FSD_ROLE_NEUTRAL, r1 = FSD_ROLE_NEUTRAL;
        if (mode == FSD_CONTEXT_CLARITY) {
            int blur0 = fsd_clarity_score(c, deg + (size_t)b * 6) > c->threshold;
            int blur1 = fsd_clarity_score(c, deg + (size_t)b * 6 + 3) > c->threshold;
            if (blur0 && !blur1) r0 = FSD_ROLE_LEAD, r1 = FSD_ROLE_FOLLOW;
            else if (blur1 && !blur0) r0 = FSD_ROLE_FOLLOW, r1 = FSD_ROLE_LEAD;
        }
        roles[2 * b] = r0, roles[2 * b + 1] = r1;
    }
}

/* ---------------------------------------------------------------- module */
typedef struct stage {
    size_t w, b, gw, gb;
    int cin, cout, Hi, Wi, Ho, Wo;
    float *z, *n, *a, *mean, *rstd; /* conv out, GN out, SiLU out (aliased at inference) */
} stage;

struct fsd_clarity {
    fsd_clarity_config cfg;
    fsd_params params;
    stage st[FSD_CLARITY_MAX_STAGES];
    size_t d0_w, d0_b, d2_w, d2_b, tg_w, tg_b, tp_w, tp_b, pos, mod, role;
    int S, C, P, D, T;
    /* buffers for the current (B, H, W, train) */
    float *buf;
    size_t buf_cap;
    fsd_arena ws;
    float *x, *g, *pl, *h, *ha, *pred, *tn, *tg, *tp;
    int *roles;
    int B, H, W, train, have_fwd, have_target;
};

fsd_status fsd_clarity_create(fsd_clarity **out, const fsd_clarity_config *c) {
    *out = NULL;
    CK(fsd_clarity_config_validate(c));
    fsd_clarity *e = calloc(1, sizeof *e);
    if (!e) return fsd_fail(FSD_ERR_NOMEM, "out of memory building the clarity encoder");
    e->cfg = *c;
    e->S = c->n_stages, e->C = c->widths[c->n_stages - 1], e->P = c->pool * c->pool, e->D = c->context_dim;
    e->T = fsd_clarity_tokens(e->P);
    fsd_params *p = &e->params;
    char nm[112];
    int cin = 3, C = e->C, D = e->D;
    for (int i = 0; i < e->S; i++) {
        stage *s = &e->st[i];
        s->cin = cin, s->cout = c->widths[i];
        snprintf(nm, sizeof nm, "clarity.stages.%d.conv.weight", i);
        s->w = fsd_params_add(p, nm, FSD_INIT_ORTHO, 4, s->cout, cin, 3, 3);
        snprintf(nm, sizeof nm, "clarity.stages.%d.conv.bias", i);
        s->b = fsd_params_add(p, nm, FSD_INIT_ZERO, 1, s->cout, 0, 0, 0);
        snprintf(nm, sizeof nm, "clarity.stages.%d.norm.weight", i);
        s->gw = fsd_params_add(p, nm, FSD_INIT_ONE, 1, s->cout, 0, 0, 0);
        snprintf(nm, sizeof nm, "clarity.stages.%d.norm.bias", i);
        s->gb = fsd_params_add(p, nm, FSD_INIT_ZERO, 1, s->cout, 0, 0, 0);
        cin = s->cout;
    }
    e->d0_w = fsd_params_add(p, "clarity.deg.0.weight", FSD_INIT_ORTHO, 2, C, C, 0, 0);
    e->d0_b = fsd_params_add(p, "clarity.deg.0.bias", FSD_INIT_ZERO, 1, C, 0, 0, 0);
    e->d2_w = fsd_params_add(p, "clarity.deg.2.weight", FSD_INIT_ORTHO, 2, 3, C, 0, 0);
    e->d2_b = fsd_params_add(p, "clarity.deg.2.bias", FSD_INIT_ZERO, 1, 3, 0, 0, 0);
    e->tg_w = fsd_params_add(p, "clarity.token_global.weight", FSD_INIT_ORTHO, 2, D, C, 0, 0);
    e->tg_b = fsd_params_add(p, "clarity.token_global.bias", FSD_INIT_ZERO, 1, D, 0, 0, 0);
    if (e->P) {
        e->tp_w = fsd_params_add(p, "clarity.token_pool.weight", FSD_INIT_ORTHO, 2, D, C, 0, 0);
        e->tp_b = fsd_params_add(p, "clarity.token_pool.bias", FSD_INIT_ZERO, 1, D, 0, 0, 0);
        e->pos = fsd_params_add(p, "clarity.pos_emb", FSD_INIT_ORTHO, 2, e->P, D, 0, 0);
    }
    e->mod = fsd_params_add(p, "clarity.modality_emb", FSD_INIT_ORTHO, 2, 2, D, 0, 0);
    e->role = fsd_params_add(p, "clarity.role_emb", FSD_INIT_ORTHO, 2, 3, D, 0, 0);
    p->data = fsd_calloc(p->total, sizeof(float));
    p->grad = fsd_calloc(p->total, sizeof(float));
    if (!p->data || !p->grad) {
        fsd_clarity_free(e);
        return fsd_fail(FSD_ERR_NOMEM, "cannot allocate %zu clarity parameters", p->total);
    }
    *out = e;
    return FSD_OK;
}

void fsd_clarity_free(fsd_clarity *e) {
    if (!e) return;
    free(e->params.t);
    fsd_free(e->params.data);
    fsd_free(e->params.grad);
    fsd_free(e->buf);
    fsd_arena_free(&e->ws);
    free(e);
}

const fsd_clarity_config *fsd_clarity_cfg(const fsd_clarity *e) { return &e->cfg; }
fsd_params *fsd_clarity_params(fsd_clarity *e) { return &e->params; }
fsd_status fsd_clarity_init(fsd_clarity *e, uint64_t seed) { return fsd_params_init(&e->params, seed); }
void fsd_clarity_zero_grad(fsd_clarity *e) { memset(e->params.grad, 0, e->params.total * sizeof(float)); }

/* Lays the saved buffers out in one block for (B, H, W, train); with base == NULL only counts.
 * Returns floats needed. Sizes are rounded to 16 floats (64-byte alignment). */
static size_t layout(fsd_clarity *e, float *base, int B, int H, int W, int train) {
    size_t off = 0;
#define TAKE(ptr, n)                                  \
    do {                                              \
        size_t n_ = ((size_t)(n) + 15) / 16 * 16;     \
        if (base) (ptr) = base + off;                 \
        off += n_;                                    \
    } while (0)
    int R = 2 * B, C = e->C, D = e->D, P = e->P;
    float *dummy;
    TAKE(e->x, (size_t)R * 3 * H * W);
    int h = H, w = W;
    for (int i = 0; i < e->S; i++) {
        stage *s = &e->st[i];
        s->Hi = h, s->Wi = w;
        h = fsd_conv2d_out_size(h, 3, 2, 1), w = fsd_conv2d_out_size(w, 3, 2, 1);
        s->Ho = h, s->Wo = w;
        size_t n = (size_t)R * s->cout * h * w;
        TAKE(s->a, n);
        if (train) {
            TAKE(s->z, n);
            TAKE(s->n, n);
        } else if (base) s->z = s->n = s->a; /* GN and SiLU in place */
        TAKE(s->mean, (size_t)R * e->cfg.groups);
        TAKE(s->rstd, (size_t)R * e->cfg.groups);
    }
    TAKE(e->g, (size_t)R * C);
    TAKE(e->pl, (size_t)R * (P ? P : 1) * C);
    TAKE(e->h, (size_t)R * C);
    TAKE(e->ha, (size_t)R * C);
    TAKE(e->pred, (size_t)R * 3);
    TAKE(e->tn, (size_t)R * 3);
    TAKE(e->tg, (size_t)R * D);
    TAKE(e->tp, (size_t)R * (P ? P : 1) * D);
    TAKE(dummy, (size_t)R); /* roles (ints, same size as floats) */
    if (base) e->roles = (int *)dummy;
#undef TAKE
    return off;
}

/* Scratch for forward + backward: the largest conv workspace, the backward's gradient buffers
 * (kept until the end of the backward, see clarity_backward_impl) and the small partials of the
 * norm / linear ops. */
static size_t ws_bytes(const fsd_clarity *e, int B) {
    int R = 2 * B;
    size_t conv = 0, grads = 0, big = 0;
    for (int i = 0; i < e->S; i++) {
        const stage *s = &e->st[i];
        size_t c = fsd_conv2d_workspace(R, s->cin, s->Hi, s->Wi, s->cout, 3, 2, 1);
        if (c > conv) conv = c;
        size_t n = (size_t)R * s->cout * s->Ho * s->Wo;
        grads += n + 16;
        if (n > big) big = n;
    }
    int wmax = e->C > e->D ? e->C : e->D;
    size_t heads = (size_t)R * (e->P + 1) * ((size_t)e->C + e->D) * 2 + 64 * (size_t)wmax + (size_t)R * 4 * 4096;
    return conv + (grads + 2 * big + heads) * sizeof(float) + ((size_t)4 << 20);
}

static fsd_status prepare(fsd_clarity *e, int B, int H, int W, int train) {
    size_t need = layout(e, NULL, B, H, W, train);
    if (need > e->buf_cap) {
        fsd_free(e->buf);
        e->buf_cap = 0;
        e->buf = fsd_alloc(need * sizeof(float));
        if (!e->buf) return fsd_fail(FSD_ERR_NOMEM, "clarity encoder: cannot allocate %.1f MiB", need * 4 / 1048576.0);
        e->buf_cap = need;
    }
    layout(e, e->buf, B, H, W, train);
    size_t wb = ws_bytes(e, B);
    if (wb > e->ws.cap) {
        fsd_arena_free(&e->ws);
        CK(fsd_arena_init(&e->ws, wb));
    }
    fsd_arena_reset(&e->ws, 0);
    return FSD_OK;
}

/* PyTorch adaptive_avg_pool2d windows: cell i of n over L covers [floor(i L / n), ceil((i+1) L / n)). */
static inline int win_lo(int i, int L, int n) { return (i * L) / n; }
static inline int win_hi(int i, int L, int n) { return ((i + 1) * L + n - 1) / n; }

fsd_status fsd_clarity_forward(fsd_clarity *e, const float *src0, const float *src1, int B, int H, int W,
                               fsd_context_mode mode, const int *roles_in, const float *target, float *ctx,
                               float *deg, int *roles, double *loss, int train) {
    const fsd_clarity_config *cf = &e->cfg;
    int S = e->S, C = e->C, D = e->D, P = e->P, pool = cf->pool, R = 2 * B;
    e->have_fwd = 0;
    if (loss) *loss = 0;
    if (B < 1 || H < 1 || W < 1) return fsd_fail(FSD_ERR_INVALID, "clarity encoder: bad input shape %dx%dx%d", B, H, W);
    {
        int h = H, w = W;
        for (int i = 0; i < S; i++) h = fsd_conv2d_out_size(h, 3, 2, 1), w = fsd_conv2d_out_size(w, 3, 2, 1);
        if (h < pool || w < pool)
            return fsd_fail(FSD_ERR_INVALID, "clarity encoder: %dx%d input gives a %dx%d last map, smaller than the %dx%d token grid",
                            W, H, w, h, pool, pool);
    }
    if (!src0 || !src1 || !ctx) return fsd_fail(FSD_ERR_INVALID, "clarity encoder: missing source or context buffer");
    if (roles_in)
        for (int i = 0; i < 2 * B; i++)
            if (roles_in[i] < 0 || roles_in[i] > 2) return fsd_fail(FSD_ERR_INVALID, "clarity encoder: role %d out of range", roles_in[i]);
    CK(prepare(e, B, H, W, train));
    const float *Pp = e->params.data;
    fsd_arena *ws = &e->ws;
    size_t img = (size_t)B * 3 * H * W;
    /* both sources in one batch of 2B: rows r = s * B + b */
    memcpy(e->x, src0, img * sizeof(float));
    memcpy(e->x + img, src1, img * sizeof(float));

    /* CNN: conv3x3/2 -> GN -> SiLU per stage */
    const float *in = e->x;
    for (int i = 0; i < S; i++) {
        stage *s = &e->st[i];
        size_t n = (size_t)R * s->cout * s->Ho * s->Wo;
        CK(fsd_conv2d_forward(s->z, in, Pp + s->w, Pp + s->b, R, s->cin, s->Hi, s->Wi, s->cout, 3, 2, 1, ws));
        CK(fsd_groupnorm_forward(s->n, s->mean, s->rstd, s->z, Pp + s->gw, Pp + s->gb, R, s->cout, s->Ho * s->Wo,
                                 cf->groups, 1e-5f));
        fsd_silu_forward(s->a, s->n, n);
        in = s->a;
    }
    const stage *L = &e->st[S - 1];
    int Hl = L->Ho, Wl = L->Wo, HWl = Hl * Wl;
    /* global average pool g (R, C) and the pool x pool adaptive average pool pl (R, P, C) */
#pragma omp parallel for schedule(static) if ((size_t)R * C * HWl > 65536)
    for (int rc = 0; rc < R * C; rc++) {
        const float *a = L->a + (size_t)rc * HWl;
        int r = rc / C, c = rc % C;
        double t = 0;
        for (int q = 0; q < HWl; q++) t += a[q];
        e->g[rc] = (float)(t / HWl);
        for (int iy = 0; iy < pool; iy++)
            for (int ix = 0; ix < pool; ix++) {
                int y0 = win_lo(iy, Hl, pool), y1 = win_hi(iy, Hl, pool), x0 = win_lo(ix, Wl, pool), x1 = win_hi(ix, Wl, pool);
                double u = 0;
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++) u += a[y * Wl + x];
                e->pl[((size_t)r * P + iy * pool + ix) * C + c] = (float)(u / ((y1 - y0) * (x1 - x0)));
            }
    }
    /* degradation head: Linear -> SiLU -> Linear, normalised predictions pred (R, 3) */
    CK(fsd_linear_forward(e->h, e->g, Pp + e->d0_w, Pp + e->d0_b, R, C, C));
    fsd_silu_forward(e->ha, e->h, (size_t)R * C);
    CK(fsd_linear_forward(e->pred, e->ha, Pp + e->d2_w, Pp + e->d2_b, R, C, 3));
    /* token heads */
    CK(fsd_linear_forward(e->tg, e->g, Pp + e->tg_w, Pp + e->tg_b, R, C, D));
    if (P) CK(fsd_linear_forward(e->tp, e->pl, Pp + e->tp_w, Pp + e->tp_b, R * P, C, D));

    /* predictions in physical units (B, 2, 3), then the rule */
    float phys[64 * 6], *dp = deg;
    float *tmp = NULL;
    if (!dp) {
        if ((size_t)B * 6 <= sizeof phys / sizeof phys[0]) dp = phys;
        else if (!(dp = tmp = fsd_alloc((size_t)B * 6 * sizeof(float)))) return FSD_ERR_NOMEM;
    }
    for (int s = 0; s < 2; s++)
        for (int b = 0; b < B; b++) fsd_clarity_denormalise(dp + ((size_t)b * 2 + s) * 3, e->pred + ((size_t)s * B + b) * 3);
    if (roles_in) memcpy(e->roles, roles_in, (size_t)2 * B * sizeof(int));
    else fsd_clarity_decide(cf, mode, dp, B, e->roles);
    fsd_free(tmp);
    if (roles) memcpy(roles, e->roles, (size_t)2 * B * sizeof(int));

    /* context (B, T, D): [src0: global, P pooled | src1: global, P pooled] + embeddings */
    for (int b = 0; b < B; b++)
        for (int s = 0; s < 2; s++) {
            int r = s * B + b;
            const float *me = Pp + e->mod + (size_t)s * D, *ro = Pp + e->role + (size_t)e->roles[2 * b + s] * D;
            for (int j = 0; j <= P; j++) {
                float *o = ctx + ((size_t)b * e->T + (size_t)s * (1 + P) + j) * D;
                const float *t = j == 0 ? e->tg + (size_t)r * D : e->tp + ((size_t)r * P + j - 1) * D;
                const float *pe = j == 0 ? NULL : Pp + e->pos + (size_t)(j - 1) * D;
                for (int d = 0; d < D; d++) o[d] = t[d] + me[d] + ro[d] + (pe ? pe[d] : 0.0f);
            }
        }

    /* degradation loss: lambda * mean over 2B x 3 of (pred - target)^2, normalised units */
    e->have_target = target != NULL;
    if (target) {
        for (int s = 0; s < 2; s++)
            for (int b = 0; b < B; b++) fsd_clarity_normalise(e->tn + ((size_t)s * B + b) * 3, target + ((size_t)b * 2 + s) * 3);
        for (int i = 0; i < R * 3; i++)
            if (!isfinite(e->tn[i])) return fsd_fail(FSD_ERR_INVALID, "clarity encoder: non-finite degradation target");
        if (loss) *loss = cf->lambda * fsd_mse_loss_forward(e->pred, e->tn, (size_t)R * 3);
    }
    e->B = B, e->H = H, e->W = W, e->train = train, e->have_fwd = train;
    return FSD_OK;
}

fsd_status fsd_clarity_backward(fsd_clarity *e, const float *dctx, float dloss) {
    if (!e->have_fwd) return fsd_fail(FSD_ERR_INVALID, "clarity backward: no training forward to go back through");
    if (dloss != 0.0f && !e->have_target)
        return fsd_fail(FSD_ERR_INVALID, "clarity backward: the degradation loss needs the forward's target");
    const fsd_clarity_config *cf = &e->cfg;
    int B = e->B, S = e->S, C = e->C, D = e->D, P = e->P, pool = cf->pool, R = 2 * B;
    const float *Pp = e->params.data;
    float *G = e->params.grad;
    fsd_arena *ws = &e->ws;
    size_t wb = ws_bytes(e, B); /* the thread count may have grown since the forward */
    if (wb > ws->cap) {
        fsd_arena_free(ws);
        CK(fsd_arena_init(ws, wb));
    }
    fsd_arena_reset(ws, 0);
#define WSF(ptr, n)                                                                   \
    do {                                                                              \
        if (!((ptr) = fsd_arena_floats(ws, (n)))) return FSD_ERR_NOMEM;              \
        memset((ptr), 0, (size_t)(n) * sizeof(float));                                \
    } while (0)
    float *dg, *dpl, *dtg, *dtp, *dh, *dha, *dpred;
    WSF(dg, (size_t)R * C);
    WSF(dpl, (size_t)R * (P ? P : 1) * C);
    WSF(dh, (size_t)R * C);
    WSF(dha, (size_t)R * C);
    WSF(dpred, (size_t)R * 3);
    if (dctx) {
        WSF(dtg, (size_t)R * D);
        WSF(dtp, (size_t)R * (P ? P : 1) * D);
        /* scatter dctx back to the heads; embeddings collect the sums of their tokens */
        for (int b = 0; b < B; b++)
            for (int s = 0; s < 2; s++) {
                int r = s * B + b;
                float *gm = G + e->mod + (size_t)s * D, *gr = G + e->role + (size_t)e->roles[2 * b + s] * D;
                for (int j = 0; j <= P; j++) {
                    const float *g = dctx + ((size_t)b * e->T + (size_t)s * (1 + P) + j) * D;
                    float *t = j == 0 ? dtg + (size_t)r * D : dtp + ((size_t)r * P + j - 1) * D;
                    float *gp = j == 0 ? NULL : G + e->pos + (size_t)(j - 1) * D;
                    for (int d = 0; d < D; d++) {
                        t[d] += g[d], gm[d] += g[d], gr[d] += g[d];
                        if (gp) gp[d] += g[d];
                    }
                }
            }
        CK(fsd_linear_backward(dg, G + e->tg_w, G + e->tg_b, dtg, e->g, Pp + e->tg_w, R, C, D, ws));
        if (P) CK(fsd_linear_backward(dpl, G + e->tp_w, G + e->tp_b, dtp, e->pl, Pp + e->tp_w, R * P, C, D, ws));
    }
    if (dloss != 0.0f) {
        fsd_mse_loss_backward(dpred, NULL, e->pred, e->tn, (size_t)R * 3, dloss * cf->lambda);
        CK(fsd_linear_backward(dha, G + e->d2_w, G + e->d2_b, dpred, e->ha, Pp + e->d2_w, R, C, 3, ws));
        fsd_silu_backward(dh, dha, e->h, (size_t)R * C);
        CK(fsd_linear_backward(dg, G + e->d0_w, G + e->d0_b, dh, e->g, Pp + e->d0_w, R, C, C, ws));
    }
    /* pools -> d(last map) */
    const stage *L = &e->st[S - 1];
    int Hl = L->Ho, Wl = L->Wo, HWl = Hl * Wl;
    float *da;
    WSF(da, (size_t)R * C * HWl);
#pragma omp parallel for schedule(static) if ((size_t)R * C * HWl > 65536)
    for (int rc = 0; rc < R * C; rc++) {
        float *d = da + (size_t)rc * HWl;
        int r = rc / C, c = rc % C;
        float gg = dg[rc] / HWl;
        for (int q = 0; q < HWl; q++) d[q] += gg;
        for (int iy = 0; iy < pool; iy++)
            for (int ix = 0; ix < pool; ix++) {
                int y0 = win_lo(iy, Hl, pool), y1 = win_hi(iy, Hl, pool), x0 = win_lo(ix, Wl, pool), x1 = win_hi(ix, Wl, pool);
                float v = dpl[((size_t)r * P + iy * pool + ix) * C + c] / ((y1 - y0) * (x1 - x0));
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++) d[y * Wl + x] += v;
            }
    }
    /* stages, last to first; the input images need no gradient */
    for (int i = S - 1; i >= 0; i--) {
        stage *s = &e->st[i];
        size_t n = (size_t)R * s->cout * s->Ho * s->Wo;
        float *dprev = NULL;
        if (i > 0) WSF(dprev, (size_t)R * s->cin * s->Hi * s->Wi);
        size_t mark = fsd_arena_mark(ws);
        float *dn, *dz;
        WSF(dn, n);
        WSF(dz, n);
        fsd_silu_backward(dn, da, s->n, n);
        CK(fsd_groupnorm_backward(dz, G + s->gw, G + s->gb, dn, s->z, s->mean, s->rstd, Pp + s->gw, R, s->cout,
                                  s->Ho * s->Wo, cf->groups, ws));
        CK(fsd_conv2d_backward(dprev, G + s->w, G + s->b, dz, i > 0 ? e->st[i - 1].a : e->x, Pp + s->w, R, s->cin,
                               s->Hi, s->Wi, s->cout, 3, 2, 1, ws));
        fsd_arena_reset(ws, mark);
        da = dprev;
    }
#undef WSF
    fsd_arena_reset(ws, 0);
    return FSD_OK;
}

/* ---------------------------------------------------------------- save / load */
fsd_status fsd_clarity_add_to_writer(const fsd_clarity *e, fsd_st_writer *w, fsd_dtype dtype) {
    if (dtype != FSD_F32 && dtype != FSD_F16 && dtype != FSD_BF16)
        return fsd_fail(FSD_ERR_INVALID, "clarity save: dtype must be F32, F16 or BF16");
    for (int k = 0; k < e->params.n; k++) {
        const fsd_param *t = &e->params.t[k];
        CK(fsd_st_writer_add(w, t->name, dtype, t->ndim, t->shape, e->params.data + t->offset));
    }
    char *j = fsd_clarity_config_to_json(&e->cfg);
    if (!j) return FSD_ERR_NOMEM;
    fsd_status s = fsd_st_writer_meta(w, FSD_CLARITY_META_KEY, j);
    fsd_free(j);
    return s;
}

fsd_status fsd_clarity_load(fsd_clarity *e, const fsd_safetensors *st) {
    const char *meta = fsd_st_meta_get(st, FSD_CLARITY_META_KEY);
    if (meta) {
        fsd_clarity_config fc;
        CK(fsd_clarity_config_from_json(&fc, meta, strlen(meta), st->path));
        char *a = fsd_clarity_config_to_json(&fc), *b = fsd_clarity_config_to_json(&e->cfg);
        int eq = a && b && !strcmp(a, b);
        fsd_free(a), fsd_free(b);
        if (!eq) return fsd_fail(FSD_ERR_FORMAT, "%s: its clarity encoder config differs from the one requested", st->path);
    }
    for (int k = 0; k < st->n_tensors; k++)
        if (!strncmp(st->tensors[k].name, "clarity.", 8) && !fsd_params_find(&e->params, st->tensors[k].name))
            return fsd_fail(FSD_ERR_FORMAT, "%s: unexpected tensor '%s' (not a clarity encoder parameter)", st->path,
                            st->tensors[k].name);
    for (int k = 0; k < e->params.n; k++) {
        const fsd_param *t = &e->params.t[k];
        if (!fsd_st_find(st, t->name)) return fsd_fail(FSD_ERR_FORMAT, "%s: missing tensor '%s'", st->path, t->name);
        float *buf;
        size_t cnt;
        CK(fsd_st_load_f32(st, t->name, t->ndim, t->shape, 1, &buf, &cnt));
        memcpy(e->params.data + t->offset, buf, t->numel * sizeof(float));
        fsd_free(buf);
    }
    return FSD_OK;
}

fsd_status fsd_clarity_open(fsd_clarity **out, const fsd_safetensors *st) {
    *out = NULL;
    const char *meta = fsd_st_meta_get(st, FSD_CLARITY_META_KEY);
    if (!meta) return fsd_fail(FSD_ERR_FORMAT, "%s: no '%s' metadata (no clarity encoder stored)", st->path, FSD_CLARITY_META_KEY);
    fsd_clarity_config c;
    CK(fsd_clarity_config_from_json(&c, meta, strlen(meta), st->path));
    fsd_clarity *e;
    CK(fsd_clarity_create(&e, &c));
    fsd_status s = fsd_clarity_load(e, st);
    if (s) {
        fsd_clarity_free(e);
        return s;
    }
    *out = e;
    return FSD_OK;
}

/* ---------------------------------------------------------------- external context */
fsd_status fsd_context_file_load(const char *path, int tokens, int dim, float **out) {
    *out = NULL;
    fsd_safetensors st;
    CK(fsd_st_open(&st, path));
    fsd_status s = FSD_OK;
    const fsd_st_tensor *t = fsd_st_find(&st, "context");
    if (!t) s = fsd_fail(FSD_ERR_FORMAT, "%s: no tensor 'context' (expected float32 (N, D) context tokens)", path);
    else if (!(t->ndim == 2 || (t->ndim == 3 && t->shape[0] == 1)))
        s = fsd_fail(FSD_ERR_FORMAT, "%s: 'context' must have shape (N, D) or (1, N, D), has %d dims", path, t->ndim);
    else {
        int64_t n = t->shape[t->ndim - 2], d = t->shape[t->ndim - 1];
        if (d != dim) s = fsd_fail(FSD_ERR_FORMAT, "%s: context width D = %lld but the network's context_dim is %d", path, (long long)d, dim);
        else if (n != tokens)
            s = fsd_fail(FSD_ERR_FORMAT, "%s: %lld context tokens but the network's context_tokens is %d", path, (long long)n, tokens);
        else {
            size_t cnt;
            s = fsd_st_load_f32(&st, "context", -1, NULL, 1, out, &cnt);
        }
    }
    fsd_st_close(&st);
    return s;
}
