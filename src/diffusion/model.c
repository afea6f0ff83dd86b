/* Model files: net + clarity encoder + diffusion config in one safetensors file (include/fsdiff/model.h). */
#include "fsdiff/model.h"
#include "fsdiff/json.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define CK(x)                                                                                                          \
    do {                                                                                                               \
        fsd_status s_ = (x);                                                                                           \
        if (s_) return s_;                                                                                             \
    } while (0)

void fsd_diffusion_config_default(fsd_diffusion_config *c) {
    memset(c, 0, sizeof *c);
    c->schedule = FSD_BETA_LINEAR;
    c->T = 2000;
    c->beta_start = 1e-6;
    c->beta_end = 1e-2;
    c->sampler = FSD_SAMPLER_DDIM;
    c->steps = 50;
    c->spacing = FSD_SPACING_LINSPACE;
    c->eta = 0.0;
    c->context = FSD_CONTEXT_CLARITY;
    c->residual = 0;
    c->residual_method = FSD_FUSE_GFF;
    c->residual_scale = 4.0;
    c->residual_shrink = 0.0;
    c->prediction = FSD_PRED_EPS;
}

fsd_status fsd_diffusion_config_validate(const fsd_diffusion_config *c) {
    if (c->T < 1 || c->T > 1000000) return fsd_fail(FSD_ERR_INVALID, "diffusion config: T = %d must be in 1..1000000", c->T);
    if (c->steps < 1 || c->steps > c->T)
        return fsd_fail(FSD_ERR_INVALID, "diffusion config: steps = %d must be in 1..T (%d)", c->steps, c->T);
    if (!(c->eta >= 0.0 && c->eta <= 10.0)) return fsd_fail(FSD_ERR_INVALID, "diffusion config: eta must be in [0, 10]");
    if (c->residual != 0 && c->residual != 1)
        return fsd_fail(FSD_ERR_INVALID, "diffusion config: residual must be 0 or 1");
    if (!(c->residual_scale >= 0.01 && c->residual_scale <= 100.0))
        return fsd_fail(FSD_ERR_INVALID, "diffusion config: residual_scale must be in [0.01, 100]");
    if (!(c->residual_shrink >= 0.0 && c->residual_shrink <= 64.0))
        return fsd_fail(FSD_ERR_INVALID, "diffusion config: residual_shrink must be in [0, 64] grey levels");
    if ((unsigned)c->prediction > FSD_PRED_V) return fsd_fail(FSD_ERR_INVALID, "diffusion config: unknown prediction");
    /* the schedule's own range checks, on a throw-away instance */
    fsd_schedule s;
    CK(fsd_schedule_init(&s, c->schedule, c->T, c->beta_start, c->beta_end));
    fsd_schedule_free(&s);
    return FSD_OK;
}

char *fsd_diffusion_config_to_json(const fsd_diffusion_config *c) {
    char buf[512];
    int n = snprintf(buf, sizeof buf,
                     "{\"schedule\":\"%s\",\"T\":%d,\"beta_start\":%.17g,\"beta_end\":%.17g,\"sampler\":\"%s\","
                     "\"steps\":%d,\"spacing\":\"%s\",\"eta\":%.17g,\"context\":\"%s\"}",
                     fsd_beta_kind_name(c->schedule), c->T, c->beta_start, c->beta_end, fsd_sampler_name(c->sampler),
                     c->steps, fsd_spacing_name(c->spacing), c->eta, fsd_context_mode_name(c->context));
    if (n < 0 || (size_t)n >= sizeof buf) return NULL;
    if (c->residual) { /* only then: image-target files keep their metadata as before */
        int m = snprintf(buf + n - 1, sizeof buf - (size_t)n + 1,
                         ",\"target\":\"residual\",\"residual_method\":\"%s\",\"residual_scale\":%.17g}",
                         fsd_fuse_method_name(c->residual_method), c->residual_scale);
        if (m < 0 || (size_t)m >= sizeof buf - (size_t)n + 1) return NULL;
        n += m - 1;
    }
    if (c->residual && c->residual_shrink > 0) {
        int m = snprintf(buf + n - 1, sizeof buf - (size_t)n + 1, ",\"residual_shrink\":%.17g}", c->residual_shrink);
        if (m < 0 || (size_t)m >= sizeof buf - (size_t)n + 1) return NULL;
        n += m - 1;
    }
    if (c->prediction != FSD_PRED_EPS) { /* likewise: ε files keep their metadata as before */
        int m = snprintf(buf + n - 1, sizeof buf - (size_t)n + 1, ",\"prediction\":\"%s\"}",
                         fsd_prediction_name(c->prediction));
        if (m < 0 || (size_t)m >= sizeof buf - (size_t)n + 1) return NULL;
        n += m - 1;
    }
    char *o = fsd_alloc((size_t)n + 1);
    if (o) memcpy(o, buf, (size_t)n + 1);
    return o;
}

