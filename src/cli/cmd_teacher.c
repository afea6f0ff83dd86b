/* fsdiff teacher: fused HR targets for every pair of a data directory, with a classical method.
 *
 * Layout read: DIR/<set>/<split>/<modality>/NAME.<ext>, exactly two modality folders per split;
 * the first in name order is source A (ivf: ir before vi; med: mri before other). A pair is the
 * same NAME in both folders. Written: OUT/<set>/<split>/NAME.png. An output that exists and is
 * newer than both of its inputs is kept (cached). OUT/.fsdiff-teacher records the method and its
 * parameters, so that a run with another method does not silently mix targets. */
#include "cli.h"
#include "fsdiff/fusion.h"
#include "fsdiff/image.h"
#include "fsdiff/pairs.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static void usage(FILE *fp) {
    fprintf(fp,
            "usage: fsdiff teacher [--method M] --data DIR --out DIR [--force]\n\n"
            "Fuses every pair DIR/<set>/<split>/{A,B}/NAME.png (e.g. ivf/train/{ir,vi},\n"
            "med/val/{mri,other}) into OUT/<set>/<split>/NAME.png: the fused HR training targets.\n"
            "An output newer than both of its inputs is kept (cached); --force rewrites all.\n"
            "  --method M     average | laplacian | gff | gradient | auto (default: gff); auto decides\n"
            "                 per pair: gradient for scans on a black background, laplacian otherwise\n"
            "  --levels N     laplacian: pyramid levels (default: automatic)\n"
            "  --lambda L     gradient: data-term weight (default 0.05)\n"
            "  --threads N    pairs are fused in parallel, one per thread (default: all cores)\n"
            "  --quiet, --verbose\n"
            "Colour is handled as in `fsdiff classic` (Y fused, chroma of the colour source kept).\n");
}

/* ---------------------------------------------------------------- small helpers */
typedef struct strlist {
    char **v;
    int n, cap;
} strlist;

static int sl_push(strlist *l, const char *s) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        char **v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) return -1;
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(s))) return -1;
    l->n++;
    return 0;
}

static void sl_free(strlist *l) {
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* Formats a path into dst[4096]; -1 (error printed) when it does not fit. */
static int path_fmt(char *dst, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int path_fmt(char *dst, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(dst, 4096, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= 4096) return cli_error("teacher: path too long (%.60s...)", dst), -1;
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sub-directories of dir (no hidden ones), sorted. Returns 0, or -1 with an error printed. */
static int list_dirs(const char *dir, strlist *out) {
    DIR *d = opendir(dir);
    if (!d) return cli_error("teacher: %s: cannot open: %s", dir, strerror(errno)), -1;
    struct dirent *e;
    char p[4096];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(p, &st) != 0) continue;
        if (S_ISDIR(st.st_mode) && sl_push(out, e->d_name)) {
            closedir(d);
            return cli_error("teacher: out of memory"), -1;
        }
    }
    closedir(d);
    if (out->n) qsort(out->v, (size_t)out->n, sizeof *out->v, cmp_str);
    return 0;
}

static int mkdir_p(const char *path) {
    char p[4096];
    snprintf(p, sizeof p, "%s", path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0777) != 0 && errno != EEXIST) return -1;
        *s = '/';
    }
    if (mkdir(p, 0777) != 0 && errno != EEXIST) return -1;
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
}

static int newer(const struct stat *a, const struct stat *b) { /* a strictly newer than b */
    if (a->st_mtim.tv_sec != b->st_mtim.tv_sec) return a->st_mtim.tv_sec > b->st_mtim.tv_sec;
    return a->st_mtim.tv_nsec > b->st_mtim.tv_nsec;
}

typedef struct pair {
    char a[4096], b[4096], out[4096];
    int cached;
} pair;

typedef struct pairlist {
    pair *v;
    int n, cap;
} pairlist;

