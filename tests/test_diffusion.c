/* Diffusion schedules, step spacing, training draw and samplers against the numpy twin
 * (tests/ref/ref_diffusion.py), plus properties that need no twin.
 *
 * Tolerances:
 *  - schedules (double buffers vs numpy float64): per-element |got - ref| <= 1e-6 |ref| (measured ~1e-15);
 *  - levels: exact;
 *  - training draw: t exact; γ, ε, x_t rel_err (testutil.h) <= 1e-6 (same Philox words; only libm's
 *    log/cos may differ in the last bit before the float rounding);
 *  - samplers on the toy Gaussian (closed-form denoiser, same noise on both sides): x_T, every
 *    intermediate x and x̂₀, and the result rel_err <= 1e-5; ddim(eta=1) vs ddpm, same levels and
 *    seed: rel_err <= 1e-5 (the two updates are algebraically identical);
 *  - statistics: 8192 samples of x0 ~ N(mu, s²), standardised z = (x - mu)/s: |mean z| <= 0.05
 *    (1 sd = 0.011), |sd z - 1| <= 0.04 (1 sd = 0.008);
 *  - accuracy vs the exact probability-flow solution (Gaussian data: the ODE keeps the standardised
 *    value, x0* = mu + s (x_T - γ_T mu) / sqrt(γ_T² s² + 1 - γ_T²)): dpmpp2m-20 error < ddim-20 error,
 *    and dpmpp2m-20 RMS error <= 1e-3;
 *  - 1 vs 2 threads: bit-identical (memcmp). */
#include "fsdiff/diffusion.h"
#include "fsdiff/ops_linear.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *base(const char *p) { return strrchr(p, '/') ? strrchr(p, '/') + 1 : p; }

/* ---------------------------------------------------------------- toy denoiser */
typedef struct toy {
    const float *mu; /* [nps] */
    double s;
    size_t nps;
    int calls;
    int fail_at; /* return an error on this call (-1: never) */
    int nan_at;  /* write a NaN on this call (-1: never) */
} toy;

/* exact ε̂ for x0 ~ N(mu, s²): σ (x - γ mu) / (γ² s² + σ²) */
static fsd_status toy_eps(void *ctx, const float *x, const float *gamma, float *eps, int B) {
    toy *t = ctx;
    if (t->calls++ == t->fail_at) return fsd_fail(FSD_ERR_IO, "toy denoiser: injected failure");
    for (int b = 0; b < B; b++) {
        double g = gamma[b], sig2 = 1.0 - g * g, den = g * g * t->s * t->s + sig2, sig = sqrt(sig2);
        for (size_t e = 0; e < t->nps; e++) {
            size_t q = (size_t)b * t->nps + e;
            eps[q] = (float)(sig * ((double)x[q] - g * (double)t->mu[e]) / den);
        }
    }
    if (t->calls - 1 == t->nan_at) eps[0] = NAN;
    return FSD_OK;
}

typedef struct recorder {
    float *x, *x0; /* [K][n] */
    size_t n;
    int steps;
    int levels_ok;
    const int *levels;
} recorder;

static fsd_status record(void *ctx, const fsd_step_info *in) {
    recorder *r = ctx;
    size_t n = (size_t)in->B * in->n_per_sample;
    if (n != r->n || in->k != r->steps) return fsd_fail(FSD_ERR_INTERNAL, "recorder: unexpected step");
    if (r->levels && r->levels[in->k] != in->level) r->levels_ok = 0;
    memcpy(r->x + (size_t)in->k * n, in->x, n * sizeof(float));
    memcpy(r->x0 + (size_t)in->k * n, in->x0_hat, n * sizeof(float));
    r->steps++;
    return FSD_OK;
}

static fsd_status schedule_from_meta(const fsd_safetensors *st, fsd_schedule *s) {
    fsd_beta_kind kind;
    fsd_status r = fsd_beta_kind_parse(tu_meta_str(st, "kind", ""), &kind);
    if (r != FSD_OK) return r;
    return fsd_schedule_init(s, kind, tu_meta_int(st, "T", 0), tu_meta_double(st, "beta_start", 0),
                             tu_meta_double(st, "beta_end", 0));
}

/* ---------------------------------------------------------------- schedules */
static double max_rel_d(const double *got, const unsigned char *raw, size_t n) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double r;
        memcpy(&r, raw + 8 * i, 8);
        double d = fabs(got[i] - r), den = fabs(r) > 1e-300 ? fabs(r) : 1.0;
        if (!(d / den <= worst)) worst = isnan(d) ? INFINITY : d / den;
    }
    return worst;
}

