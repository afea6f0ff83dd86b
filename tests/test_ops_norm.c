/* GroupNorm, LayerNorm and channel-major LayerNorm against PyTorch (tests/ref/ref_norm.py, float64
 * autograd), plus finite-difference checks, accumulation / NULL-gradient semantics, thread-count
 * independence and argument validation.
 * Tolerances (rel_err of testutil.h): forward y, mean, rstd <= 1e-4; every gradient <= 1e-3;
 * finite differences (h = 1e-2, float forward summed in double): |fd - analytic| <= 2e-3 + 1e-2 max|analytic|. */
#include "fsdiff/ops_norm.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL_FWD 1e-4
#define TOL_GRAD 1e-3
#define ACC0 0.25f /* gradients start here: backward must add, not overwrite */

enum { OP_GN, OP_LN, OP_LNCM };

/* One op with its shape, so the same code runs the reference cases and the FD checks. */
typedef struct normcase {
    int op;
    int B, C, HW, G; /* GN: (B, C, HW), G groups; LN: N = B, C; LNCM: (B, C, L = HW) */
    float eps;
    float *x, *w, *b;
} normcase;

static size_t nc_numel(const normcase *c) {
    return c->op == OP_LN ? (size_t)c->B * c->C : (size_t)c->B * c->C * c->HW;
}
static size_t nc_nstat(const normcase *c) {
    return c->op == OP_GN ? (size_t)c->B * c->G : c->op == OP_LN ? (size_t)c->B : (size_t)c->B * c->HW;
}

static fsd_status nc_forward(const normcase *c, float *y, float *mean, float *rstd) {
    switch (c->op) {
    case OP_GN: return fsd_groupnorm_forward(y, mean, rstd, c->x, c->w, c->b, c->B, c->C, c->HW, c->G, c->eps);
    case OP_LN: return fsd_layernorm_forward(y, mean, rstd, c->x, c->w, c->b, c->B, c->C, c->eps);
    default: return fsd_layernorm_cm_forward(y, mean, rstd, c->x, c->w, c->b, c->B, c->C, c->HW, c->eps);
    }
}

static fsd_status nc_backward(const normcase *c, float *dx, float *dw, float *db, const float *dy, const float *mean,
                              const float *rstd, fsd_arena *ws) {
    switch (c->op) {
    case OP_GN:
        return fsd_groupnorm_backward(dx, dw, db, dy, c->x, mean, rstd, c->w, c->B, c->C, c->HW, c->G, ws);
    case OP_LN: return fsd_layernorm_backward(dx, dw, db, dy, c->x, mean, rstd, c->w, c->B, c->C, ws);
    default: return fsd_layernorm_cm_backward(dx, dw, db, dy, c->x, mean, rstd, c->w, c->B, c->C, c->HW, ws);
    }
}

static float *filled(size_t n, float v) {
    float *p = tu_zeros(n);
    for (size_t i = 0; i < n; i++) p[i] = v;
    return p;
}
static void sub_const(float *p, size_t n, float v) {
    for (size_t i = 0; i < n; i++) p[i] -= v;
}

