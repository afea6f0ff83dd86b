/* The FS-Diff trainer: joint U-Net + clarity encoder training, checkpoints, validation
 * (include/fsdiff/trainer.h, docs/training.md). */
#include "fsdiff/trainer.h"
#include "fsdiff/json.h"
#include "fsdiff/metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CK(x)                                                                                                          \
    do {                                                                                                               \
        fsd_status s_ = (x);                                                                                           \
        if (s_) return s_;                                                                                             \
    } while (0)

/* Philox streams of the trainer (dropout uses (seed, step) inside the net, step < 2^40). */
#define STREAM_DIFFUSION ((uint64_t)1 << 62)
#define CLARITY_SEED_XOR 0x636c61726974ull /* "clarit": the encoder's init differs from the net's */

/* ---------------------------------------------------------------- config */
fsd_status fsd_train_config_default(fsd_train_config *c, const char *preset) {
    memset(c, 0, sizeof *c);
    CK(fsd_net_config_preset(&c->net, preset ? preset : "cpu"));
    fsd_clarity_config_default(&c->clarity, c->net.context_dim);
    /* the encoder emits 2 (1 + pool^2) tokens: make the net's T fit */
    c->net.context_tokens = fsd_clarity_tokens(c->clarity.pool * c->clarity.pool);
    fsd_diffusion_config_default(&c->diff);
    fsd_traindata_config_default(&c->data);
    c->data.whole_frame = 1; /* samples as fsdiff fuse sees its input (traindata.h) */
    c->data.align = 1 << (c->net.n_mults - 1);
    if (c->data.align < 8) c->data.align = 8;
    c->seed = 0;
    c->steps = 100000;
    c->lr = 2e-4;
    c->lr_min = 2e-6;
    c->warmup = 500;
    c->beta1 = 0.9, c->beta2 = 0.999, c->adam_eps = 1e-8, c->weight_decay = 0.0;
    c->clip = 1.0;
    c->ema = 0.999;
    c->loss = FSD_LOSS_L1;
    c->per_sample_t = 1;
    c->context = FSD_CONTEXT_CLARITY;
    c->ckpt_every = 500;
    c->log_every = 10;
    c->val_every = 1000;
    c->val_pairs = 6, c->val_steps = 20, c->val_crop = 128, c->val_scale_a = 4, c->val_scale_b = 4;
    return FSD_OK;
}

fsd_traindata_config fsd_train_config_data(const fsd_train_config *c) {
    fsd_traindata_config d = c->data;
    d.residual_base = c->diff.residual && d.whole_frame; /* the base fsdiff fuse adds the residual to */
    d.base_method = c->diff.residual_method;
    return d;
}

fsd_status fsd_train_config_validate(const fsd_train_config *c) {
    CK(fsd_net_config_validate(&c->net));
    CK(fsd_clarity_config_validate(&c->clarity));
    CK(fsd_clarity_check_net(&c->clarity, &c->net));
    CK(fsd_diffusion_config_validate(&c->diff));
    CK(fsd_traindata_config_validate(&c->data));
    int div = 1 << (c->net.n_mults - 1);
    if (c->data.align % div)
        return fsd_fail(FSD_ERR_INVALID, "train config: data align %d must be a multiple of the U-Net factor %d",
                        c->data.align, div);
    if (c->steps < 1 || c->steps > ((int64_t)1 << 40)) return fsd_fail(FSD_ERR_INVALID, "train config: steps must be in 1..2^40");
    if (!(c->lr > 0 && c->lr < 1)) return fsd_fail(FSD_ERR_INVALID, "train config: lr must be in (0, 1)");
    if (!(c->lr_min >= 0 && c->lr_min <= c->lr)) return fsd_fail(FSD_ERR_INVALID, "train config: lr_min must be in [0, lr]");
    if (c->warmup < 0) return fsd_fail(FSD_ERR_INVALID, "train config: warmup must be >= 0");
    if (!(c->beta1 >= 0 && c->beta1 < 1 && c->beta2 >= 0 && c->beta2 < 1))
        return fsd_fail(FSD_ERR_INVALID, "train config: Adam betas must be in [0, 1)");
    if (!(c->adam_eps > 0 && c->adam_eps < 1)) return fsd_fail(FSD_ERR_INVALID, "train config: adam_eps must be in (0, 1)");
    if (!(c->weight_decay >= 0 && c->weight_decay < 1)) return fsd_fail(FSD_ERR_INVALID, "train config: weight_decay must be in [0, 1)");
    if (!(c->clip >= 0 && c->clip < 1e9)) return fsd_fail(FSD_ERR_INVALID, "train config: clip must be >= 0 (0 = off)");
    if (!(c->ema >= 0 && c->ema < 1)) return fsd_fail(FSD_ERR_INVALID, "train config: ema must be in [0, 1)");
    if (c->ckpt_every < 1 || c->log_every < 1 || c->val_every < 0)
        return fsd_fail(FSD_ERR_INVALID, "train config: ckpt_every and log_every must be >= 1, val_every >= 0");
    if (c->val_every > 0) {
        if (c->val_pairs < 1 || c->val_pairs > 10000) return fsd_fail(FSD_ERR_INVALID, "train config: val_pairs must be in 1..10000");
        if (c->val_steps < 1 || c->val_steps > c->diff.T)
            return fsd_fail(FSD_ERR_INVALID, "train config: val_steps must be in 1..T (%d)", c->diff.T);
        if (c->val_scale_a < 1 || c->val_scale_a > 16 || c->val_scale_b < 1 || c->val_scale_b > 16)
            return fsd_fail(FSD_ERR_INVALID, "train config: val scales must be in 1..16");
        if (c->val_crop < 0 || c->val_crop % div)
            return fsd_fail(FSD_ERR_INVALID, "train config: val_crop must be a multiple of %d (0 = whole image)", div);
    }
    return FSD_OK;
}

