/* Thread control for OpenMP and the BLAS, and build facts for `fsdiff --version`. */
#include "fsdiff/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#ifdef FSD_HAVE_OPENBLAS
#include <cblas.h>
#include <pthread.h>
void openblas_set_num_threads(int num_threads);
char *openblas_get_config(void);
char *openblas_get_corename(void);
int openblas_get_parallel(void);
/* Exported by DYNAMIC_ARCH builds of OpenBLAS only (Debian's are); weak so other builds still link. */
extern void gotoblas_dynamic_init(void) __attribute__((weak));
extern void gotoblas_dynamic_quit(void) __attribute__((weak));
#endif

static char g_blas_note[160];

#ifdef FSD_HAVE_OPENBLAS
/* A DYNAMIC_ARCH OpenBLAS picks its kernels from a table of CPU models known when it was released; a
 * newer CPU falls through to the SSE3 "Prescott" kernels. Debian 12's 0.3.21 does this on Intel Xeon
 * model 207 (Emerald Rapids): sgemm 66 instead of 330 GFLOP/s on 2 threads, fsdiff fuse 2.4x slower.
 * When the CPU (as the compiler's runtime sees it: CPUID and the OS's saved vector state) can run a
 * better kernel set than the one picked, re-pick it the way OPENBLAS_CORETYPE would, once, before our
 * first product. A user's own OPENBLAS_CORETYPE is left alone. */
static int core_vector_bits(const char *name) {
    static const char *const k512[] = {"SkylakeX", "Cooperlake", "SapphireRapids", NULL};
    static const char *const k256[] = {"Haswell", "Zen", "Excavator", "Steamroller", NULL};
    for (int i = 0; k512[i]; i++)
        if (!strcmp(name, k512[i])) return 512;
    for (int i = 0; k256[i]; i++)
        if (!strcmp(name, k256[i])) return 256;
    return 128;
}

static void blas_pick_kernels(void) {
    if (!gotoblas_dynamic_init || !gotoblas_dynamic_quit || getenv("OPENBLAS_CORETYPE")) return;
    const char *want = NULL;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        want = "SkylakeX";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        want = "Haswell";
#endif
    char have[32];
    snprintf(have, sizeof have, "%s", openblas_get_corename());
    if (!want || core_vector_bits(have) >= core_vector_bits(want)) return;
    setenv("OPENBLAS_CORETYPE", want, 1);
    gotoblas_dynamic_quit();
    gotoblas_dynamic_init();
    unsetenv("OPENBLAS_CORETYPE"); /* leave the environment as we found it */
    snprintf(g_blas_note, sizeof g_blas_note, "OpenBLAS picked its %s kernels for this CPU; switched to %s", have,
             openblas_get_corename());
}
#endif

void fsd_blas_init(void) {
#ifdef FSD_HAVE_OPENBLAS
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, blas_pick_kernels);
#endif
}

const char *fsd_blas_core_name(void) {
    fsd_blas_init();
#ifdef FSD_HAVE_OPENBLAS
    return openblas_get_corename();
#else
    return "";
#endif
}

const char *fsd_blas_kernel_note(void) {
    fsd_blas_init();
    return g_blas_note;
}

static int g_threads = 0;

void fsd_set_threads(int n) {
    fsd_blas_init();
#ifdef _OPENMP
    if (n <= 0) n = omp_get_num_procs();
    omp_set_num_threads(n);
#else
    n = 1;
#endif
#ifdef FSD_HAVE_OPENBLAS
    openblas_set_num_threads(n);
#endif
    g_threads = n;
}

int fsd_get_threads(void) {
    if (g_threads > 0) return g_threads;
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* Probe: one [48 x 96] x [96 x 1000] product computed whole on 1 thread, whole on 2 threads, and as
 * two column blocks split at 500 (not a multiple of any kernel width). OpenBLAS's SkylakeX kernels
 * give the same floats all three ways; its Haswell/Zen kernels (AVX2) do not: an element's rounding
 * depends on where it falls in the kernel's tiles, i.e. on how the work was split. */
int fsd_blas_split_invariant(void) {
    static int cached = -1;
    if (cached >= 0) return cached;
#ifdef FSD_HAVE_OPENBLAS
    fsd_blas_init();
    enum { M = 48, K = 96, N = 1000, H = 500 };
    float *a = malloc(sizeof(float) * (M * K + K * N + 3 * M * N));
    if (!a) return 0;
    float *b = a + M * K, *c1 = b + K * N, *c2 = c1 + M * N, *c3 = c2 + M * N;
    uint32_t st = 12345u;
    for (int i = 0; i < M * K + K * N; i++) {
        st = st * 1664525u + 1013904223u;
        a[i] = (float)(st >> 8) / 16777216.0f - 0.5f;
    }
    const int prev = fsd_get_threads();
    openblas_set_num_threads(1);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a, K, b, N, 0.0f, c1, N);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, H, K, 1.0f, a, K, b, N, 0.0f, c2, N);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N - H, K, 1.0f, a, K, b + H, N, 0.0f, c2 + H, N);
    openblas_set_num_threads(2);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a, K, b, N, 0.0f, c3, N);
    openblas_set_num_threads(prev);
    cached = !memcmp(c1, c2, sizeof(float) * M * N) && !memcmp(c1, c3, sizeof(float) * M * N);
    free(a);
    return cached;
#else
    return 0;
#endif
}

double fsd_time_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *fsd_build_info(void) {
    static char buf[1024];
    const char *simd =
#if defined(__AVX512F__)
        "AVX-512F"
#elif defined(__AVX2__)
        "AVX2"
#elif defined(__AVX__)
        "AVX"
#elif defined(__SSE2__)
        "SSE2"
#elif defined(__ARM_NEON)
        "NEON"
#else
        "scalar"
#endif
        ;
    char omp[64] = "OpenMP: off";
#ifdef _OPENMP
    snprintf(omp, sizeof omp, "OpenMP %d (%d procs)", _OPENMP, omp_get_num_procs());
#endif
    const char *blas = "BLAS: reference/unknown";
#ifdef FSD_HAVE_OPENBLAS
    static char bb[512];
    fsd_blas_init();
    snprintf(bb, sizeof bb, "BLAS: OpenBLAS %s (%s threading)%s%s%s", openblas_get_config(),
             openblas_get_parallel() == 2 ? "OpenMP" : openblas_get_parallel() == 1 ? "pthread" : "no",
             g_blas_note[0] ? " [" : "", g_blas_note, g_blas_note[0] ? "]" : "");
    blas = bb;
#endif
    snprintf(buf, sizeof buf, "SIMD: %s%s\n%s\nBLAS results independent of the thread count: %s\n%s\nbuild: %s, %s %s",
             simd,
#ifdef FSD_PORTABLE
             " (portable build)",
#else
             " (-march=native)",
#endif
             blas, fsd_blas_split_invariant() ? "yes" : "no (fuse and train results depend on --threads)", omp,
#ifdef NDEBUG
             "release",
#else
             "debug",
#endif
#if defined(__clang__)
             "clang", __clang_version__
#elif defined(__GNUC__)
             "gcc", __VERSION__
#else
             "cc", ""
#endif
    );
    return buf;
}