static void run_reference_case(const char *path, fsd_arena *ws) {
    fsd_safetensors st;
    if (fsd_st_open(&st, path) != FSD_OK) {
        tu_check(0, "open %s: %s", path, fsd_error_message());
        return;
    }
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    const char *op = tu_meta_str(&st, "op", "?");
    normcase c = {0};
    c.eps = (float)tu_meta_double(&st, "eps", 1e-5);
    c.C = tu_meta_int(&st, "C", 0);
    if (!strcmp(op, "groupnorm")) {
        c.op = OP_GN;
        c.B = tu_meta_int(&st, "B", 0), c.HW = tu_meta_int(&st, "HW", 0), c.G = tu_meta_int(&st, "G", 0);
    } else if (!strcmp(op, "layernorm")) {
        c.op = OP_LN;
        c.B = tu_meta_int(&st, "N", 0);
    } else if (!strcmp(op, "layernorm_cm")) {
        c.op = OP_LNCM;
        c.B = tu_meta_int(&st, "B", 0), c.HW = tu_meta_int(&st, "L", 0);
    } else {
        tu_check(0, "%s: unknown op '%s'", name, op);
        fsd_st_close(&st);
        return;
    }
    size_t n = 0, nst = 0;
    c.x = tu_get(&st, "x", &n);
    c.w = tu_get(&st, "weight", NULL);
    c.b = tu_get(&st, "bias", NULL);
    float *y_ref = tu_get(&st, "y", NULL), *dy = tu_get(&st, "dy", NULL), *dx_ref = tu_get(&st, "dx", NULL);
    float *dw_ref = tu_get(&st, "dweight", NULL), *db_ref = tu_get(&st, "dbias", NULL);
    float *mean_ref = tu_get(&st, "mean", &nst), *rstd_ref = tu_get(&st, "rstd", NULL);
    if (!c.x || !c.w || !c.b || !y_ref || !dy || !dx_ref || !dw_ref || !db_ref || !mean_ref || !rstd_ref ||
        !tu_check(n == nc_numel(&c) && nst == nc_nstat(&c), "%s: tensor sizes match the metadata", name))
        goto done;

    float *y = tu_zeros(n), *mean = tu_zeros(nst), *rstd = tu_zeros(nst);
    size_t mark = ws->used;
    tu_check(nc_forward(&c, y, mean, rstd) == FSD_OK, "%s: forward runs", name);
    char what[256];
    snprintf(what, sizeof what, "%s %s: y", name, op);
    tu_check_close(what, y, y_ref, n, TOL_FWD);
    snprintf(what, sizeof what, "%s: saved mean", name);
    tu_check_close(what, mean, mean_ref, nst, TOL_FWD);
    snprintf(what, sizeof what, "%s: saved rstd", name);
    tu_check_close(what, rstd, rstd_ref, nst, TOL_FWD);

    /* backward from our own saved statistics, accumulating onto ACC0 */
    float *dx = filled(n, ACC0), *dw = filled((size_t)c.C, ACC0), *db = filled((size_t)c.C, ACC0);
    tu_check(nc_backward(&c, dx, dw, db, dy, mean, rstd, ws) == FSD_OK, "%s: backward runs", name);
    tu_check(ws->used == mark, "%s: backward leaves the arena where it found it", name);
    sub_const(dx, n, ACC0), sub_const(dw, (size_t)c.C, ACC0), sub_const(db, (size_t)c.C, ACC0);
    snprintf(what, sizeof what, "%s: dx", name);
    tu_check_close(what, dx, dx_ref, n, TOL_GRAD);
    snprintf(what, sizeof what, "%s: dweight", name);
    tu_check_close(what, dw, dw_ref, (size_t)c.C, TOL_GRAD);
    snprintf(what, sizeof what, "%s: dbias", name);
    tu_check_close(what, db, db_ref, (size_t)c.C, TOL_GRAD);

    /* NULL parameter gradients skip them without changing dx (same code path for dx) */
    float *dx2 = tu_zeros(n), *dx3 = tu_zeros(n);
    nc_backward(&c, dx2, NULL, NULL, dy, mean, rstd, NULL);
    nc_backward(&c, dx3, dw, db, dy, mean, rstd, NULL);
    tu_check(memcmp(dx2, dx3, n * sizeof(float)) == 0, "%s: dx identical with and without dweight/dbias", name);
    /* parameter gradients alone (dx NULL) equal the ones computed together with dx */
    float *dw2 = tu_zeros((size_t)c.C), *db2 = tu_zeros((size_t)c.C), *dw3 = tu_zeros((size_t)c.C),
          *db3 = tu_zeros((size_t)c.C);
    nc_backward(&c, NULL, dw2, db2, dy, mean, rstd, ws);
    nc_backward(&c, dx2, dw3, db3, dy, mean, rstd, ws);
    tu_check(!memcmp(dw2, dw3, (size_t)c.C * 4) && !memcmp(db2, db3, (size_t)c.C * 4),
             "%s: dweight/dbias identical with dx NULL", name);

    /* forward without saved statistics (inference) gives the same y */
    float *y2 = tu_zeros(n);
    nc_forward(&c, y2, NULL, NULL);
    tu_check(memcmp(y, y2, n * sizeof(float)) == 0, "%s: forward with mean/rstd NULL gives the same y", name);
    /* in place: y == x */
    float *xin = tu_zeros(n);
    memcpy(xin, c.x, n * sizeof(float));
    float *xsave = c.x;
    c.x = xin;
    nc_forward(&c, xin, NULL, NULL);
    c.x = xsave;
    tu_check(memcmp(y, xin, n * sizeof(float)) == 0, "%s: in-place forward (y == x) gives the same y", name);

    fsd_free(y), fsd_free(mean), fsd_free(rstd), fsd_free(dx), fsd_free(dw), fsd_free(db), fsd_free(dx2);
    fsd_free(dx3), fsd_free(dw2), fsd_free(db2), fsd_free(dw3), fsd_free(db3), fsd_free(y2), fsd_free(xin);
done:
    fsd_free(c.x), fsd_free(c.w), fsd_free(c.b), fsd_free(y_ref), fsd_free(dy), fsd_free(dx_ref);
    fsd_free(dw_ref), fsd_free(db_ref), fsd_free(mean_ref), fsd_free(rstd_ref);
    fsd_st_close(&st);
}