/* Flat JSON of the training fields (the net / clarity / diffusion configs have their own metadata). */
static char *train_json(const fsd_train_config *c, int identity_only) {
    char buf[4096], tmp[256];
    size_t n = 0;
#define PUT(...)                                                                                                       \
    do {                                                                                                               \
        int k_ = snprintf(buf + n, sizeof buf - n, __VA_ARGS__);                                                       \
        if (k_ < 0 || (size_t)k_ >= sizeof buf - n) return NULL;                                                       \
        n += (size_t)k_;                                                                                               \
    } while (0)
    const fsd_traindata_config *d = &c->data;
    PUT("{\"seed\":%llu,\"data_seed\":%llu,\"batch\":%d,\"crop_sizes\":[", (unsigned long long)c->seed,
        (unsigned long long)d->seed, d->batch);
    for (int i = 0; i < d->n_crop_sizes; i++) PUT("%s%d", i ? "," : "", d->crop_sizes[i]);
    PUT("],\"align\":%d,\"scales\":[", d->align);
    for (int i = 0; i < d->n_scales; i++) PUT("%s%d", i ? "," : "", d->scales[i]);
    PUT("],\"augment\":%d,\"blur_p\":%.17g,\"blur_max\":%.17g,\"noise_p\":%.17g,\"noise_max\":%.17g", d->augment,
        d->blur_p, d->blur_max, d->noise_p, d->noise_max);
    PUT(",\"whole_frame\":%d", d->whole_frame);
    PUT(",\"lr\":%.17g,\"lr_min\":%.17g,\"warmup\":%lld,\"beta1\":%.17g,\"beta2\":%.17g,\"adam_eps\":%.17g", c->lr,
        c->lr_min, (long long)c->warmup, c->beta1, c->beta2, c->adam_eps);
    PUT(",\"weight_decay\":%.17g,\"clip\":%.17g,\"ema\":%.17g,\"loss\":\"%s\",\"per_sample_t\":%d,\"context\":\"%s\"",
        c->weight_decay, c->clip, c->ema, c->loss == FSD_LOSS_L1 ? "l1" : "l2", c->per_sample_t,
        fsd_context_mode_name(c->context));
    if (!identity_only) {
        PUT(",\"steps\":%lld,\"ckpt_every\":%lld,\"log_every\":%lld,\"val_every\":%lld", (long long)c->steps,
            (long long)c->ckpt_every, (long long)c->log_every, (long long)c->val_every);
        PUT(",\"val_pairs\":%d,\"val_steps\":%d,\"val_crop\":%d,\"val_scale_a\":%d,\"val_scale_b\":%d", c->val_pairs,
            c->val_steps, c->val_crop, c->val_scale_a, c->val_scale_b);
    }
    PUT("}");
#undef PUT
    (void)tmp;
    char *o = fsd_alloc(n + 1);
    if (o) memcpy(o, buf, n + 1);
    return o;
}

char *fsd_train_config_identity_json(const fsd_train_config *c) { return train_json(c, 1); }

static fsd_status json_i64(const fsd_json *v, const char *k, int64_t lo, int64_t hi, int64_t *out) {
    if (v->type != FSD_JSON_NUMBER || !v->is_int || v->i64 < lo || v->i64 > hi)
        return fsd_fail(FSD_ERR_FORMAT, "train config '%s' must be an integer in %lld..%lld", k, (long long)lo,
                        (long long)hi);
    *out = v->i64;
    return FSD_OK;
}

static fsd_status json_int_array(const fsd_json *v, const char *k, int *arr, int *n, int max) {
    if (v->type != FSD_JSON_ARRAY || v->n < 1 || v->n > max)
        return fsd_fail(FSD_ERR_FORMAT, "train config '%s' must be an array of 1..%d integers", k, max);
    for (int i = 0; i < v->n; i++) {
        int64_t x = 0;
        CK(json_i64(&v->items[i], k, 1, 4096, &x));
        arr[i] = (int)x;
    }
    *n = v->n;
    return FSD_OK;
}

