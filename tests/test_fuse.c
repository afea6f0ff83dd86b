/* fsd_fuse_run: inference with a model file (include/fsdiff/fuse.h, docs/fuse.md).
 *
 * A tiny random model (tiny U-Net preset, a 3-stage clarity encoder, T = 50, ddim 4 steps) is
 * written by the test into a temporary folder, then:
 *   size rule: accepted sizes and factors, rejected sizes with one message naming both sizes
 *   output size and channels: grey + grey -> c = 1, grey + RGB -> c = 3
 *   conditioning: cond frames of --save-steps equal the Pillow-exact 8-bit bicubic inputs / 127.5 - 1
 *   determinism: bit-identical for the same thread count; with 1 and 2 threads too where the BLAS is
 *     split-invariant (fsd_blas_split_invariant), else close; another seed differs
 *   tiling: a plan whose single tile covers the image is bit-identical to untiled; a 5 x 3 tile plan
 *           (tile 32, overlap 16) on a pattern that crosses every seam: max / mean abs difference to
 *           the untiled output measured and asserted (tolerances below, with the reason)
 *   context: a model without clarity encoder needs a context file; with one it runs; a context
 *            file replaces the encoder's context (output changes)
 *   memory: --max-memory style refusal before sampling, naming --tile
 *   residual target: the same net marked residual (scale 4) gives clamp(base + x / 4) where base is
 *            the gff fusion of the cond frames and x the sampler's result with x̂₀ clamped to ±4,
 *            recomputed here from the net and the sampler directly (|diff| <= 1e-3 grey levels)
 *
 * Mode: `test_fuse --make-model PATH [--no-clarity]` only writes the tiny model (for tests/cli/fuse.sh). */
#include "fsdiff/fuse.h"
#include "fsdiff/tiles.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------- the tiny model */
static fsd_status make_model(const char *path, int with_clarity, uint64_t seed) {
    fsd_net_config c;
    fsd_status s = fsd_net_config_preset(&c, "tiny");
    if (s) return s;
    fsd_clarity_config cc;
    fsd_clarity_config_default(&cc, c.context_dim);
    cc.n_stages = 3;
    cc.widths[0] = 16, cc.widths[1] = 32, cc.widths[2] = 32;
    cc.pool = 2;
    c.context_tokens = fsd_clarity_tokens(cc.pool * cc.pool);
    fsd_net *net = NULL;
    fsd_clarity *cl = NULL;
    if (!(s = fsd_net_create(&net, &c)) && !(s = fsd_net_init(net, seed)) && with_clarity &&
        !(s = fsd_clarity_create(&cl, &cc)))
        s = fsd_clarity_init(cl, seed + 1);
    fsd_diffusion_config d;
    fsd_diffusion_config_default(&d);
    d.T = 50;
    d.beta_start = 1e-4;
    d.beta_end = 2e-2;
    d.sampler = FSD_SAMPLER_DDIM;
    d.steps = 4;
    const char *keys[1] = {"fsdiff.train"}, *vals[1] = {"{\"note\":\"random tiny test model\"}"};
    if (!s) s = fsd_model_save(net, cl, &d, path, FSD_F32, 1, keys, vals);
    fsd_net_free(net);
    fsd_clarity_free(cl);
    return s;
}

/* ---------------------------------------------------------------- images */
/* A pattern with edges and gradients everywhere (so every tile seam crosses content), 8-bit values. */
static fsd_image pattern(int w, int h, int c, int phase) {
    fsd_image im;
    fsd_image_alloc(&im, w, h, c);
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                double u = (x + phase) / (double)w, v = y / (double)h;
                double val = 128 + 60 * sin(2 * M_PI * (3 * u + 2 * v) + ch) + 40 * (((x + phase) / 5 + y / 7) % 2 ? 1 : -1) +
                             20 * cos(2 * M_PI * 5 * v * (1 + ch));
                im.data[((size_t)ch * h + y) * w + x] = (float)floor(val < 0 ? 0 : val > 255 ? 255 : val);
            }
    return im;
}

static double max_abs(const float *a, const float *b, size_t n, double *mean) {
    double m = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        m = d > m ? d : m;
        s += d;
    }
    if (mean) *mean = s / n;
    return m;
}

static char g_dir[256], g_model[300], g_model_nc[300];

static fsd_fuse_opts opts_default(void) {
    fsd_fuse_opts o;
    fsd_fuse_opts_default(&o);
    return o;
}

