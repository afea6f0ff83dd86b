/* SR3 training draw, ε loss selector and the three samplers (ddpm, ddim, dpmpp2m) over a list of
 * noise levels, driven by a denoiser callback. Every tensor update is element-wise, computed in
 * double from the float inputs with double coefficients and stored as float; the noise comes from
 * the counter RNG. Nothing is summed across elements, so the output is bit-identical for any
 * thread count. Equations: docs/diffusion.md. */
#pragma GCC optimize("fp-contract=off") /* no fma contraction that could differ between loop peels */

#include "fsdiff/diffusion.h"
#include "fsdiff/ops_linear.h"

#include <math.h>
#include <string.h>

#define PAR_MIN 16384 /* elements below which a loop stays serial */

/* ---------------------------------------------------------------- training draw */
fsd_status fsd_diffusion_train_draw(const fsd_schedule *s, const fsd_rng *rng, uint64_t sample0, int B,
                                    size_t n_per_sample, int per_sample_t, const float *x0, int *t_out,
                                    float *gamma, float *eps, float *x_t) {
    if (!s || !s->betas || !rng || !x0 || !gamma || !eps || !x_t)
        return fsd_fail(FSD_ERR_INVALID, "train draw: NULL argument");
    if (B < 1 || n_per_sample < 1) return fsd_fail(FSD_ERR_INVALID, "train draw: empty batch (B = %d)", B);
    for (int b = 0; b < B; b++) {
        uint64_t g = sample0 + (uint64_t)b;
        /* t in {1..T}: multiply-shift of a 32-bit draw (bias < T / 2^32) */
        uint64_t u = fsd_rng_u32(rng, per_sample_t ? g : sample0);
        int t = 1 + (int)((u * (uint64_t)s->T) >> 32);
        double lo = s->sqrt_prev[t - 1], hi = s->sqrt_prev[t]; /* numpy.random.uniform(lo, hi): lo + (hi-lo) u */
        double gm = lo + (hi - lo) * fsd_rng_uniform1(rng, g);
        gamma[b] = (float)gm;
        if (t_out) t_out[b] = t;
        fsd_rng_normal(rng, g * (uint64_t)n_per_sample, eps + (size_t)b * n_per_sample, n_per_sample);
        double gd = (double)gamma[b], sd = sqrt(1.0 - gd * gd);
        const float *xb = x0 + (size_t)b * n_per_sample;
        const float *eb = eps + (size_t)b * n_per_sample;
        float *ob = x_t + (size_t)b * n_per_sample;
#pragma omp parallel for schedule(static) if (n_per_sample > PAR_MIN)
        for (size_t e = 0; e < n_per_sample; e++) ob[e] = (float)(gd * (double)xb[e] + sd * (double)eb[e]);
    }
    return FSD_OK;
}

void fsd_diffusion_v_target(int B, size_t n_per_sample, const float *gamma, const float *x0, float *eps) {
    for (int b = 0; b < B; b++) {
        const double g = (double)gamma[b], sd = sqrt(1.0 - g * g);
        const float *xb = x0 + (size_t)b * n_per_sample;
        float *eb = eps + (size_t)b * n_per_sample;
#pragma omp parallel for schedule(static) if (n_per_sample > PAR_MIN)
        for (size_t e = 0; e < n_per_sample; e++) eb[e] = (float)(g * (double)eb[e] - sd * (double)xb[e]);
    }
}

/* ---------------------------------------------------------------- samplers */
void fsd_sampler_opts_default(fsd_sampler_opts *o) {
    memset(o, 0, sizeof *o);
    o->kind = FSD_SAMPLER_DDPM;
}

/* Ancestral step i -> j (j = -1: clean) of the respaced chain: with ᾱ_a = ᾱ_i, ᾱ_b = ᾱ_j,
 * β' = 1 - ᾱ_a/ᾱ_b, α' = 1 - β'; consecutive levels use the schedule's own buffers (the authors'). */