/* Training fields from the flat JSON (fields absent keep their current values). */
static fsd_status train_from_json(fsd_train_config *c, const char *text, const char *label) {
    fsd_json j;
    CK(fsd_json_parse(text, strlen(text), label, &j));
    fsd_status s = j.type == FSD_JSON_OBJECT ? FSD_OK : fsd_fail(FSD_ERR_FORMAT, "%s: train config must be an object", label);
    fsd_traindata_config *d = &c->data;
    int seen_whole_frame = 0;
    for (int i = 0; i < j.n && !s; i++) {
        const char *k = j.keys[i];
        const fsd_json *v = &j.items[i];
        int64_t x = 0;
        double *dp = NULL;
        int64_t *ip = NULL;
        int *ip32 = NULL;
        if (!strcmp(k, "seed") || !strcmp(k, "data_seed")) {
            if (v->type != FSD_JSON_NUMBER || !v->is_int || v->i64 < 0) s = fsd_fail(FSD_ERR_FORMAT, "train config '%s' must be a non-negative integer", k);
            else if (!strcmp(k, "seed")) c->seed = (uint64_t)v->i64;
            else d->seed = (uint64_t)v->i64;
            continue;
        }
        if (!strcmp(k, "crop_sizes")) { s = json_int_array(v, k, d->crop_sizes, &d->n_crop_sizes, FSD_TD_MAX_SIZES); continue; }
        if (!strcmp(k, "scales")) { s = json_int_array(v, k, d->scales, &d->n_scales, FSD_TD_MAX_SCALES); continue; }
        if (!strcmp(k, "loss") || !strcmp(k, "context")) {
            if (v->type != FSD_JSON_STRING) s = fsd_fail(FSD_ERR_FORMAT, "train config '%s' must be a string", k);
            else if (!strcmp(k, "loss")) s = fsd_loss_kind_parse(v->str, &c->loss);
            else s = fsd_context_mode_parse(v->str, &c->context);
            continue;
        }
        if (!strcmp(k, "blur_p")) dp = &d->blur_p;
        else if (!strcmp(k, "blur_max")) dp = &d->blur_max;
        else if (!strcmp(k, "noise_p")) dp = &d->noise_p;
        else if (!strcmp(k, "noise_max")) dp = &d->noise_max;
        else if (!strcmp(k, "lr")) dp = &c->lr;
        else if (!strcmp(k, "lr_min")) dp = &c->lr_min;
        else if (!strcmp(k, "beta1")) dp = &c->beta1;
        else if (!strcmp(k, "beta2")) dp = &c->beta2;
        else if (!strcmp(k, "adam_eps")) dp = &c->adam_eps;
        else if (!strcmp(k, "weight_decay")) dp = &c->weight_decay;
        else if (!strcmp(k, "clip")) dp = &c->clip;
        else if (!strcmp(k, "ema")) dp = &c->ema;
        else if (!strcmp(k, "warmup")) ip = &c->warmup;
        else if (!strcmp(k, "steps")) ip = &c->steps;
        else if (!strcmp(k, "ckpt_every")) ip = &c->ckpt_every;
        else if (!strcmp(k, "log_every")) ip = &c->log_every;
        else if (!strcmp(k, "val_every")) ip = &c->val_every;
        else if (!strcmp(k, "batch")) ip32 = &d->batch;
        else if (!strcmp(k, "align")) ip32 = &d->align;
        else if (!strcmp(k, "augment")) ip32 = &d->augment;
        else if (!strcmp(k, "whole_frame")) ip32 = &d->whole_frame, seen_whole_frame = 1;
        else if (!strcmp(k, "per_sample_t")) ip32 = &c->per_sample_t;
        else if (!strcmp(k, "val_pairs")) ip32 = &c->val_pairs;
        else if (!strcmp(k, "val_steps")) ip32 = &c->val_steps;
        else if (!strcmp(k, "val_crop")) ip32 = &c->val_crop;
        else if (!strcmp(k, "val_scale_a")) ip32 = &c->val_scale_a;
        else if (!strcmp(k, "val_scale_b")) ip32 = &c->val_scale_b;
        else {
            s = fsd_fail(FSD_ERR_FORMAT, "%s: unknown train config key '%s'", label, k);
            continue;
        }
        if (dp) {
            if (v->type != FSD_JSON_NUMBER) s = fsd_fail(FSD_ERR_FORMAT, "train config '%s' must be a number", k);
            else *dp = v->num;
        } else if (ip) {
            if (!(s = json_i64(v, k, 0, (int64_t)1 << 40, &x))) *ip = x;
        } else if (!(s = json_i64(v, k, 0, 1 << 30, &x))) *ip32 = (int)x;
    }
    fsd_json_free(&j);
    if (!seen_whole_frame) d->whole_frame = 0; /* runs from before the key degraded their crops */
    return s;
}

double fsd_train_lr(const fsd_train_config *c, int64_t k) {
    if (k < c->warmup) return c->lr * (double)(k + 1) / (double)c->warmup;
    double span = (double)(c->steps - c->warmup);
    double p = span > 0 ? (double)(k - c->warmup) / span : 1.0;
    if (p > 1) p = 1;
    return c->lr_min + (c->lr - c->lr_min) * 0.5 * (1.0 + cos(M_PI * p));
}

/* ---------------------------------------------------------------- trainer */
struct fsd_trainer {
    fsd_train_config cfg;
    fsd_train_comm comm;
    fsd_net *net, *ema_net;
    fsd_clarity *cl, *ema_cl;
    float *m_net, *v_net, *m_cl, *v_cl;
    int64_t step;
    fsd_schedule sched;
    int b; /* local batch */
    fsd_td_batch batch;
    size_t cap_hw;
    float *xin, *x_t, *eps, *eps_hat, *d_eps, *src0, *src1, *x0r;
    float *gamma, *ctx, *dctx, *synth;
    int *roles;
};

const fsd_train_config *fsd_trainer_cfg(const fsd_trainer *t) { return &t->cfg; }
int64_t fsd_trainer_step(const fsd_trainer *t) { return t->step; }
fsd_net *fsd_trainer_net(fsd_trainer *t) { return t->net; }
fsd_clarity *fsd_trainer_clarity(fsd_trainer *t) { return t->cl; }
fsd_net *fsd_trainer_ema_net(fsd_trainer *t) { return t->ema_net; }
fsd_clarity *fsd_trainer_ema_clarity(fsd_trainer *t) { return t->ema_cl; }

static void free_bufs(fsd_trainer *t) {
    float **bufs[] = {&t->xin, &t->x_t, &t->eps, &t->eps_hat, &t->d_eps, &t->src0, &t->src1, &t->x0r};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) fsd_free(*bufs[i]), *bufs[i] = NULL;
}

