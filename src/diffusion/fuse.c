/* Inference with a trained FS-Diff model (include/fsdiff/fuse.h, docs/fuse.md): conditioning as the
 * training batches, the context from the clarity encoder on the whole image, then a sampler over
 * a tiled U-Net denoiser. */
#include "fsdiff/fuse.h"
#include "fsdiff/json.h"
#include "fsdiff/tiles.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define CK(x)                                                                                                          \
    do {                                                                                                               \
        fsd_status s_ = (x);                                                                                           \
        if (s_) return s_;                                                                                             \
    } while (0)

void fsd_fuse_opts_default(fsd_fuse_opts *o) {
    memset(o, 0, sizeof *o);
    o->sampler = -1;
    o->steps = 0;
    o->spacing = -1;
    o->eta = -1.0;
    o->seed = 0;
    o->residual_shrink = -1.0;
    o->tile = 0;
    o->overlap = -1;
    o->guard = -1;
    o->context = -1;
}

/* ---------------------------------------------------------------- size rule */
fsd_status fsd_fuse_output_size(int aw, int ah, int bw, int bh, int scale, int *out_w, int *out_h, int *fa, int *fb) {
    if (aw < 1 || ah < 1 || bw < 1 || bh < 1) return fsd_fail(FSD_ERR_INVALID, "fuse: empty input image");
    if (scale < 1 || scale > FSD_FUSE_MAX_SCALE)
        return fsd_fail(FSD_ERR_INVALID, "fuse: scale %d must be in 1..%d", scale, FSD_FUSE_MAX_SCALE);
    const int big_a = aw >= bw;
    const int64_t ow = (int64_t)scale * (big_a ? aw : bw), oh = (int64_t)scale * (big_a ? ah : bh);
    const char *rule = "the output is scale x the larger input (by width), and each input's factor output/input "
                       "must be the same integer for width and height";
    if (ow % aw || oh % ah || ow / aw != oh / ah || ow % bw || oh % bh || ow / bw != oh / bh)
        return fsd_fail(FSD_ERR_INVALID, "fuse: inputs %dx%d (a) and %dx%d (b) at scale %d give %lldx%lld, but %s", aw,
                        ah, bw, bh, scale, (long long)ow, (long long)oh, rule);
    if (ow > (1 << 24) || oh > (1 << 24) || ow * oh > ((int64_t)1 << 31))
        return fsd_fail(FSD_ERR_INVALID, "fuse: output %lldx%lld is too large", (long long)ow, (long long)oh);
    if (out_w) *out_w = (int)ow;
    if (out_h) *out_h = (int)oh;
    if (fa) *fa = (int)(ow / aw);
    if (fb) *fb = (int)(ow / bw);
    return FSD_OK;
}

/* ---------------------------------------------------------------- conditioning */
/* One source: 8-bit Pillow bicubic to (W, H), then v/127.5 - 1 into 3 planes (grey written three
 * times), exactly the training batch's make_sample after its degradation. */
static fsd_status cond_source(const fsd_image *src, int W, int H, float *dst) {
    fsd_image up;
    CK(fsd_image_resize_bicubic(src, W, H, 1, &up));
    const size_t hw = (size_t)W * H;
    for (int ch = 0; ch < 3; ch++) {
        const float *s = up.data + (size_t)(up.c == 3 ? ch : 0) * hw;
        float *d = dst + (size_t)ch * hw;
#pragma omp parallel for schedule(static) if (hw > 65536)
        for (size_t q = 0; q < hw; q++) d[q] = s[q] / 127.5f - 1.0f;
    }
    fsd_image_free(&up);
    return FSD_OK;
}

/* ---------------------------------------------------------------- the tile callback */
typedef struct fuse_tiles {
    fsd_net *net;
    const float *cond; /* (6, H, W) */
    const float *ctx;  /* (1, T, D) */
    int H, W;
    float *in;         /* (9, th, tw): [cond tile | x_t tile] */
    long long calls;
    /* progress */
    const fsd_fuse_opts *opts;
    int step, steps;
} fuse_tiles;

