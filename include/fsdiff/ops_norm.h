/* Normalisation ops (src/ops/norm.c): GroupNorm on NCHW, LayerNorm over the last dim of rows,
 * and a channel-major LayerNorm for (B, C, L) data that normalises over C at each position.
 *
 * Conventions (see ops.h): float32, forward writes y (y may alias x), backward ACCUMULATES into
 * dx / dweight / dbias, any of which may be NULL (skipped). weight / bias may be NULL in forward
 * (no affine: weight 1, bias 0); pass the same weight to backward. Statistics are exact two-pass
 * mean / variance per group or row (the data is cache resident by then), biased variance as in
 * PyTorch, rstd = 1/sqrt(var + eps). mean / rstd are written by forward for backward; they may
 * be NULL in forward when no backward follows (inference). Scratch comes from `ws` (may be NULL:
 * then the op allocates and frees its own). Results do not depend on the thread count. */
#ifndef FSDIFF_OPS_NORM_H
#define FSDIFF_OPS_NORM_H

#include "fsdiff/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* GroupNorm(G groups, eps) over NCHW.
 * x, y: (B, C, HW)   weight, bias: [C]   mean, rstd: [B*G] (index b*G + g)   C % G == 0.
 * The network uses eps 1e-5 (ResNet blocks) and 1e-6 (SpatialTransformer). */
fsd_status fsd_groupnorm_forward(float *y, float *mean, float *rstd, const float *x, const float *weight,
                                 const float *bias, int B, int C, int HW, int G, float eps);
/* dx: (B, C, HW)   dweight, dbias: [C]   dy, x: (B, C, HW)   mean, rstd from forward. */
fsd_status fsd_groupnorm_backward(float *dx, float *dweight, float *dbias, const float *dy, const float *x,
                                  const float *mean, const float *rstd, const float *weight, int B, int C,
                                  int HW, int G, fsd_arena *ws);

/* LayerNorm over the last dim: x, y (N, C) rows; weight, bias [C]; mean, rstd [N]. */
fsd_status fsd_layernorm_forward(float *y, float *mean, float *rstd, const float *x, const float *weight,
                                 const float *bias, int N, int C, float eps);
fsd_status fsd_layernorm_backward(float *dx, float *dweight, float *dbias, const float *dy, const float *x,
                                  const float *mean, const float *rstd, const float *weight, int N, int C,
                                  fsd_arena *ws);

/* Channel-major LayerNorm: x, y (B, C, L) (e.g. an NCHW image with L = H*W), normalised over the
 * C channels of each (b, l); weight, bias [C]; mean, rstd [B*L] (index b*L + l). Same maths as
 * fsd_layernorm_* on the (B*L, C) transpose, without transposing (the Mamba stem's LayerNorm(9)). */
fsd_status fsd_layernorm_cm_forward(float *y, float *mean, float *rstd, const float *x, const float *weight,
                                    const float *bias, int B, int C, int L, float eps);
fsd_status fsd_layernorm_cm_backward(float *dx, float *dweight, float *dbias, const float *dy, const float *x,
                                     const float *mean, const float *rstd, const float *weight, int B, int C,
                                     int L, fsd_arena *ws);

#ifdef __cplusplus
}
#endif
#endif
