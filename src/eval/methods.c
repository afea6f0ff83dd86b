/* The method registry of `fsdiff eval`: each entry of --methods becomes an fsd_eval_method with a
 * run function. A family is a name form (a prefix or an exact name) and a constructor; the FS-Diff
 * model is the "model:" family and only needs its constructor and run function filled in. */
#include "fsdiff/eval.h"

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

/* The FS-Diff model: a later issue loads PATH into m->ctx here and sets m->run to its sampler. */
static fsd_status make_model(const char *arg, fsd_eval_method *m) {
    (void)m;
    return fsd_fail(FSD_ERR_UNSUPPORTED,
                    "method 'model:%s': the FS-Diff model is not implemented yet; use the classical methods (%s)",
                    arg, fsd_eval_method_forms());
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
           "bicubic-a|bicubic-b (one source upsampled), model:PATH (FS-Diff model)";
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
        if (s == FSD_ERR_INVALID) break; /* unknown classical name: the generic message below */
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
