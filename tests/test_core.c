/* core: Philox known-answer vectors, RNG independence from thread count, normal statistics,
 * arena accounting, atomic writes, progress formatting, error messages. */
#include "fsdiff/core.h"
#include "testutil.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Weak: present when the library was linked against a DYNAMIC_ARCH OpenBLAS (Debian's), else NULL. */
extern char *openblas_get_corename(void) __attribute__((weak));
extern void gotoblas_dynamic_init(void) __attribute__((weak));
extern void gotoblas_dynamic_quit(void) __attribute__((weak));
void cblas_sgemm(int order, int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda, const float *b,
                 int ldb, float beta, float *c, int ldc) __attribute__((weak));

static int blas_core_bits(const char *name) {
    const char *k512[] = {"SkylakeX", "Cooperlake", "SapphireRapids"}, *k256[] = {"Haswell", "Zen", "Excavator"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, k512[i])) return 512;
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, k256[i])) return 256;
    return 128;
}

/* fsd_blas_init must lift OpenBLAS off its SSE3 fallback kernels when the CPU runs wider ones. Any machine
 * can show it: force the fallback the way a CPU model unknown to OpenBLAS gets it (before the library's
 * first fsd_blas_init, which runs once), then check the kernels it picked, and that products are right. */
static void blas_kernel_repick(void) {
    if (!openblas_get_corename || !gotoblas_dynamic_init || !gotoblas_dynamic_quit || !cblas_sgemm ||
        getenv("OPENBLAS_CORETYPE")) {
        printf("skip blas_kernel_repick: no DYNAMIC_ARCH OpenBLAS, or OPENBLAS_CORETYPE set\n");
        return;
    }
    int want = 128;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        want = 512;
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        want = 256;
#endif
    char native[32];
    snprintf(native, sizeof native, "%s", openblas_get_corename());
    setenv("OPENBLAS_CORETYPE", "Prescott", 1);
    gotoblas_dynamic_quit();
    gotoblas_dynamic_init();
    unsetenv("OPENBLAS_CORETYPE");
    tu_check(!strcmp(openblas_get_corename(), "Prescott"), "forced fallback: core %s", openblas_get_corename());
    fsd_blas_init();
    const char *now = openblas_get_corename();
    if (want > 128) {
        tu_check(blas_core_bits(now) == want, "fsd_blas_init re-picked %s for a %d-bit CPU (OpenBLAS alone: %s)", now,
                 want, native);
        tu_check(strstr(fsd_blas_kernel_note(), "Prescott") && strstr(fsd_blas_kernel_note(), now),
                 "note says what changed: '%s'", fsd_blas_kernel_note());
    } else {
        tu_check(!strcmp(now, "Prescott") && !fsd_blas_kernel_note()[0], "no wider kernels: left at %s", now);
    }
    tu_check(!getenv("OPENBLAS_CORETYPE"), "environment left as found");
    /* 37 x 29 x 53 product (odd sizes reach the kernels' edge paths) against a double-precision loop */
    enum { M = 37, K = 53, N = 29 };
    static float a[M * K], b[K * N], c[M * N];
    for (int i = 0; i < M * K; i++) a[i] = (float)((i * 7919) % 201 - 100) / 64.0f;
    for (int i = 0; i < K * N; i++) b[i] = (float)((i * 104729) % 199 - 99) / 32.0f;
    cblas_sgemm(101 /* row major */, 111, 111, M, N, K, 1.0f, a, K, b, N, 0.0f, c, N);
    double worst = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double r = 0;
            for (int k = 0; k < K; k++) r += (double)a[i * K + k] * b[k * N + j];
            worst = fmax(worst, fabs(r - c[i * N + j]) / (1.0 + fabs(r)));
        }
    tu_check(worst < 1e-5, "sgemm on the re-picked kernels: max rel. error %.2g (<= 1e-5)", worst);
}

