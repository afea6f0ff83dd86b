/* Logging to stderr and a tqdm-like progress bar (it/s and ETA), silent when stderr is not a TTY. */
#include "fsdiff/core.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static fsd_log_level g_level = FSD_LOG_INFO;
static int g_quiet = 0;

void fsd_set_log_level(fsd_log_level lvl) { g_level = lvl; }
fsd_log_level fsd_get_log_level(void) { return g_level; }

void fsd_log(fsd_log_level lvl, const char *fmt, ...) {
    if (lvl > g_level) return;
    static const char *tag[] = {"error", "warning", "info", "debug"};
    fprintf(stderr, "fsdiff: %s: ", tag[lvl]);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void fsd_progress_set_quiet(int quiet) { g_quiet = quiet; }

static void fmt_clock(char *b, size_t n, double s) {
    if (s < 0 || s > 359999) { snprintf(b, n, "--:--"); return; }
    int t = (int)(s + 0.5);
    if (t >= 3600) snprintf(b, n, "%d:%02d:%02d", t / 3600, (t / 60) % 60, t % 60);
    else snprintf(b, n, "%02d:%02d", t / 60, t % 60);
}

void fsd_progress_format(char *buf, size_t n, const char *label, int64_t done, int64_t total,
                         double elapsed, const char *extra) {
    char el[16], eta[16], rate[32];
    double r = elapsed > 0 ? (double)done / elapsed : 0.0;
    fmt_clock(el, sizeof el, elapsed);
    fmt_clock(eta, sizeof eta, (r > 0 && total > 0) ? (double)(total - done) / r : -1);
    if (r >= 1.0 || r == 0.0) snprintf(rate, sizeof rate, "%.2f it/s", r);
    else snprintf(rate, sizeof rate, "%.2f s/it", 1.0 / r);
    const int width = 24;
    char bar[32];
    int fill = total > 0 ? (int)((double)done / (double)total * width) : 0;
    if (fill > width) fill = width;
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : ' ';
    bar[width] = 0;
    int pct = total > 0 ? (int)(100.0 * (double)done / (double)total) : 0;
    snprintf(buf, n, "%s %3d%% |%s| %lld/%lld [%s<%s, %s]%s%s", label ? label : "", pct, bar,
             (long long)done, (long long)total, el, eta, rate, extra && *extra ? " " : "",
             extra ? extra : "");
}

static void draw(fsd_progress *p, const char *extra) {
    char line[512];
    fsd_progress_format(line, sizeof line, p->label, p->done, p->total, fsd_time_seconds() - p->t0, extra);
    fprintf(stderr, "\r%s\033[K", line);
    fflush(stderr);
}

void fsd_progress_begin(fsd_progress *p, const char *label, int64_t total) {
    memset(p, 0, sizeof *p);
    p->label = label;
    p->total = total;
    p->t0 = fsd_time_seconds();
    p->enabled = !g_quiet && isatty(fileno(stderr));
}

void fsd_progress_update(fsd_progress *p, int64_t done, const char *extra) {
    p->done = done;
    if (!p->enabled) return;
    double now = fsd_time_seconds();
    if (done < p->total && now - p->last_draw < 0.1) return;
    p->last_draw = now;
    draw(p, extra);
}

void fsd_progress_end(fsd_progress *p) {
    if (!p->enabled) return;
    draw(p, NULL);
    fputc('\n', stderr);
    p->enabled = 0;
}