static fsd_status fuse_tile_fn(void *c, int x0, int y0, int tw, int th, const float *xt, const float *gamma,
                               float *eps, int B) {
    fuse_tiles *u = c;
    const size_t hw = (size_t)tw * th;
    if (B != 1) return fsd_fail(FSD_ERR_INTERNAL, "fuse: batch %d (one image at a time)", B);
    fsd_tile_crop(u->cond, 6, u->H, u->W, x0, y0, tw, th, u->in);
    memcpy(u->in + 6 * hw, xt, 3 * hw * sizeof(float));
    u->calls++;
    return fsd_net_forward(u->net, u->in, gamma, u->ctx, eps, 1, th, tw, 0, 0, 0);
}

static void fuse_tile_progress(void *c, int k, int n) {
    fuse_tiles *u = c;
    if (u->opts->progress) u->opts->progress(u->opts->progress_ctx, u->step, u->steps, k + 1, n);
}

/* Sampler observer: frames, step counter, cancellation. */
typedef struct fuse_obs {
    fuse_tiles *tiles;
    fsd_frame_recorder rec;
    int record;
    volatile int *cancel;
    /* residual models: frames show base + x / scale (the image), not the residual state */
    const fsd_diffusion_config *diff;
    const float *base;
    float *tmp; /* (3, H, W) */
} fuse_obs;

static fsd_status fuse_observer(void *c, const fsd_step_info *info) {
    fuse_obs *o = c;
    o->tiles->step = info->k + 1;
    if (o->record && o->base) {
        fsd_step_info im = *info;
        memcpy(o->tmp, info->x, info->n_per_sample * sizeof(float));
        fsd_residual_apply(o->diff, o->base, o->tmp, info->n_per_sample);
        im.x = o->tmp, im.B = 1;
        CK(fsd_frame_recorder_step(&o->rec, &im));
    } else if (o->record) CK(fsd_frame_recorder_step(&o->rec, info));
    if (o->cancel && *o->cancel) return fsd_fail(FSD_ERR_INVALID, "fuse: interrupted at step %d of %d", info->k + 1, info->K);
    return FSD_OK;
}

/* ---------------------------------------------------------------- memory */
/* The U-Net's arena bytes (activation + scratch peaks) for one (th, tw) tile at B = 1. Measured
 * exactly for small tiles; for larger ones extrapolated linearly in the pixel count from two
 * square probes (every buffer of the inference forward, attention and scan scratch included,
 * grows linearly with the pixels). */
static fsd_status probe_one(fsd_net *net, const float *ctx, int th, int tw, size_t bytes[2]) {
    const size_t hw = (size_t)th * tw;
    float *in = fsd_calloc(9 * hw, sizeof(float)), *eps = fsd_alloc(3 * hw * sizeof(float));
    fsd_status s = in && eps ? FSD_OK : fsd_fail(FSD_ERR_NOMEM, "fuse: out of memory for a %dx%d probe", tw, th);
    float g = 0.5f;
    /* fsd_net_memory_reset keeps what the arenas still hold from the previous forward (r) as the new
     * peak: a peak above r is this forward's own; otherwise run once more, now from this size's residue */
    for (int rep = 0; rep < 2 && !s; rep++) {
        size_t ra, rw, pa, pw;
        fsd_net_memory_reset(net);
        fsd_net_memory(net, &ra, &rw);
        s = fsd_net_forward(net, in, &g, ctx, eps, 1, th, tw, 0, 0, 0);
        fsd_net_memory(net, &pa, &pw);
        bytes[0] = pa, bytes[1] = pw;
        if (pa > ra && pw > rw) break;
    }
    fsd_free(in);
    fsd_free(eps);
    return s;
}

/* bytes: {activation, scratch} arena peaks */
static fsd_status net_tile_bytes(fsd_net *net, const float *ctx, int align, int th, int tw, size_t bytes[2]) {
    int s1 = 2 * align < 32 ? 32 : 2 * align, s2 = 2 * s1;
    if ((int64_t)th * tw <= (int64_t)s2 * s2) return probe_one(net, ctx, th, tw, bytes);
    size_t b1[2], b2[2];
    CK(probe_one(net, ctx, s1, s1, b1));
    CK(probe_one(net, ctx, s2, s2, b2));
    for (int i = 0; i < 2; i++) {
        double slope = ((double)b2[i] - (double)b1[i]) / ((double)s2 * s2 - (double)s1 * s1);
        if (slope < 0) slope = 0;
        bytes[i] = (size_t)((double)b2[i] + slope * ((double)th * tw - (double)s2 * s2));
    }
    return FSD_OK;
}

