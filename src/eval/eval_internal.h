/* Internals shared by the files of src/eval. */
#ifndef FSD_EVAL_INTERNAL_H
#define FSD_EVAL_INTERNAL_H

#include "fsdiff/eval.h"

/* Contact sheets: thumbnails fit a THUMB x THUMB box (never enlarged), the crop is CROP x CROP HR
 * pixels shown ZOOM x with nearest neighbours. */
#define FSD_EVAL_THUMB 256
#define FSD_EVAL_CROP 64
#define FSD_EVAL_ZOOM 4

/* Thumbnail size of a w x h image. */
void fsd_eval_thumb_size(int w, int h, int *tw, int *th);

/* The crop of a pair's sheet: the CROP x CROP window (smaller when the image is) inside the
 * central 80 % of the image with the largest sum of |forward differences| of the grey HR sources
 * ga + gb, on a 4-px grid, first in raster order on ties. crop[4] = x, y, size, zoom. */
void fsd_eval_pick_crop(const float *ga, const float *gb, int w, int h, int crop[4]);

/* Writes the thumbnail and the zoomed crop of one sheet column (see fsd_eval_sheet_file).
 * src is shown stretched to w x h with nearest neighbours (LR inputs) or at its size (w x h). */
fsd_status fsd_eval_sheet_column(const char *img_dir, int pair, int col, const fsd_image *src, int w, int h,
                                 const int crop[4]);

/* Writes n bytes to path (plain write: the whole output folder is renamed into place at the end). */
fsd_status fsd_eval_write_bytes(const char *path, const void *data, size_t n);

#endif