/* Pairs of one DIR/<set>/<split> (the pairing rule of fsd_pairs_scan), appended to pl. */
static int scan_split(const char *data, const char *set, const char *split, const char *outdir, pairlist *pl) {
    char sdir[4096];
    if (path_fmt(sdir, "%s/%s/%s", data, set, split)) return -1;
    fsd_pair_set ps;
    if (fsd_pairs_scan(sdir, &ps) != FSD_OK) return cli_error("teacher: %s", fsd_error_message()), -1;
    int rc = 0;
    for (int i = 0; i < ps.n && !rc; i++) {
        if (pl->n == pl->cap) {
            int cap = pl->cap ? 2 * pl->cap : 256;
            pair *v = realloc(pl->v, (size_t)cap * sizeof *v);
            if (!v) {
                rc = -cli_error("teacher: out of memory");
                break;
            }
            pl->v = v;
            pl->cap = cap;
        }
        pair *p = &pl->v[pl->n++];
        p->cached = 0;
        if (path_fmt(p->a, "%s", ps.pairs[i].path_a) || path_fmt(p->b, "%s", ps.pairs[i].path_b) ||
            path_fmt(p->out, "%s/%s/%s/%s.png", outdir, set, split, ps.pairs[i].name))
            rc = -1;
    }
    fsd_pairs_free(&ps);
    return rc;
}

/* Method + parameters, as recorded in OUT/.fsdiff-teacher */
static void method_tag(fsd_fuse_method m, const fsd_fuse_params *p, char *buf, size_t n) {
    switch (m) {
    case FSD_FUSE_LAPLACIAN: snprintf(buf, n, "method=laplacian levels=%d", p->lap_levels); break;
    case FSD_FUSE_GFF:
        snprintf(buf, n, "method=gff r1=%d eps1=%g r2=%d eps2=%g", p->gff_r1, p->gff_eps1, p->gff_r2, p->gff_eps2);
        break;
    case FSD_FUSE_GRADIENT: snprintf(buf, n, "method=gradient lambda=%g", p->grad_lambda); break;
    case FSD_FUSE_AUTO: /* the decision rule is part of what made the targets */
        snprintf(buf, n, "method=auto dark_level=%g dark_share=%g levels=%d lambda=%g", (double)FSD_FUSE_DARK_LEVEL,
                 FSD_FUSE_DARK_SHARE, p->lap_levels, p->grad_lambda);
        break;
    default: snprintf(buf, n, "method=%s", fsd_fuse_method_name(m)); break;
    }
}

int cmd_teacher(int argc, char **argv) {
    const char *method_name = "gff", *data = NULL, *outdir = NULL;
    int force = 0;
    fsd_fuse_params prm;
    fsd_fuse_params_default(&prm);
    for (int i = 1; i < argc; i++) {
        int c = cli_common_option(argc, argv, &i);
        if (c < 0) return 1;
        if (c) continue;
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) { usage(stdout); return 0; }
        if (!strcmp(o, "--force")) force = 1;
        else if (!strcmp(o, "--method") || !strcmp(o, "--data") || !strcmp(o, "--out") || !strcmp(o, "-o")) {
            if (!v) return cli_error("teacher: %s needs a value", o);
            if (!strcmp(o, "--method")) method_name = v;
            else if (!strcmp(o, "--data")) data = v;
            else outdir = v;
            i++;
        } else if ((c = cli_fuse_param_option(argc, argv, &i, &prm)) != 0) {
            if (c < 0) return 1;
        } else {
            return cli_error("teacher: unknown option '%s' (see fsdiff teacher --help)", o);
        }
    }
    fsd_fuse_method m;
    if (fsd_fuse_method_parse(method_name, &m) != FSD_OK) return cli_lib_error();
    if (!data) return cli_error("teacher: no data directory given (--data DIR)");
    if (!outdir) return cli_error("teacher: no output directory given (--out DIR)");

    /* ---- scan DIR/<set>/<split> */
    pairlist pl = {0};
    strlist sets = {0};
    int rc = 1;
    if (list_dirs(data, &sets)) goto out;
    if (!sets.n) {
        cli_error("teacher: %s: no set folders (expected %s/<set>/<split>/<modality>/NAME.png)", data, data);
        goto out;
    }
    for (int s = 0; s < sets.n; s++) {
        char sd[4096];
        snprintf(sd, sizeof sd, "%s/%s", data, sets.v[s]);
        strlist splits = {0};
        if (list_dirs(sd, &splits)) goto out;
        if (!splits.n) {
            cli_error("teacher: %s: no split folders (e.g. train/ val/)", sd);
            sl_free(&splits);
            goto out;
        }
        for (int k = 0; k < splits.n; k++)
            if (scan_split(data, sets.v[s], splits.v[k], outdir, &pl)) {
                sl_free(&splits);
                goto out;
            }
        sl_free(&splits);
    }

    /* ---- output directory and its method record */
    char tag[256], marker[4096];
    method_tag(m, &prm, tag, sizeof tag);
    if (mkdir_p(outdir)) {
        cli_error("teacher: cannot create %s: %s", outdir, strerror(errno));
        goto out;
    }
    snprintf(marker, sizeof marker, "%s/.fsdiff-teacher", outdir);
    {
        unsigned char *old = NULL;
        size_t n_old = 0;
        if (fsd_read_file(marker, &old, &n_old) == FSD_OK) {
            size_t L = strlen(tag);
            int same = n_old == L + 1 && !memcmp(old, tag, L);
            fsd_free(old);
            if (!same && !force) {
                cli_error("teacher: %s holds targets made with another method (see %s); use --force or another --out",
                          outdir, marker);
                goto out;
            }
            if (!same) force = 1; /* everything in OUT is stale */
        }
        fsd_clear_error();
        char line[300];
        snprintf(line, sizeof line, "%s\n", tag);
        if (fsd_write_file_atomic(marker, line, strlen(line)) != FSD_OK) {
            cli_lib_error();
            goto out;
        }
    }
    int n_cached = 0;
    for (int i = 0; i < pl.n; i++) {
        pair *p = &pl.v[i];
        struct stat so, sa, sb;
        p->cached = !force && stat(p->out, &so) == 0 && stat(p->a, &sa) == 0 && stat(p->b, &sb) == 0 &&
                    newer(&so, &sa) && newer(&so, &sb);
        n_cached += p->cached;
        if (!p->cached) {
            char d[4096];
            snprintf(d, sizeof d, "%s", p->out);
            *strrchr(d, '/') = 0;
            if (mkdir_p(d)) {
                cli_error("teacher: cannot create %s: %s", d, strerror(errno));
                goto out;
            }
        }
    }

    /* ---- fuse, one pair per thread */
    int *todo = malloc(((size_t)pl.n + 1) * sizeof(int)), n_todo = 0;
    if (!todo) {
        cli_error("teacher: out of memory");
        goto out;
    }
    for (int i = 0; i < pl.n; i++)
        if (!pl.v[i].cached) todo[n_todo++] = i;
    char label[64], errmsg[16384] = "";
    snprintf(label, sizeof label, "teacher %s", fsd_fuse_method_name(m));
    fsd_progress prog;
    fsd_progress_begin(&prog, label, pl.n);
    fsd_progress_update(&prog, n_cached, NULL);
    int failed = 0, done = n_cached;
    double t0 = fsd_time_seconds();
