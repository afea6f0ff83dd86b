/* Tile plans, blend weights and the tiled denoiser (include/fsdiff/tiles.h). No twin: the reference
 * is the same toy denoiser run untiled on the whole (reflection-padded) canvas.
 *
 * Tolerances:
 *  - plans: exact integer properties (coverage, bounds, alignment, overlap >= requested, counts);
 *  - weights: normalised weights sum to 1 within 1e-6 per pixel (float weights), raw sum > 0,
 *    raw weight exactly 1 at image borders;
 *  - exactness: a local translation-equivariant toy (5x5 conv, radius r = 2, zero padding at the
 *    tile edge, then a pointwise nonlinearity) tiled with guard >= r equals the untiled result:
 *    rel_err (testutil.h) <= 1e-6 (only float rounding of the weights); with guard 0 < r the
 *    tiles' zero padding shows: rel_err >= 1e-3 (negative control);
 *  - non-local toy (x - tile mean): |tiled - untiled| <= max_k |mean_k - mean| + 1e-6 (the blended
 *    mean is a convex combination of the tile means);
 *  - full sampling (ddim 10 steps, and ddpm 10 steps) local toy tiled vs untiled: max |diff| <= 1e-5;
 *  - 1 vs 2 threads: bit-identical (memcmp);
 *  - tiny U-Net (random orthogonal init, attention inside each tile, so not local): tiled vs untiled
 *    ε̂ rel_err reported and <= 1 (a loose sanity bound: GroupNorm statistics and attention are per tile); the blended error field's seam step
 *    <= the hard-seam (overlap 0) one; the net's scratch peak with tiles is that of one tile, below
 *    the untiled peak. */
#include "fsdiff/nn.h"
#include "fsdiff/tiles.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- plans and weights */
/* Checks every documented plan property; `full2d` also checks weights pixel by pixel in 2D. */
static void check_plan(int H, int W, int tile, int overlap, int guard, int align, int full2d) {
    fsd_tile_plan p;
    fsd_status st = fsd_tile_plan_init(&p, H, W, tile, overlap, guard, align);
    if (!tu_check(st == FSD_OK, "plan %dx%d tile %d overlap %d guard %d align %d: init (%s)", H, W, tile, overlap,
                  guard, align, fsd_error_message()))
        return;
    const int ov = p.overlap;
    int ok_bounds = 1, ok_align = 1, ok_overlap = 1, ok_cover = 1, ok_sum = 1, ok_pos = 1, ok_border = 1;
    double worst_sum = 0.0;
    const fsd_tile_axis *ax[2] = {&p.y, &p.x};
    for (int a = 0; a < 2; a++) {
        const fsd_tile_axis *A = ax[a];
        if (A->padded % align || A->padded < A->len || A->padded - A->len >= align) ok_align = 0;
        if (A->size % align || A->size > tile || A->size != (A->padded < tile ? A->padded : tile)) ok_align = 0;
        for (int i = 0; i < A->n; i++) {
            if (A->start[i] < 0 || A->start[i] + A->size > A->padded) ok_bounds = 0;
            if (A->start[i] % align) ok_align = 0;
            if (i + 1 < A->n && A->start[i] + A->size - A->start[i + 1] < ov) ok_overlap = 0;
            if (i + 1 < A->n && A->start[i + 1] <= A->start[i]) ok_overlap = 0;
        }
        if (A->start[0] != 0 || A->start[A->n - 1] + A->size != A->padded) ok_bounds = 0; /* flush to both borders */
        for (int q = 0; q < A->len; q++) {
            int cov = 0;
            double raw = 0.0, nrm = 0.0;
            for (int i = 0; i < A->n; i++) {
                int d = q - A->start[i];
                if (d < 0 || d >= A->size) continue;
                cov++;
                raw += A->ramp[(size_t)i * A->size + d];
                nrm += A->norm[(size_t)i * A->size + d];
                if (A->ramp[(size_t)i * A->size + d] < 0.0f) ok_pos = 0;
                /* image border: the covering tile at that border keeps weight 1 */
                if ((q == 0 && i == 0) || (q == A->len - 1 && i == A->n - 1))
                    if (A->ramp[(size_t)i * A->size + d] != 1.0f) ok_border = 0;
            }
            if (cov < 1) ok_cover = 0;
            if (!(raw > 0.0)) ok_pos = 0;
            if (fabs(nrm - 1.0) > worst_sum) worst_sum = fabs(nrm - 1.0);
        }
    }
    if (worst_sum > 1e-6) ok_sum = 0;
    if (full2d) { /* the 2D weights the blend uses: separable, so the same properties per pixel */
        double w2 = 0.0;
        int pos2 = 1;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                double s = 0.0, r = 0.0;
                int cov = 0;
                for (int k = 0; k < p.n; k++) {
                    int x0, y0, tw, th;
                    fsd_tile_rect(&p, k, &x0, &y0, &tw, &th);
                    if (y < y0 || y >= y0 + th || x < x0 || x >= x0 + tw) continue;
                    cov++;
                    s += fsd_tile_weight(&p, k, y, x, 1);
                    r += fsd_tile_weight(&p, k, y, x, 0);
                }
                if (!cov || !(r > 0.0)) pos2 = 0;
                if (fabs(s - 1.0) > w2) w2 = fabs(s - 1.0);
            }
        /* corners: weight 1 in the corner tiles */
        float c00 = fsd_tile_weight(&p, 0, 0, 0, 0), c11 = fsd_tile_weight(&p, p.n - 1, H - 1, W - 1, 0);
        tu_check(pos2 && w2 <= 1e-6 && c00 == 1.0f && c11 == 1.0f,
                 "plan %dx%d: 2D every pixel covered, raw sum > 0, normalised sum = 1 (worst %.1e), corners 1", H, W,
                 w2);
    }
    tu_check(ok_bounds && ok_align && ok_overlap && ok_cover && ok_sum && ok_pos && ok_border,
             "plan %dx%d tile %d ov %d guard %d align %d: %d tiles (%dx%d of %dx%d), bounds %d align %d overlap %d "
             "cover %d sum1 %d (worst %.1e) pos %d border %d",
             H, W, tile, p.overlap, p.guard, align, p.n, p.y.n, p.x.n, p.y.size, p.x.size, ok_bounds, ok_align,
             ok_overlap, ok_cover, ok_sum, worst_sum, ok_pos, ok_border);
    fsd_tile_plan_free(&p);
}

