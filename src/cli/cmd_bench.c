/* fsdiff bench: measurements a user can repeat with one command.
 *
 *   fsdiff bench steps  quality vs sampler steps of a model on validation pairs (the curve used to
 *                       choose the default sampler and step count): steps.csv, steps.png, and the
 *                       fewest steps within --tol-psnr dB PSNR and --tol-vif VIF of the reference
 *                       sampler (ddpm over all T levels by default).
 *
 * Inputs per pair: the centre crop (--crop) of the HR pair, degraded by `fsdiff degrade` at --scale
 * (Pillow-exact bicubic), fused by the model; scored with the fusion metrics against the HR crops
 * (8-bit grey, as fsdiff eval). The same seed for every run, so curves differ only by the sampler. */
#include "cli.h"
#include "fsdiff/fuse.h"
#include "fsdiff/image.h"
#include "fsdiff/metrics.h"
#include "fsdiff/model.h"
#include "fsdiff/pairs.h"
#include "fsdiff/plot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void usage(FILE *fp) {
    fprintf(fp,
            "usage: fsdiff bench steps --model M --data SPLIT_DIR [--data ...] --out DIR [options]\n\n"
            "Quality vs sampler steps: every (sampler, steps) run fuses the same LR crops (seed 0) and is\n"
            "scored with PSNR and VIF against the HR sources (as fsdiff eval). Writes DIR/steps.csv and\n"
            "DIR/steps.png (PSNR and VIF vs steps, the reference sampler as a dashed line) and prints the\n"
            "fewest steps within the tolerances of the reference.\n"
            "  --scale S          SR factor (default 4)\n"
            "  --pairs N          pairs per split folder, spread out (default 4)\n"
            "  --crop C           centre crop of the HR pair, a multiple of S and of the U-Net factor (default 128)\n"
            "  --samplers LIST    default ddim,dpmpp2m\n"
            "  --steps LIST       default 5,10,20,50,100\n"
            "  --ref SAMPLER:K    reference (default ddpm:T, every noise level)\n"
            "  --tol-psnr DB      default 0.3\n"
            "  --tol-vif FRAC     relative VIF tolerance (default 0.01)\n"
            "  --seed N           default 0\n"
            "  --threads N, --quiet\n");
}

typedef struct bench_pair {
    char name[256];
    fsd_image a, b;       /* HR crops, 0..255 */
    fsd_image la, lb;     /* LR inputs */
    fsd_image ga, gb;     /* HR crops as 8-bit grey (metric references) */
} bench_pair;

static fsd_status crop_centre(const fsd_image *in, int c, fsd_image *out) {
    int x0 = (in->w - c) / 2, y0 = (in->h - c) / 2;
    fsd_status s = fsd_image_alloc(out, c, c, in->c);
    if (s) return s;
    for (int ch = 0; ch < in->c; ch++)
        for (int y = 0; y < c; y++)
            memcpy(out->data + ((size_t)ch * c + y) * c, in->data + ((size_t)ch * in->h + y0 + y) * in->w + x0,
                   (size_t)c * sizeof(float));
    return FSD_OK;
}

static fsd_status grey8(const fsd_image *im, fsd_image *g) {
    fsd_status s = fsd_image_to_grey(im, g, 1);
    if (!s) fsd_image_quantize(g);
    return s;
}

static int parse_ints(const char *opt, const char *s, int *v, int max) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s ? s : "");
    int n = 0;
    for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
        long x;
        if (n == max) return cli_error("%s: at most %d values", opt, max), -1;
        if (cli_parse_int(opt, t, 1, 1000000, &x)) return -1;
        v[n++] = (int)x;
    }
    if (!n) return cli_error("%s: empty list", opt), -1;
    return n;
}

typedef struct run_result {
    fsd_sampler_kind sampler;
    int steps;
    double psnr, vif, seconds;
} run_result;

