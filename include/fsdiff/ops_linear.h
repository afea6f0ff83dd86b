/* Linear layer, activations, GEGLU, sinusoidal noise-level embedding, losses and Adam/AdamW
 * (src/ops/linear.c, activation.c, embedding.c, loss.c, optim.c).
 *
 * Conventions (see ops.h): float32; forward writes its output; backward ACCUMULATES (+=) into
 * every gradient, and a NULL gradient pointer is skipped. Elementwise forwards may run in place
 * (y == x). Everything is OpenMP-parallel inside; results do not depend on the thread count
 * except through the order of float summation inside sgemm. */
#ifndef FSDIFF_OPS_LINEAR_H
#define FSDIFF_OPS_LINEAR_H

#include "fsdiff/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- linear */
/* y = x W^T + b.  x (N, in), W (out, in) (PyTorch layout), b [out] or NULL, y (N, out). */
fsd_status fsd_linear_forward(float *y, const float *x, const float *W, const float *b, int N, int in, int out);
/* dx (N, in) += dy W;  dW (out, in) += dy^T x;  db [out] += column sums of dy (N, out).
 * ws: scratch for the db partials (may be NULL: heap). */
fsd_status fsd_linear_backward(float *dx, float *dW, float *db, const float *dy, const float *x, const float *W,
                               int N, int in, int out, fsd_arena *ws);

/* ---------------------------------------------------------------- activations (n elements) */
/* SiLU / Swish: y = x * sigmoid(x) */
void fsd_silu_forward(float *y, const float *x, size_t n);
void fsd_silu_backward(float *dx, const float *dy, const float *x, size_t n);
/* exact GELU: y = x * Phi(x) = x/2 (1 + erf(x / sqrt 2)) */
void fsd_gelu_forward(float *y, const float *x, size_t n);
void fsd_gelu_backward(float *dx, const float *dy, const float *x, size_t n);
/* softplus, beta 1, threshold 20 (PyTorch): y = x for x > 20, else log(1 + e^x) */
void fsd_softplus_forward(float *y, const float *x, size_t n);
void fsd_softplus_backward(float *dx, const float *dy, const float *x, size_t n);
/* GEGLU: x (N, 2F) = [a | g] along the last dim (value first, gate second), y (N, F) = a * GELU(g).
 * y must not alias x. */
void fsd_geglu_forward(float *y, const float *x, int N, int F);
/* dx (N, 2F): d a = dy GELU(g), d g = dy a GELU'(g). */
void fsd_geglu_backward(float *dx, const float *dy, const float *x, int N, int F);

/* ---------------------------------------------------------------- noise-level embedding */
/* SR3 sinusoidal encoding of the continuous noise level gamma (B):
 *   half = C/2, f_k = exp(-ln(1e4) k / half), out[b] = [sin(gamma_b f_0..f_{half-1}), cos(gamma_b f_0..)]
 * out (B, C), sines first; C must be even. */
fsd_status fsd_noise_embedding_forward(float *out, const float *gamma, int B, int C);
/* dgamma [B] += sum_k dout_sin[k] f_k cos(gamma f_k) - dout_cos[k] f_k sin(gamma f_k) */
fsd_status fsd_noise_embedding_backward(float *dgamma, const float *dout, const float *gamma, int B, int C);

/* ---------------------------------------------------------------- losses (means over n) */
/* L1: mean |pred - target|, summed in double. */
double fsd_l1_loss_forward(const float *pred, const float *target, size_t n);
/* dpred += dloss * sign(pred - target) / n (sign(0) = 0, as PyTorch); dtarget gets the negative. */
void fsd_l1_loss_backward(float *dpred, float *dtarget, const float *pred, const float *target, size_t n,
                          float dloss);
/* MSE: mean (pred - target)^2 */
double fsd_mse_loss_forward(const float *pred, const float *target, size_t n);
/* dpred += dloss * 2 (pred - target) / n; dtarget gets the negative. */
void fsd_mse_loss_backward(float *dpred, float *dtarget, const float *pred, const float *target, size_t n,
                           float dloss);
/* Selector used by the trainer (the epsilon loss: L1 is the authors', L2 the option). */
typedef enum fsd_loss_kind { FSD_LOSS_L1 = 0, FSD_LOSS_L2 = 1 } fsd_loss_kind;
fsd_status fsd_loss_kind_parse(const char *name, fsd_loss_kind *out); /* "l1" | "l2" */
double fsd_loss_forward(fsd_loss_kind k, const float *pred, const float *target, size_t n);
/* dpred += dloss * d(loss)/d(pred) */
void fsd_loss_backward(fsd_loss_kind k, float *dpred, const float *pred, const float *target, size_t n, float dloss);

/* ---------------------------------------------------------------- Adam / AdamW */
typedef struct fsd_adam_config {
    float lr, beta1, beta2, eps, weight_decay;
    int decoupled; /* 0: Adam (torch.optim.Adam: L2 term wd*p added to the gradient);
                      1: AdamW (torch.optim.AdamW: p *= 1 - lr*wd before the update) */
} fsd_adam_config;

/* One step over a contiguous parameter buffer: param, grad, m (exp_avg), v (exp_avg_sq) all [n];
 * t = the step number after this step (1 for the first), bias correction as torch:
 *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps) */
void fsd_adam_step(float *param, const float *grad, float *m, float *v, size_t n, const fsd_adam_config *cfg,
                   int64_t t);

#ifdef __cplusplus
}
#endif
#endif