/* Tiles along one axis counted by brute force: tiles at 0, S, 2S, .. until one reaches the canvas end
 * (that one is moved flush to the end). */
static int count_axis(int len, int tile, int overlap, int align) {
    int padded = (len + align - 1) / align * align, n = 1;
    for (int s = 0; s + tile < padded; s += tile - overlap) n++;
    return n;
}

static void plan_cases(void) {
    check_plan(96, 80, 32, 16, 2, 8, 1);
    check_plan(481, 353, 128, 32, 4, 8, 1);   /* odd sizes: last tiles reach into the reflection padding */
    check_plan(481, 353, 64, 16, -1, 16, 1);  /* default guard */
    check_plan(20, 13, 64, -1, -1, 8, 1);     /* smaller than a tile: one padded 24x16 tile */
    check_plan(3, 1, 8, 0, 0, 8, 1);          /* tinier than align */
    check_plan(200, 200, 64, 0, 0, 1, 1);     /* no overlap: hard seams, still a partition of unity */
    check_plan(300, 257, 64, 48, 8, 16, 1);   /* overlap > tile/2: up to 4 tiles per pixel per axis */
    check_plan(1000, 999, 256, -1, -1, 32, 0);

    fsd_tile_plan p;
    fsd_tile_plan_init(&p, 20, 13, 64, -1, -1, 8);
    tu_check(p.n == 1 && p.y.size == 24 && p.x.size == 16 && p.overlap == 16 && p.guard == 4,
             "small image: one %dx%d tile, defaults overlap %d guard %d", p.y.size, p.x.size, p.overlap, p.guard);
    fsd_tile_plan_free(&p);

    /* huge output: plan count and memory O(H + W) */
    const int H = 100000, W = 70001, T = 256, O = 64, A = 32;
    double t0 = fsd_time_seconds();
    fsd_status st = fsd_tile_plan_init(&p, H, W, T, O, -1, A);
    double dt = fsd_time_seconds() - t0;
    int ny = count_axis(H, T, O, A), nx = count_axis(W, T, O, A);
    if (tu_check(st == FSD_OK, "huge plan init")) {
        tu_check(p.y.n == ny && p.x.n == nx && p.n == ny * nx && ny == 521 && nx == 365,
                 "huge %dx%d tile %d overlap %d: %d x %d = %d tiles (brute force %d x %d), plan %.2f MB, %.3f s", H, W,
                 T, O, p.y.n, p.x.n, p.n, ny, nx, fsd_tile_plan_bytes(&p) / 1e6, dt);
        tu_check(fsd_tile_plan_bytes(&p) < 2 * (size_t)(H + W) * 2 * 4 * 2, "huge plan memory O(H + W): %zu bytes",
                 fsd_tile_plan_bytes(&p));
        size_t full = fsd_tiled_memory_bytes(&p, 1, 3, FSD_SAMPLER_DDIM, 0);
        size_t expect = 4 * (4 * (size_t)3 * H * W + 2 * (size_t)3 * T * T + 1) + fsd_tile_plan_bytes(&p);
        tu_check(full == expect, "memory formula: %zu bytes (%.1f GB) for ddim B=1 C=3", full, full / 1e9);
        fsd_tile_plan_free(&p);
    }

    /* bad arguments: one message each, never a crash */
    struct { int H, W, tile, ov, guard, align; const char *why; } bad[] = {
        {0, 10, 32, 8, 0, 8, "H = 0"},           {10, 10, 30, 8, 0, 8, "tile not a multiple of align"},
        {10, 10, 32, 32, 0, 8, "overlap = tile"}, {10, 10, 32, 4, 0, 8, "overlap not aligned"},
        {10, 10, 32, 8, 4, 8, "2 guard = overlap"}, {10, 10, 32, 0, 1, 8, "guard without overlap"},
        {10, 10, 32, 8, 0, 0, "align 0"},         {1 << 25, 10, 32, 8, 0, 8, "H too large"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        st = fsd_tile_plan_init(&p, bad[i].H, bad[i].W, bad[i].tile, bad[i].ov, bad[i].guard, bad[i].align);
        tu_check(st == FSD_ERR_INVALID && strlen(fsd_error_message()) > 0 && !p.y.start,
                 "rejects %s: %s", bad[i].why, fsd_error_message());
    }
}

static void crop_cases(void) {
    /* 1 channel, H = 3, W = 4, value 10 y + x */
    float src[12], dst[6 * 7];
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 4; x++) src[y * 4 + x] = (float)(10 * y + x);
    fsd_tile_crop(src, 1, 3, 4, -2, -1, 7, 6, dst);
    /* reflection without edge repeat: rows -1..4 -> 1 0 1 2 1 0, cols -2..4 -> 2 1 0 1 2 3 2 */
    const int ry[6] = {1, 0, 1, 2, 1, 0}, rx[7] = {2, 1, 0, 1, 2, 3, 2};
    int ok = 1;
    for (int y = 0; y < 6; y++)
        for (int x = 0; x < 7; x++) ok &= dst[y * 7 + x] == (float)(10 * ry[y] + rx[x]);
    tu_check(ok, "crop reflects without repeating the edge");
    float one = 5.0f, d4[4];
    fsd_tile_crop(&one, 1, 1, 1, 0, 0, 2, 2, d4);
    tu_check(d4[0] == 5 && d4[1] == 5 && d4[2] == 5 && d4[3] == 5, "crop of a 1x1 image");
}

