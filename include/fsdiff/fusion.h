/* Classical image fusion: baselines for evaluation and "teachers" that make fused HR targets.
 *
 * All plane methods take two single-channel float planes a, b of the same size w*h (row-major,
 * 0..255 scale) and write a plane of that size to out (out may alias neither input). Internally
 * they compute in double and clip the result to 0..255. Methods (docs/fusion.md has the details):
 *   average    (a + b) / 2
 *   laplacian  Laplacian pyramid fusion (Burt & Adelson 1983): details by max |value|, base averaged
 *   gff        guided filtering fusion (Li, Kang & Hu, IEEE TIP 2013)
 *   gradient   gradient-domain fusion: screened Poisson equation with Neumann borders, solved by DCT
 *   auto       gradient where both sources are dark over a large share of the image (medical scans
 *              on a black background), laplacian otherwise (natural scenes); see fsd_fuse_auto_pick
 * The image wrappers handle colour the way the fusion literature does: the Y channel (BT.601
 * full-range YCbCr) of a colour source is fused with the grey source and its chroma kept. */
#ifndef FSDIFF_FUSION_H
#define FSDIFF_FUSION_H

#include "fsdiff/core.h"
#include "fsdiff/image.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum fsd_fuse_method {
    FSD_FUSE_AVERAGE = 0,
    FSD_FUSE_LAPLACIAN,
    FSD_FUSE_GFF,
    FSD_FUSE_GRADIENT,
    FSD_FUSE_AUTO,
    FSD_FUSE_COUNT
} fsd_fuse_method;

const char *fsd_fuse_method_name(fsd_fuse_method m);
/* "average, laplacian, gff, gradient, auto" */
const char *fsd_fuse_method_list(void);
/* Unknown name: FSD_ERR_INVALID with "unknown fusion method 'x' (valid: average, ...)". */
fsd_status fsd_fuse_method_parse(const char *name, fsd_fuse_method *m);

/* Parameters of all methods; fsd_fuse_params_default() gives the published / documented values. */
typedef struct fsd_fuse_params {
    /* laplacian */
    int lap_levels;       /* pyramid levels incl. the base; 0 = default (fsd_laplacian_default_levels) */
    /* gff (radii in px; eps for images scaled to [0,1], as in the paper) */
    int gff_mean_r;       /* two-scale decomposition: (2r+1)^2 mean filter; 15 -> 31x31 */
    int gff_gauss_r;      /* saliency smoothing: (2r+1)^2 Gaussian; 5 -> 11x11 */
    double gff_gauss_sigma; /* 5 */
    int gff_r1;           /* guided filter for the base weights: 45 */
    double gff_eps1;      /* 0.3 */
    int gff_r2;           /* guided filter for the detail weights: 7 */
    double gff_eps2;      /* 1e-6 */
    /* gradient */
    double grad_lambda;   /* weight of the data term (1/px^2): 0.05 */
} fsd_fuse_params;

void fsd_fuse_params_default(fsd_fuse_params *p);

/* ---------------------------------------------------------------- plane methods */
/* a, b, out: (h, w) */
fsd_status fsd_fuse_average(const float *a, const float *b, int w, int h, float *out);

/* Gaussian pyramid: 5-tap binomial [1 4 6 4 1]/16, separable, reflect borders (d c b | a b c d),
 * keep even pixels (size ceil(n/2)); EXPAND = zero-interleave, same kernel x2 per axis.
 * Default levels: halve while the coarsest side stays >= 8 px, at most 6 levels. */
int fsd_laplacian_default_levels(int w, int h);
fsd_status fsd_fuse_laplacian(const float *a, const float *b, int w, int h, int levels, float *out);

fsd_status fsd_fuse_gff(const float *a, const float *b, int w, int h, const fsd_fuse_params *p, float *out);

/* Target gradient = per pixel the source forward-difference gradient of larger magnitude (a on
 * ties); data term u0 = per pixel max(a, b) (keeps the brighter / hotter source). Solves
 *   lambda (u - u0) - div(grad u - g) = 0   with Neumann borders, by DCT-II.
 * clip = 1 clips to 0..255 (the method); clip = 0 returns the raw solution (tests). */