void fsd_trainer_free(fsd_trainer *t) {
    if (!t) return;
    fsd_net_free(t->net), fsd_net_free(t->ema_net);
    fsd_clarity_free(t->cl), fsd_clarity_free(t->ema_cl);
    fsd_free(t->m_net), fsd_free(t->v_net), fsd_free(t->m_cl), fsd_free(t->v_cl);
    fsd_schedule_free(&t->sched);
    fsd_td_batch_free(&t->batch);
    free_bufs(t);
    fsd_free(t->gamma), fsd_free(t->ctx), fsd_free(t->dctx), fsd_free(t->synth);
    free(t->roles);
    free(t);
}

static float *zalloc(size_t n) {
    float *p = fsd_alloc((n ? n : 1) * sizeof(float));
    if (p) memset(p, 0, (n ? n : 1) * sizeof(float));
    return p;
}

static fsd_status load_init(fsd_trainer *t, const char *path) {
    fsd_safetensors st;
    CK(fsd_st_open(&st, path));
    fsd_status s = fsd_net_load_st(t->net, &st);
    if (!s) s = fsd_clarity_load(t->cl, &st);
    fsd_st_close(&st);
    return s;
}

fsd_status fsd_trainer_create(fsd_trainer **out, const fsd_train_config *cfg, const char *init_model,
                              const fsd_train_comm *comm) {
    *out = NULL;
    CK(fsd_train_config_validate(cfg));
    fsd_train_comm c1 = {0, 1, NULL, NULL, NULL};
    if (!comm) comm = &c1;
    if (comm->size < 1 || comm->rank < 0 || comm->rank >= comm->size || (comm->size > 1 && !comm->allreduce_sum))
        return fsd_fail(FSD_ERR_INVALID, "trainer: bad communicator (rank %d of %d)", comm->rank, comm->size);
    if (cfg->data.batch % comm->size)
        return fsd_fail(FSD_ERR_INVALID, "trainer: batch %d must be a multiple of the %d ranks", cfg->data.batch, comm->size);
    fsd_trainer *t = calloc(1, sizeof *t);
    if (!t) return fsd_fail(FSD_ERR_NOMEM, "trainer: out of memory");
    t->cfg = *cfg;
    t->comm = *comm;
    t->b = cfg->data.batch / comm->size;
    fsd_status s = fsd_net_create(&t->net, &cfg->net);
    if (!s) s = fsd_net_create(&t->ema_net, &cfg->net);
    if (!s) s = fsd_clarity_create(&t->cl, &cfg->clarity);
    if (!s) s = fsd_clarity_create(&t->ema_cl, &cfg->clarity);
    if (!s) s = fsd_schedule_init(&t->sched, cfg->diff.schedule, cfg->diff.T, cfg->diff.beta_start, cfg->diff.beta_end);
    if (!s) {
        size_t nn = fsd_net_params(t->net)->total, nc = fsd_clarity_params(t->cl)->total;
        t->m_net = zalloc(nn), t->v_net = zalloc(nn), t->m_cl = zalloc(nc), t->v_cl = zalloc(nc);
        size_t nctx = (size_t)t->b * cfg->net.context_tokens * cfg->net.context_dim;
        t->gamma = zalloc((size_t)t->b), t->ctx = zalloc(nctx), t->dctx = zalloc(nctx), t->synth = zalloc((size_t)t->b * 6);
        t->roles = calloc((size_t)t->b * 2, sizeof(int));
        if (!t->m_net || !t->v_net || !t->m_cl || !t->v_cl || !t->gamma || !t->ctx || !t->dctx || !t->synth || !t->roles)
            s = fsd_fail(FSD_ERR_NOMEM, "trainer: out of memory");
    }
    if (!s) {
        if (init_model) s = load_init(t, init_model);
        else {
            s = fsd_net_init(t->net, cfg->seed);
            if (!s) s = fsd_clarity_init(t->cl, cfg->seed ^ CLARITY_SEED_XOR);
        }
    }
    if (!s) {
        fsd_params *a = fsd_net_params(t->net), *e = fsd_net_params(t->ema_net);
        memcpy(e->data, a->data, a->total * sizeof(float));
        a = fsd_clarity_params(t->cl), e = fsd_clarity_params(t->ema_cl);
        memcpy(e->data, a->data, a->total * sizeof(float));
    }
    if (s) {
        fsd_trainer_free(t);
        return s;
    }
    *out = t;
    return FSD_OK;
}

static fsd_status ensure_bufs(fsd_trainer *t, size_t hw) {
    if (hw <= t->cap_hw) return FSD_OK;
    free_bufs(t);
    size_t b = (size_t)t->b;
    t->xin = zalloc(b * 9 * hw), t->x_t = zalloc(b * 3 * hw), t->eps = zalloc(b * 3 * hw);
    t->eps_hat = zalloc(b * 3 * hw), t->d_eps = zalloc(b * 3 * hw);
    t->src0 = zalloc(b * 3 * hw), t->src1 = zalloc(b * 3 * hw), t->x0r = zalloc(b * 3 * hw);
    if (!t->xin || !t->x_t || !t->eps || !t->eps_hat || !t->d_eps || !t->src0 || !t->src1 || !t->x0r) {
        free_bufs(t);
        t->cap_hw = 0;
        return fsd_fail(FSD_ERR_NOMEM, "trainer: out of memory for %zu-pixel crops", hw);
    }
    t->cap_hw = hw;
    return FSD_OK;
}

/* Sum of squares in fixed 4096-element chunks (double), summed in chunk order: the same value
 * whatever the thread count. */