/* ---------------------------------------------------------------- toy denoisers */
#define R 2 /* receptive radius of the local toy */
typedef struct local_toy {
    int C;
    float k[4][4][2 * R + 1][2 * R + 1]; /* [co][ci][dy][dx], C <= 4 */
    int fail;                            /* return an error on every call */
} local_toy;

/* eps (B, C, h, w) = sqrt(1 - γ²) tanh(conv5x5(x)) + 0.1 γ x, zero padding outside (h, w):
 * local (radius R) and translation-equivariant away from the borders. */
static void local_eps(const local_toy *t, const float *x, const float *gamma, float *eps, int B, int h, int w) {
    const int C = t->C;
    for (int b = 0; b < B; b++) {
        const double g = gamma[b], sg = sqrt(1.0 - g * g);
        for (int co = 0; co < C; co++)
            for (int y = 0; y < h; y++)
                for (int xx = 0; xx < w; xx++) {
                    double acc = 0.0;
                    for (int ci = 0; ci < C; ci++)
                        for (int dy = -R; dy <= R; dy++) {
                            const int yy = y + dy;
                            if (yy < 0 || yy >= h) continue;
                            const float *row = x + (((size_t)b * C + ci) * h + yy) * w;
                            for (int dx = -R; dx <= R; dx++) {
                                const int q = xx + dx;
                                if (q >= 0 && q < w) acc += t->k[co][ci][dy + R][dx + R] * row[q];
                            }
                        }
                    const size_t e = (((size_t)b * C + co) * h + y) * w + xx;
                    eps[e] = (float)(sg * tanh(acc) + 0.1 * g * x[e]);
                }
    }
}

