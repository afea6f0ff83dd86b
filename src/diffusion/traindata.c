/* Trainer data pipeline: 8-bit cache of (A, B, teacher) triples and deterministic batches.
 *
 * Every random choice is a Philox draw addressed by (seed, stream, index) with a stream that
 * names what is drawn (an epoch's permutation, a batch's crop size, a sample's parameters), so a
 * sample is a pure function of its global index i = k*B + b. */
#include "fsdiff/traindata.h"
#include "fsdiff/fusion.h"
#include "fsdiff/image.h"
#include "fsdiff/pairs.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Stream tags (bits 48..55): distinct kinds of draws never share a stream. fsd_rng uses the top
 * three bits of the stream for its own draw kinds, so tags stay below 2^56. */
#define TAG_PERM (1ull << 48)   /* | epoch: Fisher-Yates shuffle of the pairs */
#define TAG_BATCH (2ull << 48)  /* | k: crop size of batch k */
#define TAG_SAMPLE (3ull << 48) /* | i: everything about sample i */
#define IDX_MASK ((1ull << 48) - 1)

/* Indices of the per-sample uniform draws (stream TAG_SAMPLE | i). */
enum { D_X, D_Y, D_TRANSFORM, D_SCALE_A, D_SCALE_B, D_BLUR_P, D_BLUR_S = D_BLUR_P + 2, D_NOISE_P = D_BLUR_S + 2,
       D_NOISE_S = D_NOISE_P + 2 };

typedef struct td_pair {
    char *name;
    char *path[3]; /* A, B, teacher */
    int w, h, c[3];
    uint8_t *px[3]; /* planar c*h*w */
    double dark_share; /* of the HR pair, for "auto" (fsd_traindata_pair_dark_share) */
} td_pair;

struct fsd_traindata {
    fsd_traindata_config cfg;
    int n;
    td_pair *pairs;
    size_t cache_bytes;
    int64_t perm_epoch; /* epoch held in perm (-1: none) */
    int *perm;
};

void fsd_traindata_config_default(fsd_traindata_config *c) {
    memset(c, 0, sizeof *c);
    c->seed = 0;
    c->batch = 4;
    c->crop_sizes[0] = 64, c->crop_sizes[1] = 96, c->crop_sizes[2] = 128;
    c->n_crop_sizes = 3;
    c->align = 16;
    c->scales[0] = 2, c->scales[1] = 4, c->scales[2] = 8;
    c->n_scales = 3;
    c->augment = 1;
}

void fsd_td_batch_free(fsd_td_batch *b) {
    fsd_free(b->cond);
    fsd_free(b->x0);
    fsd_free(b->base);
    fsd_free(b->synth);
    fsd_free(b->plan);
    fsd_free((void *)b->names);
    memset(b, 0, sizeof *b);
}

static int gcd(int a, int b) {
    while (b) {
        int t = a % b;
        a = b;
        b = t;
    }
    return a;
}
static int lcm(int a, int b) { return a / gcd(a, b) * b; }

