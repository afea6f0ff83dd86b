/* fsdiff eval: degrade every pair of a split folder, run each method, score it with the fusion
 * metrics against the HR sources, and write results.csv, summary.md and report.html (docs/eval.md).
 *
 * Outputs are built in a temporary folder beside OUT and renamed into place at the end, so an
 * error or an interruption leaves nothing behind, and an existing OUT is only replaced (--force)
 * after the new run has succeeded. */
#define _XOPEN_SOURCE 700 /* nftw, mkdtemp */
#include "cli.h"
#include "fsdiff/eval.h"

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage(FILE *fp) {
    fprintf(fp,
            "usage: fsdiff eval --data DIR --out OUT [--scale S] [--methods LIST] [options]\n\n"
            "Makes the low-resolution inputs of every pair in DIR with `fsdiff degrade`, runs each method,\n"
            "scores its output with the fusion metrics (EN SD SF AG MI SCD VIF Qabf SSIM CC PSNR) against\n"
            "the high-resolution sources, and writes OUT/results.csv (one row per image x method),\n"
            "OUT/summary.md (mean +- std per method, best per metric in bold) and OUT/report.html\n"
            "(contact sheets and one bar chart per metric; images in OUT/img/).\n\n"
            "  --data DIR      a split folder with two modality folders, e.g. data/ivf/val (ir/, vi/) or\n"
            "                  data/med/val (mri/, other/); A = the first in name order; pairs = same NAME\n"
            "  --out OUT       output folder; must not exist unless --force (then replaced, after success)\n"
            "  --scale S       downscale factor of the LR inputs: 2, 4, 8 or any real >= 1 (default 4)\n"
            "  --methods LIST  comma-separated (default %s):\n"
            "                    average | laplacian | gff | gradient | auto   bicubic-upsample both LR\n"
            "                                 sources to the HR size (PIL), then fuse (\"SR then fuse\";\n"
            "                                 auto = gradient for scans, laplacian otherwise)\n"
            "                    hr:NAME      fuse the HR sources with NAME (the ceiling of perfect SR)\n"
            "                    bicubic-a, bicubic-b      one source alone, upsampled\n"
            "                    model:PATH   an FS-Diff model file; settings as model:PATH?steps=N&sampler=K\n"
            "                                 &seed=N&eta=E&spacing=SP&context=MODE&tile=N (docs/eval.md)\n"
            "  --limit N       only the first N pairs (sorted by name; after --every)\n"
            "  --every K       only every K-th pair (0, K, 2K, ...): a spread-out subset\n"
            "  --blur SIGMA    Gaussian blur (px, on the HR image) before downscaling (default 0)\n"
            "  --noise SIGMA   Gaussian noise on the LR image, 0..255 scale (default 0)\n"
            "  --seed N        noise seed (default 0; hashed with each NAME and source)\n"
            "  --sheets N      contact sheets for the first N pairs (default 6, 0 = none)\n"
            "  --json          print the summary as JSON on stdout (instead of the table)\n"
            "  --force         replace an existing OUT (only one that holds an earlier eval's results.csv)\n"
            "  --threads N     pairs are evaluated in parallel, one per thread (default: all cores); with a\n"
            "                  model: method one pair at a time, the model using all threads\n"
            "  --quiet, --verbose\n",
            FSD_EVAL_DEFAULT_METHODS);
}

/* ---------------------------------------------------------------- interruption */
static volatile int g_cancel = 0;

static void on_signal(int sig) {
    g_cancel = 1;
    signal(sig, SIG_DFL); /* a second one ends the process at once */
}

/* ---------------------------------------------------------------- folders */
static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)ftw;
    return (flag == FTW_DP ? rmdir(p) : unlink(p)) ? -1 : 0;
}

