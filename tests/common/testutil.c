#include "testutil.h"

#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tu_passed = 0, tu_failed = 0;

int tu_check(int cond, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf(cond ? "ok    " : "FAIL  ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
    if (cond) tu_passed++;
    else tu_failed++;
    return cond;
}

int tu_summary(void) {
    printf("%d passed, %d failed\n", tu_passed, tu_failed);
    return tu_failed ? 1 : (tu_passed ? 0 : 1);
}

double tu_rel_err(const float *got, const float *ref, size_t n) {
    double maxref = 0, maxdiff = 0;
    for (size_t i = 0; i < n; i++) {
        double r = fabs((double)ref[i]);
        if (r > maxref) maxref = r;
        double d = fabs((double)got[i] - (double)ref[i]);
        if (!(d <= maxdiff)) maxdiff = isnan(d) ? INFINITY : d > maxdiff ? d : maxdiff;
    }
    return maxdiff / (maxref > 1e-6 ? maxref : 1e-6);
}

int tu_check_close(const char *what, const float *got, const float *ref, size_t n, double tol) {
    double e = tu_rel_err(got, ref, n);
    int ok = e <= tol;
    if (!ok) {
        size_t worst = 0;
        double wd = -1;
        for (size_t i = 0; i < n; i++) {
            double d = fabs((double)got[i] - (double)ref[i]);
            if (isnan(d) || d > wd) { wd = isnan(d) ? INFINITY : d; worst = i; }
        }
        return tu_check(0, "%s: rel err %.3g > %.1g (worst at %zu: got %.7g ref %.7g)", what, e, tol, worst,
                        (double)got[worst], (double)ref[worst]);
    }
    return tu_check(1, "%s: rel err %.3g <= %.1g", what, e, tol);
}

const char *tu_ref_dir(void) {
    const char *d = getenv("FSD_REF_DIR");
    return d && *d ? d : "ref";
}

const char *tu_data_dir(void) {
    const char *d = getenv("FSDIFF_DATA");
    return d && *d ? d : "../shared/data";
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int tu_list_cases(const char *subdir, char ***paths) {
    char dir[2048];
    snprintf(dir, sizeof dir, "%s/%s", tu_ref_dir(), subdir);
    *paths = NULL;
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t L = strlen(e->d_name);
        if (L < 12 || strcmp(e->d_name + L - 12, ".safetensors") != 0) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            *paths = realloc(*paths, (size_t)cap * sizeof(char *));
        }
        size_t m = strlen(dir) + L + 2;
        (*paths)[n] = malloc(m);
        snprintf((*paths)[n], m, "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    if (n) qsort(*paths, (size_t)n, sizeof(char *), cmp_str);
    return n;
}

void tu_free_list(char **paths, int n) {
    for (int i = 0; i < n; i++) free(paths[i]);
    free(paths);
}

float *tu_get_opt(const fsd_safetensors *st, const char *name, size_t *n) {
    const fsd_st_tensor *t = fsd_st_find(st, name);
    if (!t) return NULL;
    size_t m = (size_t)fsd_st_numel(t);
    float *out = fsd_alloc((m ? m : 1) * sizeof(float));
    if (fsd_st_to_f32(t, out, m) != FSD_OK) {
        fsd_free(out);
        return NULL;
    }
    if (n) *n = m;
    return out;
}

float *tu_get(const fsd_safetensors *st, const char *name, size_t *n) {
    float *p = tu_get_opt(st, name, n);
    if (!p) tu_check(0, "%s: tensor '%s' missing", st->path, name);
    return p;
}

int tu_meta_int(const fsd_safetensors *st, const char *key, int def) {
    const char *v = fsd_st_meta_get(st, key);
    return v ? atoi(v) : def;
}

double tu_meta_double(const fsd_safetensors *st, const char *key, double def) {
    const char *v = fsd_st_meta_get(st, key);
    return v ? atof(v) : def;
}

const char *tu_meta_str(const fsd_safetensors *st, const char *key, const char *def) {
    const char *v = fsd_st_meta_get(st, key);
    return v ? v : def;
}

int tu_shape(const fsd_safetensors *st, const char *name, int64_t *shape) {
    const fsd_st_tensor *t = fsd_st_find(st, name);
    if (!t) return -1;
    for (int i = 0; i < t->ndim; i++) shape[i] = t->shape[i];
    return t->ndim;
}

float *tu_zeros(size_t n) { return fsd_calloc(n ? n : 1, sizeof(float)); }

void tu_fill_uniform(float *x, size_t n, uint64_t seed, float scale) {
    fsd_rng r = {seed, 0};
    fsd_rng_uniform(&r, 0, x, n);
    for (size_t i = 0; i < n; i++) x[i] = (2.0f * x[i] - 1.0f) * scale;
}

int tu_fd_check(const char *what, tu_loss_fn loss, void *ctx, float *x, const float *grad, size_t n,
                int nprobe, double h, double atol, double rtol) {
    if (n == 0) return tu_check(1, "%s: finite differences (empty)", what);
    double maxan = 0, maxerr = 0;
    for (size_t i = 0; i < n; i++) maxan = fmax(maxan, fabs(grad[i]));
    size_t step = n / (size_t)nprobe;
    if (step == 0) step = 1;
    size_t worst = 0;
    double wfd = 0;
    for (size_t j = step / 2, k = 0; j < n && (int)k < nprobe; j += step, k++) {
        float orig = x[j];
        x[j] = (float)(orig + h);
        double lp = loss(ctx);
        x[j] = (float)(orig - h);
        double lm = loss(ctx);
        x[j] = orig;
        /* divide by the step actually taken in float */
        double hp = (double)(float)(orig + h) - (double)(float)(orig - h);
        double fd = (lp - lm) / hp;
        double e = fabs(fd - grad[j]);
        if (e > maxerr) { maxerr = e; worst = j; wfd = fd; }
    }
    double tol = atol + rtol * maxan;
    if (maxerr <= tol) return tu_check(1, "%s: finite differences max err %.3g <= %.3g", what, maxerr, tol);
    return tu_check(0, "%s: finite differences max err %.3g > %.3g (at %zu: fd %.6g analytic %.6g)", what, maxerr,
                    tol, worst, wfd, (double)grad[worst]);
}