static void philox_kat(void) {
    /* Known-answer vectors of Philox4x32-10 (Salmon et al. 2011, Random123 kat_vectors). */
    uint32_t o[4];
    fsd_philox4x32(0, 0, 0, o);
    tu_check(o[0] == 0x6627e8d5u && o[1] == 0xe169c58du && o[2] == 0xbc57ac4cu && o[3] == 0x9b00dbd8u,
             "philox4x32-10 KAT (zero key/counter): %08x %08x %08x %08x", o[0], o[1], o[2], o[3]);
    fsd_philox4x32(~0ull, ~0ull, ~0ull, o);
    tu_check(o[0] == 0x408f276du && o[1] == 0x41c83b0eu && o[2] == 0xa20bc7c6u && o[3] == 0x6d5451fdu,
             "philox4x32-10 KAT (all ones): %08x %08x %08x %08x", o[0], o[1], o[2], o[3]);
    /* pi digits vector: ctr = {243f6a88, 85a308d3, 13198a2e, 03707344}, key = {a4093822, 299f31d0} */
    fsd_philox4x32(0x299f31d0a4093822ull, 0x0370734413198a2eull, 0x85a308d3243f6a88ull, o);
    tu_check(o[0] == 0xd16cfe09u && o[1] == 0x94fdccebu && o[2] == 0x5001e420u && o[3] == 0x24126ea1u,
             "philox4x32-10 KAT (pi): %08x %08x %08x %08x", o[0], o[1], o[2], o[3]);
}

static void rng_thread_independence(void) {
    const size_t n = 300001; /* above the parallel threshold, odd */
    float *a = tu_zeros(n), *b = tu_zeros(n), *c = tu_zeros(n - 7);
    fsd_rng r = {42, 7};
    omp_set_num_threads(1);
    fsd_rng_normal(&r, 0, a, n);
    omp_set_num_threads(2);
    fsd_rng_normal(&r, 0, b, n);
    tu_check(memcmp(a, b, n * sizeof(float)) == 0, "normal fill bit-identical with 1 and 2 threads");
    fsd_rng_normal(&r, 7, c, n - 7);
    tu_check(memcmp(a + 7, c, (n - 7) * sizeof(float)) == 0, "element i depends only on its index (offset fill)");
    double m = 0, v = 0, k4 = 0;
    for (size_t i = 0; i < n; i++) m += a[i];
    m /= (double)n;
    for (size_t i = 0; i < n; i++) { double d = a[i] - m; v += d * d; k4 += d * d * d * d; }
    v /= (double)n;
    k4 = k4 / (double)n / (v * v);
    /* 5-sigma bounds for n = 3e5: mean 0.0091, var 0.013, kurtosis ~0.045 */
    tu_check(fabs(m) < 0.01 && fabs(v - 1) < 0.015 && fabs(k4 - 3) < 0.06, "normal moments: mean %.4f var %.4f kurtosis %.3f", m, v, k4);
    fsd_rng r2 = {42, 8};
    fsd_rng_normal(&r2, 0, b, n);
    double corr = 0;
    for (size_t i = 0; i < n; i++) corr += a[i] * b[i];
    corr /= (double)n;
    tu_check(fabs(corr) < 0.01, "streams 7 and 8 uncorrelated (%.4f)", corr);
    fsd_rng_uniform(&r, 0, a, n);
    float lo = 1, hi = 0;
    double mu = 0;
    for (size_t i = 0; i < n; i++) { lo = fminf(lo, a[i]); hi = fmaxf(hi, a[i]); mu += a[i]; }
    tu_check(lo >= 0 && hi < 1 && fabs(mu / n - 0.5) < 0.003, "uniform in [0,1): min %.6f max %.6f mean %.4f", lo, hi, mu / n);
    double u = fsd_rng_uniform1(&r, 3);
    tu_check(u >= 0 && u < 1 && u == fsd_rng_uniform1(&r, 3), "scalar uniform draw reproducible");
    fsd_free(a); fsd_free(b); fsd_free(c);
    fsd_set_threads(0);
}

