/* fsdiff info FILE.safetensors: tensors, dtypes, shapes, parameter count and metadata. */
#include "cli.h"
#include "fsdiff/safetensors.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *fp) {
    fprintf(fp,
            "usage: fsdiff info [--json] [--no-tensors] FILE.safetensors\n\n"
            "Validates a safetensors file and prints its metadata, each tensor (name, dtype, shape,\n"
            "element count), the total parameter count and bytes by dtype.\n"
            "  --json         machine-readable output on stdout\n"
            "  --no-tensors   only the summary and metadata\n");
}

int cmd_info(int argc, char **argv) {
    int json = 0, list = 1;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        int c = cli_common_option(argc, argv, &i);
        if (c < 0) return 1;
        if (c) continue;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return 0; }
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--no-tensors")) list = 0;
        else if (argv[i][0] == '-' && argv[i][1]) return cli_error("info: unknown option '%s' (see fsdiff info --help)", argv[i]);
        else if (path) return cli_error("info: more than one file given ('%s' and '%s')", path, argv[i]);
        else path = argv[i];
    }
    if (!path) {
        usage(stderr);
        return cli_error("info: no file given");
    }
    fsd_safetensors st;
    if (fsd_st_open(&st, path) != FSD_OK) return cli_lib_error();
    int64_t total = 0, bytes_by[FSD_DTYPE_COUNT] = {0};
    for (int k = 0; k < st.n_tensors; k++) {
        total += fsd_st_numel(&st.tensors[k]);
        bytes_by[st.tensors[k].dtype] += (int64_t)(st.tensors[k].end - st.tensors[k].begin);
    }
    if (json) {
        printf("{\"file\": ");
        cli_json_string(stdout, path);
        printf(", \"bytes\": %zu, \"tensors\": %d, \"parameters\": %lld, \"metadata\": {", st.map_size, st.n_tensors,
               (long long)total);
        for (int k = 0; k < st.n_meta; k++) {
            printf(k ? ", " : "");
            cli_json_string(stdout, st.meta[k].key);
            printf(": ");
            cli_json_string(stdout, st.meta[k].value);
        }
        printf("}");
        if (list) {
            printf(", \"tensor_list\": [");
            for (int k = 0; k < st.n_tensors; k++) {
                const fsd_st_tensor *t = &st.tensors[k];
                printf("%s{\"name\": ", k ? ", " : "");
                cli_json_string(stdout, t->name);
                printf(", \"dtype\": \"%s\", \"shape\": [", fsd_dtype_name(t->dtype));
                for (int d = 0; d < t->ndim; d++) printf("%s%lld", d ? ", " : "", (long long)t->shape[d]);
                printf("], \"numel\": %lld}", (long long)fsd_st_numel(t));
            }
            printf("]");
        }
        printf("}\n");
    } else {
        printf("file: %s (%.2f MB)\n", path, st.map_size / 1e6);
        for (int k = 0; k < st.n_meta; k++) printf("meta  %s = %s\n", st.meta[k].key, st.meta[k].value);
        if (list) {
            printf("%-56s %-5s %-22s %12s\n", "tensor", "dtype", "shape", "elements");
            for (int k = 0; k < st.n_tensors; k++) {
                const fsd_st_tensor *t = &st.tensors[k];
                char sh[128];
                printf("%-56s %-5s %-22s %12lld\n", t->name, fsd_dtype_name(t->dtype),
                       fsd_shape_str(t->ndim, t->shape, sh, sizeof sh), (long long)fsd_st_numel(t));
            }
        }
        printf("tensors: %d, parameters: %lld (%.3f M)\n", st.n_tensors, (long long)total, total / 1e6);
        for (int d = 0; d < FSD_DTYPE_COUNT; d++)
            if (bytes_by[d]) printf("  %s: %.2f MB\n", fsd_dtype_name((fsd_dtype)d), bytes_by[d] / 1e6);
    }
    fsd_st_close(&st);
    return 0;
}