/* ---------------------------------------------------------------- finite differences */
typedef struct fdctx {
    normcase *c;
    const float *dy;
    float *y;
} fdctx;

static double fd_loss(void *p) {
    fdctx *f = p;
    nc_forward(f->c, f->y, NULL, NULL);
    double s = 0.0;
    size_t n = nc_numel(f->c);
    for (size_t i = 0; i < n; i++) s += (double)f->dy[i] * f->y[i];
    return s;
}

static void fd_case(const char *label, int op, int B, int C, int HW, int G, float eps, uint64_t seed) {
    normcase c = {op, B, C, HW, G, eps, NULL, NULL, NULL};
    size_t n = nc_numel(&c), nst = nc_nstat(&c);
    c.x = tu_zeros(n), c.w = tu_zeros((size_t)C), c.b = tu_zeros((size_t)C);
    float *dy = tu_zeros(n), *y = tu_zeros(n), *mean = tu_zeros(nst), *rstd = tu_zeros(nst);
    tu_fill_uniform(c.x, n, seed, 1.5f);
    tu_fill_uniform(c.w, (size_t)C, seed + 1, 1.0f);
    for (int i = 0; i < C; i++) c.w[i] += 1.0f;
    tu_fill_uniform(c.b, (size_t)C, seed + 2, 0.5f);
    tu_fill_uniform(dy, n, seed + 3, 1.0f);
    float *dx = tu_zeros(n), *dw = tu_zeros((size_t)C), *db = tu_zeros((size_t)C);
    nc_forward(&c, y, mean, rstd);
    nc_backward(&c, dx, dw, db, dy, mean, rstd, NULL);
    fdctx f = {&c, dy, y};
    char what[128];
    snprintf(what, sizeof what, "%s dx", label);
    tu_fd_check(what, fd_loss, &f, c.x, dx, n, 24, 1e-2, 2e-3, 1e-2);
    snprintf(what, sizeof what, "%s dweight", label);
    tu_fd_check(what, fd_loss, &f, c.w, dw, (size_t)C, C, 1e-2, 2e-3, 1e-2);
    snprintf(what, sizeof what, "%s dbias", label);
    tu_fd_check(what, fd_loss, &f, c.b, db, (size_t)C, C, 1e-2, 2e-3, 1e-2);
    fsd_free(c.x), fsd_free(c.w), fsd_free(c.b), fsd_free(dy), fsd_free(y), fsd_free(mean), fsd_free(rstd);
    fsd_free(dx), fsd_free(dw), fsd_free(db);
}

