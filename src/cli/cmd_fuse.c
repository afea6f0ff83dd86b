/* fsdiff fuse: joint fusion + super-resolution of an IR/VI (or MRI/other) pair with a trained
 * FS-Diff model (docs/fuse.md). One pair (--ir --vi -o) or a folder of pairs (--ir-dir --vi-dir
 * --out-dir). Outputs are written atomically; an error leaves no output file. */
#define _XOPEN_SOURCE 700
#include "cli.h"
#include "fsdiff/fuse.h"
#include "fsdiff/pairs.h"
#include "fsdiff/image.h"
#include "fsdiff/json.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_MODEL_NAME "fsdiff-default.safetensors"

static void usage(FILE *fp) {
    fprintf(fp,
            "usage: fsdiff fuse --ir IR --vi VI --scale S [options] -o OUT.png\n"
            "       fsdiff fuse --ir-dir D1 --vi-dir D2 --out-dir D3 --scale S [options]\n\n"
            "Fuses two low-resolution sources and super-resolves them in one go with an FS-Diff model.\n"
            "  --ir, --a FILE     infrared / MRI source (grey or colour)\n"
            "  --vi, --b FILE     visible / CT, PET, SPECT source\n"
            "  --scale S          1..16: the output is S x the larger input (by width); each input's own\n"
            "                     factor must be an integer, the same for width and height\n"
            "                     (IR 80x60 + VI 160x120 at --scale 4 -> 640x480: IR x8, VI x4)\n"
            "  -o, --out FILE     output PNG (RGB if either input has colour, else grey)\n"
            "  --model M          model file (default: $FSDIFF_MODEL, else <fsdiff dir>/../models/%s,\n"
            "                     else <fsdiff dir>/../share/fsdiff/%s)\n"
            "  --sampler K        ddpm | ddim | dpmpp2m (default: the model's)\n"
            "  --steps N          sampler steps (default: the model's)\n"
            "  --eta E            ddim noise, 0..1 (default: the model's)\n"
            "  --residual-shrink L  residual models: soft threshold of the added detail in grey levels,\n"
            "                     0..64, 0 = off (default: the model's)\n"
            "  --spacing SP       linspace | trailing | leading | logsnr (default: the sampler's)\n"
            "  --seed N           noise seed (default 0); same seed -> same image, any thread count\n"
            "  --tile N           denoise in N x N tiles (a multiple of the U-Net factor) to bound memory\n"
            "  --overlap N        tile overlap (default tile/4)\n"
            "  --context MODE     clarity | mean (default: the model's)\n"
            "  --context-file F   a safetensors file with a (tokens, dim) tensor 'context' used instead of\n"
            "                     the clarity encoder\n"
            "  --save-steps G.png the denoising trajectory: both conditions, then the state every few steps\n"
            "  --max-memory M     refuse when the estimate exceeds M bytes (suffix K, M, G; default: the\n"
            "                     physical memory; 0: no limit)\n"
            "  --json             print what was run (sizes, sampler, clarity roles, memory) as JSON\n"
            "  --ir-dir, --vi-dir, --out-dir   batch mode: pairs by file name without extension\n"
            "                     (--a-dir, --b-dir as aliases); unmatched files are reported\n"
            "  --threads N, --quiet, --verbose\n",
            DEFAULT_MODEL_NAME, DEFAULT_MODEL_NAME);
}

/* ---------------------------------------------------------------- interruption */
static volatile int g_cancel = 0;
static void on_signal(int sig) {
    g_cancel = 1;
    signal(sig, SIG_DFL); /* a second one ends the process at once */
}

/* ---------------------------------------------------------------- arguments */
typedef struct fuse_args {
    const char *a, *b, *out, *a_dir, *b_dir, *out_dir, *model, *context_file, *save_steps;
    long scale;
    int json;
    size_t max_memory;
    int max_memory_set;
    fsd_fuse_opts opts;
} fuse_args;

static int has_png_ext(const char *p) {
    size_t n = strlen(p);
    return n > 4 && !strcasecmp(p + n - 4, ".png");
}

