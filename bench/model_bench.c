/* Whole-network benchmark (our side of `bench/model`): one U-Net inference forward, or one full
 * training step (forward train=1 + L1 loss + backward + Adam over all parameters), timed as the
 * median of several runs, plus peak memory. bench/model_torch.py runs this once per case, right
 * before the PyTorch twin of the same case, and prints the table.
 *
 * Usage: bench_model_bench --preset NAME --mode fwd|train [--batch B] [--size H[xW]] [--threads N]
 *                          [--mamba none|forward|bidirectional] [--reps R] [--min-time S] [--best]
 *                          [--tsv]
 *   --mamba   overrides the preset's stem (the bottleneck Mamba is left as the preset has it)
 *   --tsv     one machine-readable line:
 *             model<TAB>preset<TAB>mode<TAB>B<TAB>H<TAB>W<TAB>ms<TAB>params<TAB>act_peak<TAB>ws_peak
 *             <TAB>state_bytes<TAB>rss_base<TAB>rss_max<TAB>runs
 *   state_bytes = parameters (+ gradients + Adam m, v in train mode); act/ws = fsd_net_memory peaks;
 *   rss_base = max RSS after creating the net and its inputs, rss_max = max RSS at the end (bytes). */
#include "fsdiff/nn.h"
#include "fsdiff/ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static void die(const char *what) {
    fprintf(stderr, "bench_model: %s: %s\n", what, fsd_error_message());
    exit(1);
}

/* Peak RSS of this process image: VmHWM (getrusage's ru_maxrss would include the RSS of the
 * parent we were forked from, e.g. the Python driver with torch loaded). */
static size_t max_rss_bytes(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kb = strtoull(line + 6, NULL, 10);
    if (f) fclose(f);
    if (!kb) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        kb = (size_t)ru.ru_maxrss;
    }
    return kb * 1024;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void fill(float *p, size_t n, uint64_t seed, float lo, float hi) {
    fsd_rng r = {seed, 0};
    fsd_rng_uniform(&r, 0, p, n);
    for (size_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * p[i];
}

/* Values like a trained net's scale (the speed does not depend on them, but subnormals would):
 * weights U(-1,1)/sqrt(fan_in), norm weights and Mamba D 1, A_log log(1..N), biases 0.01. */
static void init_params(fsd_params *p) {
    for (int k = 0; k < p->n; k++) {
        const fsd_param *e = &p->t[k];
        float *d = p->data + e->offset;
        if (e->init == FSD_INIT_ORTHO) {
            float s = 1.0f / sqrtf((float)(e->numel / (size_t)e->shape[0]));
            fill(d, e->numel, 100 + (uint64_t)k, -s, s);
        } else if (e->init == FSD_INIT_ONE) {
            for (size_t i = 0; i < e->numel; i++) d[i] = 1.0f;
        } else if (e->init == FSD_INIT_ALOG) {
            int N = (int)e->shape[1];
            for (size_t i = 0; i < e->numel; i++) d[i] = logf((float)(i % (size_t)N) + 1.0f);
        } else {
            for (size_t i = 0; i < e->numel; i++) d[i] = 0.01f;
        }
    }
}

int main(int argc, char **argv) {
    const char *preset = "cpu", *mode = "fwd", *mamba = NULL;
    int B = 4, H = 128, W = 128, threads = 2, reps = 3, tsv = 0, best = 0;
    double min_time = 1.0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--blas-core")) { /* for bench/ops, bench/model: PyTorch gets the same kernels */
            printf("%s\n", fsd_blas_core_name());
            return 0;
        }
        if (!strcmp(argv[i], "--preset") && i + 1 < argc) preset = argv[++i];
        else if (!strcmp(argv[i], "--mode") && i + 1 < argc) mode = argv[++i];
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) B = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--size") && i + 1 < argc) {
            const char *s = argv[++i];
            H = W = atoi(s);
            const char *x = strchr(s, 'x');
            if (x) W = atoi(x + 1);
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--mamba") && i + 1 < argc) mamba = argv[++i];
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--min-time") && i + 1 < argc) min_time = atof(argv[++i]);
        else if (!strcmp(argv[i], "--best")) best = 1;
        else if (!strcmp(argv[i], "--tsv")) tsv = 1;
        else {
            fprintf(stderr, "usage: %s --preset NAME --mode fwd|train [--batch B] [--size H[xW]] [--threads N] "
                            "[--mamba M] [--reps R] [--min-time S] [--best] [--tsv]\n", argv[0]);
            return 2;
        }
    }
    int train = !strcmp(mode, "train");
    if ((!train && strcmp(mode, "fwd")) || B < 1 || H < 1 || W < 1 || threads < 1 || reps < 1) {
        fprintf(stderr, "bench_model: bad --mode/--batch/--size/--threads/--reps\n");
        return 2;
    }
    fsd_set_threads(threads);

    fsd_net_config cfg;
    if (fsd_net_config_preset(&cfg, preset)) die("preset");
    if (mamba) {
        if (!strcmp(mamba, "none")) cfg.mamba = FSD_MAMBA_NONE;
        else if (!strcmp(mamba, "forward")) cfg.mamba = FSD_MAMBA_FORWARD;
        else if (!strcmp(mamba, "bidirectional")) cfg.mamba = FSD_MAMBA_BIDIR;
        else {
            fprintf(stderr, "bench_model: --mamba none|forward|bidirectional\n");
            return 2;
        }
    }
    fsd_net *net;
    if (fsd_net_create(&net, &cfg)) die("create");
    fsd_params *p = fsd_net_params(net);
    init_params(p);
    size_t total = p->total, numel = 0;
    for (int k = 0; k < p->n; k++) numel += p->t[k].numel;
    float *m = NULL, *v = NULL;
    if (train) {
        m = fsd_calloc(total, sizeof(float)), v = fsd_calloc(total, sizeof(float));
        if (!m || !v) die("adam state");
    }
    size_t nx = (size_t)B * cfg.in_channels * H * W, ne = (size_t)B * cfg.out_channels * H * W;
    size_t nc = (size_t)B * cfg.context_tokens * cfg.context_dim;
    float *x = fsd_alloc(nx * sizeof(float)), *ctx = fsd_alloc(nc * sizeof(float)), *gamma = fsd_alloc(B * sizeof(float));
    float *eps = fsd_alloc(ne * sizeof(float)), *target = fsd_alloc(ne * sizeof(float));
    float *deps = fsd_alloc(ne * sizeof(float));
    if (!x || !ctx || !gamma || !eps || !target || !deps) die("inputs");
    fill(x, nx, 1, -1, 1), fill(ctx, nc, 2, -1, 1), fill(gamma, (size_t)B, 3, 0.1f, 0.9f), fill(target, ne, 4, -1, 1);
    size_t rss_base = max_rss_bytes();

    fsd_adam_config ac = {1e-4f, 0.9f, 0.999f, 1e-8f, 0.0f, 0};
    int64_t step = 0;
    double loss_sum = 0;
    /* one call = what is timed */