static void ddpm_coefs(const fsd_schedule *s, int i, int j, double *c1, double *c2, double *sd) {
    if (j == i - 1) {
        *c1 = s->post_c1[i], *c2 = s->post_c2[i];
        *sd = exp(0.5 * s->post_logvar[i]);
    } else {
        double a = s->acp[i], b = j >= 0 ? s->acp[j] : 1.0;
        double beta = 1.0 - a / b, alpha = 1.0 - beta;
        double var = beta * (1.0 - b) / (1.0 - a);
        *c1 = beta * sqrt(b) / (1.0 - a);
        *c2 = (1.0 - b) * sqrt(alpha) / (1.0 - a);
        *sd = exp(0.5 * log(var > 1e-20 ? var : 1e-20));
    }
    if (j < 0) *sd = 0.0; /* no noise on the last step (the authors: z = 0 at i = 0) */
}

/* λ = log(α/σ) with α = √ᾱ, σ = √(1 - ᾱ) */
static double lambda_of(double a) { return 0.5 * (log(a) - log1p(-a)); }

static fsd_status check_opts(const fsd_schedule *s, const fsd_sampler_opts *o, fsd_denoise_fn fn, const float *x,
                             int B, size_t nps) {
    if (!s || !s->betas || !o || !fn || !x) return fsd_fail(FSD_ERR_INVALID, "sampler: NULL argument");
    if ((unsigned)o->kind > FSD_SAMPLER_DPMPP2M) return fsd_fail(FSD_ERR_INVALID, "sampler: unknown kind %d", o->kind);
    if (B < 1 || nps < 1) return fsd_fail(FSD_ERR_INVALID, "sampler: empty batch (B = %d)", B);
    if ((size_t)B > SIZE_MAX / nps / sizeof(float) / 4) return fsd_fail(FSD_ERR_NOMEM, "sampler: tensor too large");
    if (!o->levels || o->K < 1 || o->K > s->T)
        return fsd_fail(FSD_ERR_INVALID, "sampler: %d steps must be in 1..%d (the schedule's T)", o->K, s->T);
    for (int k = 0; k < o->K; k++) {
        int i = o->levels[k];
        if (i < 0 || i >= s->T) return fsd_fail(FSD_ERR_INVALID, "sampler: level %d outside 0..%d", i, s->T - 1);
        if (k > 0 && i >= o->levels[k - 1])
            return fsd_fail(FSD_ERR_INVALID, "sampler: levels must be strictly decreasing (%d after %d)", i,
                            o->levels[k - 1]);
    }
    if ((unsigned)o->prediction > FSD_PRED_V)
        return fsd_fail(FSD_ERR_INVALID, "sampler: unknown prediction %d", (int)o->prediction);
    if (o->kind == FSD_SAMPLER_DDIM && !(o->eta >= 0.0 && o->eta <= 1.0))
        return fsd_fail(FSD_ERR_INVALID, "sampler ddim: eta = %g must be in [0, 1]", o->eta);
    return FSD_OK;
}

