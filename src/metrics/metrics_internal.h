/* Internal helpers shared by the files of src/metrics (not installed). */
#ifndef FSD_METRICS_INTERNAL_H
#define FSD_METRICS_INTERNAL_H

#include "fsdiff/metrics.h"

#include <stddef.h>

/* Smallest side each metric family needs. */
#define FSDM_MIN_SSIM 11 /* one 11x11 window */
#define FSDM_MIN_VIF 41  /* four scales of 'valid' filtering and 2x subsampling (see vif_sizes_ok) */

/* Validates a metric call: out and imgs[0..n) non-NULL, w, h >= min_side, every value finite.
 * `what` names the metric in the message. */
fsd_status fsdm_check(const char *what, const float *const *imgs, int n, int w, int h, int min_side,
                      const void *out);

/* Newly allocated double copy of x[n] (fsd_free it); NULL with message on failure. */
double *fsdm_to_double(const float *x, size_t n);

/* Adds rows[0..n) in index order: with per-row partial sums written by parallel loops, totals do not
 * depend on the thread count. */
double fsdm_sum(const double *rows, int n);

/* SSIM(d, refs[k]) for k < nref into out[k]; d and refs: [h*w] doubles, w, h >= 11. */
fsd_status fsdm_ssim_multi(const double *d, const double *const *refs, int nref, int w, int h, double *out);
/* VIFp(refs[k], d) (refs[k] the reference, d the distorted image) into out[k]; w, h >= 41. */
fsd_status fsdm_vif_multi(const double *d, const double *const *refs, int nref, int w, int h, double *out);
/* Qabf of sources a, b and fused f: [h*w]. */
fsd_status fsdm_qabf(const float *a, const float *b, const float *f, int w, int h, double *out);

#endif