static void schedule_cases(void) {
    char **paths;
    int nc = tu_list_cases("diffusion/schedule", &paths);
    tu_check(nc >= 10, "schedule cases found (%d)", nc);
    double overall = 0;
    for (int c = 0; c < nc; c++) {
        fsd_safetensors st;
        if (fsd_st_open(&st, paths[c]) != FSD_OK) {
            tu_check(0, "open %s: %s", paths[c], fsd_error_message());
            continue;
        }
        fsd_schedule s;
        if (!tu_check(schedule_from_meta(&st, &s) == FSD_OK, "%s: schedule init (%s)", base(paths[c]),
                      fsd_error_message())) {
            fsd_st_close(&st);
            continue;
        }
        struct { const char *name; const double *v; size_t n; } arrs[] = {
            {"betas", s.betas, s.T}, {"acp", s.acp, s.T}, {"acp_prev", s.acp_prev, s.T},
            {"sqrt_prev", s.sqrt_prev, s.T + 1}, {"post_var", s.post_var, s.T},
            {"post_logvar", s.post_logvar, s.T}, {"post_c1", s.post_c1, s.T}, {"post_c2", s.post_c2, s.T}};
        double worst = 0;
        int shapes_ok = 1;
        for (int a = 0; a < 8; a++) {
            const fsd_st_tensor *t = fsd_st_find(&st, arrs[a].name);
            if (!t || t->dtype != FSD_F64 || fsd_st_numel(t) != (int64_t)arrs[a].n) {
                shapes_ok = 0;
                continue;
            }
            double e = max_rel_d(arrs[a].v, t->data, arrs[a].n);
            if (!(e <= worst)) worst = e;
        }
        tu_check(shapes_ok && worst <= 1e-6, "%s: all buffers, max per-element rel err %.3g <= 1e-6",
                 base(paths[c]), worst);
        if (worst > overall) overall = worst;
        fsd_schedule_free(&s);
        fsd_st_close(&st);
    }
    printf("  schedules: max per-element relative error over all cases %.3g\n", overall);
    tu_free_list(paths, nc);
}

/* ---------------------------------------------------------------- levels */
static void level_cases(void) {
    char path[2048];
    snprintf(path, sizeof path, "%s/diffusion/levels.safetensors", tu_ref_dir());
    fsd_safetensors st;
    if (!tu_check(fsd_st_open(&st, path) == FSD_OK, "open levels: %s", fsd_error_message())) return;
    int good = 0;
    for (int q = 0; q < st.n_tensors; q++) {
        const fsd_st_tensor *t = &st.tensors[q];
        char sp_name[32], kind_name[32];
        int T, K, ok;
        fsd_spacing sp;
        int *lv;
        if (sscanf(t->name, "logsnr_%31[a-z]_%d_%d", kind_name, &T, &K) == 3) {
            /* the twin's schedules: linear 1000 1e-4..2e-2, cosine 1000, linear 2000 1e-6..1e-2, linear 50 1e-4..0.2 */
            fsd_beta_kind bk;
            fsd_schedule s;
            fsd_beta_kind_parse(kind_name, &bk);
            double b0 = T == 2000 ? 1e-6 : 1e-4, b1 = T == 2000 ? 1e-2 : T == 50 ? 0.2 : 2e-2;
            if (fsd_schedule_init(&s, bk, T, b0, b1) != FSD_OK) continue;
            sp = FSD_SPACING_LOGSNR;
            lv = malloc(sizeof(int) * K);
            ok = fsd_diffusion_levels_for(&s, K, sp, lv) == FSD_OK && t->dtype == FSD_I32 && fsd_st_numel(t) == K;
            fsd_schedule_free(&s);
        } else if (sscanf(t->name, "%31[a-z]_%d_%d", sp_name, &T, &K) == 3) {
            lv = malloc(sizeof(int) * K);
            ok = fsd_spacing_parse(sp_name, &sp) == FSD_OK && fsd_diffusion_levels(T, K, sp, lv) == FSD_OK &&
                 t->dtype == FSD_I32 && fsd_st_numel(t) == K;
        } else continue;
        for (int j = 0; ok && j < K; j++) {
            int32_t r;
            memcpy(&r, t->data + 4 * j, 4);
            ok = lv[j] == r;
        }
        /* properties: the first level is T-1 for linspace/trailing, the last is 0 for linspace/leading */
        if (ok && sp != FSD_SPACING_LEADING) ok = lv[0] == T - 1;
        if (ok && sp != FSD_SPACING_TRAILING && K > 1) ok = lv[K - 1] == 0;
        if (ok && K == T)
            for (int j = 0; j < K; j++) ok &= lv[j] == T - 1 - j;
        tu_check(ok, "levels %s matches the twin", t->name);
        good += ok;
        free(lv);
    }
    tu_check(good >= 60, "%d level lists checked", good);
    int lv[4];
    tu_check(fsd_diffusion_levels(10, 11, FSD_SPACING_LINSPACE, lv) == FSD_ERR_INVALID, "levels: K > T refused");
    tu_check(fsd_diffusion_levels(10, 0, FSD_SPACING_LINSPACE, lv) == FSD_ERR_INVALID, "levels: K = 0 refused");
    fsd_st_close(&st);
}

