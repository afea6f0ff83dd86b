/* fsdiff: command-line entry point; dispatches to the sub-commands in cmd_*.c. */
#include "cli.h"
#include "fsdiff/json.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Sub-commands: declare `int cmd_NAME(int argc, char **argv);` and add one row to the table. */

int cmd_info(int argc, char **argv);
int cmd_degrade(int argc, char **argv);
int cmd_metrics(int argc, char **argv);
int cmd_classic(int argc, char **argv);
int cmd_teacher(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_fuse(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_export(int argc, char **argv);

static const fsd_command k_commands[] = {
    {"info", "describe a .safetensors model file (tensors, dtypes, shapes, parameter count)", cmd_info},
    {"degrade", "make a low-resolution input: blur, Pillow-exact bicubic downscale, noise", cmd_degrade},
    {"metrics", "fusion metrics (EN SD SF AG MI SCD VIF Qabf SSIM CC PSNR) and SR PSNR/SSIM", cmd_metrics},
    {"classic", "fuse a pair with a classical method (average, laplacian, gff, gradient, auto)", cmd_classic},
    {"teacher", "fused HR targets for every pair of a data directory (cached)", cmd_teacher},
    {"fuse", "fuse + super-resolve a pair (or folders of pairs) with a trained FS-Diff model", cmd_fuse},
    {"train", "train the FS-Diff network and clarity encoder (resumable checkpoints, EMA, validation)", cmd_train},
    {"export", "rewrite a model for shipping: fp16, recommended sampler/steps in its metadata", cmd_export},
    {"bench", "quality vs sampler steps of a model (steps.csv, steps.png, the fewest good steps)", cmd_bench},
    {"eval", "evaluate methods on a folder of pairs: results.csv, summary.md, report.html", cmd_eval},
    {NULL, NULL, NULL} /* end */
};

int cli_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fsdiff: error: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int cli_lib_error(void) {
    const char *m = fsd_error_message();
    return cli_error("%s", m && *m ? m : "unknown failure");
}

int cli_parse_int(const char *opt, const char *s, long lo, long hi, long *out) {
    if (!s) return cli_error("%s needs a value", opt), -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end) return cli_error("%s: '%s' is not an integer", opt, s), -1;
    if (v < lo || v > hi) return cli_error("%s: %ld is out of range [%ld, %ld]", opt, v, lo, hi), -1;
    *out = v;
    return 0;
}

int cli_parse_double(const char *opt, const char *s, double lo, double hi, double *out) {
    if (!s) return cli_error("%s needs a value", opt), -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v)) return cli_error("%s: '%s' is not a number", opt, s), -1;
    if (v < lo || v > hi) return cli_error("%s: %g is out of range [%g, %g]", opt, v, lo, hi), -1;
    *out = v;
    return 0;
}

void cli_json_string(FILE *fp, const char *s) { fsd_json_write_string(fp, s); }

int cli_common_option(int argc, char **argv, int *i) {
    const char *a = argv[*i];
    if (!strcmp(a, "--threads")) {
        long n;
        if (cli_parse_int("--threads", *i + 1 < argc ? argv[*i + 1] : NULL, 0, 1024, &n)) return -1;
        fsd_set_threads((int)n);
        *i += 1;
        return 1;
    }
    if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
        fsd_progress_set_quiet(1);
        fsd_set_log_level(FSD_LOG_WARN);
        return 1;
    }
    if (!strcmp(a, "--verbose") || !strcmp(a, "-v")) {
        fsd_set_log_level(FSD_LOG_DEBUG);
        return 1;
    }
    return 0;
}

static void usage(FILE *fp) {
    fprintf(fp,
            "fsdiff %s - joint multimodal image fusion and super-resolution (FS-Diff) in C\n\n"
            "usage: fsdiff COMMAND [options]      (fsdiff COMMAND --help for its options)\n\n"
            "commands:\n",
            FSD_VERSION_STRING);
    for (int i = 0; k_commands[i].name; i++) fprintf(fp, "  %-10s %s\n", k_commands[i].name, k_commands[i].summary);
    fprintf(fp,
            "\ncommon options: --threads N (default: all cores), --quiet, --verbose\n"
            "  fsdiff --version   build facts (SIMD, BLAS, OpenMP)\n"
            "  fsdiff --help      this text\n");
}

int main(int argc, char **argv) {
    fsd_blas_init(); /* before any sub-command's first BLAS product */
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
#ifdef FSD_HAVE_MPI
        const char *mpi = "MPI: yes (mpirun -np K fsdiff train ...)";
#else
        const char *mpi = "MPI: no";
#endif
        printf("fsdiff %s\n%s\n%s\n", FSD_VERSION_STRING, fsd_build_info(), mpi);
        return 0;
    }
    for (int i = 0; k_commands[i].name; i++)
        if (!strcmp(cmd, k_commands[i].name)) return k_commands[i].run(argc - 1, argv + 1);
    return cli_error("unknown command '%s' (fsdiff --help lists them)", cmd);
}
