/* Evaluation module (src/eval): method registry, pair scanning, the per-pair pipeline against the
 * same steps done by hand, summary statistics, thread-count invariance, error order, sheet files.
 *
 * Tolerances: the pipeline check is exact (the same library calls in the same order must give the
 * same doubles); mean/std of the summary within 1e-12 relative of the closed form; SSIM(X, X) = 1
 * and CC(X, X) = 1 within 1e-12. */
#define _XOPEN_SOURCE 700 /* mkdtemp */
#include "fsdiff/eval.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>

static char g_tmp[256];

static void mkdirs(const char *rel) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", g_tmp, rel);
    mkdir(p, 0777);
}

/* A deterministic test image: smooth ramps plus a few edges, different per `kind`. */
static void make_image(fsd_image *im, int w, int h, int c, int kind) {
    fsd_image_alloc(im, w, h, c);
    for (int k = 0; k < c; k++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                double v = kind == 0 ? 40 + 1.5 * x + ((x / 12 + y / 9) % 2) * 60
                                     : 200 - 1.2 * y + ((x - 2 * y) % 17 == 0) * 50 + 20 * k;
                if (v < 0) v = 0;
                if (v > 255) v = 255;
                im->data[((size_t)k * h + y) * w + x] = (float)floor(v);
            }
}

static void save(const char *rel, const fsd_image *im) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", g_tmp, rel);
    if (fsd_image_save_png(p, im, NULL, 0) != FSD_OK) tu_check(0, "save %s: %s", p, fsd_error_message());
}

static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return -1;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* ---------------------------------------------------------------- registry */
static void test_methods(void) {
    fsd_eval_method *m;
    int n;
    fsd_status s = fsd_eval_methods_parse("average, hr:gff,bicubic-a,bicubic-b,gradient", &m, &n);
    if (tu_check(s == FSD_OK && n == 5, "parse a list of 5 (status %d, n %d)", s, n)) {
        tu_check(!strcmp(m[1].name, "hr:gff") && m[1].uses_hr && m[1].fuse == FSD_FUSE_GFF, "hr:gff: HR, gff");
        tu_check(!m[0].uses_hr && m[0].fuse == FSD_FUSE_AVERAGE && !strcmp(m[0].name, "average"), "average: LR");
        tu_check(m[2].run != m[3].run && m[0].run != m[1].run && m[0].run == m[4].run, "run functions per family");
        tu_check(m[4].fuse == FSD_FUSE_GRADIENT && m[4].params.grad_lambda == 0.05, "gradient keeps its defaults");
    }
    fsd_eval_methods_free(m, n);
    const char *bad[] = {"foo", "", "gff,,hr:gff", "hr:", "hr:foo", "bicubic-c", "bicubic-", "gff,gff", "hr:gff,"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        s = fsd_eval_methods_parse(bad[i], &m, &n);
        const char *msg = fsd_error_message();
        tu_check(s == FSD_ERR_INVALID && m == NULL && n == 0 &&
                     (strstr(msg, "valid: average|laplacian|gff|gradient") || strstr(msg, "twice")),
                 "'%s' refused: %s", bad[i], msg);
    }
    /* model:PATH opens the file when the list is parsed (tests/test_fuse.c and tests/cli/fuse.sh run one) */
    s = fsd_eval_methods_parse("gff,model:/nonexistent/net.safetensors", &m, &n);
    tu_check(s == FSD_ERR_IO && m == NULL && strstr(fsd_error_message(), "/nonexistent/net.safetensors"),
             "model:PATH with a missing file: %s", fsd_error_message());
    s = fsd_eval_methods_parse("model:net.safetensors?steps=ten", &m, &n);
    tu_check(s == FSD_ERR_INVALID && m == NULL && strstr(fsd_error_message(), "'steps'"),
             "model option with a bad value: %s", fsd_error_message());
    s = fsd_eval_methods_parse("model:net.safetensors?colour=1", &m, &n);
    tu_check(s == FSD_ERR_INVALID && m == NULL && strstr(fsd_error_message(), "unknown model option 'colour'"),
             "unknown model option: %s", fsd_error_message());
}

