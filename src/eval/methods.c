/* The method registry of `fsdiff eval`: each entry of --methods becomes an fsd_eval_method with a
 * run function. A family is a name form (a prefix or an exact name) and a constructor; the FS-Diff
 * model is the "model:" family (fsd_fuse_run_size on the LR pair). */
#include "fsdiff/eval.h"
#include "fsdiff/fuse.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* PIL-compatible bicubic upsampling of an LR source to exactly the HR size (not round(w*S): that
 * can miss the HR size by a pixel, e.g. 351 px at x4 -> 88 -> 352). LR inputs hold 8-bit values,
 * so Pillow's 8-bit path is reproduced. */
static fsd_status upsample(const fsd_image *lr, int w, int h, fsd_image *out) {
    return fsd_image_resize_bicubic(lr, w, h, 1, out);
}

/* NAME: "SR then fuse" = bicubic-upsample both LR sources to the HR size, then fuse. */
static fsd_status run_sr_fuse(const fsd_eval_method *m, const fsd_eval_input *in, fsd_image *out) {
    fsd_image ua = {0}, ub = {0};
    fsd_status s = upsample(in->lr_a, in->hr_w, in->hr_h, &ua);
    if (!s) s = upsample(in->lr_b, in->hr_w, in->hr_h, &ub);
    if (!s) s = fsd_fuse_images(m->fuse, &m->params, &ua, &ub, out);
    fsd_image_free(&ua);
    fsd_image_free(&ub);
    return s;
}

/* hr:NAME: fuse the HR sources (what a perfect SR step would allow). */
static fsd_status run_hr_fuse(const fsd_eval_method *m, const fsd_eval_input *in, fsd_image *out) {
    return fsd_fuse_images(m->fuse, &m->params, in->hr_a, in->hr_b, out);
}

/* bicubic-a / bicubic-b: one source alone, upsampled (a single-source baseline). */
static fsd_status run_bicubic_a(const fsd_eval_method *m, const fsd_eval_input *in, fsd_image *out) {
    (void)m;
    return upsample(in->lr_a, in->hr_w, in->hr_h, out);
}
static fsd_status run_bicubic_b(const fsd_eval_method *m, const fsd_eval_input *in, fsd_image *out) {
    (void)m;
    return upsample(in->lr_b, in->hr_w, in->hr_h, out);
}

/* ---------------------------------------------------------------- families */
static fsd_status make_classic(const char *arg, fsd_eval_method *m) {
    if (fsd_fuse_method_parse(arg, &m->fuse) != FSD_OK) return FSD_ERR_INVALID;
    fsd_fuse_params_default(&m->params);
    m->run = run_sr_fuse;
    return FSD_OK;
}

static fsd_status make_hr(const char *arg, fsd_eval_method *m) {
    if (fsd_fuse_method_parse(arg, &m->fuse) != FSD_OK) return FSD_ERR_INVALID;
    fsd_fuse_params_default(&m->params);
    m->uses_hr = 1;
    m->run = run_hr_fuse;
    return FSD_OK;
}

static fsd_status make_bicubic(const char *arg, fsd_eval_method *m) {
    m->run = !strcmp(arg, "a") ? run_bicubic_a : run_bicubic_b;
    return FSD_OK;
}

/* ---------------------------------------------------------------- the FS-Diff model */
/* model:PATH[?key=value&...]: the model file is opened once; its U-Net keeps arenas, so one pair
 * runs at a time (m->serial tells fsd_eval_run, the lock guards other callers) and the net's own
 * OpenMP parallelism does the work. The model sees only the LR inputs and writes the HR size. */
typedef struct model_ctx {
    fsd_model model;
    fsd_fuse_opts opts;
    pthread_mutex_t lock;
} model_ctx;

static fsd_status run_model(const fsd_eval_method *m, const fsd_eval_input *in, fsd_image *out) {
    model_ctx *c = m->ctx;
    pthread_mutex_lock(&c->lock);
    fsd_status s = fsd_fuse_run_size(&c->model, in->lr_a, in->lr_b, in->hr_w, in->hr_h, &c->opts, out, NULL);
    pthread_mutex_unlock(&c->lock);
    return s;
}

