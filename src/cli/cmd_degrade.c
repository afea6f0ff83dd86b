/* fsdiff degrade: make a low-resolution input from a high-resolution image (blur -> Pillow-exact
 * bicubic downscale -> noise -> 8-bit PNG), optionally back up to the original size. */
#include "cli.h"
#include "fsdiff/image.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static void usage(FILE *fp) {
    fprintf(fp,
            "usage: fsdiff degrade --scale S [--blur SIGMA] [--noise SIGMA] [--seed N] [--up] IN -o OUT.png\n\n"
            "Makes a low-resolution image the way FS-Diff's inputs are made: optional Gaussian blur of the\n"
            "input, bicubic downscale by S that matches Pillow's Image.resize(size, BICUBIC) bit for bit\n"
            "(size round(W/S) x round(H/S)), optional Gaussian noise, then 8 bits. IN: PNG (8/16-bit),\n"
            "JPEG, BMP, TGA, PGM/PPM; grey stays grey, colour stays RGB. OUT: an 8-bit PNG, written\n"
            "atomically, with the parameters in its text chunks.\n\n"
            "  --scale S          downscale factor, a real number >= 1 (required)\n"
            "  --blur SIGMA       Gaussian blur before downscaling, sigma in input pixels\n"
            "                     (0..100, default 0 = none; kernel radius ceil(3 sigma), mirrored borders)\n"
            "  --noise SIGMA      Gaussian noise after downscaling, sigma on the 0..255 scale\n"
            "                     (0..255, default 0 = none)\n"
            "  --seed N           noise seed (default 0): the same seed gives the same file on any thread count\n"
            "  --up               bicubic back up to the input size (the network's conditioning input)\n"
            "  -o, --output FILE  output PNG (required)\n"
            "  --threads N, --quiet, --verbose, -h/--help\n\n"
            "exit status: 0 done; 1 error (unreadable or corrupt input, result under 8 px, write failure);\n"
            "2 bad usage (unknown option, bad number, missing argument). On error no output is written.\n");
}

static int ends_with_png(const char *p) {
    size_t L = strlen(p);
    return L > 4 && !strcasecmp(p + L - 4, ".png");
}

int cmd_degrade(int argc, char **argv) {
    fsd_degrade_params p = {0, 0, 0, 0};
    int have_scale = 0, up = 0;
    const char *in = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        int c = cli_common_option(argc, argv, &i);
        if (c < 0) return 2;
        if (c) continue;
        const char *a = argv[i];
        /* accept both "--opt value" and "--opt=value" */
        char opt[64];
        const char *val = NULL, *eq = strchr(a, '=');
        if (a[0] == '-' && a[1] == '-' && eq && (size_t)(eq - a) < sizeof opt) {
            memcpy(opt, a, (size_t)(eq - a));
            opt[eq - a] = 0;
            a = opt;
            val = eq + 1;
        }
#define VALUE() (val ? val : (i + 1 < argc ? argv[++i] : NULL))
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--scale")) {
            if (cli_parse_double("--scale", VALUE(), 1.0, 1e6, &p.scale)) return 2;
            have_scale = 1;
        } else if (!strcmp(a, "--blur")) {
            if (cli_parse_double("--blur", VALUE(), 0.0, 100.0, &p.blur_sigma)) return 2;
        } else if (!strcmp(a, "--noise")) {
            if (cli_parse_double("--noise", VALUE(), 0.0, 255.0, &p.noise_sigma)) return 2;
        } else if (!strcmp(a, "--seed")) {
            long s;
            if (cli_parse_int("--seed", VALUE(), 0, 0x7FFFFFFFFFFFFFFFL, &s)) return 2;
            p.seed = (uint64_t)s;
        } else if (!strcmp(a, "--up")) {
            if (val) return cli_error("degrade: --up takes no value"), 2;
            up = 1;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            out = VALUE();
            if (!out || !*out) return cli_error("degrade: %s needs a file name", a), 2;
        } else if (a[0] == '-' && a[1]) {
            return cli_error("degrade: unknown option '%s' (see fsdiff degrade --help)", argv[i]), 2;
        } else if (in) {
            return cli_error("degrade: more than one input given ('%s' and '%s')", in, a), 2;
        } else {
            in = a;
        }
#undef VALUE
    }
    if (!in) return cli_error("degrade: no input image given (see fsdiff degrade --help)"), 2;
    if (!out) return cli_error("degrade: no output given (-o OUT.png)"), 2;
    if (!have_scale) return cli_error("degrade: --scale is required"), 2;
    if (!ends_with_png(out)) return cli_error("degrade: %s: only PNG output is supported (name it .png)", out), 2;

    fsd_image hr, lr, res;
    if (fsd_image_load(in, &hr)) return cli_lib_error();
    if (fsd_degrade(&hr, &p, &lr)) {
        fsd_image_free(&hr);
        return cli_error("%s: %s", in, fsd_error_message());
    }
    if (up) {
        /* LR is 8-bit, so the upscale is Pillow's 8-bit path too */
        fsd_status s = fsd_image_resize_bicubic(&lr, hr.w, hr.h, 1, &res);
        fsd_image_free(&lr);
        if (s) {
            fsd_image_free(&hr);
            return cli_lib_error();
        }
    } else {
        res = lr;
    }
    char v_scale[32], v_blur[32], v_noise[32], v_seed[32];
    snprintf(v_scale, sizeof v_scale, "%g", p.scale);
    snprintf(v_blur, sizeof v_blur, "%g", p.blur_sigma);
    snprintf(v_noise, sizeof v_noise, "%g", p.noise_sigma);
    snprintf(v_seed, sizeof v_seed, "%llu", (unsigned long long)p.seed);
    const char *text[] = {"Software", "fsdiff " FSD_VERSION_STRING, "fsdiff-command", "degrade",
                          "scale", v_scale, "blur", v_blur, "noise", v_noise, "seed", v_seed, "up", up ? "1" : "0"};
    fsd_status s = fsd_image_save_png(out, &res, text, 7);
    int w0 = hr.w, h0 = hr.h, w1 = res.w, h1 = res.h;
    fsd_image_free(&hr);
    fsd_image_free(&res);
    if (s) return cli_lib_error();
    fsd_log(FSD_LOG_INFO, "%s (%dx%d) -> %s (%dx%d)", in, w0, h0, out, w1, h1);
    return 0;
}
