/* conv2d forward/backward, NCHW float32, PyTorch weight layout [Cout, Cin, k, k].
 *
 * Two algorithms, both parallel over independent pieces of the output with one single-threaded sgemm
 * per piece (the OpenMP build of OpenBLAS runs sgemm single-threaded inside our parallel region, so
 * each core works on its own cache-sized piece with no fork/join inside the GEMM):
 *
 *  1. im2col + sgemm, any kernel/stride/padding. The output is cut into "tasks": bands of output
 *     rows of one image when an image is large, whole groups of images when images are small (so the
 *     GEMM still has enough columns: the whole minibatch in one GEMM at 16x16). A band's im2col
 *     matrix col [Cin*k*k, n] stays in L2 instead of a 38 MB whole-image matrix at 128x128.
 *     1x1 stride-1 convs skip im2col: the input plane [Cin, HW] already is the GEMM operand.
 *     Stride 2 copies each channel's input rows once into a padded block and gathers from there.
 *     Backward per task: dW += dout_band . col^T (per-thread dW, reduced at the end), dcol =
 *     W^T . dout_band, col2im into dx. Neighbouring bands of one image overlap in dx (k > stride),
 *     so even bands run first, then odd bands (bands are at least ceil(k/s)-1 rows, which makes
 *     bands two apart disjoint).
 *
 *  2. Winograd F(2x2, 3x3) for 3x3 stride 1 pad 1: Y = A^T [ (G g G^T) .* (B^T d B) ] A on 4x4
 *     input tiles at stride 2, i.e. 16 GEMMs [Cout,Cin] x [Cin,tiles] with 16/36 of the direct
 *     multiplies. On the 2-core Zen 4 this was tuned on, sgemm peaks at ~200 GFLOP/s while oneDNN's
 *     direct conv reaches ~200-230, so im2col (~85-90 % of sgemm) cannot match PyTorch; Winograd can.
 *     Backward: dW from the adjoint in the Winograd domain, dU = sum_tiles (A dY A^T) .* V and
 *     dW = G^T dU G, on team-wide chunks where each of the 16 GEMMs dU[xi] += dM[xi] . V[xi]^T is
 *     owned by one thread (no per-thread copies of dU, deterministic order); dx by the forward
 *     algorithm on dout with the flipped, transposed kernel (each dx tile has one writer).
 *     F(2x2,3x3) keeps float32 rounding close to the direct method (transform entries are 0, +-1,
 *     +-1/2), unlike F(4x4,3x3).
 *
 *  3. Polyphase Winograd for 3x3 stride 2 pad 1 (the Downsample convs): 25 GEMMs per 2x2 output tile
 *     instead of 36 multiplies, on the machinery of 2. (derivation at wino_s2_*).
 *
 *  4. Direct 3x3 pad 1 (direct_*): our own tile kernel, 4 output channels x 4 runs of 16 pixels in 16
 *     accumulators with AVX-512 (4 x 3 runs of 8 with AVX, of 4 with SSE), over input "planes" in
 *     which every tap of a run is a contiguous load. Used forward for few input channels (conv_in)
 *     and most stride-2 convs, and (AVX-512 builds) for the stride-2 backward
 *     (dW by broadcasting input values against dout^T, dx by its 4 polyphase parts). sgemm's ~90 % of
 *     the FMA peak plus im2col's copies could not match oneDNN's direct convs at 95 % (bench/RESULTS.md);
 *     this kernel runs at 95-99 % of the peak when its planes are cache-resident.
 */
#include "fsdiff/ops_conv.h"

#include "am_vec.h"

#include <cblas.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

static fsd_conv_algo g_algo = FSD_CONV_AUTO;

void fsd_conv2d_set_algo(fsd_conv_algo a) { g_algo = a; }
fsd_conv_algo fsd_conv2d_get_algo(void) { return g_algo; }

/* Scratch targets (bytes per thread), chosen by measurement with bench/ops on a 2-core Zen 4
 * (1 MiB L2 per core, 32 MiB L3); results within noise for 0.25-4 MiB, worse beyond 16 MiB:
 * a band's col matrix and a Winograd chunk's transformed tiles. */
#define GEMM_COL_BYTES (1u << 20)
#define GEMM_COL_BYTES_BWD (4u << 20) /* backward: larger K for the dW GEMM, fewer dW read/writes */
#define WINO_CHUNK_BYTES (3u << 19)

typedef struct conv_plan {
    int B, Cin, H, W, Cout, k, s, pad, Ho, Wo, P, Ckk;
    int nt;     /* threads */
    int wino;   /* 1: Winograd F(2x2,3x3); 2: polyphase Winograd for stride 2 (see wino_s2_*) */
    int nxi;    /* Winograd-domain points per tile: 16 (stride 1) or 25 (stride 2) */
    int direct; /* 1x1 stride 1 pad 0: input plane is the GEMM operand */
    int dir;    /* direct 3x3 forward (direct_*): tasks are bands of `rows` rows, planes of row stride drs */
    int drs;
    /* im2col path: tasks are bands of `rows` output rows (bands per image) or groups of `group` images */
    int group, rows, bands, ntasks, ncols;
    /* Winograd path: tiles th x tw per image; chunks are runs of tile rows over all B*th rows */
    int th, tw, nchunks, tc;   /* per-thread chunks (forward, dx): at most tc = rows*tw tiles */
    int nchw, tcw;             /* team-wide chunks of the dW pass: at most tcw tiles */
} conv_plan;

static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }
static int cdiv(int a, int b) { return (a + b - 1) / b; }
/* Rows [*r0, *r1) of chunk c when R rows are cut into n near-equal chunks. */
static void chunk_rows(int R, int n, int c, int *r0, int *r1) {
    *r0 = (int)((int64_t)c * R / n), *r1 = (int)((int64_t)(c + 1) * R / n);
}

/* Algorithm of the forward (backward) pass for a shape under the current setting: FSD_CONV_WINOGRAD (3x3 s1
 * p1), FSD_CONV_WINOGRAD_S2 (3x3 s2 p1), FSD_CONV_DIRECT (3x3 p1 s1/s2, forward only) or FSD_CONV_IM2COL.
 * A forced algorithm that does not apply to the shape falls back to im2col; forced direct leaves the
 * backward pass to the AUTO choice. */
/* Direct 3x3 tile geometry (the kernel is below, "direct 3x3, pad 1"). */
#define DIRECT_CO 4 /* output channels per tile */
/* Runs of DIRECT_LANES pixels, one vector register each: 16 lanes (zmm) with AVX-512, where 4 x 6
 * accumulators, 6 operands and a broadcast take 31 of the 32 registers (4 x 4 ran 5-15 % slower on
 * an Intel Xeon at 64x128^2 and 128x64^2 stride 2, the same at 256x32^2); 8 lanes (ymm) with AVX, 4 (xmm) with SSE
 * only (portable builds), where 4 x 3 accumulators, 3 operands and a broadcast fill the 16 registers.
 * The vector must be one register: GCC lowers a wider GNU vector through the stack. */
#if AM_V16_NATIVE
#define DIRECT_LANES 16
#define DIRECT_NV 6 /* runs per tile */
typedef am_v16 direct_vec;
#elif defined(__AVX__)
#define DIRECT_LANES 8
#define DIRECT_NV 3
typedef float direct_vec __attribute__((vector_size(32)));
#else
#define DIRECT_LANES 4
#define DIRECT_NV 3
typedef float direct_vec __attribute__((vector_size(16)));
#endif
/* AUTO takes the direct forward only with 8+ lanes and FMA: the BLAS picks its kernels at run time
 * (DYNAMIC_ARCH), this file at build time, so a portable (SSE2) build's 4-lane tiles ran at 41 GFLOP/s
 * against im2col's 110-125 on the Zen 3. */
#if DIRECT_LANES >= 8 && defined(__FMA__)
#define DIRECT_FWD_AUTO 1
#else
#define DIRECT_FWD_AUTO 0
#endif

/* The direct stride-2 backward keeps 16-lane GNU vectors in registers (dW: 18 accumulators): AUTO
 * takes it only where those are one register (AM_V16_NATIVE, am_vec.h; on a Zen 3 with AVX2 it ran at
 * 0.2-0.4x PyTorch); forcing FSD_CONV_DIRECT still runs it anywhere. The forward tile kernel has
 * narrower forms (DIRECT_LANES). */
/* The algorithm choice may depend on the CPU but never changes within a process: the same machine always
 * computes the same floats. */
static int cpu_is_intel(void) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_is("intel") ? 1 : 0;
    }
    return cached;
#else
    return 0;
#endif
}

#define FEWOUT_MAX 4 /* the stride-1 direct backward: at most this many output channels */
static fsd_conv_algo pick_algo(int Cin, int H, int W, int Cout, int k, int s, int pad, int backward) {
    const int s1 = k == 3 && s == 1 && pad == 1, s2 = k == 3 && s == 2 && pad == 1;
    /* direct's int tap offsets span a whole image's planes (and D): far beyond any practical size */
    const int direct_fits = (int64_t)imax(Cin, Cout) * (H + 2) * (W + 2) < INT32_MAX / 8;
    const int direct_bwd = ((s2 && Cout % 16 == 0) || (s1 && Cout <= FEWOUT_MAX)) && direct_fits;
    const int direct_bwd_auto = direct_bwd && AM_V16_NATIVE;
    if (g_algo == FSD_CONV_DIRECT && (!(s1 || s2) || !direct_fits)) return FSD_CONV_IM2COL;
    if (g_algo == FSD_CONV_DIRECT && (!backward || direct_bwd)) return FSD_CONV_DIRECT;
    if (g_algo == FSD_CONV_IM2COL) return FSD_CONV_IM2COL;
    if (g_algo == FSD_CONV_WINOGRAD) return s1 ? FSD_CONV_WINOGRAD : FSD_CONV_IM2COL;
    if (g_algo == FSD_CONV_WINOGRAD_S2) return s2 ? FSD_CONV_WINOGRAD_S2 : FSD_CONV_IM2COL;
    /* AUTO (measured with bench/ops, 2-core Zen 4, B = 4). Direct needs output rows that fill its
     * runs: Wo >= 16 with at most a quarter of the lanes wasted (measured there only). On a 2-core Zen 3
     * (AVX2, 8-lane direct) the same forward choices measured best: 64x128^2 s2 direct 11.1 vs Winograd
     * 11.6 ms, 256x32^2 s2 direct 9.0 vs im2col 9.3, 128x64^2 s2 Winograd 9.2 vs direct 9.8, conv_in
     * direct 4.3 vs im2col 6.4. */
    const int Wo = fsd_conv2d_out_size(W, k, s, pad),
              lanes_ok = Wo >= 16 && 4 * Wo >= 3 * DIRECT_LANES * cdiv(Wo, DIRECT_LANES) && direct_fits && DIRECT_FWD_AUTO;
    /* Stride 1: Winograd wins whenever Cin >= 16 (1.3-2.3x PyTorch). With few input channels (conv_in
     * 9->64) the transforms dominate; there direct runs at ~200 GFLOP/s forward (3.3-3.5 ms vs im2col's
     * 4.4) and im2col is ~35% faster than Winograd backward. With few output channels (final 64->3)
     * Winograd was 1.5x faster than im2col backward (both now give way to the direct paths below). */
    /* Few output channels (the final 32/64 -> 3 conv): Winograd's input transform, paid per input channel,
     * is shared by too few outputs; direct forward 32x480x640 -> 3 6.0-6.4 vs 16.1-17.2 ms, -> 16 21.1-22.4
     * vs 24.7-25.1, 64x128^2 -> 3 2.0 vs 6.6-7.3 (Zen 3 AVX2, 2026-12-08; not measured with AVX-512). */
    if (s1 && lanes_ok && !backward && Cout <= 16) return FSD_CONV_DIRECT;
    /* and its backward with at most FEWOUT_MAX outputs (fewout_backward): 64x128^2 -> 3 5.3-5.7 vs 15.9 ms
     * (Winograd; PyTorch 10.8-11.3), 32x480x640 -> 3 13.2-13.3 vs 50 ms (PyTorch 28-72), Zen 3 */
    if (s1 && lanes_ok && backward && Cout <= FEWOUT_MAX) return FSD_CONV_DIRECT;
    if (s1 && Cin >= 16 && H >= 4 && W >= 4) return FSD_CONV_WINOGRAD;
    if (s1 && lanes_ok && !backward) return FSD_CONV_DIRECT;
    /* Stride 2, forward: direct beats the polyphase Winograd at 64x128^2 (6.2 vs 6.8 ms) and im2col at
     * 256x32^2 (5.3-5.6 vs 7.2 ms; Winograd's transforms run on too-short rows there); Winograd wins at
     * 128x64^2 (5.2-5.4 vs 5.6 ms). Backward (Cout % 16 == 0): direct beats Winograd at 64x128^2 (13.6-14.7
     * vs 17.3 ms) and 128x64^2 (11.9-12.2 vs 13.1-13.8) and im2col at 256x32^2 (11.6-11.8 vs 14.1-14.7);
     * otherwise Winograd is 1.1-1.2x faster than im2col at 64x128^2 and 128x64^2. */
    /* Intel AVX-512 cores (2-core Xeon model 207, Emerald Rapids, OpenBLAS SkylakeX; bench/ops side by side
     * with PyTorch, two runs each): the stride-2 backward through im2col beats the direct one up to 128
     * input channels, 64x128^2 18.8-19.3 vs 21.6-22.6 ms, 128x64^2 15.4-15.6 vs 18.9-19.6 ms; forward the
     * two tie (8.5-9.0 vs 8.4-8.5 ms) and direct keeps it; with the 4 x 6 tiles direct also beats the
     * polyphase Winograd forward at 128x64^2 (174-178 vs 138-158 GFLOP/s). Zen 3 (AVX2, 2026-12-08, 6
     * interleaved runs each): the stride-2 backward through im2col beats the polyphase Winograd too,
     * 64x128^2 117-124 vs 74-106 GFLOP/s, 128x64^2 140-148 vs 99-139; forward the three tie at 128x64^2. */
    const int intel16 = AM_V16_NATIVE && cpu_is_intel();
    if (s2 && backward && (intel16 || !AM_V16_NATIVE) && Cin <= 128) return FSD_CONV_IM2COL;
    if (s2 && lanes_ok && !backward && (Cin <= 64 || Wo <= 16 || intel16)) return FSD_CONV_DIRECT;
    if (backward && direct_bwd_auto && lanes_ok) return FSD_CONV_DIRECT;
    if (s2 && Cin >= 16 && (W + 1) / 2 >= 32 && H >= 8) return FSD_CONV_WINOGRAD_S2;
    return FSD_CONV_IM2COL;
}