/* Clarity encoder on both sources at (H, W): every stage's conv output and its normalised copy
 * (an estimate of its transient maps). */
static size_t clarity_bytes(const fsd_clarity *e, int H, int W) {
    if (!e) return 0;
    const fsd_clarity_config *c = fsd_clarity_cfg(e);
    size_t b = 0;
    int h = H, w = W;
    for (int i = 0; i < c->n_stages; i++) {
        h = (h + 1) / 2, w = (w + 1) / 2;
        b += 2 * 2 * (size_t)c->widths[i] * h * w * sizeof(float);
    }
    return b;
}

static size_t fmt_mib(size_t b) { return (b + (1 << 19)) >> 20; }

/* A smaller tile to suggest: half the current one, at most 256, a multiple of align. */
static int suggest_tile(int tile, int align) {
    int t = tile / 2 < 256 ? tile / 2 : 256;
    t = t / align * align;
    return t < align ? align : t;
}

/* ---------------------------------------------------------------- run */
static fsd_status resolve(const fsd_model *m, const fsd_fuse_opts *o, fsd_fuse_info *inf) {
    const fsd_diffusion_config *d = &m->diff;
    inf->sampler = o->sampler < 0 ? d->sampler : (fsd_sampler_kind)o->sampler;
    if (inf->sampler != FSD_SAMPLER_DDPM && inf->sampler != FSD_SAMPLER_DDIM && inf->sampler != FSD_SAMPLER_DPMPP2M)
        return fsd_fail(FSD_ERR_INVALID, "fuse: unknown sampler %d", o->sampler);
    inf->steps = o->steps > 0 ? o->steps : d->steps;
    if (inf->steps > d->T)
        return fsd_fail(FSD_ERR_INVALID, "fuse: %d steps, but the model's schedule has only T = %d levels", inf->steps,
                        d->T);
    if (o->spacing >= 0) inf->spacing = (fsd_spacing)o->spacing;
    else inf->spacing = inf->sampler == d->sampler ? d->spacing : fsd_default_spacing(inf->sampler);
    if (inf->spacing < FSD_SPACING_LINSPACE || inf->spacing > FSD_SPACING_LOGSNR)
        return fsd_fail(FSD_ERR_INVALID, "fuse: unknown spacing %d", o->spacing);
    inf->eta = o->eta >= 0 ? o->eta : d->eta;
    if (inf->sampler == FSD_SAMPLER_DDIM && !(inf->eta >= 0.0 && inf->eta <= 1.0))
        return fsd_fail(FSD_ERR_INVALID, "fuse: ddim eta %g must be in [0, 1]", inf->eta);
    inf->seed = o->seed;
    if (!d->residual && o->residual_shrink >= 0)
        return fsd_fail(FSD_ERR_INVALID, "fuse: a residual shrink applies to residual-target models only; %s generates the "
                        "image itself", m->path);
    inf->residual_shrink = !d->residual ? 0.0 : o->residual_shrink >= 0 ? o->residual_shrink : d->residual_shrink;
    if (!(inf->residual_shrink >= 0.0 && inf->residual_shrink <= 64.0))
        return fsd_fail(FSD_ERR_INVALID, "fuse: residual shrink %g must be in [0, 64] grey levels", inf->residual_shrink);
    inf->context = o->context < 0 ? d->context : (fsd_context_mode)o->context;
    if (inf->context != FSD_CONTEXT_MEAN && inf->context != FSD_CONTEXT_CLARITY)
        return fsd_fail(FSD_ERR_INVALID, "fuse: unknown context mode %d", o->context);
    inf->context_external = o->context_ext != NULL;
    if (!o->context_ext && !m->clarity)
        return fsd_fail(FSD_ERR_INVALID,
                        "%s: the model has no clarity encoder, so the context must come from a context file "
                        "(--context-file F.safetensors with a (%d, %d) tensor 'context')",
                        m->path, fsd_net_cfg(m->net)->context_tokens, fsd_net_cfg(m->net)->context_dim);
    return FSD_OK;
}