fsd_status fsd_traindata_config_validate(const fsd_traindata_config *c) {
    if (c->batch < 1) return fsd_fail(FSD_ERR_INVALID, "traindata: batch size %d must be >= 1", c->batch);
    if (c->align < 1) return fsd_fail(FSD_ERR_INVALID, "traindata: align %d must be >= 1", c->align);
    if ((c->whole_frame != 0 && c->whole_frame != 1) || (c->residual_base != 0 && c->residual_base != 1))
        return fsd_fail(FSD_ERR_INVALID, "traindata: whole_frame %d and residual_base %d must be 0 or 1", c->whole_frame,
                        c->residual_base);
    if ((int)c->base_method < 0 || c->base_method > FSD_FUSE_AUTO)
        return fsd_fail(FSD_ERR_INVALID, "traindata: unknown residual base method %d", (int)c->base_method);
    if (c->n_crop_sizes < 1 || c->n_crop_sizes > FSD_TD_MAX_SIZES)
        return fsd_fail(FSD_ERR_INVALID, "traindata: %d crop sizes (1..%d)", c->n_crop_sizes, FSD_TD_MAX_SIZES);
    if (c->n_scales < 1 || c->n_scales > FSD_TD_MAX_SCALES)
        return fsd_fail(FSD_ERR_INVALID, "traindata: %d scales (1..%d)", c->n_scales, FSD_TD_MAX_SCALES);
    int m = lcm(8, c->align), smax = 1;
    for (int j = 0; j < c->n_scales; j++) {
        if (c->scales[j] < 1 || c->scales[j] > 64)
            return fsd_fail(FSD_ERR_INVALID, "traindata: scale %d must be in 1..64", c->scales[j]);
        m = lcm(m, c->scales[j]);
        if (c->scales[j] > smax) smax = c->scales[j];
    }
    for (int j = 0; j < c->n_crop_sizes; j++) {
        int s = c->crop_sizes[j];
        if (s < 8 || s > 4096 || s % m)
            return fsd_fail(FSD_ERR_INVALID,
                            "traindata: crop size %d must be a multiple of %d (8, align %d and every scale) in 8..4096",
                            s, m, c->align);
        if (s / smax < FSD_DEGRADE_MIN_SIZE)
            return fsd_fail(FSD_ERR_INVALID, "traindata: crop size %d / scale %d is below the %d px LR minimum", s,
                            smax, FSD_DEGRADE_MIN_SIZE);
    }
    if (!(c->blur_p >= 0 && c->blur_p <= 1 && c->noise_p >= 0 && c->noise_p <= 1))
        return fsd_fail(FSD_ERR_INVALID, "traindata: blur/noise probabilities must be in [0, 1]");
    if (!(c->blur_max >= 0 && c->blur_max <= 1000 && c->noise_max >= 0 && c->noise_max <= 1000))
        return fsd_fail(FSD_ERR_INVALID, "traindata: blur/noise maxima must be in [0, 1000]");
    return FSD_OK;
}

/* ---------------------------------------------------------------- open: scan + decode */

static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* "<set>/<split>": the last two components of the resolved split folder. */
static fsd_status set_split_of(const char *dir, char *out, size_t n) {
    char *rp = realpath(dir, NULL);
    if (!rp) return fsd_fail(FSD_ERR_IO, "%s: cannot open: %s", dir, strerror(errno));
    char *last = strrchr(rp, '/');
    char *prev = NULL;
    if (last && last != rp) {
        *last = 0;
        prev = strrchr(rp, '/');
        *last = '/';
    }
    fsd_status s = FSD_OK;
    if (!last || !prev || !last[1])
        s = fsd_fail(FSD_ERR_INVALID, "%s: a split folder must be .../<set>/<split>", dir);
    else if ((size_t)snprintf(out, n, "%s", prev + 1) >= n)
        s = fsd_fail(FSD_ERR_INVALID, "%s: path too long", dir);
    free(rp);
    return s;
}

/* Float image (0..255) -> 8-bit planes, rounded half up and clipped (16-bit sources lose bits). */
static uint8_t *to_u8(const fsd_image *im) {
    size_t n = (size_t)im->w * im->h * im->c;
    uint8_t *p = fsd_alloc(n);
    if (!p) return NULL;
    for (size_t i = 0; i < n; i++) {
        float v = floorf(im->data[i] + 0.5f);
        p[i] = (uint8_t)(v < 0.f ? 0.f : v > 255.f ? 255.f : v);
    }
    return p;
}

/* luma of pixel q of an 8-bit planar source with c = 1 or 3 channels (BT.601, as the fusion wrappers) */
static double luma8(const uint8_t *px, int c, size_t hw, size_t q) {
    return c == 3 ? 0.299 * px[q] + 0.587 * px[hw + q] + 0.114 * px[2 * hw + q] : (double)px[q];
}

static double pair_dark_share(const td_pair *p) {
    const size_t hw = (size_t)p->w * p->h;
    size_t dark = 0;
    for (size_t q = 0; q < hw; q++) {
        double ya = luma8(p->px[0], p->c[0], hw, q), yb = luma8(p->px[1], p->c[1], hw, q);
        dark += (ya > yb ? ya : yb) < FSD_FUSE_DARK_LEVEL;
    }
    return hw ? (double)dark / (double)hw : 0.0;
}