fsd_conv_algo fsd_conv2d_algo_for(int B, int Cin, int H, int W, int Cout, int k, int stride, int pad) {
    (void)B;
    return pick_algo(Cin, H, W, Cout, k, stride, pad, 0);
}
fsd_conv_algo fsd_conv2d_backward_algo_for(int B, int Cin, int H, int W, int Cout, int k, int stride, int pad) {
    (void)B;
    return pick_algo(Cin, H, W, Cout, k, stride, pad, 1);
}

static void direct_plan(conv_plan *p);
static fsd_status make_plan(conv_plan *p, int B, int Cin, int H, int W, int Cout, int k, int s, int pad,
                            int backward) {
    memset(p, 0, sizeof *p);
    if (B < 1 || Cin < 1 || H < 1 || W < 1 || Cout < 1 || k < 1 || s < 1 || pad < 0 || pad >= k)
        return fsd_fail(FSD_ERR_INVALID, "conv2d: bad shape B=%d Cin=%d H=%d W=%d Cout=%d k=%d stride=%d pad=%d",
                        B, Cin, H, W, Cout, k, s, pad);
    int Ho = fsd_conv2d_out_size(H, k, s, pad), Wo = fsd_conv2d_out_size(W, k, s, pad);
    if (H + 2 * pad < k || W + 2 * pad < k || Ho < 1 || Wo < 1)
        return fsd_fail(FSD_ERR_INVALID, "conv2d: kernel %d larger than padded input %dx%d (pad %d)", k, H, W, pad);
    /* GEMM dimensions and element offsets must fit in int (BLAS) / size_t. */
    if ((int64_t)Cin * k * k > INT32_MAX / 64 || (int64_t)H * W > INT32_MAX / 64 || (int64_t)Cout * Cin > INT32_MAX / 64)
        return fsd_fail(FSD_ERR_INVALID, "conv2d: shape too large");
    p->B = B, p->Cin = Cin, p->H = H, p->W = W, p->Cout = Cout, p->k = k, p->s = s, p->pad = pad;
    p->Ho = Ho, p->Wo = Wo, p->P = Ho * Wo, p->Ckk = Cin * k * k;
    p->nt = omp_get_max_threads();
    if (p->nt < 1) p->nt = 1;
    const int nt = p->nt;

    const fsd_conv_algo algo = pick_algo(Cin, H, W, Cout, k, s, pad, backward);
    if (algo == FSD_CONV_DIRECT) {
        p->dir = !backward ? 1 : s == 1 ? 3 : 2;
        if (!backward) direct_plan(p);
        return FSD_OK;
    }
    if (algo == FSD_CONV_WINOGRAD || algo == FSD_CONV_WINOGRAD_S2) {
        p->wino = algo == FSD_CONV_WINOGRAD ? 1 : 2;
        p->nxi = p->wino == 1 ? 16 : 25;
        p->th = cdiv(Ho, 2), p->tw = cdiv(Wo, 2); /* both: 2x2 output tiles */
        const int R = B * p->th;
        /* tiles per chunk so that the two transformed-tile buffers fill WINO_CHUNK_BYTES */
        const size_t per_tile = (size_t)p->nxi * 2 * imax(Cin, Cout) * sizeof(float);
        int tc = (int)(WINO_CHUNK_BYTES / per_tile);
        int tr = imax(1, tc / p->tw);
        /* a multiple of nt chunks of near-equal size (chunk_rows), so the static schedule is balanced */
        int nch = imin(R, cdiv(cdiv(R, tr), nt) * nt);
        p->nchunks = nch, p->tc = cdiv(R, nch) * p->tw;
        /* dW pass: about nt per-thread chunks per team chunk, so its tiles fit the same buffers */
        p->nchw = cdiv(nch, nt), p->tcw = cdiv(R, p->nchw) * p->tw;
        return FSD_OK;
    }

    p->direct = (k == 1 && s == 1 && pad == 0);
    /* columns per task: fill GEMM_COL_BYTES of col, but leave at least one task per thread */
    const int64_t total = (int64_t)B * p->P;
    const int64_t colbytes = backward ? GEMM_COL_BYTES_BWD : GEMM_COL_BYTES;
    int64_t cols = colbytes / ((int64_t)p->Ckk * sizeof(float));
    cols = cols < 64 ? 64 : cols;
    int64_t fair = (total + nt - 1) / nt;
    if (cols > fair) cols = fair;
    /* 1x1 direct: grouping images costs a gather of x and dout and a scatter of dx; only worth it
     * when an image alone gives too few GEMM columns */
    if (p->direct && p->P >= 256 && cols > p->P) cols = p->P;
    if (cols >= p->P) { /* whole images per task, a multiple of nt tasks where B allows */
        int g = (int)imin(B, (int)(cols / p->P));
        int nt_ = imin(B, cdiv(cdiv(B, g), nt) * nt);
        p->group = cdiv(B, nt_);
        p->rows = Ho, p->bands = 1;
        p->ntasks = cdiv(B, p->group);
        p->ncols = p->group * p->P;
    } else { /* bands of rows; bands two apart must not overlap in dx: rows >= ceil(k/s) - 1 */
        int minrows = imax(1, cdiv(k, s) - 1);
        p->group = 0;
        const int rows0 = imin(Ho, imax(minrows, (int)(cols / Wo)));
        p->rows = rows0;
        /* balance the static schedule: the largest rows in [rows0/2, rows0] giving a multiple of nt tasks */
        for (int r = rows0; r >= imax(minrows, rows0 / 2); r--)
            if ((B * cdiv(Ho, r)) % nt == 0) {
                p->rows = r;
                break;
            }
        p->bands = cdiv(Ho, p->rows);
        p->ntasks = B * p->bands;
        p->ncols = p->rows * Wo;
    }
    return FSD_OK;
}

/* Per-thread and shared scratch of each path, in floats. */
/* im2col per-thread block: col [Ckk, ncols], tmp [Cout, ncols] (image groups only), row buffers for
 * the stride-2 (de)interleave, then (backward) a private dW [Cout, Ckk]. */
typedef struct gemm_scratch {
    float *col, *tmp, *rows, *dwp;
} gemm_scratch;
static size_t gemm_rows_floats(const conv_plan *p) { /* the stride-2 block of a task's rows */
    const int nrows = p->group > 0 ? p->Ho : p->rows;
    return p->s == 2 ? (size_t)(2 * (nrows - 1) + p->k) * (2 * (p->Wo + p->k)) + 32 : 32;
}
static size_t gemm_thread_floats(const conv_plan *p, int backward) {
    size_t col = (size_t)p->Ckk * p->ncols;
    size_t tmp = p->group > 1 ? (size_t)p->Cout * p->ncols : 0;
    size_t dwp = backward ? (size_t)p->Cout * p->Ckk : 0;
    return col + tmp + gemm_rows_floats(p) + dwp + 64; /* +64: slack */
}
static gemm_scratch gemm_split(const conv_plan *p, float *base, int tid, int backward) {
    gemm_scratch g;
    g.col = base + (size_t)tid * gemm_thread_floats(p, backward);
    g.tmp = g.col + (size_t)p->Ckk * p->ncols;
    g.rows = g.tmp + (p->group > 1 ? (size_t)p->Cout * p->ncols : 0);
    g.dwp = g.rows + gemm_rows_floats(p);
    return g;
}
/* Stride between the 16 xi-slices of a transformed-tile buffer [16][C][ld]: padded by 32 floats so
 * the 16 streams the transforms read/write are not all 4 KiB apart (C*ld is usually a power of two;
 * without the pad they alias in L1 and the 128x128 case ran 2x slower). */
static size_t xi_stride(int C, int ld) { return (size_t)C * ld + 32; }
/* Winograd scratch: per thread two tile buffers [16][max(Cin,Cout)][tc] and row buffers (padded input
 * rows [4][2tw+2] whose zero padding stays intact, output rows [2][2tw]); shared: the transformed
 * kernel U [16][Cout][Cin] (forward; U' for dx) and dU [16][Cout][Cin] (dW). The backward dW pass
 * works on team-wide chunks of about nt per-thread chunks and reuses all threads' tile buffers as one. */
static size_t wino_buf_floats(const conv_plan *p) { return p->nxi * xi_stride(imax(p->Cin, p->Cout), p->tc); }
/* stride 1: padded input rows [4][2tw+2], output rows [2][2tw]; stride 2: see wino_s2_input/output */
static size_t wino_rows_floats(const conv_plan *p) {
    if (p->wino == 2) return (size_t)48 * (p->tw + 1) + 64;
    return (size_t)4 * (2 * p->tw + 2) + (size_t)4 * p->tw + 64;
}
static size_t wino_thread_floats(const conv_plan *p) { return 2 * wino_buf_floats(p) + 64; }
typedef struct wino_scratch {
    float *U, *dU, *tiles, *rows;
} wino_scratch;
static size_t wino_scratch_floats(const conv_plan *p, int need_u, int need_du) {
    const size_t nu = (size_t)p->nxi * p->Cout * p->Cin + 64;
    return (need_u ? nu : 0) + (need_du ? nu : 0) + (size_t)p->nt * (wino_thread_floats(p) + wino_rows_floats(p));
}
static void wino_split(const conv_plan *p, float *base, int need_u, int need_du, wino_scratch *w) {
    const size_t nu = (size_t)p->nxi * p->Cout * p->Cin + 64;
    w->U = need_u ? base : NULL;
    base += need_u ? nu : 0;
    w->dU = need_du ? base : NULL;
    base += need_du ? nu : 0;
    w->tiles = base;
    w->rows = base + (size_t)p->nt * wino_thread_floats(p);
}
static size_t direct_scratch_floats(const conv_plan *p);
static size_t direct_bwd_scratch_floats(const conv_plan *p);
static size_t fewout_bwd_scratch_floats(const conv_plan *p);
static size_t plan_bytes(const conv_plan *p) {
    if (p->dir == 1) return (direct_scratch_floats(p) + 64) * sizeof(float);
    if (p->dir == 2) return (direct_bwd_scratch_floats(p) + 64) * sizeof(float);
    if (p->dir == 3) return (fewout_bwd_scratch_floats(p) + 64) * sizeof(float);
    if (p->wino) return (wino_scratch_floats(p, 1, 1) + 64) * sizeof(float);
    return ((size_t)p->nt * gemm_thread_floats(p, 1) + 64) * sizeof(float);
}

size_t fsd_conv2d_workspace(int B, int Cin, int H, int W, int Cout, int k, int stride, int pad) {
    conv_plan pf, pb;
    if (make_plan(&pf, B, Cin, H, W, Cout, k, stride, pad, 0) != FSD_OK) return 0;
    make_plan(&pb, B, Cin, H, W, Cout, k, stride, pad, 1);
    size_t a = plan_bytes(&pf), b = plan_bytes(&pb);
    return (a > b ? a : b) + 64 * 8; /* arena alignment of each allocation */
}

static float *ws_floats(fsd_arena *ws, size_t n, const char *what) {
    float *f = fsd_arena_floats(ws, n);
    if (!f) fsd_fail(FSD_ERR_NOMEM, "conv2d: workspace arena too small for %s (%zu MiB more needed)", what,
                     n * sizeof(float) >> 20);
    return f;
}

/* ================================================================ im2col + sgemm */

/* Task t -> images [*b0, *b1) and output rows [*oy0, *oy1) of each. */
static void task_range(const conv_plan *p, int t, int *b0, int *b1, int *oy0, int *oy1) {
    if (p->group > 0) {
        *b0 = t * p->group, *b1 = imin(p->B, *b0 + p->group), *oy0 = 0, *oy1 = p->Ho;
    } else {
        int band = t % p->bands;
        *b0 = t / p->bands, *b1 = *b0 + 1;
        *oy0 = band * p->rows, *oy1 = imin(p->Ho, *oy0 + p->rows);
    }
}

/* Valid output columns [lo, hi) for kernel column kw: input column ox*s - pad + kw inside [0, W). */
static void valid_cols(const conv_plan *p, int kw, int *lo, int *hi) {
    int a = p->pad - kw, l = a > 0 ? cdiv(a, p->s) : 0;
    int last = p->W - 1 + p->pad - kw; /* largest ox*s allowed */
    int h = last < 0 ? 0 : last / p->s + 1;
    h = imin(h, p->Wo);
    *lo = imin(l, h), *hi = h;
}

/* Output rows [oy0, oy1) of one image xb [Cin,H,W] -> col rows (ci,kh,kw), column (oy-oy0)*Wo+ox,
 * leading dimension ldc. Padding positions are written as zeros. */
static void im2col_rows(float *col, int ldc, const float *xb, const conv_plan *p, int oy0, int oy1) {
    const int k = p->k, s = p->s, H = p->H, W = p->W, Wo = p->Wo;
    for (int ci = 0; ci < p->Cin; ci++) {
        const float *xc = xb + (size_t)ci * H * W;
        for (int kh = 0; kh < k; kh++)
            for (int kw = 0; kw < k; kw++) {
                float *row = col + (size_t)((ci * k + kh) * k + kw) * ldc;
                int lo, hi;
                valid_cols(p, kw, &lo, &hi);
                for (int oy = oy0; oy < oy1; oy++) {
                    float *d = row + (size_t)(oy - oy0) * Wo;
                    int iy = oy * s - p->pad + kh;
                    if (iy < 0 || iy >= H || lo >= hi) {
                        memset(d, 0, (size_t)Wo * sizeof(float));
                        continue;
                    }
                    const float *src = xc + (size_t)iy * W + (lo * s - p->pad + kw);
                    for (int ox = 0; ox < lo; ox++) d[ox] = 0.0f;
                    if (s == 1) memcpy(d + lo, src, (size_t)(hi - lo) * sizeof(float));
                    else if (s == 2) /* constant stride: vectorised with permutes (Downsample convs) */
                        for (int j = 0; j < hi - lo; j++) d[lo + j] = src[2 * j];
                    else
                        for (int j = 0; j < hi - lo; j++) d[lo + j] = src[(size_t)j * s];
                    for (int ox = hi; ox < Wo; ox++) d[ox] = 0.0f;
                }
            }
    }
}

/* Stride 2. Output rows [oy0, oy1) read input rows 2*oy0-pad .. 2*(oy1-1)-pad+k-1, which are one
 * contiguous block of each channel plane: it is copied once per channel into a zero-padded block
 * (sequential reads of x, the block then sits in L1), and tap (kh, kw) of output (oy, ox) is block
 * element [2*(oy-oy0)+kh][2*ox+kw]: branch-free stride-2 loads that vectorise with permutes.
 * rows: gemm_rows_floats() floats. */
