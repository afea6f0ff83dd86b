/* Multi-head scaled dot-product attention core (self- and cross-attention).
 *
 * Only the core: the q/k/v/out projections are Linear ops (ops_linear.h).
 * Layout is token-major and heads are contiguous channel slices, as in the reference model
 * (BasicTransformerBlock with d_head = 32):
 *   q   (B, Nq, H*dh)      head h = channels [h*dh, (h+1)*dh)
 *   k,v (B, Nk, H*dh)      Nk = Nq for self-attention, Nk = number of context tokens for cross
 *   out (B, Nq, H*dh)      out_h = softmax(q_h k_h^T / sqrt(dh)) v_h
 * The softmax subtracts the row max, so any logit range is safe.
 *
 * Saved state: forward may write the probabilities P (B, H, Nq, Nk) for the backward pass.
 * When that is too big (B*H*Nq*Nk floats: 128 MiB at 32x32 tokens, B=4, 8 heads) pass P = NULL
 * to both calls: the backward then recomputes P block by block from q and k (one extra
 * Q K^T product and softmax), using only O(threads * rows * Nk) scratch.
 */
#ifndef FSDIFF_OPS_ATTENTION_H
#define FSDIFF_OPS_ATTENTION_H

#include "fsdiff/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* out (B, Nq, H*dh); P (B, H, Nq, Nk) or NULL; q (B, Nq, H*dh); k, v (B, Nk, H*dh).
 * ws is required; scratch from it: fsd_attention_ws_bytes(...) bytes at most. */
fsd_status fsd_attention_forward(float *out, float *P, const float *q, const float *k, const float *v,
                                 int B, int Nq, int Nk, int H, int dh, fsd_arena *ws);

/* Accumulates dq (B, Nq, H*dh), dk, dv (B, Nk, H*dh); any may be NULL.
 * dout (B, Nq, H*dh); P as written by the forward, or NULL to recompute it. */
fsd_status fsd_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *P,
                                  const float *q, const float *k, const float *v,
                                  int B, int Nq, int Nk, int H, int dh, fsd_arena *ws);

/* Upper bound on the arena bytes one forward (backward = 1) call takes with `nthreads` threads
 * (<= 0: the current OpenMP maximum). */
size_t fsd_attention_ws_bytes(int backward, int B, int Nq, int Nk, int H, int dh, int nthreads);

#ifdef __cplusplus
}
#endif
#endif
