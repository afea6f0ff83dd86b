/* Vectorisable float math for the ops' inner loops (internal to src/ops; other op families may
 * include it).
 *
 * libm's expf/erff/log1pf/sqrtf are opaque calls (sqrtf keeps an errno branch), so a loop using
 * them runs one element at a time: GCC maps them to SIMD only under -ffast-math, which the build
 * does not use. These static inline versions use only +, *, explicit fma, compares/selects and
 * int<->float bit moves, so a loop calling them vectorises at -O3 -march=native. Written from the
 * textbook methods (exp: range reduction + our own fitted polynomial; erf: Maclaurin series and
 * Abramowitz & Stegun 7.1.26; log1p: atanh series; rsqrt: Newton). Accuracy against double libm is
 * measured in tests/test_ops_act.c (exp 0.75 ulp with FMA, 0.93 without; sigmoid / softplus / log1p /
 * sqrt <= 2.5e-7 relative, erf <= 1.8e-7 absolute).
 *
 * Determinism: a file whose loops call these should be compiled with fp-contract off (e.g.
 * `#pragma GCC optimize("fp-contract=off")` before its includes, as src/ops/activation.c does);
 * otherwise GCC may contract a*b+c differently in the vector body and in the scalar remainder, and
 * an element's value would depend on the OpenMP chunk boundaries (the thread count). */
#ifndef FSD_OPS_VMATH_H
#define FSD_OPS_VMATH_H

#include <stdint.h>
#include <string.h>

/* a*b + c: one fused instruction where the target has FMA. Without it (portable SSE2 builds)
 * __builtin_fmaf becomes a call to libm's exact software fmaf, which ran the activations at 1/30 of
 * PyTorch's speed; there the two roundings of a*b + c are used instead (the callers' files compile
 * with fp-contract off, so that is what runs in the vector body and the remainder alike). Measured
 * accuracy in tests/test_ops_act.c holds for both. */
#ifdef __FMA__
#define FSD_FMAF(a, b, c) __builtin_fmaf((a), (b), (c))
#else
#define FSD_FMAF(a, b, c) ((a) * (b) + (c))
#endif

static inline float fsd_bits_to_float(uint32_t i) {
    float f;
    memcpy(&f, &i, sizeof f);
    return f;
}

/* Range reduction constants and the e^r polynomial shared by every exp in src/ops (scalar here,
 * 16-lane in am_vec.h). e^r = 1 + r q(r) on |r| <= ln2/2, q of degree 5 fitted to minimise the
 * relative error (weighted least squares iterated towards minimax, our own fit): 3.3e-9 before
 * rounding. */
#define FSD_EXP_LO -87.3f
#define FSD_EXP_HI 88.0f
#define FSD_LOG2E 1.44269504088896341f
#define FSD_LN2_HI 0.693145751953125f /* few mantissa bits: k * LN2_HI is exact */
#define FSD_LN2_LO 1.42860682030941723e-06f
#define FSD_ROUND_SHIFTER 12582912.0f /* 1.5 * 2^23: (x + S) - S rounds to an integer */
#define FSD_EXP_Q5 1.385544543e-03f
#define FSD_EXP_Q4 8.372943848e-03f
#define FSD_EXP_Q3 4.166771472e-02f
#define FSD_EXP_Q2 1.666644365e-01f
#define FSD_EXP_Q1 4.999999702e-01f

/* e^x for x already inside [FSD_EXP_LO, FSD_EXP_HI] (so 2^k stays a normal float). */
static inline float fsd_expf_inrange(float x) {
    /* k = round(x / ln2) with the shifter trick (exact for |k| < 2^22, no rint call) */
    float kf = (x * FSD_LOG2E + FSD_ROUND_SHIFTER) - FSD_ROUND_SHIFTER;
    /* r = x - k ln2 in two pieces (Cody-Waite) so r keeps full precision; |r| <= ln2/2 */
    float r = FSD_FMAF(kf, -FSD_LN2_HI, x);
    r = FSD_FMAF(kf, -FSD_LN2_LO, r);
    float p = FSD_EXP_Q5;
    p = FSD_FMAF(p, r, FSD_EXP_Q4);
    p = FSD_FMAF(p, r, FSD_EXP_Q3);
    p = FSD_FMAF(p, r, FSD_EXP_Q2);
    p = FSD_FMAF(p, r, FSD_EXP_Q1);
    p = FSD_FMAF(p, r, 1.0f);
    p = FSD_FMAF(p, r, 1.0f);
    int32_t k = (int32_t)kf; /* in [-126, 127] */
    return p * fsd_bits_to_float((uint32_t)(k + 127) << 23);
}

