/* Tile plans, blend weights and the tiled (MultiDiffusion-style) denoiser. See include/fsdiff/tiles.h
 * and docs/diffusion.md "Tiled sampling". */
#include "fsdiff/tiles.h"

#include <math.h>
#include <string.h>

#define TILE_MAX_DIM (1 << 24) /* image sides; keeps every index product in size_t and every int sum safe */
#define PAR_MIN 16384          /* elements below which a crop/blend stays on one thread */

static int round_up(int v, int a) { return (v + a - 1) / a * a; }

/* Ramp at an inner edge, d = 0 the outermost pixel (see tiles.h). */
static double edge_ramp(int d, int overlap, int guard) {
    if (d < guard) return 0.0;
    if (d >= overlap - guard) return 1.0;
    double s = sin(0.5 * M_PI * ((double)(d - guard) + 0.5) / (double)(overlap - 2 * guard));
    return s * s;
}

static void axis_free(fsd_tile_axis *a) {
    fsd_free(a->start);
    fsd_free(a->ramp);
    fsd_free(a->norm);
    memset(a, 0, sizeof *a);
}

static fsd_status axis_init(fsd_tile_axis *a, const char *name, int len, int tile, int overlap, int guard,
                            int align) {
    memset(a, 0, sizeof *a);
    a->len = len;
    a->padded = round_up(len, align);
    a->size = a->padded < tile ? a->padded : tile;
    const int stride = tile - overlap;
    a->n = a->padded <= tile ? 1 : (a->padded - tile + stride - 1) / stride + 1;
    a->start = fsd_alloc((size_t)a->n * sizeof(int));
    a->ramp = fsd_alloc((size_t)a->n * a->size * sizeof(float));
    a->norm = fsd_alloc((size_t)a->n * a->size * sizeof(float));
    double *sum = fsd_calloc((size_t)a->padded, sizeof(double));
    if (!a->start || !a->ramp || !a->norm || !sum) {
        fsd_free(sum);
        axis_free(a);
        return fsd_fail(FSD_ERR_NOMEM, "tile plan: out of memory for %d tiles along %s", a->n, name);
    }
    for (int i = 0; i < a->n; i++) a->start[i] = i + 1 < a->n ? i * stride : a->padded - a->size;
    for (int i = 0; i < a->n; i++) {
        const int s = a->start[i];
        /* inner edges fade; an edge on the canvas border keeps weight 1 */
        const int fade_lo = s > 0, fade_hi = s + a->size < a->padded;
        for (int d = 0; d < a->size; d++) {
            double w = 1.0;
            if (fade_lo) w *= edge_ramp(d, overlap, guard);
            if (fade_hi) w *= edge_ramp(a->size - 1 - d, overlap, guard);
            a->ramp[(size_t)i * a->size + d] = (float)w;
            sum[s + d] += (float)w;
        }
    }
    for (int q = 0; q < a->len; q++)
        if (!(sum[q] > 0.0)) { /* cannot happen for valid arguments; checked so normalising is always safe */
            fsd_free(sum);
            axis_free(a);
            return fsd_fail(FSD_ERR_INTERNAL, "tile plan: %s position %d has no tile with weight > 0", name, q);
        }
    for (int i = 0; i < a->n; i++)
        for (int d = 0; d < a->size; d++) {
            const int q = a->start[i] + d;
            const size_t e = (size_t)i * a->size + d;
            a->norm[e] = q < a->len ? (float)((double)a->ramp[e] / sum[q]) : 0.0f;
        }
    fsd_free(sum);
    return FSD_OK;
}