/* "123", "512M", "1.5G" (binary units) -> bytes */
static int parse_bytes(const char *opt, const char *v, size_t *out) {
    if (!v || !*v) return cli_error("fuse: %s needs a value", opt), -1;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    double mul = 1;
    if (*end) {
        switch (*end) {
        case 'k': case 'K': mul = 1024.0; break;
        case 'm': case 'M': mul = 1024.0 * 1024; break;
        case 'g': case 'G': mul = 1024.0 * 1024 * 1024; break;
        case 't': case 'T': mul = 1024.0 * 1024 * 1024 * 1024; break;
        default: mul = -1;
        }
        end++;
        if (*end == 'i' || *end == 'I') end++;
        if (*end == 'b' || *end == 'B') end++;
    }
    if (errno || end == v || *end || mul < 0 || !(x >= 0) || x * mul > 1e18)
        return cli_error("fuse: %s: '%s' is not a size (bytes, or a number with K, M, G or T)", opt, v), -1;
    *out = (size_t)(x * mul);
    return 0;
}

static int parse_args(int argc, char **argv, fuse_args *a) {
    memset(a, 0, sizeof *a);
    fsd_fuse_opts_default(&a->opts);
    for (int i = 1; i < argc; i++) {
        int c = cli_common_option(argc, argv, &i);
        if (c < 0) return 1;
        if (c) continue;
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long l;
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            usage(stdout);
            return -1;
        }
        if (!strcmp(o, "--json")) {
            a->json = 1;
            continue;
        }
        const char **str = !strcmp(o, "--ir") || !strcmp(o, "--a")           ? &a->a
                           : !strcmp(o, "--vi") || !strcmp(o, "--b")         ? &a->b
                           : !strcmp(o, "-o") || !strcmp(o, "--out")         ? &a->out
                           : !strcmp(o, "--ir-dir") || !strcmp(o, "--a-dir") ? &a->a_dir
                           : !strcmp(o, "--vi-dir") || !strcmp(o, "--b-dir") ? &a->b_dir
                           : !strcmp(o, "--out-dir")                         ? &a->out_dir
                           : !strcmp(o, "--model")                           ? &a->model
                           : !strcmp(o, "--context-file")                    ? &a->context_file
                           : !strcmp(o, "--save-steps")                      ? &a->save_steps
                                                                             : NULL;
        if (str) {
            if (!v || !*v) return cli_error("fuse: %s needs a value", o);
            *str = v;
            i++;
        } else if (!strcmp(o, "--scale")) {
            if (cli_parse_int(o, v, 1, FSD_FUSE_MAX_SCALE, &a->scale)) return 1;
            i++;
        } else if (!strcmp(o, "--sampler")) {
            fsd_sampler_kind k;
            if (!v) return cli_error("fuse: --sampler needs a value");
            if (fsd_sampler_parse(v, &k)) return cli_error("fuse: --sampler '%s': ddpm, ddim or dpmpp2m", v);
            a->opts.sampler = (int)k;
            i++;
        } else if (!strcmp(o, "--spacing")) {
            fsd_spacing sp;
            if (!v) return cli_error("fuse: --spacing needs a value");
            if (fsd_spacing_parse(v, &sp))
                return cli_error("fuse: --spacing '%s': linspace, trailing, leading or logsnr", v);
            a->opts.spacing = (int)sp;
            i++;
        } else if (!strcmp(o, "--context")) {
            fsd_context_mode cm;
            if (!v) return cli_error("fuse: --context needs a value");
            if (fsd_context_mode_parse(v, &cm)) return cli_error("fuse: --context '%s': clarity or mean", v);
            a->opts.context = (int)cm;
            i++;
        } else if (!strcmp(o, "--steps")) {
            if (cli_parse_int(o, v, 1, 1000000, &l)) return 1;
            a->opts.steps = (int)l;
            i++;
        } else if (!strcmp(o, "--residual-shrink")) {
            if (cli_parse_double(o, v, 0.0, 64.0, &a->opts.residual_shrink)) return 1;
            i++;
        } else if (!strcmp(o, "--eta")) {
            if (cli_parse_double(o, v, 0.0, 1.0, &a->opts.eta)) return 1;
            i++;
        } else if (!strcmp(o, "--seed")) {
            if (cli_parse_int(o, v, 0, LONG_MAX, &l)) return 1;
            a->opts.seed = (uint64_t)l;
            i++;
        } else if (!strcmp(o, "--tile")) {
            if (cli_parse_int(o, v, 1, 1 << 20, &l)) return 1;
            a->opts.tile = (int)l;
            i++;
        } else if (!strcmp(o, "--overlap")) {
            if (cli_parse_int(o, v, 0, 1 << 20, &l)) return 1;
            a->opts.overlap = (int)l;
            i++;
        } else if (!strcmp(o, "--max-memory")) {
            if (parse_bytes(o, v, &a->max_memory)) return 1;
            a->max_memory_set = 1;
            i++;
        } else {
            return cli_error("fuse: unknown option '%s' (see fsdiff fuse --help)", o);
        }
    }
    int batch = a->a_dir || a->b_dir || a->out_dir;
    if (batch) {
        if (!a->a_dir || !a->b_dir || !a->out_dir)
            return cli_error("fuse: batch mode needs --ir-dir, --vi-dir and --out-dir");
        if (a->a || a->b || a->out) return cli_error("fuse: give either --ir/--vi/-o or --ir-dir/--vi-dir/--out-dir");
        if (a->save_steps) return cli_error("fuse: --save-steps works on one pair only (not with --out-dir)");
    } else {
        if (!a->a || !a->b) return cli_error("fuse: both sources are needed (--ir IR --vi VI, or --a A --b B)");
        if (!a->out) return cli_error("fuse: no output given (-o OUT.png)");
        if (!has_png_ext(a->out)) return cli_error("fuse: output '%s' must end in .png", a->out);
    }
    if (!a->scale) return cli_error("fuse: --scale S is required (1..%d)", FSD_FUSE_MAX_SCALE);
    if (a->save_steps && !has_png_ext(a->save_steps))
        return cli_error("fuse: --save-steps '%s' must end in .png", a->save_steps);
    if (a->context_file && a->opts.context >= 0)
        return cli_error("fuse: --context and --context-file exclude each other (the file replaces the encoder)");
    if (a->opts.overlap >= 0 && !a->opts.tile) return cli_error("fuse: --overlap needs --tile");
    if (!a->max_memory_set) {
        long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGE_SIZE);
        a->max_memory = pages > 0 && psz > 0 ? (size_t)pages * (size_t)psz : 0;
    }
    a->opts.max_memory = a->max_memory;
    return 0;
}