/* Decodes one triple; message set on failure. */
static fsd_status load_pair(td_pair *p, int min_side) {
    static const char *what[3] = {"source A", "source B", "teacher target"};
    for (int m = 0; m < 3; m++) {
        fsd_image im;
        fsd_status s = fsd_image_load(p->path[m], &im);
        if (s) return s;
        if (m == 0) {
            p->w = im.w, p->h = im.h;
        } else if (im.w != p->w || im.h != p->h) {
            int w = im.w, h = im.h;
            fsd_image_free(&im);
            return fsd_fail(FSD_ERR_INVALID, "%s: %s of pair %s is %dx%d, but %s is %dx%d%s", p->path[m], what[m],
                            p->name, w, h, p->path[0], p->w, p->h,
                            m == 2 ? " (stale teacher target? rerun `fsdiff teacher --force`)" : "");
        }
        p->c[m] = im.c;
        p->px[m] = to_u8(&im);
        fsd_image_free(&im);
        if (!p->px[m]) return fsd_fail(FSD_ERR_NOMEM, "%s: out of memory for the image cache", p->path[m]);
    }
    if (p->w < min_side || p->h < min_side)
        return fsd_fail(FSD_ERR_INVALID, "%s: %dx%d is smaller than the largest crop size %d", p->path[0], p->w,
                        p->h, min_side);
    p->dark_share = pair_dark_share(p); /* once: every sample's residual base may ask */
    return FSD_OK;
}

void fsd_traindata_close(fsd_traindata *td) {
    if (!td) return;
    for (int i = 0; i < td->n; i++) {
        td_pair *p = &td->pairs[i];
        free(p->name);
        for (int m = 0; m < 3; m++) {
            free(p->path[m]);
            fsd_free(p->px[m]);
        }
    }
    free(td->pairs);
    free(td->perm);
    free(td);
}

