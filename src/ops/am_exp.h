/* Vectorisable e^x for the attention softmax and the selective scan (private to src/ops).
 * libm's expf is an opaque call, so a loop using it runs one element at a time; this version uses
 * only fma, selects and an int->float bit move, so `#pragma omp simd` loops calling it vectorise.
 * Method: x = k ln2 + r with |r| <= ln2/2 (Cody-Waite split of ln2), e^r by its Taylor series to
 * r^7 (truncation < 6e-9 relative), times 2^k built in the exponent bits. Inputs are clamped to
 * [-87.3, 88] so 2^k stays a normal float; every caller here passes x <= 0. */
#ifndef FSD_OPS_AM_EXP_H
#define FSD_OPS_AM_EXP_H

#include <stdint.h>
#include <string.h>

static inline float am_expf(float x) {
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.0f ? 88.0f : x;
    const float big = 12582912.0f; /* 1.5 * 2^23: adding and subtracting it rounds to an integer */
    float kf = (x * 1.44269504088896341f + big) - big;
    float r = __builtin_fmaf(kf, -0.693145751953125f, x); /* ln2 high part, exact product */
    r = __builtin_fmaf(kf, -1.42860682030941723e-06f, r); /* ln2 low part */
    float p = 1.0f / 5040.0f;
    p = __builtin_fmaf(p, r, 1.0f / 720.0f);
    p = __builtin_fmaf(p, r, 1.0f / 120.0f);
    p = __builtin_fmaf(p, r, 1.0f / 24.0f);
    p = __builtin_fmaf(p, r, 1.0f / 6.0f);
    p = __builtin_fmaf(p, r, 0.5f);
    p = __builtin_fmaf(p, r, 1.0f);
    p = __builtin_fmaf(p, r, 1.0f);
    int32_t bits = ((int32_t)kf + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

#endif