static fsd_status local_tile(void *ctx, int x0, int y0, int tw, int th, const float *xt, const float *gamma,
                             float *eps, int B) {
    local_toy *t = ctx;
    if (t->fail) return fsd_fail(FSD_ERR_IO, "toy tile (%d,%d): injected failure", x0, y0);
    local_eps(t, xt, gamma, eps, B, th, tw);
    return FSD_OK;
}

/* Untiled: the same toy over the whole reflection-padded canvas, cropped back (= a 1-tile plan). */
typedef struct untiled {
    local_toy *t;
    int C, H, W, Hp, Wp;
    float *xp, *ep;
} untiled;

static fsd_status untiled_eps(void *ctx, const float *x, const float *gamma, float *eps, int B) {
    untiled *u = ctx;
    const int BC = B * u->C;
    fsd_tile_crop(x, BC, u->H, u->W, 0, 0, u->Wp, u->Hp, u->xp);
    local_eps(u->t, u->xp, gamma, u->ep, B, u->Hp, u->Wp);
    for (int c = 0; c < BC; c++)
        for (int y = 0; y < u->H; y++)
            memcpy(eps + ((size_t)c * u->H + y) * u->W, u->ep + ((size_t)c * u->Hp + y) * u->Wp, u->W * sizeof(float));
    return FSD_OK;
}

static void toy_init(local_toy *t, int C) {
    memset(t, 0, sizeof *t);
    t->C = C;
    tu_fill_uniform(&t->k[0][0][0][0], sizeof t->k / sizeof(float), 11, 0.15f);
}

/* Seam-crossing test image: smooth gradients + a sharp diagonal edge + noise, in [-1, 1]. */
static void test_image(float *x, int BC, int H, int W, uint64_t seed) {
    tu_fill_uniform(x, (size_t)BC * H * W, seed, 0.3f);
    for (int c = 0; c < BC; c++)
        for (int y = 0; y < H; y++)
            for (int xx = 0; xx < W; xx++) {
                float v = 0.5f * sinf(0.07f * (float)(xx + 2 * c)) * cosf(0.05f * (float)y);
                v += (xx + y > (H + W) / 2) ? 0.2f : -0.2f;
                x[((size_t)c * H + y) * W + xx] += v;
            }
}

/* Tiled vs untiled ε̂ of the local toy; returns rel_err. */
static double local_eps_diff(int B, int C, int H, int W, int tile, int overlap, int guard, int align) {
    fsd_tile_plan p;
    if (fsd_tile_plan_init(&p, H, W, tile, overlap, guard, align) != FSD_OK) return 1e30;
    local_toy t;
    toy_init(&t, C);
    const size_t n = (size_t)B * C * H * W;
    float *x = tu_zeros(n), *e1 = tu_zeros(n), *e2 = tu_zeros(n), *g = tu_zeros(B);
    for (int b = 0; b < B; b++) g[b] = 0.3f + 0.4f * b;
    test_image(x, B * C, H, W, 3);
    untiled u = {&t, C, H, W, p.y.padded, p.x.padded, NULL, NULL};
    u.xp = tu_zeros((size_t)B * C * u.Hp * u.Wp), u.ep = tu_zeros((size_t)B * C * u.Hp * u.Wp);
    fsd_tiled_denoiser d;
    fsd_tiled_init(&d, &p, C, B, local_tile, &t);
    fsd_status st = fsd_tiled_denoise(&d, x, g, e1, B);
    untiled_eps(&u, x, g, e2, B);
    double err = st == FSD_OK ? tu_rel_err(e1, e2, n) : 1e30;
    tu_check(st == FSD_OK && d.tile_calls == p.n, "tiled call made %lld tile calls (plan %d)", d.tile_calls, p.n);
    fsd_tiled_free(&d);
    fsd_tile_plan_free(&p);
    fsd_free(x), fsd_free(e1), fsd_free(e2), fsd_free(g), fsd_free(u.xp), fsd_free(u.ep);
    return err;
}

static void exactness_cases(void) {
    double e;
    e = local_eps_diff(2, 2, 96, 80, 32, 16, R, 8);
    tu_check(e <= 1e-6, "local toy 96x80 tile 32 ov 16 guard %d: tiled = untiled, rel_err %.2e <= 1e-6", R, e);
    e = local_eps_diff(1, 3, 481, 353, 128, 32, 4, 8);
    tu_check(e <= 1e-6, "local toy 481x353 tile 128 ov 32 guard 4 (padded edge tiles): rel_err %.2e <= 1e-6", e);
    e = local_eps_diff(1, 2, 20, 13, 64, -1, -1, 8);
    tu_check(e == 0.0, "local toy 20x13 < tile: one padded tile, identical (rel_err %.2e)", e);
    e = local_eps_diff(1, 2, 96, 80, 32, 16, 0, 8);
    tu_check(e >= 1e-3, "negative control, guard 0 < r = %d: tile zero padding visible, rel_err %.2e >= 1e-3", R, e);
}

