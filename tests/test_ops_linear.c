/* Linear layer, SR3 noise-level embedding, L1 / MSE losses against PyTorch (tests/ref/ref_linear.py,
 * float64 autograd), plus finite differences, accumulation / NULL-gradient semantics, thread-count
 * independence of the loss and of db, and argument validation.
 * Tolerances (rel_err of testutil.h): forward <= 1e-4 (losses: relative |got - ref| / |ref| <= 1e-6,
 * they are summed in double); every gradient <= 1e-3; finite differences (h = 1e-2):
 * |fd - analytic| <= 1e-3 + 1e-2 max|analytic|. */
#include "fsdiff/ops_linear.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL_FWD 1e-4
#define TOL_GRAD 1e-3
#define ACC0 0.125f

static void add_const(float *p, size_t n, float v) {
    for (size_t i = 0; i < n; i++) p[i] += v;
}

static const char *base(const char *p) { return strrchr(p, '/') ? strrchr(p, '/') + 1 : p; }

/* ---------------------------------------------------------------- linear */
static void linear_case(const char *path, fsd_arena *ws) {
    fsd_safetensors st;
    if (fsd_st_open(&st, path) != FSD_OK) {
        tu_check(0, "open %s: %s", path, fsd_error_message());
        return;
    }
    const char *name = base(path);
    int N = tu_meta_int(&st, "N", 0), in = tu_meta_int(&st, "in", 0), out = tu_meta_int(&st, "out", 0);
    int has_b = tu_meta_int(&st, "bias", 0);
    float *x = tu_get(&st, "x", NULL), *W = tu_get(&st, "W", NULL), *yref = tu_get(&st, "y", NULL);
    float *dy = tu_get(&st, "dy", NULL), *dxref = tu_get(&st, "dx", NULL), *dWref = tu_get(&st, "dW", NULL);
    float *b = has_b ? tu_get(&st, "b", NULL) : NULL, *dbref = has_b ? tu_get(&st, "db", NULL) : NULL;
    if (!x || !W || !yref || !dy || !dxref || !dWref || (has_b && (!b || !dbref))) goto done;
    size_t nx = (size_t)N * in, nw = (size_t)out * in, ny = (size_t)N * out;
    float *y = tu_zeros(ny), *dx = tu_zeros(nx), *dW = tu_zeros(nw), *db = tu_zeros((size_t)out);
    for (size_t i = 0; i < ny; i++) y[i] = 1e30f; /* forward must overwrite, not accumulate */
    tu_check(fsd_linear_forward(y, x, W, b, N, in, out) == FSD_OK, "%s: forward runs", name);
    char what[256];
    snprintf(what, sizeof what, "%s: y", name);
    tu_check_close(what, y, yref, ny, TOL_FWD);
    add_const(dx, nx, ACC0), add_const(dW, nw, ACC0), add_const(db, (size_t)out, ACC0);
    size_t mark = ws->used;
    tu_check(fsd_linear_backward(dx, dW, has_b ? db : NULL, dy, x, W, N, in, out, ws) == FSD_OK,
             "%s: backward runs", name);
    tu_check(ws->used == mark, "%s: backward leaves the arena where it found it", name);
    add_const(dx, nx, -ACC0), add_const(dW, nw, -ACC0), add_const(db, (size_t)out, -ACC0);
    snprintf(what, sizeof what, "%s: dx", name);
    tu_check_close(what, dx, dxref, nx, TOL_GRAD);
    snprintf(what, sizeof what, "%s: dW", name);
    tu_check_close(what, dW, dWref, nw, TOL_GRAD);
    if (has_b) {
        snprintf(what, sizeof what, "%s: db", name);
        tu_check_close(what, db, dbref, (size_t)out, TOL_GRAD);
    } else {
        int untouched = 1;
        for (int j = 0; j < out; j++) untouched &= db[j] == 0.0f;
        tu_check(untouched, "%s: db NULL skipped", name);
    }
    fsd_free(y), fsd_free(dx), fsd_free(dW), fsd_free(db);
done:
    fsd_free(x), fsd_free(W), fsd_free(b), fsd_free(yref), fsd_free(dy), fsd_free(dxref), fsd_free(dWref);
    fsd_free(dbref);
    fsd_st_close(&st);
}

