/* Line charts rendered into an fsd_image: axes with nice ticks (1/2/5 x 10^k, decades on log axes),
 * anti-aliased thick lines drawn through a per-series coverage mask (so a translucent line does not
 * darken where its segments meet), markers, dashes, legend, panels, and a hand-drawn 5x7 font.
 *
 * Coordinates are continuous: pixel (i, j) covers [i, i+1) x [j, j+1) and its centre is (i+.5, j+.5).
 * A line's coverage at a pixel is clamp(w/2 + 1/2 - d, 0, 1), d = distance from the pixel centre to
 * the segment: one pixel of linear fall-off, round caps and joins. */
#include "fsdiff/plot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- font */

/* ASCII 32..126, each glyph 9 rows of 5 columns ('#' = ink), rows 0..6 above the baseline, 7..8 the
 * descender. Drawn by hand for this project. Row r, column c of glyph g is g[6 r + c]. */
static const char *const g_font[95] = {
    "..... ..... ..... ..... ..... ..... ..... ..... .....", /* space */
    "..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#.. ..... .....", /* ! */
    ".#.#. .#.#. .#.#. ..... ..... ..... ..... ..... .....", /* " */
    ".#.#. .#.#. ##### .#.#. ##### .#.#. .#.#. ..... .....", /* # */
    "..#.. .#### #.#.. .###. ..#.# ####. ..#.. ..... .....", /* $ */
    "##... ##..# ...#. ..#.. .#... #..## ...## ..... .....", /* % */
    ".##.. #..#. #.#.. .#... #.#.# #..#. .##.# ..... .....", /* & */
    "..#.. ..#.. .#... ..... ..... ..... ..... ..... .....", /* ' */
    "...#. ..#.. .#... .#... .#... ..#.. ...#. ..... .....", /* ( */
    ".#... ..#.. ...#. ...#. ...#. ..#.. .#... ..... .....", /* ) */
    "..... ..#.. #.#.# .###. #.#.# ..#.. ..... ..... .....", /* star */
    "..... ..#.. ..#.. ##### ..#.. ..#.. ..... ..... .....", /* + */
    "..... ..... ..... ..... ..... .##.. .##.. ..#.. .#...", /* , */
    "..... ..... ..... ##### ..... ..... ..... ..... .....", /* - */
    "..... ..... ..... ..... ..... .##.. .##.. ..... .....", /* . */
    "..... ....# ...#. ..#.. .#... #.... ..... ..... .....", /* slash */
    ".###. #...# #..## #.#.# ##..# #...# .###. ..... .....", /* 0 */
    "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###. ..... .....", /* 1 */
    ".###. #...# ....# ...#. ..#.. .#... ##### ..... .....", /* 2 */
    "##### ...#. ..#.. ...#. ....# #...# .###. ..... .....", /* 3 */
    "...#. ..##. .#.#. #..#. ##### ...#. ...#. ..... .....", /* 4 */
    "##### #.... ####. ....# ....# #...# .###. ..... .....", /* 5 */
    "..##. .#... #.... ####. #...# #...# .###. ..... .....", /* 6 */
    "##### ....# ...#. ..#.. .#... .#... .#... ..... .....", /* 7 */
    ".###. #...# #...# .###. #...# #...# .###. ..... .....", /* 8 */
    ".###. #...# #...# .#### ....# ...#. .##.. ..... .....", /* 9 */
    "..... .##.. .##.. ..... .##.. .##.. ..... ..... .....", /* : */
    "..... .##.. .##.. ..... .##.. .##.. ..#.. .#... .....", /* ; */
    "...#. ..#.. .#... #.... .#... ..#.. ...#. ..... .....", /* < */
    "..... ..... ##### ..... ##### ..... ..... ..... .....", /* = */
    ".#... ..#.. ...#. ....# ...#. ..#.. .#... ..... .....", /* > */
    ".###. #...# ....# ...#. ..#.. ..... ..#.. ..... .....", /* ? */
    ".###. #...# ....# .##.# #.#.# #.#.# .###. ..... .....", /* @ */
    ".###. #...# #...# ##### #...# #...# #...# ..... .....", /* A */
    "####. #...# #...# ####. #...# #...# ####. ..... .....", /* B */
    ".###. #...# #.... #.... #.... #...# .###. ..... .....", /* C */
    "###.. #..#. #...# #...# #...# #..#. ###.. ..... .....", /* D */
    "##### #.... #.... ####. #.... #.... ##### ..... .....", /* E */
    "##### #.... #.... ####. #.... #.... #.... ..... .....", /* F */
    ".###. #...# #.... #.### #...# #...# .#### ..... .....", /* G */
    "#...# #...# #...# ##### #...# #...# #...# ..... .....", /* H */
    ".###. ..#.. ..#.. ..#.. ..#.. ..#.. .###. ..... .....", /* I */
    "..### ...#. ...#. ...#. ...#. #..#. .##.. ..... .....", /* J */
    "#...# #..#. #.#.. ##... #.#.. #..#. #...# ..... .....", /* K */
    "#.... #.... #.... #.... #.... #.... ##### ..... .....", /* L */
    "#...# ##.## #.#.# #.#.# #...# #...# #...# ..... .....", /* M */
    "#...# #...# ##..# #.#.# #..## #...# #...# ..... .....", /* N */
    ".###. #...# #...# #...# #...# #...# .###. ..... .....", /* O */
    "####. #...# #...# ####. #.... #.... #.... ..... .....", /* P */
    ".###. #...# #...# #...# #.#.# #..#. .##.# ..... .....", /* Q */
    "####. #...# #...# ####. #.#.. #..#. #...# ..... .....", /* R */
    ".#### #.... #.... .###. ....# ....# ####. ..... .....", /* S */
    "##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#.. ..... .....", /* T */
    "#...# #...# #...# #...# #...# #...# .###. ..... .....", /* U */
    "#...# #...# #...# #...# #...# .#.#. ..#.. ..... .....", /* V */
    "#...# #...# #...# #.#.# #.#.# #.#.# .#.#. ..... .....", /* W */
    "#...# #...# .#.#. ..#.. .#.#. #...# #...# ..... .....", /* X */
    "#...# #...# .#.#. ..#.. ..#.. ..#.. ..#.. ..... .....", /* Y */
    "##### ....# ...#. ..#.. .#... #.... ##### ..... .....", /* Z */
    ".###. .#... .#... .#... .#... .#... .###. ..... .....", /* [ */
    "..... #.... .#... ..#.. ...#. ....# ..... ..... .....", /* backslash */
    ".###. ...#. ...#. ...#. ...#. ...#. .###. ..... .....", /* ] */
    "..#.. .#.#. #...# ..... ..... ..... ..... ..... .....", /* ^ */
    "..... ..... ..... ..... ..... ..... ..... ##### .....", /* _ */
    ".#... ..#.. ...#. ..... ..... ..... ..... ..... .....", /* ` */
    "..... ..... .###. ....# .#### #...# .#### ..... .....", /* a */
    "#.... #.... #.##. ##..# #...# #...# ####. ..... .....", /* b */
    "..... ..... .###. #.... #.... #...# .###. ..... .....", /* c */
    "....# ....# .##.# #..## #...# #...# .#### ..... .....", /* d */
    "..... ..... .###. #...# ##### #.... .###. ..... .....", /* e */
    "..##. .#..# .#... ###.. .#... .#... .#... ..... .....", /* f */
    "..... ..... .#### #...# #...# #...# .#### ....# .###.", /* g */
    "#.... #.... #.##. ##..# #...# #...# #...# ..... .....", /* h */
    "..#.. ..... .##.. ..#.. ..#.. ..#.. .###. ..... .....", /* i */
    "...#. ..... ..##. ...#. ...#. ...#. ...#. #..#. .##..", /* j */
    "#.... #.... #..#. #.#.. ##... #.#.. #..#. ..... .....", /* k */
    ".##.. ..#.. ..#.. ..#.. ..#.. ..#.. .###. ..... .....", /* l */
    "..... ..... ##.#. #.#.# #.#.# #.#.# #.#.# ..... .....", /* m */
    "..... ..... #.##. ##..# #...# #...# #...# ..... .....", /* n */
    "..... ..... .###. #...# #...# #...# .###. ..... .....", /* o */
    "..... ..... ####. #...# #...# #...# ####. #.... #....", /* p */
    "..... ..... .#### #...# #...# #...# .#### ....# ....#", /* q */
    "..... ..... #.##. ##..# #.... #.... #.... ..... .....", /* r */
    "..... ..... .###. #.... .###. ....# ####. ..... .....", /* s */
    ".#... .#... ###.. .#... .#... .#..# ..##. ..... .....", /* t */
    "..... ..... #...# #...# #...# #..## .##.# ..... .....", /* u */
    "..... ..... #...# #...# #...# .#.#. ..#.. ..... .....", /* v */
    "..... ..... #...# #...# #.#.# #.#.# .#.#. ..... .....", /* w */
    "..... ..... #...# .#.#. ..#.. .#.#. #...# ..... .....", /* x */
    "..... ..... #...# #...# #...# #...# .#### ....# .###.", /* y */
    "..... ..... ##### ...#. ..#.. .#... ##### ..... .....", /* z */
    "...#. ..#.. ..#.. .#... ..#.. ..#.. ...#. ..... .....", /* { */
    "..#.. ..#.. ..#.. ..#.. ..#.. ..#.. ..#.. ..#.. .....", /* | */
    ".#... ..#.. ..#.. ...#. ..#.. ..#.. .#... ..... .....", /* } */
    "..... ..... .#... #.#.# ...#. ..... ..... ..... .....", /* ~ */
};