/* Non-local toy: eps = x - mean over the tile (per sample and channel), incl. reflected padding. */
static fsd_status mean_tile(void *ctx, int x0, int y0, int tw, int th, const float *xt, const float *gamma,
                            float *eps, int B) {
    const int C = *(int *)ctx;
    const size_t hw = (size_t)tw * th;
    for (int c = 0; c < B * C; c++) {
        double m = 0.0;
        for (size_t i = 0; i < hw; i++) m += xt[c * hw + i];
        m /= (double)hw;
        for (size_t i = 0; i < hw; i++) eps[c * hw + i] = (float)(xt[c * hw + i] - m);
    }
    return FSD_OK;
}

/* Tiled - untiled ε̂ of the mean toy with a plan; returns max |diff|, the bound max_k |m_k - m| and the
 * largest step of the error field between neighbouring pixels (the visible seam). */
static void mean_toy_diff(const float *x, int C, int H, int W, int tile, int overlap, int guard, double *dmax,
                          double *bound, double *step) {
    fsd_tile_plan p, pu;
    fsd_tile_plan_init(&p, H, W, tile, overlap, guard, 8);
    const int side = ((H > W ? H : W) + 7) / 8 * 8;
    fsd_tile_plan_init(&pu, H, W, side, 0, 0, 8); /* untiled: one tile */
    const size_t n = (size_t)C * H * W;
    float *e1 = tu_zeros(n), *e2 = tu_zeros(n), g = 0.5f, *tmp = tu_zeros((size_t)C * tile * tile);
    int Cc = C;
    fsd_tiled_denoiser d, du;
    fsd_tiled_init(&d, &p, C, 1, mean_tile, &Cc);
    fsd_tiled_init(&du, &pu, C, 1, mean_tile, &Cc);
    fsd_tiled_denoise(&d, x, &g, e1, 1);
    fsd_tiled_denoise(&du, x, &g, e2, 1);
    *bound = *dmax = *step = 0.0;
    for (int k = 0; k < p.n; k++) {
        int x0, y0, tw, th;
        fsd_tile_rect(&p, k, &x0, &y0, &tw, &th);
        fsd_tile_crop(x, C, H, W, x0, y0, tw, th, tmp);
        for (int c = 0; c < C; c++) {
            double mt = 0.0, mi = 0.0;
            for (int i = 0; i < tw * th; i++) mt += tmp[c * tw * th + i];
            for (int i = 0; i < H * W; i++) mi += x[(size_t)c * H * W + i];
            *bound = fmax(*bound, fabs(mt / (tw * th) - mi / (H * W)));
        }
    }
    for (size_t i = 0; i < n; i++) e1[i] -= e2[i], *dmax = fmax(*dmax, fabs(e1[i]));
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++)
            for (int xx = 0; xx < W; xx++) {
                const float *f = e1 + ((size_t)c * H + y) * W + xx;
                if (xx + 1 < W) *step = fmax(*step, fabs(f[1] - f[0]));
                if (y + 1 < H) *step = fmax(*step, fabs(f[W] - f[0]));
            }
    fsd_free(tmp), fsd_free(e1), fsd_free(e2);
    fsd_tiled_free(&d), fsd_tiled_free(&du);
    fsd_tile_plan_free(&p), fsd_tile_plan_free(&pu);
}

static void nonlocal_case(void) {
    const int C = 2, H = 96, W = 80;
    const size_t n = (size_t)C * H * W;
    float *x = tu_zeros(n), *z = tu_zeros(n);
    test_image(x, C, H, W, 5);
    fsd_rng r = {3, 0};
    fsd_rng_normal(&r, 0, z, n); /* x_t at high noise: unit Gaussian */
    const float *imgs[2] = {x, z};
    const char *names[2] = {"structured image", "N(0,1) noise"};
    for (int i = 0; i < 2; i++) {
        double dm, bd, st, dm0, bd0, st0;
        mean_toy_diff(imgs[i], C, H, W, 32, 16, 2, &dm, &bd, &st);
        mean_toy_diff(imgs[i], C, H, W, 32, 0, 0, &dm0, &bd0, &st0);
        tu_check(dm <= bd + 1e-6 && dm0 <= bd0 + 1e-6,
                 "non-local toy (x - tile mean), %s, tile 32: max |tiled - untiled| %.4f <= bound %.4f (overlap 16), "
                 "%.4f <= %.4f (overlap 0)", names[i], dm, bd, dm0, bd0);
        /* the ramp spreads a jump between tile means over overlap - 2 guard = 12 pixels: max slope π/24 */
        tu_check(st <= 0.3 * st0, "%s: seam step of the error %.4f with blending <= 0.3 x %.4f without", names[i], st,
                 st0);
    }
    fsd_free(x), fsd_free(z);
}

