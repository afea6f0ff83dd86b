/* Aligned allocation and the bump arena used for per-pass scratch memory. */
#include "fsdiff/core.h"

#include <stdlib.h>
#include <string.h>

#define FSD_ALIGN 64

void *fsd_alloc(size_t bytes) {
    size_t n = (bytes + FSD_ALIGN - 1) / FSD_ALIGN * FSD_ALIGN;
    if (n == 0) n = FSD_ALIGN;
    if (n < bytes) { fsd_fail(FSD_ERR_NOMEM, "allocation of %zu bytes overflows", bytes); return NULL; }
    void *p = aligned_alloc(FSD_ALIGN, n);
    if (!p) fsd_fail(FSD_ERR_NOMEM, "out of memory allocating %.1f MiB", bytes / 1048576.0);
    return p;
}

void *fsd_calloc(size_t count, size_t size) {
    if (size && count > SIZE_MAX / size) {
        fsd_fail(FSD_ERR_NOMEM, "allocation of %zu x %zu bytes overflows", count, size);
        return NULL;
    }
    void *p = fsd_alloc(count * size);
    if (p) memset(p, 0, count * size);
    return p;
}

void fsd_free(void *p) { free(p); }

fsd_status fsd_arena_init(fsd_arena *a, size_t cap) {
    memset(a, 0, sizeof *a);
    a->base = fsd_alloc(cap);
    if (!a->base) return FSD_ERR_NOMEM;
    a->cap = cap;
    return FSD_OK;
}

void fsd_arena_free(fsd_arena *a) {
    fsd_free(a->base);
    memset(a, 0, sizeof *a);
}

void *fsd_arena_alloc(fsd_arena *a, size_t bytes) {
    size_t n = (bytes + FSD_ALIGN - 1) / FSD_ALIGN * FSD_ALIGN;
    if (n < bytes || n > a->cap - a->used) {
        fsd_fail(FSD_ERR_NOMEM, "arena exhausted: need %.1f MiB more, %.1f of %.1f MiB used",
                 bytes / 1048576.0, a->used / 1048576.0, a->cap / 1048576.0);
        return NULL;
    }
    void *p = a->base + a->used;
    a->used += n;
    if (a->used > a->peak) a->peak = a->used;
    return p;
}

float *fsd_arena_floats(fsd_arena *a, size_t n) {
    if (n > SIZE_MAX / sizeof(float)) { fsd_fail(FSD_ERR_NOMEM, "arena request overflows"); return NULL; }
    return (float *)fsd_arena_alloc(a, n * sizeof(float));
}