/* e^x. Clamped to [-87.3, 88] (results there are ~1e-38 or ~1.6e38, which is what every caller
 * needs: sigmoid/softplus saturate long before; attention/scan pass x <= 0). NaN -> NaN. */
static inline float fsd_expf(float x) {
    x = x < FSD_EXP_LO ? FSD_EXP_LO : x;
    x = x > FSD_EXP_HI ? FSD_EXP_HI : x;
    return fsd_expf_inrange(x);
}

/* e^x for x <= 0 (callers pass -x^2 and the like): skips the upper clamp. */
static inline float fsd_expf_neg(float x) {
    return fsd_expf_inrange(x < FSD_EXP_LO ? FSD_EXP_LO : x);
}

/* 1/sqrt(x) for positive normal x: bit-trick seed, then three Newton steps (relative error
 * 1.7e-3 -> 4e-6 -> 3e-11 -> float rounding). sqrtf itself does not vectorise without
 * -fno-math-errno (GCC keeps a branch to the errno-setting call). */
static inline float fsd_rsqrtf(float x) {
    int32_t i;
    memcpy(&i, &x, sizeof i);
    float y = fsd_bits_to_float(0x5f3759dfu - (uint32_t)(i >> 1));
    float hx = 0.5f * x;
    y = y * (1.5f - hx * y * y);
    y = y * (1.5f - hx * y * y);
    y = y * (1.5f - hx * y * y);
    return y;
}

/* sqrt(x) for x >= 0 (0 -> 0), as x rsqrt(x); tiny and subnormal x are scaled by 2^64 first so
 * the bit-trick seed is valid. */
static inline float fsd_sqrtf(float x) {
    const int tiny = x < 5.42101086e-20f; /* 2^-64 */
    float xs = tiny ? x * 18446744073709551616.0f : x;
    float r = xs * fsd_rsqrtf(xs);
    return tiny ? r * 2.3283064365386963e-10f : r; /* 2^-32 */
}

/* 1 / (1 + e^-x) */
static inline float fsd_sigmoidf(float x) { return 1.0f / (1.0f + fsd_expf(-x)); }

/* log(1 + u) for u >= 0 (callers pass u in [0, 1]): 2 atanh(s) with s = u / (2 + u) <= 1/3,
 * odd series to s^17 (truncation < 2e-9 relative). No 1+u rounding, so tiny u stays exact. */
static inline float fsd_log1pf_pos(float u) {
    float s = u / (2.0f + u);
    float s2 = s * s;
    float p = 1.0f / 17.0f;
    p = FSD_FMAF(p, s2, 1.0f / 15.0f);
    p = FSD_FMAF(p, s2, 1.0f / 13.0f);
    p = FSD_FMAF(p, s2, 1.0f / 11.0f);
    p = FSD_FMAF(p, s2, 1.0f / 9.0f);
    p = FSD_FMAF(p, s2, 1.0f / 7.0f);
    p = FSD_FMAF(p, s2, 1.0f / 5.0f);
    p = FSD_FMAF(p, s2, 1.0f / 3.0f);
    p = FSD_FMAF(p, s2, 1.0f);
    return 2.0f * s * p;
}

/* softplus with beta 1 and PyTorch's threshold 20: x > 20 -> x, else log(1 + e^x),
 * computed as max(x,0) + log1p(e^-|x|) so neither branch overflows. */
static inline float fsd_softplusf(float x) {
    float ax = x < 0.0f ? -x : x;
    float pos = x > 0.0f ? x : 0.0f;
    float v = pos + fsd_log1pf_pos(fsd_expf(-ax));
    return x > 20.0f ? x : v;
}