fsd_status fsd_traindata_open(const char *const *dirs, int n_dirs, const char *teacher_dir,
                              const fsd_traindata_config *cfg, fsd_traindata **out) {
    *out = NULL;
    if (n_dirs < 1 || !dirs || !teacher_dir) return fsd_fail(FSD_ERR_INVALID, "traindata: no split folders given");
    fsd_traindata *td = calloc(1, sizeof *td);
    if (!td) return fsd_fail(FSD_ERR_NOMEM, "traindata: out of memory");
    td->perm_epoch = -1;
    int min_side = 0;
    if (cfg) {
        td->cfg = *cfg;
        fsd_status s = fsd_traindata_config_validate(cfg);
        if (s) {
            free(td);
            return s;
        }
        for (int j = 0; j < cfg->n_crop_sizes; j++)
            if (cfg->crop_sizes[j] > min_side) min_side = cfg->crop_sizes[j];
    } else {
        fsd_traindata_config_default(&td->cfg);
    }

    /* ---- scan: pairs of every split folder, teacher paths beside */
    fsd_status s = FSD_OK;
    int cap = 0;
    for (int d = 0; d < n_dirs && !s; d++) {
        char ss[1024];
        fsd_pair_set ps;
        if ((s = fsd_pairs_scan(dirs[d], &ps))) break;
        if ((s = set_split_of(dirs[d], ss, sizeof ss))) {
            fsd_pairs_free(&ps);
            break;
        }
        for (int i = 0; i < ps.n && !s; i++) {
            if (td->n == cap) {
                cap = cap ? 2 * cap : 256;
                td_pair *v = realloc(td->pairs, (size_t)cap * sizeof *v);
                if (!v) {
                    s = fsd_fail(FSD_ERR_NOMEM, "traindata: out of memory");
                    break;
                }
                td->pairs = v;
            }
            td_pair *p = &td->pairs[td->n++];
            memset(p, 0, sizeof *p);
            size_t L = strlen(teacher_dir) + strlen(ss) + strlen(ps.pairs[i].name) + 8;
            p->name = xstrdup(ps.pairs[i].name);
            p->path[0] = xstrdup(ps.pairs[i].path_a);
            p->path[1] = xstrdup(ps.pairs[i].path_b);
            p->path[2] = malloc(L);
            if (!p->name || !p->path[0] || !p->path[1] || !p->path[2]) {
                s = fsd_fail(FSD_ERR_NOMEM, "traindata: out of memory");
                break;
            }
            snprintf(p->path[2], L, "%s/%s/%s.png", teacher_dir, ss, p->name);
            struct stat st;
            if (stat(p->path[2], &st) != 0)
                s = fsd_fail(FSD_ERR_IO,
                             "%s: no teacher target for pair %s of %s (make them with `fsdiff teacher --data DATA "
                             "--out %s`)",
                             p->path[2], p->name, dirs[d], teacher_dir);
        }
        fsd_pairs_free(&ps);
    }
    if (!s && td->n == 0) s = fsd_fail(FSD_ERR_INVALID, "traindata: %s: no pairs", dirs[0]);
    if (s) {
        fsd_traindata_close(td);
        return s;
    }

    /* ---- decode all triples once, in parallel; report the first failing pair (in pair order) */
    int bad = INT_MAX;
    fsd_status bad_s = FSD_OK;
    char bad_msg[1024] = "";
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < td->n; i++) {
        int stop;
#pragma omp atomic read
        stop = bad;
        if (stop < i) continue;
        fsd_status ls = load_pair(&td->pairs[i], min_side);
        if (ls) {
#pragma omp critical(traindata_open)
            if (i < bad) {
                bad = i;
                bad_s = ls;
                snprintf(bad_msg, sizeof bad_msg, "%s", fsd_error_message());
            }
        }
    }
    if (bad != INT_MAX) {
        fsd_traindata_close(td);
        return fsd_fail(bad_s, "%s", bad_msg);
    }
    for (int i = 0; i < td->n; i++) {
        td_pair *p = &td->pairs[i];
        td->cache_bytes += (size_t)p->w * p->h * (p->c[0] + p->c[1] + p->c[2]);
    }
    td->perm = malloc((size_t)td->n * sizeof *td->perm);
    if (!td->perm) {
        fsd_traindata_close(td);
        return fsd_fail(FSD_ERR_NOMEM, "traindata: out of memory");
    }
    *out = td;
    return FSD_OK;
}

int fsd_traindata_n_pairs(const fsd_traindata *td) { return td->n; }
const char *fsd_traindata_pair_name(const fsd_traindata *td, int pair) { return td->pairs[pair].name; }
size_t fsd_traindata_cache_bytes(const fsd_traindata *td) { return td->cache_bytes; }
void fsd_traindata_pair_info(const fsd_traindata *td, int pair, int *w, int *h, int *ca, int *cb, int *ct) {
    const td_pair *p = &td->pairs[pair];
    if (w) *w = p->w;
    if (h) *h = p->h;
    if (ca) *ca = p->c[0];
    if (cb) *cb = p->c[1];
    if (ct) *ct = p->c[2];
}

double fsd_traindata_pair_dark_share(const fsd_traindata *td, int pair) { return td->pairs[pair].dark_share; }

fsd_fuse_method fsd_traindata_pair_method(const fsd_traindata *td, int pair, fsd_fuse_method m) {
    return m == FSD_FUSE_AUTO ? fsd_fuse_auto_pick(td->pairs[pair].dark_share) : m;
}

/* ---------------------------------------------------------------- plans */

/* floor(u * n) for u in [0, 1): an index in 0..n-1 */
static int pick(const fsd_rng *r, uint64_t idx, int n) {
    int v = (int)(fsd_rng_uniform1(r, idx) * n);
    return v < n ? v : n - 1;
}

