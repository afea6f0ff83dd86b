/* Pairs of a split folder: DIR/<A>/NAME.ext and DIR/<B>/NAME.ext, A the first modality folder in
 * name order (used by eval, teacher and the trainer). */
#include "fsdiff/pairs.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

typedef struct names {
    char **v;
    int n, cap;
} names;

static void names_free(names *l) {
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int names_push(names *l, const char *s) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        char **v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) return -1;
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(s))) return -1;
    l->n++;
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int fsd_is_image_name(const char *s) {
    static const char *ext[] = {".png", ".jpg", ".jpeg", ".bmp", ".tga", ".pgm", ".ppm", ".pnm"};
    const char *dot = strrchr(s, '.');
    if (!dot || dot == s) return 0;
    for (size_t i = 0; i < sizeof ext / sizeof *ext; i++)
        if (!strcasecmp(dot, ext[i])) return 1;
    return 0;
}

static char *join(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    char *p = malloc(na + nb + 2);
    if (!p) return NULL;
    memcpy(p, a, na);
    p[na] = '/';
    memcpy(p + na + 1, b, nb + 1);
    return p;
}

/* Sorted visible entries of dir: want_dirs = 1 sub-directories, 0 image files. */
static fsd_status list_dir(const char *dir, int want_dirs, names *out) {
    DIR *d = opendir(dir);
    if (!d) return fsd_fail(FSD_ERR_IO, "%s: cannot open: %s", dir, strerror(errno));
    struct dirent *e;
    fsd_status s = FSD_OK;
    while (!s && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *p = join(dir, e->d_name);
        struct stat st;
        if (!p) s = fsd_fail(FSD_ERR_NOMEM, "out of memory");
        else if (stat(p, &st) == 0 &&
                 (want_dirs ? S_ISDIR(st.st_mode) : (S_ISREG(st.st_mode) && fsd_is_image_name(e->d_name))) &&
                 names_push(out, e->d_name))
            s = fsd_fail(FSD_ERR_NOMEM, "out of memory");
        free(p);
    }
    closedir(d);
    if (!s && out->n) qsort(out->v, (size_t)out->n, sizeof *out->v, cmp_str);
    return s;
}

typedef struct stem {
    char *stem;
    const char *file;
} stem;

static int cmp_stem(const void *a, const void *b) { return strcmp(((const stem *)a)->stem, ((const stem *)b)->stem); }

/* (NAME, file) of every file, sorted by NAME; the same NAME twice is an error. */
static fsd_status stems_of(const char *dir, const names *files, stem **out) {
    stem *e = calloc((size_t)files->n + 1, sizeof *e);
    if (!e) return fsd_fail(FSD_ERR_NOMEM, "out of memory");
    *out = e;
    for (int i = 0; i < files->n; i++) {
        e[i].file = files->v[i];
        if (!(e[i].stem = strdup(files->v[i]))) return fsd_fail(FSD_ERR_NOMEM, "out of memory");
        char *dot = strrchr(e[i].stem, '.');
        if (dot && dot != e[i].stem) *dot = 0;
    }
    qsort(e, (size_t)files->n, sizeof *e, cmp_stem);
    for (int i = 1; i < files->n; i++)
        if (!strcmp(e[i].stem, e[i - 1].stem))
            return fsd_fail(FSD_ERR_INVALID, "%s: two images named '%s' (%s, %s)", dir, e[i].stem, e[i - 1].file,
                            e[i].file);
    return FSD_OK;
}

static void stems_free(stem *e, int n) {
    if (!e) return;
    for (int i = 0; i < n; i++) free(e[i].stem);
    free(e);
}

void fsd_pairs_free(fsd_pair_set *s) {
    if (!s) return;
    for (int i = 0; i < s->n; i++) {
        free(s->pairs[i].name);
        free(s->pairs[i].path_a);
        free(s->pairs[i].path_b);
    }
    free(s->pairs);
    free(s->dir);
    free(s->mod_a);
    free(s->mod_b);
    memset(s, 0, sizeof *s);
}