/* ---------------------------------------------------------------- training draw */
static void train_cases(void) {
    char **paths;
    int nc = tu_list_cases("diffusion/train", &paths);
    tu_check(nc >= 3, "train cases found (%d)", nc);
    for (int c = 0; c < nc; c++) {
        fsd_safetensors st;
        if (fsd_st_open(&st, paths[c]) != FSD_OK) continue;
        const char *nm = base(paths[c]);
        fsd_schedule s;
        schedule_from_meta(&st, &s);
        int B = tu_meta_int(&st, "B", 0), nps = tu_meta_int(&st, "nps", 0), per = tu_meta_int(&st, "per_sample", 0);
        fsd_rng rng = {(uint64_t)tu_meta_int(&st, "seed", 0), (uint64_t)tu_meta_int(&st, "stream", 0)};
        uint64_t s0 = (uint64_t)tu_meta_int(&st, "sample0", 0);
        size_t n = (size_t)B * nps;
        float *x0 = tu_get(&st, "x0", NULL), *g_ref = tu_get(&st, "gamma", NULL), *e_ref = tu_get(&st, "eps", NULL);
        float *xt_ref = tu_get(&st, "x_t", NULL);
        const fsd_st_tensor *tt = fsd_st_find(&st, "t");
        float *g = tu_zeros(B), *eps = tu_zeros(n), *xt = tu_zeros(n);
        int *t = calloc(B, sizeof(int));
        tu_check(fsd_diffusion_train_draw(&s, &rng, s0, B, nps, per, x0, t, g, eps, xt) == FSD_OK, "%s: runs", nm);
        int t_ok = tt && tt->dtype == FSD_I32 && fsd_st_numel(tt) == B;
        for (int b = 0; t_ok && b < B; b++) {
            int32_t r;
            memcpy(&r, tt->data + 4 * b, 4);
            t_ok = t[b] == r && (per || t[b] == t[0]);
        }
        tu_check(t_ok, "%s: t matches the twin (one per %s)", nm, per ? "sample" : "batch");
        char w[256];
        snprintf(w, sizeof w, "%s: gamma", nm), tu_check_close(w, g, g_ref, B, 1e-6);
        snprintf(w, sizeof w, "%s: eps", nm), tu_check_close(w, eps, e_ref, n, 1e-6);
        snprintf(w, sizeof w, "%s: x_t", nm), tu_check_close(w, xt, xt_ref, n, 1e-6);
        fsd_free(x0), fsd_free(g_ref), fsd_free(e_ref), fsd_free(xt_ref), fsd_free(g), fsd_free(eps), fsd_free(xt);
        free(t);
        fsd_schedule_free(&s);
        fsd_st_close(&st);
    }
    tu_free_list(paths, nc);

    /* γ interval for every t, x_t formula, determinism (twin-free) */
    fsd_schedule s;
    fsd_schedule_init(&s, FSD_BETA_LINEAR, 10, 1e-2, 0.3);
    const int B = 3000, nps = 4;
    float *x0 = tu_zeros((size_t)B * nps), *g = tu_zeros(B), *eps = tu_zeros((size_t)B * nps);
    float *xt = tu_zeros((size_t)B * nps), *g2 = tu_zeros(B), *eps2 = tu_zeros((size_t)B * nps);
    float *xt2 = tu_zeros((size_t)B * nps);
    int *t = calloc(B, sizeof(int)), *t2 = calloc(B, sizeof(int)), hit[11] = {0};
    tu_fill_uniform(x0, (size_t)B * nps, 3, 1.0f);
    fsd_rng rng = {77, 2};
    fsd_diffusion_train_draw(&s, &rng, 1000, B, nps, 1, x0, t, g, eps, xt);
    int in_range = 1;
    double xerr = 0;
    for (int b = 0; b < B; b++) {
        if (t[b] < 1 || t[b] > 10) {
            in_range = 0;
            continue;
        }
        hit[t[b]]++;
        /* γ in [sqrt_prev[t], sqrt_prev[t-1]] up to the float rounding of γ */
        if (!(g[b] >= (float)s.sqrt_prev[t[b]] && g[b] <= (float)s.sqrt_prev[t[b] - 1])) in_range = 0;
        double gd = g[b];
        for (int e = 0; e < nps; e++) {
            size_t q = (size_t)b * nps + e;
            double want = gd * x0[q] + sqrt(1 - gd * gd) * eps[q];
            xerr = fmax(xerr, fabs(xt[q] - want));
        }
    }
    int all_hit = 1;
    for (int k = 1; k <= 10; k++) all_hit &= hit[k] > 200; /* expected 300 each, sd 16 */
    tu_check(in_range, "train draw: t in 1..10 and gamma inside [sqrt_prev[t], sqrt_prev[t-1]] for %d samples", B);
    tu_check(all_hit, "train draw: every t drawn about equally (min count > 200 of expected 300)");
    tu_check(xerr <= 1e-6, "train draw: x_t = gamma x0 + sqrt(1 - gamma^2) eps, max abs err %.3g <= 1e-6", xerr);
    fsd_diffusion_train_draw(&s, &rng, 1000, B, nps, 1, x0, t2, g2, eps2, xt2);
    tu_check(!memcmp(t, t2, sizeof(int) * B) && !memcmp(g, g2, 4 * B) && !memcmp(xt, xt2, 4 * (size_t)B * nps),
             "train draw: same (rng, sample0) -> identical draw");
    fsd_diffusion_train_draw(&s, &rng, 1001, B, nps, 1, x0, t2, g2, eps2, xt2);
    tu_check(!memcmp(g + 1, g2, 4 * (B - 1)) && !memcmp(eps + nps, eps2, 4 * (size_t)(B - 1) * nps),
             "train draw: a sample's draw depends on its index only, not on its batch position");
    fsd_diffusion_train_draw(&s, &rng, 1000, B, nps, 0, x0, t2, g2, eps2, xt2);
    int same_t = 1;
    for (int b = 0; b < B; b++) same_t &= t2[b] == t2[0];
    tu_check(same_t, "train draw: per-batch mode draws one t for the batch");
    fsd_free(x0), fsd_free(g), fsd_free(eps), fsd_free(xt), fsd_free(g2), fsd_free(eps2), fsd_free(xt2);
    free(t), free(t2);
    fsd_schedule_free(&s);
}

/* ---------------------------------------------------------------- samplers vs twin */
static fsd_status run_sampler(const fsd_schedule *s, fsd_sampler_kind kind, const int *lv, int K, double eta,
                              uint64_t seed, toy *tm, float *x, int B, recorder *rec) {
    fsd_sampler_opts o;
    fsd_sampler_opts_default(&o);
    o.kind = kind, o.levels = lv, o.K = K, o.eta = eta, o.seed = seed;
    if (rec) o.observer = record, o.observer_ctx = rec;
    return fsd_diffusion_sample(s, &o, toy_eps, tm, x, B, tm->nps);
}