/* Mean PSNR / VIF over the pairs for one sampler setting. */
static fsd_status run_setting(const fsd_model *m, bench_pair *P, int np, int scale, fsd_sampler_kind k, int steps,
                              uint64_t seed, run_result *r) {
    fsd_fuse_opts o;
    fsd_fuse_opts_default(&o);
    o.sampler = (int)k, o.steps = steps, o.seed = seed;
    memset(r, 0, sizeof *r);
    r->sampler = k, r->steps = steps;
    double t0 = fsd_time_seconds();
    for (int i = 0; i < np; i++) {
        fsd_image f = {0}, gf = {0};
        fsd_fuse_info info;
        fsd_status s = fsd_fuse_run(m, &P[i].la, &P[i].lb, scale, &o, &f, &info);
        if (!s) fsd_image_quantize(&f), s = grey8(&f, &gf);
        double p = 0, v = 0;
        if (!s) s = fsd_metric_psnr(P[i].ga.data, P[i].gb.data, gf.data, gf.w, gf.h, &p);
        if (!s) s = fsd_metric_vif(P[i].ga.data, P[i].gb.data, gf.data, gf.w, gf.h, &v);
        fsd_image_free(&f), fsd_image_free(&gf);
        if (s) return s;
        r->psnr += p / np, r->vif += v / np;
    }
    r->seconds = (fsd_time_seconds() - t0) / np;
    return FSD_OK;
}

static fsd_status draw(const char *path, const run_result *R, int n, const run_result *ref, const char *ref_label,
                       const int *samplers, int ns) {
    fsd_plot *p = NULL;
    fsd_status s = fsd_plot_create(&p, 1280, 480);
    if (!s) s = fsd_plot_grid(p, 1, 2);
    const char *ylab[2] = {"PSNR vs HR sources (dB)", "VIF (sum over both sources)"};
    for (int panel = 0; panel < 2 && !s; panel++) {
        s = fsd_plot_panel(p, panel);
        if (s) break;
        fsd_plot_title(p, panel ? "VIF vs sampler steps" : "PSNR vs sampler steps");
        fsd_plot_axis_labels(p, "sampler steps (network calls)", ylab[panel]);
        fsd_plot_log_x(p, 1);
        for (int j = 0; j < ns && !s; j++) {
            double xs[64], ys[64];
            int m = 0;
            for (int i = 0; i < n && m < 64; i++)
                if ((int)R[i].sampler == samplers[j]) xs[m] = R[i].steps, ys[m] = panel ? R[i].vif : R[i].psnr, m++;
            fsd_plot_style st = {0};
            st.color = j, st.width = 2, st.marker = FSD_MARKER_CIRCLE;
            s = fsd_plot_series(p, fsd_sampler_name((fsd_sampler_kind)samplers[j]), xs, ys, (size_t)m, &st);
        }
        fsd_plot_style hs = {0};
        hs.color = 3, hs.dashed = 1, hs.width = 2;
        if (!s) s = fsd_plot_hline(p, panel ? ref->vif : ref->psnr, ref_label, &hs);
    }
    if (!s) s = fsd_plot_save_png(p, path);
    fsd_plot_free(p);
    return s;
}

