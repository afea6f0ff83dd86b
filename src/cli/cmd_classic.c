/* fsdiff classic: fuse one pair with a classical method (baselines), optionally "SR then fuse". */
#include "cli.h"
#include "fsdiff/fusion.h"
#include "fsdiff/image.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static void usage(FILE *fp) {
    fprintf(fp,
            "usage: fsdiff classic [--method M] --a A --b B [--scale S] -o OUT.png\n\n"
            "Fuses two aligned source images with a classical method and writes an 8-bit PNG.\n"
            "  --method M     average | laplacian | gff | gradient | auto (default: gff); auto = gradient\n"
            "                 for scans on a black background, laplacian otherwise (docs/fusion.md)\n"
            "  --a, --b FILE  the two sources (PNG, JPEG, BMP, TGA, PGM/PPM) of the same size\n"
            "  -o, --out FILE output PNG (written atomically)\n"
            "  --scale S      treat A and B as low resolution: bicubic-upsample each to S x its size\n"
            "                 (PIL-compatible), then fuse (\"SR then fuse\" baseline); both must reach\n"
            "                 the same size round(w*S) x round(h*S)\n"
            "  --scale-a SA, --scale-b SB   separate factors when the two inputs differ in size\n"
            "  --levels N     laplacian: pyramid levels (default: coarsest side >= 8 px, at most 6)\n"
            "  --lambda L     gradient: data-term weight (default 0.05)\n"
            "  --threads N, --quiet, --verbose\n\n"
            "Colour: a colour source (visible, PET/SPECT pseudo-colour) is fused by its Y channel\n"
            "(BT.601 YCbCr) and keeps its Cb/Cr; grey + grey gives grey; two colour sources: Y fused,\n"
            "chroma averaged. Details and references: docs/fusion.md.\n");
}

static int has_png_ext(const char *p) {
    size_t n = strlen(p);
    return n > 4 && !strcasecmp(p + n - 4, ".png");
}

int cmd_classic(int argc, char **argv) {
    const char *method_name = "gff", *pa = NULL, *pb = NULL, *out = NULL;
    double scale = 0, scale_a = 0, scale_b = 0;
    fsd_fuse_params prm;
    fsd_fuse_params_default(&prm);
    for (int i = 1; i < argc; i++) {
        int c = cli_common_option(argc, argv, &i);
        if (c < 0) return 1;
        if (c) continue;
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) { usage(stdout); return 0; }
        if (!strcmp(o, "--method") || !strcmp(o, "--a") || !strcmp(o, "--b") || !strcmp(o, "-o") ||
            !strcmp(o, "--out")) {
            if (!v) return cli_error("classic: %s needs a value", o);
            if (!strcmp(o, "--method")) method_name = v;
            else if (!strcmp(o, "--a")) pa = v;
            else if (!strcmp(o, "--b")) pb = v;
            else out = v;
            i++;
        } else if (!strcmp(o, "--scale")) {
            if (cli_parse_double(o, v, 1.0, 64.0, &scale)) return 1;
            i++;
        } else if (!strcmp(o, "--scale-a")) {
            if (cli_parse_double(o, v, 1.0, 64.0, &scale_a)) return 1;
            i++;
        } else if (!strcmp(o, "--scale-b")) {
            if (cli_parse_double(o, v, 1.0, 64.0, &scale_b)) return 1;
            i++;
        } else if ((c = cli_fuse_param_option(argc, argv, &i, &prm)) != 0) {
            if (c < 0) return 1;
        } else {
            return cli_error("classic: unknown option '%s' (see fsdiff classic --help)", o);
        }
    }
    fsd_fuse_method m;
    if (fsd_fuse_method_parse(method_name, &m) != FSD_OK) return cli_lib_error();
    if (!pa || !pb) return cli_error("classic: both sources are needed (--a A --b B)");
    if (!out) return cli_error("classic: no output given (-o OUT.png)");
    if (!has_png_ext(out)) return cli_error("classic: output '%s' must end in .png", out);
    if (scale && (scale_a || scale_b)) return cli_error("classic: give either --scale or --scale-a/--scale-b");
    if (!scale_a) scale_a = scale ? scale : 1.0;
    if (!scale_b) scale_b = scale ? scale : 1.0;
    int upscale = scale_a != 1.0 || scale_b != 1.0;

    fsd_image a = {0}, b = {0}, f = {0};
    if (fsd_image_load(pa, &a) != FSD_OK) return cli_lib_error();
    if (fsd_image_load(pb, &b) != FSD_OK) {
        fsd_image_free(&a);
        return cli_lib_error();
    }
    int rc = 0;
    long aw = lround(a.w * scale_a), ah = lround(a.h * scale_a), bw = lround(b.w * scale_b), bh = lround(b.h * scale_b);
    if (aw != bw || ah != bh) {
        if (upscale)
            rc = cli_error("classic: sizes differ after upsampling: %s %dx%d x%g -> %ldx%ld, %s %dx%d x%g -> %ldx%ld",
                           pa, a.w, a.h, scale_a, aw, ah, pb, b.w, b.h, scale_b, bw, bh);
        else
            rc = cli_error("classic: sources differ in size: %s is %dx%d, %s is %dx%d", pa, a.w, a.h, pb, b.w, b.h);
    } else {
        double t0 = fsd_time_seconds();
        fsd_status s = upscale ? fsd_fuse_images_upscaled(m, &prm, &a, scale_a, &b, scale_b, &f)
                               : fsd_fuse_images(m, &prm, &a, &b, &f);
        if (!s) {
            char sw[64];
            snprintf(sw, sizeof sw, "fsdiff %s classic %s", FSD_VERSION_STRING, fsd_fuse_method_name(m));
            const char *text[2] = {"Software", sw};
            s = fsd_image_save_png(out, &f, text, 1);
        }
        if (s) rc = cli_lib_error();
        else
            fsd_log(FSD_LOG_INFO, "classic: %s %dx%d%s -> %s (%.2f s)", fsd_fuse_method_name(m), f.w, f.h,
                    f.c == 3 ? " RGB" : " grey", out, fsd_time_seconds() - t0);
    }
    fsd_image_free(&a);
    fsd_image_free(&b);
    fsd_image_free(&f);
    return rc;
}

int cli_fuse_param_option(int argc, char **argv, int *i, fsd_fuse_params *prm) {
    const char *o = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    if (!strcmp(o, "--levels")) {
        long l;
        if (cli_parse_int(o, v, 1, 12, &l)) return -1;
        prm->lap_levels = (int)l;
    } else if (!strcmp(o, "--lambda")) {
        if (cli_parse_double(o, v, 1e-6, 1e6, &prm->grad_lambda)) return -1;
    } else {
        return 0;
    }
    *i += 1;
    return 1;
}