static void sample_cases(void) {
    char **paths;
    int nc = tu_list_cases("diffusion/sample", &paths);
    tu_check(nc >= 10, "sampler cases found (%d)", nc);
    for (int c = 0; c < nc; c++) {
        fsd_safetensors st;
        if (fsd_st_open(&st, paths[c]) != FSD_OK) continue;
        const char *nm = base(paths[c]);
        fsd_schedule s;
        fsd_sampler_kind kind;
        fsd_spacing sp;
        if (schedule_from_meta(&st, &s) != FSD_OK || fsd_sampler_parse(tu_meta_str(&st, "sampler", ""), &kind) ||
            fsd_spacing_parse(tu_meta_str(&st, "spacing", ""), &sp)) {
            tu_check(0, "%s: metadata: %s", nm, fsd_error_message());
            fsd_st_close(&st);
            continue;
        }
        int K = tu_meta_int(&st, "K", 0), B = tu_meta_int(&st, "B", 0), nps = tu_meta_int(&st, "nps", 0);
        uint64_t seed = (uint64_t)tu_meta_int(&st, "seed", 0);
        size_t n = (size_t)B * nps;
        float *mu = tu_get(&st, "mu", NULL), *xT_ref = tu_get(&st, "x_T", NULL), *xs_ref = tu_get(&st, "x", NULL);
        float *x0_ref = tu_get(&st, "x0", NULL), *y_ref = tu_get(&st, "y", NULL);
        int *lv = malloc(sizeof(int) * K);
        fsd_diffusion_levels_for(&s, K, sp, lv);
        toy tm = {mu, tu_meta_double(&st, "s", 0), (size_t)nps, 0, -1, -1};
        recorder rec = {tu_zeros((size_t)K * n), tu_zeros((size_t)K * n), n, 0, 1, lv};
        float *x = tu_zeros(n), *xT = tu_zeros(n);
        fsd_rng r0 = {seed, 0};
        fsd_rng_normal(&r0, 0, xT, n);
        char w[256];
        snprintf(w, sizeof w, "%s: x_T (Philox twin)", nm), tu_check_close(w, xT, xT_ref, n, 1e-6);
        fsd_status r = run_sampler(&s, kind, lv, K, tu_meta_double(&st, "eta", 0), seed, &tm, x, B, &rec);
        tu_check(r == FSD_OK && rec.steps == K && tm.calls == K && rec.levels_ok,
                 "%s: runs, %d denoiser calls at the listed levels", nm, K);
        snprintf(w, sizeof w, "%s: every intermediate x", nm), tu_check_close(w, rec.x, xs_ref, (size_t)K * n, 1e-5);
        snprintf(w, sizeof w, "%s: every clamped x0_hat", nm);
        tu_check_close(w, rec.x0, x0_ref, (size_t)K * n, 1e-5);
        snprintf(w, sizeof w, "%s: result", nm), tu_check_close(w, x, y_ref, n, 1e-5);
        tu_check(!memcmp(x, rec.x + (size_t)(K - 1) * n, n * 4) && !memcmp(x, rec.x0 + (size_t)(K - 1) * n, n * 4),
                 "%s: the result is the last step's clamped x0_hat", nm);
        float mn = 1, mx = -1;
        for (size_t e = 0; e < (size_t)K * n; e++) mn = fminf(mn, rec.x0[e]), mx = fmaxf(mx, rec.x0[e]);
        if (c == 0) printf("  (x0_hat range over the first case %.3f..%.3f: the clamp is exercised)\n", mn, mx);
        fsd_free(mu), fsd_free(xT_ref), fsd_free(xs_ref), fsd_free(x0_ref), fsd_free(y_ref);
        fsd_free(rec.x), fsd_free(rec.x0), fsd_free(x), fsd_free(xT);
        free(lv);
        fsd_schedule_free(&s);
        fsd_st_close(&st);
    }
    tu_free_list(paths, nc);
}

/* ---------------------------------------------------------------- properties */
static void ddim_eta1_equals_ddpm(void) {
    fsd_schedule s;
    fsd_schedule_init(&s, FSD_BETA_LINEAR, 50, 1e-4, 0.2);
    const int B = 2, nps = 96;
    float *mu = tu_zeros(nps), *a = tu_zeros(B * nps), *b = tu_zeros(B * nps);
    tu_fill_uniform(mu, nps, 5, 0.5f);
    toy tm = {mu, 0.5, nps, 0, -1, -1};
    int lv[50];
    for (int K = 10; K <= 50; K += 40) {
        fsd_diffusion_levels(50, K, FSD_SPACING_LINSPACE, lv);
        run_sampler(&s, FSD_SAMPLER_DDPM, lv, K, 0, 9, &tm, a, B, NULL);
        run_sampler(&s, FSD_SAMPLER_DDIM, lv, K, 1.0, 9, &tm, b, B, NULL);
        char w[128];
        snprintf(w, sizeof w, "ddim(eta=1) == ddpm, %d of 50 levels, same seed", K);
        tu_check_close(w, b, a, B * nps, 1e-5);
    }
    fsd_free(mu), fsd_free(a), fsd_free(b);
    fsd_schedule_free(&s);
}

/* v-prediction: the toy's exact v = γ ε - σ x0 = (ε - σ x) / γ (double, from the toy's ε formula). The
 * sampler reading v̂ must land where it lands reading ε̂, for every kind; the v target inverts to x0 and ε. */