static void rm_rf(const char *path) {
    if (path && *path) nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The command line, shell-quoted where needed, for the report. */
static void command_line(int argc, char **argv, char *buf, size_t n) {
    size_t L = (size_t)snprintf(buf, n, "fsdiff");
    for (int i = 0; i < argc && L + 4 < n; i++) {
        const char *a = argv[i];
        int plain = *a != 0;
        for (const char *c = a; *c && plain; c++)
            plain = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%", *c) != NULL;
        L += (size_t)snprintf(buf + L, n - L, " %s", plain ? "" : "'");
        for (const char *c = a; *c && L + 6 < n; c++) {
            if (*c == '\'' && !plain) L += (size_t)snprintf(buf + L, n - L, "'\\''");
            else buf[L++] = *c;
        }
        buf[L] = 0;
        if (!plain && L + 2 < n) L += (size_t)snprintf(buf + L, n - L, "'");
    }
}

typedef struct eval_args {
    const char *data, *out, *methods;
    double scale, blur, noise;
    long limit, every, sheets, seed;
    int json, force;
} eval_args;

static int parse_args(int argc, char **argv, eval_args *a) {
    a->methods = FSD_EVAL_DEFAULT_METHODS;
    a->scale = 4;
    a->sheets = 6;
    for (int i = 1; i < argc; i++) {
        int c = cli_common_option(argc, argv, &i);
        if (c < 0) return 1;
        if (c) continue;
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            usage(stdout);
            return -1;
        }
        if (!strcmp(o, "--json")) a->json = 1;
        else if (!strcmp(o, "--force")) a->force = 1;
        else if (!strcmp(o, "--data") || !strcmp(o, "--out") || !strcmp(o, "-o") || !strcmp(o, "--methods")) {
            if (!v || !*v) return cli_error("eval: %s needs a value", o);
            if (!strcmp(o, "--data")) a->data = v;
            else if (!strcmp(o, "--methods")) a->methods = v;
            else a->out = v;
            i++;
        } else if (!strcmp(o, "--scale")) {
            if (cli_parse_double(o, v, 1.0, 64.0, &a->scale)) return 1;
            i++;
        } else if (!strcmp(o, "--blur")) {
            if (cli_parse_double(o, v, 0.0, 1000.0, &a->blur)) return 1;
            i++;
        } else if (!strcmp(o, "--noise")) {
            if (cli_parse_double(o, v, 0.0, 255.0, &a->noise)) return 1;
            i++;
        } else if (!strcmp(o, "--seed")) {
            if (cli_parse_int(o, v, 0, LONG_MAX, &a->seed)) return 1;
            i++;
        } else if (!strcmp(o, "--limit")) {
            if (cli_parse_int(o, v, 1, INT_MAX, &a->limit)) return 1;
            i++;
        } else if (!strcmp(o, "--every")) {
            if (cli_parse_int(o, v, 1, INT_MAX, &a->every)) return 1;
            i++;
        } else if (!strcmp(o, "--sheets")) {
            if (cli_parse_int(o, v, 0, 100000, &a->sheets)) return 1;
            i++;
        } else {
            return cli_error("eval: unknown option '%s' (see fsdiff eval --help)", o);
        }
    }
    if (!a->data) return cli_error("eval: no data folder given (--data DIR, e.g. data/ivf/val)");
    if (!a->out) return cli_error("eval: no output folder given (--out OUT)");
    return 0;
}

/* OUT without trailing slashes; checks that it can be written beside and, if it exists, that
 * --force may replace it. Returns 0 or an exit code (error printed). */
static int check_out(const char *out_arg, int force, char *out, size_t n, int *exists) {
    if (snprintf(out, n, "%s", out_arg) >= (int)n) return cli_error("eval: output path too long");
    for (size_t L = strlen(out); L > 1 && out[L - 1] == '/';) out[--L] = 0;
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", out);
    char *slash = strrchr(parent, '/');
    if (!slash) snprintf(parent, sizeof parent, ".");
    else if (slash == parent) parent[1] = 0;
    else *slash = 0;
    struct stat st;
    if (stat(parent, &st) != 0 || !S_ISDIR(st.st_mode))
        return cli_error("eval: %s: the folder that should hold %s does not exist", parent, out);
    *exists = lstat(out, &st) == 0;
    if (!*exists) return 0;
    if (!force) return cli_error("eval: %s already exists (use --force to replace it, or another --out)", out);
    if (!S_ISDIR(st.st_mode)) return cli_error("eval: %s exists and is not a folder; not replacing it", out);
    char probe[PATH_MAX + 16];
    snprintf(probe, sizeof probe, "%s/results.csv", out);
    if (stat(probe, &st) != 0)
        return cli_error("eval: %s exists but holds no results.csv of an earlier eval; not replacing it", out);
    return 0;
}

