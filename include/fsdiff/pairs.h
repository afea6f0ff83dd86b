/* Aligned image pairs of a split folder (used by eval, teacher and the trainer). */
#ifndef FSDIFF_PAIRS_H
#define FSDIFF_PAIRS_H

#include "fsdiff/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A split folder DIR holds exactly two modality folders; the first in name order is source A
 * (ivf: ir before vi; med: mri before other), the other B. A pair is the same NAME (file name
 * without extension) in both. */
typedef struct fsd_pair {
    char *name;   /* NAME */
    char *path_a; /* DIR/<A>/NAME.ext */
    char *path_b; /* DIR/<B>/NAME.ext */
} fsd_pair;

typedef struct fsd_pair_set {
    char *dir;
    char *mod_a, *mod_b; /* modality folder names, e.g. "ir", "vi" */
    fsd_pair *pairs; /* sorted by name */
    int n;
} fsd_pair_set;

/* Lists the pairs of DIR. Fails with one message: DIR unreadable (FSD_ERR_IO); not exactly two
 * modality folders, an empty modality folder, a file without its partner (named), two files with
 * the same NAME in one folder (FSD_ERR_INVALID). Only the file names are checked here; the images
 * are read by the caller. */
fsd_status fsd_pairs_scan(const char *dir, fsd_pair_set *out);
void fsd_pairs_free(fsd_pair_set *s);
/* 1 if the file name has an image extension the loader reads (.png .jpg .jpeg .bmp .tga .pgm .ppm
 * .pnm, case-insensitive), else 0. */
int fsd_is_image_name(const char *name);
/* Keeps the first n pairs (n >= 1; no-op when n >= s->n). */
void fsd_pairs_limit(fsd_pair_set *s, int n);
/* Keeps every k-th pair (pairs 0, k, 2k, ...; k >= 1): a spread-out subset for quick runs. */
void fsd_pairs_every(fsd_pair_set *s, int k);

#ifdef __cplusplus
}
#endif
#endif
