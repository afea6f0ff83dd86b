/* The float32 tensor descriptor. */
#include "fsdiff/core.h"

#include <stdio.h>
#include <string.h>

int64_t fsd_tensor_numel(const fsd_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

fsd_status fsd_tensor_alloc(fsd_tensor *t, int ndim, const int64_t *shape) {
    memset(t, 0, sizeof *t);
    if (ndim < 0 || ndim > FSD_MAX_DIMS) return fsd_fail(FSD_ERR_INVALID, "tensor rank %d not in 0..%d", ndim, FSD_MAX_DIMS);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (shape[i] > 0 && n > INT64_MAX / 4 / shape[i]))
            return fsd_fail(FSD_ERR_INVALID, "tensor dimension %lld is invalid", (long long)shape[i]);
        n *= shape[i];
    }
    t->data = fsd_calloc((size_t)n, sizeof(float));
    if (!t->data) return FSD_ERR_NOMEM;
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof(int64_t));
    t->owned = 1;
    return FSD_OK;
}

fsd_tensor fsd_tensor_view(float *data, int ndim, const int64_t *shape) {
    fsd_tensor t;
    memset(&t, 0, sizeof t);
    t.data = data;
    t.ndim = ndim < 0 ? 0 : ndim > FSD_MAX_DIMS ? FSD_MAX_DIMS : ndim;
    memcpy(t.shape, shape, (size_t)t.ndim * sizeof(int64_t));
    return t;
}

void fsd_tensor_free(fsd_tensor *t) {
    if (t->owned) fsd_free(t->data);
    memset(t, 0, sizeof *t);
}

const char *fsd_shape_str(int ndim, const int64_t *shape, char *buf, size_t n) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, n - k, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}