/* Epoch e's order of the pairs: Fisher-Yates (from the end), draw m of stream TAG_PERM|e. */
static void make_perm(uint64_t seed, int64_t epoch, int n, int *perm) {
    fsd_rng r = {seed, TAG_PERM | ((uint64_t)epoch & IDX_MASK)};
    for (int j = 0; j < n; j++) perm[j] = j;
    for (int m = n - 1; m > 0; m--) {
        int q = pick(&r, (uint64_t)m, m + 1);
        int t = perm[m];
        perm[m] = perm[q];
        perm[q] = t;
    }
}

static int crop_size_of_batch(const fsd_traindata_config *c, int64_t k) {
    fsd_rng r = {c->seed, TAG_BATCH | ((uint64_t)k & IDX_MASK)};
    return c->crop_sizes[pick(&r, 0, c->n_crop_sizes)];
}

/* Plan of sample b of batch k, its pair given by the epoch permutation `perm` (epoch = i / N). */
static fsd_status plan_with_perm(const fsd_traindata *td, int64_t k, int b, const int *perm, fsd_td_plan *o) {
    const fsd_traindata_config *c = &td->cfg;
    int64_t i = k * c->batch + b;
    fsd_rng r = {c->seed, TAG_SAMPLE | ((uint64_t)i & IDX_MASK)};
    memset(o, 0, sizeof *o);
    o->index = i;
    o->pair = perm[i % td->n];
    o->size = crop_size_of_batch(c, k);
    const td_pair *p = &td->pairs[o->pair];
    if (p->w < o->size || p->h < o->size)
        return fsd_fail(FSD_ERR_INVALID, "%s: %dx%d is smaller than the crop size %d", p->path[0], p->w, p->h,
                        o->size);
    o->x = pick(&r, D_X, p->w - o->size + 1);
    o->y = pick(&r, D_Y, p->h - o->size + 1);
    o->transform = c->augment ? pick(&r, D_TRANSFORM, 8) : 0;
    for (int m = 0; m < 2; m++) {
        o->scale[m] = c->scales[pick(&r, D_SCALE_A + m, c->n_scales)];
        if (c->blur_p > 0 && fsd_rng_uniform1(&r, D_BLUR_P + 2 * m) < c->blur_p)
            o->blur[m] = c->blur_max * fsd_rng_uniform1(&r, D_BLUR_S + 2 * m);
        if (c->noise_p > 0 && fsd_rng_uniform1(&r, D_NOISE_P + 2 * m) < c->noise_p)
            o->noise[m] = c->noise_max * fsd_rng_uniform1(&r, D_NOISE_S + 2 * m);
        o->noise_seed[m] = ((uint64_t)fsd_rng_u32(&r, 2 * m) << 32) | fsd_rng_u32(&r, 2 * m + 1);
    }
    return FSD_OK;
}

fsd_status fsd_traindata_plan(const fsd_traindata *td, int64_t k, int b, fsd_td_plan *out) {
    if (k < 0 || k > (int64_t)(IDX_MASK / (uint64_t)td->cfg.batch) || b < 0 || b >= td->cfg.batch)
        return fsd_fail(FSD_ERR_INVALID, "traindata: sample %d of batch %lld out of range", b, (long long)k);
    int64_t epoch = (k * td->cfg.batch + b) / td->n;
    if (epoch == td->perm_epoch) return plan_with_perm(td, k, b, td->perm, out);
    int *perm = malloc((size_t)td->n * sizeof *perm);
    if (!perm) return fsd_fail(FSD_ERR_NOMEM, "traindata: out of memory");
    make_perm(td->cfg.seed, epoch, td->n, perm);
    fsd_status s = plan_with_perm(td, k, b, perm, out);
    free(perm);
    return s;
}

/* ---------------------------------------------------------------- sample synthesis */

/* Source pixel (row, col) of output (i, j) under transform t = F^f o R^r on an h x w output
 * (R: rot90 counter-clockwise, out[i][j] = in[j][S-1-i]; F: out[i][j] = in[i][S-1-j]). Rotations
 * by 90/270 degrees need a square region; the callers guarantee it (t = 0 otherwise). */
