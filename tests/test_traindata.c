/* Trainer data pipeline (src/diffusion/traindata.c) on a tiny data + teacher folder made here from
 * four real pairs of $FSDIFF_DATA (two IR-visible, two medical; grey/grey and grey/RGB).
 *
 * Checked: determinism (two opens, 1 vs 2 threads, out-of-order batches: bit-identical), ranges
 * (crop sizes, scales independent per modality, permutation per epoch, values in [-1, 1], exact
 * grey replication), geometry (scale 1 without augmentation = the HR crop; every sample equal,
 * bit for bit, to fsd_degrade + PIL bicubic of the transformed crop recomputed here with an
 * independent rot90/flip), validation samples, the pairs' dark share (fusion method auto), and
 * one-line errors. Tolerance: exact (0). */
#define _GNU_SOURCE
#include "fsdiff/fusion.h"
#include "fsdiff/image.h"
#include "fsdiff/traindata.h"
#include "testutil.h"

#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[256];
static char g_data[512], g_teacher[512];
static const char *g_dirs[2];
static char g_dir_ivf[600], g_dir_med[600];

static const struct {
    const char *set, *a, *b, *name;
} PAIRS[] = {
    {"ivf", "ir", "vi", "roadscene_FLIR_08932"}, /* 351x261, L / RGB */
    {"ivf", "ir", "vi", "tno_bench"},            /* 280x280, L / L */
    {"med", "mri", "other", "ct_20005"},         /* 256x256, L / L */
    {"med", "mri", "other", "pet_25015"},        /* 256x256, L / RGB */
};
#define NP 4

static int mkdir_p(const char *path) {
    char p[1024];
    snprintf(p, sizeof p, "%s", path);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            mkdir(p, 0777);
            *s = '/';
        }
    return mkdir(p, 0777) == 0 || access(p, F_OK) == 0 ? 0 : -1;
}

static int copy_file(const char *src, const char *dst) {
    unsigned char *d;
    size_t n;
    if (fsd_read_file(src, &d, &n)) return -1;
    fsd_status s = fsd_write_file_atomic(dst, d, n);
    fsd_free(d);
    return s ? -1 : 0;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw) { return remove(p); }

/* DATA/<set>/train/{a,b}/NAME.png copies and TEACHER/<set>/train/NAME.png (average fusion). */
static int make_fixture(void) {
    snprintf(root, sizeof root, "/tmp/fsd_traindata_XXXXXX");
    if (!mkdtemp(root)) return -1;
    snprintf(g_data, sizeof g_data, "%s/data", root);
    snprintf(g_teacher, sizeof g_teacher, "%s/teacher", root);
    fsd_fuse_params fp;
    fsd_fuse_params_default(&fp);
    for (int i = 0; i < NP; i++) {
        char src[2048], dst[2048], d[1024];
        const char *mod[2] = {PAIRS[i].a, PAIRS[i].b};
        fsd_image im[2] = {{0}}, f = {0};
        for (int m = 0; m < 2; m++) {
            snprintf(d, sizeof d, "%s/%s/train/%s", g_data, PAIRS[i].set, mod[m]);
            snprintf(src, sizeof src, "%s/%s/train/%s/%s.png", tu_data_dir(), PAIRS[i].set, mod[m], PAIRS[i].name);
            snprintf(dst, sizeof dst, "%s/%s.png", d, PAIRS[i].name);
            if (mkdir_p(d) || copy_file(src, dst) || fsd_image_load(dst, &im[m])) return -1;
        }
        snprintf(d, sizeof d, "%s/%s/train", g_teacher, PAIRS[i].set);
        snprintf(dst, sizeof dst, "%s/%s.png", d, PAIRS[i].name);
        if (mkdir_p(d) || fsd_fuse_images(FSD_FUSE_AVERAGE, &fp, &im[0], &im[1], &f) ||
            fsd_image_save_png(dst, &f, NULL, 0))
            return -1;
        fsd_image_free(&im[0]);
        fsd_image_free(&im[1]);
        fsd_image_free(&f);
    }
    snprintf(g_dir_ivf, sizeof g_dir_ivf, "%s/ivf/train", g_data);
    snprintf(g_dir_med, sizeof g_dir_med, "%s/med/train", g_data);
    g_dirs[0] = g_dir_ivf, g_dirs[1] = g_dir_med;
    return 0;
}

