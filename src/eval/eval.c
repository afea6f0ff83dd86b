/* fsd_eval_run: degrade, run every method, score; one pair per thread. And the summary. */
#include "eval_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* splitmix64 finaliser over FNV-1a of the name: cheap, well mixed, platform independent. */
uint64_t fsd_eval_source_seed(uint64_t seed, const char *name, int which) {
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)name; p && *p; p++) h = (h ^ *p) * 1099511628211ull;
    uint64_t z = seed ^ h ^ ((uint64_t)(which + 1) * 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* 8-bit grey of an image: round(0.299 R + 0.587 G + 0.114 B), then clipped to 0..255 (16-bit
 * sources load as v/257), the rule of `fsdiff metrics`. */
static fsd_status grey8(const fsd_image *im, fsd_image *g) {
    fsd_status s = fsd_image_to_grey(im, g, 1);
    if (!s) fsd_image_quantize(g);
    return s;
}

void fsd_eval_results_free(fsd_eval_results *res) {
    if (!res) return;
    free(res->r);
    free(res->w);
    free(res->h);
    free(res->lw);
    free(res->lh);
    free(res->sheet_crop);
    memset(res, 0, sizeof *res);
}

/* One pair: everything of fsd_eval_run for pair p. Writes res->r[p * n_methods ...]. */
static fsd_status eval_pair(const fsd_pair_set *set, int p, const fsd_eval_method *methods, int n_methods,
                            const fsd_eval_options *opt, fsd_eval_results *res) {
    const fsd_pair *pr = &set->pairs[p];
    fsd_image a = {0}, b = {0}, la = {0}, lb = {0}, ga = {0}, gb = {0}, f = {0}, gf = {0};
    fsd_status s = fsd_image_load(pr->path_a, &a);
    if (!s) s = fsd_image_load(pr->path_b, &b);
    if (s) goto done;
    if (a.w != b.w || a.h != b.h) {
        s = fsd_fail(FSD_ERR_INVALID, "pair '%s' differs in size: %s is %dx%d, %s is %dx%d", pr->name, pr->path_a, a.w,
                     a.h, pr->path_b, b.w, b.h);
        goto done;
    }
    int w = a.w, h = a.h, lw, lh, mn = fsd_metrics_min_size();
    if (w < mn || h < mn) {
        s = fsd_fail(FSD_ERR_INVALID, "%s: %dx%d is smaller than the %dx%d the metrics need", pr->path_a, w, h, mn, mn);
        goto done;
    }
    fsd_degrade_size(w, h, opt->degrade.scale, &lw, &lh);
    if (lw < FSD_DEGRADE_MIN_SIZE || lh < FSD_DEGRADE_MIN_SIZE) {
        s = fsd_fail(FSD_ERR_INVALID, "%s: %dx%d at scale %g gives %dx%d, below the %d px minimum (use a smaller --scale)",
                     pr->path_a, w, h, opt->degrade.scale, lw, lh, FSD_DEGRADE_MIN_SIZE);
        goto done;
    }
    fsd_degrade_params dp = opt->degrade;
    dp.seed = fsd_eval_source_seed(opt->degrade.seed, pr->name, 0);
    if ((s = fsd_degrade(&a, &dp, &la))) goto done;
    dp.seed = fsd_eval_source_seed(opt->degrade.seed, pr->name, 1);
    if ((s = fsd_degrade(&b, &dp, &lb))) goto done;
    if ((s = grey8(&a, &ga)) || (s = grey8(&b, &gb))) goto done;
    res->w[p] = w;
    res->h[p] = h;
    res->lw[p] = lw;
    res->lh[p] = lh;

    int sheet = opt->img_dir && p < opt->n_sheets, *crop = &res->sheet_crop[4 * p];
    if (sheet) {
        fsd_eval_pick_crop(ga.data, gb.data, w, h, crop);
        if ((s = fsd_eval_sheet_column(opt->img_dir, p, FSD_EVAL_COL_LR_A, &la, w, h, crop)) ||
            (s = fsd_eval_sheet_column(opt->img_dir, p, FSD_EVAL_COL_LR_B, &lb, w, h, crop)) ||
            (s = fsd_eval_sheet_column(opt->img_dir, p, FSD_EVAL_COL_HR_A, &a, w, h, crop)) ||
            (s = fsd_eval_sheet_column(opt->img_dir, p, FSD_EVAL_COL_HR_B, &b, w, h, crop)))
            goto done;
    }
    fsd_eval_input in = {&la, &lb, &a, &b, w, h, opt->degrade.scale};
    for (int k = 0; k < n_methods; k++) {
        const fsd_eval_method *m = &methods[k];
        double t0 = fsd_time_seconds();
        s = m->run(m, &in, &f);
        double dt = fsd_time_seconds() - t0;
        if (s) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", fsd_error_message());
            s = fsd_fail(s, "method %s on pair '%s': %s", m->name, pr->name, msg);
            goto done;
        }
        if (f.w != w || f.h != h || (f.c != 1 && f.c != 3)) {
            s = fsd_fail(FSD_ERR_INTERNAL, "method %s on pair '%s' returned %dx%dx%d, expected %dx%d", m->name,
                         pr->name, f.w, f.h, f.c, w, h);
            goto done;
        }
        fsd_image_quantize(&f); /* score what a saved PNG would hold */
        if ((s = grey8(&f, &gf))) goto done;
        fsd_eval_result *r = &res->r[(size_t)p * n_methods + k];
        r->seconds = dt;
        if ((s = fsd_metrics_compute(ga.data, gb.data, gf.data, w, h, &r->m))) goto done;
        if (sheet && (s = fsd_eval_sheet_column(opt->img_dir, p, k, &f, w, h, crop))) goto done;
        fsd_image_free(&f);
        fsd_image_free(&gf);
    }
done:
    fsd_image_free(&a);
    fsd_image_free(&b);
    fsd_image_free(&la);
    fsd_image_free(&lb);
    fsd_image_free(&ga);
    fsd_image_free(&gb);
    fsd_image_free(&f);
    fsd_image_free(&gf);
    return s;
}