/* ---------------------------------------------------------------- size rule */
static void size_rule_tests(const fsd_model *m) {
    int w = 0, h = 0, fa = 0, fb = 0;
    fsd_status s0 = fsd_fuse_output_size(80, 60, 160, 120, 4, &w, &h, &fa, &fb);
    tu_check(s0 == FSD_OK && w == 640 && h == 480 && fa == 8 &&
                 fb == 4,
             "IR 80x60 + VI 160x120 at x4 -> %dx%d (IR x%d, VI x%d)", w, h, fa, fb);
    s0 = fsd_fuse_output_size(160, 120, 80, 60, 2, &w, &h, &fa, &fb);
    tu_check(s0 == FSD_OK && w == 320 && h == 240 && fa == 2 &&
                 fb == 4,
             "larger input first: 160x120 + 80x60 at x2 -> %dx%d (x%d, x%d)", w, h, fa, fb);
    s0 = fsd_fuse_output_size(33, 17, 33, 17, 3, &w, &h, &fa, &fb);
    tu_check(s0 == FSD_OK && w == 99 && h == 51 && fa == 3,
             "equal sizes, odd scale 3: 33x17 -> %dx%d", w, h);
    struct { int aw, ah, bw, bh, s; } bad[] = {
        {80, 60, 150, 120, 4}, /* 600/150 = 4 but 480/120 = 4 ... and 600 % 80 != 0 */
        {80, 60, 160, 100, 4}, /* heights do not match the widths' factor */
        {81, 60, 160, 120, 4}, /* 640 / 81 not an integer */
        {80, 60, 160, 120, 0},
        {80, 60, 160, 120, 17},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        fsd_status s = fsd_fuse_output_size(bad[i].aw, bad[i].ah, bad[i].bw, bad[i].bh, bad[i].s, &w, &h, &fa, &fb);
        const char *msg = fsd_error_message();
        char sa[32], sb[32];
        snprintf(sa, sizeof sa, "%dx%d", bad[i].aw, bad[i].ah);
        snprintf(sb, sizeof sb, "%dx%d", bad[i].bw, bad[i].bh);
        int named = bad[i].s < 1 || bad[i].s > 16 ? strstr(msg, "scale") != NULL
                                                  : strstr(msg, sa) && strstr(msg, sb) && strstr(msg, "larger input");
        tu_check(s == FSD_ERR_INVALID && named && !strchr(msg, '\n'), "rejected: %s + %s at x%d: %s", sa, sb, bad[i].s,
                 msg);
    }
    /* through fsd_fuse_run: refused before any work, no output */
    fsd_image a = pattern(80, 60, 1, 0), b = pattern(150, 120, 3, 0), out;
    fsd_fuse_opts o = opts_default();
    fsd_status s = fsd_fuse_run(m, &a, &b, 4, &o, &out, NULL);
    tu_check(s == FSD_ERR_INVALID && out.data == NULL && strstr(fsd_error_message(), "80x60"),
             "fsd_fuse_run refuses a size-rule violation, no output: %s", fsd_error_message());
    fsd_image_free(&a), fsd_image_free(&b);
}

