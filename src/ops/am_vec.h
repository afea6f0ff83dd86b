/* Vector helpers for the attention, Mamba and direct-conv kernels (private to src/ops).
 *
 * Scalar e^x is fsd_expf from vmath.h; am_expv16 below is its 16-lane twin (same range
 *   reduction and polynomial) for values that stay in registers.
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

#include "vmath.h"

/* Without AVX-512 (FSD_PORTABLE builds) GCC notes that passing 64-byte vectors by value would have
 * a different ABI; every function taking them here is static inline, so no ABI is involved. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

/* ---------------------------------------------------------------- 16-lane vectors */
/* 1 where a 16-lane vector is one register (AVX-512). Elsewhere GCC has no register mode for a 64-byte
 * vector and lowers each operation through the stack (measured on a Zen 3, AVX2: the direct conv at
 * 11-14 GFLOP/s, a tenth of im2col); kernels written on am_v16 then give way to their plain-loop
 * versions, which GCC vectorises for the target. */
#ifndef AM_V16_NATIVE /* -DAM_V16_NATIVE=1 runs the 16-lane paths on any target (slowly): for tests */
#ifdef __AVX512F__
#define AM_V16_NATIVE 1
#else
#define AM_V16_NATIVE 0
#endif
#endif
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

/* Even / odd lanes of the 32 floats a:b (stride-2 de-interleave) and the inverse: a and b interleaved,
 * lanes 0-15 (ZIP_LO) and 16-31 (ZIP_HI) of a0 b0 a1 b1 ... */
#if defined(__has_builtin)
#if __has_builtin(__builtin_shufflevector)
#define AM_EVENS(a, b) __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30)
#define AM_ODDS(a, b) __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31)
#define AM_ZIP_LO(a, b) __builtin_shufflevector(a, b, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23)
#define AM_ZIP_HI(a, b) __builtin_shufflevector(a, b, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31)
#endif
#endif
#ifndef AM_EVENS
#define AM_EVENS(a, b) __builtin_shuffle(a, b, (am_i16){0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30})
#define AM_ODDS(a, b) __builtin_shuffle(a, b, (am_i16){1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31})
#define AM_ZIP_LO(a, b) __builtin_shuffle(a, b, (am_i16){0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23})
#define AM_ZIP_HI(a, b) __builtin_shuffle(a, b, (am_i16){8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31})
#endif

static inline am_v16 v16_load(const float *p) {
    am_v16 v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void v16_store(float *p, am_v16 v) { memcpy(p, &v, sizeof v); }
/* Every lane x. Spelled out: `(am_v16){0} + x` made GCC add 0.0f in scalar first (x + 0 differs from x
 * for x = -0), then broadcast from a register, instead of one broadcast load folded into the FMA. */
static inline am_v16 v16_set1(float x) { return (am_v16){x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x}; }
/* r[i][j] <- r[j][i]: four rounds of zipping row i with row i+8 (a perfect shuffle of the rows). */
static inline void v16_transpose16(am_v16 r[16]) {
    for (int round = 0; round < 4; round++) {
        am_v16 n[16];
        for (int i = 0; i < 8; i++) n[2 * i] = AM_ZIP_LO(r[i], r[i + 8]), n[2 * i + 1] = AM_ZIP_HI(r[i], r[i + 8]);
        for (int i = 0; i < 16; i++) r[i] = n[i];
    }
}
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

/* e^x lane-wise: fsd_expf's range reduction and polynomial (vmath.h) on 16 lanes. */
static inline am_v16 am_expv16(am_v16 x) {
    x = v16_select(x < FSD_EXP_LO, v16_set1(FSD_EXP_LO), x);
    x = v16_select(x > FSD_EXP_HI, v16_set1(FSD_EXP_HI), x);
    const am_v16 kf = (x * FSD_LOG2E + FSD_ROUND_SHIFTER) - FSD_ROUND_SHIFTER;
    am_v16 r = x - kf * FSD_LN2_HI;
    r = r - kf * FSD_LN2_LO;
    am_v16 p = v16_set1(FSD_EXP_Q5);
    p = p * r + FSD_EXP_Q4;
    p = p * r + FSD_EXP_Q3;
    p = p * r + FSD_EXP_Q2;
    p = p * r + FSD_EXP_Q1;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const am_i16 bits = (__builtin_convertvector(kf, am_i16) + 127) << 23;
    return p * (am_v16)bits;
}

#endif