/* ---------------------------------------------------------------- summary */
static void test_summary(void) {
    fsd_eval_method *m;
    int n;
    fsd_eval_methods_parse("average,gff,hr:average", &m, &n);
    fsd_eval_results res = {0};
    res.n_pairs = 3;
    res.n_methods = 3;
    res.r = calloc(9, sizeof *res.r);
    /* VIF per method over the 3 pairs: {1, 2, 3}, {2, 2, 2.5}, {0.5, 0.5, 0.5} (the hr: one);
     * PSNR: the hr: method has one +inf */
    double vif[3][3] = {{1, 2, 3}, {2, 2, 2.5}, {0.5, 0.5, 0.5}};
    double psnr[3][3] = {{10, 20, 30}, {15, 15, 15}, {INFINITY, 20, 40}};
    for (int p = 0; p < 3; p++)
        for (int k = 0; k < 3; k++) {
            res.r[p * 3 + k].m.v[FSD_METRIC_VIF] = vif[k][p];
            res.r[p * 3 + k].m.v[FSD_METRIC_PSNR] = psnr[k][p];
            res.r[p * 3 + k].seconds = 0.1 * (k + 1);
        }
    fsd_eval_summary sum;
    fsd_status s = fsd_eval_summarise(&res, m, &sum);
    const int K = FSD_METRIC_COUNT + 1;
    if (tu_check(s == FSD_OK, "summarise")) {
        const fsd_eval_stat *v0 = &sum.stat[0 * K + FSD_METRIC_VIF], *v1 = &sum.stat[1 * K + FSD_METRIC_VIF];
        tu_check(fabs(v0->mean - 2) < 1e-12 && fabs(v0->std - sqrt(2.0 / 3.0)) < 1e-12 && v0->n == 3,
                 "mean 2, population std sqrt(2/3) (got %.15g, %.15g)", v0->mean, v0->std);
        tu_check(fabs(v1->mean - 6.5 / 3) < 1e-12, "mean of 2, 2, 2.5");
        tu_check(sum.best[FSD_METRIC_VIF * 2 + 0] == 1, "best VIF among LR methods = gff (%d)", sum.best[FSD_METRIC_VIF * 2]);
        tu_check(sum.best[FSD_METRIC_VIF * 2 + 1] == -1, "a single hr: method is not marked best (%d)",
                 sum.best[FSD_METRIC_VIF * 2 + 1]);
        const fsd_eval_stat *p2 = &sum.stat[2 * K + FSD_METRIC_PSNR];
        tu_check(p2->n == 2 && p2->n_inf == 1 && fabs(p2->mean - 30) < 1e-12 && fabs(p2->std - 10) < 1e-12,
                 "PSNR: inf left out, counted (n %d, n_inf %d, mean %g, std %g)", p2->n, p2->n_inf, p2->mean, p2->std);
        tu_check(sum.best[FSD_METRIC_PSNR * 2 + 0] == 0, "best PSNR among LR methods: 20 > 15");
        tu_check(fabs(sum.stat[1 * K + FSD_METRIC_COUNT].mean - 0.2) < 1e-12, "seconds summarised");
    }
    fsd_eval_summary_free(&sum);
    free(res.r);
    fsd_eval_methods_free(m, n);
}

/* ---------------------------------------------------------------- pipeline on a synthetic set */
static void grey8(const fsd_image *im, fsd_image *g) {
    fsd_image_to_grey(im, g, 1);
    fsd_image_quantize(g);
}