/* ---------------------------------------------------------------- outputs, frames, determinism */
static void output_tests(const fsd_model *m) {
    /* IR 16x12 (x4) + VI 32x24 (x2) -> 64x48 */
    fsd_image a = pattern(16, 12, 1, 0), bg = pattern(32, 24, 1, 3), bc = pattern(32, 24, 3, 3);
    fsd_image o1 = {0}, o3 = {0};
    fsd_fuse_info info;
    fsd_fuse_opts o = opts_default();
    fsd_status s = fsd_fuse_run(m, &a, &bg, 2, &o, &o1, &info);
    tu_check(s == FSD_OK && o1.w == 64 && o1.h == 48 && o1.c == 1, "grey + grey at x2: %dx%dx%d (%s)", o1.w, o1.h, o1.c,
             s ? fsd_error_message() : "ok");
    tu_check(s == FSD_OK && info.factor[0] == 4 && info.factor[1] == 2 && info.steps == 4 &&
                 info.sampler == FSD_SAMPLER_DDIM && info.tiles == 1 && info.net_calls == 4,
             "info: factors x%d/x%d, model's sampler %s, %d steps, %d tile, %lld net calls", info.factor[0],
             info.factor[1], fsd_sampler_name(info.sampler), info.steps, info.tiles, info.net_calls);
    tu_check(s == FSD_OK && info.have_deg && info.roles[0] >= 0 && info.roles[0] <= 2 && info.roles[1] >= 0 &&
                 info.roles[1] <= 2 && isfinite(info.deg[0][0]) && isfinite(info.deg[1][2]),
             "clarity encoder ran: a (%.2f, %.2f, %.2f) role %d, b (%.2f, %.2f, %.2f) role %d", info.deg[0][0],
             info.deg[0][1], info.deg[0][2], info.roles[0], info.deg[1][0], info.deg[1][1], info.deg[1][2],
             info.roles[1]);
    tu_check(s == FSD_OK && info.mem_total > info.mem_weights && info.mem_net_tile > 0 && info.mem_net_measured > 0 &&
                 info.mem_net_measured <= info.mem_net_tile,
             "memory: estimate %zu B (net tile %zu B, measured net peak %zu B <= estimate)", info.mem_total,
             info.mem_net_tile, info.mem_net_measured);
    double lo = 1e9, hi = -1e9;
    for (size_t i = 0; s == FSD_OK && i < (size_t)64 * 48; i++) {
        lo = fmin(lo, o1.data[i]);
        hi = fmax(hi, o1.data[i]);
    }
    tu_check(s == FSD_OK && lo >= 0 && hi <= 255 && hi > lo, "output values in 0..255 (%.2f..%.2f)", lo, hi);

    /* grey + RGB -> RGB; --save-steps frames: cond A, cond B, then every step (every = 1 at 4 steps) */
    fsd_frames fr;
    memset(&fr, 0, sizeof fr);
    o.frames = &fr;
    s = fsd_fuse_run(m, &a, &bc, 2, &o, &o3, &info);
    o.frames = NULL;
    tu_check(s == FSD_OK && o3.w == 64 && o3.h == 48 && o3.c == 3, "grey + RGB at x2: %dx%dx%d", o3.w, o3.h, o3.c);
    tu_check(s == FSD_OK && fr.n == 6 && fr.C == 3 && fr.W == 64 && fr.H == 48, "frames: %d of %dx%dx%d (2 cond + 4 steps)",
             fr.n, fr.C, fr.W, fr.H);
    if (s == FSD_OK && fr.n == 6) {
        /* cond frames = Pillow-exact 8-bit bicubic of each input, / 127.5 - 1, grey replicated */
        fsd_image ua, ub;
        fsd_image_resize_bicubic(&a, 64, 48, 1, &ua);
        fsd_image_resize_bicubic(&bc, 64, 48, 1, &ub);
        const size_t hw = 64 * 48;
        double ea = 0, eb = 0;
        for (int ch = 0; ch < 3; ch++)
            for (size_t q = 0; q < hw; q++) {
                ea = fmax(ea, fabs(fr.data[ch * hw + q] - (ua.data[q] / 127.5f - 1.0f)));
                eb = fmax(eb, fabs(fr.data[3 * hw + ch * hw + q] - (ub.data[ch * hw + q] / 127.5f - 1.0f)));
            }
        tu_check(ea == 0 && eb == 0, "cond frames equal the 8-bit bicubic inputs in [-1, 1] (max diff %g, %g)", ea, eb);
        /* the last frame is the result */
        double el = 0;
        for (size_t q = 0; q < 3 * hw; q++) el = fmax(el, fabs((fr.data[5 * 3 * hw + q] + 1.0f) * 127.5f - o3.data[q]));
        tu_check(el < 1e-4, "last frame = output (max diff %g)", el);
        /* the grey output is the mean of the three channels of the same sample (same seed, same cond A) */
        fsd_image_free(&ua), fsd_image_free(&ub);
    }
    fsd_frames_free(&fr);

    /* determinism: the same thread count twice is bit-identical; 1 vs 2 threads bit-identical when the
     * BLAS's products do not depend on how they are split (OpenBLAS's AVX-512 kernels), otherwise only
     * close (its AVX2 kernels round an element by where it falls in their tiles); another seed differs */
    int prev = fsd_get_threads();
    fsd_image r1 = {0}, r2 = {0}, r2b = {0}, r3 = {0};
    o.seed = 7;
    fsd_set_threads(1);
    fsd_status s1 = fsd_fuse_run(m, &a, &bc, 2, &o, &r1, NULL);
    fsd_set_threads(2);
    fsd_status s2 = fsd_fuse_run(m, &a, &bc, 2, &o, &r2, NULL);
    fsd_status s2b = fsd_fuse_run(m, &a, &bc, 2, &o, &r2b, NULL);
    o.seed = 8;
    fsd_status s3 = fsd_fuse_run(m, &a, &bc, 2, &o, &r3, NULL);
    fsd_set_threads(prev);
    size_t n = (size_t)64 * 48 * 3;
    tu_check(!s2 && !s2b && !memcmp(r2.data, r2b.data, n * sizeof(float)), "seed 7, 2 threads: bit-identical twice");
    if (fsd_blas_split_invariant())
        tu_check(!s1 && !s2 && !memcmp(r1.data, r2.data, n * sizeof(float)),
                 "seed 7: bit-identical with 1 and 2 threads (the BLAS is split-invariant)");
    else {
        double m12 = 0, d12 = !s1 && !s2 ? max_abs(r1.data, r2.data, n, &m12) : 1e9;
        tu_check(d12 <= 0.05 && m12 <= 1e-3, "seed 7: 1 vs 2 threads close, max abs %.3g <= 0.05, mean %.3g <= 1e-3 on 0..255 "
                 "(the BLAS is not split-invariant)", d12, m12);
    }
    double mean = 0;
    double d = !s1 && !s3 ? max_abs(r1.data, r3.data, n, &mean) : 0;
    tu_check(!s3 && d > 1.0, "seed 8 differs from seed 7 (max abs %.1f, mean %.2f on 0..255)", d, mean);
    fsd_image_free(&r1), fsd_image_free(&r2), fsd_image_free(&r2b), fsd_image_free(&r3);
    fsd_image_free(&a), fsd_image_free(&bg), fsd_image_free(&bc), fsd_image_free(&o1), fsd_image_free(&o3);
}