static const char *glyph_of(unsigned char ch) { return g_font[(ch < 32 || ch > 126 ? '?' : ch) - 32]; }

static void put_px(fsd_image *im, int x, int y, const unsigned char rgb[3]) {
    if (x < 0 || y < 0 || x >= im->w || y >= im->h) return;
    size_t hw = (size_t)im->w * im->h, i = (size_t)y * im->w + x;
    if (im->c == 3)
        for (int ch = 0; ch < 3; ch++) im->data[ch * hw + i] = rgb[ch];
    else
        im->data[i] = (float)(0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]);
}

void fsd_text_size(const char *text, int scale, int *w, int *h) {
    if (scale < 1) scale = 1;
    if (scale > 64) scale = 64;
    int lines = 1, cur = 0, widest = 0;
    if (!text || !*text) {
        *w = *h = 0;
        return;
    }
    for (const char *s = text; *s; s++) {
        if (*s == '\n') {
            lines++;
            cur = 0;
        } else if (++cur > widest) {
            widest = cur;
        }
    }
    *w = widest ? (widest * FSD_FONT_CELL_W - 1) * scale : 0;
    *h = (lines * FSD_FONT_CELL_H - 1) * scale;
}

/* Text-space pixel (u, v) of a box tw wide -> image pixel; rotated CCW when vertical. */
static void draw_text_any(fsd_image *im, int x, int y, const char *text, const unsigned char rgb[3], int scale,
                          int vertical) {
    if (!im || !im->data || !text || (im->c != 1 && im->c != 3)) return;
    if (scale < 1) scale = 1;
    if (scale > 64) scale = 64;
    int tw, th;
    fsd_text_size(text, scale, &tw, &th);
    int col = 0, line = 0;
    for (const char *s = text; *s; s++) {
        if (*s == '\n') {
            line++;
            col = 0;
            continue;
        }
        const char *g = glyph_of((unsigned char)*s);
        int cu = col * FSD_FONT_CELL_W * scale, cv = line * FSD_FONT_CELL_H * scale;
        for (int r = 0; r < 9; r++)
            for (int c = 0; c < 5; c++) {
                if (g[6 * r + c] != '#') continue;
                for (int dv = 0; dv < scale; dv++)
                    for (int du = 0; du < scale; du++) {
                        int u = cu + c * scale + du, v = cv + r * scale + dv;
                        if (vertical)
                            put_px(im, x + v, y + tw - 1 - u, rgb);
                        else
                            put_px(im, x + u, y + v, rgb);
                    }
            }
        col++;
    }
}

void fsd_draw_text(fsd_image *im, int x, int y, const char *text, const unsigned char rgb[3], int scale) {
    draw_text_any(im, x, y, text, rgb, scale, 0);
}

void fsd_draw_text_vertical(fsd_image *im, int x, int y, const char *text, const unsigned char rgb[3], int scale) {
    draw_text_any(im, x, y, text, rgb, scale, 1);
}

/* ---------------------------------------------------------------- figure state */

/* Tableau-10 colours (the matplotlib default cycle). */
static const unsigned char g_palette[10][3] = {
    {31, 119, 180}, {255, 127, 14}, {44, 160, 44},   {214, 39, 40},  {148, 103, 189},
    {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207}};

void fsd_plot_palette(int index, unsigned char rgb[3]) {
    int i = ((index % 10) + 10) % 10;
    memcpy(rgb, g_palette[i], 3);
}

enum { K_SERIES = 0, K_HLINE, K_VLINE };

typedef struct series {
    int kind;
    char *label;
    double *x, *y; /* x NULL: index */
    size_t n;
    double v; /* hline / vline position */
    fsd_plot_style st;
    unsigned char rgb[3];
} series;

typedef struct axis {
    int log;
    double lim_lo, lim_hi; /* NaN = automatic */
    /* after render: transformed range [t0, t1] drawn between pixels p0 -> p1 */
    double t0, t1, p0, p1;
} axis;

typedef struct panel {
    char *title, *xlabel, *ylabel;
    axis ax, ay;
    int grid, legend;
    series *s;
    int ns, cap;
    int rendered;
    double x0, y0, x1, y1; /* plot area after render */
} panel;

struct fsd_plot {
    int w, h, rows, cols, cur;
    int font_scale, decimate;
    char *suptitle;
    panel *panels;
};