static int batch_equal(const fsd_td_batch *x, const fsd_td_batch *y) {
    if (x->n != y->n || x->w != y->w || x->h != y->h) return 0;
    size_t px = (size_t)x->n * x->w * x->h;
    return !memcmp(x->cond, y->cond, px * 6 * sizeof(float)) && !memcmp(x->x0, y->x0, px * 3 * sizeof(float)) &&
           !memcmp(x->synth, y->synth, (size_t)x->n * 6 * sizeof(float)) &&
           !memcmp(x->plan, y->plan, (size_t)x->n * sizeof *x->plan) && x->has_base == y->has_base &&
           (!x->has_base || !memcmp(x->base, y->base, px * 3 * sizeof(float)));
}

/* ---------------------------------------------------------------- independent recomputation */

/* numpy-style rot90 (counter-clockwise) of an S x S planar image: out[i][j] = in[j][S-1-i] */
static void rot90(fsd_image *im) {
    int S = im->w;
    float *t = malloc((size_t)S * S * sizeof *t);
    for (int c = 0; c < im->c; c++) {
        float *p = im->data + (size_t)c * S * S;
        for (int i = 0; i < S; i++)
            for (int j = 0; j < S; j++) t[i * S + j] = p[j * S + (S - 1 - i)];
        memcpy(p, t, (size_t)S * S * sizeof *t);
    }
    free(t);
}
static void fliplr(fsd_image *im) {
    for (int c = 0; c < im->c; c++)
        for (int i = 0; i < im->h; i++) {
            float *r = im->data + ((size_t)c * im->h + i) * im->w;
            for (int j = 0; j < im->w / 2; j++) {
                float t = r[j];
                r[j] = r[im->w - 1 - j];
                r[im->w - 1 - j] = t;
            }
        }
}
static void crop(const fsd_image *in, int x, int y, int w, int h, fsd_image *out) {
    fsd_image_alloc(out, w, h, in->c);
    for (int c = 0; c < in->c; c++)
        for (int i = 0; i < h; i++)
            memcpy(out->data + ((size_t)c * h + i) * w, in->data + ((size_t)c * in->h + y + i) * in->w + x,
                   (size_t)w * sizeof(float));
}
/* 3 planes in [-1, 1] from 1 or 3 planes at 0..255 */
static void unit3(const fsd_image *im, float *dst) {
    size_t hw = (size_t)im->w * im->h;
    for (int c = 0; c < 3; c++)
        for (size_t q = 0; q < hw; q++) dst[c * hw + q] = im->data[(im->c == 3 ? c : 0) * hw + q] / 127.5f - 1.0f;
}

/* cond (6,h,w) and x0 (3,h,w) of a sample from the files, following the plan (crop, then
 * transform, then degrade -> bicubic up). */
