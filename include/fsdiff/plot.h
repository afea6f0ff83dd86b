/* PNG line charts without external libraries: linear or log axes with "nice" ticks, several series
 * (colour, width, markers, dashes, transparency), horizontal/vertical reference lines, legend,
 * panels side by side, and a built-in 5x7 bitmap font that can also label any fsd_image.
 *
 * Retained API: build a figure, render it (or save it as PNG), free it.
 *
 *   fsd_plot *p;
 *   fsd_plot_create(&p, 800, 500);
 *   fsd_plot_title(p, "training loss");
 *   fsd_plot_axis_labels(p, "step", "loss");
 *   fsd_plot_log_y(p, 1);
 *   fsd_plot_series(p, "raw", steps, loss, n, &(fsd_plot_style){.color = 0, .alpha = 0.3f});
 *   fsd_plot_series(p, "EMA 0.98", steps, smooth, n, &(fsd_plot_style){.color = 0, .width = 2});
 *   fsd_plot_save_png(p, "loss-curve.png");
 *   fsd_plot_free(p);
 *
 * Data: NaN/Inf points, points <= 0 on a log axis, and points so far out that their pixel position
 * overflows are gaps (the line breaks there); an isolated point is a dot. Long runs
 * (more points than 2x the plot width) are decimated per pixel column to the column's first, min,
 * max and last point, which draws the same pixels as the full polyline (x must be non-decreasing
 * inside the run; otherwise every segment is drawn). */
#ifndef FSDIFF_PLOT_H
#define FSDIFF_PLOT_H

#include "fsdiff/image.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- text (5x7 font) */

/* Glyph cell at scale 1: 6 px wide (5 + 1 gap), 10 px tall (7 above the baseline, 2 descender,
 * 1 gap). ASCII 32..126 are drawn; other bytes draw as '?'; '\n' starts a new line. */
#define FSD_FONT_CELL_W 6
#define FSD_FONT_CELL_H 10

/* Draws `text` with its first cell's top-left corner at (x, y), each font pixel a scale x scale
 * block (scale clamped to 1..64), colour rgb (0..255; a grey image gets the luma). Clipped to the
 * image; c must be 1 or 3. */
void fsd_draw_text(fsd_image *im, int x, int y, const char *text, const unsigned char rgb[3], int scale);
/* The same, rotated 90 degrees counter-clockwise (reads bottom to top); (x, y) is the top-left of the
 * rotated box, which is fsd_text_size's h wide and w tall. */
void fsd_draw_text_vertical(fsd_image *im, int x, int y, const char *text, const unsigned char rgb[3], int scale);
/* Size in pixels of the box fsd_draw_text covers (widest line x number of lines, without the trailing
 * gap column/row). "" is 0 x 0. */
void fsd_text_size(const char *text, int scale, int *w, int *h);

/* ---------------------------------------------------------------- figure */

typedef struct fsd_plot fsd_plot;

enum {
    FSD_MARKER_NONE = 0,
    FSD_MARKER_CIRCLE,
    FSD_MARKER_SQUARE,
    FSD_MARKER_TRIANGLE,
    FSD_MARKER_DIAMOND,
    FSD_MARKER_CROSS /* 'x' */
};

/* Zero-initialised = palette colour 0, 1 px solid line, no markers, opaque. */
typedef struct fsd_plot_style {
    int color;              /* palette index (10 colours, cycled); < 0: use rgb */
    unsigned char rgb[3];
    float width;            /* line width in px; 0 -> 1; clamped to 0.5..16 */
    int marker;             /* FSD_MARKER_* */
    float marker_size;      /* marker radius in px; 0 -> 2 + width */
    int dashed;             /* dash pattern scaled with the width */
    int no_line;            /* markers only */
    float alpha;            /* opacity; 0 -> 1 (opaque) */
} fsd_plot_style;

/* The palette (tab10-like) as RGB; index taken mod 10. */
void fsd_plot_palette(int index, unsigned char rgb[3]);

/* A figure of width x height px (each 32..16384) with one panel. */
fsd_status fsd_plot_create(fsd_plot **out, int width, int height);
void fsd_plot_free(fsd_plot *p);

