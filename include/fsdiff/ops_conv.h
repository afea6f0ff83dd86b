/* Convolution op family: conv2d, nearest x2 upsample, per-(sample, channel) bias, channel concat/split.
 * Conventions (see ops.h): NCHW float32, backward ACCUMULATES (+=) into every gradient, a NULL
 * gradient pointer skips that gradient, scratch comes from `ws` and is handed back before return,
 * OpenMP inside. */
#ifndef FSDIFF_OPS_CONV_H
#define FSDIFF_OPS_CONV_H

#include "fsdiff/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- conv2d
 * out[b,co,oy,ox] = bias[co] + sum_{ci,kh,kw} w[co,ci,kh,kw] * x[b,ci,oy*s-pad+kh,ox*s-pad+kw]
 * (zero padding, square k x k kernel, PyTorch weight layout [Cout, Cin, k, k]).
 *   x [B, Cin, H, W], w [Cout, Cin, k, k], bias [Cout] or NULL, out [B, Cout, Ho, Wo]
 *   Ho = (H + 2*pad - k)/stride + 1, Wo likewise.
 * Algorithms: im2col + sgemm (any k/stride/pad; 1x1 stride 1 uses the input plane as the GEMM
 * operand directly), Winograd F(2x2,3x3) for 3x3 stride 1 pad 1 (2.25x fewer multiplies, same
 * maths up to float rounding), a polyphase Winograd for 3x3 stride 2 pad 1 (25 instead of 36
 * multiplies per 2x2 output tile, transform entries 0/+-1) and a direct 3x3 pad 1 convolution
 * (stride 1 or 2 forward, stride 2 backward with Cout % 16 == 0; same products as im2col, no
 * im2col matrix). FSD_CONV_AUTO (tuned on 2 Zen 4 cores, see pick_algo in conv.c) takes, forward:
 * Winograd for 3x3 s1 p1 with Cin >= 16 and H, W >= 4; direct for 3x3 s1 p1 with fewer input
 * channels and for 3x3 s2 p1 with Cin <= 64 or output width <= 16, both when the output width is
 * >= 16 and fills >= 3/4 of its 16-lane runs; the stride-2 Winograd for the other 3x3 s2 p1 with
 * Cin >= 16, H >= 8 and output width >= 32; im2col otherwise. Backward: direct for 3x3 s2 p1 with
 * Cout % 16 == 0 and the same width rule, else as forward without direct.
 * Scratch: fsd_conv2d_workspace() bytes; Winograd needs 2 x 16*Cout*Cin floats (25*Cout*Cin for
 * stride 2) (transformed kernel and its gradient) plus ~1.5 MiB per thread, im2col ~1-4 MiB per
 * thread plus a per-thread copy of dW [Cout, Cin*k*k] in backward, direct ~0.4 MiB of input planes
 * per thread (forward) or 2 copies of dout (backward). Size the arena by the largest conv of the
 * network. */
typedef enum fsd_conv_algo {
    FSD_CONV_AUTO = 0,
    FSD_CONV_IM2COL = 1,   /* im2col + sgemm (always applicable) */
    FSD_CONV_WINOGRAD = 2,   /* only 3x3 stride 1 pad 1; other shapes fall back to im2col */
    FSD_CONV_WINOGRAD_S2 = 3, /* polyphase Winograd, only 3x3 stride 2 pad 1; else im2col */
    FSD_CONV_DIRECT = 4       /* direct 3x3 pad 1, stride 1 or 2, forward only (backward runs what AUTO
                                 picks among the others); other shapes fall back to im2col */
} fsd_conv_algo;

/* Process-wide algorithm override (tests and benchmarks compare the paths). Default AUTO. */
void fsd_conv2d_set_algo(fsd_conv_algo a);
fsd_conv_algo fsd_conv2d_get_algo(void);
/* The algorithm forward (backward) would use for this shape under the current setting. */
fsd_conv_algo fsd_conv2d_algo_for(int B, int Cin, int H, int W, int Cout, int k, int stride, int pad);
fsd_conv_algo fsd_conv2d_backward_algo_for(int B, int Cin, int H, int W, int Cout, int k, int stride, int pad);

static inline int fsd_conv2d_out_size(int n, int k, int stride, int pad) { return (n + 2 * pad - k) / stride + 1; }

/* Bytes of arena scratch forward and backward need for this shape with the current OpenMP thread
 * count (the larger of the two; the same call covers both). */
size_t fsd_conv2d_workspace(int B, int Cin, int H, int W, int Cout, int k, int stride, int pad);

/* out [B,Cout,Ho,Wo] = conv(x, w) + bias. Fails (FSD_ERR_INVALID / FSD_ERR_NOMEM) on bad shapes or
 * when `ws` has less room than fsd_conv2d_workspace() says. */
fsd_status fsd_conv2d_forward(float *out, const float *x, const float *w, const float *bias, int B, int Cin,
                              int H, int W, int Cout, int k, int stride, int pad, fsd_arena *ws);
/* dx [B,Cin,H,W] += dL/dx, dw [Cout,Cin,k,k] += dL/dw, dbias [Cout] += dL/dbias, from
 * dout [B,Cout,Ho,Wo]; x and w as in forward (x may be NULL when dw is NULL, w when dx is NULL). */
fsd_status fsd_conv2d_backward(float *dx, float *dw, float *dbias, const float *dout, const float *x,
                               const float *w, int B, int Cin, int H, int W, int Cout, int k, int stride,
                               int pad, fsd_arena *ws);

/* ---------------------------------------------------------------- nearest x2 upsample
 * out [B,C,2H,2W]: out[b,c,y,x] = x[b,c,y/2,x/2]. Backward: dx [B,C,H,W] += sum of each 2x2 block. */
void fsd_upsample2x_forward(float *out, const float *x, int B, int C, int H, int W);
void fsd_upsample2x_backward(float *dx, const float *dout, int B, int C, int H, int W);

/* ---------------------------------------------------------------- per-(sample, channel) bias
 * out[b,c,:] = x[b,c,:] + bias[b,c] (noise-level injection in the ResNet blocks).
 *   x, out [B,C,HW] (out == x allowed: in-place), bias [B,C].
 * Backward: dx += dout (if dx), dbias[b,c] += sum over HW of dout[b,c,:]. */
void fsd_channel_bias_forward(float *out, const float *x, const float *bias, int B, int C, int HW);
void fsd_channel_bias_backward(float *dx, float *dbias, const float *dout, int B, int C, int HW);

/* ---------------------------------------------------------------- channel concat / split
 * concat: out [B, Ca+Cb, HW] = [a | b] along channels (decoder order: [x, skip]).
 *   a [B,Ca,HW], b [B,Cb,HW]. Backward splits the gradient: da += dout[:, :Ca], db += dout[:, Ca:].
 * split (inverse): a = x[:, :Ca], b = x[:, Ca:]; backward: dx[:, :Ca] += da, dx[:, Ca:] += db
 * (a NULL da/db contributes nothing). */
void fsd_concat_forward(float *out, const float *a, const float *b, int B, int Ca, int Cb, int HW);
void fsd_concat_backward(float *da, float *db, const float *dout, int B, int Ca, int Cb, int HW);
void fsd_split_forward(float *a, float *b, const float *x, int B, int Ca, int Cb, int HW);
void fsd_split_backward(float *dx, const float *da, const float *db, int B, int Ca, int Cb, int HW);

#ifdef __cplusplus
}
#endif
#endif