fsd_status fsd_fuse_gradient(const float *a, const float *b, int w, int h, double lambda, int clip, float *out);

/* Solves (lambda I + L) u = f on an (h, w) grid, L = D^T D the Neumann Laplacian of forward
 * differences (4 - neighbours inside), lambda > 0, by orthonormal DCT-II / DCT-III. f and u may alias. */
fsd_status fsd_poisson_neumann_solve(const double *f, int w, int h, double lambda, double *u);

/* auto: the share of pixels where max(a, b) < FSD_FUSE_DARK_LEVEL (0..255 scale) decides. Over the
 * 941 pairs of ../shared/data, HR or bicubic x2/x4/x8 round trips, it is 0.153-0.822 on the 694
 * medical pairs and 0-0.020 on the 247 infrared-visible ones; at FSD_FUSE_DARK_SHARE or more the pair
 * is fused with gradient (which keeps the brighter source's intensities: bone, PET/SPECT activity),
 * below it with laplacian. The level is low because night scenes are dark but not black (at level 8
 * one MSRS night pair reaches 0.22, one SPECT scan only 0.18). Decide on the whole image: a crop of a
 * scan's interior has no background (the trainer decides once per pair, on the HR sources). */
#define FSD_FUSE_DARK_LEVEL 4.0f
#define FSD_FUSE_DARK_SHARE 0.06
double fsd_fuse_dark_share(const float *a, const float *b, size_t n);
fsd_fuse_method fsd_fuse_auto_pick(double dark_share);

/* Dispatch with parameters (p NULL = defaults); auto is resolved on the planes given. */
fsd_status fsd_fuse_plane(fsd_fuse_method m, const fsd_fuse_params *p, const float *a, const float *b, int w,
                          int h, float *out);

/* ---------------------------------------------------------------- DCT */
/* Orthonormal DCT-II of length n, any n >= 1 (Makhoul's reordering + complex FFT: radix 2, or
 * Bluestein's chirp-z for other lengths), O(n log n). A plan is read-only after creation (thread
 * safe); each call needs fsd_dct_scratch(plan) doubles of scratch. */
typedef struct fsd_dct_plan fsd_dct_plan;
fsd_status fsd_dct_plan_create(int n, fsd_dct_plan **plan);
void fsd_dct_plan_free(fsd_dct_plan *plan);
size_t fsd_dct_scratch(const fsd_dct_plan *plan);
void fsd_dct2(const fsd_dct_plan *plan, double *x, double *scratch); /* in place, x[n] */
void fsd_dct3(const fsd_dct_plan *plan, double *x, double *scratch); /* inverse of fsd_dct2 */

/* ---------------------------------------------------------------- images */
/* Colour convention: grey + grey -> grey. One RGB source: its Y (BT.601 full range) is fused with
 * the grey source, its Cb/Cr are kept unchanged. Two RGB sources: Y fused, Cb/Cr averaged.
 * fsd_fuse_images_ycbcr returns c = 1 (grey) or c = 3 holding Y, Cb, Cr; fsd_fuse_images returns
 * grey or RGB (not clipped; saving as PNG clips). a and b must have the same w, h. */
fsd_status fsd_fuse_images_ycbcr(fsd_fuse_method m, const fsd_fuse_params *p, const fsd_image *a,
                                 const fsd_image *b, fsd_image *out);
fsd_status fsd_fuse_images(fsd_fuse_method m, const fsd_fuse_params *p, const fsd_image *a, const fsd_image *b,
                           fsd_image *out);

/* "SR then fuse" baseline: a and b are low resolution; each is upsampled by PIL-compatible bicubic
 * to round(w * scale), round(h * scale) (its own scale; 8-bit exact path when it holds integers)
 * and then fused. The two upsampled sizes must be equal (else FSD_ERR_INVALID naming both). */
fsd_status fsd_fuse_images_upscaled(fsd_fuse_method m, const fsd_fuse_params *p, const fsd_image *a,
                                    double scale_a, const fsd_image *b, double scale_b, fsd_image *out);

#ifdef __cplusplus
}
#endif
#endif