static int s2_block_rows(const conv_plan *p, int nrows) { return 2 * (nrows - 1) + p->k; }
static int s2_block_width(const conv_plan *p) { return 2 * (p->Wo + p->k); } /* >= W + 2*pad, even */

static void im2col_rows_s2(float *col, int ldc, const float *xb, const conv_plan *p, int oy0, int oy1,
                           float *blk) {
    const int k = p->k, H = p->H, W = p->W, Wo = p->Wo, pad = p->pad;
    const int nr = s2_block_rows(p, oy1 - oy0), bw = s2_block_width(p), iy0 = 2 * oy0 - pad;
    memset(blk, 0, (size_t)nr * bw * sizeof(float)); /* padding stays zero: only [pad, pad+W) is rewritten */
    for (int ci = 0; ci < p->Cin; ci++) {
        const float *xc = xb + (size_t)ci * H * W;
        for (int r = 0; r < nr; r++) {
            const int iy = iy0 + r;
            if (iy >= 0 && iy < H) memcpy(blk + (size_t)r * bw + pad, xc + (size_t)iy * W, (size_t)W * sizeof(float));
        }
        for (int kh = 0; kh < k; kh++)
            for (int kw = 0; kw < k; kw++) {
                float *row = col + (size_t)((ci * k + kh) * k + kw) * ldc;
                for (int oy = oy0; oy < oy1; oy++) {
                    const float *src = blk + (size_t)(2 * (oy - oy0) + kh) * bw + kw;
                    float *d = row + (size_t)(oy - oy0) * Wo;
                    for (int ox = 0; ox < Wo; ox++) d[ox] = src[2 * ox];
                }
            }
    }
}

/* Adjoint of im2col_rows_s2. The block is kept de-interleaved (each row: its even columns, then its
 * odd columns) so every tap accumulates contiguously (a stride-2 read-modify-write does not
 * vectorise); at the end it is re-interleaved into dx, padding dropped. */
static void col2im_rows_s2(float *dxb, const float *col, int ldc, const conv_plan *p, int oy0, int oy1, float *blk) {
    const int k = p->k, H = p->H, W = p->W, Wo = p->Wo, pad = p->pad;
    const int nr = s2_block_rows(p, oy1 - oy0), bw = s2_block_width(p), half = bw / 2, iy0 = 2 * oy0 - pad;
    for (int ci = 0; ci < p->Cin; ci++) {
        memset(blk, 0, (size_t)nr * bw * sizeof(float));
        for (int kh = 0; kh < k; kh++)
            for (int kw = 0; kw < k; kw++) {
                const float *row = col + (size_t)((ci * k + kh) * k + kw) * ldc;
                for (int oy = oy0; oy < oy1; oy++) {
                    float *d = blk + (size_t)(2 * (oy - oy0) + kh) * bw + (kw & 1) * half + kw / 2;
                    const float *g = row + (size_t)(oy - oy0) * Wo;
                    for (int ox = 0; ox < Wo; ox++) d[ox] += g[ox];
                }
            }
        float *dc = dxb + (size_t)ci * H * W;
        for (int r = 0; r < nr; r++) {
            const int iy = iy0 + r;
            if (iy < 0 || iy >= H) continue;
            const float *ev = blk + (size_t)r * bw, *od = ev + half;
            float *d = dc + (size_t)iy * W; /* d[c - pad] for padded column c in [pad, pad+W) */
            int c = pad;
            if (c & 1) d[c - pad] += od[c / 2], c++;
            for (; c + 1 < pad + W; c += 2) d[c - pad] += ev[c / 2], d[c + 1 - pad] += od[c / 2];
            if (c < pad + W) d[c - pad] += ev[c / 2];
        }
    }
}

/* Adjoint of im2col_rows: dxb [Cin,H,W] += scatter of col (padding positions dropped). */
static void col2im_rows(float *dxb, const float *col, int ldc, const conv_plan *p, int oy0, int oy1) {
    const int k = p->k, s = p->s, H = p->H, W = p->W, Wo = p->Wo;
    for (int ci = 0; ci < p->Cin; ci++) {
        float *dc = dxb + (size_t)ci * H * W;
        for (int kh = 0; kh < k; kh++)
            for (int kw = 0; kw < k; kw++) {
                const float *row = col + (size_t)((ci * k + kh) * k + kw) * ldc;
                int lo, hi;
                valid_cols(p, kw, &lo, &hi);
                for (int oy = oy0; oy < oy1; oy++) {
                    int iy = oy * s - p->pad + kh;
                    if (iy < 0 || iy >= H) continue;
                    const float *g = row + (size_t)(oy - oy0) * Wo;
                    float *d = dc + (size_t)iy * W + (lo * s - p->pad + kw);
                    if (s == 1)
                        for (int ox = lo; ox < hi; ox++) d[ox - lo] += g[ox];
                    else if (s == 2)
                        for (int j = 0; j < hi - lo; j++) d[2 * j] += g[lo + j];
                    else
                        for (int j = 0; j < hi - lo; j++) d[(size_t)j * s] += g[lo + j];
                }
            }
    }
}

/* GEMM B-operand (the im2col matrix) of a task: either a view into x (1x1 direct) or built in col. */
static const float *task_cols(const conv_plan *p, const float *x, int b0, int b1, int oy0, int oy1, float *col,
                              float *rows, int *ld) {
    const int n = (b1 - b0) * (oy1 - oy0) * p->Wo;
    if (p->direct && b1 - b0 == 1) {
        *ld = p->P;
        return x + (size_t)b0 * p->Cin * p->P + (size_t)oy0 * p->Wo;
    }
    const int per = (oy1 - oy0) * p->Wo;
    for (int b = b0; b < b1; b++)
        if (p->s == 2) im2col_rows_s2(col + (size_t)(b - b0) * per, n, x + (size_t)b * p->Cin * p->H * p->W, p, oy0, oy1, rows);
        else im2col_rows(col + (size_t)(b - b0) * per, n, x + (size_t)b * p->Cin * p->H * p->W, p, oy0, oy1);
    *ld = n;
    return col;
}

static void gemm_forward(const conv_plan *p, float *out, const float *x, const float *w, const float *bias,
                         float *scratch) {
#pragma omp parallel for schedule(static) num_threads(p->nt)
    for (int t = 0; t < p->ntasks; t++) {
        gemm_scratch g = gemm_split(p, scratch, omp_get_thread_num(), 0);
        float *col = g.col, *tmp = g.tmp;
        int b0, b1, oy0, oy1, ld;
        task_range(p, t, &b0, &b1, &oy0, &oy1);
        const int n = (b1 - b0) * (oy1 - oy0) * p->Wo;
        const float *cm = task_cols(p, x, b0, b1, oy0, oy1, col, g.rows, &ld);
        if (b1 - b0 == 1) { /* the band of out is a [Cout, n] matrix with row stride P */
            float *o = out + (size_t)b0 * p->Cout * p->P + (size_t)oy0 * p->Wo;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, p->Cout, n, p->Ckk, 1.0f, w, p->Ckk, cm, ld,
                        0.0f, o, p->P);
            if (bias)
                for (int co = 0; co < p->Cout; co++) {
                    float *r = o + (size_t)co * p->P, v = bias[co];
                    for (int j = 0; j < n; j++) r[j] += v;
                }
        } else { /* several images: GEMM into tmp [Cout, n], then scatter each image's columns */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, p->Cout, n, p->Ckk, 1.0f, w, p->Ckk, cm, ld,
                        0.0f, tmp, n);
            for (int b = b0; b < b1; b++)
                for (int co = 0; co < p->Cout; co++) {
                    float *o = out + ((size_t)b * p->Cout + co) * p->P;
                    const float *r = tmp + (size_t)co * n + (size_t)(b - b0) * p->P;
                    float v = bias ? bias[co] : 0.0f;
                    for (int j = 0; j < p->P; j++) o[j] = r[j] + v;
                }
        }
    }
}

static void gemm_backward_task(const conv_plan *p, int t, float *dx, float *dwt, const float *dout, const float *x,
                               const float *w, const gemm_scratch *g) {
    float *col = g->col, *tmp = g->tmp;
    int b0, b1, oy0, oy1, ld, ldd;
    task_range(p, t, &b0, &b1, &oy0, &oy1);
    const int n = (b1 - b0) * (oy1 - oy0) * p->Wo;
    const float *d;
    if (b1 - b0 == 1) {
        d = dout + (size_t)b0 * p->Cout * p->P + (size_t)oy0 * p->Wo;
        ldd = p->P;
    } else { /* gather dout of the group into [Cout, n] */
        for (int b = b0; b < b1; b++)
            for (int co = 0; co < p->Cout; co++)
                memcpy(tmp + (size_t)co * n + (size_t)(b - b0) * p->P, dout + ((size_t)b * p->Cout + co) * p->P,
                       (size_t)p->P * sizeof(float));
        d = tmp;
        ldd = n;
    }
    if (dwt) { /* dW [Cout, Ckk] += dout_band [Cout, n] . col^T [n, Ckk] */
        const float *cm = task_cols(p, x, b0, b1, oy0, oy1, col, g->rows, &ld);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, p->Cout, p->Ckk, n, 1.0f, d, ldd, cm, ld, 1.0f, dwt,
                    p->Ckk);
    }
    if (dx) {
        if (p->direct && b1 - b0 == 1) { /* dx band [Cin, n] += W^T . dout_band, in place */
            float *o = dx + (size_t)b0 * p->Cin * p->P + (size_t)oy0 * p->Wo;
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, p->Cin, n, p->Cout, 1.0f, w, p->Ckk, d, ldd, 1.0f,
                        o, p->P);
        } else { /* dcol [Ckk, n] = W^T . dout_band, then scatter-add into dx */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, p->Ckk, n, p->Cout, 1.0f, w, p->Ckk, d, ldd, 0.0f,
                        col, n);
            const int per = (oy1 - oy0) * p->Wo;
            for (int b = b0; b < b1; b++)
                if (p->s == 2)
                    col2im_rows_s2(dx + (size_t)b * p->Cin * p->H * p->W, col + (size_t)(b - b0) * per, n, p, oy0, oy1,
                                   g->rows);
                else
                    col2im_rows(dx + (size_t)b * p->Cin * p->H * p->W, col + (size_t)(b - b0) * per, n, p, oy0, oy1);
        }
    }
}

static void gemm_backward(const conv_plan *p, float *dx, float *dw, const float *dout, const float *x,
                          const float *w, float *scratch) {
    const size_t nw = (size_t)p->Cout * p->Ckk;
    /* dx bands of one image overlap when k > stride (except 1x1 direct): even bands, then odd bands */
    const int two_phase = dx && p->bands > 1 && p->k > p->s;
    const int nph = two_phase ? 2 : 1;
#pragma omp parallel num_threads(p->nt)
    {
        const int tid = omp_get_thread_num();
        const gemm_scratch g = gemm_split(p, scratch, tid, 1);
        float *dwp = g.dwp;
        /* thread 0 accumulates straight into dw, the others into private copies reduced below */
        float *dwt = dw ? (tid == 0 ? dw : dwp) : NULL;
        if (dw && tid > 0) memset(dwp, 0, nw * sizeof(float));
        for (int ph = 0; ph < nph; ph++) {
            const int per_img = nph == 1 ? p->bands : (p->bands + 1 - ph) / 2;
            const int cnt = nph == 1 ? p->ntasks : p->B * per_img;
#pragma omp for schedule(static)
            for (int i = 0; i < cnt; i++) {
                int t = nph == 1 ? i : (i / per_img) * p->bands + 2 * (i % per_img) + ph;
                gemm_backward_task(p, t, dx, dwt, dout, x, w, &g);
            }
        }
        if (dw && p->nt > 1) {
            const int nthr = omp_get_num_threads();
#pragma omp for schedule(static)
            for (size_t e = 0; e < nw; e++) {
                float s = 0.0f;
                for (int r = 1; r < nthr; r++) s += gemm_split(p, scratch, r, 1).dwp[e];
                dw[e] += s;
            }
        }
    }
}

/* ================================================================ Winograd F(2x2, 3x3) */

/* U[xi][r][c] = (G g G^T)[xi] for every (co, ci); g = w[co,ci] with (r, c) = (co, ci), or for the dx
 * pass the flipped kernel with (r, c) = (ci, co). G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1].
 * Blocks of 64 c are transformed into a local buffer and written as 16 contiguous runs: storing
 * straight to the 16 slices (Cout*Cin apart, a multiple of 4 KiB) made this 30% of a 16x16 forward. */
static void wino_weights(float *U, const float *w, int Cout, int Cin, int flip) {
    const int R = flip ? Cin : Cout, C = flip ? Cout : Cin;
    const size_t stride = (size_t)Cout * Cin;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < R; r++) {
        float u[16][64];
        for (int c0 = 0; c0 < C; c0 += 64) {
            const int nc = imin(64, C - c0);
            for (int c = 0; c < nc; c++) {
                const int co = flip ? c0 + c : r, ci = flip ? r : c0 + c;
                const float *g0 = w + ((size_t)co * Cin + ci) * 9;
                float g[3][3], t[4][3];
                for (int i = 0; i < 3; i++)
                    for (int j = 0; j < 3; j++) g[i][j] = flip ? g0[(2 - i) * 3 + (2 - j)] : g0[i * 3 + j];
                for (int j = 0; j < 3; j++) {
                    t[0][j] = g[0][j];
                    t[1][j] = 0.5f * (g[0][j] + g[1][j] + g[2][j]);
                    t[2][j] = 0.5f * (g[0][j] - g[1][j] + g[2][j]);
                    t[3][j] = g[2][j];
                }
                for (int i = 0; i < 4; i++) {
                    u[4 * i + 0][c] = t[i][0];
                    u[4 * i + 1][c] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
                    u[4 * i + 2][c] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
                    u[4 * i + 3][c] = t[i][2];
                }
            }
            for (int xi = 0; xi < 16; xi++)
                memcpy(U + xi * stride + (size_t)r * C + c0, u[xi], (size_t)nc * sizeof(float));
        }
    }
}

/* dW[co,ci] += G^T dU[.][co][ci] G for all (co, ci) (G^T rows: [1 .5 .5 0], [0 .5 -.5 0], [0 .5 .5 1]);
 * blocks of 64 ci read as 16 contiguous runs, like wino_weights. */
