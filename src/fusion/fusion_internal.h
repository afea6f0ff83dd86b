/* Helpers shared by the fusion methods (not public). */
#ifndef FSD_FUSION_INTERNAL_H
#define FSD_FUSION_INTERNAL_H

#include "fsdiff/fusion.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* Parallelise a loop only when not already inside a parallel region (the teacher runs one pair
 * per thread) and when there is enough work to pay for the fork. */
static inline int fsd_fusion_par(long work) {
#ifdef _OPENMP
    return work >= 16384 && !omp_in_parallel();
#else
    (void)work;
    return 0;
#endif
}

/* Reflect without repeating the edge (numpy 'reflect', OpenCV BORDER_REFLECT_101): period 2(n-1). */
static inline int fsd_reflect(int i, int n) {
    if (n == 1) return 0;
    int p = 2 * (n - 1);
    i %= p;
    if (i < 0) i += p;
    return i < n ? i : p - i;
}

static inline int fsd_clampi(int i, int n) { return i < 0 ? 0 : i >= n ? n - 1 : i; }

static inline double fsd_clip255(double v) { return v < 0.0 ? 0.0 : v > 255.0 ? 255.0 : v; }

/* Checks shared by the plane methods. */
fsd_status fsd_fusion_check(const char *method, const float *a, const float *b, int w, int h, const float *out);

/* Box mean over the (2r+1)^2 window clipped to the image, divided by the number of pixels inside
 * (He et al.'s boxfilter / N). in, out, tmp: (h, w); out may alias in. O(1) per pixel. */
void fsd_box_mean(const double *in, double *out, int w, int h, int r, double *tmp);

#endif