static double sum_sq(const float *g, size_t n) {
    const size_t CH = 4096;
    size_t nch = (n + CH - 1) / CH;
    double *part = malloc((nch ? nch : 1) * sizeof(double));
    double tot = 0;
    if (!part) {
        for (size_t i = 0; i < n; i++) tot += (double)g[i] * g[i];
        return tot;
    }
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < nch; c++) {
        size_t e = (c + 1) * CH < n ? (c + 1) * CH : n;
        double acc = 0;
        for (size_t i = c * CH; i < e; i++) acc += (double)g[i] * g[i];
        part[c] = acc;
    }
    for (size_t c = 0; c < nch; c++) tot += part[c];
    free(part);
    return tot;
}

static void scale_buf(float *g, size_t n, float a) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) g[i] *= a;
}

static void ema_update(float *e, const float *p, size_t n, float d) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) e[i] = d * e[i] + (1.0f - d) * p[i];
}

/* The residual base of a training / validation crop: with "auto", decided on the whole HR pair, as
 * the teacher target was (a crop of a scan's interior has no dark background to decide by). */
fsd_status fsd_trainer_train_step(fsd_trainer *t, fsd_traindata *td, fsd_train_stats *st) {
    const fsd_train_config *c = &t->cfg;
    const int64_t k = t->step;
    const int b = t->b, B = c->data.batch, first = t->comm.rank * b;
    CK(fsd_traindata_batch_range(td, k, first, b, &t->batch));
    const int S = t->batch.w;
    const size_t hw = (size_t)S * S, n3 = 3 * hw;
    CK(ensure_bufs(t, hw));
    const uint64_t sample0 = (uint64_t)k * (uint64_t)B + (uint64_t)first;

    /* the diffusion target: the teacher fusion, or the scaled residual over "upsample then fuse" */
    const float *x0 = t->batch.x0;
    if (c->diff.residual) {
        for (int i = 0; i < b; i++) {
            int pw, ph, ca, cb, ct;
            fsd_traindata_pair_info(td, t->batch.plan[i].pair, &pw, &ph, &ca, &cb, &ct);
            float *r = t->x0r + (size_t)i * n3;
            const float *xi = t->batch.x0 + (size_t)i * n3;
            if (t->batch.has_base) /* of the whole frame, as at inference */
                memcpy(r, t->batch.base + (size_t)i * n3, n3 * sizeof(float));
            else
                CK(fsd_residual_base(fsd_traindata_pair_method(td, t->batch.plan[i].pair, c->diff.residual_method),
                                     t->batch.cond + (size_t)i * 6 * hw, ca, cb, S, S, r));
            const float sc = (float)c->diff.residual_scale;
            for (size_t q = 0; q < n3; q++) r[q] = sc * (xi[q] - r[q]);
        }
        x0 = t->x0r;
    }
    /* x_t = γ x0 + √(1-γ²) ε at the SR3 continuous noise level (one draw per global sample) */
    fsd_rng rd = {c->seed, STREAM_DIFFUSION};
    CK(fsd_diffusion_train_draw(&t->sched, &rd, sample0, b, n3, c->per_sample_t, x0, NULL, t->gamma, t->eps, t->x_t));
    if (c->diff.prediction == FSD_PRED_V) fsd_diffusion_v_target(b, n3, t->gamma, x0, t->eps); /* t->eps: the target */
    for (int i = 0; i < b; i++) {
        const float *cond = t->batch.cond + (size_t)i * 6 * hw;
        memcpy(t->xin + (size_t)i * 9 * hw, cond, 6 * hw * sizeof(float));
        memcpy(t->xin + (size_t)i * 9 * hw + 6 * hw, t->x_t + (size_t)i * n3, n3 * sizeof(float));
        memcpy(t->src0 + (size_t)i * n3, cond, n3 * sizeof(float));
        memcpy(t->src1 + (size_t)i * n3, cond + n3, n3 * sizeof(float));
    }
    /* roles from the TRUE degradations (teacher forcing); at inference the predicted ones decide */
    fsd_clarity_decide(&c->clarity, c->context, t->batch.synth, b, t->roles);

    fsd_net_zero_grad(t->net);
    fsd_clarity_zero_grad(t->cl);
    double loss_deg = 0;
    CK(fsd_clarity_forward(t->cl, t->src0, t->src1, b, S, S, c->context, t->roles, t->batch.synth, t->ctx, NULL, NULL,
                           &loss_deg, 1));
    fsd_net_set_sample0(t->net, sample0);
    CK(fsd_net_forward(t->net, t->xin, t->gamma, t->ctx, t->eps_hat, b, S, S, 1, c->seed, (uint64_t)k));
    const size_t nl = (size_t)b * n3;
    double loss_eps = fsd_loss_forward(c->loss, t->eps_hat, t->eps, nl);
    /* each rank's loss is a mean over its b samples: 1/size makes the summed gradient the global mean */
    const float inv = 1.0f / (float)t->comm.size;
    memset(t->d_eps, 0, nl * sizeof(float));
    fsd_loss_backward(c->loss, t->d_eps, t->eps_hat, t->eps, nl, inv);
    const size_t nctx = (size_t)b * c->net.context_tokens * c->net.context_dim;
    memset(t->dctx, 0, nctx * sizeof(float));
    CK(fsd_net_backward(t->net, t->d_eps, t->dctx));
    CK(fsd_clarity_backward(t->cl, t->dctx, inv));

    fsd_params *pn = fsd_net_params(t->net), *pc = fsd_clarity_params(t->cl);
    double losses[2] = {loss_eps, loss_deg};
    if (t->comm.size > 1) {
        CK(t->comm.allreduce_sum(t->comm.ctx, pn->grad, pn->total));
        CK(t->comm.allreduce_sum(t->comm.ctx, pc->grad, pc->total));
        if (t->comm.allreduce_sum_f64) CK(t->comm.allreduce_sum_f64(t->comm.ctx, losses, 2));
        losses[0] /= t->comm.size, losses[1] /= t->comm.size;
    }
    double gn = sqrt(sum_sq(pn->grad, pn->total) + sum_sq(pc->grad, pc->total));
    if (!isfinite(gn))
        return fsd_fail(FSD_ERR_INTERNAL, "trainer: step %lld: gradient norm is %g (loss %g): diverged", (long long)k + 1,
                        gn, loss_eps);
    if (c->clip > 0 && gn > c->clip) {
        float a = (float)(c->clip / gn);
        scale_buf(pn->grad, pn->total, a);
        scale_buf(pc->grad, pc->total, a);
    }
    double lr = fsd_train_lr(c, k);
    fsd_adam_config ac = {(float)lr, (float)c->beta1, (float)c->beta2, (float)c->adam_eps, (float)c->weight_decay,
                          c->weight_decay > 0};
    fsd_adam_step(pn->data, pn->grad, t->m_net, t->v_net, pn->total, &ac, k + 1);
    fsd_adam_step(pc->data, pc->grad, t->m_cl, t->v_cl, pc->total, &ac, k + 1);
    /* EMA with the usual warm-up of the decay, so early EMA weights are not dominated by the init */
    double d = c->ema, dw = (1.0 + (double)k) / (10.0 + (double)k);
    if (dw < d) d = dw;
    ema_update(fsd_net_params(t->ema_net)->data, pn->data, pn->total, (float)d);
    ema_update(fsd_clarity_params(t->ema_cl)->data, pc->data, pc->total, (float)d);
    t->step = k + 1;
    if (st) {
        st->step = t->step;
        st->loss_eps = losses[0], st->loss_deg = losses[1], st->loss = losses[0] + losses[1];
        st->grad_norm = gn, st->lr = lr, st->crop = S;
    }
    return FSD_OK;
}

