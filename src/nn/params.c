/* Parameter store: one contiguous buffer, a (name, shape, offset) table, orthogonal init. */
#include "fsdiff/nn.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t fsd_params_add(fsd_params *p, const char *name, fsd_init_kind init, int ndim, int64_t d0, int64_t d1,
                      int64_t d2, int64_t d3) {
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 256;
        fsd_param *t = realloc(p->t, (size_t)cap * sizeof *t);
        if (!t) abort(); /* table of a few thousand entries; construction-time only */
        p->t = t, p->cap = cap;
    }
    fsd_param *e = &p->t[p->n++];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    e->ndim = ndim;
    int64_t d[4] = {d0, d1, d2, d3};
    e->numel = 1;
    for (int i = 0; i < ndim; i++) e->shape[i] = d[i], e->numel *= (size_t)d[i];
    /* 16-float alignment keeps every tensor on its own cache lines */
    e->offset = p->total;
    p->total += (e->numel + 15) / 16 * 16;
    e->init = init;
    return e->offset;
}

const fsd_param *fsd_params_find(const fsd_params *p, const char *name) {
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->t[i].name, name)) return &p->t[i];
    return NULL;
}

/* Orthogonal matrix like torch.nn.init.orthogonal_ (gain 1): rows = shape[0], cols = numel / rows;
 * the shorter side's vectors are orthonormalised (rows if rows < cols, else columns). Classical
 * Gram-Schmidt with one re-orthogonalisation pass (CGS2), in double via BLAS; R's diagonal is
 * positive, which is torch's sign convention (q * sign(diag r)). */
static fsd_status ortho_fill(float *w, size_t rows, size_t cols, uint64_t seed, uint64_t stream) {
    size_t n = rows < cols ? rows : cols, M = rows < cols ? cols : rows;
    float *g = fsd_alloc(rows * cols * sizeof(float));
    double *V = fsd_alloc(n * M * sizeof(double)), *d = fsd_alloc(n * sizeof(double));
    if (!g || !V || !d) {
        fsd_free(g), fsd_free(V), fsd_free(d);
        return FSD_ERR_NOMEM;
    }
    fsd_rng r = {seed, stream};
    fsd_rng_normal(&r, 0, g, rows * cols);
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < cols; j++) {
            double v = g[i * cols + j];
            if (rows < cols) V[i * M + j] = v;
            else V[j * M + i] = v;
        }
    for (size_t i = 0; i < n; i++) {
        double *vi = V + i * M;
        for (int pass = 0; pass < 2 && i > 0; pass++) {
            /* d = V[0:i] vi ; vi -= V[0:i]^T d */
            cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)i, (int)M, 1.0, V, (int)M, vi, 1, 0.0, d, 1);
            cblas_dgemv(CblasRowMajor, CblasTrans, (int)i, (int)M, -1.0, V, (int)M, d, 1, 1.0, vi, 1);
        }
        double nrm = cblas_dnrm2((int)M, vi, 1);
        if (!(nrm > 1e-12)) {
            fsd_free(g), fsd_free(V), fsd_free(d);
            return fsd_fail(FSD_ERR_INTERNAL, "orthogonal init: degenerate random matrix");
        }
        cblas_dscal((int)M, 1.0 / nrm, vi, 1);
    }
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < cols; j++) w[i * cols + j] = (float)(rows < cols ? V[i * M + j] : V[j * M + i]);
    fsd_free(g), fsd_free(V), fsd_free(d);
    return FSD_OK;
}

fsd_status fsd_params_init(fsd_params *p, uint64_t seed) {
    for (int k = 0; k < p->n; k++) {
        const fsd_param *e = &p->t[k];
        float *w = p->data + e->offset;
        switch (e->init) {
        case FSD_INIT_ZERO: memset(w, 0, e->numel * sizeof(float)); break;
        case FSD_INIT_ONE:
            for (size_t i = 0; i < e->numel; i++) w[i] = 1.0f;
            break;
        case FSD_INIT_ALOG: /* A = -[1..N] per channel (S4D-real) */
            for (size_t i = 0; i < e->numel; i++) w[i] = logf((float)(i % (size_t)e->shape[1] + 1));
            break;
        case FSD_INIT_ORTHO: {
            fsd_status s = ortho_fill(w, (size_t)e->shape[0], e->numel / (size_t)e->shape[0], seed, (uint64_t)k);
            if (s) return s;
        } break;
        }
    }
    return FSD_OK;
}