#define RUN_ONCE()                                                                                   \
    do {                                                                                             \
        if (!train) {                                                                                \
            if (fsd_net_forward(net, x, gamma, ctx, eps, B, H, W, 0, 0, 0)) die("forward");           \
        } else {                                                                                     \
            fsd_net_zero_grad(net);                                                                  \
            if (fsd_net_forward(net, x, gamma, ctx, eps, B, H, W, 1, 7, (uint64_t)step)) die("forward"); \
            loss_sum += fsd_loss_forward(FSD_LOSS_L1, eps, target, ne);                               \
            memset(deps, 0, ne * sizeof(float));                                                     \
            fsd_loss_backward(FSD_LOSS_L1, deps, eps, target, ne, 1.0f);                              \
            if (fsd_net_backward(net, deps, NULL)) die("backward");                                  \
            fsd_adam_step(p->data, p->grad, m, v, total, &ac, ++step);                               \
        }                                                                                            \
    } while (0)

    RUN_ONCE(); /* warm-up: grows the arenas to this shape */
    double t[200];
    int n = 0;
    double start = fsd_time_seconds();
    while (n < 200 && (n < reps || fsd_time_seconds() - start < min_time)) {
        double t0 = fsd_time_seconds();
        RUN_ONCE();
        t[n++] = fsd_time_seconds() - t0;
    }
    qsort(t, (size_t)n, sizeof(double), cmp_double);
    double ms = 1e3 * (best ? t[0] : (n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2])));
    size_t ap, sp;
    fsd_net_memory(net, &ap, &sp);
    size_t state = total * sizeof(float) * (train ? 4 : 1); /* params (+ grads + Adam m, v) */
    size_t rss = max_rss_bytes();
    if (!isfinite(loss_sum)) fprintf(stderr, "bench_model: warning: non-finite loss\n");
    if (tsv) {
        printf("model\t%s\t%s\t%d\t%d\t%d\t%.3f\t%zu\t%zu\t%zu\t%zu\t%zu\t%zu\t%d\n", preset, mode, B, H, W, ms, numel, ap,
               sp, state, rss_base, rss, n);
    } else {
        const double MiB = 1.0 / 1048576.0;
        printf("%s %s B=%d %dx%d, %d threads, %.2f M params: %s of %d runs %.1f ms\n", preset, mode, B, H, W, threads,
               numel / 1e6, best ? "best" : "median", n, ms);
        printf("  memory: activations %.1f MiB + scratch %.1f MiB + params%s %.1f MiB = %.1f MiB; max RSS %.1f MiB "
               "(%.1f MiB before the first run)\n",
               ap * MiB, sp * MiB, train ? "/grads/Adam" : "", state * MiB, (ap + sp + state) * MiB, rss * MiB,
               rss_base * MiB);
    }
    fsd_free(x), fsd_free(ctx), fsd_free(gamma), fsd_free(eps), fsd_free(target), fsd_free(deps);
    fsd_free(m), fsd_free(v);
    fsd_net_free(net);
    return 0;
}