fsd_status fsd_fuse_run_size(const fsd_model *m, const fsd_image *a_lr, const fsd_image *b_lr, int W, int H,
                             const fsd_fuse_opts *opts_in, fsd_image *out, fsd_fuse_info *info_out) {
    const double t0 = fsd_time_seconds();
    memset(out, 0, sizeof *out);
    fsd_fuse_opts opts;
    if (opts_in) opts = *opts_in;
    else fsd_fuse_opts_default(&opts);
    fsd_fuse_info inf;
    memset(&inf, 0, sizeof inf);
    inf.roles[0] = inf.roles[1] = -1;
    if (!m || !m->net) return fsd_fail(FSD_ERR_INVALID, "fuse: no model");
    if (!a_lr || !b_lr || !a_lr->data || !b_lr->data || (a_lr->c != 1 && a_lr->c != 3) || (b_lr->c != 1 && b_lr->c != 3))
        return fsd_fail(FSD_ERR_INVALID, "fuse: bad input image");
    if (W < 8 || H < 8 || W > (1 << 24) || H > (1 << 24) || (int64_t)W * H > ((int64_t)1 << 31))
        return fsd_fail(FSD_ERR_INVALID, "fuse: output size %dx%d must be at least 8x8 (and below 2^31 pixels)", W, H);
    snprintf(inf.model, sizeof inf.model, "%s", m->path);
    const fsd_image *src[2] = {a_lr, b_lr};
    for (int i = 0; i < 2; i++) {
        inf.in_w[i] = src[i]->w, inf.in_h[i] = src[i]->h, inf.in_c[i] = src[i]->c;
        inf.factor[i] = W % src[i]->w == 0 && H % src[i]->h == 0 && W / src[i]->w == H / src[i]->h ? W / src[i]->w : 0;
    }
    inf.out_w = W, inf.out_h = H, inf.out_c = a_lr->c == 3 || b_lr->c == 3 ? 3 : 1;
    CK(resolve(m, &opts, &inf));
    const fsd_net_config *nc = fsd_net_cfg(m->net);
    if (nc->in_channels != 9 || nc->out_channels != 3)
        return fsd_fail(FSD_ERR_INVALID, "%s: the network takes %d channels in and gives %d out; fuse needs 9 -> 3",
                        m->path, nc->in_channels, nc->out_channels);
    const size_t nctx = (size_t)nc->context_tokens * nc->context_dim;

    /* ---- tile plan */
    inf.align = 1 << (nc->n_mults - 1);
    const int al = inf.align;
    const int ph = (H + al - 1) / al * al, pw = (W + al - 1) / al * al;
    int tile = opts.tile, overlap = opts.overlap, guard = opts.guard;
    if (tile < 0) return fsd_fail(FSD_ERR_INVALID, "fuse: tile %d must be >= 0 (0: no tiling)", tile);
    if (tile > 0 && tile % al)
        return fsd_fail(FSD_ERR_INVALID, "fuse: tile %d must be a multiple of %d (the U-Net's down-sampling factor)",
                        tile, al);
    if (tile > 0 && overlap > 0 && overlap % al)
        return fsd_fail(FSD_ERR_INVALID, "fuse: overlap %d must be a multiple of %d (the U-Net's down-sampling factor)",
                        overlap, al);
    if (tile == 0 || (ph <= tile && pw <= tile)) { /* one tile: the padded image */
        tile = ph > pw ? ph : pw;
        overlap = 0, guard = 0;
    }
    fsd_tile_plan plan;
    CK(fsd_tile_plan_init(&plan, H, W, tile, overlap, guard, al));
    inf.tile = plan.tile, inf.overlap = plan.overlap, inf.guard = plan.guard, inf.tiles = plan.n;
    for (int i = 0; i < 2; i++) {
        /* eval's LR images are round(W / s) wide, so x3.98 is x4 here: warn only off the trained factors */
        double f = inf.factor[i] ? (double)inf.factor[i] : (double)W / src[i]->w;
        int near = (fabs(f - 2) < 0.1) || (fabs(f - 4) < 0.1) || (fabs(f - 8) < 0.1);
        if (!near)
            fsd_log(FSD_LOG_WARN, "fuse: source %c is upsampled x%s%.3g (the model was trained on x2, x4 and x8)",
                    i ? 'b' : 'a', inf.factor[i] ? "" : "~", f);
    }

    /* ---- memory estimate, before the large allocations */
    fsd_status s = FSD_OK;
    float *ctx = fsd_calloc(nctx, sizeof(float));
    if (!ctx) {
        fsd_tile_plan_free(&plan);
        return fsd_fail(FSD_ERR_NOMEM, "fuse: out of memory");
    }
    const int th = plan.y.size, tw = plan.x.size;
    size_t net_ab[2] = {0, 0};
    s = net_tile_bytes(m->net, ctx, al, th, tw, net_ab);
    const size_t net_b = net_ab[0] + net_ab[1];
    const size_t HW = (size_t)H * W;
    int n_frames = 0;
    if (opts.frames) {
        int every = opts.frames_every > 0 ? opts.frames_every : fsd_frames_default_every(inf.steps);
        n_frames = 2 + (inf.steps - 1) / every + 1;
    }
    inf.mem_weights = 2 * fsd_net_params(m->net)->total * sizeof(float) +
                      (m->clarity ? 2 * fsd_clarity_params(m->clarity)->total * sizeof(float) : 0);
    inf.mem_net_tile = net_b + 9 * (size_t)th * tw * sizeof(float);
    inf.mem_sampler = fsd_tiled_memory_bytes(&plan, 1, 3, inf.sampler, 0);
    inf.mem_images = (6 + (size_t)inf.out_c + (size_t)n_frames * 3) * HW * sizeof(float) + 3 * HW * sizeof(float) +
                     (m->diff.residual ? (opts.frames ? 6 : 3) * HW * sizeof(float) : 0) +
                     (inf.context_external ? 0 : clarity_bytes(m->clarity, H, W));
    inf.mem_total = inf.mem_weights + inf.mem_net_tile + inf.mem_sampler + inf.mem_images;
    if (!s && opts.max_memory && inf.mem_total > opts.max_memory)
        s = fsd_fail(FSD_ERR_NOMEM,
                     "fuse: %dx%d needs about %zu MiB (net %zu MiB for a %dx%d tile, sampler %zu MiB, images %zu MiB, "
                     "weights %zu MiB) but the limit is %zu MiB; use a smaller --tile (e.g. %d) or raise --max-memory",
                     W, H, fmt_mib(inf.mem_total), fmt_mib(inf.mem_net_tile), tw, th, fmt_mib(inf.mem_sampler),
                     fmt_mib(inf.mem_images), fmt_mib(inf.mem_weights), fmt_mib(opts.max_memory),
                     suggest_tile(plan.tile, al));
    /* Arenas sized for the tile now: grown on demand instead, the first full-size forward would run once
     * per doubling of each (10 partial runs at 640x480 x4, 6.7-6.9 -> 4.0-4.2 s for the whole fuse on 2
     * Zen 3 cores). The activation peak extrapolates exactly; the scratch peak grows faster than linearly
     * between the probes (640x480: 121 MiB extrapolated, 190 measured), so it gets twice its estimate,
     * the activations an eighth more. Pages never touched are never committed; where the system refuses
     * the reservation (no overcommit) the arenas still grow on demand, only slower. */
    if (!s && fsd_net_reserve(m->net, net_ab[0] + net_ab[0] / 8, 2 * net_ab[1])) fsd_clear_error();

    /* ---- conditioning and context */
    float *cond = NULL, *x = NULL, *in = NULL, *base = NULL, *ftmp = NULL;
    int *levels = NULL;
    fsd_schedule sch;
    memset(&sch, 0, sizeof sch);
    fsd_tiled_denoiser den;
    memset(&den, 0, sizeof den);
    const double tc = fsd_time_seconds();
    if (!s) {
        cond = fsd_alloc(6 * HW * sizeof(float));
        if (!cond) s = fsd_fail(FSD_ERR_NOMEM, "fuse: out of memory for the %dx%d conditioning", W, H);
    }
    if (!s) s = cond_source(a_lr, W, H, cond);
    if (!s) s = cond_source(b_lr, W, H, cond + 3 * HW);
    if (!s && m->diff.residual) { /* "upsample then fuse" of the whole image, before any tiling */
        base = fsd_alloc(3 * HW * sizeof(float));
        ftmp = opts.frames ? fsd_alloc(3 * HW * sizeof(float)) : NULL;
        if (!base || (opts.frames && !ftmp)) s = fsd_fail(FSD_ERR_NOMEM, "fuse: out of memory for the %dx%d base", W, H);
        if (!s) s = fsd_residual_base(m->diff.residual_method, cond, a_lr->c, b_lr->c, W, H, base);
    }
    if (!s && opts.context_ext) {
        memcpy(ctx, opts.context_ext, nctx * sizeof(float));
    } else if (!s) {
        /* the encoder's context must fit the net (checked by fsd_model_open; a hand-made model too) */
        s = fsd_clarity_check_net(fsd_clarity_cfg(m->clarity), nc);
        float deg[6];
        int roles[2];
        if (!s)
            s = fsd_clarity_forward(m->clarity, cond, cond + 3 * HW, 1, H, W, inf.context, NULL, NULL, ctx, deg, roles,
                                    NULL, 0);
        if (!s) {
            inf.have_deg = 1;
            memcpy(inf.deg, deg, sizeof deg);
            inf.roles[0] = roles[0], inf.roles[1] = roles[1];
        }
    }
    inf.seconds_context = fsd_time_seconds() - tc;

    /* ---- sampling */
    const double ts = fsd_time_seconds();
    fuse_tiles ft = {m->net, cond, ctx, H, W, NULL, 0, &opts, 0, inf.steps};
    fuse_obs ob;
    memset(&ob, 0, sizeof ob);
    ob.tiles = &ft;
    ob.cancel = opts.cancel;
    fsd_diffusion_config dres = m->diff; /* the residual applied with the resolved shrink */
    dres.residual_shrink = inf.residual_shrink;
    ob.diff = &dres, ob.base = base, ob.tmp = ftmp;
    if (!s) s = fsd_schedule_init(&sch, m->diff.schedule, m->diff.T, m->diff.beta_start, m->diff.beta_end);
    if (!s) {
        levels = fsd_alloc((size_t)inf.steps * sizeof(int));
        x = fsd_alloc(3 * HW * sizeof(float));
        in = fsd_alloc(9 * (size_t)th * tw * sizeof(float));
        ft.in = in;
        if (!levels || !x || !in) s = fsd_fail(FSD_ERR_NOMEM, "fuse: out of memory for the %dx%d sampler state", W, H);
    }
    if (!s) s = fsd_diffusion_levels_for(&sch, inf.steps, inf.spacing, levels);
    if (!s) s = fsd_tiled_init(&den, &plan, 3, 1, fuse_tile_fn, &ft);
    if (!s) {
        den.progress = fuse_tile_progress;
        den.progress_ctx = &ft;
    }
    if (!s && opts.frames) {
        s = fsd_frames_init(opts.frames, 3, H, W);
        if (!s) s = fsd_frames_push(opts.frames, cond);
        if (!s) s = fsd_frames_push(opts.frames, cond + 3 * HW);
        ob.record = 1;
        ob.rec.frames = opts.frames;
        ob.rec.every = opts.frames_every > 0 ? opts.frames_every : fsd_frames_default_every(inf.steps);
        ob.rec.sample = 0;
        ob.rec.what = 0;
    }
    if (!s) {
        fsd_sampler_opts so;
        fsd_sampler_opts_default(&so);
        so.kind = inf.sampler;
        so.levels = levels;
        so.K = inf.steps;
        so.eta = inf.eta;
        so.seed = inf.seed;
        so.x_given = 0;
        if (m->diff.residual) so.x0_clip = m->diff.residual_scale;
        so.prediction = m->diff.prediction;
        so.observer = fuse_observer;
        so.observer_ctx = &ob;
        fsd_net_memory_reset(m->net);
        s = fsd_diffusion_sample(&sch, &so, fsd_tiled_denoise, &den, x, 1, 3 * HW);
        size_t a = 0, w = 0;
        fsd_net_memory(m->net, &a, &w);
        inf.mem_net_measured = a + w;
    }
    if (!s && base) fsd_residual_apply(&dres, base, x, 3 * HW);
    inf.net_calls = ft.calls;
    inf.seconds_sampling = fsd_time_seconds() - ts;

    /* ---- output: x0_hat in [-1, 1] -> 0..255, RGB or the mean of the 3 channels */
    if (!s) s = fsd_image_alloc(out, W, H, inf.out_c);
    if (!s) {
        float *o = out->data;
        if (inf.out_c == 3) {
#pragma omp parallel for schedule(static) if (3 * HW > 65536)
            for (size_t q = 0; q < 3 * HW; q++) o[q] = (x[q] + 1.0f) * 127.5f;
        } else {
            const float *r = x, *g = x + HW, *b = x + 2 * HW;
#pragma omp parallel for schedule(static) if (HW > 65536)
            for (size_t q = 0; q < HW; q++) o[q] = ((r[q] + g[q] + b[q]) / 3.0f + 1.0f) * 127.5f;
        }
    }
    fsd_tiled_free(&den);
    fsd_tile_plan_free(&plan);
    fsd_schedule_free(&sch);
    fsd_free(levels);
    fsd_free(x);
    fsd_free(in);
    fsd_free(cond);
    fsd_free(base);
    fsd_free(ftmp);
    fsd_free(ctx);
    if (s) {
        fsd_image_free(out);
        if (opts.frames) fsd_frames_free(opts.frames);
    }
    inf.seconds = fsd_time_seconds() - t0;
    if (info_out) *info_out = inf;
    return s;
}