static inline void src_of(int t, int h, int w, int i, int j, int *si, int *sj) {
    if (t >> 2) j = w - 1 - j;
    switch (t & 3) {
    case 0: *si = i, *sj = j; break;
    case 1: *si = j, *sj = w - 1 - i; break;
    case 2: *si = h - 1 - i, *sj = w - 1 - j; break;
    default: *si = h - 1 - j, *sj = i; break;
    }
}

/* The w x h region at (x, y) of 8-bit planes (pw wide, ph high), transformed, into a float image. */
static void extract(const uint8_t *px, int c, int pw, int ph, int x, int y, int w, int h, int t, float *dst) {
    for (int ch = 0; ch < c; ch++) {
        const uint8_t *plane = px + (size_t)ch * ph * pw;
        for (int i = 0; i < h; i++)
            for (int j = 0; j < w; j++) {
                int si, sj;
                src_of(t, h, w, i, j, &si, &sj);
                dst[((size_t)ch * h + i) * w + j] = plane[(size_t)(y + si) * pw + (x + sj)];
            }
    }
}

/* 1 or 3 planes (0..255) -> 3 planes in [-1, 1]; a grey plane is written three times. */
static void to_unit3(const float *src, int c, size_t hw, float *dst) {
    for (int ch = 0; ch < 3; ch++) {
        const float *s = src + (size_t)(c == 3 ? ch : 0) * hw;
        float *d = dst + (size_t)ch * hw;
        for (size_t q = 0; q < hw; q++) d[q] = s[q] / 127.5f - 1.0f;
    }
}

/* The w x h region at (x, y) of a float image (0..255; grey or RGB), transformed, into 3 planes in
 * [-1, 1] (grey replicated); clamp: clip to 0..255 first (a fusion's output). */
static void cut_unit3(const fsd_image *im, int x, int y, int w, int h, int t, int clamp, float *dst) {
    for (int ch = 0; ch < 3; ch++) {
        const float *plane = im->data + (size_t)(im->c == 3 ? ch : 0) * im->h * im->w;
        for (int i = 0; i < h; i++)
            for (int j = 0; j < w; j++) {
                int si, sj;
                src_of(t, h, w, i, j, &si, &sj);
                float v = plane[(size_t)(y + si) * im->w + (x + sj)];
                if (clamp) v = v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v;
                dst[((size_t)ch * h + i) * w + j] = v / 127.5f - 1.0f;
            }
    }
}

/* Sample: cond (6, h, w), x0 (3, h, w) from pair p at (x, y, w, h, transform t) with the
 * degradation of each modality given by the plan fields. whole: degrade and upsample the whole HR
 * frame and cut the crop from it (what `fsdiff fuse` conditions a tile of its input on); else the
 * crop itself is degraded. base (whole only; NULL: none): the crop of the "upsample then fuse"
 * fusion of the whole upsampled frame with method m, as fsdiff fuse's residual base is made. */
static fsd_status make_sample(const td_pair *p, int x, int y, int w, int h, const fsd_td_plan *pl, int whole,
                              fsd_fuse_method m_base, float *cond, float *x0, float *base) {
    fsd_status s = FSD_OK;
    fsd_image hr = {0}, lr = {0}, up[2] = {{0}}, f = {0};
    const size_t hw = (size_t)w * h;
    const int fw = whole ? p->w : w, fh = whole ? p->h : h;
    for (int m = 0; m < 2 && !s; m++) {
        if ((s = fsd_image_alloc(&hr, fw, fh, p->c[m]))) break;
        if (whole) extract(p->px[m], p->c[m], p->w, p->h, 0, 0, fw, fh, 0, hr.data);
        else extract(p->px[m], p->c[m], p->w, p->h, x, y, w, h, pl->transform, hr.data);
        fsd_degrade_params dp = {(double)pl->scale[m], pl->blur[m], pl->noise[m], pl->noise_seed[m]};
        if (!(s = fsd_degrade(&hr, &dp, &lr)) && !(s = fsd_image_resize_bicubic(&lr, fw, fh, 1, &up[m]))) {
            if (whole) cut_unit3(&up[m], x, y, w, h, pl->transform, 0, cond + (size_t)m * 3 * hw);
            else to_unit3(up[m].data, up[m].c, hw, cond + (size_t)m * 3 * hw);
        }
        fsd_image_free(&hr);
        fsd_image_free(&lr);
    }
    if (!s && whole && base) {
        fsd_fuse_params prm;
        fsd_fuse_params_default(&prm);
        if (!(s = fsd_fuse_images(m_base, &prm, &up[0], &up[1], &f))) cut_unit3(&f, x, y, w, h, pl->transform, 1, base);
        fsd_image_free(&f);
    }
    fsd_image_free(&up[0]);
    fsd_image_free(&up[1]);
    if (!s && !(s = fsd_image_alloc(&hr, w, h, p->c[2]))) {
        extract(p->px[2], p->c[2], p->w, p->h, x, y, w, h, pl->transform, hr.data);
        to_unit3(hr.data, hr.c, hw, x0);
        fsd_image_free(&hr);
    }
    return s;
}