/* ---------------------------------------------------------------- noise embedding */
static void embed_case(const char *path) {
    fsd_safetensors st;
    if (fsd_st_open(&st, path) != FSD_OK) {
        tu_check(0, "open %s: %s", path, fsd_error_message());
        return;
    }
    const char *name = base(path);
    int B = tu_meta_int(&st, "B", 0), C = tu_meta_int(&st, "C", 0);
    float *g = tu_get(&st, "gamma", NULL), *yref = tu_get(&st, "y", NULL), *dy = tu_get(&st, "dy", NULL),
          *dgref = tu_get(&st, "dgamma", NULL);
    if (!g || !yref || !dy || !dgref) goto done;
    float *y = tu_zeros((size_t)B * C), *dg = tu_zeros((size_t)B);
    tu_check(fsd_noise_embedding_forward(y, g, B, C) == FSD_OK, "%s: forward runs", name);
    char what[256];
    snprintf(what, sizeof what, "%s: y (sines first)", name);
    tu_check_close(what, y, yref, (size_t)B * C, TOL_FWD);
    add_const(dg, (size_t)B, ACC0);
    fsd_noise_embedding_backward(dg, dy, g, B, C);
    add_const(dg, (size_t)B, -ACC0);
    snprintf(what, sizeof what, "%s: dgamma", name);
    tu_check_close(what, dg, dgref, (size_t)B, TOL_GRAD);
    fsd_free(y), fsd_free(dg);
done:
    fsd_free(g), fsd_free(yref), fsd_free(dy), fsd_free(dgref);
    fsd_st_close(&st);
}

/* ---------------------------------------------------------------- losses */
static void loss_case(const char *path) {
    fsd_safetensors st;
    if (fsd_st_open(&st, path) != FSD_OK) {
        tu_check(0, "open %s: %s", path, fsd_error_message());
        return;
    }
    const char *name = base(path);
    const char *op = tu_meta_str(&st, "op", "?");
    int l1 = !strcmp(op, "l1");
    size_t n = 0;
    float *p = tu_get(&st, "pred", &n), *t = tu_get(&st, "target", NULL), *yref = tu_get(&st, "y", NULL),
          *dy = tu_get(&st, "dy", NULL), *dpref = tu_get(&st, "dpred", NULL), *dtref = tu_get(&st, "dtarget", NULL);
    if (!p || !t || !yref || !dy || !dpref || !dtref) goto done;
    double L = l1 ? fsd_l1_loss_forward(p, t, n) : fsd_mse_loss_forward(p, t, n);
    double e = fabs(L - yref[0]) / fabs(yref[0]);
    tu_check(e <= 1e-6, "%s %s: loss %.9g vs torch %.9g (rel %.3g <= 1e-6)", name, op, L, (double)yref[0], e);
    float *dp = tu_zeros(n), *dt = tu_zeros(n);
    add_const(dp, n, ACC0), add_const(dt, n, ACC0);
    if (l1) fsd_l1_loss_backward(dp, dt, p, t, n, dy[0]);
    else fsd_mse_loss_backward(dp, dt, p, t, n, dy[0]);
    add_const(dp, n, -ACC0), add_const(dt, n, -ACC0);
    char what[256];
    snprintf(what, sizeof what, "%s: dpred", name);
    tu_check_close(what, dp, dpref, n, TOL_GRAD);
    snprintf(what, sizeof what, "%s: dtarget", name);
    tu_check_close(what, dt, dtref, n, TOL_GRAD);
    if (l1) { /* ties get exactly zero gradient */
        int zero = 1, ties = 0;
        float *z = tu_zeros(n);
        fsd_l1_loss_backward(z, NULL, p, t, n, 1.0f);
        for (size_t i = 0; i < n; i++)
            if (p[i] == t[i]) ties++, zero &= z[i] == 0.0f;
        tu_check(ties > 0 && zero, "%s: %d exact ties get gradient 0 (dtarget NULL skipped)", name, ties);
        fsd_free(z);
    }
    fsd_free(dp), fsd_free(dt);
done:
    fsd_free(p), fsd_free(t), fsd_free(yref), fsd_free(dy), fsd_free(dpref), fsd_free(dtref);
    fsd_st_close(&st);
}

/* ---------------------------------------------------------------- finite differences */
typedef struct fdlin {
    float *x, *W, *b, *y;
    const float *dy;
    int N, in, out;
} fdlin;

static double fd_linear_loss(void *p) {
    fdlin *c = p;
    fsd_linear_forward(c->y, c->x, c->W, c->b, c->N, c->in, c->out);
    double s = 0.0;
    for (size_t i = 0; i < (size_t)c->N * c->out; i++) s += (double)c->dy[i] * c->y[i];
    return s;
}

typedef struct fdemb {
    float *g, *y;
    const float *dy;
    int B, C;
} fdemb;