fsd_status fsd_eval_run(const fsd_pair_set *set, const fsd_eval_method *methods, int n_methods,
                        const fsd_eval_options *opt, fsd_eval_results *res) {
    memset(res, 0, sizeof *res);
    if (!set || !set->n) return fsd_fail(FSD_ERR_INVALID, "eval: no pairs to evaluate");
    if (!methods || n_methods < 1) return fsd_fail(FSD_ERR_INVALID, "eval: no methods to run");
    if (!(opt->degrade.scale >= 1.0)) return fsd_fail(FSD_ERR_INVALID, "eval: scale must be >= 1 (got %g)", opt->degrade.scale);
    int np = set->n;
    res->n_pairs = np;
    res->n_methods = n_methods;
    res->r = calloc((size_t)np * n_methods, sizeof *res->r);
    res->w = calloc((size_t)np, sizeof(int));
    res->h = calloc((size_t)np, sizeof(int));
    res->lw = calloc((size_t)np, sizeof(int));
    res->lh = calloc((size_t)np, sizeof(int));
    res->sheet_crop = calloc((size_t)np * 4, sizeof(int));
    fsd_status *st = calloc((size_t)np, sizeof *st);
    char **msg = calloc((size_t)np, sizeof *msg);
    if (!res->r || !res->w || !res->h || !res->lw || !res->lh || !res->sheet_crop || !st || !msg) {
        free(st);
        free(msg);
        fsd_eval_results_free(res);
        return fsd_fail(FSD_ERR_NOMEM, "eval: out of memory");
    }
    fsd_progress prog;
    fsd_progress_begin(&prog, opt->label ? opt->label : "eval", np);
    int stop = 0, done = 0;
    double t0 = fsd_time_seconds();
    /* One pair per thread: the fusion methods only parallelise above a size threshold and not
     * inside a parallel region, so pairs are the better unit. Dynamic scheduling hands pairs out in
     * increasing order, so when pair p fails every pair before it has started and finishes: the
     * first failing pair in order is the one reported, whatever the thread count. */
    /* A model method (serial) is parallel inside and holds one network: then pairs go one at a time
     * on a one-thread team, which leaves the inner parallel regions all the threads. */
    int serial = 0;
    for (int k = 0; k < n_methods; k++) serial |= methods[k].serial;
    const int team = serial ? 1 : omp_get_max_threads();
#pragma omp parallel for schedule(dynamic, 1) num_threads(team)
    for (int p = 0; p < np; p++) {
        int halt;
#pragma omp atomic read
        halt = stop;
        if (halt || (opt->cancel && *opt->cancel)) continue;
        fsd_status s = eval_pair(set, p, methods, n_methods, opt, res);
        if (s) {
            st[p] = s;
            msg[p] = strdup(fsd_error_message());
#pragma omp atomic write
            stop = 1;
        }
#pragma omp critical(fsd_eval_progress)
        {
            done++;
            fsd_progress_update(&prog, done, NULL);
        }
    }
    fsd_progress_end(&prog);
    res->seconds_total = fsd_time_seconds() - t0;
    fsd_status s = FSD_OK;
    for (int p = 0; p < np && !s; p++)
        if (st[p]) s = fsd_fail(st[p], "%s", msg[p] ? msg[p] : "eval: failure (out of memory)");
    if (!s && opt->cancel && *opt->cancel) s = fsd_fail(FSD_ERR_INVALID, "eval: interrupted");
    for (int p = 0; p < np; p++) free(msg[p]);
    free(msg);
    free(st);
    if (s) fsd_eval_results_free(res);
    return s;
}