/* ---------------------------------------------------------------- checkpoints */
static fsd_status add_flat(fsd_st_writer *w, const char *name, const float *data, size_t n) {
    int64_t shape[1] = {(int64_t)n};
    return fsd_st_writer_add(w, name, FSD_F32, 1, shape, data);
}

fsd_status fsd_trainer_save_checkpoint(const fsd_trainer *t, const char *path) {
    fsd_st_writer w;
    fsd_st_writer_init(&w);
    const fsd_params *pn = fsd_net_params(t->net), *pc = fsd_clarity_params(t->cl);
    fsd_status s = fsd_model_add_to_writer(t->net, t->cl, &t->cfg.diff, &w, FSD_F32);
    if (!s) s = add_flat(&w, "train.ema.net", fsd_net_params(t->ema_net)->data, pn->total);
    if (!s) s = add_flat(&w, "train.ema.clarity", fsd_clarity_params(t->ema_cl)->data, pc->total);
    if (!s) s = add_flat(&w, "train.adam_m.net", t->m_net, pn->total);
    if (!s) s = add_flat(&w, "train.adam_v.net", t->v_net, pn->total);
    if (!s) s = add_flat(&w, "train.adam_m.clarity", t->m_cl, pc->total);
    if (!s) s = add_flat(&w, "train.adam_v.clarity", t->v_cl, pc->total);
    char *tj = train_json(&t->cfg, 0);
    char state[128];
    snprintf(state, sizeof state, "{\"step\":%lld}", (long long)t->step);
    if (!s) s = tj ? fsd_st_writer_meta(&w, FSD_TRAIN_CONFIG_META_KEY, tj) : fsd_fail(FSD_ERR_NOMEM, "out of memory");
    if (!s) s = fsd_st_writer_meta(&w, FSD_TRAIN_STATE_META_KEY, state);
    if (!s) s = fsd_st_writer_save(&w, path);
    fsd_free(tj);
    fsd_st_writer_free(&w);
    return s;
}

/* Configs of a checkpoint, read from its metadata. */
static fsd_status read_configs(const fsd_safetensors *st, fsd_train_config *c) {
    const char *nj = fsd_st_meta_get(st, FSD_NET_CONFIG_META_KEY), *cj = fsd_st_meta_get(st, FSD_CLARITY_META_KEY);
    const char *dj = fsd_st_meta_get(st, FSD_DIFFUSION_META_KEY), *tj = fsd_st_meta_get(st, FSD_TRAIN_CONFIG_META_KEY);
    if (!nj || !cj || !dj || !tj)
        return fsd_fail(FSD_ERR_FORMAT, "%s: not an fsdiff training checkpoint (missing configs in its metadata)", st->path);
    CK(fsd_train_config_default(c, "cpu"));
    CK(fsd_net_config_from_json(&c->net, nj, strlen(nj), st->path));
    CK(fsd_clarity_config_from_json(&c->clarity, cj, strlen(cj), st->path));
    CK(fsd_diffusion_config_from_json(&c->diff, dj, strlen(dj), st->path));
    CK(train_from_json(c, tj, st->path));
    return fsd_train_config_validate(c);
}

fsd_status fsd_train_config_from_checkpoint(fsd_train_config *c, const char *path) {
    fsd_safetensors st;
    CK(fsd_st_open(&st, path));
    fsd_status s = read_configs(&st, c);
    fsd_st_close(&st);
    return s;
}

