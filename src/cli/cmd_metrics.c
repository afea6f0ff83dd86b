/* fsdiff metrics: fusion quality of F against its sources A and B, and/or super-resolution quality
 * of F against one reference image (docs/metrics.md). */
#include "cli.h"
#include "fsdiff/image.h"
#include "fsdiff/metrics.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *fp) {
    fprintf(fp,
            "usage: fsdiff metrics --a A.png --b B.png --fused F.png [--ref REF.png] [--json]\n"
            "       fsdiff metrics --fused F.png --ref REF.png [--json]\n\n"
            "Fusion metrics of F against the sources A and B (EN SD SF AG MI SCD VIF Qabf SSIM CC PSNR;\n"
            "all higher-is-better), and with --ref the super-resolution pair PSNR/SSIM of F against REF.\n"
            "Images are compared as 8-bit grey: colour -> round(0.299 R + 0.587 G + 0.114 B). All images\n"
            "must have the same size (at least 41x41 for the fusion metrics, 11x11 for --ref alone).\n"
            "  --json   machine-readable output on stdout (non-finite values, e.g. PSNR of identical\n"
            "           images, are written as null)\n");
}

/* Loads `path` as 8-bit grey into *im (c = 1). */
static int load_grey(const char *path, fsd_image *im) {
    fsd_image raw = {0};
    if (fsd_image_load(path, &raw) != FSD_OK) return cli_lib_error();
    if (raw.c == 1) {
        *im = raw;
    } else {
        fsd_status st = fsd_image_to_grey(&raw, im, 1);
        fsd_image_free(&raw);
        if (st != FSD_OK) return cli_lib_error();
    }
    fsd_image_quantize(im); /* 16-bit sources load as v/257: back to 8-bit values */
    return 0;
}

static void json_number(double v) {
    if (isfinite(v)) printf("%.12g", v);
    else printf("null");
}

int cmd_metrics(int argc, char **argv) {
    const char *path[4] = {NULL, NULL, NULL, NULL}; /* A, B, F, REF */
    const char *opt[4] = {"--a", "--b", "--fused", "--ref"};
    int json = 0;
    for (int i = 1; i < argc; i++) {
        int c = cli_common_option(argc, argv, &i);
        if (c < 0) return 1;
        if (c) continue;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return 0; }
        if (!strcmp(argv[i], "--json")) { json = 1; continue; }
        int k = 0;
        while (k < 4 && strcmp(argv[i], opt[k])) k++;
        if (k == 4) return cli_error("metrics: unknown option '%s' (see fsdiff metrics --help)", argv[i]);
        if (i + 1 >= argc) return cli_error("metrics: %s needs a file", opt[k]);
        if (path[k]) return cli_error("metrics: %s given twice", opt[k]);
        path[k] = argv[++i];
    }
    if (!path[2]) {
        usage(stderr);
        return cli_error("metrics: --fused is required");
    }
    if (!path[0] != !path[1]) return cli_error("metrics: --a and --b go together (got only %s)", path[0] ? "--a" : "--b");
    if (!path[0] && !path[3]) return cli_error("metrics: nothing to compare: give --a and --b, or --ref, or both");
    if (json) fsd_progress_set_quiet(1);

    fsd_image im[4] = {{0}};
    int rc = 0;
    for (int k = 0; k < 4 && !rc; k++)
        if (path[k]) rc = load_grey(path[k], &im[k]);
    for (int k = 0; k < 4 && !rc; k++)
        if (path[k] && (im[k].w != im[2].w || im[k].h != im[2].h))
            rc = cli_error("metrics: size mismatch: %s is %dx%d but %s is %dx%d", path[k], im[k].w, im[k].h, path[2],
                           im[2].w, im[2].h);
    fsd_metrics m;
    fsd_sr_metrics sr;
    int w = im[2].w, h = im[2].h;
    if (!rc && path[0] && fsd_metrics_compute(im[0].data, im[1].data, im[2].data, w, h, &m) != FSD_OK)
        rc = cli_lib_error();
    if (!rc && path[3] && fsd_metrics_sr(im[3].data, im[2].data, w, h, &sr) != FSD_OK) rc = cli_lib_error();
    if (!rc) {
        if (json) {
            printf("{");
            for (int k = 0; k < 4; k++)
                if (path[k]) {
                    printf("\"%s\": ", opt[k] + 2);
                    cli_json_string(stdout, path[k]);
                    printf(", ");
                }
            printf("\"width\": %d, \"height\": %d", w, h);
            if (path[0]) {
                printf(", \"metrics\": {");
                for (int i = 0; i < FSD_METRIC_COUNT; i++) {
                    printf("%s\"%s\": ", i ? ", " : "", fsd_metric_table[i].name);
                    json_number(m.v[i]);
                }
                printf("}");
            }
            if (path[3]) {
                printf(", \"sr\": {");
                for (int i = 0; i < FSD_SR_METRIC_COUNT; i++) {
                    printf("%s\"%s\": ", i ? ", " : "", fsd_sr_metric_table[i].name);
                    json_number(sr.v[i]);
                }
                printf("}");
            }
            printf("}\n");
        } else {
            printf("fused: %s (%dx%d, grey)\n", path[2], w, h);
            if (path[0]) {
                printf("sources: A = %s, B = %s\n\n%-6s %12s   %s\n", path[0], path[1], "metric", "value", "(higher is better)");
                for (int i = 0; i < FSD_METRIC_COUNT; i++)
                    printf("%-6s %12.6f   %s\n", fsd_metric_table[i].name, m.v[i], fsd_metric_table[i].description);
            }
            if (path[3]) {
                printf("%sreference: %s\n\n%-6s %12s   %s\n", path[0] ? "\n" : "", path[3], "SR", "value",
                       "(higher is better)");
                for (int i = 0; i < FSD_SR_METRIC_COUNT; i++)
                    printf("%-6s %12.6f   %s\n", fsd_sr_metric_table[i].name, sr.v[i], fsd_sr_metric_table[i].description);
            }
        }
    }
    for (int k = 0; k < 4; k++) fsd_image_free(&im[k]);
    return rc;
}