#pragma omp parallel for schedule(dynamic, 1)
    for (int t = 0; t < n_todo; t++) {
        int stop;
#pragma omp atomic read
        stop = failed;
        if (stop) continue;
        const pair *p = &pl.v[todo[t]];
        fsd_image a = {0}, b = {0}, f = {0};
        char local[16384] = "";
        fsd_status s = fsd_image_load(p->a, &a);
        if (!s) s = fsd_image_load(p->b, &b);
        if (!s && (a.w != b.w || a.h != b.h)) {
            snprintf(local, sizeof local, "teacher: pair differs in size: %s is %dx%d, %s is %dx%d", p->a, a.w, a.h,
                     p->b, b.w, b.h);
            s = FSD_ERR_INVALID;
        } else if (!s) {
            s = fsd_fuse_images(m, &prm, &a, &b, &f);
            if (!s) {
                const char *text[2] = {"Software", "fsdiff teacher"};
                s = fsd_image_save_png(p->out, &f, text, 1);
            }
        }
        if (s && !local[0]) snprintf(local, sizeof local, "teacher: %s", fsd_error_message());
        fsd_image_free(&a);
        fsd_image_free(&b);
        fsd_image_free(&f);
#pragma omp critical(teacher_progress)
        {
            if (s && !failed) {
                failed = 1;
                snprintf(errmsg, sizeof errmsg, "%s", local);
            }
            done++;
            fsd_progress_update(&prog, done, NULL);
        }
    }
    fsd_progress_end(&prog);
    free(todo);
    if (failed) {
        cli_error("%s", errmsg);
        goto out;
    }
    double dt = fsd_time_seconds() - t0;
    if (fsd_get_log_level() >= FSD_LOG_INFO)
        fprintf(stderr, "teacher: %s: %d pairs: %d written, %d skipped (cached) in %.1f s -> %s\n",
                fsd_fuse_method_name(m), pl.n, n_todo, n_cached, dt, outdir);
    rc = 0;
out:
    sl_free(&sets);
    free(pl.v);
    return rc;
}