static fsd_status load_flat(const fsd_safetensors *st, const char *name, float *dst, size_t n) {
    int64_t shape[1] = {(int64_t)n};
    float *buf;
    size_t cnt;
    CK(fsd_st_load_f32(st, name, 1, shape, 1, &buf, &cnt));
    memcpy(dst, buf, n * sizeof(float));
    fsd_free(buf);
    return FSD_OK;
}

static int same_json(char *a, char *b) {
    int eq = a && b && !strcmp(a, b);
    fsd_free(a), fsd_free(b);
    return eq;
}

static fsd_status load_ckpt(fsd_trainer *t, const fsd_safetensors *st) {
    fsd_train_config fc;
    CK(read_configs(st, &fc));
    const fsd_train_config *c = &t->cfg;
    if (!same_json(fsd_net_config_to_json(&fc.net), fsd_net_config_to_json(&c->net)))
        return fsd_fail(FSD_ERR_FORMAT, "%s: the checkpoint's network config differs from this run's", st->path);
    if (!same_json(fsd_clarity_config_to_json(&fc.clarity), fsd_clarity_config_to_json(&c->clarity)))
        return fsd_fail(FSD_ERR_FORMAT, "%s: the checkpoint's clarity encoder config differs from this run's", st->path);
    if (fc.diff.schedule != c->diff.schedule || fc.diff.T != c->diff.T || fc.diff.beta_start != c->diff.beta_start ||
        fc.diff.beta_end != c->diff.beta_end)
        return fsd_fail(FSD_ERR_FORMAT, "%s: the checkpoint's noise schedule differs from this run's", st->path);
    if (!same_json(fsd_train_config_identity_json(&fc), fsd_train_config_identity_json(c)))
        return fsd_fail(FSD_ERR_FORMAT,
                        "%s: the checkpoint's training settings (data, optimiser, loss) differ from this run's", st->path);
    const char *sj = fsd_st_meta_get(st, FSD_TRAIN_STATE_META_KEY);
    fsd_json j;
    if (!sj) return fsd_fail(FSD_ERR_FORMAT, "%s: no '%s' metadata", st->path, FSD_TRAIN_STATE_META_KEY);
    CK(fsd_json_parse(sj, strlen(sj), st->path, &j));
    const fsd_json *v = fsd_json_get(&j, "step");
    int64_t step = v && v->type == FSD_JSON_NUMBER && v->is_int ? v->i64 : -1;
    fsd_json_free(&j);
    if (step < 0 || step > ((int64_t)1 << 40)) return fsd_fail(FSD_ERR_FORMAT, "%s: bad step in '%s'", st->path, FSD_TRAIN_STATE_META_KEY);
    CK(fsd_net_load_st(t->net, st));
    CK(fsd_clarity_load(t->cl, st));
    const size_t nn = fsd_net_params(t->net)->total, nc = fsd_clarity_params(t->cl)->total;
    CK(load_flat(st, "train.ema.net", fsd_net_params(t->ema_net)->data, nn));
    CK(load_flat(st, "train.ema.clarity", fsd_clarity_params(t->ema_cl)->data, nc));
    CK(load_flat(st, "train.adam_m.net", t->m_net, nn));
    CK(load_flat(st, "train.adam_v.net", t->v_net, nn));
    CK(load_flat(st, "train.adam_m.clarity", t->m_cl, nc));
    CK(load_flat(st, "train.adam_v.clarity", t->v_cl, nc));
    t->step = step;
    return FSD_OK;
}

fsd_status fsd_trainer_load_checkpoint(fsd_trainer *t, const char *path) {
    fsd_safetensors st;
    CK(fsd_st_open(&st, path));
    fsd_status s = load_ckpt(t, &st);
    fsd_st_close(&st);
    return s;
}

fsd_status fsd_trainer_save_model(const fsd_trainer *t, const char *path, fsd_dtype dtype, const char *provenance_json) {
    const char *k[1] = {"fsdiff.train"}, *v[1] = {provenance_json};
    return fsd_model_save(t->ema_net, t->ema_cl, &t->cfg.diff, path, dtype, provenance_json ? 1 : 0, k, v);
}

/* ---------------------------------------------------------------- validation */
typedef struct val_ctx {
    fsd_net *net;
    const float *cond; /* (1, 6, h, w) */
    const float *ctx;
    float *xin;
    int h, w;
} val_ctx;

static fsd_status val_denoise(void *vc, const float *x_t, const float *gamma, float *eps_out, int B) {
    val_ctx *v = vc;
    size_t hw = (size_t)v->h * v->w;
    (void)B;
    memcpy(v->xin, v->cond, 6 * hw * sizeof(float));
    memcpy(v->xin + 6 * hw, x_t, 3 * hw * sizeof(float));
    return fsd_net_forward(v->net, v->xin, gamma, v->ctx, eps_out, 1, v->h, v->w, 0, 0, 0);
}

/* (3, h, w) in [-1,1] (or 0..255 when already scaled) -> one luma plane 0..255 for metrics;
 * grey targets (c = 1) use the channel mean. */
static void to_luma(const float *x, int c3_is_rgb, size_t hw, int from_unit, float *out) {
    for (size_t i = 0; i < hw; i++) {
        double r = x[i], g = x[hw + i], b = x[2 * hw + i];
        if (from_unit) {
            r = (fmin(fmax(r, -1), 1) + 1) * 127.5, g = (fmin(fmax(g, -1), 1) + 1) * 127.5;
            b = (fmin(fmax(b, -1), 1) + 1) * 127.5;
        }
        out[i] = (float)(c3_is_rgb ? 0.299 * r + 0.587 * g + 0.114 * b : (r + g + b) / 3.0);
    }
}

