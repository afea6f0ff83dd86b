/* Reports of `fsdiff eval`: results.csv, summary.md, report.html (inline CSS and SVG bar charts,
 * contact sheets from img/), and the JSON summary. */
#include "eval_internal.h"
#include "fsdiff/json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define K_STATS (FSD_METRIC_COUNT + 1) /* metrics + seconds */

static const fsd_eval_stat *stat_of(const fsd_eval_summary *sum, int m, int k) { return &sum->stat[m * K_STATS + k]; }

static fsd_status open_out(const char *path, FILE **fp) {
    *fp = fopen(path, "w");
    if (!*fp) return fsd_fail(FSD_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    return FSD_OK;
}

static fsd_status close_out(const char *path, FILE *fp) {
    int bad = ferror(fp);
    if (fclose(fp) != 0) bad = 1;
    if (bad) {
        remove(path);
        return fsd_fail(FSD_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    }
    return FSD_OK;
}

/* "12.345", "inf", "n/a" */
static const char *num(char *buf, size_t n, double v, int decimals) {
    if (isnan(v)) snprintf(buf, n, "n/a");
    else if (isinf(v)) snprintf(buf, n, v > 0 ? "inf" : "-inf");
    else snprintf(buf, n, "%.*f", decimals, v);
    return buf;
}

/* The tables show the time in ms with 1 decimal, every metric with 3. */
static int decimals_of(int k) { return k == FSD_METRIC_COUNT ? 1 : 3; }
static double value_of(double v, int k) { return k == FSD_METRIC_COUNT ? 1000.0 * v : v; }

static void csv_field(FILE *fp, const char *s) {
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, fp);
        return;
    }
    fputc('"', fp);
    for (; *s; s++) {
        if (*s == '"') fputc('"', fp);
        fputc(*s, fp);
    }
    fputc('"', fp);
}

static void html_esc(FILE *fp, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", fp); break;
        case '>': fputs("&gt;", fp); break;
        case '&': fputs("&amp;", fp); break;
        case '"': fputs("&quot;", fp); break;
        default: fputc(*s, fp);
        }
    }
}

static void json_num(FILE *fp, double v) {
    if (isfinite(v)) fprintf(fp, "%.10g", v);
    else fputs("null", fp);
}

