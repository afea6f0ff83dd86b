/* Memory-bound channel ops of the U-Net: nearest x2 upsample, per-(sample, channel) bias (noise-level
 * injection) and channel concat/split for the decoder skips. All NCHW; planes are the unit of work,
 * so every loop is parallel over (b, c) planes with contiguous inner loops the compiler vectorises. */
#include "fsdiff/ops_conv.h"

#include <string.h>

/* Below this many floats a fork/join costs more than the copy: run on the calling thread. */
#define PAR_MIN 32768

/* ---------------------------------------------------------------- nearest x2 upsample */

/* x [B,C,H,W] -> out [B,C,2H,2W]; each input pixel fills a 2x2 block. */
void fsd_upsample2x_forward(float *out, const float *x, int B, int C, int H, int W) {
    const long planes = (long)B * C;
    const int W2 = 2 * W;
#pragma omp parallel for schedule(static) if(planes * H * W * 5 > PAR_MIN)
    for (long p = 0; p < planes; p++) {
        const float *xp = x + p * H * W;
        float *op = out + p * 4 * H * W;
        for (int y = 0; y < H; y++) {
            float *row = op + (size_t)(2 * y) * W2;
            const float *src = xp + (size_t)y * W;
            for (int i = 0; i < W; i++) {
                row[2 * i] = src[i];
                row[2 * i + 1] = src[i];
            }
            memcpy(row + W2, row, (size_t)W2 * sizeof(float)); /* second output row is a copy */
        }
    }
}

/* dout [B,C,2H,2W] -> dx [B,C,H,W] += sum of each 2x2 block. */
void fsd_upsample2x_backward(float *dx, const float *dout, int B, int C, int H, int W) {
    const long planes = (long)B * C;
    const int W2 = 2 * W;
#pragma omp parallel for schedule(static) if(planes * H * W * 5 > PAR_MIN)
    for (long p = 0; p < planes; p++) {
        const float *gp = dout + p * 4 * H * W;
        float *dp = dx + p * H * W;
        for (int y = 0; y < H; y++) {
            const float *r0 = gp + (size_t)(2 * y) * W2, *r1 = r0 + W2;
            float *d = dp + (size_t)y * W;
            for (int i = 0; i < W; i++) d[i] += (r0[2 * i] + r0[2 * i + 1]) + (r1[2 * i] + r1[2 * i + 1]);
        }
    }
}

/* ---------------------------------------------------------------- per-(sample, channel) bias */

/* out[b,c,:] = x[b,c,:] + bias[b,c]; out may alias x. */
void fsd_channel_bias_forward(float *out, const float *x, const float *bias, int B, int C, int HW) {
    const long planes = (long)B * C;
#pragma omp parallel for schedule(static) if(planes * HW > PAR_MIN)
    for (long p = 0; p < planes; p++) {
        const float v = bias[p];
        const float *xp = x + p * HW;
        float *op = out + p * HW;
        for (int i = 0; i < HW; i++) op[i] = xp[i] + v;
    }
}

/* Sum of g[0..n) (and dst[i] += g[i] when dst): one pass over g with 4 independent 16-wide
 * accumulators, so the adds are not serialised on one register's latency; the final sum in double. */
static double sum_and_add(float *restrict dst, const float *restrict g, int n) {
    float acc[4][16] = {{0}};
    int i = 0;
    if (dst)
        for (; i + 64 <= n; i += 64)
            for (int r = 0; r < 4; r++)
                for (int j = 0; j < 16; j++) {
                    const float v = g[i + 16 * r + j];
                    acc[r][j] += v;
                    dst[i + 16 * r + j] += v;
                }
    else
        for (; i + 64 <= n; i += 64)
            for (int r = 0; r < 4; r++)
                for (int j = 0; j < 16; j++) acc[r][j] += g[i + 16 * r + j];
    double s = 0;
    for (int r = 0; r < 4; r++)
        for (int j = 0; j < 16; j++) s += acc[r][j];
    for (; i < n; i++) {
        s += g[i];
        if (dst) dst[i] += g[i];
    }
    return s;
}