/* Abramowitz & Stegun 7.1.26 for |x|: erf(|x|) = 1 - t P(t) e^(-x^2), t = 1/(1 + 0.3275911 |x|),
 * returned as the pieces 1 - erf(|x|) = t P(t) * e; e = e^(-x^2) is passed back for reuse. */
static inline float fsd_erfc_as_pos(float ax, float *e_out) {
    float t = 1.0f / FSD_FMAF(0.3275911f, ax, 1.0f);
    float p = 1.061405429f;
    p = FSD_FMAF(p, t, -1.453152027f);
    p = FSD_FMAF(p, t, 1.421413741f);
    p = FSD_FMAF(p, t, -0.284496736f);
    p = FSD_FMAF(p, t, 0.254829592f);
    float e = fsd_expf_neg(-ax * ax);
    *e_out = e;
    return p * t * e;
}

/* erf(x) with absolute error <= 6e-7 everywhere (A&S 7.1.26's 1.5e-7 plus float rounding of
 * 1 - tP(t)e near 0, odd extension); relative error grows near 0. GELU uses it: only 1 + erf
 * matters there, so the absolute bound is what counts (GELU itself stays within 2.5e-7 max(1,|x|)). */
static inline float fsd_erff_abs(float x) {
    float ax = x < 0.0f ? -x : x, e;
    float v = 1.0f - fsd_erfc_as_pos(ax, &e);
    return x < 0.0f ? -v : v;
}

/* erf(x). |x| < 1: Maclaurin series erf(x) = 2/sqrt(pi) sum_n (-1)^n x^(2n+1) / (n! (2n+1)) to
 * n = 10 (truncation < 1.1e-9); |x| >= 1: Abramowitz & Stegun 7.1.26, 1 - t P(t) e^(-x^2) with
 * t = 1/(1 + 0.3275911 |x|) (absolute error <= 1.5e-7). Both are evaluated and one is selected,
 * so the loop stays branch-free. */
static inline float fsd_erff(float x) {
    float ax = x < 0.0f ? -x : x;
    float big = fsd_erff_abs(x);
    float x2 = x * x;
    float q = 1.480719282e-08f;
    q = FSD_FMAF(q, x2, -1.636584469e-07f);
    q = FSD_FMAF(q, x2, 1.646211437e-06f);
    q = FSD_FMAF(q, x2, -1.492565036e-05f);
    q = FSD_FMAF(q, x2, 1.205533298e-04f);
    q = FSD_FMAF(q, x2, -8.548327023e-04f);
    q = FSD_FMAF(q, x2, 5.223977625e-03f);
    q = FSD_FMAF(q, x2, -2.686617065e-02f);
    q = FSD_FMAF(q, x2, 1.128379167e-01f);
    q = FSD_FMAF(q, x2, -3.761263890e-01f);
    q = FSD_FMAF(q, x2, 1.128379167e+00f);
    float small = x * q;
    return ax < 1.0f ? small : big;
}

/* exact GELU: x Phi(x). With u = x / sqrt 2 and h = (1 - erf|u|) / 2 from A&S 7.1.26:
 * Phi(x) = 1 - h for x >= 0 and h for x < 0 (same values as (1 + erf(u)) / 2, fewer operations). */
static inline float fsd_geluf(float x) {
    float u = x * 0.70710678118654752f, au = u < 0.0f ? -u : u, e;
    float h = 0.5f * fsd_erfc_as_pos(au, &e);
    return x * (x < 0.0f ? h : 1.0f - h);
}

/* d GELU / dx = Phi(x) + x phi(x), phi(x) = exp(-x^2/2) / sqrt(2 pi); the exponential of the
 * erf approximation at x/sqrt 2 is exactly exp(-x^2/2), so it is computed once. */
static inline float fsd_gelu_gradf(float x) {
    float u = x * 0.70710678118654752f, au = u < 0.0f ? -u : u, e;
    float h = 0.5f * fsd_erfc_as_pos(au, &e);
    float cdf = x < 0.0f ? h : 1.0f - h;
    return FSD_FMAF(x, 0.39894228040143268f * e, cdf);
}

#endif