fsd_status fsd_diffusion_sample(const fsd_schedule *s, const fsd_sampler_opts *o, fsd_denoise_fn fn,
                                void *fn_ctx, float *x, int B, size_t n_per_sample) {
    fsd_status st = check_opts(s, o, fn, x, B, n_per_sample);
    if (st != FSD_OK) return st;
    const size_t n = (size_t)B * n_per_sample;
    const int K = o->K, dpm = o->kind == FSD_SAMPLER_DPMPP2M;
    float *eps = fsd_alloc(n * sizeof(float)), *x0 = fsd_alloc(n * sizeof(float));
    float *z = fsd_alloc(n * sizeof(float)), *x0p = dpm ? fsd_alloc(n * sizeof(float)) : NULL;
    float *gam = fsd_alloc((size_t)B * sizeof(float));
    if (!eps || !x0 || !z || (dpm && !x0p) || !gam) {
        st = fsd_fail(FSD_ERR_NOMEM, "sampler: out of memory for %zu floats", n);
        goto done;
    }
    if (!o->x_given) {
        fsd_rng r0 = {o->seed, 0};
        fsd_rng_normal(&r0, 0, x, n);
    }
    for (int k = 0; k < K; k++) {
        const int i = o->levels[k], j = k + 1 < K ? o->levels[k + 1] : -1;
        const double a = s->acp[i], b = j >= 0 ? s->acp[j] : 1.0, g = s->sqrt_prev[i + 1];
        for (int q = 0; q < B; q++) gam[q] = (float)g;
        st = fn(fn_ctx, x, gam, eps, B);
        if (st != FSD_OK) goto done;

        /* x̂₀ = x/√ᾱ - √(1/ᾱ - 1) ε̂, clamped to [-1, 1] (SR3 predict_start_from_noise + clamp_);
         * from v̂: x̂₀ = √ᾱ x - √(1 - ᾱ) v̂. A scaled residual target has its own range. */
        const double lim = o->x0_clip > 0 ? o->x0_clip : 1.0;
        const int vp = o->prediction == FSD_PRED_V;
        const double sr = vp ? sqrt(a) : sqrt(1.0 / a), srm1 = vp ? sqrt(1.0 - a) : sqrt(1.0 / a - 1.0);
        int bad = 0;
#pragma omp parallel for schedule(static) reduction(| : bad) if (n > PAR_MIN)
        for (size_t e = 0; e < n; e++) {
            double v = sr * (double)x[e] - srm1 * (double)eps[e];
            bad |= !isfinite(v);
            x0[e] = (float)(v < -lim ? -lim : v > lim ? lim : v);
        }
        if (bad) {
            st = fsd_fail(FSD_ERR_INTERNAL, "sampler: non-finite value at step %d (level %d)", k, i);
            goto done;
        }

        fsd_rng rk = {o->seed, (uint64_t)k + 1};
        if (o->kind == FSD_SAMPLER_DDPM) {
            double c1, c2, sd;
            ddpm_coefs(s, i, j, &c1, &c2, &sd);
            if (sd > 0.0) fsd_rng_normal(&rk, 0, z, n);
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
            for (size_t e = 0; e < n; e++) {
                double m = c1 * (double)x0[e] + c2 * (double)x[e];
                x[e] = (float)(sd > 0.0 ? m + sd * (double)z[e] : m);
            }
        } else if (o->kind == FSD_SAMPLER_DDIM || j < 0) {
            /* DDIM; also dpmpp2m's last step to the clean level, where both reduce to x = x̂₀ */
            double sig = 0.0, dir = 0.0, sqb = sqrt(b), sqa = sqrt(a), som = sqrt(1.0 - a);
            if (j >= 0) {
                sig = o->eta * sqrt((1.0 - b) / (1.0 - a)) * sqrt(1.0 - a / b);
                double d2 = 1.0 - b - sig * sig;
                dir = sqrt(d2 > 0.0 ? d2 : 0.0);
            }
            if (sig > 0.0) fsd_rng_normal(&rk, 0, z, n);
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
            for (size_t e = 0; e < n; e++) {
                if (j < 0) {
                    x[e] = x0[e];
                    continue;
                }
                double e2 = ((double)x[e] - sqa * (double)x0[e]) / som; /* ε re-derived from the clamped x̂₀ */
                double v = sqb * (double)x0[e] + dir * e2;
                x[e] = (float)(sig > 0.0 ? v + sig * (double)z[e] : v);
            }
        } else {
            /* DPM-Solver++(2M): x_j = (σ_j/σ_i) x_i + α_j (1 - e^{-h}) D, h = λ_j - λ_i,
             * D = x̂₀ (first step) or (1 + 1/2r) x̂₀ - (1/2r) x̂₀_prev, r = h_prev / h */
            const double h = lambda_of(b) - lambda_of(a);
            const double ratio = sqrt((1.0 - b) / (1.0 - a)), coef = sqrt(b) * -expm1(-h);
            double w1 = 1.0, w0 = 0.0;
            if (k > 0) {
                double hp = lambda_of(a) - lambda_of(s->acp[o->levels[k - 1]]);
                double r = hp / h;
                w1 = 1.0 + 1.0 / (2.0 * r), w0 = -1.0 / (2.0 * r);
            }
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
            for (size_t e = 0; e < n; e++) {
                double d = k > 0 ? w1 * (double)x0[e] + w0 * (double)x0p[e] : (double)x0[e];
                x[e] = (float)(ratio * (double)x[e] + coef * d);
            }
        }
        if (o->observer) {
            fsd_step_info info = {k, K, i, g, x, x0, B, n_per_sample};
            st = o->observer(o->observer_ctx, &info);
            if (st != FSD_OK) goto done;
        }
        if (dpm) {
            float *t = x0p;
            x0p = x0, x0 = t;
        }
    }
done:
    fsd_free(eps), fsd_free(x0), fsd_free(z), fsd_free(x0p), fsd_free(gam);
    return st;
}
