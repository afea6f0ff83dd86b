/* Philox4x32-10 (Salmon et al., SC'11): a counter-based generator. Each output is a pure function
 * of (key, counter), so any element of any stream can be computed independently -> results do
 * not depend on how work is split across threads. */
#include "fsdiff/core.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static inline uint32_t mulhilo(uint32_t a, uint32_t b, uint32_t *hi) {
    uint64_t p = (uint64_t)a * b;
    *hi = (uint32_t)(p >> 32);
    return (uint32_t)p;
}

void fsd_philox4x32(uint64_t key, uint64_t ctr_hi, uint64_t ctr_lo, uint32_t out[4]) {
    uint32_t c0 = (uint32_t)ctr_lo, c1 = (uint32_t)(ctr_lo >> 32);
    uint32_t c2 = (uint32_t)ctr_hi, c3 = (uint32_t)(ctr_hi >> 32);
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int r = 0; r < 10; r++) {
        uint32_t hi0, hi1;
        uint32_t lo0 = mulhilo(PHILOX_M0, c0, &hi0);
        uint32_t lo1 = mulhilo(PHILOX_M1, c2, &hi1);
        uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

/* 24 high bits -> float in [0,1) exactly representable. */
static inline float u32_to_unit(uint32_t x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }

void fsd_rng_uniform(const fsd_rng *r, uint64_t offset, float *out, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        uint64_t e = offset + i;
        uint32_t v[4];
        fsd_philox4x32(r->seed, r->stream, e >> 2, v);
        out[i] = u32_to_unit(v[e & 3]);
    }
}

/* Element e uses block e>>1: words (0,1) for even e, (2,3) for odd e; Box-Muller cos/sin pair. */
void fsd_rng_normal(const fsd_rng *r, uint64_t offset, float *out, size_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        uint64_t e = offset + i;
        uint32_t v[4];
        fsd_philox4x32(r->seed, r->stream ^ 0x8000000000000000ull, e >> 1, v);
        int j = (int)(e & 1) * 2;
        /* u1 in (0,1]: never log(0) */
        double u1 = ((double)(v[j] >> 8) + 1.0) / 16777216.0;
        double u2 = (double)(v[j + 1] >> 8) / 16777216.0;
        double rad = sqrt(-2.0 * log(u1));
        out[i] = (float)(rad * cos(6.283185307179586 * u2));
    }
}

double fsd_rng_uniform1(const fsd_rng *r, uint64_t index) {
    uint32_t v[4];
    fsd_philox4x32(r->seed, r->stream ^ 0x4000000000000000ull, index, v);
    uint64_t bits = ((uint64_t)v[0] << 21) ^ (uint64_t)(v[1] >> 11); /* 53 bits */
    return (double)(bits & ((1ull << 53) - 1)) / 9007199254740992.0;
}

uint32_t fsd_rng_u32(const fsd_rng *r, uint64_t index) {
    uint32_t v[4];
    fsd_philox4x32(r->seed, r->stream ^ 0x2000000000000000ull, index, v);
    return v[0];
}