fsd_status fsd_tile_plan_init(fsd_tile_plan *p, int H, int W, int tile, int overlap, int guard, int align) {
    memset(p, 0, sizeof *p);
    if (H < 1 || W < 1 || H > TILE_MAX_DIM || W > TILE_MAX_DIM)
        return fsd_fail(FSD_ERR_INVALID, "tile plan: image %dx%d must be 1..%d on each side", H, W, TILE_MAX_DIM);
    if (align < 1 || align > 4096) return fsd_fail(FSD_ERR_INVALID, "tile plan: align %d must be in 1..4096", align);
    if (tile < align || tile % align != 0 || tile > TILE_MAX_DIM)
        return fsd_fail(FSD_ERR_INVALID, "tile plan: tile %d must be a positive multiple of %d", tile, align);
    if (overlap < 0) overlap = tile / 4 / align * align;
    if (overlap >= tile || overlap % align != 0)
        return fsd_fail(FSD_ERR_INVALID, "tile plan: overlap %d must be a multiple of %d below the tile %d", overlap,
                        align, tile);
    if (guard < 0) guard = overlap / 4;
    if (overlap == 0 ? guard != 0 : 2 * guard >= overlap)
        return fsd_fail(FSD_ERR_INVALID, "tile plan: guard %d must satisfy 2*guard < overlap %d (0 without overlap)",
                        guard, overlap);
    p->H = H, p->W = W, p->tile = tile, p->overlap = overlap, p->guard = guard, p->align = align;
    fsd_status st = axis_init(&p->y, "rows", H, tile, overlap, guard, align);
    if (st == FSD_OK) st = axis_init(&p->x, "columns", W, tile, overlap, guard, align);
    if (st != FSD_OK) {
        fsd_tile_plan_free(p);
        return st;
    }
    p->n = p->y.n * p->x.n; /* <= (2^24)^2 / 1 only if tile - overlap = 1 at huge sizes: guard against int overflow */
    if ((long long)p->y.n * p->x.n > 0x7fffffffLL) {
        fsd_tile_plan_free(p);
        return fsd_fail(FSD_ERR_INVALID, "tile plan: too many tiles for %dx%d with tile %d", H, W, tile);
    }
    return FSD_OK;
}

void fsd_tile_plan_free(fsd_tile_plan *p) {
    axis_free(&p->y);
    axis_free(&p->x);
    p->n = 0;
}

void fsd_tile_rect(const fsd_tile_plan *p, int k, int *x0, int *y0, int *tw, int *th) {
    const int r = k / p->x.n, c = k % p->x.n;
    *x0 = p->x.start[c], *y0 = p->y.start[r], *tw = p->x.size, *th = p->y.size;
}

float fsd_tile_weight(const fsd_tile_plan *p, int k, int y, int x, int norm) {
    const int r = k / p->x.n, c = k % p->x.n;
    const int dy = y - p->y.start[r], dx = x - p->x.start[c];
    if (dy < 0 || dy >= p->y.size || dx < 0 || dx >= p->x.size) return 0.0f;
    const float *wy = norm ? p->y.norm : p->y.ramp, *wx = norm ? p->x.norm : p->x.ramp;
    return wy[(size_t)r * p->y.size + dy] * wx[(size_t)c * p->x.size + dx];
}

size_t fsd_tile_plan_bytes(const fsd_tile_plan *p) {
    return (size_t)(p->y.n + p->x.n) * sizeof(int) +
           2 * ((size_t)p->y.n * p->y.size + (size_t)p->x.n * p->x.size) * sizeof(float);
}

/* Reflect q into [0, n) without repeating the edge. */
static int reflect(int q, int n) {
    if (n == 1) return 0;
    const int period = 2 * (n - 1);
    q %= period;
    if (q < 0) q += period;
    return q < n ? q : period - q;
}

void fsd_tile_crop(const float *src, int BC, int H, int W, int x0, int y0, int tw, int th, float *dst) {
    const int inside = x0 >= 0 && x0 + tw <= W;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)BC * th * tw > PAR_MIN)
    for (int c = 0; c < BC; c++)
        for (int ty = 0; ty < th; ty++) {
            const float *row = src + ((size_t)c * H + reflect(y0 + ty, H)) * W;
            float *out = dst + ((size_t)c * th + ty) * tw;
            if (inside) {
                memcpy(out, row + x0, (size_t)tw * sizeof(float));
            } else {
                for (int tx = 0; tx < tw; tx++) out[tx] = row[reflect(x0 + tx, W)];
            }
        }
}