static fsd_status batch_reserve(fsd_td_batch *b, int n, int w, int h) {
    size_t px = (size_t)n * w * h;
    if (px > b->cap_px) {
        fsd_free(b->cond);
        fsd_free(b->x0);
        fsd_free(b->base);
        b->cond = fsd_alloc(px * 6 * sizeof(float));
        b->x0 = fsd_alloc(px * 3 * sizeof(float));
        b->base = fsd_alloc(px * 3 * sizeof(float));
        b->cap_px = b->cond && b->x0 && b->base ? px : 0;
        if (!b->cap_px) return fsd_fail(FSD_ERR_NOMEM, "traindata: out of memory for a %dx%dx%d batch", n, w, h);
    }
    if ((size_t)n > b->cap_n) {
        fsd_free(b->synth);
        fsd_free(b->plan);
        fsd_free((void *)b->names);
        b->synth = fsd_alloc((size_t)n * 6 * sizeof(float));
        b->plan = fsd_alloc((size_t)n * sizeof *b->plan);
        b->names = fsd_alloc((size_t)n * sizeof *b->names);
        b->cap_n = b->synth && b->plan && b->names ? (size_t)n : 0;
        if (!b->cap_n) return fsd_fail(FSD_ERR_NOMEM, "traindata: out of memory");
    }
    b->n = n, b->w = w, b->h = h;
    b->has_base = 0;
    return FSD_OK;
}

static void fill_synth(fsd_td_batch *b, int q) {
    const fsd_td_plan *pl = &b->plan[q];
    for (int m = 0; m < 2; m++) {
        float *sy = b->synth + (size_t)q * 6 + 3 * m;
        sy[0] = (float)log2((double)pl->scale[m]);
        sy[1] = (float)pl->blur[m];
        sy[2] = (float)pl->noise[m];
    }
}

fsd_status fsd_traindata_batch(fsd_traindata *td, int64_t k, fsd_td_batch *out) {
    return fsd_traindata_batch_range(td, k, 0, td->cfg.batch, out);
}

