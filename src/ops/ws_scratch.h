/* Scratch buffers for ops: from the caller's arena (reset to its mark on release), or from the
 * heap when the caller passed no arena (tests, one-off calls). Internal to src/ops. */
#ifndef FSD_OPS_WS_SCRATCH_H
#define FSD_OPS_WS_SCRATCH_H

#include "fsdiff/core.h"

typedef struct fsd_ws_scratch {
    fsd_arena *ws;
    size_t mark;
    void *heap;
} fsd_ws_scratch;

/* n floats (at least 1); NULL with the error message set when out of memory. */
static inline float *fsd_ws_floats(fsd_ws_scratch *s, fsd_arena *ws, size_t n) {
    s->ws = ws;
    s->heap = NULL;
    if (n == 0) n = 1;
    if (ws) {
        s->mark = fsd_arena_mark(ws);
        return fsd_arena_floats(ws, n);
    }
    s->heap = fsd_alloc(n * sizeof(float));
    return (float *)s->heap;
}

static inline void fsd_ws_release(fsd_ws_scratch *s) {
    if (s->ws) fsd_arena_reset(s->ws, s->mark);
    fsd_free(s->heap);
    s->heap = NULL;
}

#endif