static void arena(void) {
    fsd_arena a;
    tu_check(fsd_arena_init(&a, 1 << 20) == FSD_OK, "arena init 1 MiB");
    size_t m = fsd_arena_mark(&a);
    float *x = fsd_arena_floats(&a, 10);
    float *y = fsd_arena_floats(&a, 10);
    tu_check(((uintptr_t)x % 64) == 0 && ((uintptr_t)y % 64) == 0 && y > x, "arena allocations 64-byte aligned");
    fsd_arena_reset(&a, m);
    tu_check(a.used == 0 && a.peak >= 128, "reset returns memory, peak kept (%zu)", a.peak);
    void *big = fsd_arena_alloc(&a, 2 << 20);
    tu_check(big == NULL && strstr(fsd_error_message(), "arena exhausted"), "exhaustion reported: %s", fsd_error_message());
    tu_check(fsd_arena_alloc(&a, SIZE_MAX - 10) == NULL, "overflowing request refused");
    fsd_arena_free(&a);
}

static void files(void) {
    char dir[] = "/tmp/fsd_test_core_XXXXXX";
    if (!mkdtemp(dir)) { tu_check(0, "mkdtemp"); return; }
    char p[256];
    snprintf(p, sizeof p, "%s/out.bin", dir);
    tu_check(fsd_write_file_atomic(p, "hello", 5) == FSD_OK, "atomic write");
    tu_check(fsd_write_file_atomic(p, "bye", 3) == FSD_OK, "atomic overwrite");
    unsigned char *d;
    size_t n;
    tu_check(fsd_read_file(p, &d, &n) == FSD_OK && n == 3 && !memcmp(d, "bye", 3), "read back replaced content");
    fsd_free(d);
    fsd_atomic_file f;
    tu_check(fsd_atomic_open(&f, p) == FSD_OK, "open streaming atomic file");
    fputs("partial", f.fp);
    fsd_atomic_abort(&f);
    tu_check(fsd_read_file(p, &d, &n) == FSD_OK && n == 3, "aborted write leaves the old file intact");
    fsd_free(d);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "ls %s | wc -l", dir);
    FILE *pp = popen(cmd, "r");
    int count = 0;
    if (pp) { if (fscanf(pp, "%d", &count) != 1) count = -1; pclose(pp); }
    tu_check(count == 1, "no temp files left behind (%d entries)", count);
    tu_check(fsd_read_file("/nonexistent/x", &d, &n) == FSD_ERR_IO && strstr(fsd_error_message(), "No such file"),
             "missing file message: %s", fsd_error_message());
    unlink(p);
    rmdir(dir);
}

static void progress_and_errors(void) {
    char b[256];
    fsd_progress_format(b, sizeof b, "fuse", 25, 100, 5.0, "loss 0.1");
    tu_check(strstr(b, " 25%") && strstr(b, "25/100") && strstr(b, "[00:05<00:15, 5.00 it/s]") && strstr(b, "loss 0.1"),
             "progress line: %s", b);
    fsd_progress_format(b, sizeof b, "train", 1, 10, 4.0, NULL);
    tu_check(strstr(b, "4.00 s/it") && strstr(b, "<00:36"), "slow progress shows s/it: %s", b);
    fsd_status s = fsd_fail(FSD_ERR_INVALID, "bad value %d", 3);
    tu_check(s == FSD_ERR_INVALID && !strcmp(fsd_error_message(), "bad value 3"), "fsd_fail sets message and returns code");
    int64_t shp[3] = {2, 3, 4};
    fsd_tensor t;
    tu_check(fsd_tensor_alloc(&t, 3, shp) == FSD_OK && fsd_tensor_numel(&t) == 24 && t.data[23] == 0.0f, "tensor alloc zeroed");
    fsd_tensor_free(&t);
    int64_t bad[2] = {-1, 3};
    tu_check(fsd_tensor_alloc(&t, 2, bad) == FSD_ERR_INVALID, "negative dimension refused");
}

int main(void) {
    blas_kernel_repick(); /* first: it needs the library's one-time BLAS set-up not to have run yet */
    philox_kat();
    rng_thread_independence();
    arena();
    files();
    progress_and_errors();
    return tu_summary();
}
