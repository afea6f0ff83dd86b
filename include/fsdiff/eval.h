/* Evaluation of joint fusion + super-resolution methods on a folder of source pairs
 * (docs/eval.md): make the low-resolution inputs with fsd_degrade, run every method, score each
 * output with the fusion metric suite against the high-resolution sources, summarise, and write
 * results.csv, summary.md and report.html (contact sheets + bar charts).
 *
 * Depends on image, metrics and fusion, and on the model inference (fuse.h) for "model:PATH". A
 * method is an entry of a small registry with a run function pointer. */
#ifndef FSDIFF_EVAL_H
#define FSDIFF_EVAL_H

#include "fsdiff/core.h"
#include "fsdiff/fusion.h"
#include "fsdiff/image.h"
#include "fsdiff/pairs.h"
#include "fsdiff/metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- methods */
/* What a method gets for one pair. The low-resolution inputs are what a real method sees; the
 * high-resolution sources are there only for the "hr:" ceilings (and the metrics). */
typedef struct fsd_eval_input {
    const fsd_image *lr_a, *lr_b; /* degraded sources, 8-bit values, size round(w/S) x round(h/S) */
    const fsd_image *hr_a, *hr_b; /* the high-resolution sources */
    int hr_w, hr_h;               /* the size the output must have */
    double scale;                 /* S */
} fsd_eval_input;

typedef struct fsd_eval_method fsd_eval_method;
/* Writes the fused HR image (c = 1 grey or 3 RGB, hr_w x hr_h, 0..255 scale, need not be rounded
 * or clipped) to *out, allocated by the callee. Called for several pairs at once from different
 * threads: it must only read *m. */
typedef fsd_status (*fsd_eval_run_fn)(const fsd_eval_method *m, const fsd_eval_input *in, fsd_image *out);

struct fsd_eval_method {
    char name[256];         /* as written in the list: "gff", "hr:gff", "bicubic-a", "model:PATH" */
    int uses_hr;            /* 1: reads the HR sources (a ceiling, not a competitor) */
    fsd_fuse_method fuse;   /* classical entries: the fusion rule */
    fsd_fuse_params params; /* classical entries: its parameters (defaults) */
    fsd_eval_run_fn run;
    int serial;             /* 1: run() is parallel itself and not reentrant (a model): pairs run one
                               at a time, each run() gets all threads */
    void *ctx;                   /* entry state (e.g. a loaded model), freed with free_ctx */
    void (*free_ctx)(void *ctx); /* NULL when there is none */
};

/* Parses a comma-separated list, e.g. "average,laplacian,gff,gradient,hr:gff". Forms:
 *   NAME          classical NAME on the LR sources bicubic-upsampled (PIL) to the HR size
 *                 ("SR then fuse"); NAME = average | laplacian | gff | gradient
 *   hr:NAME       classical NAME on the HR sources (the ceiling perfect SR would allow)
 *   bicubic-a     source A alone, bicubic-upsampled (single-source baseline); bicubic-b likewise
 *   model:PATH    the FS-Diff model file PATH (fsd_fuse_run_size on the LR pair at the HR size), with
 *                 optional settings model:PATH?steps=N&sampler=K&seed=N&eta=E&spacing=SP&context=MODE
 *                 &tile=N&overlap=N (default: the model's; seed 0). A model that cannot be opened
 *                 fails with the loader's message (FSD_ERR_IO / FSD_ERR_FORMAT).
 * An unknown or empty entry, or an entry given twice, fails with one message listing the forms.
 * *out: fsd_eval_methods_free. */
fsd_status fsd_eval_methods_parse(const char *list, fsd_eval_method **out, int *n);
void fsd_eval_methods_free(fsd_eval_method *m, int n);
/* One line describing the valid forms (for messages and --help). */
const char *fsd_eval_method_forms(void);
/* The default list: the four classical methods as SR-then-fuse and as hr: ceilings. */
#define FSD_EVAL_DEFAULT_METHODS "average,laplacian,gff,gradient,hr:average,hr:laplacian,hr:gff,hr:gradient"

/* ---------------------------------------------------------------- running */
typedef struct fsd_eval_options {
    fsd_degrade_params degrade; /* scale, blur, noise; seed: see fsd_eval_source_seed */
    int n_sheets;               /* the first n pairs get contact-sheet images ... */
    const char *img_dir;        /* ... written into this existing folder (NULL: no sheets) */
    volatile int *cancel;       /* optional: set non-zero (a signal handler) to stop early */
    const char *label;          /* progress-bar label (NULL: "eval") */
} fsd_eval_options;

/* The noise seed of one source: a hash of (seed, NAME, which = 0 for A / 1 for B), so every image
 * gets its own noise and a pair's noise does not depend on --limit or on the other pairs. */
uint64_t fsd_eval_source_seed(uint64_t seed, const char *name, int which);

typedef struct fsd_eval_result {
    fsd_metrics m;  /* fusion metrics of the output (8-bit grey) against the HR sources */
    double seconds; /* wall time of the method's run() for this pair */
} fsd_eval_result;