static void free_model(void *ctx) {
    model_ctx *c = ctx;
    if (!c) return;
    fsd_model_close(&c->model);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static int parse_uint(const char *v, long lo, long hi, long *out) {
    char *end;
    long x = strtol(v, &end, 10);
    if (!*v || *end || x < lo || x > hi) return -1;
    *out = x;
    return 0;
}

/* "sampler=ddim&steps=20&seed=1&eta=0&spacing=linspace&context=mean&tile=256&overlap=64" */
static fsd_status parse_model_options(const char *q, const char *entry, fsd_fuse_opts *o) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", q);
    char *save = NULL;
    for (char *kv = strtok_r(buf, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
        char *v = strchr(kv, '=');
        long l = 0;
        int bad = !v;
        if (v) *v++ = 0;
        if (bad) {
        } else if (!strcmp(kv, "sampler")) {
            fsd_sampler_kind k;
            bad = fsd_sampler_parse(v, &k) != FSD_OK;
            o->sampler = (int)k;
        } else if (!strcmp(kv, "spacing")) {
            fsd_spacing sp;
            bad = fsd_spacing_parse(v, &sp) != FSD_OK;
            o->spacing = (int)sp;
        } else if (!strcmp(kv, "context")) {
            fsd_context_mode cm;
            bad = fsd_context_mode_parse(v, &cm) != FSD_OK;
            o->context = (int)cm;
        } else if (!strcmp(kv, "steps")) {
            bad = parse_uint(v, 1, 1000000, &l);
            o->steps = (int)l;
        } else if (!strcmp(kv, "seed")) {
            bad = parse_uint(v, 0, 0x7fffffffL, &l);
            o->seed = (uint64_t)l;
        } else if (!strcmp(kv, "tile")) {
            bad = parse_uint(v, 0, 1 << 20, &l);
            o->tile = (int)l;
        } else if (!strcmp(kv, "overlap")) {
            bad = parse_uint(v, 0, 1 << 20, &l);
            o->overlap = (int)l;
        } else if (!strcmp(kv, "eta")) {
            char *end;
            o->eta = strtod(v, &end);
            bad = !*v || *end || !(o->eta >= 0 && o->eta <= 1);
        } else {
            return fsd_fail(FSD_ERR_INVALID,
                            "method '%s': unknown model option '%s' (sampler, steps, seed, eta, spacing, context, tile, "
                            "overlap)",
                            entry, kv);
        }
        if (bad) return fsd_fail(FSD_ERR_INVALID, "method '%s': bad value for model option '%s'", entry, kv);
    }
    return FSD_OK;
}

static fsd_status make_model(const char *arg, fsd_eval_method *m) {
    char path[1024];
    const char *q = strchr(arg, '?');
    size_t n = q ? (size_t)(q - arg) : strlen(arg);
    if (n == 0 || n >= sizeof path)
        return fsd_fail(FSD_ERR_INVALID, "method 'model:%s': give the model file as model:PATH", arg);
    memcpy(path, arg, n);
    path[n] = 0;
    model_ctx *c = calloc(1, sizeof *c);
    if (!c) return fsd_fail(FSD_ERR_NOMEM, "out of memory");
    fsd_fuse_opts_default(&c->opts);
    fsd_status s = q ? parse_model_options(q + 1, m->name, &c->opts) : FSD_OK;
    if (!s) s = fsd_model_open(&c->model, path);
    if (s) {
        free(c);
        return s;
    }
    pthread_mutex_init(&c->lock, NULL);
    m->ctx = c;
    m->free_ctx = free_model;
    m->serial = 1;
    m->run = run_model;
    return FSD_OK;
}

typedef struct family {
    const char *prefix; /* the entry starts with this; the rest is the argument */
    int exact;          /* 1: the whole entry must be prefix + one of `args` */
    const char *args[4];
    fsd_status (*make)(const char *arg, fsd_eval_method *m);
} family;

/* Order matters: the prefixed forms first, the bare classical name last. */
static const family k_families[] = {
    {"hr:", 0, {NULL}, make_hr},
    {"model:", 0, {NULL}, make_model},
    {"bicubic-", 1, {"a", "b", NULL}, make_bicubic},
    {"", 0, {NULL}, make_classic},
};

const char *fsd_eval_method_forms(void) {
    return "average|laplacian|gff|gradient (bicubic SR then fuse), hr:NAME (fuse the HR sources: the ceiling), "
           "bicubic-a|bicubic-b (one source upsampled), model:PATH[?steps=N&sampler=K&seed=N...] (FS-Diff model)";
}

static fsd_status parse_one(const char *item, fsd_eval_method *m) {
    memset(m, 0, sizeof *m);
    size_t n = strlen(item);
    if (n == 0) return fsd_fail(FSD_ERR_INVALID, "empty method name in the list (valid: %s)", fsd_eval_method_forms());
    if (n >= sizeof m->name)
        return fsd_fail(FSD_ERR_INVALID, "method name '%.40s...' is too long (at most %zu characters)", item,
                        sizeof m->name - 1);
    memcpy(m->name, item, n + 1);
    for (size_t f = 0; f < sizeof k_families / sizeof *k_families; f++) {
        const family *fam = &k_families[f];
        size_t pl = strlen(fam->prefix);
        if (strncmp(item, fam->prefix, pl)) continue;
        const char *arg = item + pl;
        if (fam->exact) {
            int ok = 0;
            for (int k = 0; fam->args[k] && !ok; k++) ok = !strcmp(arg, fam->args[k]);
            if (!ok) break;
        } else if (!*arg) {
            break;
        }
        fsd_status s = fam->make(arg, m);
        if (s == FSD_ERR_INVALID && fam->make != make_model) break; /* unknown name: the generic message below */
        return s;
    }
    return fsd_fail(FSD_ERR_INVALID, "unknown method '%s' (valid: %s)", item, fsd_eval_method_forms());
}

void fsd_eval_methods_free(fsd_eval_method *m, int n) {
    if (!m) return;
    for (int i = 0; i < n; i++)
        if (m[i].free_ctx) m[i].free_ctx(m[i].ctx);
    free(m);
}

fsd_status fsd_eval_methods_parse(const char *list, fsd_eval_method **out, int *n_out) {
    *out = NULL;
    *n_out = 0;
    if (!list) return fsd_fail(FSD_ERR_INVALID, "no methods given (valid: %s)", fsd_eval_method_forms());
    int cap = 1;
    for (const char *p = list; *p; p++) cap += *p == ',';
    fsd_eval_method *m = calloc((size_t)cap, sizeof *m);
    char *copy = strdup(list);
    if (!m || !copy) {
        free(m);
        free(copy);
        return fsd_fail(FSD_ERR_NOMEM, "out of memory");
    }
    int n = 0;
    fsd_status s = FSD_OK;
    char *item = copy;
    for (;;) {
        char *comma = strchr(item, ',');
        if (comma) *comma = 0;
        /* trim spaces, so "gff, hr:gff" works */
        while (*item == ' ') item++;
        for (char *e = item + strlen(item); e > item && e[-1] == ' ';) *--e = 0;
        s = parse_one(item, &m[n]);
        if (s) break;
        n++;
        for (int k = 0; k < n - 1; k++)
            if (!strcmp(m[k].name, m[n - 1].name)) {
                s = fsd_fail(FSD_ERR_INVALID, "method '%s' is listed twice", item);
                break;
            }
        if (s || !comma) break;
        item = comma + 1;
    }
    free(copy);
    if (s) {
        fsd_eval_methods_free(m, n);
        return s;
    }
    *out = m;
    *n_out = n;
    return FSD_OK;
}