/* ---------------------------------------------------------------- full sampling */
static fsd_status run_sample(fsd_sampler_kind kind, fsd_denoise_fn fn, void *ctx, float *x, int B, size_t nps) {
    fsd_schedule s;
    fsd_schedule_init(&s, FSD_BETA_LINEAR, 1000, 1e-4, 2e-2);
    int lv[10];
    fsd_diffusion_levels(1000, 10, FSD_SPACING_LINSPACE, lv);
    fsd_sampler_opts o;
    fsd_sampler_opts_default(&o);
    o.kind = kind, o.levels = lv, o.K = 10, o.eta = 0.0, o.seed = 42;
    fsd_status st = fsd_diffusion_sample(&s, &o, fn, ctx, x, B, nps);
    fsd_schedule_free(&s);
    return st;
}

static void sampling_case(fsd_sampler_kind kind, int B, int C, int H, int W, int tile, int overlap, int guard) {
    fsd_tile_plan p;
    fsd_tile_plan_init(&p, H, W, tile, overlap, guard, 8);
    local_toy t;
    toy_init(&t, C);
    const size_t nps = (size_t)C * H * W, n = (size_t)B * nps;
    float *a = tu_zeros(n), *b = tu_zeros(n);
    untiled u = {&t, C, H, W, p.y.padded, p.x.padded, NULL, NULL};
    u.xp = tu_zeros((size_t)B * C * u.Hp * u.Wp), u.ep = tu_zeros((size_t)B * C * u.Hp * u.Wp);
    fsd_tiled_denoiser d;
    fsd_tiled_init(&d, &p, C, B, local_tile, &t);
    fsd_status s1 = run_sample(kind, fsd_tiled_denoise, &d, a, B, nps);
    fsd_status s2 = run_sample(kind, untiled_eps, &u, b, B, nps);
    double dmax = 0.0, amax = 0.0;
    for (size_t i = 0; i < n; i++) {
        dmax = fmax(dmax, fabs((double)a[i] - b[i]));
        amax = fmax(amax, fabs((double)b[i]));
    }
    tu_check(s1 == FSD_OK && s2 == FSD_OK && dmax <= 1e-5 && amax > 0.1,
             "%s 10 steps B=%d C=%d %dx%d tile %d ov %d guard %d (%d tiles): max |tiled - untiled| %.2e <= 1e-5 "
             "(max |x| %.2f)",
             fsd_sampler_name(kind), B, C, H, W, tile, overlap, guard, p.n, dmax, amax);
    fsd_tiled_free(&d);
    fsd_tile_plan_free(&p);
    fsd_free(a), fsd_free(b), fsd_free(u.xp), fsd_free(u.ep);
}

static void thread_independence(void) {
    /* tiles of 2*3*96*96 = 55k values: above the crop/blend parallel threshold */
    const int B = 2, C = 3, H = 200, W = 168;
    fsd_tile_plan p;
    fsd_tile_plan_init(&p, H, W, 96, 32, 4, 8);
    local_toy t;
    toy_init(&t, C);
    const size_t nps = (size_t)C * H * W, n = (size_t)B * nps;
    float *a = tu_zeros(n), *b = tu_zeros(n), *ea = tu_zeros(n), *eb = tu_zeros(n), g[2] = {0.2f, 0.9f};
    fsd_tiled_denoiser d;
    fsd_tiled_init(&d, &p, C, B, local_tile, &t);
    int old = fsd_get_threads();
    test_image(a, B * C, H, W, 9);
    fsd_set_threads(1);
    fsd_tiled_denoise(&d, a, g, ea, B);
    fsd_set_threads(2);
    fsd_tiled_denoise(&d, a, g, eb, B);
    tu_check(!memcmp(ea, eb, n * 4), "tiled eps %dx%d (%d tiles): bit-identical with 1 and 2 threads", H, W, p.n);
    fsd_set_threads(1);
    fsd_status s1 = run_sample(FSD_SAMPLER_DDIM, fsd_tiled_denoise, &d, a, B, nps);
    fsd_set_threads(2);
    fsd_status s2 = run_sample(FSD_SAMPLER_DDIM, fsd_tiled_denoise, &d, b, B, nps);
    tu_check(s1 == FSD_OK && s2 == FSD_OK && !memcmp(a, b, n * 4),
             "tiled ddim sample: bit-identical with 1 and 2 threads (%zu values)", n);
    fsd_set_threads(old);
    fsd_tiled_free(&d);
    fsd_tile_plan_free(&p);
    fsd_free(a), fsd_free(b), fsd_free(ea), fsd_free(eb);
}