static double fd_emb_loss(void *p) {
    fdemb *c = p;
    fsd_noise_embedding_forward(c->y, c->g, c->B, c->C);
    double s = 0.0;
    for (int i = 0; i < c->B * c->C; i++) s += (double)c->dy[i] * c->y[i];
    return s;
}

typedef struct fdloss {
    float *p, *t;
    size_t n;
    int l1;
} fdloss;

static double fd_loss_loss(void *q) {
    fdloss *c = q;
    return c->l1 ? fsd_l1_loss_forward(c->p, c->t, c->n) : fsd_mse_loss_forward(c->p, c->t, c->n);
}

static void fd_checks(void) {
    { /* linear N 3, in 4, out 5 */
        fdlin c = {0};
        c.N = 3, c.in = 4, c.out = 5;
        size_t nx = 12, nw = 20, ny = 15;
        c.x = tu_zeros(nx), c.W = tu_zeros(nw), c.b = tu_zeros(5), c.y = tu_zeros(ny);
        float *dy = tu_zeros(ny), *dx = tu_zeros(nx), *dW = tu_zeros(nw), *db = tu_zeros(5);
        tu_fill_uniform(c.x, nx, 1, 1.0f), tu_fill_uniform(c.W, nw, 2, 1.0f), tu_fill_uniform(c.b, 5, 3, 1.0f);
        tu_fill_uniform(dy, ny, 4, 1.0f);
        c.dy = dy;
        fsd_linear_backward(dx, dW, db, dy, c.x, c.W, 3, 4, 5, NULL);
        tu_fd_check("fd linear dx", fd_linear_loss, &c, c.x, dx, nx, (int)nx, 1e-2, 1e-3, 1e-2);
        tu_fd_check("fd linear dW", fd_linear_loss, &c, c.W, dW, nw, (int)nw, 1e-2, 1e-3, 1e-2);
        tu_fd_check("fd linear db", fd_linear_loss, &c, c.b, db, 5, 5, 1e-2, 1e-3, 1e-2);
        fsd_free(c.x), fsd_free(c.W), fsd_free(c.b), fsd_free(c.y), fsd_free(dy), fsd_free(dx), fsd_free(dW);
        fsd_free(db);
    }
    { /* embedding B 3, C 8 */
        fdemb c = {0};
        c.B = 3, c.C = 8;
        c.g = tu_zeros(3), c.y = tu_zeros(24);
        float *dy = tu_zeros(24), *dg = tu_zeros(3);
        tu_fill_uniform(c.g, 3, 5, 1.0f), tu_fill_uniform(dy, 24, 6, 1.0f);
        c.dy = dy;
        fsd_noise_embedding_backward(dg, dy, c.g, 3, 8);
        tu_fd_check("fd noise_embedding dgamma", fd_emb_loss, &c, c.g, dg, 3, 3, 1e-2, 1e-3, 1e-2);
        fsd_free(c.g), fsd_free(c.y), fsd_free(dy), fsd_free(dg);
    }
    for (int l1 = 0; l1 < 2; l1++) { /* losses, n 30 (L1 probes stay away from kinks: |p - t| >= 0.1) */
        fdloss c = {0};
        c.n = 30, c.l1 = l1;
        c.p = tu_zeros(30), c.t = tu_zeros(30);
        float *dp = tu_zeros(30), *dt = tu_zeros(30);
        tu_fill_uniform(c.p, 30, 7, 1.0f);
        for (int i = 0; i < 30; i++) c.t[i] = c.p[i] + (i % 2 ? 0.3f : -0.2f) * (1 + i % 3);
        if (l1) fsd_l1_loss_backward(dp, dt, c.p, c.t, 30, 1.0f);
        else fsd_mse_loss_backward(dp, dt, c.p, c.t, 30, 1.0f);
        tu_fd_check(l1 ? "fd l1 dpred" : "fd mse dpred", fd_loss_loss, &c, c.p, dp, 30, 30, 1e-2, 1e-4, 1e-2);
        tu_fd_check(l1 ? "fd l1 dtarget" : "fd mse dtarget", fd_loss_loss, &c, c.t, dt, 30, 30, 1e-2, 1e-4, 1e-2);
        fsd_free(c.p), fsd_free(c.t), fsd_free(dp), fsd_free(dt);
    }
}