/* ---------------------------------------------------------------- default model */
static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* --model, else $FSDIFF_MODEL, else beside the executable (build tree, then install tree). */
static int find_model(const char *given, char *out, size_t n) {
    if (given) {
        snprintf(out, n, "%s", given);
        return 0;
    }
    const char *env = getenv("FSDIFF_MODEL");
    if (env && *env) {
        if (!file_exists(env)) return cli_error("fuse: FSDIFF_MODEL=%s: no such file (pass --model M.safetensors)", env);
        snprintf(out, n, "%s", env);
        return 0;
    }
    char exe[PATH_MAX], c1[PATH_MAX + 64] = "", c2[PATH_MAX + 64] = "";
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k > 0) {
        exe[k] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0;
        snprintf(c1, sizeof c1, "%s/../models/%s", exe, DEFAULT_MODEL_NAME);
        snprintf(c2, sizeof c2, "%s/../share/fsdiff/%s", exe, DEFAULT_MODEL_NAME);
        if (file_exists(c1)) return snprintf(out, n, "%s", c1), 0;
        if (file_exists(c2)) return snprintf(out, n, "%s", c2), 0;
    }
    return cli_error("fuse: no model given and none found ($FSDIFF_MODEL is unset; looked for %s and %s); "
                     "pass --model M.safetensors",
                     *c1 ? c1 : "<fsdiff dir>/../models/" DEFAULT_MODEL_NAME,
                     *c2 ? c2 : "<fsdiff dir>/../share/fsdiff/" DEFAULT_MODEL_NAME);
}

/* ---------------------------------------------------------------- progress over the sampler steps */
typedef struct bar {
    fsd_progress p;
    int started;
} bar;

static void on_progress(void *ctx, int step, int steps, int tile, int tiles) {
    bar *b = ctx;
    if (!b->started) {
        fsd_progress_begin(&b->p, "fuse", steps);
        b->started = 1;
    }
    if (tiles > 1) {
        char extra[48];
        snprintf(extra, sizeof extra, "tile %d/%d", tile, tiles);
        fsd_progress_update(&b->p, step, extra);
    } else {
        fsd_progress_update(&b->p, step + 1, NULL);
    }
}

/* ---------------------------------------------------------------- one pair */
static const char *strip_prefix(const char *msg) { return strncmp(msg, "fuse: ", 6) ? msg : msg + 6; }

