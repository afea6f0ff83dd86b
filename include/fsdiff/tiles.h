/* Tiled denoising with overlap blending (MultiDiffusion-style), so sampling a large output keeps the
 * network's memory bounded by one tile. The sampler keeps ONE global x_t (B, C, H, W); at every step
 * the tiled denoiser crops x_t per tile, runs an inner per-tile callback and blends the tiles' ε̂
 * with normalised weights into the full ε̂. Equations, defaults and the memory formula:
 * docs/diffusion.md, "Tiled sampling".
 *
 * Canvas: H and W are rounded up to multiples of `align` (the U-Net factor 2^(n_mults-1)); pixels
 * beyond the image are reflections of the image (fsd_tile_crop) and their ε̂ is dropped. Tiles are
 * placed on the canvas, so a tile may reach past the image's bottom/right edge by < align pixels. */
#ifndef FSDIFF_TILES_H
#define FSDIFF_TILES_H

#include "fsdiff/core.h"
#include "fsdiff/diffusion.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One axis of the plan (rows or columns). */
typedef struct fsd_tile_axis {
    int len;      /* image length (H or W) */
    int padded;   /* canvas length: len rounded up to a multiple of align */
    int size;     /* tile length: min(tile, padded), a multiple of align */
    int n;        /* tiles along the axis: 1 if padded <= tile, else ceil((padded - tile)/(tile - overlap)) + 1 */
    int *start;   /* [n] starts on the canvas: i*(tile - overlap) for i < n-1, the last padded - size */
    float *ramp;  /* [n][size] raw blend weight along the axis (1 in the interior and at canvas borders) */
    float *norm;  /* [n][size] ramp / (sum of ramps of the tiles covering that position); 0 past len */
} fsd_tile_axis;

typedef struct fsd_tile_plan {
    int H, W;
    int tile, overlap, guard, align;
    fsd_tile_axis y, x;
    int n;        /* y.n * x.n tiles, row-major: tile k is row k / x.n, column k % x.n */
} fsd_tile_plan;

/* tile: max tile side, a positive multiple of align; overlap: pixels shared by neighbouring tiles,
 * a multiple of align in [0, tile) (< 0: default = tile/4 rounded down to a multiple of align);
 * guard: pixels at each inner tile edge given weight 0 (for a network whose output near a tile edge
 * is spoiled by zero padding), 0 <= 2*guard < overlap or guard = 0 when overlap = 0 (< 0: default
 * = overlap/4). Blend ramp at an inner edge, d = distance from that edge (0 = outermost pixel):
 *   w(d) = 0 for d < guard, sin²(π/2 · (d - guard + ½) / (overlap - 2 guard)) for d < overlap - guard,
 *   1 beyond; a tile's weight is the product of its edges' ramps and of the two axes. Two tiles that
 *   overlap by exactly `overlap` have ramps summing to 1 across the overlap. */
fsd_status fsd_tile_plan_init(fsd_tile_plan *p, int H, int W, int tile, int overlap, int guard, int align);
void fsd_tile_plan_free(fsd_tile_plan *p);
/* Tile k's rectangle on the canvas: x0, y0 (multiples of align), tw = x.size, th = y.size. */
void fsd_tile_rect(const fsd_tile_plan *p, int k, int *x0, int *y0, int *tw, int *th);
/* Tile k's raw (norm = 0) or normalised (norm = 1) weight at canvas pixel (y, x); 0 outside the tile. */
float fsd_tile_weight(const fsd_tile_plan *p, int k, int y, int x, int norm);
/* Heap bytes held by the plan. */
size_t fsd_tile_plan_bytes(const fsd_tile_plan *p);

/* Crop with reflection: dst (BC, th, tw) = src (BC, H, W) at rows y0.., columns x0.., where a
 * coordinate outside [0, H) (resp. [0, W)) is reflected without repeating the edge (-1 -> 1,
 * H -> H-2; period 2(H-1), H = 1 -> 0). Used for x_t and by tile callbacks for their conditioning. */
void fsd_tile_crop(const float *src, int BC, int H, int W, int x0, int y0, int tw, int th, float *dst);

/* Per-tile network: eps_tile (B, C, th, tw) = ε̂ of x_tile (B, C, th, tw) at noise levels gamma[B];
 * (x0, y0, tw, th) is the tile on the canvas, so the callback crops its own conditioning with
 * fsd_tile_crop(cond, .., x0, y0, tw, th, ..). */
typedef fsd_status (*fsd_tile_fn)(void *ctx, int x0, int y0, int tw, int th, const float *x_tile,
                                  const float *gamma, float *eps_tile, int B);

/* Observer after each tile (progress): tile k of n at the current sampler call. May be NULL. */
typedef void (*fsd_tile_progress_fn)(void *ctx, int k, int n);

/* The tiled denoiser: pass fsd_tiled_denoise as the sampler's fsd_denoise_fn and the struct as its ctx.
 * Tiles run one after another (the inner network is multi-threaded itself); crop and blend loops are
 * element-wise OpenMP, and every pixel accumulates its tiles in the fixed order k = 0..n-1, so the
 * result is bit-identical whatever the thread count. */
typedef struct fsd_tiled_denoiser {
    const fsd_tile_plan *plan;  /* borrowed */
    int C, B_max;
    fsd_tile_fn tile_fn;
    void *tile_ctx;
    fsd_tile_progress_fn progress;
    void *progress_ctx;
    float *x_tile, *eps_tile;   /* [B_max * C * th * tw] each: the only per-call scratch */
    long long tile_calls;       /* tile_fn calls so far */
} fsd_tiled_denoiser;

fsd_status fsd_tiled_init(fsd_tiled_denoiser *d, const fsd_tile_plan *plan, int C, int B_max, fsd_tile_fn fn,
                          void *ctx);
void fsd_tiled_free(fsd_tiled_denoiser *d);
/* fsd_denoise_fn: x_t, eps_out (B, C, H, W) of the plan's image; B <= B_max. */
fsd_status fsd_tiled_denoise(void *tiled, const float *x_t, const float *gamma, float *eps_out, int B);

/* Bytes to sample B images of C channels at the plan's H x W with tiling (a 1-tile plan gives the
 * untiled cost), excluding the conditioning and the network weights:
 *   4·B·C·H·W·m     sampler state: x plus the sampler's own buffers (m = 4: x, ε̂, x̂₀, z for ddpm and
 *                   ddim; m = 5 for dpmpp2m, + x̂₀ of the previous step)
 * + 4·2·B·C·th·tw   tile scratch (x_tile, eps_tile)
 * + fsd_tile_plan_bytes(p)   per-axis ramps, O(H + W)
 * + inner_tile_bytes         what the network needs for one (B, th, tw) tile (its activation and
 *                            scratch arenas, its input concatenation), measured or estimated by the caller. */
size_t fsd_tiled_memory_bytes(const fsd_tile_plan *p, int B, int C, fsd_sampler_kind kind, size_t inner_tile_bytes);

#ifdef __cplusplus
}
#endif
#endif