static fsd_status toy_v(void *ctx, const float *x, const float *gamma, float *v, int B) {
    toy *t = ctx;
    t->calls++;
    for (int b = 0; b < B; b++) {
        double g = gamma[b], sig2 = 1.0 - g * g, den = g * g * t->s * t->s + sig2, sig = sqrt(sig2);
        for (size_t e = 0; e < t->nps; e++) {
            size_t q = (size_t)b * t->nps + e;
            double eps = sig * ((double)x[q] - g * (double)t->mu[e]) / den;
            v[q] = (float)((eps - sig * (double)x[q]) / g);
        }
    }
    return FSD_OK;
}

static void v_prediction(void) {
    fsd_schedule s;
    fsd_schedule_init(&s, FSD_BETA_LINEAR, 200, 1e-4, 0.05);
    const int B = 2, nps = 96;
    float *mu = tu_zeros(nps), *a = tu_zeros(B * nps), *b = tu_zeros(B * nps);
    tu_fill_uniform(mu, nps, 5, 0.5f);
    toy tm = {mu, 0.5, nps, 0, -1, -1};
    int lv[10];
    const fsd_sampler_kind kinds[3] = {FSD_SAMPLER_DDPM, FSD_SAMPLER_DDIM, FSD_SAMPLER_DPMPP2M};
    for (int q = 0; q < 3; q++)
        for (int K = 1; K <= 10; K += 9) {
            fsd_diffusion_levels(200, K, FSD_SPACING_LINSPACE, lv);
            fsd_sampler_opts o;
            fsd_sampler_opts_default(&o);
            o.kind = kinds[q], o.levels = lv, o.K = K, o.eta = 0.5, o.seed = 11;
            fsd_status r1 = fsd_diffusion_sample(&s, &o, toy_eps, &tm, a, B, nps);
            o.prediction = FSD_PRED_V;
            fsd_status r2 = fsd_diffusion_sample(&s, &o, toy_v, &tm, b, B, nps);
            char w[160];
            snprintf(w, sizeof w, "%s, %d steps: reading v-hat = reading eps-hat (%s)", fsd_sampler_name(kinds[q]), K,
                     r1 || r2 ? fsd_error_message() : "ok");
            tu_check(r1 == FSD_OK && r2 == FSD_OK, "%s", w);
            tu_check_close(w, b, a, B * nps, 1e-4);
        }
    /* the training target: γ x_t - σ v = x0 and σ x_t + γ v = ε */
    const size_t n = (size_t)B * nps;
    float *x0 = tu_zeros(n), *eps = tu_zeros(n), *xt = tu_zeros(n), *v = tu_zeros(n), *r0 = tu_zeros(n), *re = tu_zeros(n);
    float gam[2];
    tu_fill_uniform(x0, n, 3, 1.0f);
    fsd_rng rng = {5, 3};
    fsd_diffusion_train_draw(&s, &rng, 40, B, nps, 1, x0, NULL, gam, eps, xt);
    memcpy(v, eps, n * sizeof(float));
    fsd_diffusion_v_target(B, nps, gam, x0, v);
    for (size_t e = 0; e < n; e++) {
        double g = gam[e / nps], sg = sqrt(1.0 - g * g);
        r0[e] = (float)(g * xt[e] - sg * v[e]), re[e] = (float)(sg * xt[e] + g * v[e]);
    }
    tu_check_close("v target: gamma x_t - sigma v = x0", r0, x0, n, 1e-5);
    tu_check_close("v target: sigma x_t + gamma v = eps", re, eps, n, 1e-5);
    fsd_prediction p;
    tu_check(fsd_prediction_parse("v", &p) == FSD_OK && p == FSD_PRED_V && !strcmp(fsd_prediction_name(FSD_PRED_EPS), "eps") &&
                 fsd_prediction_parse("x0", &p) != FSD_OK,
             "prediction names: eps, v; x0 refused (%s)", fsd_error_message());
    fsd_free(mu), fsd_free(a), fsd_free(b), fsd_free(x0), fsd_free(eps), fsd_free(xt), fsd_free(v), fsd_free(r0),
        fsd_free(re);
    fsd_schedule_free(&s);
}

static void stats_of(const float *x, const float *mu, double sdv, int B, int nps, double *mean, double *sd) {
    double s1 = 0, s2 = 0;
    for (int b = 0; b < B; b++)
        for (int e = 0; e < nps; e++) {
            double z = (x[(size_t)b * nps + e] - mu[e]) / sdv;
            s1 += z, s2 += z * z;
        }
    double N = (double)B * nps;
    *mean = s1 / N;
    *sd = sqrt(s2 / N - *mean * *mean);
}

/* Gaussian data: the probability-flow ODE keeps u = (x - γ mu)/sqrt(v(γ)), v = γ² s² + 1 - γ², so from
 * x_T at the first level the exact state at the last level is γ_L mu + sqrt(v_L) u; every sampler then
 * returns the clamped x̂₀ there, D = mu + γ_L s² (x - γ_L mu) / v_L. */
static void exact_ode(const fsd_schedule *s, const int *lv, int K, const float *xT, const float *mu, double sdv,
                      int B, int nps, float *out) {
    double g = s->sqrt_prev[lv[0] + 1], v = g * g * sdv * sdv + 1 - g * g;
    double gl = s->sqrt_prev[lv[K - 1] + 1], vl = gl * gl * sdv * sdv + 1 - gl * gl;
    for (size_t q = 0; q < (size_t)B * nps; q++) {
        double m = mu[q % nps], u = (xT[q] - g * m) / sqrt(v), x = gl * m + sqrt(vl) * u;
        double d = m + gl * sdv * sdv * (x - gl * m) / vl;
        out[q] = (float)(d < -1 ? -1 : d > 1 ? 1 : d);
    }
}