/* ---------------------------------------------------------------- tiny U-Net */
typedef struct unet_tile {
    fsd_net *net;
    const float *cond; /* (B, 6, H, W) full conditioning */
    const float *ctx;  /* (B, T, D) context, one per image (not tiled) */
    int H, W, cin, cx;
    float *in;         /* (B, cin, th, tw) scratch: cat(cond tile, x tile) */
    float *ctile;      /* (cin - cx, th, tw) per sample */
} unet_tile;

static fsd_status unet_tile_fn(void *c, int x0, int y0, int tw, int th, const float *xt, const float *gamma,
                               float *eps, int B) {
    unet_tile *u = c;
    const size_t hw = (size_t)tw * th, cc = (size_t)(u->cin - u->cx);
    for (int b = 0; b < B; b++) {
        fsd_tile_crop(u->cond + (size_t)b * cc * u->H * u->W, (int)cc, u->H, u->W, x0, y0, tw, th, u->ctile);
        memcpy(u->in + (size_t)b * u->cin * hw, u->ctile, cc * hw * sizeof(float));
        memcpy(u->in + ((size_t)b * u->cin + cc) * hw, xt + (size_t)b * u->cx * hw, u->cx * hw * sizeof(float));
    }
    return fsd_net_forward(u->net, u->in, gamma, u->ctx, eps, B, th, tw, 0, 0, 0);
}

/* Runs the tiny net tiled with (tile, overlap, guard) on (H, W); returns the net's scratch peak. */
static size_t unet_eps(fsd_net *net, const fsd_net_config *cfg, const float *cond, const float *ctx, const float *x,
                       float *eps, int H, int W, int tile, int overlap, int guard) {
    fsd_tile_plan p;
    fsd_tile_plan_init(&p, H, W, tile, overlap, guard, 1 << (cfg->n_mults - 1));
    const int cx = cfg->out_channels;
    unet_tile u = {net, cond, ctx, H, W, cfg->in_channels, cx, NULL, NULL};
    u.in = tu_zeros((size_t)cfg->in_channels * p.y.size * p.x.size);
    u.ctile = tu_zeros((size_t)cfg->in_channels * p.y.size * p.x.size);
    fsd_tiled_denoiser d;
    fsd_tiled_init(&d, &p, cx, 1, unet_tile_fn, &u);
    fsd_net_memory_reset(net);
    float g = 0.6f;
    fsd_status st = fsd_tiled_denoise(&d, x, &g, eps, 1);
    tu_check(st == FSD_OK, "tiny U-Net %dx%d tile %d ov %d: %d tiles (%s)", H, W, tile, overlap, p.n,
             st == FSD_OK ? "ok" : fsd_error_message());
    size_t ap, sp;
    fsd_net_memory(net, &ap, &sp);
    fsd_tiled_free(&d);
    fsd_tile_plan_free(&p);
    fsd_free(u.in), fsd_free(u.ctile);
    return sp;
}

static double field_step(const float *a, const float *b, int C, int H, int W) {
    double st = 0.0;
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                size_t i = ((size_t)c * H + y) * W + x;
                double f = a[i] - b[i];
                if (x + 1 < W) st = fmax(st, fabs((a[i + 1] - b[i + 1]) - f));
                if (y + 1 < H) st = fmax(st, fabs((a[i + W] - b[i + W]) - f));
            }
    return st;
}