static void test_run(void) {
    /* p0: grey A + RGB B, 97x75 (not a multiple of 4); p1: A == B */
    mkdirs("ok");
    mkdirs("ok/a");
    mkdirs("ok/b");
    fsd_image a0, b0, a1;
    make_image(&a0, 97, 75, 1, 0);
    make_image(&b0, 97, 75, 3, 1);
    make_image(&a1, 64, 64, 1, 1);
    save("ok/a/p0.png", &a0);
    save("ok/b/p0.png", &b0);
    save("ok/a/p1.png", &a1);
    save("ok/b/p1.png", &a1);
    char dir[512], img[512];
    snprintf(dir, sizeof dir, "%s/ok", g_tmp);
    snprintf(img, sizeof img, "%s/img", g_tmp);
    mkdir(img, 0777);
    fsd_pair_set set;
    fsd_status s = fsd_pairs_scan(dir, &set);
    if (!tu_check(s == FSD_OK && set.n == 2 && !strcmp(set.mod_a, "a") && !strcmp(set.pairs[1].name, "p1"),
                  "scan: 2 pairs, A = a/ (%s)", s ? fsd_error_message() : "ok"))
        return;
    fsd_eval_method *m;
    int n;
    fsd_eval_methods_parse("bicubic-a,hr:average,gff", &m, &n);
    fsd_eval_options opt = {0};
    opt.degrade.scale = 4;
    opt.degrade.noise_sigma = 3;
    opt.degrade.seed = 7;
    opt.n_sheets = 5;
    opt.img_dir = img;
    fsd_eval_results r1, r2;
    fsd_progress_set_quiet(1);
    fsd_set_threads(1);
    s = fsd_eval_run(&set, m, n, &opt, &r1);
    tu_check(s == FSD_OK, "run, 1 thread (%s)", s ? fsd_error_message() : "ok");
    opt.img_dir = NULL;
    fsd_set_threads(2);
    s = fsd_eval_run(&set, m, n, &opt, &r2);
    tu_check(s == FSD_OK, "run, 2 threads (%s)", s ? fsd_error_message() : "ok");
    if (s) return;
    int same = 1;
    for (int i = 0; i < 2 * n; i++)
        same &= !memcmp(r1.r[i].m.v, r2.r[i].m.v, sizeof r1.r[i].m.v);
    tu_check(same, "metrics bitwise equal with 1 and 2 threads");
    tu_check(r1.w[0] == 97 && r1.h[0] == 75 && r1.lw[0] == 24 && r1.lh[0] == 19, "sizes: HR 97x75, LR 24x19 (%dx%d)",
             r1.lw[0], r1.lh[0]);
    tu_check(count_files(img) == 2 * (4 + n) * 2, "sheet files: 2 pairs x 7 columns x 2 (%d)", count_files(img));

    /* bicubic-a on p0 by hand: degrade with the per-source seed, upsample to exactly 97x75,
     * round to 8 bits, grey, metrics against the grey HR sources */
    fsd_degrade_params dp = opt.degrade;
    dp.seed = fsd_eval_source_seed(7, "p0", 0);
    fsd_image lr = {0}, up = {0}, ga = {0}, gb = {0}, gf = {0};
    fsd_degrade(&a0, &dp, &lr);
    fsd_image_resize_bicubic(&lr, 97, 75, 1, &up);
    fsd_image_quantize(&up);
    grey8(&up, &gf);
    grey8(&a0, &ga);
    grey8(&b0, &gb);
    fsd_metrics want;
    fsd_metrics_compute(ga.data, gb.data, gf.data, 97, 75, &want);
    tu_check(up.w == 97 && up.h == 75 && !memcmp(want.v, r1.r[0].m.v, sizeof want.v),
             "bicubic-a = degrade + upsample to the HR size + 8 bits + grey + metrics, exactly (VIF %.9g vs %.9g)",
             r1.r[0].m.v[FSD_METRIC_VIF], want.v[FSD_METRIC_VIF]);
    tu_check(fsd_eval_source_seed(7, "p0", 0) != fsd_eval_source_seed(7, "p0", 1) &&
                 fsd_eval_source_seed(7, "p0", 0) != fsd_eval_source_seed(7, "p1", 0) &&
                 fsd_eval_source_seed(7, "p0", 0) != fsd_eval_source_seed(8, "p0", 0),
             "noise seeds differ per source, per image and per seed");
    /* hr:average of identical sources returns the source: PSNR inf, SSIM 2, CC 1, VIF ~2 */
    const fsd_metrics *hv = &r1.r[1 * n + 1].m;
    tu_check(isinf(hv->v[FSD_METRIC_PSNR]) && fabs(hv->v[FSD_METRIC_SSIM] - 2) < 1e-12 &&
                 fabs(hv->v[FSD_METRIC_CC] - 1) < 1e-12 && fabs(hv->v[FSD_METRIC_VIF] - 2) < 1e-6,
             "hr:average with A == B: PSNR inf, SSIM 2, CC 1, VIF 2 (%g %g %g %g)", hv->v[FSD_METRIC_PSNR],
             hv->v[FSD_METRIC_SSIM], hv->v[FSD_METRIC_CC], hv->v[FSD_METRIC_VIF]);
    fsd_image_free(&lr);
    fsd_image_free(&up);
    fsd_image_free(&ga);
    fsd_image_free(&gb);
    fsd_image_free(&gf);
    fsd_eval_results_free(&r1);
    fsd_eval_results_free(&r2);

    /* errors: p0 fine, p1 sizes differ, p2 corrupt: the first failing pair in order is reported,
     * whatever the thread count */
    mkdirs("bad");
    mkdirs("bad/a");
    mkdirs("bad/b");
    save("bad/a/p0.png", &a0);
    save("bad/b/p0.png", &b0);
    save("bad/a/p1.png", &a0);
    save("bad/b/p1.png", &a1);
    save("bad/a/p2.png", &a0);
    char p2[512];
    snprintf(p2, sizeof p2, "%s/bad/b/p2.png", g_tmp);
    FILE *fp = fopen(p2, "wb");
    fputs("\x89PNG\r\n\x1a\n garbage", fp);
    fclose(fp);
    fsd_pair_set bad;
    snprintf(dir, sizeof dir, "%s/bad", g_tmp);
    fsd_pairs_scan(dir, &bad);
    for (int t = 1; t <= 2; t++) {
        fsd_set_threads(t);
        s = fsd_eval_run(&bad, m, n, &opt, &r1);
        tu_check(s == FSD_ERR_INVALID && strstr(fsd_error_message(), "pair 'p1' differs in size") &&
                     r1.r == NULL && r1.n_pairs == 0,
                 "%d thread(s): first failing pair reported: %s", t, fsd_error_message());
    }
    fsd_pair_set every;
    fsd_pairs_scan(dir, &every);
    fsd_pairs_every(&every, 2);
    tu_check(every.n == 2 && !strcmp(every.pairs[0].name, "p0") && !strcmp(every.pairs[1].name, "p2"),
             "every 2nd pair: p0, p2");
    fsd_pairs_free(&every);
    fsd_pairs_limit(&bad, 1);
    tu_check(bad.n == 1, "limit 1");
    s = fsd_eval_run(&bad, m, n, &opt, &r1);
    tu_check(s == FSD_OK, "the good pair alone runs");
    fsd_eval_results_free(&r1);
    opt.degrade.scale = 10;
    s = fsd_eval_run(&bad, m, n, &opt, &r1);
    tu_check(s == FSD_OK && r1.lw[0] == 10 && r1.lh[0] == 8, "scale 10: 97x75 -> 10x8 (halves up), allowed (%s)",
             s ? fsd_error_message() : "ok");
    fsd_eval_results_free(&r1);
    opt.degrade.scale = 12;
    s = fsd_eval_run(&bad, m, n, &opt, &r1);
    tu_check(s == FSD_ERR_INVALID && strstr(fsd_error_message(), "bad/a/p0.png: 97x75 at scale 12 gives 8x6"),
             "scale 12: below 8 px, names the image: %s", fsd_error_message());
    fsd_pairs_free(&bad);

    /* scan: the same NAME twice in one folder */
    mkdirs("dup");
    mkdirs("dup/a");
    mkdirs("dup/b");
    save("dup/a/x.png", &a1);
    save("dup/b/x.png", &a1);
    snprintf(p2, sizeof p2, "%s/dup/a/x.bmp", g_tmp);
    fp = fopen(p2, "wb");
    fclose(fp);
    snprintf(dir, sizeof dir, "%s/dup", g_tmp);
    s = fsd_pairs_scan(dir, &bad);
    tu_check(s == FSD_ERR_INVALID && strstr(fsd_error_message(), "two images named 'x'"), "duplicate NAME: %s",
             fsd_error_message());

    fsd_eval_methods_free(m, n);
    fsd_pairs_free(&set);
    fsd_image_free(&a0);
    fsd_image_free(&b0);
    fsd_image_free(&a1);
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/fsd_test_eval_XXXXXX");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    test_methods();
    test_summary();
    test_run();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_tmp);
    return tu_summary();
}