static void statistics_and_accuracy(void) {
    fsd_schedule s;
    fsd_schedule_init(&s, FSD_BETA_LINEAR, 1000, 1e-4, 2e-2);
    const int B = 2, nps = 4096;
    const size_t n = (size_t)B * nps;
    const double sdv = 0.2;
    const uint64_t seed = 2024;
    float *mu = tu_zeros(nps), *x = tu_zeros(n), *xT = tu_zeros(n), *exact = tu_zeros(n);
    tu_fill_uniform(mu, nps, 8, 0.2f); /* mu in [-0.2, 0.2], s = 0.2: the clamp at +-1 is >= 4 s away */
    toy tm = {mu, sdv, nps, 0, -1, -1};
    int *lv = malloc(sizeof(int) * 1000);
    fsd_rng r0 = {seed, 0};
    fsd_rng_normal(&r0, 0, xT, n);
    enum { NR = 15 };
    struct { const char *name; fsd_sampler_kind k; int K; fsd_spacing sp; int stat; } runs[NR] = {
        {"ddpm-1000", FSD_SAMPLER_DDPM, 1000, FSD_SPACING_LINSPACE, 1},
        {"ddim-1000", FSD_SAMPLER_DDIM, 1000, FSD_SPACING_LINSPACE, 1},
        {"ddim-20", FSD_SAMPLER_DDIM, 20, FSD_SPACING_LINSPACE, 0},
        {"dpmpp2m-20", FSD_SAMPLER_DPMPP2M, 20, FSD_SPACING_LINSPACE, 0},
        {"ddim-20", FSD_SAMPLER_DDIM, 20, FSD_SPACING_LOGSNR, 0},
        {"dpmpp2m-20", FSD_SAMPLER_DPMPP2M, 20, FSD_SPACING_LOGSNR, 1},
        {"ddim-10", FSD_SAMPLER_DDIM, 10, FSD_SPACING_LINSPACE, 0},
        {"dpmpp2m-10", FSD_SAMPLER_DPMPP2M, 10, FSD_SPACING_LINSPACE, 0},
        {"ddim-10", FSD_SAMPLER_DDIM, 10, FSD_SPACING_LOGSNR, 0},
        {"dpmpp2m-10", FSD_SAMPLER_DPMPP2M, 10, FSD_SPACING_LOGSNR, 0},
        {"ddim-5", FSD_SAMPLER_DDIM, 5, FSD_SPACING_LINSPACE, 0},
        {"dpmpp2m-5", FSD_SAMPLER_DPMPP2M, 5, FSD_SPACING_LINSPACE, 0},
        {"ddim-5", FSD_SAMPLER_DDIM, 5, FSD_SPACING_LOGSNR, 0},
        {"dpmpp2m-5", FSD_SAMPLER_DPMPP2M, 5, FSD_SPACING_LOGSNR, 0},
        {"dpmpp2m-50", FSD_SAMPLER_DPMPP2M, 50, FSD_SPACING_LOGSNR, 1}};
    double rms[NR] = {0}, mean0 = 0, sd0 = 0;
    printf("  toy x0 ~ N(mu, 0.2^2), 8192 samples, linear 1e-4..2e-2, T = 1000, same x_T for all runs\n");
    printf("  (ODE error = vs the exact probability-flow solution; z = (x - mu)/s)\n");
    for (int r = 0; r < NR; r++) {
        fsd_diffusion_levels_for(&s, runs[r].K, runs[r].sp, lv);
        fsd_status st = run_sampler(&s, runs[r].k, lv, runs[r].K, 0.0, seed, &tm, x, B, NULL);
        exact_ode(&s, lv, runs[r].K, xT, mu, sdv, B, nps, exact);
        double mean, sd, se = 0, me = 0;
        stats_of(x, mu, sdv, B, nps, &mean, &sd);
        for (size_t q = 0; q < n; q++) {
            double d = (double)x[q] - exact[q];
            se += d * d, me = fmax(me, fabs(d));
        }
        rms[r] = sqrt(se / n);
        if (r == 0) mean0 = mean, sd0 = sd;
        printf("    %-11s %-8s mean z %+.4f  sd z %.4f (vs ddpm-1000: %+.4f %+.4f) | ODE error rms %.3e max %.3e\n",
               runs[r].name, fsd_spacing_name(runs[r].sp), mean, sd, mean - mean0, sd - sd0, rms[r], me);
        tu_check(st == FSD_OK, "%s %s runs", runs[r].name, fsd_spacing_name(runs[r].sp));
        if (runs[r].stat)
            tu_check(fabs(mean) <= 0.05 && fabs(sd - 1) <= 0.04,
                     "%s %s: standardised samples |mean| %.4f <= 0.05, |sd - 1| %.4f <= 0.04", runs[r].name,
                     fsd_spacing_name(runs[r].sp), fabs(mean), fabs(sd - 1));
    }
    tu_check(rms[3] < rms[2] && rms[5] < rms[4],
             "20 steps: dpmpp2m closer to the exact ODE solution than ddim (linspace %.3e < %.3e, logsnr %.3e < %.3e)",
             rms[3], rms[2], rms[5], rms[4]);
    tu_check(rms[7] < rms[6] && rms[9] < rms[8] && rms[11] < rms[10] && rms[13] < rms[12],
             "10 and 5 steps: dpmpp2m closer than ddim for both spacings");
    tu_check(rms[5] <= 5e-3 && rms[14] <= 2e-3, "dpmpp2m logsnr rms error: 20 steps %.3e <= 5e-3, 50 steps %.3e <= 2e-3",
             rms[5], rms[14]);
    tu_check(rms[1] <= 3e-3, "ddim-1000 follows the exact ODE solution (rms %.3e <= 3e-3)", rms[1]);
    fsd_free(mu), fsd_free(x), fsd_free(xT), fsd_free(exact);
    free(lv);
    fsd_schedule_free(&s);
}

