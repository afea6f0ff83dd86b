/* Mamba building blocks: depthwise causal conv1d and the selective scan (S6).
 *
 * Both are channel-major like mamba_ssm (x is (B, channels, L)), with L the token sequence
 * (raster order of the image). A `reverse` flag runs an op anti-causally, i.e. exactly as if the
 * sequence were flipped in time before the op and the result flipped back, without copying:
 * that is the second direction of a bidirectional (Vim-v2 style) Mamba.
 */
#ifndef FSDIFF_OPS_MAMBA_H
#define FSDIFF_OPS_MAMBA_H

#include "fsdiff/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- depthwise causal conv1d */
/* y (B, D, L), x (B, D, L), w (D, K), bias (D) or NULL.
 * forward (reverse = 0): y[b,d,t] = bias[d] + sum_{k<K} w[d,k] * x[b,d,t-(K-1)+k]  (zero left pad,
 *                        tap K-1 is the current token)
 * reverse  (reverse = 1): y[b,d,t] = bias[d] + sum_{k<K} w[d,k] * x[b,d,t+(K-1)-k]  (zero right pad) */
fsd_status fsd_conv1d_causal_forward(float *y, const float *x, const float *w, const float *bias,
                                     int B, int D, int L, int K, int reverse);
/* Accumulates dx (B, D, L), dw (D, K), dbias (D); any may be NULL. dy (B, D, L). */
fsd_status fsd_conv1d_causal_backward(float *dx, float *dw, float *dbias, const float *dy, const float *x,
                                      const float *w, int B, int D, int L, int K, int reverse);

/* ---------------------------------------------------------------- selective scan */
/* Shapes (all channel-major, E = d_inner channels, N = d_state):
 *   u, delta, z, y  (B, E, L)     delta already softplus'ed (and bias-added) by the caller
 *   A_log           (E, N)        A = -exp(A_log)
 *   Bm, Cm          (B, N, L)     input-dependent B_t, C_t shared by all channels
 *   D               (E) or NULL   skip connection (NULL = 0)
 *   z               (B, E, L) or NULL: gate, y *= SiLU(z)
 * Recurrence, h_{-1} = 0, over t = 0..L-1 (reverse: t = L-1..0):
 *   h_t[e,n] = exp(delta_t[e] A[e,n]) h_{t-1}[e,n] + delta_t[e] Bm_t[n] u_t[e]
 *   y_t[e]   = (sum_n Cm_t[n] h_t[e,n] + D[e] u_t[e]) * SiLU(z_t[e])
 *
 * Memory: the forward keeps the state only at chunk starts (every `chunk` scan steps; chunk <= 0
 * means FSD_SCAN_CHUNK) in `hckpt`, and the backward recomputes each chunk's states from there:
 * O(B*E*N*L/chunk) floats saved instead of O(B*E*N*L). */
#define FSD_SCAN_CHUNK 64

/* Number of floats of hckpt: B * E * ceil(L/chunk) * N. */
size_t fsd_selective_scan_ckpt_floats(int B, int E, int N, int L, int chunk);
/* Arena bytes one call takes at most (backward = 0/1, with hckpt supplied or not). */
size_t fsd_selective_scan_ws_bytes(int backward, int have_ckpt, int B, int E, int N, int L, int chunk);

/* y (B, E, L); hckpt (B, E, ceil(L/chunk), N) or NULL (inference: nothing saved). */
fsd_status fsd_selective_scan_forward(float *y, float *hckpt, const float *u, const float *delta,
                                      const float *A_log, const float *Bm, const float *Cm, const float *D,
                                      const float *z, int B, int E, int N, int L, int chunk, int reverse,
                                      fsd_arena *ws);

/* Accumulates du, ddelta, dz (B, E, L), dA_log (E, N), dBm, dCm (B, N, L), dD (E); any may be NULL.
 * dy (B, E, L). hckpt: as written by the forward with the same chunk, or NULL to recompute it
 * (one extra forward sweep, scratch from ws). */
fsd_status fsd_selective_scan_backward(float *du, float *ddelta, float *dA_log, float *dBm, float *dCm,
                                       float *dD, float *dz, const float *dy, const float *hckpt,
                                       const float *u, const float *delta, const float *A_log,
                                       const float *Bm, const float *Cm, const float *D, const float *z,
                                       int B, int E, int N, int L, int chunk, int reverse, fsd_arena *ws);

#ifdef __cplusplus
}
#endif
#endif