int cmd_eval(int argc, char **argv) {
    eval_args a = {0};
    int pr = parse_args(argc, argv, &a);
    if (pr) return pr < 0 ? 0 : pr;
    if (a.json) fsd_progress_set_quiet(1);

    fsd_eval_method *methods = NULL;
    int n_methods = 0;
    if (fsd_eval_methods_parse(a.methods, &methods, &n_methods)) return cli_error("eval: %s", fsd_error_message());

    int rc = 1, exists = 0;
    char out[PATH_MAX], tmp[PATH_MAX + 32] = "", old[PATH_MAX + 32] = "", img[PATH_MAX + 64], path[PATH_MAX + 64];
    static char cmdline[8192];
    fsd_pair_set set = {0};
    fsd_eval_results res = {0};
    fsd_eval_summary sum = {0};
    if (fsd_pairs_scan(a.data, &set)) {
        cli_error("eval: %s", fsd_error_message());
        goto done;
    }
    if (a.every) fsd_pairs_every(&set, (int)a.every);
    if (a.limit) fsd_pairs_limit(&set, (int)a.limit);
    if (check_out(a.out, a.force, out, sizeof out, &exists)) goto done;

    /* ---- build everything in OUT.tmp-XXXXXX */
    snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", out);
    if (!mkdtemp(tmp)) {
        cli_error("eval: cannot create a temporary folder beside %s: %s", out, strerror(errno));
        tmp[0] = 0;
        goto done;
    }
    snprintf(img, sizeof img, "%s/img", tmp);
    if (mkdir(img, 0777) != 0) {
        cli_error("eval: cannot create %s: %s", img, strerror(errno));
        goto done;
    }
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);

    fsd_eval_options opt = {0};
    opt.degrade.scale = a.scale;
    opt.degrade.blur_sigma = a.blur;
    opt.degrade.noise_sigma = a.noise;
    opt.degrade.seed = (uint64_t)a.seed;
    opt.n_sheets = (int)a.sheets;
    opt.img_dir = a.sheets > 0 ? img : NULL;
    opt.cancel = &g_cancel;
    char label[64];
    snprintf(label, sizeof label, "eval x%g", a.scale);
    opt.label = label;
    fsd_status s = fsd_eval_run(&set, methods, n_methods, &opt, &res);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (s) {
        if (g_cancel) {
            cli_error("eval: interrupted; nothing written");
            rc = 130;
        } else {
            cli_error("eval: %s", fsd_error_message());
        }
        goto done;
    }
    command_line(argc, argv, cmdline, sizeof cmdline);
    fsd_eval_report_info info = {cmdline, a.data, fsd_get_threads()};
    if (fsd_eval_summarise(&res, methods, &sum)) {
        cli_lib_error();
        goto done;
    }
    snprintf(path, sizeof path, "%s/results.csv", tmp);
    if (fsd_eval_write_csv(path, &set, methods, &res, a.scale)) { cli_lib_error(); goto done; }
    snprintf(path, sizeof path, "%s/summary.md", tmp);
    if (fsd_eval_write_summary(path, &set, methods, &res, &sum, &opt, &info)) { cli_lib_error(); goto done; }
    snprintf(path, sizeof path, "%s/report.html", tmp);
    if (fsd_eval_write_html(path, &set, methods, &res, &sum, &opt, &info)) { cli_lib_error(); goto done; }
    if (a.sheets == 0) rmdir(img);

    /* ---- move into place: the old OUT (--force) is set aside first and removed after */
    if (exists) {
        snprintf(old, sizeof old, "%s.old-XXXXXX", out);
        if (!mkdtemp(old) || rename(out, old) != 0) {
            cli_error("eval: cannot move the old %s aside: %s", out, strerror(errno));
            if (old[0] && !strstr(old, "XXXXXX")) rmdir(old);
            old[0] = 0;
            goto done;
        }
    }
    if (rename(tmp, out) != 0) {
        cli_error("eval: cannot rename %s to %s: %s", tmp, out, strerror(errno));
        if (old[0]) rename(old, out); /* put the old one back */
        old[0] = 0;
        goto done;
    }
    tmp[0] = 0;
    if (old[0]) rm_rf(old);
    if (a.json) {
        fsd_eval_write_json(stdout, &set, methods, &res, &sum, &opt, out);
    } else {
        printf("%s at x%g: %d pair%s x %d method%s (A = %s, B = %s)\n\n", a.data, a.scale, res.n_pairs,
               res.n_pairs == 1 ? "" : "s", n_methods, n_methods == 1 ? "" : "s", set.mod_a, set.mod_b);
        fsd_eval_print_table(stdout, methods, &sum);
    }
    fflush(stdout);
    if (fsd_get_log_level() >= FSD_LOG_INFO) /* not with --quiet */
        fprintf(stderr, "eval: %d pair%s x %d method%s in %.1f s -> %s/report.html\n", res.n_pairs,
                res.n_pairs == 1 ? "" : "s", n_methods, n_methods == 1 ? "" : "s", res.seconds_total, out);
    rc = 0;
done:
    if (tmp[0]) rm_rf(tmp);
    fsd_eval_summary_free(&sum);
    fsd_eval_results_free(&res);
    fsd_pairs_free(&set);
    fsd_eval_methods_free(methods, n_methods);
    return rc;
}