/* ---------------------------------------------------------------- other properties */

/* Parameter gradients are reduced in a fixed order: 1 and 2 threads give identical bits. */
static void thread_independence(void) {
    normcase cs[3] = {{OP_GN, 2, 64, 1024, 32, 1e-5f, 0, 0, 0},
                      {OP_LN, 700, 96, 0, 0, 1e-5f, 0, 0, 0},
                      {OP_LNCM, 2, 9, 5000, 0, 1e-5f, 0, 0, 0}};
    const char *names[3] = {"groupnorm", "layernorm", "layernorm_cm"};
    for (int k = 0; k < 3; k++) {
        normcase *c = &cs[k];
        size_t n = nc_numel(c), nst = nc_nstat(c);
        c->x = tu_zeros(n), c->w = tu_zeros((size_t)c->C), c->b = tu_zeros((size_t)c->C);
        float *dy = tu_zeros(n), *y[2], *dx[2], *dw[2], *db[2], *mean = tu_zeros(nst), *rstd = tu_zeros(nst);
        tu_fill_uniform(c->x, n, 7, 2.0f);
        tu_fill_uniform(c->w, (size_t)c->C, 8, 1.0f);
        tu_fill_uniform(c->b, (size_t)c->C, 9, 1.0f);
        tu_fill_uniform(dy, n, 10, 1.0f);
        for (int t = 0; t < 2; t++) {
            fsd_set_threads(t + 1);
            y[t] = tu_zeros(n), dx[t] = tu_zeros(n), dw[t] = tu_zeros((size_t)c->C), db[t] = tu_zeros((size_t)c->C);
            nc_forward(c, y[t], mean, rstd);
            nc_backward(c, dx[t], dw[t], db[t], dy, mean, rstd, NULL);
        }
        fsd_set_threads(2);
        int same = !memcmp(y[0], y[1], n * 4) && !memcmp(dx[0], dx[1], n * 4) &&
                   !memcmp(dw[0], dw[1], (size_t)c->C * 4) && !memcmp(db[0], db[1], (size_t)c->C * 4);
        tu_check(same, "%s: 1 and 2 threads give bit-identical y, dx, dweight, dbias (%zu elements)", names[k], n);
        for (int t = 0; t < 2; t++) fsd_free(y[t]), fsd_free(dx[t]), fsd_free(dw[t]), fsd_free(db[t]);
        fsd_free(c->x), fsd_free(c->w), fsd_free(c->b), fsd_free(dy), fsd_free(mean), fsd_free(rstd);
    }
}

/* weight/bias NULL = identity affine */
static void no_affine(void) {
    const int B = 2, C = 6, HW = 5, G = 3;
    const size_t n = (size_t)B * C * HW;
    float *x = tu_zeros(n), *ones = filled(C, 1.0f), *zeros = tu_zeros(C), *y1 = tu_zeros(n), *y2 = tu_zeros(n);
    float m[8], r[8];
    tu_fill_uniform(x, n, 3, 1.0f);
    fsd_groupnorm_forward(y1, m, r, x, NULL, NULL, B, C, HW, G, 1e-5f);
    fsd_groupnorm_forward(y2, m, r, x, ones, zeros, B, C, HW, G, 1e-5f);
    tu_check(tu_rel_err(y1, y2, n) == 0.0, "groupnorm: weight/bias NULL equals ones/zeros");
    fsd_layernorm_forward(y1, NULL, NULL, x, NULL, NULL, B * HW, C, 1e-5f);
    fsd_layernorm_forward(y2, NULL, NULL, x, ones, zeros, B * HW, C, 1e-5f);
    tu_check(tu_rel_err(y1, y2, n) == 0.0, "layernorm: weight/bias NULL equals ones/zeros");
    fsd_layernorm_cm_forward(y1, NULL, NULL, x, NULL, NULL, B, C, HW, 1e-5f);
    fsd_layernorm_cm_forward(y2, NULL, NULL, x, ones, zeros, B, C, HW, 1e-5f);
    tu_check(tu_rel_err(y1, y2, n) == 0.0, "layernorm_cm: weight/bias NULL equals ones/zeros");
    /* a constant group normalises to 0 (var 0 -> rstd = 1/sqrt(eps), no NaN) */
    for (size_t i = 0; i < n; i++) x[i] = 3.0f;
    fsd_groupnorm_forward(y1, m, r, x, NULL, NULL, B, C, HW, G, 1e-5f);
    int zero = 1;
    for (size_t i = 0; i < n; i++) zero &= y1[i] == 0.0f;
    tu_check(zero && fabsf(r[0] - 1.0f / sqrtf(1e-5f)) < 1.0f, "groupnorm: constant input gives y = 0, finite rstd");
    fsd_free(x), fsd_free(ones), fsd_free(zeros), fsd_free(y1), fsd_free(y2);
}