/* ---------------------------------------------------------------- summary */
void fsd_eval_summary_free(fsd_eval_summary *sum) {
    if (!sum) return;
    free(sum->stat);
    memset(sum, 0, sizeof *sum);
}

fsd_status fsd_eval_summarise(const fsd_eval_results *res, const fsd_eval_method *methods, fsd_eval_summary *sum) {
    memset(sum, 0, sizeof *sum);
    const int K = FSD_METRIC_COUNT + 1, nm = res->n_methods;
    sum->n_methods = nm;
    sum->stat = calloc((size_t)nm * K, sizeof *sum->stat);
    if (!sum->stat) return fsd_fail(FSD_ERR_NOMEM, "eval: out of memory");
    for (int m = 0; m < nm; m++)
        for (int k = 0; k < K; k++) {
            fsd_eval_stat *t = &sum->stat[m * K + k];
            double s1 = 0;
            for (int p = 0; p < res->n_pairs; p++) {
                const fsd_eval_result *r = &res->r[(size_t)p * nm + m];
                double v = k < FSD_METRIC_COUNT ? r->m.v[k] : r->seconds;
                if (isfinite(v)) {
                    s1 += v;
                    t->n++;
                } else {
                    t->n_inf++;
                }
            }
            t->mean = t->n ? s1 / t->n : NAN;
            double s2 = 0; /* two passes: mean first */
            for (int p = 0; p < res->n_pairs; p++) {
                const fsd_eval_result *r = &res->r[(size_t)p * nm + m];
                double v = k < FSD_METRIC_COUNT ? r->m.v[k] : r->seconds;
                if (isfinite(v)) s2 += (v - t->mean) * (v - t->mean);
            }
            t->std = t->n ? sqrt(s2 / t->n) : NAN;
        }
    for (int k = 0; k < FSD_METRIC_COUNT; k++)
        for (int g = 0; g < 2; g++) {
            int best = -1, members = 0;
            for (int m = 0; m < nm; m++) members += (methods[m].uses_hr != 0) == g;
            for (int m = 0; m < nm && members >= 2; m++) {
                if ((methods[m].uses_hr != 0) != g) continue;
                double v = sum->stat[m * K + k].mean;
                if (!isfinite(v)) continue;
                double bv = best < 0 ? 0 : sum->stat[best * K + k].mean;
                int better = fsd_metric_table[k].higher_is_better ? v > bv : v < bv;
                if (best < 0 || better) best = m;
            }
            sum->best[k * 2 + g] = best;
        }
    return FSD_OK;
}