static char *dup_text(const char *s) {
    if (!s || !*s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = fsd_alloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* Replaces *dst with a copy of s; FSD_ERR_NOMEM leaves *dst as it was. */
static fsd_status set_text(char **dst, const char *s) {
    char *d = dup_text(s);
    if (s && *s && !d) return FSD_ERR_NOMEM;
    fsd_free(*dst);
    *dst = d;
    return FSD_OK;
}

static void panel_init(panel *pn) {
    memset(pn, 0, sizeof *pn);
    pn->ax.lim_lo = pn->ax.lim_hi = NAN;
    pn->ay.lim_lo = pn->ay.lim_hi = NAN;
    pn->grid = 1;
    pn->legend = FSD_LEGEND_AUTO;
}

static void panel_clear(panel *pn) {
    fsd_free(pn->title);
    fsd_free(pn->xlabel);
    fsd_free(pn->ylabel);
    for (int i = 0; i < pn->ns; i++) {
        fsd_free(pn->s[i].label);
        fsd_free(pn->s[i].x);
        fsd_free(pn->s[i].y);
    }
    fsd_free(pn->s);
    panel_init(pn);
}

fsd_status fsd_plot_create(fsd_plot **out, int width, int height) {
    *out = NULL;
    if (width < 32 || height < 32 || width > 16384 || height > 16384)
        return fsd_fail(FSD_ERR_INVALID, "plot: size %dx%d outside 32..16384", width, height);
    fsd_plot *p = fsd_calloc(1, sizeof *p);
    if (!p) return FSD_ERR_NOMEM;
    p->panels = fsd_calloc(1, sizeof(panel));
    if (!p->panels) {
        fsd_free(p);
        return FSD_ERR_NOMEM;
    }
    panel_init(&p->panels[0]);
    p->w = width;
    p->h = height;
    p->rows = p->cols = 1;
    p->decimate = 1;
    *out = p;
    return FSD_OK;
}

void fsd_plot_free(fsd_plot *p) {
    if (!p) return;
    for (int i = 0; i < p->rows * p->cols; i++) panel_clear(&p->panels[i]);
    fsd_free(p->panels);
    fsd_free(p->suptitle);
    fsd_free(p);
}

fsd_status fsd_plot_grid(fsd_plot *p, int rows, int cols) {
    if (rows < 1 || cols < 1 || rows > 16 || cols > 16)
        return fsd_fail(FSD_ERR_INVALID, "plot: grid %dx%d outside 1..16", rows, cols);
    panel *np = fsd_calloc((size_t)rows * cols, sizeof(panel));
    if (!np) return FSD_ERR_NOMEM;
    for (int i = 0; i < p->rows * p->cols; i++) panel_clear(&p->panels[i]);
    fsd_free(p->panels);
    for (int i = 0; i < rows * cols; i++) panel_init(&np[i]);
    p->panels = np;
    p->rows = rows;
    p->cols = cols;
    p->cur = 0;
    return FSD_OK;
}

fsd_status fsd_plot_panel(fsd_plot *p, int index) {
    if (index < 0 || index >= p->rows * p->cols)
        return fsd_fail(FSD_ERR_INVALID, "plot: panel %d of %d", index, p->rows * p->cols);
    p->cur = index;
    return FSD_OK;
}

static panel *cur(fsd_plot *p) { return &p->panels[p->cur]; }

fsd_status fsd_plot_suptitle(fsd_plot *p, const char *text) { return set_text(&p->suptitle, text); }
fsd_status fsd_plot_title(fsd_plot *p, const char *text) { return set_text(&cur(p)->title, text); }
fsd_status fsd_plot_axis_labels(fsd_plot *p, const char *xlabel, const char *ylabel) {
    fsd_status s = set_text(&cur(p)->xlabel, xlabel);
    return s ? s : set_text(&cur(p)->ylabel, ylabel);
}
void fsd_plot_log_x(fsd_plot *p, int on) { cur(p)->ax.log = !!on; }
void fsd_plot_log_y(fsd_plot *p, int on) { cur(p)->ay.log = !!on; }
void fsd_plot_xlim(fsd_plot *p, double lo, double hi) {
    cur(p)->ax.lim_lo = lo;
    cur(p)->ax.lim_hi = hi;
}
void fsd_plot_ylim(fsd_plot *p, double lo, double hi) {
    cur(p)->ay.lim_lo = lo;
    cur(p)->ay.lim_hi = hi;
}
void fsd_plot_grid_lines(fsd_plot *p, int on) { cur(p)->grid = !!on; }
void fsd_plot_legend(fsd_plot *p, int where) {
    cur(p)->legend = (where >= FSD_LEGEND_AUTO && where <= FSD_LEGEND_LOWER_RIGHT) ? where : FSD_LEGEND_AUTO;
}
void fsd_plot_font_scale(fsd_plot *p, int scale) { p->font_scale = scale < 0 ? 0 : scale > 8 ? 8 : scale; }
void fsd_plot_decimate(fsd_plot *p, int on) { p->decimate = !!on; }

/* A new entry at the end of the current panel (zeroed except kind/label/style). */
static fsd_status add_entry(fsd_plot *p, int kind, const char *label, const fsd_plot_style *style, series **out) {
    panel *pn = cur(p);
    if (pn->ns == pn->cap) {
        int cap = pn->cap ? 2 * pn->cap : 8;
        series *ns = fsd_calloc((size_t)cap, sizeof(series));
        if (!ns) return FSD_ERR_NOMEM;
        if (pn->ns) memcpy(ns, pn->s, (size_t)pn->ns * sizeof(series));
        fsd_free(pn->s);
        pn->s = ns;
        pn->cap = cap;
    }
    series *e = &pn->s[pn->ns];
    memset(e, 0, sizeof *e);
    e->kind = kind;
    if (style) {
        e->st = *style;
    } else {
        e->st.color = pn->ns;
        e->st.width = 1.5f;
    }
    fsd_plot_style *st = &e->st;
    if (!(st->width > 0)) st->width = 1.0f;
    st->width = fminf(fmaxf(st->width, 0.5f), 16.0f);
    if (!(st->marker_size > 0)) st->marker_size = 2.0f + st->width;
    st->marker_size = fminf(st->marker_size, 32.0f);
    if (!(st->alpha > 0) || st->alpha > 1) st->alpha = 1.0f;
    if (st->marker < FSD_MARKER_NONE || st->marker > FSD_MARKER_CROSS) st->marker = FSD_MARKER_CIRCLE;
    if (st->color >= 0)
        fsd_plot_palette(st->color, e->rgb);
    else
        memcpy(e->rgb, st->rgb, 3);
    if (label && *label && !(e->label = dup_text(label))) return FSD_ERR_NOMEM;
    *out = e;
    return FSD_OK;
}

fsd_status fsd_plot_series(fsd_plot *p, const char *label, const double *xs, const double *ys, size_t n,
                           const fsd_plot_style *style) {
    if (n && !ys) return fsd_fail(FSD_ERR_INVALID, "plot: series '%s' has %zu points but no y values",
                                  label ? label : "", n);
    series *e;
    fsd_status s = add_entry(p, K_SERIES, label, style, &e);
    if (s) return s;
    if (n) {
        e->y = fsd_alloc(n * sizeof(double));
        e->x = xs ? fsd_alloc(n * sizeof(double)) : NULL;
        if (!e->y || (xs && !e->x)) {
            fsd_free(e->x);
            fsd_free(e->y);
            fsd_free(e->label);
            return FSD_ERR_NOMEM;
        }
        memcpy(e->y, ys, n * sizeof(double));
        if (xs) memcpy(e->x, xs, n * sizeof(double));
    }
    e->n = n;
    cur(p)->ns++;
    return FSD_OK;
}

static fsd_status add_refline(fsd_plot *p, int kind, double v, const char *label, const fsd_plot_style *style) {
    series *e;
    fsd_status s = add_entry(p, kind, label, style, &e);
    if (s) return s;
    e->v = v;
    cur(p)->ns++;
    return FSD_OK;
}

fsd_status fsd_plot_hline(fsd_plot *p, double y, const char *label, const fsd_plot_style *style) {
    return add_refline(p, K_HLINE, y, label, style);
}
fsd_status fsd_plot_vline(fsd_plot *p, double x, const char *label, const fsd_plot_style *style) {
    return add_refline(p, K_VLINE, x, label, style);
}

void fsd_plot_smooth_ema(const double *y, size_t n, double w, double *out) {
    if (!(w >= 0)) w = 0;
    if (w > 0.999999) w = 0.999999;
    double m = 0, wk = 1; /* wk = w^k */
    for (size_t i = 0; i < n; i++) {
        double v = y[i];
        if (!isfinite(v)) {
            out[i] = NAN;
            continue;
        }
        m = w * m + (1 - w) * v;
        wk *= w;
        out[i] = m / (1 - wk);
    }
}

/* ---------------------------------------------------------------- axes and ticks */

/* Transformed coordinate: log10 on a log axis (NaN for v <= 0), NaN for non-finite input. */
static double ax_t(const axis *a, double v) {
    if (!isfinite(v)) return NAN;
    if (a->log) return v > 0 ? log10(v) : NAN;
    return v;
}

static double ax_px(const axis *a, double v) {
    double t = ax_t(a, v);
    return a->p0 + (t - a->t0) / (a->t1 - a->t0) * (a->p1 - a->p0);
}

static double pt_x(const series *e, size_t i) { return e->x ? e->x[i] : (double)i; }

/* Data range of a panel along x (which = 0) or y (1) in transformed units: only points drawn (both
 * coordinates valid) and reference lines along that axis count. Returns 0 when nothing counts. */
static int data_range(const panel *pn, int which, double *lo, double *hi) {
    const axis *a = which ? &pn->ay : &pn->ax;
    double mn = INFINITY, mx = -INFINITY;
    for (int k = 0; k < pn->ns; k++) {
        const series *e = &pn->s[k];
        if (e->kind != K_SERIES) {
            if ((e->kind == K_HLINE) != (which == 1)) continue;
            double t = ax_t(a, e->v);
            if (isfinite(t)) {
                mn = fmin(mn, t);
                mx = fmax(mx, t);
            }
            continue;
        }
        for (size_t i = 0; i < e->n; i++) {
            double tx = ax_t(&pn->ax, pt_x(e, i)), ty = ax_t(&pn->ay, e->y[i]);
            if (!isfinite(tx) || !isfinite(ty)) continue;
            double t = which ? ty : tx;
            if (t < mn) mn = t;
            if (t > mx) mx = t;
        }
    }
    if (!(mn <= mx)) return 0;
    *lo = mn;
    *hi = mx;
    return 1;
}

/* Final transformed range [t0, t1] of an axis: automatic sides get the data range plus 5% (a flat
 * range is padded: 10% of the value, or +-1 at zero, or half a decade on a log axis). */
static fsd_status axis_range(panel *pn, int which, const char *name) {
    axis *a = which ? &pn->ay : &pn->ax;
    int fix_lo = !isnan(a->lim_lo), fix_hi = !isnan(a->lim_hi);
    double flo = ax_t(a, a->lim_lo), fhi = ax_t(a, a->lim_hi);
    if ((fix_lo && !isfinite(flo)) || (fix_hi && !isfinite(fhi)))
        return fsd_fail(FSD_ERR_INVALID, "plot: %s limit must be finite%s", name, a->log ? " and > 0 (log axis)" : "");
    double lo, hi;
    if (!data_range(pn, which, &lo, &hi)) {
        lo = 0;
        hi = 1; /* linear 0..1, log 1..10 */
    }
    double span = hi - lo;
    if (!(span > 1e-9 * fmax(fabs(lo), fabs(hi)))) {
        double c = 0.5 * (lo + hi), d = a->log ? 0.5 : (c != 0 ? 0.1 * fabs(c) : 1.0);
        lo = c - d;
        hi = c + d;
    } else {
        lo -= 0.05 * span;
        hi += 0.05 * span;
    }
    if (fix_lo) lo = flo;
    if (fix_hi) hi = fhi;
    if (fix_lo && !fix_hi && !(hi > lo)) hi = lo + (a->log ? 1 : fmax(fabs(lo), 1.0));
    if (fix_hi && !fix_lo && !(hi > lo)) lo = hi - (a->log ? 1 : fmax(fabs(hi), 1.0));
    if (!(hi > lo)) return fsd_fail(FSD_ERR_INVALID, "plot: %s limits need lo < hi", name);
    if (!isfinite(hi - lo)) return fsd_fail(FSD_ERR_INVALID, "plot: %s range too wide to draw", name);
    a->t0 = lo;
    a->t1 = hi;
    return FSD_OK;
}

#define MAX_TICKS 160
typedef struct tick {
    double v;   /* data value */
    int major;  /* labelled, grid line */
    char label[48];
} tick;

/* Smallest of 1, 2, 5, 10 x 10^k that is >= raw. */
static double nice_step(double raw) {
    double mag = pow(10, floor(log10(raw)));
    double f = raw / mag;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

/* Label of a linear tick: decimals from the step; large round values as 250k / 3M; extreme
 * magnitudes in e-notation with just enough digits to tell neighbours apart. */
static void fmt_linear(double v, double step, double vmax, char *buf, size_t n) {
    if (fabs(v) < 1e-9 * step) v = 0;
    if (v == 0) {
        snprintf(buf, n, "0");
        return;
    }
    if (step >= 1e9 || step < 1e-6 || vmax >= 1e12) {
        int sig = (int)floor(log10(fabs(v))) - (int)floor(log10(step) + 1e-9) + 1;
        if (sig < 1) sig = 1;
        if (sig > 15) sig = 15;
        char tmp[40];
        snprintf(tmp, sizeof tmp, "%.*e", sig - 1, v);
        /* 1.5e+10 -> 1.5e10, 2e-07 -> 2e-7 */
        char *e = strchr(tmp, 'e');
        if (e) {
            char *d = e + 1, *s = e + 1;
            if (*s == '+') s++;
            else if (*s == '-') *d++ = *s++;
            while (*s == '0' && s[1]) s++;
            memmove(d, s, strlen(s) + 1);
        }
        snprintf(buf, n, "%s", tmp);
        return;
    }
    if (step >= 1000 && vmax >= 1e4) {
        double div = step >= 1e6 ? 1e6 : 1e3;
        int dec = (int)fmax(0, -floor(log10(step / div) + 1e-9));
        snprintf(buf, n, "%.*f%s", dec, v / div, div == 1e6 ? "M" : "k");
        return;
    }
    int dec = (int)fmax(0, -floor(log10(step) + 1e-9));
    snprintf(buf, n, "%.*f", dec, v);
}

/* m x 10^k, plain for 1e-4 .. 1e5, else "me k". */
static void fmt_log(int m, int k, char *buf, size_t n) {
    if (k >= -4 && k <= 5)
        snprintf(buf, n, "%.*f", k < 0 ? -k : 0, m * pow(10, k));
    else
        snprintf(buf, n, "%de%d", m, k);
}

/* Linear ticks over data values [lo, hi] with about len/spacing intervals. */
static int ticks_linear(double lo, double hi, double len, double spacing, tick *t) {
    double target = fmax(2, len / spacing);
    double step = nice_step((hi - lo) / target);
    double k0 = ceil(lo / step - 1e-9), k1 = floor(hi / step + 1e-9);
    int n = 0;
    double vmax = fmax(fabs(lo), fabs(hi));
    for (double k = k0; k <= k1 && n < MAX_TICKS; k++) {
        t[n].v = k * step;
        t[n].major = 1;
        fmt_linear(t[n].v, step, vmax, t[n].label, sizeof t[n].label);
        n++;
    }
    return n;
}

/* Ticks of an axis (range [t0, t1] already set) spread over len pixels. */
static int axis_ticks(const axis *a, double len, double spacing, tick *t) {
    if (!a->log) return ticks_linear(a->t0, a->t1, len, spacing, t);
    double target = fmax(2, len / spacing);
    int kmin = (int)ceil(a->t0 - 1e-9), kmax = (int)floor(a->t1 + 1e-9);
    int nd = kmax - kmin + 1, n = 0;
    if (nd >= 3) { /* decades, every stride-th labelled; minor ticks 2..9 when every decade is */
        int stride = (int)ceil(nd / target);
        if (stride < 1) stride = 1;
        for (int k = kmin - 1; k <= kmax && n < MAX_TICKS; k++) {
            if (k >= kmin && ((k % stride) + stride) % stride == 0) {
                t[n].v = pow(10, k);
                t[n].major = 1;
                fmt_log(1, k, t[n].label, sizeof t[n].label);
                n++;
            }
            if (stride == 1)
                for (int m = 2; m <= 9 && n < MAX_TICKS; m++) {
                    double lv = k + log10(m);
                    if (lv < a->t0 || lv > a->t1) continue;
                    t[n].v = m * pow(10, k);
                    t[n].major = 0;
                    t[n].label[0] = 0;
                    n++;
                }
        }
        return n;
    }
    /* Less than ~3 decades: 1-2-5 x 10^k, else 1..9 x 10^k, else linear steps placed on the log scale. */
    static const int set125[] = {1, 2, 5}, set19[] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    for (int pass = 0; pass < 2; pass++) {
        const int *ms = pass ? set19 : set125;
        int nm = pass ? 9 : 3;
        n = 0;
        for (int k = kmin - 1; k <= kmax && n < MAX_TICKS; k++)
            for (int j = 0; j < nm && n < MAX_TICKS; j++) {
                double lv = k + log10(ms[j]);
                if (lv < a->t0 - 1e-9 || lv > a->t1 + 1e-9) continue;
                t[n].v = ms[j] * pow(10, k);
                t[n].major = 1;
                fmt_log(ms[j], k, t[n].label, sizeof t[n].label);
                n++;
            }
        if (n >= (pass ? 2 : 3)) return n;
    }
    return ticks_linear(pow(10, a->t0), pow(10, a->t1), len, spacing, t);
}

/* ---------------------------------------------------------------- coverage mask */

/* Coverage of one series over the plot area [x0, x0+w) x [y0, y0+h) in image pixels, combined with
 * max() so overlapping segments do not add up; bbox tracks what was touched. */
typedef struct mask {
    float *m;
    int x0, y0, w, h;
    int bx0, by0, bx1, by1; /* touched pixels, inclusive; empty when bx0 > bx1 */
} mask;

static inline void mask_put(mask *k, int ix, int iy, float c) {
    int u = ix - k->x0, v = iy - k->y0;
    if (u < 0 || v < 0 || u >= k->w || v >= k->h || !(c > 0)) return;
    float *q = &k->m[(size_t)v * k->w + u];
    if (c > 1) c = 1;
    if (c > *q) *q = c;
    if (ix < k->bx0) k->bx0 = ix;
    if (ix > k->bx1) k->bx1 = ix;
    if (iy < k->by0) k->by0 = iy;
    if (iy > k->by1) k->by1 = iy;
}

static void mask_reset(mask *k) {
    if (k->bx0 <= k->bx1)
        for (int iy = k->by0; iy <= k->by1; iy++)
            memset(&k->m[(size_t)(iy - k->y0) * k->w + (k->bx0 - k->x0)], 0, (size_t)(k->bx1 - k->bx0 + 1) * sizeof(float));
    k->bx0 = k->by0 = 1 << 30;
    k->bx1 = k->by1 = -(1 << 30);
}

/* Blends colour rgb into the image with opacity coverage * alpha, then clears the mask. */
static void mask_composite(mask *k, fsd_image *im, const unsigned char rgb[3], float alpha) {
    size_t hw = (size_t)im->w * im->h;
    for (int iy = k->by0; iy <= k->by1; iy++)
        for (int ix = k->bx0; ix <= k->bx1; ix++) {
            float c = k->m[(size_t)(iy - k->y0) * k->w + (ix - k->x0)];
            if (c <= 0) continue;
            float a = c * alpha;
            size_t i = (size_t)iy * im->w + ix;
            for (int ch = 0; ch < 3; ch++) im->data[ch * hw + i] += a * ((float)rgb[ch] - im->data[ch * hw + i]);
        }
    mask_reset(k);
}

typedef struct dash {
    double on, off; /* on <= 0: solid */
} dash;

/* Moves endpoint A along AB onto the rectangle, computing each intersection from B (Cohen-Sutherland
 * one end at a time). Interpolating from the other end keeps the precision when A is astronomically
 * far away and B near: the cut point is B + (X - B.x) * slope, no large terms cancelling. 0 when the
 * segment misses the rectangle. */
static int clip_end(double *ax, double *ay, double bx, double by, const double r[4]) {
    for (int it = 0; it < 4; it++) {
        int ca = (*ax < r[0]) | (*ax > r[2]) << 1 | (*ay < r[1]) << 2 | (*ay > r[3]) << 3;
        int cb = (bx < r[0]) | (bx > r[2]) << 1 | (by < r[1]) << 2 | (by > r[3]) << 3;
        if (!ca) return 1;
        if (ca & cb) return 0;
        if (ca & 3) {
            double X = (ca & 1) ? r[0] : r[2];
            *ay = by + (X - bx) * ((*ay - by) / (*ax - bx));
            *ax = X;
        } else {
            double Y = (ca & 4) ? r[1] : r[3];
            *ax = bx + (Y - by) * ((*ax - bx) / (*ay - by));
            *ay = Y;
        }
    }
    return 0;
}

/* Thick anti-aliased segment (round caps) into the mask; s0 = arc length already drawn (dash phase). */
static void mask_segment(mask *k, double ax, double ay, double bx, double by, double width, const dash *ds, double s0) {
    double r = 0.5 * width, m = r + 2;
    if (!isfinite(ax) || !isfinite(ay) || !isfinite(bx) || !isfinite(by)) return;
    const double rect[4] = {k->x0 - m, k->y0 - m, k->x0 + k->w + m, k->y0 + k->h + m};
    double cax = ax, cay = ay, cbx = bx, cby = by;
    if (!clip_end(&cax, &cay, bx, by, rect) || !clip_end(&cbx, &cby, cax, cay, rect)) return;
    double cdx = cbx - cax, cdy = cby - cay;
    double L2 = cdx * cdx + cdy * cdy;
    s0 += hypot(cax - ax, cay - ay); /* dash phase at the clipped start */
    if (!isfinite(s0)) s0 = 0;
    double period = ds ? ds->on + ds->off : 0;
    int xmajor = fabs(cdx) >= fabs(cdy);
    /* Walk the major axis; across it, cover the line's thickness along the minor axis. */
    double amin = xmajor ? fmin(cax, cax + cdx) : fmin(cay, cay + cdy);
    double amax = xmajor ? fmax(cax, cax + cdx) : fmax(cay, cay + cdy);
    double slope = L2 > 0 ? (xmajor ? cdy / (cdx != 0 ? cdx : 1) : cdx / (cdy != 0 ? cdy : 1)) : 0;
    double ext = r * sqrt(1 + slope * slope) + 1.5;
    for (int ia = (int)floor(amin - r - 1); ia <= (int)floor(amax + r + 1); ia++) {
        double ca = ia + 0.5;
        double tt = 0;
        if (L2 > 0) tt = xmajor ? (cdx != 0 ? (ca - cax) / cdx : 0) : (cdy != 0 ? (ca - cay) / cdy : 0);
        tt = fmin(fmax(tt, 0), 1);
        double cb = xmajor ? cay + tt * cdy : cax + tt * cdx;
        for (int ib = (int)floor(cb - ext); ib <= (int)floor(cb + ext); ib++) {
            int ix = xmajor ? ia : ib, iy = xmajor ? ib : ia;
            double px = ix + 0.5, py = iy + 0.5;
            double u = L2 > 0 ? ((px - cax) * cdx + (py - cay) * cdy) / L2 : 0;
            u = fmin(fmax(u, 0), 1);
            double ex = px - (cax + u * cdx), ey = py - (cay + u * cdy);
            double c = r + 0.5 - sqrt(ex * ex + ey * ey);
            if (c <= 0) continue;
            if (period > 0 && fmod(s0 + u * sqrt(L2), period) >= ds->on) continue;
            mask_put(k, ix, iy, (float)c);
        }
    }
}

/* Filled marker centred at (cx, cy), radius rad, as coverage of a convex polygon (or a disc / an x). */
static void mask_marker(mask *k, int kind, double cx, double cy, double rad) {
    double reach = 1.3 * rad + 3; /* nothing to draw (and no int overflow) for centres far outside */
    if (!(cx >= k->x0 - reach && cx <= k->x0 + k->w + reach && cy >= k->y0 - reach && cy <= k->y0 + k->h + reach))
        return;
    if (kind == FSD_MARKER_CROSS) {
        double h = rad * 0.8, w = fmax(1.5, rad * 0.45);
        mask_segment(k, cx - h, cy - h, cx + h, cy + h, w, NULL, 0);
        mask_segment(k, cx - h, cy + h, cx + h, cy - h, w, NULL, 0);
        return;
    }
    double vx[4], vy[4];
    int nv = 0;
    if (kind == FSD_MARKER_SQUARE) {
        double h = rad * 0.85;
        double sx[4] = {-h, h, h, -h}, sy[4] = {-h, -h, h, h};
        memcpy(vx, sx, sizeof vx);
        memcpy(vy, sy, sizeof vy);
        nv = 4;
    } else if (kind == FSD_MARKER_DIAMOND) {
        double h = rad * 1.2;
        double sx[4] = {0, h, 0, -h}, sy[4] = {-h, 0, h, 0};
        memcpy(vx, sx, sizeof vx);
        memcpy(vy, sy, sizeof vy);
        nv = 4;
    } else if (kind == FSD_MARKER_TRIANGLE) { /* pointing up (image y grows downwards) */
        double sx[3] = {0, rad * 1.1, -rad * 1.1}, sy[3] = {-rad * 1.2, rad * 0.8, rad * 0.8};
        memcpy(vx, sx, sizeof sx);
        memcpy(vy, sy, sizeof sy);
        nv = 3;
    }
    int ext = (int)ceil(rad * 1.3 + 1.5);
    for (int iy = (int)floor(cy) - ext; iy <= (int)floor(cy) + ext; iy++)
        for (int ix = (int)floor(cx) - ext; ix <= (int)floor(cx) + ext; ix++) {
            double px = ix + 0.5 - cx, py = iy + 0.5 - cy, d;
            if (nv == 0) {
                d = rad - sqrt(px * px + py * py); /* circle */
            } else {
                /* signed distance inside a convex polygon with clockwise (screen) vertices */
                d = INFINITY;
                for (int i = 0; i < nv; i++) {
                    int j = (i + 1) % nv;
                    double ex = vx[j] - vx[i], ey = vy[j] - vy[i], el = hypot(ex, ey);
                    double s = (ex * (py - vy[i]) - ey * (px - vx[i])) / el;
                    if (s < d) d = s;
                }
            }
            mask_put(k, ix, iy, (float)(d + 0.5));
        }
}

/* A polyline pen: lineto() draws from the previous point, keeping the dash phase. */
typedef struct pen {
    mask *k;
    double width;
    const dash *ds;
    double px, py, s;
    int has;
} pen;

static void pen_to(pen *p, double x, double y) {
    if (p->has) {
        mask_segment(p->k, p->px, p->py, x, y, p->width, p->ds, p->s);
        p->s += hypot(x - p->px, y - p->py);
    }
    p->px = x;
    p->py = y;
    p->has = 1;
}

/* ---------------------------------------------------------------- series */

/* Draws one run [a, b) of valid points. Long runs with non-decreasing x are reduced per pixel column
 * to the column's first, min-y, max-y and last points in index order: inside a column the polyline
 * spans exactly [min, max] vertically and enters/leaves at first/last, so the pixels are the same
 * (to within the column) at O(columns) segments. */
static void draw_run(const panel *pn, const series *e, size_t a, size_t b, mask *k, pen *pp, int decimate) {
    const axis *X = &pn->ax, *Y = &pn->ay;
    size_t n = b - a;
    if (n == 1) { /* an isolated point: a dot as wide as the line */
        double x = ax_px(X, pt_x(e, a)), y = ax_px(Y, e->y[a]);
        mask_segment(k, x, y, x, y, fmax(pp->width, 2.0), NULL, 0);
        return;
    }
    int mono = 1;
    if (decimate && n > 2 * (size_t)k->w) {
        double prev = -INFINITY;
        for (size_t i = a; i < b && mono; i++) {
            double x = ax_t(X, pt_x(e, i));
            if (x < prev) mono = 0;
            prev = x;
        }
    }
    pp->has = 0;
    pp->s = 0;
    if (!decimate || n <= 2 * (size_t)k->w || !mono) {
        for (size_t i = a; i < b; i++) pen_to(pp, ax_px(X, pt_x(e, i)), ax_px(Y, e->y[i]));
        return;
    }
    /* Columns beyond the visible area (plus the line's reach) are pooled into one column per side:
     * their points only make segments that stay outside. */
    long lo_col = (long)floor(k->x0 - pp->width - 4), hi_col = (long)floor(k->x0 + k->w + pp->width + 4);
    long col = 0;
    size_t first = 0, last = 0, imin = 0, imax = 0;
    double ymin = 0, ymax = 0;
    int open = 0;
    for (size_t i = a; i <= b; i++) {
        double x = 0, y = 0;
        long c = 0;
        if (i < b) {
            x = ax_px(X, pt_x(e, i));
            y = ax_px(Y, e->y[i]);
            c = x < lo_col ? lo_col : x > hi_col ? hi_col : (long)floor(x);
        }
        if (open && (i == b || c != col)) { /* flush the column */
            /* min and max go to the column centre: many points zigzagging across a column cover all
             * of it, so the full polyline paints [min, max] at full strength there. */
            size_t idx[4] = {first, imin < imax ? imin : imax, imin < imax ? imax : imin, last};
            int pooled = col == lo_col || col == hi_col;
            size_t prev = (size_t)-1;
            for (int j = 0; j < 4; j++) {
                if (idx[j] == prev) continue;
                prev = idx[j];
                double x = ax_px(X, pt_x(e, idx[j]));
                if ((j == 1 || j == 2) && !pooled && idx[j] != first && idx[j] != last) x = col + 0.5;
                pen_to(pp, x, ax_px(Y, e->y[idx[j]]));
            }
            open = 0;
        }
        if (i == b) break;
        if (!open) {
            open = 1;
            col = c;
            first = imin = imax = i;
            ymin = ymax = y;
        }
        if (y < ymin) {
            ymin = y;
            imin = i;
        }
        if (y > ymax) {
            ymax = y;
            imax = i;
        }
        last = i;
    }
}

/* Drawable: finite on both axes (positive on log ones) and a pixel position that did not overflow. */
static int pt_valid(const panel *pn, const series *e, size_t i) {
    return isfinite(ax_px(&pn->ax, pt_x(e, i))) && isfinite(ax_px(&pn->ay, e->y[i]));
}

static dash dash_for(const fsd_plot_style *st) {
    dash d = {0, 0};
    if (st->dashed) {
        d.on = 4 + 3 * st->width;
        d.off = 2 + 2 * st->width;
    }
    return d;
}

static void draw_entry(const panel *pn, const series *e, mask *k, fsd_image *im, int decimate) {
    const fsd_plot_style *st = &e->st;
    dash ds = dash_for(st);
    pen pp = {k, st->width, &ds, 0, 0, 0, 0};
    if (e->kind == K_HLINE || e->kind == K_VLINE) {
        double v = ax_px(e->kind == K_HLINE ? &pn->ay : &pn->ax, e->v);
        if (!isfinite(v)) return;
        if (e->kind == K_HLINE)
            mask_segment(k, k->x0, v, k->x0 + k->w, v, st->width, &ds, 0);
        else
            mask_segment(k, v, k->y0 + k->h, v, k->y0, st->width, &ds, 0);
    } else {
        if (!st->no_line) {
            size_t i = 0;
            while (i < e->n) {
                while (i < e->n && !pt_valid(pn, e, i)) i++;
                size_t a = i;
                while (i < e->n && pt_valid(pn, e, i)) i++;
                if (i > a) draw_run(pn, e, a, i, k, &pp, decimate);
            }
        }
        if (st->marker != FSD_MARKER_NONE)
            for (size_t i = 0; i < e->n; i++)
                if (pt_valid(pn, e, i))
                    mask_marker(k, st->marker, ax_px(&pn->ax, pt_x(e, i)), ax_px(&pn->ay, e->y[i]), st->marker_size);
    }
    mask_composite(k, im, e->rgb, st->alpha);
}

/* ---------------------------------------------------------------- rendering */

static const unsigned char C_INK[3] = {34, 34, 34}, C_AXIS[3] = {51, 51, 51}, C_GRID[3] = {229, 229, 229},
                           C_FRAME_LEGEND[3] = {200, 200, 200};

static void fill_rect(fsd_image *im, int x0, int y0, int x1, int y1, const unsigned char rgb[3], float alpha) {
    size_t hw = (size_t)im->w * im->h;
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > im->w) x1 = im->w;
    if (y1 > im->h) y1 = im->h;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) {
            size_t i = (size_t)y * im->w + x;
            for (int ch = 0; ch < 3; ch++) im->data[ch * hw + i] += alpha * ((float)rgb[ch] - im->data[ch * hw + i]);
        }
}

/* Pixels of the image in [x0, x1) x [y0, y1) darker than light grey (drawn data, not grid lines). */
static long count_ink(const fsd_image *im, int x0, int y0, int x1, int y1) {
    size_t hw = (size_t)im->w * im->h;
    long n = 0;
    for (int y = y0 < 0 ? 0 : y0; y < y1 && y < im->h; y++)
        for (int x = x0 < 0 ? 0 : x0; x < x1 && x < im->w; x++) {
            size_t i = (size_t)y * im->w + x;
            if (fminf(fminf(im->data[i], im->data[hw + i]), im->data[2 * hw + i]) < 200) n++;
        }
    return n;
}

static void draw_legend(const panel *pn, mask *k, fsd_image *im, int fs) {
    int n = 0, lw = 0;
    for (int i = 0; i < pn->ns; i++)
        if (pn->s[i].label) {
            int w, h;
            fsd_text_size(pn->s[i].label, fs, &w, &h);
            if (w > lw) lw = w;
            n++;
        }
    if (!n || pn->legend == FSD_LEGEND_NONE) return;
    int pad = 5 * fs, sample = 22 * fs, row = FSD_FONT_CELL_H * fs + 4 * fs;
    int bw = pad + sample + 2 * pad + lw + pad, bh = 2 * pad + n * row - 4 * fs;
    int ax0 = (int)pn->x0, ay0 = (int)pn->y0, ax1 = (int)pn->x1, ay1 = (int)pn->y1, inset = 6 * fs;
    if (bw + 2 * inset > ax1 - ax0 || bh + 2 * inset > ay1 - ay0) return; /* does not fit: no legend */
    int cand[4][2] = {{ax1 - inset - bw, ay0 + inset},  /* upper right */
                      {ax0 + inset, ay0 + inset},       /* upper left */
                      {ax0 + inset, ay1 - inset - bh},  /* lower left */
                      {ax1 - inset - bw, ay1 - inset - bh}}; /* lower right */
    int pick = 0;
    if (pn->legend == FSD_LEGEND_AUTO) {
        long best = -1;
        for (int c = 0; c < 4; c++) {
            long ink = count_ink(im, cand[c][0], cand[c][1], cand[c][0] + bw, cand[c][1] + bh);
            if (best < 0 || ink < best) {
                best = ink;
                pick = c;
            }
        }
    } else {
        pick = pn->legend - FSD_LEGEND_UPPER_RIGHT;
    }
    int bx = cand[pick][0], by = cand[pick][1];
    fill_rect(im, bx, by, bx + bw, by + bh, (const unsigned char[3]){255, 255, 255}, 0.9f);
    fill_rect(im, bx, by, bx + bw, by + 1, C_FRAME_LEGEND, 1);
    fill_rect(im, bx, by + bh - 1, bx + bw, by + bh, C_FRAME_LEGEND, 1);
    fill_rect(im, bx, by, bx + 1, by + bh, C_FRAME_LEGEND, 1);
    fill_rect(im, bx + bw - 1, by, bx + bw, by + bh, C_FRAME_LEGEND, 1);
    int j = 0;
    for (int i = 0; i < pn->ns; i++) {
        const series *e = &pn->s[i];
        if (!e->label) continue;
        int ty = by + pad + j * row;
        double cy = ty + 3.5 * fs; /* middle of the capitals */
        const fsd_plot_style *st = &e->st;
        dash ds = dash_for(st);
        if (e->kind != K_SERIES || !st->no_line)
            mask_segment(k, bx + pad, cy, bx + pad + sample, cy, st->width, &ds, 0);
        if (e->kind == K_SERIES && st->marker != FSD_MARKER_NONE)
            mask_marker(k, st->marker, bx + pad + 0.5 * sample, cy, fmin(st->marker_size, 0.5 * row));
        mask_composite(k, im, e->rgb, fmaxf(st->alpha, 0.6f)); /* faint lines stay visible here */
        fsd_draw_text(im, bx + 3 * pad + sample, ty, e->label, C_INK, fs);
        j++;
    }
}

/* Renders panel pn into the image region [rx, rx+rw) x [ry, ry+rh). */
static fsd_status render_panel(fsd_plot *p, int idx, fsd_image *im, int rx, int ry, int rw, int rh) {
    panel *pn = &p->panels[idx];
    fsd_status s;
    if ((s = axis_range(pn, 0, "x")) || (s = axis_range(pn, 1, "y"))) return s;
    int fs = p->font_scale ? p->font_scale : (int)fmax(1, fmin(rw, rh) / 450);
    int tfs = fs + 1;
    int pad = 6 * fs, gap = 4 * fs, tick_len = 4 * fs, lh = 9 * fs; /* lh: glyph height */
    int top = pad + (pn->title ? 9 * tfs + pad : 0) + lh / 2;
    int bottom = pad + tick_len + gap + lh + (pn->xlabel ? gap + lh : 0);
    int ph = rh - top - bottom;
    tick ylist[MAX_TICKS], xlist[MAX_TICKS];
    int nyt = axis_ticks(&pn->ay, ph, 45.0 * fs, ylist);
    int ylw = 0;
    for (int i = 0; i < nyt; i++)
        if (ylist[i].major) {
            int w, h;
            fsd_text_size(ylist[i].label, fs, &w, &h);
            if (w > ylw) ylw = w;
        }
    int left = pad + (pn->ylabel ? lh + 2 * gap : 0) + ylw + gap + tick_len;
    int right = pad + 3 * FSD_FONT_CELL_W * fs;
    int pw = rw - left - right;
    if (pw < 16 || ph < 16)
        return fsd_fail(FSD_ERR_INVALID, "plot: panel %d is %dx%d px, too small for its labels (plot area %dx%d)", idx,
                        rw, rh, pw, ph);
    int x0 = rx + left, y0 = ry + top, x1 = x0 + pw, y1 = y0 + ph;
    pn->x0 = x0;
    pn->y0 = y0;
    pn->x1 = x1;
    pn->y1 = y1;
    pn->ax.p0 = x0;
    pn->ax.p1 = x1;
    pn->ay.p0 = y1;
    pn->ay.p1 = y0;
    int nxt = axis_ticks(&pn->ax, pw, 90.0 * fs, xlist);

    /* grid lines at the major ticks */
    if (pn->grid) {
        for (int i = 0; i < nxt; i++) {
            if (!xlist[i].major) continue;
            int c = (int)floor(ax_px(&pn->ax, xlist[i].v));
            if (c >= x0 && c < x1) fill_rect(im, c, y0, c + 1, y1, C_GRID, 1);
        }
        for (int i = 0; i < nyt; i++) {
            if (!ylist[i].major) continue;
            int r = (int)floor(ax_px(&pn->ay, ylist[i].v));
            if (r >= y0 && r < y1) fill_rect(im, x0, r, x1, r + 1, C_GRID, 1);
        }
    }

    /* series, clipped to the plot area */
    mask k = {fsd_calloc((size_t)pw * ph, sizeof(float)), x0, y0, pw, ph, 1 << 30, 1 << 30, -(1 << 30), -(1 << 30)};
    if (!k.m) return FSD_ERR_NOMEM;
    for (int i = 0; i < pn->ns; i++) draw_entry(pn, &pn->s[i], &k, im, p->decimate);

    /* frame (just outside the area), ticks, labels */
    int lw = fs;
    fill_rect(im, x0 - lw, y0 - lw, x1 + lw, y0, C_AXIS, 1);
    fill_rect(im, x0 - lw, y1, x1 + lw, y1 + lw, C_AXIS, 1);
    fill_rect(im, x0 - lw, y0, x0, y1, C_AXIS, 1);
    fill_rect(im, x1, y0, x1 + lw, y1, C_AXIS, 1);
    int last_right = -(1 << 30);
    for (int i = 0; i < nxt; i++) {
        double c = ax_px(&pn->ax, xlist[i].v);
        if (!(c >= x0 - 0.5 && c <= x1 + 0.5)) continue;
        int ci = (int)floor(c), len = xlist[i].major ? tick_len : tick_len / 2;
        if (ci >= x1) ci = x1 - 1;
        fill_rect(im, ci, y1 + lw, ci + lw, y1 + lw + len, C_AXIS, 1);
        if (!xlist[i].major) continue;
        int w, h;
        fsd_text_size(xlist[i].label, fs, &w, &h);
        int tx = ci - w / 2;
        if (tx < last_right + 2 * FSD_FONT_CELL_W * fs) continue; /* would touch its neighbour */
        fsd_draw_text(im, tx, y1 + lw + tick_len + gap, xlist[i].label, C_INK, fs);
        last_right = tx + w;
    }
    int last_top = 1 << 30;
    for (int i = 0; i < nyt; i++) {
        double r = ax_px(&pn->ay, ylist[i].v);
        if (!(r >= y0 - 0.5 && r <= y1 + 0.5)) continue;
        int ri = (int)floor(r), len = ylist[i].major ? tick_len : tick_len / 2;
        if (ri >= y1) ri = y1 - 1;
        fill_rect(im, x0 - lw - len, ri, x0 - lw, ri + lw, C_AXIS, 1);
        if (!ylist[i].major) continue;
        int w, h;
        fsd_text_size(ylist[i].label, fs, &w, &h);
        int ty = ri - (7 * fs) / 2; /* centre the capitals on the tick */
        if (ty + h + gap > last_top) continue;
        fsd_draw_text(im, x0 - lw - tick_len - gap - w, ty, ylist[i].label, C_INK, fs);
        last_top = ty;
    }
    if (pn->xlabel) {
        int w, h;
        fsd_text_size(pn->xlabel, fs, &w, &h);
        fsd_draw_text(im, x0 + (pw - w) / 2, y1 + lw + tick_len + gap + lh + gap, pn->xlabel, C_INK, fs);
    }
    if (pn->ylabel) {
        int w, h;
        fsd_text_size(pn->ylabel, fs, &w, &h);
        fsd_draw_text_vertical(im, rx + pad, y0 + (ph - w) / 2, pn->ylabel, C_INK, fs);
    }
    if (pn->title) {
        int w, h;
        fsd_text_size(pn->title, tfs, &w, &h);
        fsd_draw_text(im, x0 + (pw - w) / 2, ry + pad, pn->title, C_INK, tfs);
    }
    draw_legend(pn, &k, im, fs);
    fsd_free(k.m);
    pn->rendered = 1;
    return FSD_OK;
}

fsd_status fsd_plot_render(fsd_plot *p, fsd_image *out) {
    memset(out, 0, sizeof *out);
    fsd_status s = fsd_image_alloc(out, p->w, p->h, 3);
    if (s) return s;
    for (size_t i = 0; i < (size_t)p->w * p->h * 3; i++) out->data[i] = 255;
    int top = 0;
    if (p->suptitle) {
        int fs = p->font_scale ? p->font_scale + 1 : (int)fmax(2, fmin(p->w, p->h) / 400);
        int w, h;
        fsd_text_size(p->suptitle, fs, &w, &h);
        fsd_draw_text(out, (p->w - w) / 2, 6 * fs, p->suptitle, C_INK, fs);
        top = 6 * fs + 9 * fs;
    }
    for (int i = 0; i < p->rows * p->cols; i++) p->panels[i].rendered = 0;
    int cw = p->w / p->cols, chh = (p->h - top) / p->rows;
    for (int r = 0; r < p->rows; r++)
        for (int c = 0; c < p->cols; c++) {
            int i = r * p->cols + c;
            s = render_panel(p, i, out, c * cw, top + r * chh, cw, chh);
            if (s) {
                fsd_image_free(out);
                return s;
            }
        }
    return FSD_OK;
}

fsd_status fsd_plot_save_png(fsd_plot *p, const char *path) {
    fsd_image im;
    fsd_status s = fsd_plot_render(p, &im);
    if (s) return s;
    s = fsd_image_save_png(path, &im, NULL, 0);
    fsd_image_free(&im);
    return s;
}

fsd_status fsd_plot_map(const fsd_plot *p, int panel_i, double x, double y, double *px, double *py) {
    if (panel_i < 0 || panel_i >= p->rows * p->cols || !p->panels[panel_i].rendered)
        return fsd_fail(FSD_ERR_INVALID, "plot: panel %d not rendered", panel_i);
    const panel *pn = &p->panels[panel_i];
    *px = ax_px(&pn->ax, x);
    *py = ax_px(&pn->ay, y);
    return FSD_OK;
}

fsd_status fsd_plot_area(const fsd_plot *p, int panel_i, double *x0, double *y0, double *x1, double *y1) {
    if (panel_i < 0 || panel_i >= p->rows * p->cols || !p->panels[panel_i].rendered)
        return fsd_fail(FSD_ERR_INVALID, "plot: panel %d not rendered", panel_i);
    const panel *pn = &p->panels[panel_i];
    *x0 = pn->x0;
    *y0 = pn->y0;
    *x1 = pn->x1;
    *y1 = pn->y1;
    return FSD_OK;
}
