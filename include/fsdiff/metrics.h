/* Image-fusion and super-resolution quality metrics (docs/metrics.md has every formula, its paper and
 * our border choices).
 *
 * Inputs are 8-bit grey images as float arrays of h*w values (row-major, integers 0..255; colour is
 * converted by the caller with grey = round(0.299 R + 0.587 G + 0.114 B)). A and B are the two
 * high-resolution sources, F the fused image of the same size. Everything is accumulated in double.
 * Histogram metrics (EN, MI) put a value v in bin clamp(floor(v + 0.5), 0, 255).
 *
 * Results do not depend on the thread count: parallel loops write per-row partial sums that are
 * added in a fixed order. Undefined ratios are defined, not NaN: a correlation with a constant image
 * is 0, VIFp with a constant reference is 0, and PSNR of identical images is +INFINITY (the CLI's
 * JSON writes it as null). */
#ifndef FSDIFF_METRICS_H
#define FSDIFF_METRICS_H

#include "fsdiff/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- fusion metrics (A, B -> F) */
typedef enum fsd_metric_id {
    FSD_METRIC_EN = 0, /* entropy of F (bits) */
    FSD_METRIC_SD,     /* standard deviation of F */
    FSD_METRIC_SF,     /* spatial frequency of F */
    FSD_METRIC_AG,     /* average gradient of F */
    FSD_METRIC_MI,     /* MI(F,A) + MI(F,B) (bits) */
    FSD_METRIC_SCD,    /* sum of the correlations of differences */
    FSD_METRIC_VIF,    /* VIFp(A,F) + VIFp(B,F) */
    FSD_METRIC_QABF,   /* Xydeas-Petrovic edge preservation */
    FSD_METRIC_SSIM,   /* SSIM(F,A) + SSIM(F,B) */
    FSD_METRIC_CC,     /* (corr(F,A) + corr(F,B)) / 2 */
    FSD_METRIC_PSNR,   /* 10 log10(255^2 / mean of MSE(F,A), MSE(F,B)) (dB) */
    FSD_METRIC_COUNT
} fsd_metric_id;

typedef struct fsd_metric_info {
    const char *name;        /* short key, e.g. "Qabf": table header and JSON key */
    const char *description; /* one line */
    int higher_is_better;    /* 1 for every metric here; kept so reports can print the direction */
    int uses_sources;        /* 0: depends on F alone (EN, SD, SF, AG) */
} fsd_metric_info;

extern const fsd_metric_info fsd_metric_table[FSD_METRIC_COUNT];
/* Index of the metric called `name` (case-insensitive), -1 if none. */
int fsd_metric_find(const char *name);

typedef struct fsd_metrics {
    double v[FSD_METRIC_COUNT]; /* indexed by fsd_metric_id */
} fsd_metrics;

/* Smallest width/height fsd_metrics_compute accepts: VIF's four scales of 'valid' filtering need 41. */
int fsd_metrics_min_size(void);

/* All fusion metrics at once (shares the Sobel/Gaussian work between them).
 * a, b, f: [h*w]. Fails (FSD_ERR_INVALID) on NULL pointers, w or h < fsd_metrics_min_size(), or a
 * non-finite value; FSD_ERR_NOMEM if scratch memory cannot be had. */
fsd_status fsd_metrics_compute(const float *a, const float *b, const float *f, int w, int h, fsd_metrics *out);

/* Single metrics; each writes *out and returns FSD_OK, or fails like fsd_metrics_compute (each only
 * requires the size it needs: 1x1 for EN/SD/MI/CC/SCD/PSNR/Qabf, 2x2 for SF/AG, 11x11 for SSIM,
 * 41x41 for VIF). */
fsd_status fsd_metric_en(const float *f, int w, int h, double *out);
fsd_status fsd_metric_sd(const float *f, int w, int h, double *out);
fsd_status fsd_metric_sf(const float *f, int w, int h, double *out);
fsd_status fsd_metric_ag(const float *f, int w, int h, double *out);
fsd_status fsd_metric_mi(const float *a, const float *b, const float *f, int w, int h, double *out);
fsd_status fsd_metric_scd(const float *a, const float *b, const float *f, int w, int h, double *out);
fsd_status fsd_metric_vif(const float *a, const float *b, const float *f, int w, int h, double *out);
fsd_status fsd_metric_qabf(const float *a, const float *b, const float *f, int w, int h, double *out);
fsd_status fsd_metric_ssim(const float *a, const float *b, const float *f, int w, int h, double *out);
fsd_status fsd_metric_cc(const float *a, const float *b, const float *f, int w, int h, double *out);
fsd_status fsd_metric_psnr(const float *a, const float *b, const float *f, int w, int h, double *out);

/* Two-image building blocks (x, y: [h*w]). */
fsd_status fsd_mutual_info(const float *x, const float *y, int w, int h, double *out); /* bits */
fsd_status fsd_correlation(const float *x, const float *y, int w, int h, double *out); /* Pearson */
fsd_status fsd_ssim(const float *x, const float *y, int w, int h, double *out);        /* symmetric */
fsd_status fsd_psnr(const float *ref, const float *x, int w, int h, double *out);      /* dB, peak 255 */
/* Pixel-domain multi-scale VIF (Sheikh & Bovik); ref is the reference, dist the distorted image. */
fsd_status fsd_vifp(const float *ref, const float *dist, int w, int h, double *out);

/* ---------------------------------------------------------------- super-resolution (REF -> F) */
typedef enum fsd_sr_metric_id {
    FSD_SR_PSNR = 0,
    FSD_SR_SSIM,
    FSD_SR_METRIC_COUNT
} fsd_sr_metric_id;

extern const fsd_metric_info fsd_sr_metric_table[FSD_SR_METRIC_COUNT];

typedef struct fsd_sr_metrics {
    double v[FSD_SR_METRIC_COUNT]; /* indexed by fsd_sr_metric_id */
} fsd_sr_metrics;

/* PSNR(F, REF) and SSIM(F, REF); ref, f: [h*w], w and h >= 11. */
fsd_status fsd_metrics_sr(const float *ref, const float *f, int w, int h, fsd_sr_metrics *out);

#ifdef __cplusplus
}
#endif
#endif