fsd_status fsd_traindata_batch_range(fsd_traindata *td, int64_t k, int first, int count, fsd_td_batch *out) {
    const int B = td->cfg.batch;
    if (first < 0 || count < 1 || first > B - count)
        return fsd_fail(FSD_ERR_INVALID, "traindata: samples [%d, %d) outside the batch of %d", first, first + count, B);
    if (k < 0 || k > (int64_t)(IDX_MASK / (uint64_t)B))
        return fsd_fail(FSD_ERR_INVALID, "traindata: batch index %lld out of range", (long long)k);
    int S = crop_size_of_batch(&td->cfg, k);
    fsd_status s = batch_reserve(out, count, S, S);
    if (s) return s;
    /* plans serially (the permutation cache is shared), images in parallel */
    for (int j = 0; j < count; j++) {
        int b = first + j;
        int64_t epoch = (k * B + b) / td->n;
        if (epoch != td->perm_epoch) {
            make_perm(td->cfg.seed, epoch, td->n, td->perm);
            td->perm_epoch = epoch;
        }
        if ((s = plan_with_perm(td, k, b, td->perm, &out->plan[j]))) return s;
        out->names[j] = td->pairs[out->plan[j].pair].name;
        fill_synth(out, j);
    }
    const size_t hw = (size_t)S * S;
    const int with_base = td->cfg.whole_frame && td->cfg.residual_base;
    int bad = INT_MAX;
    fsd_status bad_s = FSD_OK;
    char bad_msg[1024] = "";
#pragma omp parallel for schedule(dynamic, 1)
    for (int b = 0; b < count; b++) {
        const fsd_td_plan *pl = &out->plan[b];
        fsd_status ls = make_sample(&td->pairs[pl->pair], pl->x, pl->y, S, S, pl, td->cfg.whole_frame,
                                    fsd_traindata_pair_method(td, pl->pair, td->cfg.base_method), out->cond + (size_t)b * 6 * hw,
                                    out->x0 + (size_t)b * 3 * hw, with_base ? out->base + (size_t)b * 3 * hw : NULL);
        if (ls) {
#pragma omp critical(traindata_batch)
            if (b < bad) {
                bad = b;
                bad_s = ls;
                snprintf(bad_msg, sizeof bad_msg, "%s", fsd_error_message());
            }
        }
    }
    if (bad != INT_MAX) return fsd_fail(bad_s, "traindata: batch %lld: %s", (long long)k, bad_msg);
    out->has_base = with_base;
    (void)B;
    return FSD_OK;
}

/* ---------------------------------------------------------------- validation */

int fsd_traindata_val_pick(const fsd_traindata *td, int n, int j) {
    if (n > td->n) n = td->n;
    if (n < 1) n = 1;
    return (int)((int64_t)j * td->n / n);
}

fsd_status fsd_traindata_val(fsd_traindata *td, int pair, int scale_a, int scale_b, int crop, fsd_td_batch *out) {
    if (pair < 0 || pair >= td->n) return fsd_fail(FSD_ERR_INVALID, "traindata: val pair %d out of range", pair);
    if (scale_a < 1 || scale_a > 64 || scale_b < 1 || scale_b > 64)
        return fsd_fail(FSD_ERR_INVALID, "traindata: val scales %d, %d must be in 1..64", scale_a, scale_b);
    const td_pair *p = &td->pairs[pair];
    int m = lcm(lcm(8, td->cfg.align), lcm(scale_a, scale_b));
    int w, h;
    if (crop > 0) {
        if (crop % m)
            return fsd_fail(FSD_ERR_INVALID, "traindata: val crop %d must be a multiple of %d (8, align %d, scales)",
                            crop, m, td->cfg.align);
        if (crop > p->w || crop > p->h)
            return fsd_fail(FSD_ERR_INVALID, "%s: %dx%d is smaller than the val crop %d", p->path[0], p->w, p->h,
                            crop);
        w = h = crop;
    } else {
        w = p->w / m * m;
        h = p->h / m * m;
        if (w < 1 || h < 1)
            return fsd_fail(FSD_ERR_INVALID, "%s: %dx%d is smaller than %d", p->path[0], p->w, p->h, m);
    }
    fsd_status s = batch_reserve(out, 1, w, h);
    if (s) return s;
    fsd_td_plan *pl = &out->plan[0];
    memset(pl, 0, sizeof *pl);
    pl->index = -1;
    pl->pair = pair;
    pl->x = (p->w - w) / 2;
    pl->y = (p->h - h) / 2;
    pl->size = w == h ? w : 0;
    pl->scale[0] = scale_a, pl->scale[1] = scale_b;
    out->names[0] = p->name;
    fill_synth(out, 0);
    const int with_base = td->cfg.whole_frame && td->cfg.residual_base;
    s = make_sample(p, pl->x, pl->y, w, h, pl, td->cfg.whole_frame, fsd_traindata_pair_method(td, pair, td->cfg.base_method), out->cond, out->x0,
                    with_base ? out->base : NULL);
    if (!s) out->has_base = with_base;
    return s;
}