typedef struct fsd_eval_results {
    int n_pairs, n_methods;
    fsd_eval_result *r;     /* [n_pairs][n_methods] */
    int *w, *h, *lw, *lh;   /* [n_pairs]: HR and LR sizes */
    int *sheet_crop;        /* [n_pairs][4]: crop x, y, size, zoom of the sheet (0 when none) */
    double seconds_total;   /* wall time of fsd_eval_run */
} fsd_eval_results;

/* Evaluates every pair (in parallel, one pair per thread; the progress bar counts pairs).
 * Per pair: load A and B (same size, >= fsd_metrics_min_size(), LR >= FSD_DEGRADE_MIN_SIZE px),
 * degrade each, run each method, round and clip its output to 8 bits (as if saved), convert it
 * to grey round(0.299 R + 0.587 G + 0.114 B) and compute fsd_metrics_compute against the grey HR
 * sources. Any failure stops the run; the message is that of the first failing pair in order and
 * names its file. With opt->img_dir, the sheet images of the first opt->n_sheets pairs are written
 * there (file names: fsd_eval_sheet_file). On failure *res is empty. */
fsd_status fsd_eval_run(const fsd_pair_set *set, const fsd_eval_method *methods, int n_methods,
                        const fsd_eval_options *opt, fsd_eval_results *res);
void fsd_eval_results_free(fsd_eval_results *res);

/* ---------------------------------------------------------------- summary */
typedef struct fsd_eval_stat {
    double mean, std; /* over the finite values; std is the population one (ddof 0) */
    int n;            /* finite values */
    int n_inf;        /* +inf values left out (PSNR of identical images) */
} fsd_eval_stat;

/* stat[method * (FSD_METRIC_COUNT + 1) + k]: k < FSD_METRIC_COUNT a metric, k = FSD_METRIC_COUNT the
 * seconds. best[k * 2 + g] = index of the method with the best mean of metric k within group g
 * (0: methods that see only the LR inputs, 1: hr: ceilings; the first on ties), -1 when the group has
 * fewer than two methods (nothing to compare). */
typedef struct fsd_eval_summary {
    int n_methods;
    fsd_eval_stat *stat;
    int best[FSD_METRIC_COUNT * 2];
} fsd_eval_summary;

fsd_status fsd_eval_summarise(const fsd_eval_results *res, const fsd_eval_method *methods, fsd_eval_summary *sum);
void fsd_eval_summary_free(fsd_eval_summary *sum);

/* ---------------------------------------------------------------- reports */
/* What the report prints about the run. */
typedef struct fsd_eval_report_info {
    const char *command;  /* the command line */
    const char *data_dir; /* as given */
    int threads;
} fsd_eval_report_info;

/* Sheet image file names inside img_dir, e.g. "p003_m02_full.png": pair p, column col
 * (FSD_EVAL_COL_* for the inputs, else method index), kind 0 = thumbnail, 1 = zoomed crop. */
enum { FSD_EVAL_COL_LR_A = -4, FSD_EVAL_COL_LR_B = -3, FSD_EVAL_COL_HR_A = -2, FSD_EVAL_COL_HR_B = -1 };
void fsd_eval_sheet_file(char *buf, size_t n, int pair, int col, int kind);

/* results.csv: header "image,method,scale,EN,...,PSNR,seconds", one row per pair x method
 * (pair-major), metrics with 10 significant digits, +inf as "inf". */
fsd_status fsd_eval_write_csv(const char *path, const fsd_pair_set *set, const fsd_eval_method *methods,
                              const fsd_eval_results *res, double scale);
/* summary.md: settings, then one table, mean ± std per method and metric, best per group in bold. */
fsd_status fsd_eval_write_summary(const char *path, const fsd_pair_set *set, const fsd_eval_method *methods,
                                  const fsd_eval_results *res, const fsd_eval_summary *sum,
                                  const fsd_eval_options *opt, const fsd_eval_report_info *info);
/* Just the markdown table of summary.md (for the README), to fp. */
void fsd_eval_print_table(FILE *fp, const fsd_eval_method *methods, const fsd_eval_summary *sum);
/* report.html: self-contained page (inline CSS and SVG charts) referencing img/ beside it. */
fsd_status fsd_eval_write_html(const char *path, const fsd_pair_set *set, const fsd_eval_method *methods,
                               const fsd_eval_results *res, const fsd_eval_summary *sum,
                               const fsd_eval_options *opt, const fsd_eval_report_info *info);
/* The summary as one JSON object (settings, per method: mean/std/n/n_inf of each metric and of
 * the seconds). Non-finite numbers are written as null. */
void fsd_eval_write_json(FILE *fp, const fsd_pair_set *set, const fsd_eval_method *methods,
                         const fsd_eval_results *res, const fsd_eval_summary *sum, const fsd_eval_options *opt,
                         const char *out_dir);

#ifdef __cplusplus
}
#endif
#endif
