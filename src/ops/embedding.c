/* SR3 / WaveGrad sinusoidal encoding of the continuous noise level gamma = sqrt(alpha_bar).
 * Frequencies and angles are computed in double: gamma f_k is at most 1 here, but the op is
 * tiny (B x C) so exact libm sin/cos cost nothing. */
#include "fsdiff/ops_linear.h"

#include <math.h>

static fsd_status check(const char *op, const void *a, const void *b, int B, int C) {
    if (!a || !b || B <= 0 || C <= 0 || C % 2 != 0)
        return fsd_fail(FSD_ERR_INVALID, "%s: bad arguments (B %d, C %d; C must be even)", op, B, C);
    return FSD_OK;
}

/* f_k = exp(-ln(1e4) k / half) */
static double freq(int k, int half) { return exp(-log(1e4) * (double)k / (double)half); }

fsd_status fsd_noise_embedding_forward(float *out, const float *gamma, int B, int C) {
    fsd_status st = check("noise_embedding_forward", out, gamma, B, C);
    if (st) return st;
    const int half = C / 2;
    for (int b = 0; b < B; b++) {
        float *o = out + (size_t)b * C;
        for (int k = 0; k < half; k++) {
            double a = (double)gamma[b] * freq(k, half);
            o[k] = (float)sin(a);
            o[half + k] = (float)cos(a);
        }
    }
    return FSD_OK;
}

fsd_status fsd_noise_embedding_backward(float *dgamma, const float *dout, const float *gamma, int B, int C) {
    fsd_status st = check("noise_embedding_backward", dout, gamma, B, C);
    if (st) return st;
    if (!dgamma) return FSD_OK;
    const int half = C / 2;
    for (int b = 0; b < B; b++) {
        const float *g = dout + (size_t)b * C;
        double s = 0.0;
        for (int k = 0; k < half; k++) {
            double f = freq(k, half), a = (double)gamma[b] * f;
            s += f * ((double)g[k] * cos(a) - (double)g[half + k] * sin(a));
        }
        dgamma[b] += (float)s;
    }
    return FSD_OK;
}