/* ---------------------------------------------------------------- csv */
fsd_status fsd_eval_write_csv(const char *path, const fsd_pair_set *set, const fsd_eval_method *methods,
                              const fsd_eval_results *res, double scale) {
    FILE *fp;
    fsd_status s = open_out(path, &fp);
    if (s) return s;
    fputs("image,method,scale", fp);
    for (int k = 0; k < FSD_METRIC_COUNT; k++) fprintf(fp, ",%s", fsd_metric_table[k].name);
    fputs(",seconds\n", fp);
    for (int p = 0; p < res->n_pairs; p++)
        for (int m = 0; m < res->n_methods; m++) {
            const fsd_eval_result *r = &res->r[(size_t)p * res->n_methods + m];
            csv_field(fp, set->pairs[p].name);
            fputc(',', fp);
            csv_field(fp, methods[m].name);
            fprintf(fp, ",%g", scale);
            for (int k = 0; k < FSD_METRIC_COUNT; k++) {
                double v = r->m.v[k];
                if (isfinite(v)) fprintf(fp, ",%.10g", v);
                else fprintf(fp, ",%s", isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
            }
            fprintf(fp, ",%.6f\n", r->seconds);
        }
    return close_out(path, fp);
}

/* ---------------------------------------------------------------- markdown */
static int is_best(const fsd_eval_summary *sum, const fsd_eval_method *methods, int m, int k) {
    return k < FSD_METRIC_COUNT && sum->best[k * 2 + (methods[m].uses_hr != 0)] == m;
}

void fsd_eval_print_table(FILE *fp, const fsd_eval_method *methods, const fsd_eval_summary *sum) {
    fputs("| method |", fp);
    for (int k = 0; k < FSD_METRIC_COUNT; k++) fprintf(fp, " %s |", fsd_metric_table[k].name);
    fputs(" ms |\n|---|", fp);
    for (int k = 0; k < K_STATS; k++) fputs("---|", fp);
    fputc('\n', fp);
    for (int m = 0; m < sum->n_methods; m++) {
        fprintf(fp, "| %s |", methods[m].name);
        for (int k = 0; k < K_STATS; k++) {
            const fsd_eval_stat *t = stat_of(sum, m, k);
            char a[32], b[32];
            int bold = is_best(sum, methods, m, k);
            fprintf(fp, " %s%s ± %s%s |", bold ? "**" : "", num(a, sizeof a, value_of(t->mean, k), decimals_of(k)),
                    num(b, sizeof b, value_of(t->std, k), decimals_of(k)), bold ? "**" : "");
        }
        fputc('\n', fp);
    }
}

static void size_range(const fsd_eval_results *res, int lr, char *buf, size_t n) {
    const int *W = lr ? res->lw : res->w, *H = lr ? res->lh : res->h;
    int w0 = W[0], w1 = W[0], h0 = H[0], h1 = H[0];
    for (int p = 1; p < res->n_pairs; p++) {
        if (W[p] < w0) w0 = W[p];
        if (W[p] > w1) w1 = W[p];
        if (H[p] < h0) h0 = H[p];
        if (H[p] > h1) h1 = H[p];
    }
    if (w0 == w1 && h0 == h1) snprintf(buf, n, "%d×%d", w0, h0);
    else snprintf(buf, n, "%d–%d × %d–%d", w0, w1, h0, h1);
}

static int psnr_inf_total(const fsd_eval_summary *sum) {
    int n = 0;
    for (int m = 0; m < sum->n_methods; m++) n += stat_of(sum, m, FSD_METRIC_PSNR)->n_inf;
    return n;
}

/* Lines shared by summary.md and the HTML settings ("- key: value" / <tr>). */
typedef struct setting {
    char key[32];
    char value[2048];
} setting;

static int settings_of(const fsd_pair_set *set, const fsd_eval_method *methods, const fsd_eval_results *res,
                       const fsd_eval_summary *sum, const fsd_eval_options *opt, const fsd_eval_report_info *info,
                       setting *s, int cap) {
    int n = 0;
    char hr[64], lr[64];
    size_range(res, 0, hr, sizeof hr);
    size_range(res, 1, lr, sizeof lr);
    const fsd_degrade_params *d = &opt->degrade;
#define ADD(k, ...)                                                         \
    do {                                                                    \
        if (n < cap) {                                                      \
            snprintf(s[n].key, sizeof s[n].key, "%s", k);                   \
            snprintf(s[n].value, sizeof s[n].value, __VA_ARGS__);           \
            n++;                                                            \
        }                                                                   \
    } while (0)
    if (info && info->command) ADD("command", "%s", info->command);
    ADD("data", "%s (A = %s, B = %s)", info && info->data_dir ? info->data_dir : set->dir, set->mod_a, set->mod_b);
    ADD("pairs", "%d; HR %s px, LR %s px", res->n_pairs, hr, lr);
    ADD("LR inputs",
        "fsd_degrade ×%g: %s8-bit Pillow bicubic downscale to round(w/%g) × round(h/%g)%s (noise seed %llu, hashed "
        "with each NAME and source)",
        d->scale, d->blur_sigma > 0 ? "Gaussian blur, then " : "", d->scale, d->scale,
        d->noise_sigma > 0 ? ", Gaussian noise" : "", (unsigned long long)d->seed);
    if (d->blur_sigma > 0 || d->noise_sigma > 0) ADD("degradation", "blur σ = %g px, noise σ = %g", d->blur_sigma, d->noise_sigma);
    {
        char list[1536] = ""; /* leaves room in the 2048-byte value */
        size_t L = 0;
        for (int m = 0; m < res->n_methods && L < sizeof list; m++)
            L += snprintf(list + L, sizeof list - L, "%s%s", m ? ", " : "", methods[m].name);
        ADD("methods", "%s. NAME = bicubic-upsample both LR sources to the HR size (PIL), then fuse with NAME; "
                       "hr:NAME = fuse the HR sources (the ceiling a perfect SR step would allow)", list);
    }
    ADD("metrics", "every output rounded to 8 bits (as saved), turned grey (round(0.299R+0.587G+0.114B)) and scored "
                   "against the grey HR sources A and B; all metrics are higher-is-better (docs/metrics.md)");
    ADD("statistics", "mean ± std over the pairs (population std); **bold** = best mean per metric among the methods "
                      "that see only the LR inputs, and separately among the hr: ceilings (in a group of two or more)");
    int ni = psnr_inf_total(sum);
    if (ni) ADD("PSNR", "mean over the finite values: %d infinite value%s (output identical to both sources) left out", ni, ni == 1 ? "" : "s");
    ADD("ms", "wall time of the method for one pair (pairs in parallel, one per thread; %d thread%s); "
                   "whole run %.1f s", info ? info->threads : 0, info && info->threads == 1 ? "" : "s", res->seconds_total);
    ADD("version", "fsdiff %s", FSD_VERSION_STRING);
#undef ADD
    return n;
}

fsd_status fsd_eval_write_summary(const char *path, const fsd_pair_set *set, const fsd_eval_method *methods,
                                  const fsd_eval_results *res, const fsd_eval_summary *sum,
                                  const fsd_eval_options *opt, const fsd_eval_report_info *info) {
    FILE *fp;
    fsd_status s = open_out(path, &fp);
    if (s) return s;
    setting st[16];
    int ns = settings_of(set, methods, res, sum, opt, info, st, 16);
    fprintf(fp, "# fsdiff eval: %s at ×%g\n\n", info && info->data_dir ? info->data_dir : set->dir, opt->degrade.scale);
    for (int i = 0; i < ns; i++) fprintf(fp, "- %s: %s\n", st[i].key, st[i].value);
    fputc('\n', fp);
    fsd_eval_print_table(fp, methods, sum);
    return close_out(path, fp);
}

/* ---------------------------------------------------------------- json */
void fsd_eval_write_json(FILE *fp, const fsd_pair_set *set, const fsd_eval_method *methods,
                         const fsd_eval_results *res, const fsd_eval_summary *sum, const fsd_eval_options *opt,
                         const char *out_dir) {
    fputs("{\"data\": ", fp);
    fsd_json_write_string(fp, set->dir);
    fputs(", \"a\": ", fp);
    fsd_json_write_string(fp, set->mod_a);
    fputs(", \"b\": ", fp);
    fsd_json_write_string(fp, set->mod_b);
    fprintf(fp, ", \"pairs\": %d, \"scale\": ", res->n_pairs);
    json_num(fp, opt->degrade.scale);
    fputs(", \"blur\": ", fp);
    json_num(fp, opt->degrade.blur_sigma);
    fputs(", \"noise\": ", fp);
    json_num(fp, opt->degrade.noise_sigma);
    fprintf(fp, ", \"seed\": %llu, \"seconds_total\": ", (unsigned long long)opt->degrade.seed);
    json_num(fp, res->seconds_total);
    if (out_dir) {
        fputs(", \"out\": ", fp);
        fsd_json_write_string(fp, out_dir);
    }
    fputs(", \"methods\": [", fp);
    for (int m = 0; m < sum->n_methods; m++) {
        fputs(m ? ", {\"name\": " : "{\"name\": ", fp);
        fsd_json_write_string(fp, methods[m].name);
        fprintf(fp, ", \"uses_hr\": %s, \"metrics\": {", methods[m].uses_hr ? "true" : "false");
        for (int k = 0; k < K_STATS; k++) {
            const fsd_eval_stat *t = stat_of(sum, m, k);
            if (k == FSD_METRIC_COUNT) fputs("}, \"seconds\": ", fp);
            else fprintf(fp, "%s\"%s\": ", k ? ", " : "", fsd_metric_table[k].name);
            fputs("{\"mean\": ", fp);
            json_num(fp, t->mean);
            fputs(", \"std\": ", fp);
            json_num(fp, t->std);
            fprintf(fp, ", \"n\": %d, \"n_inf\": %d", t->n, t->n_inf);
            if (k < FSD_METRIC_COUNT) fprintf(fp, ", \"best\": %s", is_best(sum, methods, m, k) ? "true" : "false");
            fputc('}', fp);
        }
        fputc('}', fp);
    }
    fputs("]}\n", fp);
}

/* ---------------------------------------------------------------- html */
static const char *k_css =
    "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;margin:24px;color:#222;"
    "max-width:1900px}\n"
    "h1{font-size:22px;margin:0 0 12px}h2{font-size:18px;margin:28px 0 10px;border-bottom:1px solid #ccc}"
    "h3{font-size:15px;margin:18px 0 6px}h3 span{font-weight:normal;color:#666;font-size:13px}\n"
    "table{border-collapse:collapse;font-size:12.5px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right;"
    "white-space:nowrap}th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}\n"
    "td small{color:#666;font-size:11px}tr.hr td{background:#fbf5ec}table.settings td{text-align:left;white-space:normal;vertical-align:top}"
    "table.settings td:first-child{font-weight:bold;white-space:nowrap}code{font-size:12px}\n"
    ".charts{display:grid;grid-template-columns:repeat(auto-fill,432px);gap:14px}\n"
    ".charts svg{border:1px solid #ddd;background:#fff}\n"
    ".sheet{display:flex;flex-wrap:wrap;gap:10px;align-items:flex-start;margin-bottom:10px}\n"
    ".sheet figure{margin:0;width:256px;display:flex;flex-direction:column;gap:4px}\n"
    ".sheet img{display:block;image-rendering:pixelated;border:1px solid #bbb;max-width:256px}\n"
    ".sheet figcaption{font-size:12px;color:#333}.sheet figure.in figcaption{color:#555}"
    ".sheet figure.hr{background:#fbf5ec}\n"
    ".legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:-1px}\n";

/* A step of 1, 2 or 5 x 10^k giving about `ticks` intervals over span. */
static double nice_step(double span, int ticks) {
    double raw = span / ticks, p = pow(10.0, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

/* One horizontal bar chart: mean ± std per method. */
static void svg_chart(FILE *fp, int k, const fsd_eval_method *methods, const fsd_eval_summary *sum) {
    const int W = 430, L = 112, R = 64, T = 30, row = 20, B = 30, nm = sum->n_methods;
    const int H = T + nm * row + B, pw = W - L - R;
    double lo = 0, hi = 0;
    int any = 0;
    for (int m = 0; m < nm; m++) {
        const fsd_eval_stat *t = stat_of(sum, m, k);
        if (!isfinite(t->mean)) continue;
        double a = t->mean - t->std, b = t->mean + t->std;
        if (!any || a < lo) lo = a;
        if (!any || b > hi) hi = b;
        any = 1;
    }
    if (lo > 0) lo = 0;
    if (hi < 0) hi = 0;
    if (hi - lo <= 0) hi = lo + 1;
    double step = nice_step(hi - lo, 4);
    lo = floor(lo / step + 1e-9) * step;
    hi = ceil(hi / step - 1e-9) * step;
#define XOF(v) (L + ((v) - lo) / (hi - lo) * pw)
    const fsd_metric_info *mi = &fsd_metric_table[k];
    fprintf(fp, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                "font-family=\"sans-serif\" font-size=\"11\">\n", W, H, W, H);
    fprintf(fp, "<text x=\"8\" y=\"18\" font-size=\"13\" font-weight=\"bold\">%s</text>"
                "<text x=\"%d\" y=\"18\" fill=\"#666\">", mi->name, 8 + 9 * (int)strlen(mi->name) + 6);
    html_esc(fp, mi->description);
    fprintf(fp, " (%s)</text>\n", mi->higher_is_better ? "higher is better" : "lower is better");
    /* grid + tick labels */
    for (double v = lo; v <= hi + step * 1e-6; v += step) {
        double x = XOF(v), vv = fabs(v) < step * 1e-9 ? 0 : v;
        fprintf(fp, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"%s\"/>", x, T - 4, x, T + nm * row,
                fabs(vv) == 0 ? "#888" : "#e4e4e4");
        fprintf(fp, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#555\">%g</text>\n", x, T + nm * row + 14,
                vv);
    }
    if (!any)
        fprintf(fp, "<text x=\"%d\" y=\"%d\" fill=\"#a00\">no finite values</text>\n", L + 10, T + 14);
    for (int m = 0; m < nm; m++) {
        const fsd_eval_stat *t = stat_of(sum, m, k);
        int y = T + m * row, best = is_best(sum, methods, m, k);
        fprintf(fp, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\"%s>", L - 6, y + 14, best ? " font-weight=\"bold\"" : "");
        html_esc(fp, methods[m].name);
        fputs("</text>", fp);
        if (isfinite(t->mean)) {
            double x0 = XOF(0), x1 = XOF(t->mean), e0 = XOF(t->mean - t->std), e1 = XOF(t->mean + t->std);
            const char *col = methods[m].uses_hr ? "#d9a05b" : "#5b8cc9";
            fprintf(fp, "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"%s/>", x1 < x0 ? x1 : x0,
                    y + 4, fabs(x1 - x0), row - 8, col, best ? " stroke=\"#222\" stroke-width=\"1.2\"" : "");
            fprintf(fp, "<path d=\"M%.1f %dH%.1fM%.1f %dv8M%.1f %dv8\" stroke=\"#222\" fill=\"none\"/>", e0, y + row / 2,
                    e1, e0, y + row / 2 - 4, e1, y + row / 2 - 4);
            char a[32];
            fprintf(fp, "<text x=\"%d\" y=\"%d\"%s>%s</text>", W - R + 6, y + 14, best ? " font-weight=\"bold\"" : "",
                    num(a, sizeof a, t->mean, 3));
        }
        fputc('\n', fp);
    }
    fputs("</svg>\n", fp);
#undef XOF
}

static void html_table(FILE *fp, const fsd_eval_method *methods, const fsd_eval_summary *sum) {
    fputs("<table><tr><th>method</th>", fp);
    for (int k = 0; k < FSD_METRIC_COUNT; k++) fprintf(fp, "<th title=\"%s\">%s</th>", fsd_metric_table[k].description,
                                                       fsd_metric_table[k].name);
    fputs("<th title=\"wall time of the method for one pair\">ms</th></tr>\n", fp);
    for (int m = 0; m < sum->n_methods; m++) {
        fprintf(fp, "<tr%s><td>", methods[m].uses_hr ? " class=\"hr\"" : "");
        html_esc(fp, methods[m].name);
        fputs("</td>", fp);
        for (int k = 0; k < K_STATS; k++) {
            const fsd_eval_stat *t = stat_of(sum, m, k);
            char a[32], b[32];
            int bold = is_best(sum, methods, m, k);
            fprintf(fp, "<td>%s%s%s<br><small>± %s</small></td>", bold ? "<b>" : "",
                    num(a, sizeof a, value_of(t->mean, k), decimals_of(k)), bold ? "</b>" : "",
                    num(b, sizeof b, value_of(t->std, k), decimals_of(k)));
        }
        fputs("</tr>\n", fp);
    }
    fputs("</table>\n", fp);
}

static void figure(FILE *fp, const char *cls, int pair, int col, int tw, int th, int cz, const char *caption_html) {
    char f0[64], f1[64];
    fsd_eval_sheet_file(f0, sizeof f0, pair, col, 0);
    fsd_eval_sheet_file(f1, sizeof f1, pair, col, 1);
    fprintf(fp, "<figure class=\"%s\"><img src=\"img/%s\" width=\"%d\" height=\"%d\" alt=\"\" loading=\"lazy\">"
                "<img src=\"img/%s\" width=\"%d\" height=\"%d\" alt=\"\" loading=\"lazy\"><figcaption>%s</figcaption></figure>\n",
            cls, f0, tw, th, f1, cz, cz, caption_html);
}

fsd_status fsd_eval_write_html(const char *path, const fsd_pair_set *set, const fsd_eval_method *methods,
                               const fsd_eval_results *res, const fsd_eval_summary *sum,
                               const fsd_eval_options *opt, const fsd_eval_report_info *info) {
    FILE *fp;
    fsd_status s = open_out(path, &fp);
    if (s) return s;
    const char *data = info && info->data_dir ? info->data_dir : set->dir;
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>fsdiff eval: ", fp);
    html_esc(fp, data);
    fprintf(fp, " ×%g</title>\n<style>\n%s</style></head><body>\n<h1>fsdiff eval: ", opt->degrade.scale, k_css);
    html_esc(fp, data);
    fprintf(fp, " at ×%g</h1>\n", opt->degrade.scale);

    /* settings */
    setting st[16];
    int ns = settings_of(set, methods, res, sum, opt, info, st, 16);
    fputs("<table class=\"settings\">\n", fp);
    for (int i = 0; i < ns; i++) {
        fprintf(fp, "<tr><td>%s</td><td>", st[i].key);
        if (!strcmp(st[i].key, "command")) fputs("<code>", fp);
        /* the markdown bold of the statistics line becomes <b> */
        const char *v = st[i].value, *b = strstr(v, "**bold**");
        if (b) {
            fwrite(v, 1, (size_t)(b - v), fp);
            fputs("<b>bold</b>", fp);
            html_esc(fp, b + 8);
        } else {
            html_esc(fp, v);
        }
        if (!strcmp(st[i].key, "command")) fputs("</code>", fp);
        fputs("</td></tr>\n", fp);
    }
    fputs("</table>\n", fp);

    fputs("<h2>Summary</h2>\n", fp);
    html_table(fp, methods, sum);
    fputs("<p>Files: <a href=\"results.csv\">results.csv</a> (one row per image × method), "
          "<a href=\"summary.md\">summary.md</a>.</p>\n", fp);

    fputs("<h2>Metrics (mean ± std over the pairs)</h2>\n<p class=\"legend\"><span style=\"background:#5b8cc9\"></span>"
          "LR inputs (SR then fuse)<span style=\"background:#d9a05b\"></span>hr: fusing the HR sources (ceiling); "
          "framed bar and bold value = best of its group</p>\n<div class=\"charts\">\n", fp);
    for (int k = 0; k < FSD_METRIC_COUNT; k++) svg_chart(fp, k, methods, sum);
    fputs("</div>\n", fp);

    int nsheets = opt->img_dir ? (opt->n_sheets < res->n_pairs ? opt->n_sheets : res->n_pairs) : 0;
    if (nsheets > 0) {
        fprintf(fp, "<h2>Contact sheets (first %d pair%s)</h2>\n<p>Each column: thumbnail (at most %d px), below it a "
                    "%d×%d px region (framed in yellow on the HR sources, chosen where the sources have the most "
                    "edges) enlarged %d× with nearest neighbours. LR inputs are shown with nearest neighbours so their "
                    "pixels are visible.</p>\n",
                nsheets, nsheets == 1 ? "" : "s", FSD_EVAL_THUMB, FSD_EVAL_CROP, FSD_EVAL_CROP, FSD_EVAL_ZOOM);
    }
    for (int p = 0; p < nsheets; p++) {
        int w = res->w[p], h = res->h[p], tw, th, cz = res->sheet_crop[4 * p + 2] * res->sheet_crop[4 * p + 3];
        fsd_eval_thumb_size(w, h, &tw, &th);
        fputs("<section><h3>", fp);
        html_esc(fp, set->pairs[p].name);
        fprintf(fp, " <span>HR %d×%d, LR %d×%d, crop at (%d, %d)</span></h3>\n<div class=\"sheet\">\n", w, h,
                res->lw[p], res->lh[p], res->sheet_crop[4 * p], res->sheet_crop[4 * p + 1]);
        char cap[1024];
        const char *mods[2] = {set->mod_a, set->mod_b};
        for (int i = 0; i < 2; i++) {
            snprintf(cap, sizeof cap, "<b>LR %s</b> (%d×%d input, nearest)", mods[i], res->lw[p], res->lh[p]);
            figure(fp, "in", p, FSD_EVAL_COL_LR_A + i, tw, th, cz, cap);
        }
        for (int i = 0; i < 2; i++) {
            snprintf(cap, sizeof cap, "<b>HR %s</b> (source, reference)", mods[i]);
            figure(fp, "in", p, FSD_EVAL_COL_HR_A + i, tw, th, cz, cap);
        }
        fputs("</div>\n<div class=\"sheet\">\n", fp); /* outputs start a new row */
        for (int m = 0; m < res->n_methods; m++) {
            const fsd_metrics *mv = &res->r[(size_t)p * res->n_methods + m].m;
            char nm[600];
            size_t L = 0;
            for (const char *c = methods[m].name; *c && L + 8 < sizeof nm; c++) { /* escaped name */
                const char *e = *c == '<' ? "&lt;" : *c == '>' ? "&gt;" : *c == '&' ? "&amp;" : NULL;
                if (e) L += (size_t)snprintf(nm + L, sizeof nm - L, "%s", e);
                else nm[L++] = *c;
            }
            nm[L] = 0;
            snprintf(cap, sizeof cap, "<b>%s</b><br>VIF %.3f · Qabf %.3f<br>SCD %.3f · MI %.3f", nm,
                     mv->v[FSD_METRIC_VIF], mv->v[FSD_METRIC_QABF], mv->v[FSD_METRIC_SCD], mv->v[FSD_METRIC_MI]);
            figure(fp, methods[m].uses_hr ? "hr" : "lr", p, m, tw, th, cz, cap);
        }
        fputs("</div></section>\n", fp);
    }
    fputs("</body></html>\n", fp);
    return close_out(path, fp);
}