void fsd_pairs_limit(fsd_pair_set *s, int n) {
    if (n < 1) n = 1;
    for (int i = n; i < s->n; i++) {
        free(s->pairs[i].name);
        free(s->pairs[i].path_a);
        free(s->pairs[i].path_b);
    }
    if (n < s->n) s->n = n;
}

void fsd_pairs_every(fsd_pair_set *s, int k) {
    if (k <= 1) return;
    int n = 0;
    for (int i = 0; i < s->n; i++) {
        if (i % k == 0) {
            s->pairs[n++] = s->pairs[i];
            continue;
        }
        free(s->pairs[i].name);
        free(s->pairs[i].path_a);
        free(s->pairs[i].path_b);
    }
    s->n = n;
}

fsd_status fsd_pairs_scan(const char *dir, fsd_pair_set *out) {
    memset(out, 0, sizeof *out);
    if (!dir || !*dir) return fsd_fail(FSD_ERR_INVALID, "no data folder given");
    names mods = {0}, fa = {0}, fb = {0};
    stem *ea = NULL, *eb = NULL;
    char *da = NULL, *db = NULL;
    fsd_status s = list_dir(dir, 1, &mods);
    if (s) goto done;
    if (mods.n == 0) {
        s = fsd_fail(FSD_ERR_INVALID,
                     "%s: no modality folders (expected %s/<A>/NAME.png and %s/<B>/NAME.png, e.g. ir/ vi/ or mri/ other/)",
                     dir, dir, dir);
        goto done;
    }
    if (mods.n != 2) {
        s = fsd_fail(FSD_ERR_INVALID, "%s: expected two modality folders (e.g. ir/ vi/ or mri/ other/), found %d", dir,
                     mods.n);
        goto done;
    }
    if (!(da = join(dir, mods.v[0])) || !(db = join(dir, mods.v[1]))) {
        s = fsd_fail(FSD_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((s = list_dir(da, 0, &fa)) || (s = list_dir(db, 0, &fb))) goto done;
    if (!fa.n || !fb.n) {
        s = fsd_fail(FSD_ERR_INVALID, "%s is empty (no images)", fa.n ? db : da);
        goto done;
    }
    if ((s = stems_of(da, &fa, &ea)) || (s = stems_of(db, &fb, &eb))) goto done;
    if (!(out->pairs = calloc((size_t)(fa.n < fb.n ? fb.n : fa.n), sizeof *out->pairs))) {
        s = fsd_fail(FSD_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* merge walk over the two sorted NAME lists: every NAME must be on both sides */
    for (int i = 0, j = 0; i < fa.n || j < fb.n;) {
        int c = i == fa.n ? 1 : j == fb.n ? -1 : strcmp(ea[i].stem, eb[j].stem);
        if (c < 0) {
            s = fsd_fail(FSD_ERR_INVALID, "%s/%s has no partner in %s/", da, ea[i].file, db);
            goto done;
        }
        if (c > 0) {
            s = fsd_fail(FSD_ERR_INVALID, "%s/%s has no partner in %s/", db, eb[j].file, da);
            goto done;
        }
        fsd_pair *p = &out->pairs[out->n++];
        p->name = strdup(ea[i].stem);
        p->path_a = join(da, ea[i].file);
        p->path_b = join(db, eb[j].file);
        if (!p->name || !p->path_a || !p->path_b) {
            s = fsd_fail(FSD_ERR_NOMEM, "out of memory");
            goto done;
        }
        i++;
        j++;
    }
    out->dir = strdup(dir);
    out->mod_a = strdup(mods.v[0]);
    out->mod_b = strdup(mods.v[1]);
    if (!out->dir || !out->mod_a || !out->mod_b) s = fsd_fail(FSD_ERR_NOMEM, "out of memory");
done:
    if (s) fsd_pairs_free(out);
    stems_free(ea, fa.n);
    stems_free(eb, fb.n);
    names_free(&mods);
    names_free(&fa);
    names_free(&fb);
    free(da);
    free(db);
    return s;
}