/* Writes OUT with the run's settings as PNG text chunks. */
static fsd_status save_output(const char *path, const fsd_image *im, const fsd_fuse_info *in, long scale) {
    char sw[64], steps[32], seed[32], sc[32], eta[32], tile[32], shrink[32];
    snprintf(sw, sizeof sw, "fsdiff %s fuse", FSD_VERSION_STRING);
    snprintf(steps, sizeof steps, "%d", in->steps);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)in->seed);
    snprintf(sc, sizeof sc, "%ld", scale);
    snprintf(eta, sizeof eta, "%g", in->eta);
    snprintf(tile, sizeof tile, "%d", in->tiles > 1 ? in->tile : 0);
    snprintf(shrink, sizeof shrink, "%g", in->residual_shrink);
    const char *text[] = {"Software",       sw,
                          "fsdiff.version", FSD_VERSION_STRING,
                          "fsdiff.model",   in->model,
                          "fsdiff.sampler", fsd_sampler_name(in->sampler),
                          "fsdiff.steps",   steps,
                          "fsdiff.spacing", fsd_spacing_name(in->spacing),
                          "fsdiff.eta",     eta,
                          "fsdiff.seed",    seed,
                          "fsdiff.scale",   sc,
                          "fsdiff.context", in->context_external ? "file" : fsd_context_mode_name(in->context),
                          "fsdiff.tile",    tile,
                          "fsdiff.residual_shrink", shrink};
    return fsd_image_save_png(path, im, text, (int)(sizeof text / sizeof *text / 2));
}

static const char *role_word(int r) {
    return r == FSD_ROLE_LEAD ? "lead" : r == FSD_ROLE_FOLLOW ? "follow" : "neutral";
}

static void log_info(const fsd_fuse_info *in, const char *out) {
    fsd_log(FSD_LOG_INFO,
            "fuse: model %s; sampler %s, %d steps (%s), eta %g, seed %llu, residual shrink %g, context %s; %dx%d -> "
            "%dx%d %s (x%d, x%d), %d tile%s",
            in->model, fsd_sampler_name(in->sampler), in->steps, fsd_spacing_name(in->spacing), in->eta,
            (unsigned long long)in->seed, in->residual_shrink, in->context_external ? "file" : fsd_context_mode_name(in->context),
            in->in_w[0], in->in_h[0], in->out_w, in->out_h, in->out_c == 3 ? "RGB" : "grey", in->factor[0],
            in->factor[1], in->tiles, in->tiles > 1 ? "s" : "");
    if (in->have_deg)
        fsd_log(FSD_LOG_INFO,
                "fuse: clarity: a log2 scale %.2f blur %.2f noise %.1f -> %s; b log2 scale %.2f blur %.2f noise %.1f -> %s",
                in->deg[0][0], in->deg[0][1], in->deg[0][2], role_word(in->roles[0]), in->deg[1][0], in->deg[1][1],
                in->deg[1][2], role_word(in->roles[1]));
    fsd_log(FSD_LOG_INFO, "fuse: wrote %s in %.2f s (context %.2f s, sampling %.2f s; memory estimate %.0f MiB)", out,
            in->seconds, in->seconds_context, in->seconds_sampling, in->mem_total / 1048576.0);
}

/* Loads both sources, checks the size rule, runs, writes out (and the steps grid). Message set on failure. */
static fsd_status fuse_pair(const fsd_model *m, const fuse_args *a, const char *pa, const char *pb, const char *out,
                            const float *ctx_ext, fsd_fuse_progress_fn prog, void *prog_ctx, fsd_fuse_info *info) {
    fsd_image ia = {0}, ib = {0}, f = {0};
    fsd_frames frames;
    memset(&frames, 0, sizeof frames);
    fsd_status s = fsd_image_load(pa, &ia);
    if (!s) s = fsd_image_load(pb, &ib);
    if (!s && fsd_fuse_output_size(ia.w, ia.h, ib.w, ib.h, (int)a->scale, NULL, NULL, NULL, NULL)) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", strip_prefix(fsd_error_message()));
        s = fsd_fail(FSD_ERR_INVALID, "fuse: %s + %s: %s", pa, pb, msg);
    }
    if (!s) {
        fsd_fuse_opts o = a->opts;
        o.context_ext = ctx_ext;
        o.progress = prog;
        o.progress_ctx = prog_ctx;
        o.cancel = &g_cancel;
        if (a->save_steps) o.frames = &frames;
        s = fsd_fuse_run(m, &ia, &ib, (int)a->scale, &o, &f, info);
    }
    if (!s && a->save_steps) {
        fsd_image grid = {0};
        int cols = 16384 / (f.w > 0 ? f.w : 1);
        s = fsd_frames_grid(&frames, cols < 1 ? 1 : cols, 4, &grid);
        if (!s) {
            char sw[64];
            snprintf(sw, sizeof sw, "fsdiff %s fuse --save-steps", FSD_VERSION_STRING);
            const char *text[2] = {"Software", sw};
            s = fsd_image_save_png(a->save_steps, &grid, text, 1);
        }
        fsd_image_free(&grid);
    }
    if (!s) {
        s = save_output(out, &f, info, a->scale);
        if (s && a->save_steps) unlink(a->save_steps); /* no half of the outputs */
    }
    fsd_frames_free(&frames);
    fsd_image_free(&ia);
    fsd_image_free(&ib);
    fsd_image_free(&f);
    return s;
}

