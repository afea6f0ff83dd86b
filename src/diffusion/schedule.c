/* β schedules and the derived buffers, as SR3's make_beta_schedule / set_new_noise_schedule compute
 * them in numpy float64 (same operation order, so the values match numpy to the last bit or two).
 * Also the small name parsers shared by the CLI. */
#pragma GCC optimize("fp-contract=off") /* a*b+c stays two roundings, as numpy does it */

#include "fsdiff/diffusion.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const beta_names[] = {"linear", "quad", "cosine", "warmup10", "warmup50", "const"};

const char *fsd_beta_kind_name(fsd_beta_kind k) {
    return (unsigned)k < sizeof beta_names / sizeof *beta_names ? beta_names[k] : "?";
}

/* Index of name in names[n], or a one-line error listing the choices ("unknown WHAT 'x' (a, b, c)"). */
static fsd_status parse_name(const char *const *names, int n, const char *what, const char *name, int *out) {
    for (int k = 0; k < n; k++)
        if (name && !strcmp(name, names[k])) {
            *out = k;
            return FSD_OK;
        }
    char list[160] = "";
    for (int k = 0; k < n; k++) {
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l, "%s%s", k ? ", " : "", names[k]);
    }
    return fsd_fail(FSD_ERR_INVALID, "unknown %s '%s' (%s)", what, name ? name : "(null)", list);
}
#define PARSE_INTO(names, what, name, out)                                                                             \
    do {                                                                                                               \
        int k_ = 0;                                                                                                    \
        fsd_status s_ = parse_name(names, (int)(sizeof names / sizeof *names), what, name, &k_);                       \
        if (s_ == FSD_OK) *(out) = k_;                                                                                 \
        return s_;                                                                                                     \
    } while (0)

fsd_status fsd_beta_kind_parse(const char *name, fsd_beta_kind *out) { PARSE_INTO(beta_names, "beta schedule", name, out); }

/* numpy.linspace(a, b, num) with endpoint: y_i = i * step + a, last element exactly b. */
static void linspace(double *y, double a, double b, int num) {
    if (num <= 0) return;
    if (num == 1) {
        y[0] = a;
        return;
    }
    double step = (b - a) / (double)(num - 1);
    for (int i = 0; i < num; i++) {
        if (step == 0.0)
            y[i] = (double)i / (double)(num - 1) * (b - a) + a;
        else
            y[i] = (double)i * step + a;
    }
    y[num - 1] = b;
}

/* SR3 _warmup_beta: beta_end everywhere, a linear ramp over the first int(T * frac) entries. */
static void warmup(double *b, double start, double end, int T, double frac) {
    for (int i = 0; i < T; i++) b[i] = end;
    linspace(b, start, end, (int)((double)T * frac));
}

void fsd_schedule_free(fsd_schedule *s) {
    if (!s) return;
    fsd_free(s->block_);
    memset(s, 0, sizeof *s);
}