fsd_status fsd_tiled_init(fsd_tiled_denoiser *d, const fsd_tile_plan *plan, int C, int B_max, fsd_tile_fn fn,
                          void *ctx) {
    memset(d, 0, sizeof *d);
    if (!plan || plan->n < 1 || !fn || C < 1 || B_max < 1)
        return fsd_fail(FSD_ERR_INVALID, "tiled denoiser: needs a plan, a tile callback, C >= 1 and B_max >= 1");
    const size_t n = (size_t)B_max * C * plan->y.size * plan->x.size;
    d->plan = plan, d->C = C, d->B_max = B_max, d->tile_fn = fn, d->tile_ctx = ctx;
    d->x_tile = fsd_alloc(n * sizeof(float));
    d->eps_tile = fsd_alloc(n * sizeof(float));
    if (!d->x_tile || !d->eps_tile) {
        fsd_tiled_free(d);
        return fsd_fail(FSD_ERR_NOMEM, "tiled denoiser: out of memory for a %dx%d tile (%zu floats)", plan->x.size,
                        plan->y.size, n);
    }
    return FSD_OK;
}

void fsd_tiled_free(fsd_tiled_denoiser *d) {
    fsd_free(d->x_tile);
    fsd_free(d->eps_tile);
    d->x_tile = d->eps_tile = NULL;
}

fsd_status fsd_tiled_denoise(void *tiled, const float *x_t, const float *gamma, float *eps_out, int B) {
    fsd_tiled_denoiser *d = tiled;
    const fsd_tile_plan *p = d->plan;
    if (B < 1 || B > d->B_max)
        return fsd_fail(FSD_ERR_INVALID, "tiled denoiser: batch %d outside 1..%d", B, d->B_max);
    const int H = p->H, W = p->W, BC = B * d->C;
    const size_t n = (size_t)BC * H * W;
    memset(eps_out, 0, n * sizeof(float));
    for (int k = 0; k < p->n; k++) {
        int x0, y0, tw, th;
        fsd_tile_rect(p, k, &x0, &y0, &tw, &th);
        fsd_tile_crop(x_t, BC, H, W, x0, y0, tw, th, d->x_tile);
        fsd_status st = d->tile_fn(d->tile_ctx, x0, y0, tw, th, d->x_tile, gamma, d->eps_tile, B);
        d->tile_calls++;
        if (st != FSD_OK) return st;
        /* eps_out += norm_y · norm_x · eps_tile over the tile's in-image part (tiles in order k: deterministic) */
        const int r = k / p->x.n, c = k % p->x.n;
        const float *wy = p->y.norm + (size_t)r * th, *wx = p->x.norm + (size_t)c * tw;
        const int hh = y0 + th <= H ? th : H - y0, ww = x0 + tw <= W ? tw : W - x0;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)BC * th * tw > PAR_MIN)
        for (int ch = 0; ch < BC; ch++)
            for (int ty = 0; ty < hh; ty++) {
                const float *e = d->eps_tile + ((size_t)ch * th + ty) * tw;
                float *o = eps_out + ((size_t)ch * H + y0 + ty) * W + x0;
                const float a = wy[ty];
                if (a == 0.0f) continue;
                for (int tx = 0; tx < ww; tx++) o[tx] += a * wx[tx] * e[tx];
            }
        if (d->progress) d->progress(d->progress_ctx, k, p->n);
    }
    return FSD_OK;
}

size_t fsd_tiled_memory_bytes(const fsd_tile_plan *p, int B, int C, fsd_sampler_kind kind, size_t inner_tile_bytes) {
    const size_t m = kind == FSD_SAMPLER_DPMPP2M ? 5 : 4;
    const size_t img = (size_t)B * C * p->H * p->W, tile = (size_t)B * C * p->y.size * p->x.size;
    return sizeof(float) * (m * img + 2 * tile + (size_t)B) + fsd_tile_plan_bytes(p) + inner_tile_bytes;
}