static void wino_weight_grad(float *dw, const float *dU, int Cout, int Cin) {
    const size_t stride = (size_t)Cout * Cin;
#pragma omp for schedule(static)
    for (int co = 0; co < Cout; co++) {
        float u[16][64];
        for (int c0 = 0; c0 < Cin; c0 += 64) {
            const int nc = imin(64, Cin - c0);
            for (int xi = 0; xi < 16; xi++)
                memcpy(u[xi], dU + xi * stride + (size_t)co * Cin + c0, (size_t)nc * sizeof(float));
            for (int c = 0; c < nc; c++) {
                float t[3][4];
                for (int j = 0; j < 4; j++) {
                    t[0][j] = u[j][c] + 0.5f * (u[4 + j][c] + u[8 + j][c]);
                    t[1][j] = 0.5f * (u[4 + j][c] - u[8 + j][c]);
                    t[2][j] = 0.5f * (u[4 + j][c] + u[8 + j][c]) + u[12 + j][c];
                }
                float *g = dw + ((size_t)co * Cin + c0 + c) * 9;
                for (int i = 0; i < 3; i++) {
                    g[i * 3 + 0] += t[i][0] + 0.5f * (t[i][1] + t[i][2]);
                    g[i * 3 + 1] += 0.5f * (t[i][1] - t[i][2]);
                    g[i * 3 + 2] += 0.5f * (t[i][1] + t[i][2]) + t[i][3];
                }
            }
        }
    }
}

/* Input transform V = B^T d B of the 4x4 tiles of tile rows [r0, r1), channels [c0, c1), of src [B, C, H, W]
 * (tile (ty,tx) reads rows 2ty-1..2ty+2, cols 2tx-1..2tx+2, zero outside).
 * V[xi][c][t] with leading dimension ldv, xi stride C*ldv. rb: 4*(2tw+2) floats, zero on entry. */
static void wino_input(float *V, int ldv, const float *src, int C, int c0, int c1, int H, int W, int th, int tw,
                       int r0, int r1, float *rb) {
    const int Wp = 2 * tw + 2;
    const size_t xs = xi_stride(C, ldv);
    for (int c = c0; c < c1; c++)
        for (int r = r0; r < r1; r++) {
            const int b = r / th, ty = r % th;
            const float *plane = src + ((size_t)b * C + c) * H * W;
            for (int i = 0; i < 4; i++) { /* padded copies of the 4 input rows (cols -1 .. 2tw) */
                const int iy = 2 * ty - 1 + i;
                if (iy >= 0 && iy < H) memcpy(rb + i * Wp + 1, plane + (size_t)iy * W, (size_t)W * sizeof(float));
                else memset(rb + i * Wp + 1, 0, (size_t)W * sizeof(float));
            }
            const float *q0 = rb, *q1 = rb + Wp, *q2 = rb + 2 * Wp, *q3 = rb + 3 * Wp;
            float *v = V + (size_t)c * ldv + (size_t)(r - r0) * tw;
            for (int tx = 0; tx < tw; tx++) {
                const int x0 = 2 * tx;
                float t[4][4]; /* B^T d: rows d0-d2, d1+d2, d2-d1, d1-d3 */
                for (int j = 0; j < 4; j++) {
                    const float d0 = q0[x0 + j], d1 = q1[x0 + j], d2 = q2[x0 + j], d3 = q3[x0 + j];
                    t[0][j] = d0 - d2, t[1][j] = d1 + d2, t[2][j] = d2 - d1, t[3][j] = d1 - d3;
                }
                for (int i = 0; i < 4; i++) { /* (.) B: same combination along columns */
                    v[(size_t)(4 * i + 0) * xs + tx] = t[i][0] - t[i][2];
                    v[(size_t)(4 * i + 1) * xs + tx] = t[i][1] + t[i][2];
                    v[(size_t)(4 * i + 2) * xs + tx] = t[i][2] - t[i][1];
                    v[(size_t)(4 * i + 3) * xs + tx] = t[i][1] - t[i][3];
                }
            }
        }
    /* leave the W..2tw+1 padding columns as found (zero): only [1, W] was written */
}

/* Output transform Y = A^T m A (A^T = [1 1 1 0; 0 1 -1 -1]) of M[xi][c][t] into dst [B, C, Ho, Wo]:
 * dst = Y + bias[c] (bias may be NULL) or dst += Y when accumulate. rb: 2*2tw floats. */
static void wino_output(float *dst, const float *M, int ldm, int C, int Ho, int Wo, int th, int tw, int r0, int r1,
                        const float *bias, int accumulate, float *rb) {
    const size_t xs = xi_stride(C, ldm);
    float *y0 = rb, *y1 = rb + 2 * tw;
    for (int c = 0; c < C; c++)
        for (int r = r0; r < r1; r++) {
            const int b = r / th, ty = r % th;
            const float *m = M + (size_t)c * ldm + (size_t)(r - r0) * tw;
            for (int tx = 0; tx < tw; tx++) {
                float a[4][4], t[2][4];
                for (int xi = 0; xi < 16; xi++) a[xi / 4][xi % 4] = m[(size_t)xi * xs + tx];
                for (int j = 0; j < 4; j++) {
                    t[0][j] = a[0][j] + a[1][j] + a[2][j];
                    t[1][j] = a[1][j] - a[2][j] - a[3][j];
                }
                y0[2 * tx] = t[0][0] + t[0][1] + t[0][2], y0[2 * tx + 1] = t[0][1] - t[0][2] - t[0][3];
                y1[2 * tx] = t[1][0] + t[1][1] + t[1][2], y1[2 * tx + 1] = t[1][1] - t[1][2] - t[1][3];
            }
            const float v = bias ? bias[c] : 0.0f;
            for (int i = 0; i < 2; i++) {
                const int oy = 2 * ty + i;
                if (oy >= Ho) break;
                float *o = dst + (((size_t)b * C + c) * Ho + oy) * Wo;
                const float *y = i ? y1 : y0;
                if (accumulate)
                    for (int j = 0; j < Wo; j++) o[j] += y[j];
                else
                    for (int j = 0; j < Wo; j++) o[j] = y[j] + v;
            }
        }
}

/* Gradient-side transform dM = A dY A^T of the 2x2 output tiles of dout [B, C, Ho, Wo] (zero outside),
 * layout like wino_input. rb: 2*2tw floats. */
static void wino_grad_output(float *Mg, int ldm, const float *dout, int C, int c0, int c1, int Ho, int Wo, int th,
                             int tw, int r0, int r1, float *rb) {
    const size_t xs = xi_stride(C, ldm);
    float *q0 = rb, *q1 = rb + 2 * tw;
    for (int c = c0; c < c1; c++)
        for (int r = r0; r < r1; r++) {
            const int b = r / th, ty = r % th;
            const float *plane = dout + ((size_t)b * C + c) * Ho * Wo;
            memcpy(q0, plane + (size_t)(2 * ty) * Wo, (size_t)Wo * sizeof(float));
            if (2 * ty + 1 < Ho) memcpy(q1, plane + (size_t)(2 * ty + 1) * Wo, (size_t)Wo * sizeof(float));
            else memset(q1, 0, (size_t)Wo * sizeof(float));
            if (Wo & 1) q0[Wo] = q1[Wo] = 0.0f; /* the odd last tile's right column is outside */
            float *g = Mg + (size_t)c * ldm + (size_t)(r - r0) * tw;
            for (int tx = 0; tx < tw; tx++) {
                const float a0 = q0[2 * tx], a1 = q0[2 * tx + 1], c0 = q1[2 * tx], c1 = q1[2 * tx + 1];
                /* s = A dY: rows y0, y0+y1, y0-y1, -y1 (per column q) */
                const float s[4][2] = {{a0, a1}, {a0 + c0, a1 + c1}, {a0 - c0, a1 - c1}, {-c0, -c1}};
                for (int i = 0; i < 4; i++) {
                    g[(size_t)(4 * i + 0) * xs + tx] = s[i][0];
                    g[(size_t)(4 * i + 1) * xs + tx] = s[i][0] + s[i][1];
                    g[(size_t)(4 * i + 2) * xs + tx] = s[i][0] - s[i][1];
                    g[(size_t)(4 * i + 3) * xs + tx] = -s[i][1];
                }
            }
        }
}

static void wino_forward(const conv_plan *p, float *out, const float *x, const float *w, const float *bias,
                         const wino_scratch *ws) {
    float *U = ws->U;
    wino_weights(U, w, p->Cout, p->Cin, 0);
    const size_t buf = wino_buf_floats(p);
    const int R = p->B * p->th;
#pragma omp parallel num_threads(p->nt)
    {
        const int tid = omp_get_thread_num();
        float *V = ws->tiles + (size_t)tid * wino_thread_floats(p), *M = V + buf;
        float *rb = ws->rows + (size_t)tid * wino_rows_floats(p), *ro = rb + 4 * (2 * p->tw + 2);
        memset(rb, 0, (size_t)4 * (2 * p->tw + 2) * sizeof(float));
#pragma omp for schedule(static)
        for (int ch = 0; ch < p->nchunks; ch++) {
            int r0, r1;
            chunk_rows(R, p->nchunks, ch, &r0, &r1);
            const int n = (r1 - r0) * p->tw;
            wino_input(V, p->tc, x, p->Cin, 0, p->Cin, p->H, p->W, p->th, p->tw, r0, r1, rb);
            for (int xi = 0; xi < 16; xi++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, p->Cout, n, p->Cin, 1.0f,
                            U + (size_t)xi * p->Cout * p->Cin, p->Cin, V + xi * xi_stride(p->Cin, p->tc), p->tc, 0.0f,
                            M + xi * xi_stride(p->Cout, p->tc), p->tc);
            wino_output(out, M, p->tc, p->Cout, p->Ho, p->Wo, p->th, p->tw, r0, r1, bias, 0, ro);
        }
    }
}

static void wino_backward(const conv_plan *p, float *dx, float *dw, const float *dout, const float *x,
                          const float *w, const wino_scratch *ws) {
    float *U = ws->U, *dU = ws->dU;
    if (dx) wino_weights(U, w, p->Cout, p->Cin, 1); /* U'[xi][ci][co]: flipped, transposed kernel */
    const size_t buf = wino_buf_floats(p);
    const size_t nu = (size_t)16 * p->Cout * p->Cin;
    const int R = p->B * p->th;
    const int Cin = p->Cin, Cout = p->Cout, tc = p->tc;
    /* dW pass on team-wide chunks of at most tcw tiles: V [16][Cin][tcw] and dM [16][Cout][tcw] in
     * the concatenated tile buffers (tcw <= nt*tc, so 16*(Cin+Cout)*tcw <= nt*2*16*max(C)*tc). */
    const int tcw = p->tcw, nchw = p->nchw;
    float *Vw = ws->tiles, *Mw = ws->tiles + 16 * xi_stride(Cin, tcw);
#pragma omp parallel num_threads(p->nt)
    {
        const int tid = omp_get_thread_num();
        float *rb = ws->rows + (size_t)tid * wino_rows_floats(p), *ro = rb + 4 * (2 * p->tw + 2);
        memset(rb, 0, (size_t)4 * (2 * p->tw + 2) * sizeof(float));
        if (dw) {
            /* dU[xi] [Cout, Cin] = sum over chunks of dM[xi] [Cout, n] . V[xi]^T [n, Cin]: each xi is
             * owned by one thread (no private copies, no reduction, same order whatever the threads) */
#pragma omp for schedule(static)
            for (size_t e = 0; e < nu; e++) dU[e] = 0.0f;
            for (int ch = 0; ch < nchw; ch++) {
                int r0, r1;
                chunk_rows(R, nchw, ch, &r0, &r1);
                const int n = (r1 - r0) * p->tw;
#pragma omp for schedule(static)
                for (int c = 0; c < Cin + Cout; c++) {
                    if (c < Cin) wino_input(Vw, tcw, x, Cin, c, c + 1, p->H, p->W, p->th, p->tw, r0, r1, rb);
                    else wino_grad_output(Mw, tcw, dout, Cout, c - Cin, c - Cin + 1, p->Ho, p->Wo, p->th, p->tw, r0, r1, ro);
                }
#pragma omp for schedule(static)
                for (int xi = 0; xi < 16; xi++)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Cout, Cin, n, 1.0f, Mw + xi * xi_stride(Cout, tcw),
                                tcw, Vw + xi * xi_stride(Cin, tcw), tcw, 1.0f, dU + (size_t)xi * Cout * Cin, Cin);
            }
            wino_weight_grad(dw, dU, Cout, Cin); /* an omp for inside this parallel region */
        }
        if (dx) { /* per-thread chunks: dx tiles += A^T [U'[xi] . (B^T dout B)[xi]] A; each tile has one writer */
            float *b1 = ws->tiles + (size_t)tid * wino_thread_floats(p), *b2 = b1 + buf;
#pragma omp for schedule(static)
            for (int ch = 0; ch < p->nchunks; ch++) {
                int r0, r1;
                chunk_rows(R, p->nchunks, ch, &r0, &r1);
                const int n = (r1 - r0) * p->tw;
                wino_input(b2, tc, dout, Cout, 0, Cout, p->Ho, p->Wo, p->th, p->tw, r0, r1, rb);
                for (int xi = 0; xi < 16; xi++)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Cin, n, Cout, 1.0f, U + (size_t)xi * Cin * Cout,
                                Cout, b2 + xi * xi_stride(Cout, tc), tc, 0.0f, b1 + xi * xi_stride(Cin, tc), tc);
                wino_output(dx, b1, tc, Cin, p->H, p->W, p->th, p->tw, r0, r1, NULL, 1, ro);
            }
        }
    }
}

/* ================================================================ polyphase Winograd for 3x3 stride 2 pad 1
 * 1D: the 2 outputs of a tile read d = x[4t-1 .. 4t+3]: y0 = g0 d0 + g1 d1 + g2 d2, y1 = g0 d2 + g1 d3 + g2 d4.
 * The even-phase inputs d1, d3 meet only g1 (2 products); the odd-phase inputs d0, d2, d4 form a 2-tap
 * correlation with (g0, g2), done by F(2,2) in 3 products: 5 multiplies per 2 outputs instead of 6.
 *   V = BT d: (d0 - d2, d2, d4 - d2, d1, d3)     U = G g: (g0, g0 + g2, g2, g1, g1)
 *   y = AT m: y0 = m0 + m1 + m3, y1 = m1 + m2 + m4
 * Nested in 2D: 25 points per 2x2 output tile (5x5 input tiles at stride 4) instead of 36 multiplies,
 * i.e. 25 GEMMs [Cout, Cin] x [Cin, tiles] on the F(2x2,3x3) machinery (plan, chunks, scratch).
 * Every transform entry is 0 or +-1: float rounding stays at the level of the direct method.
 * Backward: dW as for F(2x2,3x3) (dU = sum (A dY A^T) .* V, dW = G^T dU G); dx by the adjoint of the
 * forward (dV = U^T dM, dx += B dV B^T), where neighbouring tile rows share one input row, so even
 * chunks run before odd chunks. */
