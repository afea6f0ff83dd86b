/* Test helpers shared by all C tests: pass/fail counting with a final "N passed, N failed" line,
 * loading reference cases written by the PyTorch twins (tests/ref/), error norms, finite differences.
 *
 * Error measure used for parity (stated once, used everywhere):
 *   rel_err(got, ref) = max_i |got_i - ref_i| / max(max_i |ref_i|, 1e-6)
 * i.e. the max-norm error relative to the max-norm of the reference, robust to near-zero entries. */
#ifndef FSD_TESTUTIL_H
#define FSD_TESTUTIL_H

#include "fsdiff/core.h"
#include "fsdiff/safetensors.h"

#include <stddef.h>

extern int tu_passed, tu_failed;

/* Records one check; prints "ok"/"FAIL" with the name. Returns cond. */
int tu_check(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "N passed, N failed" and returns the process exit code (0 iff none failed). */
int tu_summary(void);

double tu_rel_err(const float *got, const float *ref, size_t n);
/* Checks rel_err <= tol; on failure prints the worst index. */
int tu_check_close(const char *what, const float *got, const float *ref, size_t n, double tol);

/* Reference data directory ($FSD_REF_DIR, default "ref"); data directory ($FSDIFF_DATA, default ../shared/data). */
const char *tu_ref_dir(void);
const char *tu_data_dir(void);

/* Lists files in $FSD_REF_DIR/<subdir> ending in .safetensors, sorted; returns count (0 if none).
 * paths[i] are malloc'd; free with tu_free_list. */
int tu_list_cases(const char *subdir, char ***paths);
void tu_free_list(char **paths, int n);

/* Loads a float32 copy of tensor `name` from a case; aborts the test (counted failure, returns NULL)
 * if absent. *n receives numel. */
float *tu_get(const fsd_safetensors *st, const char *name, size_t *n);
/* Like tu_get but returns NULL silently when absent (optional tensors, e.g. bias). */
float *tu_get_opt(const fsd_safetensors *st, const char *name, size_t *n);
int tu_meta_int(const fsd_safetensors *st, const char *key, int def);
double tu_meta_double(const fsd_safetensors *st, const char *key, double def);
const char *tu_meta_str(const fsd_safetensors *st, const char *key, const char *def);
/* Shape of a tensor in the case (ndim returned, -1 if absent). */
int tu_shape(const fsd_safetensors *st, const char *name, int64_t *shape);

/* Zero-filled float buffer (fsd_free it). */
float *tu_zeros(size_t n);
/* Deterministic pseudo-random fill in [-scale, scale]. */
void tu_fill_uniform(float *x, size_t n, uint64_t seed, float scale);

/* Central finite-difference check of a backward pass.
 * loss(ctx) must return sum_i w_i * f(params)_i in double for a fixed weight vector w (the same
 * dy passed to the backward). For `nprobe` coordinates spread over x[0..n), compares
 *   (loss(x+h e_j) - loss(x-h e_j)) / 2h  with  grad[j].
 * Passes if max |fd - an| <= atol + rtol * max(|an|). Returns 1 on pass. */
typedef double (*tu_loss_fn)(void *ctx);
int tu_fd_check(const char *what, tu_loss_fn loss, void *ctx, float *x, const float *grad, size_t n,
                int nprobe, double h, double atol, double rtol);

#endif