static void bad_arguments(void) {
    float x[12] = {0}, y[12], m[4], r[4];
    tu_check(fsd_groupnorm_forward(y, m, r, x, NULL, NULL, 1, 6, 2, 4, 1e-5f) == FSD_ERR_INVALID &&
                 strstr(fsd_error_message(), "groupnorm_forward") != NULL,
             "groupnorm: C %% G != 0 rejected with a message (%s)", fsd_error_message());
    tu_check(fsd_groupnorm_backward(y, NULL, NULL, x, x, m, r, NULL, 1, 6, 2, 0, NULL) == FSD_ERR_INVALID,
             "groupnorm_backward: G = 0 rejected");
    tu_check(fsd_layernorm_forward(y, m, r, x, NULL, NULL, 0, 3, 1e-5f) == FSD_ERR_INVALID, "layernorm: N = 0 rejected");
    tu_check(fsd_layernorm_cm_forward(y, m, r, x, NULL, NULL, 1, -3, 4, 1e-5f) == FSD_ERR_INVALID,
             "layernorm_cm: negative C rejected");
    tu_check(fsd_layernorm_backward(y, NULL, NULL, x, x, NULL, r, NULL, 3, 4, NULL) == FSD_ERR_INVALID,
             "layernorm_backward: missing saved mean rejected");
    /* an exhausted arena is reported, not crashed on */
    fsd_arena tiny;
    fsd_arena_init(&tiny, 64);
    tiny.used = 64;
    float w[6] = {1, 1, 1, 1, 1, 1};
    tu_check(fsd_groupnorm_backward(y, w, w, x, x, m, r, NULL, 2, 6, 1, 3, &tiny) == FSD_ERR_NOMEM,
             "groupnorm_backward: exhausted arena -> FSD_ERR_NOMEM (%s)", fsd_error_message());
    fsd_arena_free(&tiny);
}

int main(void) {
    fsd_set_threads(2);
    fsd_arena ws;
    if (fsd_arena_init(&ws, 16u << 20) != FSD_OK) return 1;
    char **paths = NULL;
    int n = tu_list_cases("norm", &paths);
    tu_check(n >= 12, "found %d reference cases in %s/norm", n, tu_ref_dir());
    for (int i = 0; i < n; i++) run_reference_case(paths[i], &ws);
    tu_free_list(paths, n);

    fd_case("fd groupnorm B2 C4 HW3 G2", OP_GN, 2, 4, 3, 2, 1e-5f, 11);
    fd_case("fd groupnorm B1 C6 HW5 G3 eps1e-6", OP_GN, 1, 6, 5, 3, 1e-6f, 12);
    fd_case("fd layernorm N3 C5", OP_LN, 3, 5, 0, 0, 1e-5f, 13);
    fd_case("fd layernorm_cm B2 C3 L4", OP_LNCM, 2, 3, 4, 0, 1e-5f, 14);
    fd_case("fd layernorm_cm B1 C9 L7", OP_LNCM, 1, 9, 7, 0, 1e-5f, 15);

    thread_independence();
    no_affine();
    bad_arguments();
    fsd_arena_free(&ws);
    return tu_summary();
}