static void s2_g(const float g[3], float u[5]) { u[0] = g[0], u[1] = g[0] + g[2], u[2] = g[2], u[3] = g[1], u[4] = g[1]; }
static void s2_gt(const float u[5], float g[3]) { g[0] = u[0] + u[1], g[1] = u[3] + u[4], g[2] = u[1] + u[2]; }

/* U[xi][co][ci] = (G g G^T)[xi], xi = 5*i + j (i: row point, j: column point); 64-ci blocks written as
 * 25 contiguous runs (see wino_weights). */
static void wino_s2_weights(float *U, const float *w, int Cout, int Cin) {
    const size_t stride = (size_t)Cout * Cin;
#pragma omp parallel for schedule(static)
    for (int co = 0; co < Cout; co++) {
        float u[25][64];
        for (int c0 = 0; c0 < Cin; c0 += 64) {
            const int nc = imin(64, Cin - c0);
            for (int c = 0; c < nc; c++) {
                const float *g = w + ((size_t)co * Cin + c0 + c) * 9;
                float t[5][3], r[5];
                for (int j = 0; j < 3; j++) {
                    const float col[3] = {g[j], g[3 + j], g[6 + j]};
                    s2_g(col, r);
                    for (int i = 0; i < 5; i++) t[i][j] = r[i];
                }
                for (int i = 0; i < 5; i++) {
                    s2_g(t[i], r);
                    for (int j = 0; j < 5; j++) u[5 * i + j][c] = r[j];
                }
            }
            for (int xi = 0; xi < 25; xi++)
                memcpy(U + xi * stride + (size_t)co * Cin + c0, u[xi], (size_t)nc * sizeof(float));
        }
    }
}

/* dW[co,ci] += G^T dU[.][co][ci] G (an omp for inside a parallel region). */
static void wino_s2_weight_grad(float *dw, const float *dU, int Cout, int Cin) {
    const size_t stride = (size_t)Cout * Cin;
#pragma omp for schedule(static)
    for (int co = 0; co < Cout; co++) {
        float u[25][64];
        for (int c0 = 0; c0 < Cin; c0 += 64) {
            const int nc = imin(64, Cin - c0);
            for (int xi = 0; xi < 25; xi++)
                memcpy(u[xi], dU + xi * stride + (size_t)co * Cin + c0, (size_t)nc * sizeof(float));
            for (int c = 0; c < nc; c++) {
                float t[5][3], col[5], g[3];
                for (int i = 0; i < 5; i++) {
                    const float row[5] = {u[5 * i][c], u[5 * i + 1][c], u[5 * i + 2][c], u[5 * i + 3][c], u[5 * i + 4][c]};
                    s2_gt(row, t[i]);
                }
                float *d = dw + ((size_t)co * Cin + c0 + c) * 9;
                for (int j = 0; j < 3; j++) {
                    for (int i = 0; i < 5; i++) col[i] = t[i][j];
                    s2_gt(col, g);
                    for (int i = 0; i < 3; i++) d[i * 3 + j] += g[i];
                }
            }
        }
    }
}

/* V[xi][c][t] = BT d BT^T of the 5x5 input tiles of tile rows [r0, r1), channels [c0, c1), of src [B,C,H,W]
 * (tile (ty,tx) reads rows 4ty-1..4ty+3, cols 4tx-1..4tx+3, zero outside); leading dimension ldv.
 * Each input row is split into its 4 column phases ph[k][tx] = x[4tx-1+k], tx = 0..tw, so that the
 * transforms are loops over contiguous runs of tiles. rb: wino_rows_floats() floats. */
static void wino_s2_input(float *V, int ldv, const float *src, int C, int c0, int c1, int H, int W, int th, int tw,
                          int r0, int r1, float *rb) {
    const int n1 = tw + 1;
    const size_t xs = xi_stride(C, ldv);
    float *q = rb, *ph = q + 4 * n1, *tmp = ph + 20 * n1; /* q [4*n1], ph [5][4][n1], tmp [4][n1] */
    for (int c = c0; c < c1; c++)
        for (int r = r0; r < r1; r++) {
            const int b = r / th, ty = r % th;
            const float *plane = src + ((size_t)b * C + c) * H * W;
            for (int i = 0; i < 5; i++) {
                const int iy = 4 * ty - 1 + i;
                float *pr = ph + (size_t)i * 4 * n1;
                if (iy < 0 || iy >= H) {
                    memset(pr, 0, (size_t)4 * n1 * sizeof(float));
                    continue;
                }
                q[0] = 0.0f;
                memcpy(q + 1, plane + (size_t)iy * W, (size_t)W * sizeof(float));
                for (int m = W + 1; m < 4 * n1; m++) q[m] = 0.0f;
                float *p0 = pr, *p1 = pr + n1, *p2 = p1 + n1, *p3 = p2 + n1;
                for (int t = 0; t < n1; t++) /* one interleaved group: vectorises with permutes */
                    p0[t] = q[4 * t], p1[t] = q[4 * t + 1], p2[t] = q[4 * t + 2], p3[t] = q[4 * t + 3];
            }
            float *v = V + (size_t)c * ldv + (size_t)(r - r0) * tw;
            for (int i = 0; i < 5; i++) {
                /* row point i: d0 - d2, d2, d4 - d2, d1, d3 of the 5 rows (each as 4 phase runs) */
                const float *a;
                if (i == 0 || i == 2) {
                    const float *p0 = ph + (size_t)(i == 0 ? 0 : 4) * 4 * n1, *p2 = ph + (size_t)2 * 4 * n1;
                    for (int e = 0; e < 4 * n1; e++) tmp[e] = p0[e] - p2[e];
                    a = tmp;
                } else {
                    a = ph + (size_t)(i == 1 ? 2 : i == 3 ? 1 : 3) * 4 * n1;
                }
                const float *a0 = a, *a1 = a + n1, *a2 = a + 2 * n1, *a3 = a + 3 * n1;
                float *v0 = v + (size_t)(5 * i) * xs, *v1 = v0 + xs, *v2 = v1 + xs, *v3 = v2 + xs, *v4 = v3 + xs;
                for (int t = 0; t < tw; t++) {
                    v0[t] = a0[t] - a2[t];
                    v1[t] = a2[t];
                    v2[t] = a0[t + 1] - a2[t];
                    v3[t] = a1[t];
                    v4[t] = a3[t];
                }
            }
        }
}

/* dst [B,C,Ho,Wo] = AT m A + bias[c] (bias may be NULL) from M[xi][c][t]. rb: wino_rows_floats() floats. */
static void wino_s2_output(float *dst, const float *M, int ldm, int C, int Ho, int Wo, int th, int tw, int r0, int r1,
                           const float *bias, float *rb) {
    const size_t xs = xi_stride(C, ldm);
    float *sr = rb, *y = rb + 10 * tw; /* sr [2][5][tw]: AT along rows; y [2][2tw] */
    for (int c = 0; c < C; c++)
        for (int r = r0; r < r1; r++) {
            const int b = r / th, ty = r % th;
            const float *m = M + (size_t)c * ldm + (size_t)(r - r0) * tw;
            for (int j = 0; j < 5; j++) {
                const float *m0 = m + (size_t)j * xs, *m1 = m0 + 5 * xs, *m2 = m1 + 5 * xs, *m3 = m2 + 5 * xs,
                            *m4 = m3 + 5 * xs;
                float *s0 = sr + (size_t)j * tw, *s1 = sr + (size_t)(5 + j) * tw;
                for (int t = 0; t < tw; t++) s0[t] = m0[t] + m1[t] + m3[t], s1[t] = m1[t] + m2[t] + m4[t];
            }
            const float v = bias ? bias[c] : 0.0f;
            for (int i = 0; i < 2; i++) {
                const int oy = 2 * ty + i;
                if (oy >= Ho) break;
                const float *s = sr + (size_t)5 * i * tw;
                float *yi = y + (size_t)i * 2 * tw;
                for (int t = 0; t < tw; t++) {
                    yi[2 * t] = s[t] + s[tw + t] + s[3 * tw + t] + v;
                    yi[2 * t + 1] = s[tw + t] + s[2 * tw + t] + s[4 * tw + t] + v;
                }
                memcpy(dst + (((size_t)b * C + c) * Ho + oy) * Wo, yi, (size_t)Wo * sizeof(float));
            }
        }
}

/* dM = A dY A^T of the 2x2 output tiles of dout [B,C,Ho,Wo] (zero outside); A dy = (dy0, dy0+dy1, dy1,
 * dy0, dy1). Layout like wino_s2_input. */
static void wino_s2_grad_output(float *Mg, int ldm, const float *dout, int C, int c0, int c1, int Ho, int Wo, int th,
                                int tw, int r0, int r1, float *rb) {
    const size_t xs = xi_stride(C, ldm);
    float *q = rb, *eo = q + 2 * tw + 2, *sum = eo + 4 * tw; /* q [2tw]; eo [2 rows][even|odd][tw]; sum [2][tw] */
    for (int c = c0; c < c1; c++)
        for (int r = r0; r < r1; r++) {
            const int b = r / th, ty = r % th;
            const float *plane = dout + ((size_t)b * C + c) * Ho * Wo;
            for (int i = 0; i < 2; i++) {
                float *e = eo + (size_t)i * 2 * tw, *o = e + tw;
                if (2 * ty + i >= Ho) {
                    memset(e, 0, (size_t)2 * tw * sizeof(float));
                    continue;
                }
                memcpy(q, plane + (size_t)(2 * ty + i) * Wo, (size_t)Wo * sizeof(float));
                if (Wo & 1) q[Wo] = 0.0f;
                for (int t = 0; t < tw; t++) e[t] = q[2 * t], o[t] = q[2 * t + 1];
            }
            for (int t = 0; t < 2 * tw; t++) sum[t] = eo[t] + eo[2 * tw + t];
            float *g = Mg + (size_t)c * ldm + (size_t)(r - r0) * tw;
            for (int i = 0; i < 5; i++) {
                const float *e = i == 1 ? sum : eo + (size_t)(i == 0 || i == 3 ? 0 : 2 * tw), *o = e + tw;
                float *g0 = g + (size_t)(5 * i) * xs, *g1 = g0 + xs, *g2 = g1 + xs, *g3 = g2 + xs, *g4 = g3 + xs;
                for (int t = 0; t < tw; t++) {
                    g0[t] = e[t];
                    g1[t] = e[t] + o[t];
                    g2[t] = o[t];
                    g3[t] = e[t];
                    g4[t] = o[t];
                }
            }
        }
}

/* dx [B,C,H,W] += B D B^T (the adjoint of wino_s2_input) of D[xi][c][t], tile rows [r0, r1). Adjoint of
 * BT: dd0 = D0, dd1 = D3, dd2 = D1 - D0 - D2, dd3 = D4, dd4 = D2; dd4 of tile tx is dd0's column of
 * tile tx+1, and row 4 of tile row ty is row 0 of ty+1 (added by both). */
static void wino_s2_input_adjoint(float *dx, const float *D, int ldd, int C, int H, int W, int th, int tw, int r0,
                                  int r1, float *rb) {
    const int n1 = tw + 1;
    const size_t xs = xi_stride(C, ldd);
    float *cc = rb, *rowp = cc + 20 * n1, *q = rowp + 4 * n1; /* cc [5][4][n1], rowp [4][n1], q [4*n1] */
    for (int c = 0; c < C; c++)
        for (int r = r0; r < r1; r++) {
            const int b = r / th, ty = r % th;
            const float *d = D + (size_t)c * ldd + (size_t)(r - r0) * tw;
            for (int i = 0; i < 5; i++) { /* columns: phase runs of row point i */
                const float *d0 = d + (size_t)(5 * i) * xs, *d1 = d0 + xs, *d2 = d1 + xs, *d3 = d2 + xs, *d4 = d3 + xs;
                float *a0 = cc + (size_t)i * 4 * n1, *a1 = a0 + n1, *a2 = a1 + n1, *a3 = a2 + n1;
                a0[0] = d0[0];
                for (int t = 1; t < tw; t++) a0[t] = d0[t] + d2[t - 1];
                a0[tw] = d2[tw - 1];
                for (int t = 0; t < tw; t++) a1[t] = d3[t], a2[t] = d1[t] - d0[t] - d2[t], a3[t] = d4[t];
                a1[tw] = a2[tw] = a3[tw] = 0.0f;
            }
            float *plane = dx + ((size_t)b * C + c) * H * W;
            for (int i = 0; i < 5; i++) { /* rows: input row 4ty-1+i */
                const int iy = 4 * ty - 1 + i;
                if (iy < 0 || iy >= H) continue;
                const float *a;
                if (i == 2) {
                    const float *p0 = cc, *p1 = cc + (size_t)4 * n1, *p2 = cc + (size_t)8 * n1;
                    for (int e = 0; e < 4 * n1; e++) rowp[e] = p1[e] - p0[e] - p2[e];
                    a = rowp;
                } else {
                    a = cc + (size_t)(i == 0 ? 0 : i == 1 ? 3 : i == 3 ? 4 : 2) * 4 * n1;
                }
                const float *a0 = a, *a1 = a + n1, *a2 = a1 + n1, *a3 = a2 + n1;
                for (int t = 0; t < n1; t++)
                    q[4 * t] = a0[t], q[4 * t + 1] = a1[t], q[4 * t + 2] = a2[t], q[4 * t + 3] = a3[t];
                float *o = plane + (size_t)iy * W;
                for (int xx = 0; xx < W; xx++) o[xx] += q[xx + 1];
            }
        }
}

static void wino_s2_forward(const conv_plan *p, float *out, const float *x, const float *w, const float *bias,
                            const wino_scratch *ws) {
    float *U = ws->U;
    wino_s2_weights(U, w, p->Cout, p->Cin);
    const size_t buf = wino_buf_floats(p);
    const int R = p->B * p->th;
#pragma omp parallel num_threads(p->nt)
    {
        const int tid = omp_get_thread_num();
        float *V = ws->tiles + (size_t)tid * wino_thread_floats(p), *M = V + buf;
        float *rb = ws->rows + (size_t)tid * wino_rows_floats(p);
#pragma omp for schedule(static)
        for (int ch = 0; ch < p->nchunks; ch++) {
            int r0, r1;
            chunk_rows(R, p->nchunks, ch, &r0, &r1);
            const int n = (r1 - r0) * p->tw;
            wino_s2_input(V, p->tc, x, p->Cin, 0, p->Cin, p->H, p->W, p->th, p->tw, r0, r1, rb);
            for (int xi = 0; xi < 25; xi++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, p->Cout, n, p->Cin, 1.0f,
                            U + (size_t)xi * p->Cout * p->Cin, p->Cin, V + xi * xi_stride(p->Cin, p->tc), p->tc, 0.0f,
                            M + xi * xi_stride(p->Cout, p->tc), p->tc);
            wino_s2_output(out, M, p->tc, p->Cout, p->Ho, p->Wo, p->th, p->tw, r0, r1, bias, rb);
        }
    }
}

