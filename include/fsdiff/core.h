/* fsdiff core: status codes and error messages, arena memory, threads, counter-based RNG,
 * logging and progress bars, and a small float32 tensor descriptor.
 * Nothing in the library calls exit(): every fallible function returns an fsd_status and
 * leaves a one-line message in a thread-local buffer (fsd_error_message()). */
#ifndef FSDIFF_CORE_H
#define FSDIFF_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FSD_VERSION_STRING "0.1.0"

/* ---------------------------------------------------------------- errors */
typedef enum fsd_status {
    FSD_OK = 0,
    FSD_ERR_IO = 1,       /* file missing, unreadable, unwritable */
    FSD_ERR_FORMAT = 2,   /* malformed file contents */
    FSD_ERR_INVALID = 3,  /* bad argument / shape / value */
    FSD_ERR_NOMEM = 4,    /* allocation failed or would exceed a limit */
    FSD_ERR_UNSUPPORTED = 5,
    FSD_ERR_INTERNAL = 6
} fsd_status;

/* Set the thread-local error message (printf-style) and return `code`, so callers can write
 *   return fsd_fail(FSD_ERR_FORMAT, "%s: bad header", path); */
fsd_status fsd_fail(fsd_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
const char *fsd_error_message(void);  /* last message of this thread ("" if none) */
void fsd_clear_error(void);
const char *fsd_status_name(fsd_status s);

/* ---------------------------------------------------------------- memory */
/* malloc wrappers: 64-byte aligned, zero-size safe; NULL on failure (message set). */
void *fsd_alloc(size_t bytes);
void *fsd_calloc(size_t count, size_t size);
void fsd_free(void *p);

/* Arena: one big block, bump allocation, 64-byte aligned. A forward+backward pass takes all
 * its scratch from an arena and resets it, so the hot loop never calls malloc. */
typedef struct fsd_arena {
    unsigned char *base;
    size_t cap;   /* bytes */
    size_t used;  /* bytes */
    size_t peak;  /* high-water mark, for memory reports */
} fsd_arena;

fsd_status fsd_arena_init(fsd_arena *a, size_t cap_bytes);
void fsd_arena_free(fsd_arena *a);
/* NULL (with message) if the arena is exhausted. */
void *fsd_arena_alloc(fsd_arena *a, size_t bytes);
float *fsd_arena_floats(fsd_arena *a, size_t n);
static inline size_t fsd_arena_mark(const fsd_arena *a) { return a->used; }
static inline void fsd_arena_reset(fsd_arena *a, size_t mark) { a->used = mark; }

/* ---------------------------------------------------------------- threads */
/* Sets OpenMP and BLAS thread counts. n <= 0 means all available cores. */
void fsd_set_threads(int n);
int fsd_get_threads(void);
/* Once per process, before the first BLAS product: when OpenBLAS (DYNAMIC_ARCH) did not recognise the
 * CPU and fell back to kernels narrower than the CPU runs (e.g. SSE3 "Prescott" on a new AVX-512 Xeon,
 * 5x slower sgemm), re-picks its AVX-512 or AVX2 kernels. No-op when OPENBLAS_CORETYPE is set or for other
 * BLAS builds. Called by fsd_set_threads and fsd_net_create; thread-safe. */
void fsd_blas_init(void);
/* "" when fsd_blas_init changed nothing, else one line saying what it switched (for --version / logs). */
const char *fsd_blas_kernel_note(void);
/* OpenBLAS's name for the kernel set in use after fsd_blas_init ("SkylakeX", "Haswell", ...); "" otherwise. */
const char *fsd_blas_core_name(void);
/* 1 when the BLAS gives the same floats for a product however it is split (over threads or column
 * blocks), probed once with a small sgemm; then the network's forward, and so fsdiff fuse, is
 * bit-identical whatever the thread count. 0 otherwise (e.g. OpenBLAS's AVX2 kernels): results are
 * still bit-identical for the same thread count. */
int fsd_blas_split_invariant(void);
/* Build facts: SIMD level, BLAS library and its config, whether its results depend on the thread
 * count, OpenMP version. */
const char *fsd_build_info(void);
double fsd_time_seconds(void); /* monotonic clock */

/* ---------------------------------------------------------------- rng */
/* Counter-based RNG (Philox4x32-10). A value is a pure function of (seed, stream, index), so
 * a tensor filled in parallel is bit-identical whatever the thread count. */
typedef struct fsd_rng {
    uint64_t seed;
    uint64_t stream; /* e.g. the sampling step; distinct streams are independent */
} fsd_rng;

void fsd_philox4x32(uint64_t key, uint64_t ctr_hi, uint64_t ctr_lo, uint32_t out[4]);
/* out[i] = uniform in [0,1) for element (offset + i) of the stream. */
void fsd_rng_uniform(const fsd_rng *r, uint64_t offset, float *out, size_t n);
/* out[i] = standard normal (Box-Muller on philox pairs) for element (offset + i). */
void fsd_rng_normal(const fsd_rng *r, uint64_t offset, float *out, size_t n);
/* Scalar draws for control flow (crop positions, scales): element `index` of the stream. */
double fsd_rng_uniform1(const fsd_rng *r, uint64_t index);
uint32_t fsd_rng_u32(const fsd_rng *r, uint64_t index);

/* ---------------------------------------------------------------- logging */
typedef enum { FSD_LOG_ERROR = 0, FSD_LOG_WARN = 1, FSD_LOG_INFO = 2, FSD_LOG_DEBUG = 3 } fsd_log_level;
void fsd_set_log_level(fsd_log_level lvl);
fsd_log_level fsd_get_log_level(void);
void fsd_log(fsd_log_level lvl, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Progress bar on stderr: "label  42% |#####     | 42/100 [00:03<00:04, 12.3 it/s] extra".
 * Silent when stderr is not a TTY or when quiet is set; redraws at most 10 times a second. */
typedef struct fsd_progress {
    const char *label;
    int64_t total;
    int64_t done;
    double t0, last_draw;
    int enabled;
} fsd_progress;

void fsd_progress_set_quiet(int quiet); /* global switch (e.g. --quiet, --json) */
void fsd_progress_begin(fsd_progress *p, const char *label, int64_t total);
void fsd_progress_update(fsd_progress *p, int64_t done, const char *extra);
void fsd_progress_end(fsd_progress *p);
/* Formats "[mm:ss<mm:ss, r it/s]" for `done` of `total` after `elapsed` seconds. Exposed for tests. */
void fsd_progress_format(char *buf, size_t n, const char *label, int64_t done, int64_t total,
                         double elapsed, const char *extra);

/* ---------------------------------------------------------------- tensor */
/* A float32 tensor view, row-major (NCHW for images). Does not own its data unless `owned`. */
#define FSD_MAX_DIMS 4
typedef struct fsd_tensor {
    float *data;
    int ndim;
    int64_t shape[FSD_MAX_DIMS];
    int owned;
} fsd_tensor;

int64_t fsd_tensor_numel(const fsd_tensor *t);
fsd_status fsd_tensor_alloc(fsd_tensor *t, int ndim, const int64_t *shape); /* zeroed */
fsd_tensor fsd_tensor_view(float *data, int ndim, const int64_t *shape);
void fsd_tensor_free(fsd_tensor *t);
/* Human-readable "[2, 3, 4]" into buf. */
const char *fsd_shape_str(int ndim, const int64_t *shape, char *buf, size_t n);

/* ---------------------------------------------------------------- files */
/* Write `n` bytes to `path` atomically: a temp file in the same directory, fsync, rename.
 * On failure the temp file is removed and `path` is untouched. */
fsd_status fsd_write_file_atomic(const char *path, const void *data, size_t n);
/* Open a temp file beside `final_path` for streaming writes; commit renames it into place. */
typedef struct fsd_atomic_file {
    FILE *fp;
    char tmp_path[4096];
    char final_path[4096];
} fsd_atomic_file;
fsd_status fsd_atomic_open(fsd_atomic_file *f, const char *final_path);
fsd_status fsd_atomic_commit(fsd_atomic_file *f); /* fflush+fsync+close+rename */
void fsd_atomic_abort(fsd_atomic_file *f);        /* close and unlink temp */
/* Read a whole file into a malloc'd buffer (fsd_free it). */
fsd_status fsd_read_file(const char *path, unsigned char **data, size_t *n);

#ifdef __cplusplus
}
#endif
#endif