static int recompute(const fsd_traindata *td, const fsd_td_plan *pl, int w, int h, float *cond, float *x0) {
    const char *name = fsd_traindata_pair_name(td, pl->pair);
    int k = 0;
    while (k < NP && strcmp(PAIRS[k].name, name)) k++;
    if (k == NP) return -1;
    char path[3][1024];
    snprintf(path[0], 1024, "%s/%s/train/%s/%s.png", g_data, PAIRS[k].set, PAIRS[k].a, name);
    snprintf(path[1], 1024, "%s/%s/train/%s/%s.png", g_data, PAIRS[k].set, PAIRS[k].b, name);
    snprintf(path[2], 1024, "%s/%s/train/%s.png", g_teacher, PAIRS[k].set, name);
    for (int m = 0; m < 3; m++) {
        fsd_image full, c, lr, up;
        if (fsd_image_load(path[m], &full)) return -1;
        crop(&full, pl->x, pl->y, w, h, &c);
        for (int r = 0; r < (pl->transform & 3); r++) rot90(&c);
        if (pl->transform >> 2) fliplr(&c);
        if (m < 2) {
            fsd_degrade_params dp = {pl->scale[m], pl->blur[m], pl->noise[m], pl->noise_seed[m]};
            if (fsd_degrade(&c, &dp, &lr) || fsd_image_resize_bicubic(&lr, w, h, 1, &up)) return -1;
            unit3(&up, cond + (size_t)m * 3 * w * h);
            fsd_image_free(&lr);
            fsd_image_free(&up);
        } else {
            unit3(&c, x0);
        }
        fsd_image_free(&full);
        fsd_image_free(&c);
    }
    return 0;
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

/* ---------------------------------------------------------------- tests */

static fsd_traindata_config cfg_aug(void) {
    fsd_traindata_config c;
    fsd_traindata_config_default(&c);
    c.seed = 1234;
    c.batch = 4;
    c.blur_p = 0.5, c.blur_max = 2.0;
    c.noise_p = 0.5, c.noise_max = 10.0;
    return c;
}

static void test_determinism(void) {
    fsd_traindata_config c = cfg_aug();
    fsd_traindata *t1 = NULL, *t2 = NULL;
    fsd_status s = fsd_traindata_open(g_dirs, 2, g_teacher, &c, &t1);
    if (!tu_check(s == FSD_OK, "open (%s)", s ? fsd_error_message() : "ok")) return;
    tu_check(fsd_traindata_open(g_dirs, 2, g_teacher, &c, &t2) == FSD_OK, "second open");
    tu_check(fsd_traindata_n_pairs(t1) == NP, "4 pairs (got %d)", fsd_traindata_n_pairs(t1));
    printf("cache: %zu bytes for %d pairs\n", fsd_traindata_cache_bytes(t1), NP);
    size_t expect = 351 * 261 * (1 + 3 + 3) + 280 * 280 * 3 + 256 * 256 * 3 + 256 * 256 * (1 + 3 + 3);
    tu_check(fsd_traindata_cache_bytes(t1) == expect, "cache bytes %zu == %zu", fsd_traindata_cache_bytes(t1), expect);

    enum { K = 7 };
    fsd_td_batch in_order[K] = {{0}}, b = {0};
    fsd_set_threads(2);
    int ok = 1;
    for (int k = 0; k < K; k++) ok &= fsd_traindata_batch(t1, k, &in_order[k]) == FSD_OK;
    tu_check(ok, "batches 0..6 in order (2 threads)");
    /* out of order on a fresh loader: 5, 2, 6, 0 */
    const int order[4] = {5, 2, 6, 0};
    int same = 1;
    for (int q = 0; q < 4; q++) {
        same &= fsd_traindata_batch(t2, order[q], &b) == FSD_OK && batch_equal(&b, &in_order[order[q]]);
    }
    tu_check(same, "batches 5, 2, 6, 0 requested out of order on a second loader: bit-identical");
    fsd_set_threads(1);
    same = 1;
    for (int k = K - 1; k >= 0; k--) same &= fsd_traindata_batch(t1, k, &b) == FSD_OK && batch_equal(&b, &in_order[k]);
    tu_check(same, "1 thread, reverse order: bit-identical to 2 threads");
    fsd_set_threads(2);
    /* a batch crossing the epoch boundary (i = 4..7 with 4 pairs is epoch 1): plans agree with the API */
    fsd_td_plan pl;
    same = 1;
    for (int k = 0; k < K; k++)
        for (int q = 0; q < c.batch; q++)
            same &= fsd_traindata_plan(t2, k, q, &pl) == FSD_OK && !memcmp(&pl, &in_order[k].plan[q], sizeof pl);
    tu_check(same, "fsd_traindata_plan == the plans of the batches");
    /* a different seed gives different batches */
    fsd_traindata_config c2 = c;
    c2.seed = 99;
    fsd_traindata *t3 = NULL;
    if (fsd_traindata_open(g_dirs, 2, g_teacher, &c2, &t3) == FSD_OK) {
        fsd_traindata_batch(t3, 0, &b);
        tu_check(!batch_equal(&b, &in_order[0]), "another seed gives another batch 0");
        fsd_traindata_close(t3);
    }

    /* geometry: every sample of the batches equals the direct recomputation from the files */
    double worst = 0;
    int n_ok = 0, n_tot = 0;
    for (int k = 0; k < K; k++) {
        const fsd_td_batch *x = &in_order[k];
        size_t hw = (size_t)x->w * x->h;
        float *cond = malloc(hw * 6 * sizeof(float)), *x0 = malloc(hw * 3 * sizeof(float));
        for (int q = 0; q < x->n; q++) {
            n_tot++;
            if (recompute(t1, &x->plan[q], x->w, x->h, cond, x0)) continue;
            double d = fmax(max_abs_diff(cond, x->cond + q * 6 * hw, 6 * hw), max_abs_diff(x0, x->x0 + q * 3 * hw, 3 * hw));
            worst = fmax(worst, d);
            n_ok++;
        }
        free(cond);
        free(x0);
    }
    tu_check(n_ok == n_tot && worst == 0.0,
             "%d/%d samples == crop+rot90/flip+fsd_degrade+bicubic recomputed from the files (max diff %g)", n_ok,
             n_tot, worst);

    for (int k = 0; k < K; k++) fsd_td_batch_free(&in_order[k]);
    fsd_td_batch_free(&b);
    fsd_traindata_close(t1);
    fsd_traindata_close(t2);
}

static void test_ranges(void) {
    fsd_traindata_config c = cfg_aug();
    c.batch = 3; /* not a divisor of the pair count: batches straddle epochs */
    fsd_traindata *td = NULL;
    if (!tu_check(fsd_traindata_open(g_dirs, 2, g_teacher, &c, &td) == FSD_OK, "open (ranges)")) return;
    int size_hits[3] = {0}, bad = 0, a_lt_b = 0, a_gt_b = 0, a_eq_b = 0, tr[8] = {0}, blur = 0, noise = 0;
    int scale_hits[2][9] = {{0}};
    int perm_ok = 1;
    const int NB = 400;
    int seen[NP];
    for (int k = 0; k < NB; k++) {
        int S = -1;
        for (int q = 0; q < c.batch; q++) {
            fsd_td_plan p;
            if (fsd_traindata_plan(td, k, q, &p)) { bad++; continue; }
            if (S < 0) S = p.size;
            if (p.size != S) bad++;
            int w, h;
            fsd_traindata_pair_info(td, p.pair, &w, &h, NULL, NULL, NULL);
            if (p.x < 0 || p.y < 0 || p.x + p.size > w || p.y + p.size > h) bad++;
            for (int m = 0; m < 2; m++) {
                if (p.scale[m] != 2 && p.scale[m] != 4 && p.scale[m] != 8) bad++;
                else scale_hits[m][p.scale[m]]++;
                if (p.blur[m] < 0 || p.blur[m] >= 2.0 || p.noise[m] < 0 || p.noise[m] >= 10.0) bad++;
                blur += p.blur[m] > 0, noise += p.noise[m] > 0;
            }
            a_lt_b += p.scale[0] < p.scale[1], a_gt_b += p.scale[0] > p.scale[1], a_eq_b += p.scale[0] == p.scale[1];
            tr[p.transform]++;
            /* epoch e = i / N holds every pair once */
            if (p.index % NP == 0) memset(seen, 0, sizeof seen);
            if (seen[p.pair]++) perm_ok = 0;
        }
        size_hits[S == 64 ? 0 : S == 96 ? 1 : S == 128 ? 2 : 0] += (S == 64 || S == 96 || S == 128);
        if (S != 64 && S != 96 && S != 128) bad++;
    }
    int n = NB * c.batch, all_tr = 1;
    for (int t = 0; t < 8; t++) all_tr &= tr[t] > 0;
    tu_check(!bad, "crop sizes in {64,96,128}, one per batch; crops inside the image; scales in {2,4,8}; sigmas in range");
    tu_check(size_hits[0] && size_hits[1] && size_hits[2], "all crop sizes occur (%d/%d/%d batches)", size_hits[0],
             size_hits[1], size_hits[2]);
    tu_check(a_lt_b > n / 6 && a_gt_b > n / 6 && a_eq_b > n / 6,
             "scales independent per modality: sA<sB %d, sA>sB %d, equal %d of %d", a_lt_b, a_gt_b, a_eq_b, n);
    tu_check(scale_hits[0][2] && scale_hits[0][8] && scale_hits[1][2] && scale_hits[1][8], "every scale for A and B");
    tu_check(all_tr, "all 8 dihedral transforms occur");
    tu_check(blur > 2 * n / 3 && blur < 4 * n / 3 && noise > 2 * n / 3 && noise < 4 * n / 3,
             "blur / noise with p = 0.5: %d and %d of %d draws", blur, noise, 2 * n);
    tu_check(perm_ok, "each epoch visits every pair exactly once");

    /* values and grey replication on real batches */
    fsd_td_batch b = {0};
    int in_range = 1, rep_a = 1, rep_b = 1, rep_t = 1, n_grey_b = 0, n_grey_t = 0, synth_ok = 1;
    for (int k = 0; k < 12; k++) {
        if (fsd_traindata_batch(td, k, &b)) { in_range = 0; break; }
        size_t hw = (size_t)b.w * b.h;
        for (size_t q = 0; q < (size_t)b.n * 6 * hw; q++) in_range &= b.cond[q] >= -1.f && b.cond[q] <= 1.f;
        for (size_t q = 0; q < (size_t)b.n * 3 * hw; q++) in_range &= b.x0[q] >= -1.f && b.x0[q] <= 1.f;
        for (int q = 0; q < b.n; q++) {
            int ca, cb, ct;
            fsd_traindata_pair_info(td, b.plan[q].pair, NULL, NULL, &ca, &cb, &ct);
            const float *cd = b.cond + q * 6 * hw, *x0 = b.x0 + q * 3 * hw;
            rep_a &= ca == 1 && !memcmp(cd, cd + hw, hw * 4) && !memcmp(cd, cd + 2 * hw, hw * 4);
            if (cb == 1) n_grey_b++, rep_b &= !memcmp(cd + 3 * hw, cd + 4 * hw, hw * 4) && !memcmp(cd + 3 * hw, cd + 5 * hw, hw * 4);
            if (ct == 1) n_grey_t++, rep_t &= !memcmp(x0, x0 + hw, hw * 4) && !memcmp(x0, x0 + 2 * hw, hw * 4);
            for (int m = 0; m < 2; m++) {
                const float *sy = b.synth + q * 6 + 3 * m;
                synth_ok &= sy[0] == (float)log2(b.plan[q].scale[m]) && sy[1] == (float)b.plan[q].blur[m] &&
                            sy[2] == (float)b.plan[q].noise[m];
            }
            synth_ok &= !strcmp(b.names[q], fsd_traindata_pair_name(td, b.plan[q].pair));
        }
    }
    tu_check(in_range, "cond and x0 in [-1, 1]");
    tu_check(rep_a && rep_b && rep_t && n_grey_b > 0 && n_grey_t > 0,
             "grey replicated exactly into 3 channels (A always; B %d, target %d grey samples)", n_grey_b, n_grey_t);
    tu_check(synth_ok, "synthesis parameters (log2 scale, blur, noise) and names match the plans");
    fsd_td_batch_free(&b);
    fsd_traindata_close(td);
}

/* scale 1, no augmentation, no blur/noise: the conditioning is the HR crop itself */
static void test_identity_geometry(void) {
    fsd_traindata_config c;
    fsd_traindata_config_default(&c);
    c.augment = 0;
    c.scales[0] = 1, c.n_scales = 1;
    c.crop_sizes[0] = 64, c.n_crop_sizes = 1;
    c.seed = 7;
    fsd_traindata *td = NULL;
    if (!tu_check(fsd_traindata_open(g_dirs, 2, g_teacher, &c, &td) == FSD_OK, "open (scale 1)")) return;
    fsd_td_batch b = {0};
    int ok = 1;
    for (int k = 0; k < 4 && ok; k++) {
        ok &= fsd_traindata_batch(td, k, &b) == FSD_OK;
        size_t hw = 64 * 64;
        for (int q = 0; q < b.n && ok; q++) {
            const fsd_td_plan *p = &b.plan[q];
            ok &= p->transform == 0 && p->scale[0] == 1 && p->scale[1] == 1;
            /* cond A/B == HR crop, x0 == teacher crop: compare against the recomputation without degrade */
            float *x0 = malloc(hw * 3 * 4), *cd = malloc(hw * 6 * 4);
            ok &= recompute(td, p, 64, 64, cd, x0) == 0;
            ok &= !memcmp(cd, b.cond + q * 6 * hw, hw * 6 * 4) && !memcmp(x0, b.x0 + q * 3 * hw, hw * 3 * 4);
            /* and the degrade at scale 1 is the identity: cond == unit3(crop) of the source directly */
            int ca;
            fsd_traindata_pair_info(td, p->pair, NULL, NULL, &ca, NULL, NULL);
            char path[1024];
            const char *name = b.names[q];
            int k2 = 0;
            while (k2 < NP && strcmp(PAIRS[k2].name, name)) k2++;
            snprintf(path, sizeof path, "%s/%s/train/%s/%s.png", g_data, PAIRS[k2].set, PAIRS[k2].a, name);
            fsd_image full, cr;
            if (fsd_image_load(path, &full) == FSD_OK) {
                crop(&full, p->x, p->y, 64, 64, &cr);
                unit3(&cr, cd);
                ok &= !memcmp(cd, b.cond + q * 6 * hw, hw * 3 * 4);
                fsd_image_free(&cr);
                fsd_image_free(&full);
            } else ok = 0;
            free(x0);
            free(cd);
        }
    }
    tu_check(ok, "augment off, scale 1: cond A == HR crop of A at the plan's rectangle, x0 == teacher crop");
    fsd_td_batch_free(&b);
    fsd_traindata_close(td);
}

static void test_val(void) {
    fsd_traindata *td = NULL;
    if (!tu_check(fsd_traindata_open(g_dirs, 2, g_teacher, NULL, &td) == FSD_OK, "open (val, default config)")) return;
    fsd_td_batch b = {0};
    int ok = 1;
    double worst = 0;
    for (int j = 0; j < 3; j++) {
        int pair = fsd_traindata_val_pick(td, 3, j), w, h;
        fsd_traindata_pair_info(td, pair, &w, &h, NULL, NULL, NULL);
        for (int crop_s = 0; crop_s <= 128; crop_s += 128) {
            if (fsd_traindata_val(td, pair, 4, 8, crop_s, &b)) { ok = 0; continue; }
            int ew = crop_s ? crop_s : w / 16 * 16, eh = crop_s ? crop_s : h / 16 * 16;
            ok &= b.n == 1 && b.w == ew && b.h == eh && b.plan[0].x == (w - ew) / 2 && b.plan[0].y == (h - eh) / 2;
            size_t hw = (size_t)b.w * b.h;
            float *cd = malloc(hw * 6 * 4), *x0 = malloc(hw * 3 * 4);
            if (recompute(td, &b.plan[0], b.w, b.h, cd, x0) == 0)
                worst = fmax(worst, fmax(max_abs_diff(cd, b.cond, 6 * hw), max_abs_diff(x0, b.x0, 3 * hw)));
            else ok = 0;
            free(cd);
            free(x0);
        }
    }
    tu_check(ok && worst == 0.0, "val: full image (multiple of 16) and centre crop 128 at x4/x8 == recomputation (diff %g)",
             worst);
    tu_check(fsd_traindata_val(td, 0, 4, 8, 120, &b) == FSD_ERR_INVALID && !strchr(fsd_error_message(), '\n'),
             "val crop 120 refused: %s", fsd_error_message());
    fsd_td_batch_free(&b);
    fsd_traindata_close(td);
}

/* The pair's dark share (what "auto" decides by) against a recomputation from the files: luma by
 * fsd_image_rgb_to_ycbcr, share by fsd_fuse_dark_share. Tolerance 1e-3 of the pixels: a luma that
 * lands on the level exactly may round to either side in float vs double. The two IR-visible pairs
 * must pick laplacian, the two scans gradient. */
static void test_dark_share(void) {
    fsd_traindata *td = NULL;
    if (!tu_check(fsd_traindata_open(g_dirs, 2, g_teacher, NULL, &td) == FSD_OK, "open (dark share)")) return;
    for (int pair = 0; pair < fsd_traindata_n_pairs(td); pair++) {
        const char *name = fsd_traindata_pair_name(td, pair);
        int k = 0;
        while (k < NP && strcmp(PAIRS[k].name, name)) k++;
        if (!tu_check(k < NP, "dark share: pair %s known", name)) continue;
        fsd_image im[2] = {{0}}, y[2] = {{0}};
        int ok = 1;
        for (int m = 0; m < 2; m++) {
            char path[1024];
            snprintf(path, sizeof path, "%s/%s/train/%s/%s.png", g_data, PAIRS[k].set, m ? PAIRS[k].b : PAIRS[k].a, name);
            ok &= fsd_image_load(path, &im[m]) == FSD_OK;
            if (ok && im[m].c == 3) ok &= fsd_image_rgb_to_ycbcr(&im[m], &y[m]) == FSD_OK;
        }
        if (tu_check(ok, "dark share: load %s", name)) {
            const float *pa = y[0].data ? y[0].data : im[0].data, *pb = y[1].data ? y[1].data : im[1].data;
            double want = fsd_fuse_dark_share(pa, pb, (size_t)im[0].w * im[0].h);
            double got = fsd_traindata_pair_dark_share(td, pair);
            fsd_fuse_method pick = fsd_fuse_auto_pick(got);
            fsd_fuse_method expect = strcmp(PAIRS[k].set, "med") ? FSD_FUSE_LAPLACIAN : FSD_FUSE_GRADIENT;
            tu_check(fabs(got - want) <= 1e-3 && pick == expect, "dark share of %s: %.4f (recomputed %.4f) -> %s",
                     name, got, want, fsd_fuse_method_name(pick));
        }
        for (int m = 0; m < 2; m++) fsd_image_free(&im[m]), fsd_image_free(&y[m]);
    }
    fsd_traindata_close(td);
}

/* whole_frame + residual_base: each sample's cond is the crop of the whole degraded and upsampled
 * frame, its base the crop of the method's fusion of those two frames, recomputed here from the
 * files (degrade the whole image, bicubic back up, fuse, then crop -> rot90/flip); bit-exact. */
static void test_whole_frame(void) {
    fsd_traindata_config c = cfg_aug();
    c.whole_frame = 1, c.residual_base = 1, c.base_method = FSD_FUSE_AUTO;
    fsd_traindata *td = NULL;
    if (!tu_check(fsd_traindata_open(g_dirs, 2, g_teacher, &c, &td) == FSD_OK, "open (whole frame)")) return;
    fsd_traindata_config c0 = cfg_aug(); /* the same draws, crops degraded on their own */
    fsd_traindata *t0 = NULL;
    tu_check(fsd_traindata_open(g_dirs, 2, g_teacher, &c0, &t0) == FSD_OK, "open (crop degrade)");
    fsd_td_batch b = {0}, b0 = {0}, b1 = {0};
    double worst = 0, differs = 0;
    int n_ok = 0, n_tot = 0, picks[FSD_FUSE_AUTO + 1] = {0};
    for (int k = 0; k < 6; k++) {
        if (!tu_check(fsd_traindata_batch(td, k, &b) == FSD_OK && b.has_base, "whole-frame batch %d with base", k)) break;
        fsd_traindata_batch(t0, k, &b0);
        fsd_set_threads(1);
        tu_check(fsd_traindata_batch(td, k, &b1) == FSD_OK && batch_equal(&b, &b1), "batch %d: 1 thread == 2 threads", k);
        fsd_set_threads(2);
        const int S = b.w;
        const size_t hw = (size_t)S * S;
        differs = fmax(differs, max_abs_diff(b.cond, b0.cond, 6 * hw * b.n));
        for (int q = 0; q < b.n; q++) {
            const fsd_td_plan *pl = &b.plan[q];
            n_tot++;
            const char *name = fsd_traindata_pair_name(td, pl->pair);
            int i = 0;
            while (i < NP && strcmp(PAIRS[i].name, name)) i++;
            if (i == NP) continue;
            fsd_image up[2] = {{0}}, f = {0};
            int ok = 1;
            for (int m = 0; m < 2; m++) {
                char path[1024];
                snprintf(path, sizeof path, "%s/%s/train/%s/%s.png", g_data, PAIRS[i].set, m ? PAIRS[i].b : PAIRS[i].a,
                         name);
                fsd_image full = {0}, lr = {0};
                fsd_degrade_params dp = {pl->scale[m], pl->blur[m], pl->noise[m], pl->noise_seed[m]};
                ok &= fsd_image_load(path, &full) == FSD_OK && fsd_degrade(&full, &dp, &lr) == FSD_OK &&
                      fsd_image_resize_bicubic(&lr, full.w, full.h, 1, &up[m]) == FSD_OK;
                fsd_image_free(&full), fsd_image_free(&lr);
            }
            fsd_fuse_method m = fsd_fuse_auto_pick(fsd_traindata_pair_dark_share(td, pl->pair));
            fsd_fuse_params prm;
            fsd_fuse_params_default(&prm);
            ok = ok && fsd_fuse_images(m, &prm, &up[0], &up[1], &f) == FSD_OK;
            if (ok) {
                picks[m]++;
                for (size_t e = 0; e < (size_t)f.w * f.h * f.c; e++) f.data[e] = fminf(fmaxf(f.data[e], 0.0f), 255.0f);
                fsd_image *src[3] = {&up[0], &up[1], &f};
                float got[3 * 128 * 128];
                for (int r = 0; r < 3; r++) {
                    fsd_image cr;
                    crop(src[r], pl->x, pl->y, S, S, &cr);
                    for (int t = 0; t < (pl->transform & 3); t++) rot90(&cr);
                    if (pl->transform >> 2) fliplr(&cr);
                    unit3(&cr, got);
                    const float *have = r < 2 ? b.cond + (q * 6 + 3 * r) * hw : b.base + q * 3 * hw;
                    worst = fmax(worst, max_abs_diff(got, have, 3 * hw));
                    fsd_image_free(&cr);
                }
                n_ok++;
            }
            fsd_image_free(&up[0]), fsd_image_free(&up[1]), fsd_image_free(&f);
        }
    }
    tu_check(n_ok == n_tot && n_tot > 0 && worst == 0.0,
             "%d/%d whole-frame samples: cond and base == degrade+bicubic+fuse of the whole frame, cropped (max diff %g)",
             n_ok, n_tot, worst);
    tu_check(picks[FSD_FUSE_LAPLACIAN] > 0 && picks[FSD_FUSE_GRADIENT] > 0, "auto base: laplacian %d, gradient %d samples",
             picks[FSD_FUSE_LAPLACIAN], picks[FSD_FUSE_GRADIENT]);
    tu_check(differs > 0.05, "whole-frame cond differs from the crop-degraded one (max %.3f): the test can fail", differs);
    /* validation sample: the same, centre crop */
    fsd_td_batch v = {0};
    tu_check(fsd_traindata_val(td, 0, 4, 4, 128, &v) == FSD_OK && v.has_base, "val sample with a whole-frame base");
    c.residual_base = 0;
    fsd_traindata *t2 = NULL;
    if (fsd_traindata_open(g_dirs, 2, g_teacher, &c, &t2) == FSD_OK) {
        tu_check(fsd_traindata_batch(t2, 0, &b1) == FSD_OK && !b1.has_base && fsd_traindata_batch(td, 0, &b) == FSD_OK &&
                     !memcmp(b1.cond, b.cond, (size_t)b.n * 6 * b.w * b.h * sizeof(float)),
                 "residual_base 0: no base, the same cond");
        fsd_traindata_close(t2);
    }
    fsd_td_batch_free(&b), fsd_td_batch_free(&b0), fsd_td_batch_free(&b1), fsd_td_batch_free(&v);
    fsd_traindata_close(td);
    fsd_traindata_close(t0);
}

static int one_line_with(fsd_status s, const char *needle, const char *needle2) {
    const char *m = fsd_error_message();
    printf("   message: %s\n", m);
    return s != FSD_OK && !strchr(m, '\n') && strstr(m, needle) && (!needle2 || strstr(m, needle2));
}

static void test_errors(void) {
    fsd_traindata *td = NULL;
    fsd_traindata_config c;
    fsd_traindata_config_default(&c);
    char p[1024], q[1024];
    /* missing teacher target */
    snprintf(p, sizeof p, "%s/med/train/ct_20005.png", g_teacher);
    snprintf(q, sizeof q, "%s/hidden.png", root);
    rename(p, q);
    tu_check(one_line_with(fsd_traindata_open(g_dirs, 2, g_teacher, &c, &td), p, "fsdiff teacher") && !td,
             "missing teacher target: one line naming the file, suggesting fsdiff teacher");
    rename(q, p);
    /* teacher target of another size */
    fsd_image small = {0};
    fsd_image_alloc(&small, 100, 90, 1);
    snprintf(p, sizeof p, "%s/ivf/train/tno_bench.png", g_teacher);
    snprintf(q, sizeof q, "%s/keep.png", root);
    rename(p, q);
    fsd_image_save_png(p, &small, NULL, 0);
    tu_check(one_line_with(fsd_traindata_open(g_dirs, 2, g_teacher, &c, &td), p, "100x90") && !td,
             "teacher size mismatch: one line naming the file and the size");
    rename(q, p);
    fsd_image_free(&small);
    /* empty split folder (empty modality folders) */
    char e[1024];
    snprintf(e, sizeof e, "%s/empty/train/a", root);
    mkdir_p(e);
    snprintf(e, sizeof e, "%s/empty/train/b", root);
    mkdir_p(e);
    snprintf(e, sizeof e, "%s/empty/train", root);
    const char *de[1] = {e};
    tu_check(one_line_with(fsd_traindata_open(de, 1, g_teacher, &c, &td), e, NULL) && !td,
             "empty split folder: one line naming it");
    /* crop larger than an image */
    c.crop_sizes[0] = 512, c.n_crop_sizes = 1;
    tu_check(one_line_with(fsd_traindata_open(g_dirs, 2, g_teacher, &c, &td), "smaller than the largest crop", NULL),
             "crop 512 larger than the images: refused");
    /* crop not divisible by the scales / align */
    c.crop_sizes[0] = 100;
    tu_check(one_line_with(fsd_traindata_open(g_dirs, 2, g_teacher, &c, &td), "multiple of 16", NULL),
             "crop 100 refused (multiple of 16 needed)");
    c.crop_sizes[0] = 32;
    tu_check(one_line_with(fsd_traindata_open(g_dirs, 2, g_teacher, &c, &td), "LR minimum", NULL),
             "crop 32 at x8 refused (LR below 8 px)");
}

static void test_timing(void) {
    fsd_traindata_config c;
    fsd_traindata_config_default(&c);
    c.crop_sizes[0] = 128, c.n_crop_sizes = 1;
    c.batch = 4;
    fsd_traindata *td = NULL;
    if (fsd_traindata_open(g_dirs, 2, g_teacher, &c, &td)) return;
    fsd_set_threads(2);
    fsd_td_batch b = {0};
    const int NB = 20;
    double t0 = fsd_time_seconds();
    for (int k = 0; k < NB; k++) fsd_traindata_batch(td, k, &b);
    double dt = (fsd_time_seconds() - t0) / NB;
    printf("timing: B=4 at 128x128, 2 threads: %.2f ms per batch (shared machine)\n", dt * 1e3);
    fsd_td_batch_free(&b);
    fsd_traindata_close(td);
}

int main(void) {
    if (!tu_check(make_fixture() == 0, "fixture: 4 pairs + average-fusion teacher in %s", root)) return tu_summary();
    double t0 = fsd_time_seconds();
    test_determinism();
    test_ranges();
    test_identity_geometry();
    test_val();
    test_dark_share();
    test_whole_frame();
    test_errors();
    test_timing();
    printf("total %.1f s\n", fsd_time_seconds() - t0);
    nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return tu_summary();
}