static void wino_s2_backward(const conv_plan *p, float *dx, float *dw, const float *dout, const float *x,
                             const float *w, const wino_scratch *ws) {
    float *U = ws->U, *dU = ws->dU;
    if (dx) wino_s2_weights(U, w, p->Cout, p->Cin);
    const size_t buf = wino_buf_floats(p);
    const size_t nu = (size_t)25 * p->Cout * p->Cin;
    const int R = p->B * p->th;
    const int Cin = p->Cin, Cout = p->Cout, tc = p->tc;
    const int tcw = p->tcw, nchw = p->nchw;
    float *Vw = ws->tiles, *Mw = ws->tiles + 25 * xi_stride(Cin, tcw);
#pragma omp parallel num_threads(p->nt)
    {
        const int tid = omp_get_thread_num();
        float *rb = ws->rows + (size_t)tid * wino_rows_floats(p);
        if (dw) { /* as in wino_backward: each of the 25 dU GEMMs owned by one thread */
#pragma omp for schedule(static)
            for (size_t e = 0; e < nu; e++) dU[e] = 0.0f;
            for (int ch = 0; ch < nchw; ch++) {
                int r0, r1;
                chunk_rows(R, nchw, ch, &r0, &r1);
                const int n = (r1 - r0) * p->tw;
#pragma omp for schedule(static)
                for (int c = 0; c < Cin + Cout; c++) {
                    if (c < Cin) wino_s2_input(Vw, tcw, x, Cin, c, c + 1, p->H, p->W, p->th, p->tw, r0, r1, rb);
                    else wino_s2_grad_output(Mw, tcw, dout, Cout, c - Cin, c - Cin + 1, p->Ho, p->Wo, p->th, p->tw, r0, r1, rb);
                }
#pragma omp for schedule(static)
                for (int xi = 0; xi < 25; xi++)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Cout, Cin, n, 1.0f, Mw + xi * xi_stride(Cout, tcw),
                                tcw, Vw + xi * xi_stride(Cin, tcw), tcw, 1.0f, dU + (size_t)xi * Cout * Cin, Cin);
            }
            wino_s2_weight_grad(dw, dU, Cout, Cin);
        }
        if (dx) { /* dV[xi] [Cin, n] = U[xi]^T . dM[xi], dx += adjoint input transform; even chunks first */
            float *b1 = ws->tiles + (size_t)tid * wino_thread_floats(p), *b2 = b1 + buf;
            for (int ph = 0; ph < 2; ph++) {
#pragma omp for schedule(static)
                for (int i = 0; i < (p->nchunks + 1 - ph) / 2; i++) {
                    const int ch = 2 * i + ph;
                    int r0, r1;
                    chunk_rows(R, p->nchunks, ch, &r0, &r1);
                    const int n = (r1 - r0) * p->tw;
                    wino_s2_grad_output(b2, tc, dout, Cout, 0, Cout, p->Ho, p->Wo, p->th, p->tw, r0, r1, rb);
                    for (int xi = 0; xi < 25; xi++)
                        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Cin, n, Cout, 1.0f, U + (size_t)xi * Cout * Cin,
                                    Cin, b2 + xi * xi_stride(Cout, tc), tc, 0.0f, b1 + xi * xi_stride(Cin, tc), tc);
                    wino_s2_input_adjoint(dx, b1, tc, Cin, p->H, p->W, p->th, p->tw, r0, r1, rb);
                }
            }
        }
    }
}

/* ================================================================ direct 3x3, pad 1, stride 1 or 2 (forward)
 *
 * out[co, y, x0..x0+15] accumulates w[co, t] * src[base(y, x0) + off[t]] over the taps t = (ci, ky, kx): with
 * the input laid out as "planes" in which every tap of a 16-pixel output run is one contiguous 16-float run,
 * the convolution is a GEMM [Cout, Cin*9] x [Cin*9, pixels] whose B operand is read in place (no im2col).
 *  - stride 1: the planes are the zero-padded input rows, row stride rs = W + 2; tap (ky, kx) is at
 *    ky*rs + kx from the output pixel.
 *  - stride 2: the padded input P splits into 4 phase planes Q[py][px][i][j] = P[2i+py][2j+px] of row
 *    stride rs = Wo + 1; output (y, x) under tap (ky, kx) reads Q[ky&1][kx&1][y + ky/2][x + kx/2].
 * Output runs of 16 pixels go along the rows (the last run of a row is stored with its tail cut off: its
 * extra lanes read the next row or the zeroed slack and are thrown away). A tile is 4 output channels x 4
 * runs = 16 accumulator registers, each tap costs 4 loads and 4 broadcasts for 16 FMAs; the weights are
 * read in PyTorch's layout (4 sequential streams), never repacked. Tasks are bands of output rows of one
 * image whose planes (built per task) fit in L2; tile loops run channel block outer, runs inner, so a
 * block's weights stay in L1 while the runs stream from L2. On the 2-core Zen 4 this runs the
 * 256x32^2 stride-2 conv at ~95 % of the measured FMA peak (bench/RESULTS.md). */