static fsd_status want(const fsd_json *v, fsd_json_type t, const char *label, const char *k) {
    if (v->type != t)
        return fsd_fail(FSD_ERR_FORMAT, "%s: diffusion config '%s' must be a %s", label, k, fsd_json_type_name(t));
    return FSD_OK;
}

/* Parse errors of enum values come back as FSD_ERR_INVALID without the file's name: prefix it. */
static fsd_status relabel(const char *label, const char *k) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", fsd_error_message());
    return fsd_fail(FSD_ERR_FORMAT, "%s: diffusion config '%s': %s", label, k, msg);
}

fsd_status fsd_diffusion_config_from_json(fsd_diffusion_config *c, const char *text, size_t len, const char *label) {
    fsd_json j;
    CK(fsd_json_parse(text, len, label, &j));
    fsd_diffusion_config_default(c);
    fsd_status s = j.type == FSD_JSON_OBJECT ? FSD_OK
                                             : fsd_fail(FSD_ERR_FORMAT, "%s: diffusion config must be a JSON object", label);
    for (int i = 0; i < j.n && !s; i++) {
        const char *k = j.keys[i];
        const fsd_json *v = &j.items[i];
        if (!strcmp(k, "schedule")) {
            if (!(s = want(v, FSD_JSON_STRING, label, k))) s = fsd_beta_kind_parse(v->str, &c->schedule);
        } else if (!strcmp(k, "sampler")) {
            if (!(s = want(v, FSD_JSON_STRING, label, k))) s = fsd_sampler_parse(v->str, &c->sampler);
        } else if (!strcmp(k, "spacing")) {
            if (!(s = want(v, FSD_JSON_STRING, label, k))) s = fsd_spacing_parse(v->str, &c->spacing);
        } else if (!strcmp(k, "context")) {
            if (!(s = want(v, FSD_JSON_STRING, label, k))) s = fsd_context_mode_parse(v->str, &c->context);
        } else if (!strcmp(k, "target")) {
            if (!(s = want(v, FSD_JSON_STRING, label, k))) {
                if (!strcmp(v->str, "image")) c->residual = 0;
                else if (!strcmp(v->str, "residual")) c->residual = 1;
                else s = fsd_fail(FSD_ERR_FORMAT, "%s: diffusion config 'target' must be \"image\" or \"residual\"", label);
            }
        } else if (!strcmp(k, "prediction")) {
            if (!(s = want(v, FSD_JSON_STRING, label, k))) s = fsd_prediction_parse(v->str, &c->prediction);
        } else if (!strcmp(k, "residual_method")) {
            if (!(s = want(v, FSD_JSON_STRING, label, k))) s = fsd_fuse_method_parse(v->str, &c->residual_method);
        } else if (!strcmp(k, "residual_scale")) {
            if (!(s = want(v, FSD_JSON_NUMBER, label, k))) c->residual_scale = v->num;
        } else if (!strcmp(k, "residual_shrink")) {
            if (!(s = want(v, FSD_JSON_NUMBER, label, k))) c->residual_shrink = v->num;
        } else if (!strcmp(k, "T") || !strcmp(k, "steps")) {
            if (v->type != FSD_JSON_NUMBER || !v->is_int || v->i64 < 1 || v->i64 > 1000000)
                s = fsd_fail(FSD_ERR_FORMAT, "%s: diffusion config '%s' must be an integer in 1..1000000", label, k);
            else if (!strcmp(k, "T")) c->T = (int)v->i64;
            else c->steps = (int)v->i64;
        } else if (!strcmp(k, "beta_start") || !strcmp(k, "beta_end") || !strcmp(k, "eta")) {
            if (!(s = want(v, FSD_JSON_NUMBER, label, k))) {
                if (!strcmp(k, "beta_start")) c->beta_start = v->num;
                else if (!strcmp(k, "beta_end")) c->beta_end = v->num;
                else c->eta = v->num;
            }
        } else s = fsd_fail(FSD_ERR_FORMAT, "%s: unknown diffusion config key '%s'", label, k);
        if (s && s != FSD_ERR_FORMAT) s = relabel(label, k);
    }
    fsd_json_free(&j);
    if (!s && (s = fsd_diffusion_config_validate(c)) != FSD_OK) {
        char msg[512]; /* name the file: "M.safetensors: diffusion config: steps = ..." */
        snprintf(msg, sizeof msg, "%s", fsd_error_message());
        s = fsd_fail(s, "%s: %s", label, msg);
    }
    return s;
}