static int bench_steps(int argc, char **argv) {
    const char *model = NULL, *out = NULL;
    const char *data[8];
    int nd = 0, scale = 4, npairs = 4, crop = 128, tol_set = 0;
    int samplers[4] = {FSD_SAMPLER_DDIM, FSD_SAMPLER_DPMPP2M}, ns = 2, steps[32] = {5, 10, 20, 50, 100}, nst = 5;
    fsd_sampler_kind ref_kind = FSD_SAMPLER_DDPM;
    int ref_steps = 0;
    double tol_psnr = 0.3, tol_vif = 0.01;
    long seed = 0;
    (void)tol_set;
    for (int i = 1; i < argc; i++) {
        int c = cli_common_option(argc, argv, &i);
        if (c < 0) return 1;
        if (c) continue;
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(stdout), 0;
        if (!v) return cli_error("bench steps: %s needs a value (or is unknown)", a);
        i++;
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--out") || !strcmp(a, "-o")) out = v;
        else if (!strcmp(a, "--data")) {
            if (nd == 8) return cli_error("--data: at most 8 folders");
            data[nd++] = v;
        } else if (!strcmp(a, "--scale")) { if (cli_parse_int(a, v, 1, 16, &n)) return 1; scale = (int)n; }
        else if (!strcmp(a, "--pairs")) { if (cli_parse_int(a, v, 1, 10000, &n)) return 1; npairs = (int)n; }
        else if (!strcmp(a, "--crop")) { if (cli_parse_int(a, v, 16, 4096, &n)) return 1; crop = (int)n; }
        else if (!strcmp(a, "--seed")) { if (cli_parse_int(a, v, 0, 2147483647L, &seed)) return 1; }
        else if (!strcmp(a, "--tol-psnr")) { if (cli_parse_double(a, v, 0, 100, &tol_psnr)) return 1; }
        else if (!strcmp(a, "--tol-vif")) { if (cli_parse_double(a, v, 0, 1, &tol_vif)) return 1; }
        else if (!strcmp(a, "--steps")) { if ((nst = parse_ints(a, v, steps, 32)) < 0) return 1; }
        else if (!strcmp(a, "--samplers")) {
            char buf[128];
            snprintf(buf, sizeof buf, "%s", v);
            ns = 0;
            for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
                fsd_sampler_kind k;
                if (ns == 4 || fsd_sampler_parse(t, &k)) return ns == 4 ? cli_error("--samplers: at most 4") : cli_lib_error();
                samplers[ns++] = (int)k;
            }
        } else if (!strcmp(a, "--ref")) {
            char buf[64];
            snprintf(buf, sizeof buf, "%s", v);
            char *colon = strchr(buf, ':');
            if (colon) *colon = 0;
            if (fsd_sampler_parse(buf, &ref_kind)) return cli_lib_error();
            if (colon && cli_parse_int(a, colon + 1, 1, 1000000, &n)) return 1;
            ref_steps = colon ? (int)n : 0;
        } else return cli_error("bench steps: unknown option '%s'", a);
    }
    if (!model || !nd || !out) return cli_error("bench steps: --model, --data and --out are required (see --help)");
    fsd_model m;
    if (fsd_model_open(&m, model)) return cli_lib_error();
    if (!ref_steps) ref_steps = m.diff.T;
    int div = 1 << (fsd_net_cfg(m.net)->n_mults - 1);
    if (crop % scale || crop % div) {
        fsd_model_close(&m);
        return cli_error("bench steps: --crop %d must be a multiple of the scale %d and of the U-Net factor %d", crop,
                         scale, div);
    }
    for (int i = 0; i < nst; i++)
        if (steps[i] > m.diff.T) {
            fsd_model_close(&m);
            return cli_error("bench steps: %d steps exceed the model's T = %d", steps[i], m.diff.T);
        }
    bench_pair *P = calloc((size_t)nd * npairs, sizeof *P);
    int np = 0, rc = 1;
    run_result *R = NULL, ref;
    if (!P) goto done;
    for (int d = 0; d < nd; d++) {
        fsd_pair_set set;
        if (fsd_pairs_scan(data[d], &set)) { rc = cli_lib_error(); goto done; }
        int take = npairs < set.n ? npairs : set.n;
        for (int j = 0; j < take; j++) {
            const fsd_pair *pr = &set.pairs[(int64_t)j * set.n / take];
            bench_pair *q = &P[np];
            fsd_image a = {0}, b = {0};
            fsd_status s = fsd_image_load(pr->path_a, &a);
            if (!s) s = fsd_image_load(pr->path_b, &b);
            if (!s && (a.w < crop || a.h < crop || b.w != a.w || b.h != a.h))
                s = fsd_fail(FSD_ERR_INVALID, "%s: %dx%d pair is smaller than the %d crop or differs in size", pr->name,
                             a.w, a.h, crop);
            if (!s) s = crop_centre(&a, crop, &q->a);
            if (!s) s = crop_centre(&b, crop, &q->b);
            fsd_degrade_params dp = {(double)scale, 0.0, 0.0, 0};
            if (!s) s = fsd_degrade(&q->a, &dp, &q->la);
            if (!s) s = fsd_degrade(&q->b, &dp, &q->lb);
            if (!s) s = grey8(&q->a, &q->ga);
            if (!s) s = grey8(&q->b, &q->gb);
            fsd_image_free(&a), fsd_image_free(&b);
            snprintf(q->name, sizeof q->name, "%s", pr->name);
            np++;
            if (s) {
                fsd_pairs_free(&set);
                rc = cli_lib_error();
                goto done;
            }
        }
        fsd_pairs_free(&set);
    }
    mkdir(out, 0777);
    int nr = ns * nst;
    R = calloc((size_t)nr, sizeof *R);
    if (!R) goto done;
    fsd_progress bar;
    int64_t total = (int64_t)ref_steps;
    for (int i = 0; i < nst; i++) total += (int64_t)steps[i] * ns;
    fsd_progress_begin(&bar, "bench steps", total * np);
    int64_t done_calls = 0;
    if (run_setting(&m, P, np, scale, ref_kind, ref_steps, (uint64_t)seed, &ref)) { rc = cli_lib_error(); goto done; }
    done_calls += (int64_t)ref_steps * np;
    fsd_progress_update(&bar, done_calls, "reference");
    for (int j = 0; j < ns; j++)
        for (int i = 0; i < nst; i++) {
            run_result *r = &R[j * nst + i];
            if (run_setting(&m, P, np, scale, (fsd_sampler_kind)samplers[j], steps[i], (uint64_t)seed, r)) {
                fsd_progress_end(&bar);
                rc = cli_lib_error();
                goto done;
            }
            done_calls += (int64_t)steps[i] * np;
            fsd_progress_update(&bar, done_calls, fsd_sampler_name((fsd_sampler_kind)samplers[j]));
        }
    fsd_progress_end(&bar);
    char path[4096];
    snprintf(path, sizeof path, "%s/steps.csv", out);
    fsd_atomic_file f;
    if (fsd_atomic_open(&f, path)) { rc = cli_lib_error(); goto done; }
    fprintf(f.fp, "sampler,steps,psnr,vif,seconds_per_pair,reference\n");
    fprintf(f.fp, "%s,%d,%.4f,%.5f,%.2f,1\n", fsd_sampler_name(ref.sampler), ref.steps, ref.psnr, ref.vif, ref.seconds);
    for (int i = 0; i < nr; i++)
        fprintf(f.fp, "%s,%d,%.4f,%.5f,%.2f,0\n", fsd_sampler_name(R[i].sampler), R[i].steps, R[i].psnr, R[i].vif,
                R[i].seconds);
    if (fsd_atomic_commit(&f)) { rc = cli_lib_error(); goto done; }
    char ref_label[64];
    snprintf(ref_label, sizeof ref_label, "%s %d steps (reference)", fsd_sampler_name(ref.sampler), ref.steps);
    snprintf(path, sizeof path, "%s/steps.png", out);
    if (draw(path, R, nr, &ref, ref_label, samplers, ns)) { rc = cli_lib_error(); goto done; }
    printf("%d pairs, x%d, crop %d, seed %ld; reference %s: PSNR %.3f dB, VIF %.4f (%.1f s/pair)\n", np, scale, crop,
           seed, ref_label, ref.psnr, ref.vif, ref.seconds);
    printf("| sampler | steps | PSNR | VIF | s/pair | within tolerance |\n|---|---|---|---|---|---|\n");
    int best = -1;
    for (int i = 0; i < nr; i++) {
        int ok = R[i].psnr >= ref.psnr - tol_psnr && R[i].vif >= ref.vif * (1.0 - tol_vif);
        printf("| %s | %d | %.3f | %.4f | %.1f | %s |\n", fsd_sampler_name(R[i].sampler), R[i].steps, R[i].psnr,
               R[i].vif, R[i].seconds, ok ? "yes" : "no");
        if (ok && (best < 0 || R[i].steps < R[best].steps)) best = i;
    }
    if (best >= 0)
        printf("fewest steps within %.2f dB PSNR and %.1f %% VIF of the reference: %s %d\n", tol_psnr, 100 * tol_vif,
               fsd_sampler_name(R[best].sampler), R[best].steps);
    else
        printf("no setting is within %.2f dB PSNR and %.1f %% VIF of the reference\n", tol_psnr, 100 * tol_vif);
    printf("wrote %s/steps.csv and %s/steps.png\n", out, out);
    rc = 0;
done:
    for (int i = 0; i < np; i++) {
        bench_pair *q = &P[i];
        fsd_image_free(&q->a), fsd_image_free(&q->b), fsd_image_free(&q->la), fsd_image_free(&q->lb);
        fsd_image_free(&q->ga), fsd_image_free(&q->gb);
    }
    free(P);
    free(R);
    fsd_model_close(&m);
    return rc;
}

int cmd_bench(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    if (!strcmp(argv[1], "steps")) return bench_steps(argc - 1, argv + 1);
    return cli_error("bench: unknown benchmark '%s' (available: steps; bench/ has the PyTorch comparisons)", argv[1]);
}