/* dx += dout; dbias[b,c] += sum_i dout[b,c,i]; one pass over dout. */
void fsd_channel_bias_backward(float *dx, float *dbias, const float *dout, int B, int C, int HW) {
    const long planes = (long)B * C;
#pragma omp parallel for schedule(static) if(planes * HW > PAR_MIN)
    for (long p = 0; p < planes; p++) {
        const float *gp = dout + p * HW;
        if (dbias) {
            dbias[p] += (float)sum_and_add(dx ? dx + p * HW : NULL, gp, HW);
        } else if (dx) {
            float *dp = dx + p * HW;
            for (int i = 0; i < HW; i++) dp[i] += gp[i];
        }
    }
}

/* ---------------------------------------------------------------- concat / split along channels */

/* out [B,Ca+Cb,HW] = [a | b]. Per sample the two inputs are contiguous blocks, so this is 2B memcpys. */
void fsd_concat_forward(float *out, const float *a, const float *b, int B, int Ca, int Cb, int HW) {
    const size_t na = (size_t)Ca * HW, nb = (size_t)Cb * HW;
#pragma omp parallel for schedule(static) if((long)B * (na + nb) > PAR_MIN)
    for (int i = 0; i < 2 * B; i++) {
        const int s = i / 2;
        float *o = out + (size_t)s * (na + nb);
        if (i % 2 == 0) memcpy(o, a + s * na, na * sizeof(float));
        else memcpy(o + na, b + s * nb, nb * sizeof(float));
    }
}

/* Adds src[n] into dst[n] over planes of `chunk` values, in parallel. */
static void add_blocks(float *dst, size_t dst_stride, const float *src, size_t src_stride, int B, size_t n) {
    const size_t chunk = 16384; /* split big per-sample blocks so both cores get work when B is small */
    const size_t per = (n + chunk - 1) / chunk;
    const long tasks = (long)B * (long)per;
#pragma omp parallel for schedule(static) if(tasks * (long)chunk > PAR_MIN)
    for (long t = 0; t < tasks; t++) {
        const size_t s = (size_t)t / per, c0 = ((size_t)t % per) * chunk;
        const size_t c1 = c0 + chunk < n ? c0 + chunk : n;
        float *d = dst + s * dst_stride;
        const float *g = src + s * src_stride;
        for (size_t i = c0; i < c1; i++) d[i] += g[i];
    }
}

/* da += dout[:, :Ca], db += dout[:, Ca:]. */
void fsd_concat_backward(float *da, float *db, const float *dout, int B, int Ca, int Cb, int HW) {
    const size_t na = (size_t)Ca * HW, nb = (size_t)Cb * HW;
    if (da) add_blocks(da, na, dout, na + nb, B, na);
    if (db) add_blocks(db, nb, dout + na, na + nb, B, nb);
}

/* a = x[:, :Ca], b = x[:, Ca:] (NULL output skipped). */
void fsd_split_forward(float *a, float *b, const float *x, int B, int Ca, int Cb, int HW) {
    const size_t na = (size_t)Ca * HW, nb = (size_t)Cb * HW;
#pragma omp parallel for schedule(static) if((long)B * (na + nb) > PAR_MIN)
    for (int i = 0; i < 2 * B; i++) {
        const int s = i / 2;
        const float *xs = x + (size_t)s * (na + nb);
        if (i % 2 == 0) {
            if (a) memcpy(a + s * na, xs, na * sizeof(float));
        } else if (b) {
            memcpy(b + s * nb, xs + na, nb * sizeof(float));
        }
    }
}

/* dx[:, :Ca] += da, dx[:, Ca:] += db. */
void fsd_split_backward(float *dx, const float *da, const float *db, int B, int Ca, int Cb, int HW) {
    const size_t na = (size_t)Ca * HW, nb = (size_t)Cb * HW;
    if (da) add_blocks(dx, na + nb, da, na, B, na);
    if (db) add_blocks(dx + na, na + nb, db, nb, B, nb);
}
