/* Shared helpers for the fsdiff sub-commands (src/cli/cmd_*.c). */
#ifndef FSD_CLI_H
#define FSD_CLI_H

#include "fsdiff/core.h"
#include "fsdiff/fusion.h"

/* One sub-command: `fsdiff NAME ...`. run() gets argv with argv[0] = NAME; returns the exit code. */
typedef struct fsd_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} fsd_command;

/* Print "fsdiff: error: <msg>" (one line) and return exit code 1. */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Same, with the library's last error message. */
int cli_lib_error(void);

/* Strict number parsing: the whole string must be a number inside [lo, hi]; else one error line. */
int cli_parse_int(const char *opt, const char *s, long lo, long hi, long *out);
int cli_parse_double(const char *opt, const char *s, double lo, double hi, double *out);

/* Prints a JSON string literal (with escapes) to fp. */
void cli_json_string(FILE *fp, const char *s);

/* Common options every command accepts, consumed by cli_common_option():
 *   --threads N, --quiet, --verbose. Returns 1 if argv[*i] was one (advancing *i), 0 if not,
 *   -1 on a bad value (error already printed). */
int cli_common_option(int argc, char **argv, int *i);

/* Classical-fusion parameters shared by classic and teacher: --levels N, --lambda L.
 * Same return convention as cli_common_option. */
int cli_fuse_param_option(int argc, char **argv, int *i, fsd_fuse_params *prm);

#endif
