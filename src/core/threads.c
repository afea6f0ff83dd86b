/* Thread control for OpenMP and the BLAS, and build facts for `fsdiff --version`. */
#include "fsdiff/core.h"

#include <stdio.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#ifdef FSD_HAVE_OPENBLAS
void openblas_set_num_threads(int num_threads);
char *openblas_get_config(void);
int openblas_get_parallel(void);
#endif

static int g_threads = 0;

void fsd_set_threads(int n) {
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
    snprintf(bb, sizeof bb, "BLAS: OpenBLAS %s (%s threading)", openblas_get_config(),
             openblas_get_parallel() == 2 ? "OpenMP" : openblas_get_parallel() == 1 ? "pthread" : "no");
    blas = bb;
#endif
    snprintf(buf, sizeof buf, "SIMD: %s%s\n%s\n%s\nbuild: %s, %s %s", simd,
#ifdef FSD_PORTABLE
             " (portable build)",
#else
             " (-march=native)",
#endif
             blas, omp,
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