fsd_status fsd_schedule_init(fsd_schedule *s, fsd_beta_kind kind, int T, double beta_start, double beta_end) {
    memset(s, 0, sizeof *s);
    if (T < 1 || T > 1000000) return fsd_fail(FSD_ERR_INVALID, "schedule: T = %d out of range 1..1000000", T);
    if ((unsigned)kind > FSD_BETA_CONST) return fsd_fail(FSD_ERR_INVALID, "schedule: unknown kind %d", (int)kind);
    int uses_start = kind == FSD_BETA_LINEAR || kind == FSD_BETA_QUAD || kind == FSD_BETA_WARMUP10 ||
                     kind == FSD_BETA_WARMUP50;
    if (kind != FSD_BETA_COSINE) {
        if (!(beta_end > 0.0 && beta_end < 1.0))
            return fsd_fail(FSD_ERR_INVALID, "schedule %s: beta_end = %g must be in (0, 1)", fsd_beta_kind_name(kind),
                            beta_end);
        if (uses_start && !(beta_start > 0.0 && beta_start < 1.0))
            return fsd_fail(FSD_ERR_INVALID, "schedule %s: beta_start = %g must be in (0, 1)",
                            fsd_beta_kind_name(kind), beta_start);
    }
    double *blk = fsd_alloc(sizeof(double) * ((size_t)T * 9 + 1));
    if (!blk) return fsd_fail(FSD_ERR_NOMEM, "schedule: out of memory for T = %d", T);
    s->block_ = blk;
    s->T = T;
    s->kind = kind;
    s->beta_start = beta_start;
    s->beta_end = beta_end;
    s->betas = blk;
    s->alphas = blk + (size_t)T;
    s->acp = blk + 2 * (size_t)T;
    s->acp_prev = blk + 3 * (size_t)T;
    s->post_var = blk + 4 * (size_t)T;
    s->post_logvar = blk + 5 * (size_t)T;
    s->post_c1 = blk + 6 * (size_t)T;
    s->post_c2 = blk + 7 * (size_t)T;
    s->sqrt_prev = blk + 8 * (size_t)T; /* T + 1 entries */

    double *b = s->betas;
    switch (kind) {
    case FSD_BETA_LINEAR: linspace(b, beta_start, beta_end, T); break;
    case FSD_BETA_QUAD:
        /* Python's x ** 0.5 is libm pow */
        linspace(b, pow(beta_start, 0.5), pow(beta_end, 0.5), T);
        for (int i = 0; i < T; i++) b[i] = b[i] * b[i];
        break;
    case FSD_BETA_WARMUP10: warmup(b, beta_start, beta_end, T, 0.1); break;
    case FSD_BETA_WARMUP50: warmup(b, beta_start, beta_end, T, 0.5); break;
    case FSD_BETA_CONST:
        for (int i = 0; i < T; i++) b[i] = beta_end;
        break;
    case FSD_BETA_COSINE: {
        /* f(i) = cos²((i/T + s)/(1 + s) π/2) / f(0); β_i = 1 - f(i+1)/f(i), clamped at 0.999 */
        const double cs = 8e-3;
        double prev = 0.0, f0 = 0.0;
        for (int i = 0; i <= T; i++) {
            double a = ((double)i / (double)T + cs) / (1.0 + cs) * 3.141592653589793 / 2.0;
            double c = cos(a);
            double f = c * c;
            if (i == 0) f0 = f;
            f = f / f0;
            if (i > 0) {
                double beta = 1.0 - f / prev;
                b[i - 1] = beta > 0.999 ? 0.999 : beta;
            }
            prev = f;
        }
        break;
    }
    }

    double cp = 1.0;
    s->sqrt_prev[0] = 1.0;
    for (int i = 0; i < T; i++) {
        if (!(b[i] > 0.0 && b[i] < 1.0)) {
            fsd_schedule_free(s);
            return fsd_fail(FSD_ERR_INVALID, "schedule %s: beta[%d] = %g is not in (0, 1)", fsd_beta_kind_name(kind),
                            i, b[i]);
        }
        s->alphas[i] = 1.0 - b[i];
        s->acp_prev[i] = cp;
        cp = cp * s->alphas[i];
        s->acp[i] = cp;
        if (!(cp > 0.0 && 1.0 - cp > 0.0)) {
            fsd_schedule_free(s);
            return fsd_fail(FSD_ERR_INVALID, "schedule %s: alphas_cumprod[%d] = %g leaves (0, 1)",
                            fsd_beta_kind_name(kind), i, cp);
        }
        s->sqrt_prev[i + 1] = sqrt(cp);
    }
    for (int i = 0; i < T; i++) {
        double om = 1.0 - s->acp[i], omp = 1.0 - s->acp_prev[i];
        s->post_var[i] = b[i] * omp / om;
        s->post_logvar[i] = log(s->post_var[i] > 1e-20 ? s->post_var[i] : 1e-20);
        s->post_c1[i] = b[i] * sqrt(s->acp_prev[i]) / om;
        s->post_c2[i] = omp * sqrt(s->alphas[i]) / om;
    }
    return FSD_OK;
}

/* ---------------------------------------------------------------- names */
static const char *const spacing_names[] = {"linspace", "trailing", "leading", "logsnr"};
static const char *const sampler_names[] = {"ddpm", "ddim", "dpmpp2m"};

const char *fsd_spacing_name(fsd_spacing sp) { return (unsigned)sp < 4 ? spacing_names[sp] : "?"; }
const char *fsd_sampler_name(fsd_sampler_kind k) { return (unsigned)k < 3 ? sampler_names[k] : "?"; }

fsd_status fsd_spacing_parse(const char *name, fsd_spacing *out) { PARSE_INTO(spacing_names, "step spacing", name, out); }

static const char *const prediction_names[] = {"eps", "v"};
const char *fsd_prediction_name(fsd_prediction p) { return (unsigned)p < 2 ? prediction_names[p] : "?"; }