/* ---------------------------------------------------------------- reference pipeline */
/* The pipeline of docs/fuse.md written out with the public pieces (resize, clarity encoder, schedule,
 * levels, tile plan, tiled denoiser, sampler) and a callback of its own, for a (W, H) that is a
 * multiple of the U-Net factor: fsd_fuse_run must give exactly this (same operations, same order),
 * so a wrong crop offset, channel order, context or output mapping in fuse.c shows up bit-wise. */
typedef struct ref_cb {
    fsd_net *net;
    const float *cond, *ctx;
    int H, W;
    float *in;
} ref_cb;

static fsd_status ref_tile(void *c, int x0, int y0, int tw, int th, const float *xt, const float *gamma, float *eps,
                           int B) {
    ref_cb *r = c;
    const size_t hw = (size_t)tw * th;
    for (int ch = 0; ch < 6; ch++) /* crop with reflection (tiles only reach past the image on a padded canvas) */
        for (int y = 0; y < th; y++)
            for (int x = 0; x < tw; x++) {
                int yy = y0 + y, xx = x0 + x;
                if (yy >= r->H) yy = 2 * (r->H - 1) - yy;
                if (xx >= r->W) xx = 2 * (r->W - 1) - xx;
                r->in[(size_t)ch * hw + (size_t)y * tw + x] = r->cond[((size_t)ch * r->H + yy) * r->W + xx];
            }
    memcpy(r->in + 6 * hw, xt, 3 * hw * sizeof(float));
    return fsd_net_forward(r->net, r->in, gamma, r->ctx, eps, B, th, tw, 0, 0, 0);
}

static fsd_status ref_run(const fsd_model *m, const fsd_image *a, const fsd_image *b, int W, int H, int tile,
                          int overlap, uint64_t seed, fsd_image *out) {
    const fsd_diffusion_config *d = &m->diff;
    const fsd_net_config *nc = fsd_net_cfg(m->net);
    const size_t hw = (size_t)W * H;
    float *cond = tu_zeros(6 * hw), *ctx = tu_zeros((size_t)nc->context_tokens * nc->context_dim);
    float *x = tu_zeros(3 * hw);
    const fsd_image *src[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        fsd_image up;
        fsd_image_resize_bicubic(src[i], W, H, 1, &up);
        for (int ch = 0; ch < 3; ch++)
            for (size_t q = 0; q < hw; q++)
                cond[(3 * i + ch) * hw + q] = up.data[(up.c == 3 ? ch : 0) * hw + q] / 127.5f - 1.0f;
        fsd_image_free(&up);
    }
    fsd_status s = fsd_clarity_forward(m->clarity, cond, cond + 3 * hw, 1, H, W, d->context, NULL, NULL, ctx, NULL,
                                       NULL, NULL, 0);
    fsd_schedule sch;
    int levels[64];
    fsd_tile_plan plan;
    fsd_tiled_denoiser den;
    ref_cb rc = {m->net, cond, ctx, H, W, tu_zeros(9 * (size_t)tile * tile)};
    if (!s) s = fsd_schedule_init(&sch, d->schedule, d->T, d->beta_start, d->beta_end);
    if (!s) s = fsd_diffusion_levels_for(&sch, d->steps, d->spacing, levels);
    if (!s) s = fsd_tile_plan_init(&plan, H, W, tile, overlap, -1, 1 << (nc->n_mults - 1));
    if (!s) s = fsd_tiled_init(&den, &plan, 3, 1, ref_tile, &rc);
    if (!s) {
        fsd_sampler_opts so;
        fsd_sampler_opts_default(&so);
        so.kind = d->sampler, so.levels = levels, so.K = d->steps, so.eta = d->eta, so.seed = seed;
        s = fsd_diffusion_sample(&sch, &so, fsd_tiled_denoise, &den, x, 1, 3 * hw);
        fsd_tiled_free(&den);
        fsd_tile_plan_free(&plan);
        fsd_schedule_free(&sch);
    }
    if (!s) s = fsd_image_alloc(out, W, H, 3);
    for (size_t q = 0; !s && q < 3 * hw; q++) out->data[q] = (x[q] + 1.0f) * 127.5f;
    fsd_free(cond), fsd_free(ctx), fsd_free(x), fsd_free(rc.in);
    return s;
}

/* ---------------------------------------------------------------- tiling */
/* Tolerances of tiled vs untiled. The model is an untrained random U-Net: its GroupNorm statistics,
 * self-attention and Mamba scans are computed per tile, so a tile's ε̂ differs from the untiled one by
 * the spread of what the tiles see (docs/diffusion.md measured rel_err 0.74 for ONE ε̂ of this net).
 * Measured on the 96x64 pattern below (4 ddim steps, tile 32, overlap 16): max 48.8, mean 4.04 gray
 * levels; without overlap max 170, mean 7.9. The bounds leave room for other BLAS builds; the
 * wiring itself (crop offsets, channels, context) is checked bit-wise against ref_run. */