/* ---------------------------------------------------------------- batch: pairs by stem */
typedef struct entry {
    char *stem, *file;
} entry;

static int cmp_entry(const void *x, const void *y) { return strcmp(((const entry *)x)->stem, ((const entry *)y)->stem); }

static void entries_free(entry *e, int n) {
    for (int i = 0; i < n; i++) free(e[i].stem), free(e[i].file);
    free(e);
}

/* Image files of dir, sorted by stem; two files with one stem are an error. */
static int list_images(const char *dir, entry **out, int *n_out) {
    *out = NULL, *n_out = 0;
    DIR *d = opendir(dir);
    if (!d) return cli_error("fuse: %s: cannot open: %s", dir, strerror(errno));
    entry *v = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !fsd_is_image_name(e->d_name)) continue;
        char p[PATH_MAX];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (stat(p, &st) || !S_ISREG(st.st_mode)) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            entry *nv = realloc(v, (size_t)cap * sizeof *nv);
            if (!nv) break;
            v = nv;
        }
        v[n].file = strdup(e->d_name);
        v[n].stem = strdup(e->d_name);
        if (!v[n].file || !v[n].stem) break;
        *strrchr(v[n].stem, '.') = 0;
        n++;
    }
    closedir(d);
    if (n > 1) qsort(v, (size_t)n, sizeof *v, cmp_entry);
    for (int i = 1; i < n; i++)
        if (!strcmp(v[i].stem, v[i - 1].stem)) {
            int rc = cli_error("fuse: %s: two files named %s (%s, %s): one per name", dir, v[i].stem, v[i - 1].file,
                               v[i].file);
            entries_free(v, n);
            return rc;
        }
    *out = v, *n_out = n;
    return 0;
}

static int run_batch(const fsd_model *m, const fuse_args *a, const float *ctx_ext) {
    entry *ea, *eb;
    int na, nb;
    if (list_images(a->a_dir, &ea, &na)) return 1;
    if (list_images(a->b_dir, &eb, &nb)) {
        entries_free(ea, na);
        return 1;
    }
    /* merge the two sorted lists */
    int *pi = malloc(sizeof(int) * (size_t)(na + 1)), *pj = malloc(sizeof(int) * (size_t)(na + 1)), np = 0;
    int unmatched = 0;
    for (int i = 0, j = 0; i < na || j < nb;) {
        int c = i >= na ? 1 : j >= nb ? -1 : strcmp(ea[i].stem, eb[j].stem);
        if (c == 0) {
            pi[np] = i++, pj[np++] = j++;
        } else if (c < 0) {
            fsd_log(FSD_LOG_WARN, "fuse: %s/%s has no partner in %s (skipped)", a->a_dir, ea[i++].file, a->b_dir);
            unmatched++;
        } else {
            fsd_log(FSD_LOG_WARN, "fuse: %s/%s has no partner in %s (skipped)", a->b_dir, eb[j++].file, a->a_dir);
            unmatched++;
        }
    }
    int rc = 0;
    if (!np) {
        rc = cli_error("fuse: no pairs: no file name (without extension) is in both %s and %s", a->a_dir, a->b_dir);
        goto done;
    }
    if (mkdir(a->out_dir, 0777) && errno != EEXIST) {
        rc = cli_error("fuse: %s: cannot create: %s", a->out_dir, strerror(errno));
        goto done;
    }
    fsd_log(FSD_LOG_INFO, "fuse: %d pairs (%d unmatched files skipped) -> %s", np, unmatched, a->out_dir);
    fsd_progress p;
    fsd_progress_begin(&p, "fuse", np);
    int failed = 0, done_n = 0;
    if (a->json) printf("{\"pairs\":[");
    for (int k = 0; k < np && !g_cancel; k++) {
        char pa[PATH_MAX], pb[PATH_MAX], po[PATH_MAX];
        snprintf(pa, sizeof pa, "%s/%s", a->a_dir, ea[pi[k]].file);
        snprintf(pb, sizeof pb, "%s/%s", a->b_dir, eb[pj[k]].file);
        snprintf(po, sizeof po, "%s/%s.png", a->out_dir, ea[pi[k]].stem);
        fsd_fuse_info info;
        memset(&info, 0, sizeof info);
        fsd_status s = fuse_pair(m, a, pa, pb, po, ctx_ext, NULL, NULL, &info);
        if (s) {
            failed++;
            cli_error("%s: %s", ea[pi[k]].stem, fsd_error_message());
        } else {
            fsd_log(FSD_LOG_DEBUG, "fuse: %s -> %s (%.2f s)", ea[pi[k]].stem, po, info.seconds);
        }
        if (a->json) {
            printf("%s{\"name\":", k ? "," : "");
            fsd_json_write_string(stdout, ea[pi[k]].stem);
            printf(",\"output\":");
            fsd_json_write_string(stdout, po);
            printf(",\"ok\":%s", s ? "false" : "true");
            if (s) {
                printf(",\"error\":");
                fsd_json_write_string(stdout, fsd_error_message());
            } else {
                printf(",\"info\":");
                fsd_fuse_info_json(stdout, &info);
            }
            printf("}");
        }
        fsd_progress_update(&p, ++done_n, NULL);
    }
    fsd_progress_end(&p);
    if (a->json) printf("],\"fused\":%d,\"failed\":%d,\"unmatched\":%d}\n", done_n - failed, failed, unmatched);
    if (g_cancel) rc = cli_error("fuse: interrupted after %d of %d pairs", done_n, np);
    else if (failed) rc = cli_error("fuse: %d of %d pairs failed (the others are in %s)", failed, np, a->out_dir);
    else fsd_log(FSD_LOG_INFO, "fuse: %d pairs fused into %s", np, a->out_dir);
done:
    free(pi);
    free(pj);
    entries_free(ea, na);
    entries_free(eb, nb);
    return rc;
}