fsd_status fsd_prediction_parse(const char *name, fsd_prediction *out) { PARSE_INTO(prediction_names, "prediction", name, out); }

fsd_status fsd_sampler_parse(const char *name, fsd_sampler_kind *out) { PARSE_INTO(sampler_names, "sampler", name, out); }

/* ---------------------------------------------------------------- step selection */
fsd_status fsd_diffusion_levels(int T, int K, fsd_spacing sp, int *levels) {
    if (T < 1) return fsd_fail(FSD_ERR_INVALID, "steps: T = %d must be >= 1", T);
    if (K < 1 || K > T) return fsd_fail(FSD_ERR_INVALID, "steps: %d steps must be in 1..%d (the schedule's T)", K, T);
    /* integer arithmetic: round half up of p/q is floor((2p + q) / 2q) */
    for (int j = 0; j < K; j++) {
        int64_t v, t = T, k = K, r = K - 1 - j;
        switch (sp) {
        case FSD_SPACING_LINSPACE: /* visit j -> position K-1-j of linspace(0, T-1, K) */
            v = K == 1 ? t - 1 : (2 * (t - 1) * r + (k - 1)) / (2 * (k - 1));
            break;
        case FSD_SPACING_TRAILING: v = (2 * t * (k - j) + k) / (2 * k) - 1; break;
        case FSD_SPACING_LEADING: v = r * t / k; break;
        case FSD_SPACING_LOGSNR:
            return fsd_fail(FSD_ERR_INVALID, "steps: logsnr spacing needs the schedule (fsd_diffusion_levels_for)");
        default: return fsd_fail(FSD_ERR_INVALID, "steps: unknown spacing %d", (int)sp);
        }
        levels[j] = (int)v;
    }
    for (int j = 0; j < K; j++) /* spacing >= 1 guarantees this; checked anyway */
        if (levels[j] < 0 || levels[j] >= T || (j > 0 && levels[j] >= levels[j - 1]))
            return fsd_fail(FSD_ERR_INTERNAL, "steps: spacing %s produced a bad level list", fsd_spacing_name(sp));
    return FSD_OK;
}

fsd_spacing fsd_default_spacing(fsd_sampler_kind k) {
    return k == FSD_SAMPLER_DPMPP2M ? FSD_SPACING_LOGSNR : FSD_SPACING_LINSPACE;
}

static double lambda_at(const fsd_schedule *s, int i) { return 0.5 * (log(s->acp[i]) - log1p(-s->acp[i])); }

fsd_status fsd_diffusion_levels_for(const fsd_schedule *s, int K, fsd_spacing sp, int *levels) {
    if (!s || !s->betas || !levels) return fsd_fail(FSD_ERR_INVALID, "steps: NULL argument");
    if (sp != FSD_SPACING_LOGSNR) return fsd_diffusion_levels(s->T, K, sp, levels);
    const int T = s->T;
    if (K < 1 || K > T) return fsd_fail(FSD_ERR_INVALID, "steps: %d steps must be in 1..%d (the schedule's T)", K, T);
    /* λ decreases strictly with the level (every β > 0) */
    const double lo = lambda_at(s, T - 1), hi = lambda_at(s, 0);
    for (int j = 0; j < K; j++) {
        double target = K == 1 ? lo : lo + (hi - lo) * (double)j / (double)(K - 1);
        /* binary search: the first level i with λ_i <= target, then the nearer of i-1 and i */
        int a = 0, b = T - 1;
        while (a < b) {
            int m = (a + b) / 2;
            if (lambda_at(s, m) <= target) b = m;
            else a = m + 1;
        }
        int i = a;
        if (i > 0 && fabs(lambda_at(s, i - 1) - target) < fabs(lambda_at(s, i) - target)) i = i - 1;
        if (j > 0 && i > levels[j - 1] - 1) i = levels[j - 1] - 1;
        if (i < K - 1 - j) i = K - 1 - j;
        levels[j] = i;
    }
    if (K > 1) levels[K - 1] = 0; /* the target λ_0 is level 0 itself; kept explicit */
    levels[0] = T - 1;
    for (int j = 1; j < K; j++)
        if (levels[j] >= levels[j - 1] || levels[j] < 0)
            return fsd_fail(FSD_ERR_INTERNAL, "steps: logsnr spacing produced a bad level list");
    return FSD_OK;
}