/* ---------------------------------------------------------------- residual target */
fsd_status fsd_residual_base(fsd_fuse_method m, const float *cond, int ca, int cb, int w, int h, float *base) {
    const size_t hw = (size_t)w * h;
    fsd_image ia = {0}, ib = {0}, f = {0};
    fsd_status s = fsd_image_alloc(&ia, w, h, ca);
    if (!s) s = fsd_image_alloc(&ib, w, h, cb);
    for (size_t q = 0; !s && q < (size_t)ca * hw; q++) ia.data[q] = (cond[q] + 1.0f) * 127.5f;
    for (size_t q = 0; !s && q < (size_t)cb * hw; q++) ib.data[q] = (cond[3 * hw + q] + 1.0f) * 127.5f;
    fsd_fuse_params prm;
    fsd_fuse_params_default(&prm);
    if (!s) s = fsd_fuse_images(m, &prm, &ia, &ib, &f);
    for (int c = 0; !s && c < 3; c++) {
        const float *src = f.data + (f.c == 3 ? (size_t)c * hw : 0);
        float *dst = base + (size_t)c * hw;
        for (size_t q = 0; q < hw; q++) {
            float v = src[q] < 0.0f ? 0.0f : src[q] > 255.0f ? 255.0f : src[q];
            dst[q] = v / 127.5f - 1.0f;
        }
    }
    fsd_image_free(&ia), fsd_image_free(&ib), fsd_image_free(&f);
    return s;
}

void fsd_residual_apply(const fsd_diffusion_config *d, const float *base, float *x, size_t n) {
    const float inv = (float)(1.0 / d->residual_scale), t = (float)(d->residual_shrink / 127.5);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t q = 0; q < n; q++) {
        float r = x[q] * inv;
        if (t > 0.0f) r = r > t ? r - t : r < -t ? r + t : 0.0f;
        float v = base[q] + r;
        x[q] = v < -1.0f ? -1.0f : v > 1.0f ? 1.0f : v;
    }
}

/* ---------------------------------------------------------------- files */
fsd_status fsd_model_open(fsd_model *m, const char *path) {
    memset(m, 0, sizeof *m);
    snprintf(m->path, sizeof m->path, "%s", path);
    fsd_diffusion_config_default(&m->diff);
    fsd_safetensors st;
    CK(fsd_st_open(&st, path));
    fsd_status s = FSD_OK;
    const char *meta = fsd_st_meta_get(&st, FSD_NET_CONFIG_META_KEY);
    fsd_net_config cfg;
    if (!meta)
        s = fsd_fail(FSD_ERR_FORMAT, "%s: no '%s' metadata (not an fsdiff model file)", path, FSD_NET_CONFIG_META_KEY);
    if (!s) s = fsd_net_config_from_json(&cfg, meta, strlen(meta), path);
    if (!s) s = fsd_net_create(&m->net, &cfg);
    if (!s) s = fsd_net_load_st(m->net, &st);
    if (!s && fsd_st_meta_get(&st, FSD_CLARITY_META_KEY)) {
        s = fsd_clarity_open(&m->clarity, &st);
        if (!s && fsd_clarity_check_net(fsd_clarity_cfg(m->clarity), &cfg)) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", fsd_error_message());
            s = fsd_fail(FSD_ERR_FORMAT, "%s: %s", path, msg);
        }
    }
    const char *dj = s ? NULL : fsd_st_meta_get(&st, FSD_DIFFUSION_META_KEY);
    if (dj) s = fsd_diffusion_config_from_json(&m->diff, dj, strlen(dj), path);
    const char *ti = s ? NULL : fsd_st_meta_get(&st, "fsdiff.train");
    if (ti) {
        size_t n = strlen(ti);
        if (!(m->train_info = fsd_alloc(n + 1))) s = fsd_fail(FSD_ERR_NOMEM, "out of memory");
        else memcpy(m->train_info, ti, n + 1);
    }
    fsd_st_close(&st);
    if (s) fsd_model_close(m);
    return s;
}

void fsd_model_close(fsd_model *m) {
    fsd_net_free(m->net);
    fsd_clarity_free(m->clarity);
    fsd_free(m->train_info);
    m->net = NULL, m->clarity = NULL, m->train_info = NULL;
}

fsd_status fsd_model_add_to_writer(const fsd_net *net, const fsd_clarity *clarity, const fsd_diffusion_config *d,
                                   fsd_st_writer *w, fsd_dtype dtype) {
    CK(fsd_diffusion_config_validate(d));
    CK(fsd_net_add_to_writer(net, w, dtype));
    if (clarity) {
        CK(fsd_clarity_check_net(fsd_clarity_cfg(clarity), fsd_net_cfg(net)));
        CK(fsd_clarity_add_to_writer(clarity, w, dtype));
    }
    char *j = fsd_diffusion_config_to_json(d);
    if (!j) return fsd_fail(FSD_ERR_NOMEM, "out of memory");
    fsd_status s = fsd_st_writer_meta(w, FSD_DIFFUSION_META_KEY, j);
    fsd_free(j);
    return s;
}

fsd_status fsd_model_save(const fsd_net *net, const fsd_clarity *clarity, const fsd_diffusion_config *d,
                          const char *path, fsd_dtype dtype, int n_extra, const char *const *keys,
                          const char *const *vals) {
    fsd_st_writer w;
    fsd_st_writer_init(&w);
    fsd_status s = fsd_model_add_to_writer(net, clarity, d, &w, dtype);
    for (int i = 0; i < n_extra && !s; i++) s = fsd_st_writer_meta(&w, keys[i], vals[i]);
    if (!s) s = fsd_st_writer_save(&w, path);
    fsd_st_writer_free(&w);
    return s;
}