#define TILE_MAX_ABS 64.0
#define TILE_MEAN_ABS 6.0
static void tiling_tests(const fsd_model *m) {
    /* IR 24x16 (x4) + VI 48x32 (x2) -> 96x64 */
    fsd_image a = pattern(24, 16, 1, 1), b = pattern(48, 32, 3, 2), u = {0}, t1 = {0}, t = {0}, h = {0};
    fsd_fuse_opts o = opts_default();
    fsd_fuse_info iu, i1, it, ih;
    o.seed = 3;
    fsd_status s = fsd_fuse_run(m, &a, &b, 2, &o, &u, &iu);
    o.tile = 128; /* covers 96x64: one tile */
    fsd_status s1 = fsd_fuse_run(m, &a, &b, 2, &o, &t1, &i1);
    const size_t n = (size_t)96 * 64 * 3;
    tu_check(!s && !s1 && i1.tiles == 1 && !memcmp(u.data, t1.data, n * sizeof(float)),
             "tile 128 >= 96x64: one tile, bit-identical to untiled");
    o.tile = 32;
    o.overlap = 16;
    fsd_status s2 = fsd_fuse_run(m, &a, &b, 2, &o, &t, &it);
    double mean = 0, mx = !s && !s2 ? max_abs(u.data, t.data, n, &mean) : 1e9;
    tu_check(!s2 && it.tiles == 15 && it.guard == 4 && it.net_calls == 60,
             "tile 32 overlap 16 on 96x64: %d tiles per step (5 x 3), guard %d, %lld net calls", it.tiles, it.guard,
             it.net_calls);
    fsd_image ru = {0}, rt = {0};
    fsd_status sr1 = ref_run(m, &a, &b, 96, 64, 96, 0, 3, &ru);
    fsd_status sr2 = ref_run(m, &a, &b, 96, 64, 32, 16, 3, &rt);
    tu_check(!s && !sr1 && !memcmp(u.data, ru.data, n * sizeof(float)),
             "untiled fuse = the reference pipeline written out in the test, bit-wise");
    tu_check(!s2 && !sr2 && !memcmp(t.data, rt.data, n * sizeof(float)),
             "tiled fuse (15 tiles) = the reference pipeline with its own cond crop, bit-wise");
    fsd_image_free(&ru), fsd_image_free(&rt);
    tu_check(!s2 && mx <= TILE_MAX_ABS && mean <= TILE_MEAN_ABS,
             "tiled vs untiled (random tiny net, 0..255): max abs %.2f <= %.0f, mean abs %.3f <= %.1f", mx, TILE_MAX_ABS,
             mean, TILE_MEAN_ABS);
    tu_check(!s2 && it.mem_net_tile < iu.mem_net_tile && it.mem_net_measured < iu.mem_net_measured,
             "tiling bounds the net's memory: estimate %zu < %zu B, measured %zu < %zu B", it.mem_net_tile,
             iu.mem_net_tile, it.mem_net_measured, iu.mem_net_measured);
    /* hard seams (no overlap) for comparison: blending must not be worse than cutting */
    o.overlap = 0;
    fsd_status s3 = fsd_fuse_run(m, &a, &b, 2, &o, &h, &ih);
    double mean_h = 0, mx_h = !s && !s3 ? max_abs(u.data, h.data, n, &mean_h) : 0;
    tu_check(!s3 && ih.tiles == 6 && mx < mx_h && mean < mean_h,
             "overlap blending beats hard seams: max %.2f < %.2f, mean %.3f < %.3f (tile 32 without overlap: %d tiles)",
             mx, mx_h, mean, mean_h, ih.tiles);
    /* wrong tile sizes are one-line errors */
    o.tile = 33;
    o.overlap = -1;
    fsd_image bad = {0};
    s = fsd_fuse_run(m, &a, &b, 2, &o, &bad, NULL);
    tu_check(s == FSD_ERR_INVALID && !bad.data && strstr(fsd_error_message(), "multiple of 2"), "tile 33 refused: %s",
             fsd_error_message());
    /* memory limit: refused before sampling, suggesting --tile */
    o.tile = 0;
    o.max_memory = 1 << 20;
    s = fsd_fuse_run(m, &a, &b, 2, &o, &bad, NULL);
    tu_check(s == FSD_ERR_NOMEM && !bad.data && strstr(fsd_error_message(), "--tile"), "1 MiB limit refused: %s",
             fsd_error_message());
    fsd_image_free(&a), fsd_image_free(&b), fsd_image_free(&u), fsd_image_free(&t1), fsd_image_free(&t),
        fsd_image_free(&h);
}