fsd_status fsd_trainer_validate(fsd_trainer *t, fsd_traindata *val, fsd_train_baseline_fn baseline, void *bctx,
                                fsd_val_result *out) {
    const fsd_train_config *c = &t->cfg;
    memset(out, 0, sizeof *out);
    double t0 = fsd_time_seconds();
    int n = c->val_pairs < fsd_traindata_n_pairs(val) ? c->val_pairs : fsd_traindata_n_pairs(val);
    int *levels = malloc((size_t)c->val_steps * sizeof(int));
    if (!levels) return fsd_fail(FSD_ERR_NOMEM, "validation: out of memory");
    fsd_status s = fsd_diffusion_levels_for(&t->sched, c->val_steps, FSD_SPACING_LINSPACE, levels);
    fsd_td_batch vb = {0};
    float *x = NULL, *xin = NULL, *ctx = NULL, *pa = NULL, *pb = NULL, *base = NULL, *lm = NULL, *lt = NULL, *lb = NULL;
    const size_t nctx = (size_t)c->net.context_tokens * c->net.context_dim;
    ctx = zalloc(nctx);
    for (int j = 0; j < n && !s; j++) {
        int pair = fsd_traindata_val_pick(val, n, j);
        s = fsd_traindata_val(val, pair, c->val_scale_a, c->val_scale_b, c->val_crop, &vb);
        if (s) break;
        const int h = vb.h, w = vb.w;
        const size_t hw = (size_t)h * w;
        fsd_free(x), fsd_free(xin), fsd_free(pa), fsd_free(pb), fsd_free(base), fsd_free(lm), fsd_free(lt), fsd_free(lb);
        x = zalloc(3 * hw), xin = zalloc(9 * hw), pa = zalloc(3 * hw), pb = zalloc(3 * hw), base = zalloc(3 * hw);
        lm = zalloc(hw), lt = zalloc(hw), lb = zalloc(hw);
        if (!x || !xin || !ctx || !pa || !pb || !base || !lm || !lt || !lb) {
            s = fsd_fail(FSD_ERR_NOMEM, "validation: out of memory");
            break;
        }
        /* context from the EMA clarity encoder, roles from its predictions (as at inference) */
        s = fsd_clarity_forward(t->ema_cl, vb.cond, vb.cond + 3 * hw, 1, h, w, c->diff.context, NULL, NULL, ctx, NULL,
                                NULL, NULL, 0);
        if (s) break;
        val_ctx vc = {t->ema_net, vb.cond, ctx, xin, h, w};
        fsd_sampler_opts so;
        fsd_sampler_opts_default(&so);
        so.kind = FSD_SAMPLER_DDIM, so.levels = levels, so.K = c->val_steps, so.seed = (uint64_t)pair;
        if (c->diff.residual) so.x0_clip = c->diff.residual_scale;
        so.prediction = c->diff.prediction;
        s = fsd_diffusion_sample(&t->sched, &so, val_denoise, &vc, x, 1, 3 * hw);
        if (s) break;
        int ca, cb, ct, pw, ph;
        fsd_traindata_pair_info(val, pair, &pw, &ph, &ca, &cb, &ct);
        if (c->diff.residual) { /* pa is free until the baseline below */
            if (vb.has_base) memcpy(pa, vb.base, 3 * hw * sizeof(float));
            else s = fsd_residual_base(fsd_traindata_pair_method(val, pair, c->diff.residual_method), vb.cond, ca, cb, w, h, pa);
            if (s) break;
            fsd_residual_apply(&c->diff, pa, x, 3 * hw);
        }
        if (vb.has_base) { /* the whole frame's base, as fsdiff fuse and eval make it (a crop's fusion differs) */
            for (size_t i = 0; i < 3 * hw; i++) base[i] = (vb.base[i] + 1) * 127.5f;
        } else {
            for (size_t i = 0; i < 3 * hw; i++) pa[i] = (vb.cond[i] + 1) * 127.5f, pb[i] = (vb.cond[3 * hw + i] + 1) * 127.5f;
            s = baseline(bctx, fsd_traindata_pair_method(val, pair, FSD_FUSE_AUTO), pa, ca, pb, cb, w, h, base);
            if (s) break;
        }
        to_luma(x, ct == 3, hw, 1, lm);
        to_luma(vb.x0, ct == 3, hw, 1, lt);
        to_luma(base, ct == 3, hw, 0, lb);
        double p1, p2, s1, s2;
        if ((s = fsd_psnr(lt, lm, w, h, &p1)) || (s = fsd_psnr(lt, lb, w, h, &p2)) || (s = fsd_ssim(lt, lm, w, h, &s1)) ||
            (s = fsd_ssim(lt, lb, w, h, &s2)))
            break;
        out->psnr_model += p1, out->psnr_base += p2, out->ssim_model += s1, out->ssim_base += s2;
        out->n++;
    }
    if (!s && out->n) {
        out->psnr_model /= out->n, out->psnr_base /= out->n, out->ssim_model /= out->n, out->ssim_base /= out->n;
    }
    out->seconds = fsd_time_seconds() - t0;
    fsd_td_batch_free(&vb);
    fsd_free(x), fsd_free(xin), fsd_free(ctx), fsd_free(pa), fsd_free(pb), fsd_free(base), fsd_free(lm), fsd_free(lt),
        fsd_free(lb);
    free(levels);
    return s;
}