static void thread_independence(void) {
    fsd_schedule s;
    fsd_schedule_init(&s, FSD_BETA_LINEAR, 1000, 1e-4, 2e-2);
    const int B = 2, nps = 3 * 128 * 128; /* above every parallel threshold */
    const size_t n = (size_t)B * nps;
    float *mu = tu_zeros(nps), *a = tu_zeros(n), *b = tu_zeros(n);
    tu_fill_uniform(mu, nps, 4, 0.5f);
    toy tm = {mu, 0.5, nps, 0, -1, -1};
    int lv[6], old = fsd_get_threads();
    fsd_diffusion_levels(1000, 6, FSD_SPACING_LINSPACE, lv);
    fsd_sampler_kind kinds[3] = {FSD_SAMPLER_DDPM, FSD_SAMPLER_DDIM, FSD_SAMPLER_DPMPP2M};
    for (int q = 0; q < 3; q++) {
        fsd_set_threads(1);
        run_sampler(&s, kinds[q], lv, 6, 0.7, 5, &tm, a, B, NULL);
        fsd_set_threads(2);
        run_sampler(&s, kinds[q], lv, 6, 0.7, 5, &tm, b, B, NULL);
        tu_check(!memcmp(a, b, n * 4), "%s: bit-identical with 1 and 2 threads (%zu values)", fsd_sampler_name(kinds[q]),
                 n);
    }
    float *g = tu_zeros(B), *e1 = tu_zeros(n), *e2 = tu_zeros(n), *x0 = tu_zeros(n);
    tu_fill_uniform(x0, n, 6, 1.0f);
    fsd_rng rng = {1, 1};
    fsd_set_threads(1);
    fsd_diffusion_train_draw(&s, &rng, 0, B, nps, 0, x0, NULL, g, e1, a);
    fsd_set_threads(2);
    fsd_diffusion_train_draw(&s, &rng, 0, B, nps, 0, x0, NULL, g, e2, b);
    tu_check(!memcmp(a, b, n * 4) && !memcmp(e1, e2, n * 4), "train draw: bit-identical with 1 and 2 threads");
    fsd_set_threads(old);
    fsd_free(mu), fsd_free(a), fsd_free(b), fsd_free(g), fsd_free(e1), fsd_free(e2), fsd_free(x0);
    fsd_schedule_free(&s);
}

static void frames_and_recorder(void) {
    fsd_frames f;
    tu_check(fsd_frames_init(&f, 3, 4, 5) == FSD_OK, "frames: init");
    float fr[60];
    for (int q = 0; q < 3; q++) {
        for (int e = 0; e < 60; e++) fr[e] = (float)(q - 1) * 0.5f + (e == 7 ? 2.0f : 0.0f); /* -0.5, 0, 0.5 */
        fsd_frames_push(&f, fr);
    }
    fsd_image g = {0};
    tu_check(fsd_frames_grid(&f, 2, 1, &g) == FSD_OK && g.w == 11 && g.h == 9 && g.c == 3, "grid: 2 columns, pad 1 -> 11x9");
    if (g.data) {
        size_t P = (size_t)g.w * g.h;
        int ok = g.data[0] == 63.75f                  /* frame 0 at (0,0): -0.5 -> 63.75 */
                 && g.data[6] == 127.5f               /* frame 1 at (6,0): 0 -> 127.5 */
                 && g.data[5] == 255.0f               /* the gap column */
                 && g.data[5 * 11 + 0] == 191.25f     /* frame 2 wraps to row 2 (y = 5) */
                 && g.data[4 * 11 + 2] == 255.0f      /* the gap row */
                 && g.data[8 * 11 + 10] == 255.0f     /* the empty 4th slot stays white */
                 && g.data[1 * 11 + 2] == 255.0f      /* element 7 of frame 0 (c0,y1,x2) = 1.5 -> clamped to 255 */
                 && g.data[P + 1 * 11 + 2] == 63.75f; /* channel 1 of frame 0 */
        tu_check(ok, "grid: frame placement, [-1,1] -> 0..255 mapping, clamping, white gaps");
    }
    fsd_image_free(&g);
    tu_check(fsd_frames_grid(&f, 0, 0, &g) == FSD_OK && g.w == 15 && g.h == 4, "grid: cols <= 0 -> one row (15x4)");
    fsd_image_free(&g);
    fsd_image im;
    fsd_image_alloc(&im, 5, 4, 3);
    for (int e = 0; e < 60; e++) im.data[e] = 255.0f;
    tu_check(fsd_frames_push_image(&f, &im) == FSD_OK && f.n == 4 && f.data[3 * 60] == 1.0f,
             "frames: image push maps 255 -> 1");
    fsd_image_free(&im);
    fsd_frames_free(&f);

    /* recorder over a 25-step ddim run: every = 1 | 2 = 3 -> steps 0, 3, ..., 24 (9 frames, last = result) */
    fsd_schedule s;
    fsd_schedule_init(&s, FSD_BETA_LINEAR, 100, 1e-4, 0.05);
    float mu[48] = {0}, x[96];
    toy tm = {mu, 0.3, 48, 0, -1, -1};
    fsd_frames_init(&f, 3, 4, 4);
    fsd_frame_recorder rec = {&f, fsd_frames_default_every(25), 1, 0};
    int lv[25];
    fsd_diffusion_levels(100, 25, FSD_SPACING_LINSPACE, lv);
    fsd_sampler_opts o;
    fsd_sampler_opts_default(&o);
    o.kind = FSD_SAMPLER_DDIM, o.levels = lv, o.K = 25, o.seed = 3;
    o.observer = fsd_frame_recorder_step, o.observer_ctx = &rec;
    tu_check(fsd_diffusion_sample(&s, &o, toy_eps, &tm, x, 2, 48) == FSD_OK && f.n == 9 &&
                 !memcmp(f.data + 8 * 48, x + 48, 48 * 4),
             "recorder: every 3rd step of 25 -> 9 frames of sample 1, the last is the result (got %d)", f.n);
    tu_check(fsd_frames_default_every(2000) == 201 && fsd_frames_default_every(50) == 5, "default every = 1 | (K/10)");
    fsd_frames_free(&f);
    fsd_schedule_free(&s);
}