/* ---------------------------------------------------------------- context */
static void write_context(const char *path, int n, int d, float scale) {
    int64_t sh[2] = {n, d};
    float *v = tu_zeros((size_t)n * d);
    tu_fill_uniform(v, (size_t)n * d, 11, scale);
    fsd_st_writer w;
    fsd_st_writer_init(&w);
    fsd_st_writer_add(&w, "context", FSD_F32, 2, sh, v);
    fsd_st_writer_save(&w, path);
    fsd_st_writer_free(&w);
    fsd_free(v);
}

static void context_tests(const fsd_model *m) {
    fsd_model nc;
    fsd_status s = fsd_model_open(&nc, g_model_nc);
    if (!tu_check(s == FSD_OK && !nc.clarity, "model without clarity encoder opens (%s)", fsd_error_message())) return;
    const fsd_net_config *c = fsd_net_cfg(nc.net);
    fsd_image a = pattern(16, 12, 1, 0), b = pattern(32, 24, 3, 1), o1 = {0}, o2 = {0}, o3 = {0};
    fsd_fuse_opts o = opts_default();
    s = fsd_fuse_run(&nc, &a, &b, 2, &o, &o1, NULL);
    tu_check(s == FSD_ERR_INVALID && !o1.data && strstr(fsd_error_message(), "context file"),
             "no clarity encoder and no context: refused: %s", fsd_error_message());
    char p[400];
    snprintf(p, sizeof p, "%s/ctx.safetensors", g_dir);
    write_context(p, c->context_tokens, c->context_dim, 1.0f);
    float *ctx = NULL;
    s = fsd_context_file_load(p, c->context_tokens, c->context_dim, &ctx);
    o.context_ext = ctx;
    fsd_fuse_info info;
    if (!s) s = fsd_fuse_run(&nc, &a, &b, 2, &o, &o1, &info);
    tu_check(s == FSD_OK && o1.c == 3 && info.context_external && !info.have_deg,
             "context file (%d, %d) + model without encoder: runs (%s)", c->context_tokens, c->context_dim,
             s ? fsd_error_message() : "ok");
    /* with the full model: the file replaces the encoder's context */
    fsd_status s2 = fsd_fuse_run(m, &a, &b, 2, &o, &o2, NULL);
    o.context_ext = NULL;
    fsd_status s3 = fsd_fuse_run(m, &a, &b, 2, &o, &o3, NULL);
    double d = !s2 && !s3 ? max_abs(o2.data, o3.data, (size_t)64 * 48 * 3, NULL) : 0;
    tu_check(!s2 && !s3 && d > 0, "context file changes the output of the full model (max abs %.2f)", d);
    /* a file of the wrong shape is refused by the loader with one line */
    write_context(p, c->context_tokens + 1, c->context_dim, 1.0f);
    fsd_free(ctx);
    ctx = NULL;
    s = fsd_context_file_load(p, c->context_tokens, c->context_dim, &ctx);
    tu_check(s == FSD_ERR_FORMAT && !ctx && strstr(fsd_error_message(), "context_tokens"), "wrong context shape: %s",
             fsd_error_message());
    /* context mode: mean vs clarity are both accepted */
    o.context = FSD_CONTEXT_MEAN;
    fsd_image o4 = {0};
    fsd_fuse_info i4;
    s = fsd_fuse_run(m, &a, &b, 2, &o, &o4, &i4);
    tu_check(s == FSD_OK && i4.context == FSD_CONTEXT_MEAN && i4.roles[0] == FSD_ROLE_NEUTRAL &&
                 i4.roles[1] == FSD_ROLE_NEUTRAL,
             "context mean: both roles neutral");
    fsd_free(ctx);
    fsd_image_free(&a), fsd_image_free(&b), fsd_image_free(&o1), fsd_image_free(&o2), fsd_image_free(&o3),
        fsd_image_free(&o4);
    fsd_model_close(&nc);
}

/* ---------------------------------------------------------------- options */
static void option_tests(const fsd_model *m) {
    fsd_image a = pattern(16, 12, 1, 0), b = pattern(32, 24, 1, 1), out = {0};
    fsd_fuse_opts o = opts_default();
    fsd_fuse_info info;
    o.sampler = FSD_SAMPLER_DPMPP2M;
    o.steps = 3;
    fsd_status s = fsd_fuse_run(m, &a, &b, 2, &o, &out, &info);
    tu_check(s == FSD_OK && info.sampler == FSD_SAMPLER_DPMPP2M && info.spacing == FSD_SPACING_LOGSNR &&
                 info.steps == 3 && info.net_calls == 3,
             "dpmpp2m 3 steps: spacing %s (the sampler's default), %lld calls", fsd_spacing_name(info.spacing),
             info.net_calls);
    fsd_image_free(&out);
    o.sampler = FSD_SAMPLER_DDPM;
    o.steps = 51;
    s = fsd_fuse_run(m, &a, &b, 2, &o, &out, NULL);
    tu_check(s == FSD_ERR_INVALID && strstr(fsd_error_message(), "T = 50"), "51 steps > T refused: %s",
             fsd_error_message());
    o.steps = 2;
    s = fsd_fuse_run(m, &a, &b, 2, &o, &out, &info);
    tu_check(s == FSD_OK && info.sampler == FSD_SAMPLER_DDPM, "ddpm 2 steps runs");
    fsd_image_free(&out);
    /* cancellation after the first step */
    volatile int cancel = 1;
    o.cancel = &cancel;
    s = fsd_fuse_run(m, &a, &b, 2, &o, &out, NULL);
    tu_check(s != FSD_OK && !out.data && strstr(fsd_error_message(), "interrupted"), "cancel: %s", fsd_error_message());
    fsd_image_free(&a), fsd_image_free(&b);
}

