/* Vector helpers for the attention and Mamba kernels (private to src/ops).
 *
 * am_expf: e^x that vectorises. libm's expf is an opaque call, so a loop using it runs one
 *   element at a time; this one uses only fma, selects and an int->float bit move, so
 *   `#pragma omp simd` loops calling it vectorise. Method: x = k ln2 + r with |r| <= ln2/2
 *   (Cody-Waite split of ln2), e^r by its Taylor series to r^7 (truncation < 6e-9 relative), times
 *   2^k built in the exponent bits. Inputs are clamped to [-87.3, 88] so 2^k stays a normal float
 *   (callers here pass x <= 0, where the clamp gives ~1e-38 instead of 0).
 *
 * am_v16: 16 floats as one GNU vector (one AVX-512 register, two AVX2 ones, four SSE ones),
 *   for the places where the data is exactly 16 wide (Mamba's d_state, the padded key tile of
 *   few-key attention) and values must stay in registers across a loop, plus butterfly
 *   all-lane sums/maxima. A reduction loop over 16 floats compiles to a serial chain of 15 scalar
 *   adds, which in these kernels cost more than the arithmetic itself.
 */
#ifndef FSD_OPS_AM_VEC_H
#define FSD_OPS_AM_VEC_H

#include <stdint.h>
#include <string.h>

/* Without AVX-512 (FSD_PORTABLE builds) GCC notes that passing 64-byte vectors by value would have
 * a different ABI; every function taking them here is static inline, so no ABI is involved. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

#define AM_EXP_LO -87.3f
#define AM_EXP_HI 88.0f
#define AM_LOG2E 1.44269504088896341f
#define AM_LN2_HI 0.693145751953125f      /* few mantissa bits: k * LN2_HI is exact */
#define AM_LN2_LO 1.42860682030941723e-06f
#define AM_ROUND 12582912.0f              /* 1.5 * 2^23: (x + R) - R rounds x to an integer */

static inline float am_expf(float x) {
    x = x < AM_EXP_LO ? AM_EXP_LO : x;
    x = x > AM_EXP_HI ? AM_EXP_HI : x;
    const float kf = (x * AM_LOG2E + AM_ROUND) - AM_ROUND;
    float r = __builtin_fmaf(kf, -AM_LN2_HI, x);
    r = __builtin_fmaf(kf, -AM_LN2_LO, r);
    float p = 1.0f / 5040.0f;
    p = __builtin_fmaf(p, r, 1.0f / 720.0f);
    p = __builtin_fmaf(p, r, 1.0f / 120.0f);
    p = __builtin_fmaf(p, r, 1.0f / 24.0f);
    p = __builtin_fmaf(p, r, 1.0f / 6.0f);
    p = __builtin_fmaf(p, r, 0.5f);
    p = __builtin_fmaf(p, r, 1.0f);
    p = __builtin_fmaf(p, r, 1.0f);
    const int32_t bits = ((int32_t)kf + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* ---------------------------------------------------------------- 16-lane vectors */
typedef float am_v16 __attribute__((vector_size(64)));
typedef int32_t am_i16 __attribute__((vector_size(64)));

#if defined(__has_builtin)
#if __has_builtin(__builtin_shufflevector)
#define AM_SWAP(v, k)                                                                                          \
    __builtin_shufflevector(v, v, 0 ^ (k), 1 ^ (k), 2 ^ (k), 3 ^ (k), 4 ^ (k), 5 ^ (k), 6 ^ (k), 7 ^ (k), 8 ^ (k), \
                            9 ^ (k), 10 ^ (k), 11 ^ (k), 12 ^ (k), 13 ^ (k), 14 ^ (k), 15 ^ (k))
#endif
#endif
#ifndef AM_SWAP /* GCC < 12 */
#define AM_SWAP(v, k)                                                                                         \
    __builtin_shuffle(v, (am_i16){0 ^ (k), 1 ^ (k), 2 ^ (k), 3 ^ (k), 4 ^ (k), 5 ^ (k), 6 ^ (k), 7 ^ (k), 8 ^ (k), \
                                  9 ^ (k), 10 ^ (k), 11 ^ (k), 12 ^ (k), 13 ^ (k), 14 ^ (k), 15 ^ (k)})
#endif

static inline am_v16 v16_load(const float *p) {
    am_v16 v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void v16_store(float *p, am_v16 v) { memcpy(p, &v, sizeof v); }
static inline am_v16 v16_set1(float x) { return (am_v16){0} + x; }
static inline am_v16 v16_select(am_i16 mask, am_v16 a, am_v16 b) {
    return (am_v16)(((am_i16)a & mask) | ((am_i16)b & ~mask));
}
static inline am_i16 v16_lanes_below(int n) {
    const am_i16 lane = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    return lane < n;
}
static inline am_v16 v16_allmax(am_v16 v) { /* every lane <- max of all lanes */
    v = v16_select(v > AM_SWAP(v, 8), v, AM_SWAP(v, 8));
    v = v16_select(v > AM_SWAP(v, 4), v, AM_SWAP(v, 4));
    v = v16_select(v > AM_SWAP(v, 2), v, AM_SWAP(v, 2));
    return v16_select(v > AM_SWAP(v, 1), v, AM_SWAP(v, 1));
}
static inline float v16_sum(am_v16 v) { /* butterfly, then lane 0 */
    v += AM_SWAP(v, 8);
    v += AM_SWAP(v, 4);
    v += AM_SWAP(v, 2);
    v += AM_SWAP(v, 1);
    return v[0];
}
static inline am_v16 v16_allsum(am_v16 v) {
    v += AM_SWAP(v, 8);
    v += AM_SWAP(v, 4);
    v += AM_SWAP(v, 2);
    return v + AM_SWAP(v, 1);
}
/* Three sums at once for the price of ~1.5 butterflies: the first two levels fold a and b into
 * one vector (a's partial sums in the low half, b's in the high half). */
static inline void v16_sum3(am_v16 a, am_v16 b, am_v16 c, float *sa, float *sb, float *sc) {
    const am_i16 lo = v16_lanes_below(8);
    am_v16 ab = v16_select(lo, a + AM_SWAP(a, 8), b + AM_SWAP(b, 8)); /* lanes 0-7: a, 8-15: b */
    ab += AM_SWAP(ab, 4);
    ab += AM_SWAP(ab, 2);
    ab += AM_SWAP(ab, 1);
    *sa = ab[0];
    *sb = ab[8];
    *sc = v16_sum(c);
}

/* e^x lane-wise, same method and accuracy as am_expf (the compiler contracts a*b+c to fma). */
static inline am_v16 am_expv16(am_v16 x) {
    x = v16_select(x < AM_EXP_LO, v16_set1(AM_EXP_LO), x);
    x = v16_select(x > AM_EXP_HI, v16_set1(AM_EXP_HI), x);
    const am_v16 kf = (x * AM_LOG2E + AM_ROUND) - AM_ROUND;
    am_v16 r = x - kf * AM_LN2_HI;
    r = r - kf * AM_LN2_LO;
    am_v16 p = v16_set1(1.0f / 5040.0f);
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const am_i16 bits = (__builtin_convertvector(kf, am_i16) + 127) << 23;
    return p * (am_v16)bits;
}

#endif
