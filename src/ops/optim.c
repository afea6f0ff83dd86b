/* Adam / AdamW over one contiguous parameter buffer, following torch.optim.Adam / AdamW
 * (PyTorch 1.13 single-tensor path) operation by operation:
 *   Adam:  g += wd p                          AdamW: p *= 1 - lr wd
 *   m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2
 *   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * Bias corrections are computed in double once per step; the loop is elementwise and vectorised
 * (sqrt through ops/vmath.h, since libm sqrtf does not vectorise without -fno-math-errno). */
/* Contraction of a*b+c into fma is left to the explicit FSD_FMAF calls (vmath.h): GCC otherwise
 * contracts the vector loop body and its scalar peel/remainder differently, and an element's
 * value would depend on where the OpenMP chunk boundaries fall, i.e. on the thread count. */
#pragma GCC optimize("fp-contract=off")

#include "fsdiff/ops_linear.h"

#include "ops/vmath.h"

#include <math.h>

#define PAR_MIN_ELEMS 32768

void fsd_adam_step(float *param, const float *grad, float *m, float *v, size_t n, const fsd_adam_config *cfg,
                   int64_t t) {
    if (n == 0 || t < 1) return;
    const double b1 = cfg->beta1, b2 = cfg->beta2;
    const float step_size = (float)((double)cfg->lr / (1.0 - pow(b1, (double)t)));
    const float inv_bc2_sqrt = (float)(1.0 / sqrt(1.0 - pow(b2, (double)t)));
    const float beta1 = cfg->beta1, beta2 = cfg->beta2, omb1 = (float)(1.0 - b1), omb2 = (float)(1.0 - b2);
    const float eps = cfg->eps;
    const float wd = cfg->weight_decay;
    const float l2 = cfg->decoupled ? 0.0f : wd;                                     /* Adam: into g */
    const float shrink = cfg->decoupled ? (float)(1.0 - (double)cfg->lr * wd) : 1.0f; /* AdamW: on p */
#pragma omp parallel for simd schedule(static) if (n >= PAR_MIN_ELEMS)
    for (size_t i = 0; i < n; i++) {
        float p = param[i] * shrink;
        float g = grad[i] + l2 * param[i];
        float mi = beta1 * m[i] + omb1 * g;
        float vi = beta2 * v[i] + omb2 * g * g;
        m[i] = mi;
        v[i] = vi;
        float denom = fsd_sqrtf(vi) * inv_bc2_sqrt + eps;
        param[i] = p - step_size * mi / denom;
    }
}