/* Panels: a rows x cols grid (1..16 each), all cells the same size; resets every panel. The calls
 * below act on the current panel, chosen with fsd_plot_panel (row-major index, starts at 0). */
fsd_status fsd_plot_grid(fsd_plot *p, int rows, int cols);
fsd_status fsd_plot_panel(fsd_plot *p, int index);
/* Title over the whole figure (NULL or "" = none). */
fsd_status fsd_plot_suptitle(fsd_plot *p, const char *text);

/* Current panel: title and axis labels (NULL or "" = none). */
fsd_status fsd_plot_title(fsd_plot *p, const char *text);
fsd_status fsd_plot_axis_labels(fsd_plot *p, const char *xlabel, const char *ylabel);
void fsd_plot_log_x(fsd_plot *p, int on);
void fsd_plot_log_y(fsd_plot *p, int on);
/* Fixed axis limits; NaN for a side = automatic (data range plus a 5% margin; log axes: in decades).
 * lo must be < hi, and > 0 on a log axis (checked when rendering). */
void fsd_plot_xlim(fsd_plot *p, double lo, double hi);
void fsd_plot_ylim(fsd_plot *p, double lo, double hi);
/* Light grid lines at the major ticks (default on). */
void fsd_plot_grid_lines(fsd_plot *p, int on);

enum { FSD_LEGEND_AUTO = 0, FSD_LEGEND_NONE, FSD_LEGEND_UPPER_RIGHT, FSD_LEGEND_UPPER_LEFT,
       FSD_LEGEND_LOWER_LEFT, FSD_LEGEND_LOWER_RIGHT };
/* Legend of the labelled series and lines; AUTO (default) takes the corner covering the fewest
 * drawn pixels. Not drawn when nothing is labelled. */
void fsd_plot_legend(fsd_plot *p, int where);

/* Adds a series of n points (copied). xs NULL: x_i = i. label NULL or "": not in the legend.
 * style NULL: solid 1.5 px line in the next palette colour. n may be 0. */
fsd_status fsd_plot_series(fsd_plot *p, const char *label, const double *xs, const double *ys, size_t n,
                           const fsd_plot_style *style);
/* Reference lines across the whole panel at y (hline) or x (vline); part of the axis range. */
fsd_status fsd_plot_hline(fsd_plot *p, double y, const char *label, const fsd_plot_style *style);
fsd_status fsd_plot_vline(fsd_plot *p, double x, const char *label, const fsd_plot_style *style);

/* Font scale for every text (1..8; 0 = automatic from the panel size, the default). */
void fsd_plot_font_scale(fsd_plot *p, int scale);
/* Decimation of long runs (default on). Off draws every segment: for tests and comparisons. */
void fsd_plot_decimate(fsd_plot *p, int on);

/* Renders to a new RGB image (fsd_image_free it) with values 0..255 (not rounded). Fails with
 * FSD_ERR_INVALID for bad axis limits or a panel too small for its labels. */
fsd_status fsd_plot_render(fsd_plot *p, fsd_image *out);
/* Renders and writes an 8-bit PNG atomically (fsd_image_save_png). */
fsd_status fsd_plot_save_png(fsd_plot *p, const char *path);

/* After a render: where data point (x, y) of panel `panel` lands, in continuous pixel coordinates
 * (pixel (i, j) covers [i, i+1) x [j, j+1), its centre is (i + .5, j + .5)), and the plot area of
 * the panel (x0, y0 top-left, x1, y1 bottom-right edges). Non-finite / non-positive-on-log input
 * gives NaN. FSD_ERR_INVALID before the first render or for a bad panel index. */
fsd_status fsd_plot_map(const fsd_plot *p, int panel, double x, double y, double *px, double *py);
fsd_status fsd_plot_area(const fsd_plot *p, int panel, double *x0, double *y0, double *x1, double *y1);

/* Debiased exponential moving average (as TensorBoard's smoothing): m_k = w m_{k-1} + (1 - w) y_k,
 * out_k = m_k / (1 - w^k), k counting the finite inputs so far. Non-finite inputs give NaN and do
 * not update the average. 0 <= w < 1 (clamped). out may equal y. */
void fsd_plot_smooth_ema(const double *y, size_t n, double w, double *out);

#ifdef __cplusplus
}
#endif
#endif