static void errors_and_misc(void) {
    fsd_schedule s;
    tu_check(fsd_schedule_init(&s, FSD_BETA_LINEAR, 0, 1e-4, 2e-2) == FSD_ERR_INVALID, "schedule: T = 0 refused");
    tu_check(fsd_schedule_init(&s, FSD_BETA_LINEAR, 10, 0.0, 2e-2) == FSD_ERR_INVALID, "schedule: beta_start 0 refused");
    tu_check(fsd_schedule_init(&s, FSD_BETA_CONST, 10, 0.0, 1.0) == FSD_ERR_INVALID, "schedule: beta 1 refused");
    fsd_beta_kind bk;
    tu_check(fsd_beta_kind_parse("jsd", &bk) == FSD_ERR_INVALID && strstr(fsd_error_message(), "jsd"),
             "schedule: unknown kind named in the message");
    fsd_schedule_init(&s, FSD_BETA_LINEAR, 20, 1e-3, 0.2);
    float mu[8] = {0}, x[16];
    toy tm = {mu, 0.5, 8, 0, -1, -1};
    int bad[3] = {10, 10, 3}, out[2] = {20, 3}, lv[5];
    fsd_diffusion_levels(20, 5, FSD_SPACING_LINSPACE, lv);
    tu_check(run_sampler(&s, FSD_SAMPLER_DDIM, bad, 3, 0, 1, &tm, x, 2, NULL) == FSD_ERR_INVALID,
             "sampler: repeated level refused");
    tu_check(run_sampler(&s, FSD_SAMPLER_DDIM, out, 2, 0, 1, &tm, x, 2, NULL) == FSD_ERR_INVALID,
             "sampler: level >= T refused");
    tu_check(run_sampler(&s, FSD_SAMPLER_DDIM, lv, 5, 1.5, 1, &tm, x, 2, NULL) == FSD_ERR_INVALID,
             "sampler: eta > 1 refused");
    tm.fail_at = 2;
    tu_check(run_sampler(&s, FSD_SAMPLER_DPMPP2M, lv, 5, 0, 1, &tm, x, 2, NULL) == FSD_ERR_IO &&
                 strstr(fsd_error_message(), "injected"),
             "sampler: a denoiser error stops sampling with its status and message");
    tm.fail_at = -1, tm.calls = 0, tm.nan_at = 1;
    tu_check(run_sampler(&s, FSD_SAMPLER_DDPM, lv, 5, 0, 1, &tm, x, 2, NULL) == FSD_ERR_INTERNAL &&
                 strstr(fsd_error_message(), "non-finite"),
             "sampler: a NaN from the denoiser is reported");
    fsd_schedule_free(&s);

    /* loss selector = the ops */
    float p[5] = {0.1f, -2, 3, 0.5f, 0}, t[5] = {0, 0, 1, 0.5f, -1}, d1[5] = {0}, d2[5] = {0};
    tu_check(fsd_loss_forward(FSD_LOSS_L1, p, t, 5) == fsd_l1_loss_forward(p, t, 5) &&
                 fsd_loss_forward(FSD_LOSS_L2, p, t, 5) == fsd_mse_loss_forward(p, t, 5),
             "loss selector: l1 / l2 forward are the ops");
    fsd_loss_backward(FSD_LOSS_L2, d1, p, t, 5, 1.0f);
    fsd_mse_loss_backward(d2, NULL, p, t, 5, 1.0f);
    tu_check(!memcmp(d1, d2, sizeof d1), "loss selector: l2 backward is the op");
    fsd_loss_kind lk;
    tu_check(fsd_loss_kind_parse("l2", &lk) == FSD_OK && lk == FSD_LOSS_L2 && fsd_loss_kind_parse("l3", &lk) != FSD_OK,
             "loss names parse");
}

int main(void) {
    double t0 = fsd_time_seconds();
    schedule_cases();
    level_cases();
    train_cases();
    sample_cases();
    ddim_eta1_equals_ddpm();
    v_prediction();
    statistics_and_accuracy();
    thread_independence();
    frames_and_recorder();
    errors_and_misc();
    printf("  test time %.1f s\n", fsd_time_seconds() - t0);
    return tu_summary();
}