static void unet_case(void) {
    fsd_net_config cfg;
    fsd_net *net = NULL;
    if (!tu_check(fsd_net_config_preset(&cfg, "tiny") == FSD_OK && fsd_net_create(&net, &cfg) == FSD_OK &&
                      fsd_net_init(net, 5) == FSD_OK,
                  "tiny net created"))
        return;
    const int H = 96, W = 80, cx = cfg.out_channels, cc = cfg.in_channels - cx;
    const size_t n = (size_t)cx * H * W;
    float *cond = tu_zeros((size_t)cc * H * W), *x = tu_zeros(n), *ctx = tu_zeros((size_t)cfg.context_tokens * cfg.context_dim);
    float *ef = tu_zeros(n), *et = tu_zeros(n), *eh = tu_zeros(n);
    test_image(cond, cc, H, W, 21);
    fsd_rng r = {8, 0};
    fsd_rng_normal(&r, 0, x, n);
    for (size_t i = 0; i < n; i++) x[i] = 0.6f * x[i] + 0.8f * 0.5f * cond[i % ((size_t)cc * H * W)];
    tu_fill_uniform(ctx, (size_t)cfg.context_tokens * cfg.context_dim, 22, 1.0f);
    size_t sp_full = unet_eps(net, &cfg, cond, ctx, x, ef, H, W, 96, 0, 0);
    size_t sp_tile = unet_eps(net, &cfg, cond, ctx, x, et, H, W, 32, 16, 4);
    (void)unet_eps(net, &cfg, cond, ctx, x, eh, H, W, 32, 0, 0);
    double e_t = tu_rel_err(et, ef, n), e_h = tu_rel_err(eh, ef, n);
    double s_t = field_step(et, ef, cx, H, W), s_h = field_step(eh, ef, cx, H, W);
    double mad = 0.0, mabs = 0.0;
    for (size_t i = 0; i < n; i++) mad += fabs((double)et[i] - ef[i]), mabs += fabs((double)ef[i]);
    tu_check(e_t <= 1.0 && isfinite(mad),
             "tiny U-Net 96x80, tile 32 ov 16 guard 4: tiled vs untiled eps rel_err %.3f, mean |diff| / mean |eps| "
             "%.3f (hard seams, ov 0: rel_err %.3f)", e_t, mad / mabs, e_h);
    tu_check(s_t <= s_h, "tiny U-Net: seam step of the error %.4f with blending <= %.4f without", s_t, s_h);
    tu_check(sp_tile < sp_full, "tiny U-Net scratch peak: %.2f MB per 32x32 tile < %.2f MB untiled 96x80",
             sp_tile / 1e6, sp_full / 1e6);
    fsd_net_free(net);
    fsd_free(cond), fsd_free(x), fsd_free(ctx), fsd_free(ef), fsd_free(et), fsd_free(eh);
}

static void error_cases(void) {
    fsd_tile_plan p;
    fsd_tile_plan_init(&p, 40, 40, 16, 8, 2, 8);
    local_toy t;
    toy_init(&t, 1);
    fsd_tiled_denoiser d;
    tu_check(fsd_tiled_init(&d, &p, 0, 1, local_tile, &t) == FSD_ERR_INVALID, "tiled init rejects C = 0: %s",
             fsd_error_message());
    tu_check(fsd_tiled_init(&d, &p, 1, 1, NULL, &t) == FSD_ERR_INVALID, "tiled init rejects a NULL callback");
    fsd_tiled_init(&d, &p, 1, 1, local_tile, &t);
    float x[2 * 1600] = {0}, e[2 * 1600], g[2] = {0.5f, 0.5f};
    tu_check(fsd_tiled_denoise(&d, x, g, e, 2) == FSD_ERR_INVALID, "batch above B_max rejected: %s",
             fsd_error_message());
    t.fail = 1;
    fsd_status st = fsd_tiled_denoise(&d, x, g, e, 1);
    tu_check(st == FSD_ERR_IO && strstr(fsd_error_message(), "injected"), "tile callback error propagates: %s",
             fsd_error_message());
    st = run_sample(FSD_SAMPLER_DDIM, fsd_tiled_denoise, &d, x, 1, 1600);
    tu_check(st == FSD_ERR_IO, "sampler stops on a tile error");
    fsd_tiled_free(&d);
    fsd_tile_plan_free(&p);
}

int main(void) {
    double t0 = fsd_time_seconds();
    plan_cases();
    crop_cases();
    exactness_cases();
    nonlocal_case();
    sampling_case(FSD_SAMPLER_DDIM, 1, 2, 96, 80, 32, 16, R);
    sampling_case(FSD_SAMPLER_DDPM, 2, 3, 96, 80, 32, 16, R);
    sampling_case(FSD_SAMPLER_DPMPP2M, 1, 2, 75, 61, 32, 16, 4); /* padded edge tiles */
    thread_independence();
    unet_case();
    error_cases();
    printf("  test time %.1f s\n", fsd_time_seconds() - t0);
    return tu_summary();
}