/* ---------------------------------------------------------------- residual target */
typedef struct res_den {
    fsd_net *net;
    const float *cond, *ctx;
    float *in;
    int h, w;
} res_den;

static fsd_status res_denoise(void *c, const float *x_t, const float *gamma, float *eps, int B) {
    res_den *r = c;
    size_t hw = (size_t)r->h * r->w;
    memcpy(r->in, r->cond, 6 * hw * sizeof(float));
    memcpy(r->in + 6 * hw, x_t, 3 * hw * sizeof(float));
    return fsd_net_forward(r->net, r->in, gamma, r->ctx, eps, B, r->h, r->w, 0, 0, 0);
}

/* pred: the network's output read as ε̂ or v̂ (the same random network: only the plumbing is tested);
 * shrink: the residual's soft threshold in grey levels */
static void residual_tests(const fsd_model *m0, fsd_prediction pred, double shrink) {
    fsd_model m = *m0;
    m.diff.residual = 1, m.diff.residual_scale = 4.0, m.diff.residual_method = FSD_FUSE_GFF, m.diff.prediction = pred;
    m.diff.residual_shrink = shrink;
    const char *pn = fsd_prediction_name(pred);
    const int W = 64, H = 48;
    fsd_image a = pattern(32, 24, 1, 0), b = pattern(32, 24, 3, 5), out = {0};
    const fsd_net_config *nc = fsd_net_cfg(m.net);
    size_t nctx = (size_t)nc->context_tokens * nc->context_dim, hw = (size_t)W * H;
    float *ctx = calloc(nctx, sizeof(float)), *x = calloc(3 * hw, sizeof(float)), *in = calloc(9 * hw, sizeof(float));
    float *cond = calloc(6 * hw, sizeof(float));
    for (size_t i = 0; i < nctx; i++) ctx[i] = (float)sin(0.37 * (double)i);
    fsd_fuse_opts o = opts_default();
    o.context_ext = ctx, o.seed = 7;
    fsd_frames fr;
    memset(&fr, 0, sizeof fr);
    o.frames = &fr;
    fsd_fuse_info info;
    fsd_status s = fsd_fuse_run(&m, &a, &b, 2, &o, &out, &info);
    if (!tu_check(s == FSD_OK && out.c == 3 && fr.n >= 2, "residual model fuses (%s)", s ? fsd_error_message() : "ok"))
        goto done;
    /* independent recomputation: cond from the frames, base = fsd_fuse_images(gff), sampler by hand */
    memcpy(cond, fr.data, 6 * hw * sizeof(float));
    fsd_image ca = {0}, cb = {0}, f = {0};
    fsd_image_alloc(&ca, W, H, 1), fsd_image_alloc(&cb, W, H, 3);
    for (size_t q = 0; q < hw; q++) ca.data[q] = (cond[q] + 1) * 127.5f;
    for (size_t q = 0; q < 3 * hw; q++) cb.data[q] = (cond[3 * hw + q] + 1) * 127.5f;
    fsd_fuse_params prm;
    fsd_fuse_params_default(&prm);
    s = fsd_fuse_images(FSD_FUSE_GFF, &prm, &ca, &cb, &f);
    fsd_schedule sch;
    memset(&sch, 0, sizeof sch);
    int levels[64];
    if (!s) s = fsd_schedule_init(&sch, m.diff.schedule, m.diff.T, m.diff.beta_start, m.diff.beta_end);
    if (!s) s = fsd_diffusion_levels_for(&sch, info.steps, info.spacing, levels);
    res_den rd = {m.net, cond, ctx, in, H, W};
    fsd_sampler_opts so;
    fsd_sampler_opts_default(&so);
    so.kind = info.sampler, so.levels = levels, so.K = info.steps, so.eta = info.eta, so.seed = 7, so.x0_clip = 4.0;
    so.prediction = pred;
    if (!s) s = fsd_diffusion_sample(&sch, &so, res_denoise, &rd, x, 1, 3 * hw);
    double md = 0, moved = 0, clamped = 0;
    for (size_t q = 0; !s && q < 3 * hw; q++) {
        double bq = f.data[q];
        bq = bq < 0 ? 0 : bq > 255 ? 255 : bq;
        double r = x[q] / 4.0, t = shrink / 127.5;
        r = r > t ? r - t : r < -t ? r + t : 0.0;
        double v = bq / 127.5 - 1 + r;
        v = v < -1 ? -1 : v > 1 ? 1 : v;
        double d = fabs((v + 1) * 127.5 - out.data[q]);
        md = d > md ? d : md;
        moved += fabs((v + 1) * 127.5 - bq) / (3.0 * hw);
        clamped += fabs(x[q]) > 1.0; /* |x| > 1: a clamp at ±1 would have changed this value */
    }
    tu_check(s == FSD_OK && md <= 1e-3 && info.residual_shrink == shrink,
             "%s: residual fuse = clamp(gff(cond) + shrink_%g(x/4)), x sampled with x0 clamp 4: max |diff| "
             "%.2g grey levels (limit 1e-3; mean move from the base %.1f, %g values beyond +-1 before scaling)", pn,
             shrink, md, moved, clamped);
    tu_check(clamped > 0, "%s: the x0 clamp at 4 was exercised (%g values with |x| > 1)", pn, clamped);
    /* the JSON of a residual config round-trips; an image config has no residual keys */
    char *js = fsd_diffusion_config_to_json(&m.diff), *ji = fsd_diffusion_config_to_json(&m0->diff);
    fsd_diffusion_config back;
    fsd_status sj = js ? fsd_diffusion_config_from_json(&back, js, strlen(js), "test") : FSD_ERR_NOMEM;
    tu_check(sj == FSD_OK && back.residual == 1 && back.residual_scale == 4.0 && back.residual_method == FSD_FUSE_GFF &&
                 back.prediction == pred && back.residual_shrink == shrink && ji && !strstr(ji, "residual") &&
                 !strstr(ji, "prediction") && (shrink > 0) == (strstr(js, "residual_shrink") != NULL) &&
                 (pred == FSD_PRED_V) == (strstr(js, "\"prediction\":\"v\"") != NULL),
             "residual config JSON round trip: %s", js ? js : "(null)");
    const char *badp = "{\"prediction\":\"x0\"}";
    tu_check(fsd_diffusion_config_from_json(&back, badp, strlen(badp), "bad.json") != FSD_OK &&
                 strstr(fsd_error_message(), "prediction"),
             "unknown prediction refused: %s", fsd_error_message());
    const char *badj = "{\"target\":\"residual\",\"residual_scale\":0}";
    tu_check(fsd_diffusion_config_from_json(&back, badj, strlen(badj), "bad.json") != FSD_OK &&
                 strstr(fsd_error_message(), "residual_scale"),
             "residual_scale 0 refused: %s", fsd_error_message());
    const char *bads = "{\"target\":\"residual\",\"residual_shrink\":100}";
    tu_check(fsd_diffusion_config_from_json(&back, bads, strlen(bads), "bad.json") != FSD_OK &&
                 strstr(fsd_error_message(), "residual_shrink"),
             "residual_shrink 100 refused: %s", fsd_error_message());
    fsd_free(js), fsd_free(ji);
    fsd_schedule_free(&sch);
    fsd_image_free(&ca), fsd_image_free(&cb), fsd_image_free(&f);
done:
    fsd_frames_free(&fr);
    fsd_image_free(&a), fsd_image_free(&b), fsd_image_free(&out);
    free(ctx), free(x), free(in), free(cond);
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "--make-model")) {
        int nc = argc >= 4 && !strcmp(argv[3], "--no-clarity");
        fsd_status s = make_model(argv[2], !nc, 1);
        if (s) fprintf(stderr, "test_fuse: %s\n", fsd_error_message());
        return s ? 1 : 0;
    }
    snprintf(g_dir, sizeof g_dir, "/tmp/fsd_test_fuse_XXXXXX");
    if (!mkdtemp(g_dir)) {
        fprintf(stderr, "cannot make a temporary folder\n");
        return 1;
    }
    snprintf(g_model, sizeof g_model, "%s/tiny.safetensors", g_dir);
    snprintf(g_model_nc, sizeof g_model_nc, "%s/tiny_noclarity.safetensors", g_dir);
    fsd_model m;
    memset(&m, 0, sizeof m);
    fsd_status s = make_model(g_model, 1, 1);
    if (!s) s = make_model(g_model_nc, 0, 1);
    if (!s) s = fsd_model_open(&m, g_model);
    if (tu_check(s == FSD_OK && m.clarity, "tiny model written and opened (%s)", s ? fsd_error_message() : "ok")) {
        double t0 = fsd_time_seconds();
        size_rule_tests(&m);
        output_tests(&m);
        tiling_tests(&m);
        context_tests(&m);
        option_tests(&m);
        residual_tests(&m, FSD_PRED_EPS, 0.0);
        residual_tests(&m, FSD_PRED_V, 3.0);
        printf("  (%.1f s)\n", fsd_time_seconds() - t0);
        fsd_model_close(&m);
    }
    char p[400];
    snprintf(p, sizeof p, "%s/ctx.safetensors", g_dir);
    unlink(p), unlink(g_model), unlink(g_model_nc);
    rmdir(g_dir);
    return tu_summary();
}