/* ---------------------------------------------------------------- other properties */
static void threads_and_errors(void) {
    /* loss and db use fixed partitions: 1 and 2 threads give identical bits */
    size_t n = 300001;
    float *p = tu_zeros(n), *t = tu_zeros(n);
    tu_fill_uniform(p, n, 11, 1.0f), tu_fill_uniform(t, n, 12, 1.0f);
    fsd_set_threads(1);
    double a1 = fsd_l1_loss_forward(p, t, n), m1 = fsd_mse_loss_forward(p, t, n);
    fsd_set_threads(2);
    double a2 = fsd_l1_loss_forward(p, t, n), m2 = fsd_mse_loss_forward(p, t, n);
    tu_check(a1 == a2 && m1 == m2, "l1/mse loss bit-identical for 1 and 2 threads (n %zu)", n);
    double exact = 0.0;
    for (size_t i = 0; i < n; i++) exact += fabs((double)p[i] - (double)t[i]);
    exact /= (double)n;
    tu_check(fabs(a2 - exact) / exact < 1e-7, "l1 loss on %zu elements matches a serial double sum (rel %.2g)", n,
             fabs(a2 - exact) / exact);
    const int N = 1000, out = 48;
    float *dy = tu_zeros((size_t)N * out), *db1 = tu_zeros(out), *db2 = tu_zeros(out);
    tu_fill_uniform(dy, (size_t)N * out, 13, 1.0f);
    fsd_set_threads(1);
    fsd_linear_backward(NULL, NULL, db1, dy, NULL, NULL, N, 8, out, NULL);
    fsd_set_threads(2);
    fsd_linear_backward(NULL, NULL, db2, dy, NULL, NULL, N, 8, out, NULL);
    tu_check(!memcmp(db1, db2, out * 4), "linear db bit-identical for 1 and 2 threads");
    /* loss backward is elementwise: the 2-thread split (at an odd index) changes nothing */
    for (int l1 = 0; l1 < 2; l1++) {
        float *g1 = tu_zeros(n), *g2 = tu_zeros(n), *h1 = tu_zeros(n), *h2 = tu_zeros(n);
        if (l1) fsd_l1_loss_backward(g1, h1, p, t, n, 0.7f);
        else fsd_mse_loss_backward(g1, h1, p, t, n, 0.7f);
        fsd_set_threads(1);
        if (l1) fsd_l1_loss_backward(g2, h2, p, t, n, 0.7f);
        else fsd_mse_loss_backward(g2, h2, p, t, n, 0.7f);
        fsd_set_threads(2);
        tu_check(!memcmp(g1, g2, n * 4) && !memcmp(h1, h2, n * 4), "%s loss backward bit-identical for 1 and 2 threads",
                 l1 ? "l1" : "mse");
        fsd_free(g1), fsd_free(g2), fsd_free(h1), fsd_free(h2);
    }
    fsd_free(p), fsd_free(t), fsd_free(dy), fsd_free(db1), fsd_free(db2);

    float x[8] = {0}, y[8];
    tu_check(fsd_linear_forward(y, x, x, NULL, 0, 2, 2) == FSD_ERR_INVALID &&
                 strstr(fsd_error_message(), "linear_forward"),
             "linear: N = 0 rejected with a message (%s)", fsd_error_message());
    tu_check(fsd_linear_backward(y, NULL, NULL, x, x, NULL, 2, 2, 2, NULL) == FSD_ERR_INVALID,
             "linear_backward: dx requested without W rejected");
    tu_check(fsd_noise_embedding_forward(y, x, 1, 7) == FSD_ERR_INVALID, "noise_embedding: odd C rejected (%s)",
             fsd_error_message());
    tu_check(fsd_l1_loss_forward(x, x, 0) == 0.0, "l1 loss of 0 elements is 0 (no division by zero)");
}

int main(void) {
    fsd_set_threads(2);
    fsd_arena ws;
    if (fsd_arena_init(&ws, 16u << 20) != FSD_OK) return 1;
    struct {
        const char *dir;
        int min;
    } dirs[3] = {{"linear/linear", 4}, {"linear/embed", 3}, {"linear/loss", 4}};
    for (int d = 0; d < 3; d++) {
        char **paths = NULL;
        int n = tu_list_cases(dirs[d].dir, &paths);
        tu_check(n >= dirs[d].min, "found %d reference cases in %s/%s", n, tu_ref_dir(), dirs[d].dir);
        for (int i = 0; i < n; i++) {
            if (d == 0) linear_case(paths[i], &ws);
            else if (d == 1) embed_case(paths[i]);
            else loss_case(paths[i]);
        }
        tu_free_list(paths, n);
    }
    fd_checks();
    threads_and_errors();
    fsd_arena_free(&ws);
    return tu_summary();
}