fsd_status fsd_fuse_run(const fsd_model *m, const fsd_image *a_lr, const fsd_image *b_lr, int scale,
                        const fsd_fuse_opts *opts, fsd_image *out, fsd_fuse_info *info) {
    memset(out, 0, sizeof *out);
    if (!a_lr || !b_lr) return fsd_fail(FSD_ERR_INVALID, "fuse: missing input image");
    int W, H;
    CK(fsd_fuse_output_size(a_lr->w, a_lr->h, b_lr->w, b_lr->h, scale, &W, &H, NULL, NULL));
    return fsd_fuse_run_size(m, a_lr, b_lr, W, H, opts, out, info);
}

/* ---------------------------------------------------------------- JSON */
static const char *role_name(int r) {
    return r == FSD_ROLE_LEAD ? "lead" : r == FSD_ROLE_FOLLOW ? "follow" : r == FSD_ROLE_NEUTRAL ? "neutral" : "none";
}

void fsd_fuse_info_json(FILE *fp, const fsd_fuse_info *i) {
    fprintf(fp, "{\"model\":");
    fsd_json_write_string(fp, i->model);
    fprintf(fp,
            ",\"inputs\":[{\"w\":%d,\"h\":%d,\"c\":%d,\"factor\":%d},{\"w\":%d,\"h\":%d,\"c\":%d,\"factor\":%d}]"
            ",\"output\":{\"w\":%d,\"h\":%d,\"c\":%d}",
            i->in_w[0], i->in_h[0], i->in_c[0], i->factor[0], i->in_w[1], i->in_h[1], i->in_c[1], i->factor[1],
            i->out_w, i->out_h, i->out_c);
    fprintf(fp, ",\"sampler\":\"%s\",\"steps\":%d,\"spacing\":\"%s\",\"eta\":%.17g,\"seed\":%llu",
            fsd_sampler_name(i->sampler), i->steps, fsd_spacing_name(i->spacing), i->eta, (unsigned long long)i->seed);
    fprintf(fp, ",\"residual_shrink\":%.17g", i->residual_shrink);
    fprintf(fp, ",\"context\":\"%s\"", i->context_external ? "file" : fsd_context_mode_name(i->context));
    fprintf(fp, ",\"tiling\":{\"tile\":%d,\"overlap\":%d,\"guard\":%d,\"tiles\":%d,\"align\":%d}", i->tile, i->overlap,
            i->guard, i->tiles, i->align);
    if (i->have_deg) {
        fprintf(fp, ",\"clarity\":[");
        for (int k = 0; k < 2; k++) {
            double d[3];
            for (int j = 0; j < 3; j++) d[j] = isfinite(i->deg[k][j]) ? i->deg[k][j] : 0.0;
            fprintf(fp, "%s{\"source\":\"%s\",\"log2_scale\":%.6g,\"blur\":%.6g,\"noise\":%.6g,\"role\":\"%s\"}",
                    k ? "," : "", k ? "b" : "a", d[0], d[1], d[2], role_name(i->roles[k]));
        }
        fprintf(fp, "]");
    } else {
        fprintf(fp, ",\"clarity\":null");
    }
    fprintf(fp,
            ",\"memory\":{\"estimate\":%zu,\"weights\":%zu,\"net_tile\":%zu,\"sampler\":%zu,\"images\":%zu,"
            "\"net_measured\":%zu}",
            i->mem_total, i->mem_weights, i->mem_net_tile, i->mem_sampler, i->mem_images, i->mem_net_measured);
    fprintf(fp, ",\"net_calls\":%lld,\"seconds\":%.6g,\"seconds_context\":%.6g,\"seconds_sampling\":%.6g}", i->net_calls,
            i->seconds, i->seconds_context, i->seconds_sampling);
}