#define DIRECT_BAND_BYTES (400u << 10)
static inline direct_vec dvec_load(const float *p) {
    direct_vec v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void dvec_store(float *p, direct_vec v) { memcpy(p, &v, sizeof v); }
#if DIRECT_LANES == 8
typedef int32_t direct_ivec __attribute__((vector_size(32)));
#define DVEC_EVENS(a, b) __builtin_shuffle(a, b, (direct_ivec){0, 2, 4, 6, 8, 10, 12, 14})
#define DVEC_ODDS(a, b) __builtin_shuffle(a, b, (direct_ivec){1, 3, 5, 7, 9, 11, 13, 15})
#elif DIRECT_LANES == 4
typedef int32_t direct_ivec __attribute__((vector_size(16)));
#define DVEC_EVENS(a, b) __builtin_shuffle(a, b, (direct_ivec){0, 2, 4, 6})
#define DVEC_ODDS(a, b) __builtin_shuffle(a, b, (direct_ivec){1, 3, 5, 7})
#endif
static inline direct_vec dvec_set1(float x) {
#if DIRECT_LANES == 16
    return v16_set1(x);
#elif DIRECT_LANES == 8
    return (direct_vec){x, x, x, x, x, x, x, x};
#else
    return (direct_vec){x, x, x, x};
#endif
}

/* Band planes of one image: channel stride (floats) and plane rows for bands of at most `rows` rows. */
static int direct_plane_rows(const conv_plan *p, int rows) { return p->s == 1 ? rows + 2 : rows + 1; }
static size_t direct_chan_floats(const conv_plan *p, int rows) {
    return (size_t)(p->s == 1 ? 1 : 4) * direct_plane_rows(p, rows) * p->drs;
}
static size_t direct_thread_floats(const conv_plan *p) { return (size_t)p->Cin * direct_chan_floats(p, p->rows) + 64; }
static size_t direct_scratch_floats(const conv_plan *p) {
    return (size_t)p->nt * direct_thread_floats(p) + (size_t)p->Ckk + 64; /* + tap offsets (ints) */
}

/* Bands of `rows` output rows (the last one may be shorter): one band's planes take about
 * DIRECT_BAND_BYTES (L2), a band is a whole number of tiles where it can be (a partial tile has fewer
 * accumulators to hide the FMA latency behind), and there are at least nt tasks. Measured on the
 * 256x32^2 stride-2 conv: 4-row bands (348 KiB of planes) 5.69 ms, whole images (1.2 MiB) 5.76 ms,
 * 6-row bands 6.15 ms. */
static void direct_plan(conv_plan *p) {
    p->drs = p->s == 1 ? p->W + 2 : p->Wo + 1;
    /* Stride 2: a row stride of whole vectors puts every run and 6 of the 9 taps on a vector boundary
     * (loads that do not split a cache line); worth its padding where that is at most a quarter of the
     * row (64x128^2 -> 64^2 forward: Intel Xeon AVX-512 +8-23 %, Zen 3 AVX2 +3-9 %; at Wo 16 with 16
     * lanes the wider planes halve the band and its tiles, -14 %). */
    const int rs_aligned = cdiv(p->Wo + 1, DIRECT_LANES) * DIRECT_LANES;
    if (p->s == 2 && 4 * (rs_aligned - p->drs) <= p->drs) p->drs = rs_aligned;
    const int nvr = cdiv(p->Wo, DIRECT_LANES),
              align = DIRECT_NV / (nvr % DIRECT_NV == 0 ? DIRECT_NV : nvr % 2 == 0 && DIRECT_NV % 2 == 0 ? 2 : 1);
    int rows = p->Ho;
    while (rows > 1 && (double)p->Cin * direct_chan_floats(p, rows) * sizeof(float) > DIRECT_BAND_BYTES) rows--;
    if (rows > align) rows -= rows % align;
    if (p->B * cdiv(p->Ho, rows) < p->nt) rows = imax(1, cdiv(p->Ho, cdiv(p->nt, p->B)));
    p->rows = rows, p->bands = cdiv(p->Ho, rows);
    p->ntasks = p->B * p->bands;
}

/* Tap offsets for the band layout (the same for every band: planes are sized for p->rows rows). */
static void direct_offsets(const conv_plan *p, int *off) {
    const int pr = direct_plane_rows(p, p->rows), rs = p->drs;
    const size_t cs = direct_chan_floats(p, p->rows);
    for (int ci = 0; ci < p->Cin; ci++)
        for (int ky = 0; ky < 3; ky++)
            for (int kx = 0; kx < 3; kx++)
                off[ci * 9 + ky * 3 + kx] = (int)(ci * cs) + (p->s == 1 ? ky * rs + kx
                                                                        : ((ky & 1) * 2 + (kx & 1)) * pr * rs +
                                                                              (ky >> 1) * rs + (kx >> 1));
}

/* Planes of output rows [oy0, oy1) of image xb [Cin, H, W] into buf (layout above), zero padding included. */
static void direct_planes(float *buf, const float *xb, const conv_plan *p, int oy0, int oy1) {
    const int H = p->H, W = p->W, rs = p->drs, pr = direct_plane_rows(p, p->rows), R = oy1 - oy0;
    const size_t cs = direct_chan_floats(p, p->rows);
    for (int ci = 0; ci < p->Cin; ci++) {
        const float *xc = xb + (size_t)ci * H * W;
        float *pc = buf + ci * cs;
        if (p->s == 1) {
            for (int r = 0; r < R + 2; r++) { /* plane row r <- input row oy0 - 1 + r */
                float *d = pc + (size_t)r * rs;
                const int iy = oy0 - 1 + r;
                if (iy < 0 || iy >= H) {
                    memset(d, 0, (size_t)rs * sizeof(float));
                    continue;
                }
                d[0] = 0.0f, d[W + 1] = 0.0f;
                memcpy(d + 1, xc + (size_t)iy * W, (size_t)W * sizeof(float));
            }
        } else {
            for (int py = 0; py < 2; py++)
                for (int i = 0; i < R + 1; i++) { /* phase rows i <- input row 2(oy0+i) + py - 1 */
                    float *d0 = pc + ((size_t)(py * 2) * pr + i) * rs, *d1 = d0 + (size_t)pr * rs;
                    const int iy = 2 * (oy0 + i) + py - 1;
                    if (iy < 0 || iy >= H) {
                        memset(d0, 0, (size_t)rs * sizeof(float));
                        memset(d1, 0, (size_t)rs * sizeof(float));
                        continue;
                    }
                    /* d0[j] = x[2j-1] (px 0), d1[j] = x[2j] (px 1), zero outside [0, W): 32 input floats
                     * give d1[16m..16m+15] (even lanes) and d0[16m+1..16m+16] (odd lanes) */
                    const float *xr = xc + (size_t)iy * W;
                    int j = 0;
                    d0[0] = 0.0f;
#if AM_V16_NATIVE
                    for (; 2 * j + 32 <= W; j += 16) {
                        const am_v16 a = v16_load(xr + 2 * j), b = v16_load(xr + 2 * j + 16);
                        v16_store(d1 + j, AM_EVENS(a, b));
                        v16_store(d0 + j + 1, AM_ODDS(a, b));
                    }
#else
                    for (; 2 * j + 2 * DIRECT_LANES <= W; j += DIRECT_LANES) { /* the same with narrower vectors */
                        const direct_vec a = dvec_load(xr + 2 * j), b = dvec_load(xr + 2 * j + DIRECT_LANES);
                        dvec_store(d1 + j, DVEC_EVENS(a, b));
                        dvec_store(d0 + j + 1, DVEC_ODDS(a, b));
                    }
#endif
                    for (; j < rs; j++) {
                        d1[j] = 2 * j < W ? xr[2 * j] : 0.0f;
                        if (j + 1 < rs) d0[j + 1] = 2 * j + 1 < W ? xr[2 * j + 1] : 0.0f;
                    }
                }
        }
    }
    memset(buf + (size_t)p->Cin * cs, 0, 64 * sizeof(float)); /* slack read by the cut-off lanes */
}

/* One tile: CO output channels x NV runs of DIRECT_LANES pixels, all K taps, bias added, runs cut to len[v].
 * Weight of channel c, tap t: w[c*wcs + t] (WT 0: forward, PyTorch layout) or w[c*wcs + woff[t]] (WT 1: the
 * dx pass reads w[co, ci] transposed in place). CO, NV and WT are compile-time constants at every call
 * (direct_tile dispatches), so acc stays in registers. */
static inline __attribute__((always_inline)) void direct_tile_body(const int CO, const int NV, const int WT,
                                                                    float *out, size_t ocs, const int *ob,
                                                                    const int *len, const float *w, size_t wcs,
                                                                    const int *woff, int K, const float *src,
                                                                    const int *vb, const int *off,
                                                                    const float *bias) {
    direct_vec acc[DIRECT_CO][DIRECT_NV];
    const float *s[DIRECT_NV];
    for (int v = 0; v < NV; v++) s[v] = src + vb[v];
    for (int c = 0; c < CO; c++)
        for (int v = 0; v < NV; v++) acc[c][v] = dvec_set1(bias ? bias[c] : 0.0f);
    for (int t = 0; t < K; t++) {
        const int o = off[t];
        const float *wt = w + (WT ? woff[t] : t);
        direct_vec b[DIRECT_NV];
        for (int v = 0; v < NV; v++) b[v] = dvec_load(s[v] + o);
        for (int c = 0; c < CO; c++) {
            const direct_vec wc = dvec_set1(wt[(size_t)c * wcs]);
            for (int v = 0; v < NV; v++) acc[c][v] += wc * b[v];
        }
    }
    for (int c = 0; c < CO; c++)
        for (int v = 0; v < NV; v++) {
            float *d = out + c * ocs + ob[v];
            if (len[v] == DIRECT_LANES) dvec_store(d, acc[c][v]);
            else {
                float tmp[DIRECT_LANES];
                dvec_store(tmp, acc[c][v]);
                memcpy(d, tmp, (size_t)len[v] * sizeof(float));
            }
        }
}

static void direct_tile(int co, int nv, float *out, size_t ocs, const int *ob, const int *len, const float *w,
                        size_t wcs, const int *woff, int K, const float *src, const int *vb, const int *off,
                        const float *bias) {
#define DT(C, V, T) direct_tile_body(C, V, T, out, ocs, ob, len, w, wcs, woff, K, src, vb, off, bias)
#define DT_NV(C, T)                                                                                              \
    switch (nv) {                                                                                                \
    case 6: DT(C, DIRECT_NV >= 6 ? 6 : 1, T); break;                                                             \
    case 5: DT(C, DIRECT_NV >= 5 ? 5 : 1, T); break;                                                             \
    case 4: DT(C, DIRECT_NV >= 4 ? 4 : 1, T); break;                                                             \
    case 3: DT(C, DIRECT_NV >= 3 ? 3 : 1, T); break;                                                             \
    case 2: DT(C, 2, T); break;                                                                                  \
    default: DT(C, 1, T); break;                                                                                 \
    }
    if (co == DIRECT_CO) {
        if (woff) DT_NV(4, 1) else DT_NV(4, 0)
        return;
    }
    /* channel remainder (Cout % 4, or a final conv's 3 channels) in one narrower tile, so that each operand
     * load feeds all its channels (one channel at a time reloaded every run per channel: 4.2 vs 2.0 ms
     * at 64x128^2 -> 3) */
    if (co == 3) {
        if (woff) DT_NV(3, 1) else DT_NV(3, 0)
    } else if (co == 2) {
        if (woff) DT_NV(2, 1) else DT_NV(2, 0)
    } else {
        if (woff) DT_NV(1, 1) else DT_NV(1, 0)
    }
#undef DT_NV
#undef DT
}

static void direct_forward(const conv_plan *p, float *out, const float *x, const float *w, const float *bias,
                           float *scratch) {
    int *off = (int *)(scratch + (size_t)p->nt * direct_thread_floats(p));
    direct_offsets(p, off);
    const int nvr = cdiv(p->Wo, DIRECT_LANES), K = p->Ckk;
#pragma omp parallel for schedule(static) num_threads(p->nt)
    for (int t = 0; t < p->ntasks; t++) {
        float *buf = scratch + (size_t)omp_get_thread_num() * direct_thread_floats(p);
        const int b = t / p->bands;
        const int oy0 = (t % p->bands) * p->rows, oy1 = imin(p->Ho, oy0 + p->rows);
        direct_planes(buf, x + (size_t)b * p->Cin * p->H * p->W, p, oy0, oy1);
        float *ob_img = out + (size_t)b * p->Cout * p->P;
        const int nruns = (oy1 - oy0) * nvr;
        for (int c0 = 0; c0 < p->Cout; c0 += DIRECT_CO) {
            const int co = imin(DIRECT_CO, p->Cout - c0);
            for (int r0 = 0; r0 < nruns; r0 += DIRECT_NV) {
                const int nv = imin(DIRECT_NV, nruns - r0);
                int vb[DIRECT_NV], ob[DIRECT_NV], len[DIRECT_NV];
                for (int v = 0; v < nv; v++) {
                    const int y = (r0 + v) / nvr, x0 = DIRECT_LANES * ((r0 + v) % nvr);
                    vb[v] = y * p->drs + x0, ob[v] = (oy0 + y) * p->Wo + x0, len[v] = imin(DIRECT_LANES, p->Wo - x0);
                }
                direct_tile(co, nv, ob_img + (size_t)c0 * p->P, (size_t)p->P, ob, len, w + (size_t)c0 * K, (size_t)K,
                            NULL, K, buf, vb, off, bias ? bias + c0 : NULL);
            }
        }
    }
}

/* ---------------------------------------------------------------- direct backward, stride 2
 * 3x3 stride 2 pad 1 with Cout a multiple of 16 (every Downsample conv). Shared scratch: a zero row,
 * dout transposed to [B*P, Cout] (16x16 register transposes), dout padded to D [B, Cout, Ho+1, Wo+1]
 * (a zero row and column at the end) and the dx tap tables; per thread the 4 dx parts of 4 channels.
 *  - dW[co, (ci,ky,kx)] = sum over images and output pixels of dout[co, y, x] * x[ci, 2y+ky-1, 2x+kx-1]:
 *    32 output channels x the 9 taps of one input channel in 18 accumulators; per pixel two loads of
 *    dout^T and 9 broadcasts of input values read in place (stride 2 is free for a broadcast): no
 *    im2col, no horizontal sums.
 *  - dx by its 4 polyphase parts E_ab[ci, u, v] = dx[ci, 2u+a, 2v+b], each a direct conv of D with
 *    the forward's tile kernel: a = 0 takes ky = 1 at row u, a = 1 takes ky = 0 at row u+1 and ky = 2 at
 *    row u (likewise b, kx); w[co, ci, ky, kx] is read in place (WT 1; a repacked copy ran the tiles
 *    ~5 % faster but cost as much to build). A task computes the 4 parts of 4 input channels of one
 *    image and adds them, interleaved, into dx while they are in L1. */
typedef struct direct_bwd_layout {
    size_t zeros, doutT, D, tables, thread; /* offsets in floats */
    int Hd, rsd;          /* D rows and row stride */
} direct_bwd_layout;

static direct_bwd_layout direct_bwd_split(const conv_plan *p) {
    direct_bwd_layout L;
    L.Hd = p->Ho + 1, L.rsd = p->Wo + 1;
    L.zeros = 0;
    L.doutT = L.zeros + (size_t)p->W + 64;
    L.D = L.doutT + (size_t)p->B * p->P * p->Cout + 64;
    const size_t dsz = (size_t)p->B * p->Cout * L.Hd * L.rsd + 64;
    L.tables = L.D + dsz;
    L.thread = L.tables + (size_t)32 * p->Cout + 64; /* 2 x 16*Cout ints */
    return L;
}
static size_t direct_bwd_thread_floats(const conv_plan *p) {
    return (size_t)4 * DIRECT_CO * ((p->H + 1) / 2) * ((p->W + 1) / 2) + 64; /* the 4 parts of 4 channels */
}
static size_t direct_bwd_scratch_floats(const conv_plan *p) {
    return direct_bwd_split(p).thread + (size_t)p->nt * direct_bwd_thread_floats(p) + 64;
}

/* dW tile: 16*NC output channels (from co0) x the 9 taps of input channel ci, summed over all pixels.
 * Reads x directly (each tap value is a broadcast, so stride 2 costs nothing); rows outside the image
 * point at `zeros` [W], the first and (odd W) last output columns have their padding taps spelled out. */
static inline __attribute__((always_inline)) void direct_dw_pixel(const int NC, am_v16 acc[9][2], const float *gq,
                                                                   const float v[9]) {
    am_v16 g[2];
    for (int n = 0; n < NC; n++) g[n] = v16_load(gq + 16 * n);
    for (int t = 0; t < 9; t++) {
        const am_v16 vt = v16_set1(v[t]);
        for (int n = 0; n < NC; n++) acc[t][n] += vt * g[n];
    }
}
static inline __attribute__((always_inline)) void direct_dw_tile(const int NC, const conv_plan *p, float *dw,
                                                                  const float *x, const float *zeros,
                                                                  const float *doutT, int co0, int ci) {
    const int H = p->H, W = p->W, Wo = p->Wo, Cout = p->Cout;
    const int xe = 2 * (Wo - 1) + 1 < W ? Wo : imax(1, Wo - 1); /* columns [1, xe) have all 3 taps inside */
    am_v16 acc[9][2];
    for (int t = 0; t < 9; t++)
        for (int n = 0; n < NC; n++) acc[t][n] = v16_set1(0.0f);
    for (int b = 0; b < p->B; b++) {
        const float *xc = x + ((size_t)b * p->Cin + ci) * H * W;
        const float *g = doutT + (size_t)b * p->P * Cout + co0;
        for (int y = 0; y < p->Ho; y++) {
            const float *r[3];
            for (int ky = 0; ky < 3; ky++) {
                const int iy = 2 * y + ky - 1;
                r[ky] = iy >= 0 && iy < H ? xc + (size_t)iy * W : zeros;
            }
            const float *r0 = r[0], *r1 = r[1], *r2 = r[2], *gq = g + (size_t)y * Wo * Cout;
            { /* ox = 0: column -1 is padding (W >= 2 here, or the next column is padding too) */
                const float v[9] = {0.0f, r0[0], W > 1 ? r0[1] : 0.0f, 0.0f, r1[0], W > 1 ? r1[1] : 0.0f,
                                    0.0f, r2[0], W > 1 ? r2[1] : 0.0f};
                direct_dw_pixel(NC, acc, gq, v);
            }
            for (int ox = 1; ox < xe; ox++) {
                const int i = 2 * ox - 1;
                const float v[9] = {r0[i], r0[i + 1], r0[i + 2], r1[i], r1[i + 1], r1[i + 2], r2[i], r2[i + 1], r2[i + 2]};
                direct_dw_pixel(NC, acc, gq + (size_t)ox * Cout, v);
            }
            if (xe < Wo && Wo > 1) { /* odd W: the last column's right tap is padding */
                const int i = 2 * (Wo - 1) - 1;
                const float v[9] = {r0[i], r0[i + 1], 0.0f, r1[i], r1[i + 1], 0.0f, r2[i], r2[i + 1], 0.0f};
                direct_dw_pixel(NC, acc, gq + (size_t)(Wo - 1) * Cout, v);
            }
        }
    }
    for (int c = 0; c < 16 * NC; c++)
        for (int t = 0; t < 9; t++) dw[(size_t)(co0 + c) * p->Ckk + ci * 9 + t] += acc[t][c >> 4][c & 15];
}

static void direct_backward(const conv_plan *p, float *dx, float *dw, const float *dout, const float *x,
                            const float *w, float *scratch) {
    const direct_bwd_layout L = direct_bwd_split(p);
    float *zeros = scratch + L.zeros, *doutT = scratch + L.doutT, *D = scratch + L.D;
    memset(zeros, 0, (size_t)p->W * sizeof(float));
    const int Cout = p->Cout, Cin = p->Cin, P = p->P, Ho = p->Ho, Wo = p->Wo;
#pragma omp parallel num_threads(p->nt)
    {
        if (dw) {
            const int nqb = cdiv(P, 16);
#pragma omp for schedule(static)
            for (int i = 0; i < p->B * nqb; i++) { /* dout^T in 16x16 blocks (Cout % 16 == 0) */
                const int b = i / nqb, q0 = (i % nqb) * 16, nq = imin(16, P - q0);
                for (int c0 = 0; c0 < Cout; c0 += 16) {
                    const float *src = dout + ((size_t)b * Cout + c0) * P + q0;
                    float *dst = doutT + ((size_t)b * P + q0) * Cout + c0;
                    if (nq < 16) {
                        for (int c = 0; c < 16; c++)
                            for (int j = 0; j < nq; j++) dst[(size_t)j * Cout + c] = src[(size_t)c * P + j];
                        continue;
                    }
                    am_v16 r[16];
                    for (int c = 0; c < 16; c++) r[c] = v16_load(src + (size_t)c * P);
                    v16_transpose16(r);
                    for (int j = 0; j < 16; j++) v16_store(dst + (size_t)j * Cout, r[j]);
                }
            }
            const int CW = 32; /* 48 (27 accumulators) measured 10 % slower: spills */
            const int ncb = cdiv(Cout, CW);
#pragma omp for schedule(static)
            for (int task = 0; task < ncb * Cin; task++) {
                const int cb = task / Cin, ci = task % Cin, co0 = cb * CW, nc = imin(CW, Cout - co0) / 16;
                if (nc == 2) direct_dw_tile(2, p, dw, x, zeros, doutT, co0, ci);
                else direct_dw_tile(1, p, dw, x, zeros, doutT, co0, ci);
            }
        }
        if (dx) {
#pragma omp for schedule(static)
            for (int bc = 0; bc < p->B * Cout; bc++) { /* D = dout with a zero row and column at the end */
                float *d = D + (size_t)bc * L.Hd * L.rsd;
                const float *src = dout + (size_t)bc * P;
                for (int y = 0; y < Ho; y++) {
                    memcpy(d + (size_t)y * L.rsd, src + (size_t)y * Wo, (size_t)Wo * sizeof(float));
                    d[(size_t)y * L.rsd + Wo] = 0.0f;
                }
                memset(d + (size_t)Ho * L.rsd, 0, (size_t)L.rsd * sizeof(float));
            }
            if (omp_get_thread_num() == 0) memset(D + (size_t)p->B * Cout * L.Hd * L.rsd, 0, 64 * sizeof(float));
#pragma omp barrier
            float *E = scratch + L.thread + (size_t)omp_get_thread_num() * direct_bwd_thread_floats(p);
            const int Hh[2] = {(p->H + 1) / 2, p->H / 2}, Wh[2] = {(p->W + 1) / 2, p->W / 2}; /* rows/cols of E_ab */
            const size_t esz = (size_t)Hh[0] * Wh[0];
            /* tap tables of part (a, bb) at woffs + 4*Cout*(2a+bb): ky in {1} (a 0) or {0 -> D row +1, 2} (a 1),
             * likewise kx; weight offset of input channel 0 and offset into D */
            int *woffs = (int *)(scratch + L.tables), *offs = woffs + 16 * Cout;
#pragma omp for schedule(static)
            for (int co_ = 0; co_ < Cout; co_++)
                for (int a = 0; a < 2; a++)
                    for (int bb = 0; bb < 2; bb++) {
                        const int nky = a ? 2 : 1, nkx = bb ? 2 : 1, nt = nky * nkx, base = 4 * Cout * (2 * a + bb);
                        for (int i = 0; i < nky; i++)
                            for (int j = 0; j < nkx; j++) {
                                const int ky = a ? 2 * i : 1, kx = bb ? 2 * j : 1, t = base + co_ * nt + i * nkx + j;
                                woffs[t] = co_ * Cin * 9 + ky * 3 + kx;
                                offs[t] = (int)(co_ * L.Hd * L.rsd) + (ky == 0) * L.rsd + (kx == 0);
                            }
                    }
            const size_t dimg = (size_t)Cout * L.Hd * L.rsd;
            const int ncb = cdiv(Cin, DIRECT_CO);
#pragma omp for schedule(static)
            for (int task = 0; task < p->B * ncb; task++) {
                const int b = task / ncb, c0 = (task % ncb) * DIRECT_CO, co = imin(DIRECT_CO, Cin - c0);
                for (int a = 0; a < 2; a++)
                    for (int bb = 0; bb < 2; bb++) {
                        const int K = Cout * (a ? 2 : 1) * (bb ? 2 : 1);
                        const int *woff = woffs + 4 * Cout * (2 * a + bb), *off = offs + 4 * Cout * (2 * a + bb);
                        const int Hr = Hh[a], Wr = Wh[bb], nvr = cdiv(Wr, DIRECT_LANES), nruns = Hr * nvr;
                        float *e = E + (size_t)(a * 2 + bb) * DIRECT_CO * esz;
                        for (int r0 = 0; r0 < nruns; r0 += DIRECT_NV) {
                            const int nv = imin(DIRECT_NV, nruns - r0);
                            int vb[DIRECT_NV], ob[DIRECT_NV], len[DIRECT_NV];
                            for (int v = 0; v < nv; v++) {
                                const int u = (r0 + v) / nvr, v0 = DIRECT_LANES * ((r0 + v) % nvr);
                                vb[v] = u * L.rsd + v0, ob[v] = u * Wr + v0, len[v] = imin(DIRECT_LANES, Wr - v0);
                            }
                            direct_tile(co, nv, e, esz, ob, len, w + (size_t)c0 * 9, 9, woff, K, D + b * dimg, vb, off,
                                        NULL);
                        }
                    }
                /* dx[ci, 2u+a, 2v+bb] += E_ab[ci, u, v] */
                for (int c = 0; c < co; c++) {
                    float *dxc = dx + ((size_t)b * Cin + c0 + c) * p->H * p->W;
                    for (int a = 0; a < 2; a++) {
                        const float *e0 = E + (size_t)(a * 2) * DIRECT_CO * esz + c * esz;
                        const float *e1 = E + (size_t)(a * 2 + 1) * DIRECT_CO * esz + c * esz;
                        for (int u = 0; u < Hh[a]; u++) {
                            float *row = dxc + (size_t)(2 * u + a) * p->W;
                            const float *r0 = e0 + (size_t)u * Wh[0], *r1 = e1 + (size_t)u * Wh[1];
                            int v = 0;
                            for (; 2 * v + 32 <= p->W; v += 16) {
                                const am_v16 ev = v16_load(r0 + v), od = v16_load(r1 + v);
                                v16_store(row + 2 * v, v16_load(row + 2 * v) + AM_ZIP_LO(ev, od));
                                v16_store(row + 2 * v + 16, v16_load(row + 2 * v + 16) + AM_ZIP_HI(ev, od));
                            }
                            for (; 2 * v < p->W; v++) {
                                row[2 * v] += r0[v];
                                if (2 * v + 1 < p->W) row[2 * v + 1] += r1[v];
                            }
                        }
                    }
                }
            }
        }
    }
}

/* ---------------------------------------------------------------- direct backward, stride 1, few outputs
 * 3x3 stride 1 pad 1 with Cout <= FEWOUT_MAX (the final conv to 3 channels), where Winograd's and
 * im2col's per-input-channel transforms are shared by too few outputs.
 *  - dx is the forward direct conv of dout (Cout channels in, Cin out) with w transposed and flipped,
 *    wT[ci, co, ky, kx] = w[co, ci, 2-ky, 2-kx], into scratch and added to dx.
 *  - dW[co, ci, ky, kx] = sum over images and pixels of dout[co, y, x] * x[ci, y+ky-1, x+kx-1]: a task is
 *    one input channel (threads own whole ci: no reduction, the same sums for any thread count); per
 *    image its zero-padded plane, then per ky and row Cout x 3 vector accumulators fed by Cout dout
 *    runs and 3 shifted plane runs; lane sums go to double once per image. */
static conv_plan fewout_dx_plan(const conv_plan *p) {
    conv_plan q;
    memset(&q, 0, sizeof q);
    q.B = p->B, q.Cin = p->Cout, q.H = p->H, q.W = p->W, q.Cout = p->Cin, q.k = 3, q.s = 1, q.pad = 1;
    q.Ho = p->H, q.Wo = p->W, q.P = p->P, q.Ckk = p->Cout * 9, q.nt = p->nt, q.dir = 1;
    direct_plan(&q);
    return q;
}
static size_t fewout_plane_floats(const conv_plan *p) { return (size_t)(p->H + 2) * (p->W + 2) + 64; }
static size_t fewout_bwd_scratch_floats(const conv_plan *p) {
    const conv_plan q = fewout_dx_plan(p);
    const size_t dx = direct_scratch_floats(&q) + (size_t)p->B * p->Cin * p->P + (size_t)p->Ckk * p->Cout;
    const size_t dw = (size_t)p->nt * fewout_plane_floats(p);
    return (dx > dw ? dx : dw) + 64;
}

/* acc[co][kx] += dout[co] run * plane run shifted by kx, over one row of W pixels; tail pixels in double */
static inline __attribute__((always_inline)) void fewout_dw_row(const int CO, direct_vec acc[FEWOUT_MAX][3],
                                                                double tail[FEWOUT_MAX][3], const float *const g[],
                                                                const float *pr, int W) {
    int x0 = 0;
    for (; x0 + DIRECT_LANES <= W; x0 += DIRECT_LANES) {
        const direct_vec a0 = dvec_load(pr + x0), a1 = dvec_load(pr + x0 + 1), a2 = dvec_load(pr + x0 + 2);
        for (int c = 0; c < CO; c++) {
            const direct_vec gv = dvec_load(g[c] + x0);
            acc[c][0] += gv * a0, acc[c][1] += gv * a1, acc[c][2] += gv * a2;
        }
    }
    for (; x0 < W; x0++)
        for (int c = 0; c < CO; c++)
            for (int kx = 0; kx < 3; kx++) tail[c][kx] += (double)g[c][x0] * pr[x0 + kx];
}

static inline __attribute__((always_inline)) void fewout_dw_channel(const int CO, const conv_plan *p, float *dw,
                                                                    const float *dout, const float *x, int ci,
                                                                    float *plane, const conv_plan *q1) {
    const int H = p->H, W = p->W, rs = W + 2;
    double sum[FEWOUT_MAX][9];
    memset(sum, 0, sizeof sum);
    for (int b = 0; b < p->B; b++) {
        direct_planes(plane, x + ((size_t)b * p->Cin + ci) * p->P, q1, 0, H); /* rows -1..H, cols -1..W */
        for (int ky = 0; ky < 3; ky++) {
            direct_vec acc[FEWOUT_MAX][3];
            double tail[FEWOUT_MAX][3];
            memset(tail, 0, sizeof tail);
            for (int c = 0; c < CO; c++)
                for (int kx = 0; kx < 3; kx++) acc[c][kx] = dvec_set1(0.0f);
            for (int y = 0; y < H; y++) {
                const float *g[FEWOUT_MAX];
                for (int c = 0; c < CO; c++) g[c] = dout + ((size_t)b * p->Cout + c) * p->P + (size_t)y * W;
                fewout_dw_row(CO, acc, tail, g, plane + (size_t)(y + ky) * rs, W);
            }
            for (int c = 0; c < CO; c++)
                for (int kx = 0; kx < 3; kx++) {
                    float l[DIRECT_LANES];
                    dvec_store(l, acc[c][kx]);
                    double t = tail[c][kx];
                    for (int i = 0; i < DIRECT_LANES; i++) t += l[i];
                    sum[c][ky * 3 + kx] += t;
                }
        }
    }
    for (int c = 0; c < CO; c++)
        for (int t = 0; t < 9; t++) dw[((size_t)c * p->Cin + ci) * 9 + t] += (float)sum[c][t];
}

static void fewout_backward(const conv_plan *p, float *dx, float *dw, const float *dout, const float *x,
                            const float *w, float *scratch) {
    const int Cin = p->Cin, Cout = p->Cout;
    if (dx) {
        const conv_plan q = fewout_dx_plan(p);
        float *t = scratch + direct_scratch_floats(&q), *wT = t + (size_t)p->B * Cin * p->P;
        for (int ci = 0; ci < Cin; ci++)
            for (int co = 0; co < Cout; co++)
                for (int k = 0; k < 9; k++) wT[((size_t)ci * Cout + co) * 9 + k] = w[((size_t)co * Cin + ci) * 9 + 8 - k];
        direct_forward(&q, t, dout, wT, NULL, scratch);
        const size_t n = (size_t)p->B * Cin * p->P;
#pragma omp parallel for schedule(static) num_threads(p->nt)
        for (size_t i = 0; i < n; i++) dx[i] += t[i];
    }
    if (dw) {
        conv_plan q1; /* one channel's zero-padded plane, as the stride-1 direct forward builds it */
        memset(&q1, 0, sizeof q1);
        q1.Cin = 1, q1.H = p->H, q1.W = p->W, q1.s = 1, q1.rows = p->H, q1.drs = p->W + 2;
#pragma omp parallel for schedule(static) num_threads(p->nt)
        for (int ci = 0; ci < Cin; ci++) {
            float *plane = scratch + (size_t)omp_get_thread_num() * fewout_plane_floats(p);
            switch (Cout) {
            case 1: fewout_dw_channel(1, p, dw, dout, x, ci, plane, &q1); break;
            case 2: fewout_dw_channel(2, p, dw, dout, x, ci, plane, &q1); break;
            case 3: fewout_dw_channel(3, p, dw, dout, x, ci, plane, &q1); break;
            default: fewout_dw_channel(FEWOUT_MAX, p, dw, dout, x, ci, plane, &q1); break;
            }
        }
    }
}

/* ================================================================ public entry points */

fsd_status fsd_conv2d_forward(float *out, const float *x, const float *w, const float *bias, int B, int Cin,
                              int H, int W, int Cout, int k, int stride, int pad, fsd_arena *ws) {
    conv_plan p;
    fsd_status st = make_plan(&p, B, Cin, H, W, Cout, k, stride, pad, 0);
    if (st != FSD_OK) return st;
    if (!out || !x || !w || !ws) return fsd_fail(FSD_ERR_INVALID, "conv2d_forward: NULL argument");
    const size_t mark = fsd_arena_mark(ws);
    if (p.dir) {
        float *s = ws_floats(ws, direct_scratch_floats(&p), "direct-conv planes");
        if (!s) {
            fsd_arena_reset(ws, mark);
            return FSD_ERR_NOMEM;
        }
        direct_forward(&p, out, x, w, bias, s);
    } else if (p.wino) {
        float *s = ws_floats(ws, wino_scratch_floats(&p, 1, 0), "Winograd tiles");
        if (!s) {
            fsd_arena_reset(ws, mark);
            return FSD_ERR_NOMEM;
        }
        wino_scratch wsp;
        wino_split(&p, s, 1, 0, &wsp);
        if (p.wino == 2) wino_s2_forward(&p, out, x, w, bias, &wsp);
        else wino_forward(&p, out, x, w, bias, &wsp);
    } else {
        float *s = ws_floats(ws, (size_t)p.nt * gemm_thread_floats(&p, 0), "im2col");
        if (!s) {
            fsd_arena_reset(ws, mark);
            return FSD_ERR_NOMEM;
        }
        gemm_forward(&p, out, x, w, bias, s);
    }
    fsd_arena_reset(ws, mark);
    return FSD_OK;
}

/* dbias[co] += sum over batch and pixels of dout[:, co]: 4 independent 16-wide float accumulators per
 * plane (not latency-bound on one register), planes summed in double. */
static void bias_backward(float *db, const float *dout, int B, int Cout, int P) {
#pragma omp parallel for schedule(static)
    for (int co = 0; co < Cout; co++) {
        double s = 0;
        for (int b = 0; b < B; b++) {
            const float *g = dout + ((size_t)b * Cout + co) * P;
            float acc[4][16] = {{0}};
            int i = 0;
            for (; i + 64 <= P; i += 64)
                for (int r = 0; r < 4; r++)
                    for (int j = 0; j < 16; j++) acc[r][j] += g[i + 16 * r + j];
            for (int r = 0; r < 4; r++)
                for (int j = 0; j < 16; j++) s += acc[r][j];
            for (; i < P; i++) s += g[i];
        }
        db[co] += (float)s;
    }
}

fsd_status fsd_conv2d_backward(float *dx, float *dw, float *dbias, const float *dout, const float *x,
                               const float *w, int B, int Cin, int H, int W, int Cout, int k, int stride, int pad,
                               fsd_arena *ws) {
    conv_plan p;
    fsd_status st = make_plan(&p, B, Cin, H, W, Cout, k, stride, pad, 1);
    if (st != FSD_OK) return st;
    if (!dout || !ws || (dw && !x) || (dx && !w))
        return fsd_fail(FSD_ERR_INVALID, "conv2d_backward: NULL argument");
    if (dbias) bias_backward(dbias, dout, B, Cout, p.P);
    if (!dx && !dw) return FSD_OK;
    const size_t mark = fsd_arena_mark(ws);
    if (p.dir) {
        float *s = ws_floats(ws, p.dir == 3 ? fewout_bwd_scratch_floats(&p) : direct_bwd_scratch_floats(&p),
                             "direct-conv planes");
        if (!s) {
            fsd_arena_reset(ws, mark);
            return FSD_ERR_NOMEM;
        }
        if (p.dir == 3) fewout_backward(&p, dx, dw, dout, x, w, s);
        else direct_backward(&p, dx, dw, dout, x, w, s);
    } else if (p.wino) {
        float *s = ws_floats(ws, wino_scratch_floats(&p, dx != NULL, dw != NULL), "Winograd tiles");
        if (!s) {
            fsd_arena_reset(ws, mark);
            return FSD_ERR_NOMEM;
        }
        wino_scratch wsp;
        wino_split(&p, s, dx != NULL, dw != NULL, &wsp);
        if (p.wino == 2) wino_s2_backward(&p, dx, dw, dout, x, w, &wsp);
        else wino_backward(&p, dx, dw, dout, x, w, &wsp);
    } else {
        float *s = ws_floats(ws, (size_t)p.nt * gemm_thread_floats(&p, 1), "im2col");
        if (!s) {
            fsd_arena_reset(ws, mark);
            return FSD_ERR_NOMEM;
        }
        gemm_backward(&p, dx, dw, dout, x, w, s);
    }
    fsd_arena_reset(ws, mark);
    return FSD_OK;
}