/* ---------------------------------------------------------------- entry */
int cmd_fuse(int argc, char **argv) {
    fuse_args a;
    int r = parse_args(argc, argv, &a);
    if (r) return r < 0 ? 0 : 1;
    char model_path[PATH_MAX + 64];
    if (find_model(a.model, model_path, sizeof model_path)) return 1;
    if (a.json) fsd_progress_set_quiet(1);

    /* single pair: check the inputs and the size rule before loading the model */
    if (!a.a_dir) {
        fsd_image ia = {0}, ib = {0};
        fsd_status s = fsd_image_load(a.a, &ia);
        if (!s) s = fsd_image_load(a.b, &ib);
        int bad = !s && fsd_fuse_output_size(ia.w, ia.h, ib.w, ib.h, (int)a.scale, NULL, NULL, NULL, NULL);
        fsd_image_free(&ia);
        fsd_image_free(&ib);
        if (bad) return cli_error("fuse: %s + %s: %s", a.a, a.b, strip_prefix(fsd_error_message()));
        if (s) return cli_lib_error();
    }
    double t0 = fsd_time_seconds();
    fsd_model m;
    if (fsd_model_open(&m, model_path)) return cli_lib_error();
    fsd_log(FSD_LOG_DEBUG, "fuse: opened %s in %.2f s", model_path, fsd_time_seconds() - t0);
    float *ctx = NULL;
    if (a.context_file) {
        const fsd_net_config *nc = fsd_net_cfg(m.net);
        if (fsd_context_file_load(a.context_file, nc->context_tokens, nc->context_dim, &ctx)) {
            fsd_model_close(&m);
            return cli_lib_error();
        }
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    int rc = 0;
    if (a.a_dir) {
        rc = run_batch(&m, &a, ctx);
    } else {
        bar b;
        memset(&b, 0, sizeof b);
        fsd_fuse_info info;
        fsd_status s = fuse_pair(&m, &a, a.a, a.b, a.out, ctx, on_progress, &b, &info);
        if (b.started) fsd_progress_end(&b.p);
        if (s) {
            rc = cli_lib_error();
        } else {
            log_info(&info, a.out);
            if (a.json) {
                printf("{\"output\":");
                fsd_json_write_string(stdout, a.out);
                printf(",\"scale\":%ld,\"version\":\"%s\",\"info\":", a.scale, FSD_VERSION_STRING);
                fsd_fuse_info_json(stdout, &info);
                printf("}\n");
            }
        }
    }
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    fsd_free(ctx);
    fsd_model_close(&m);
    return rc;
}
