/* Multi-head attention core vs the PyTorch twin (tests/ref/ref_attention.py), finite differences,
 * and argument/arena errors.
 * Tolerances (rel_err = max-abs error / max-abs reference, see testutil.h):
 *   forward out            <= 1e-5
 *   dq, dk, dv             <= 1e-4  (float32 GEMMs over up to 300 keys vs float64 autograd)
 *   finite differences     |fd - analytic| <= 2e-4 + 2e-3 * max|analytic| (h = 1e-2, float forward)
 */
#include "fsdiff/ops_attention.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static fsd_arena ws;

static void scale_copy(float *dst, const float *src, size_t n, float s) {
    for (size_t i = 0; i < n; i++) dst[i] = s * src[i];
}

static void run_case(const char *path) {
    fsd_safetensors st;
    if (!tu_check(fsd_st_open(&st, path) == FSD_OK, "open %s: %s", path, fsd_error_message())) return;
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    const int B = tu_meta_int(&st, "B", 0), Nq = tu_meta_int(&st, "Nq", 0), Nk = tu_meta_int(&st, "Nk", 0);
    const int H = tu_meta_int(&st, "H", 0), dh = tu_meta_int(&st, "dh", 0);
    size_t nq, nk, nv, ny;
    float *q = tu_get(&st, "q", &nq), *k = tu_get(&st, "k", &nk), *v = tu_get(&st, "v", &nv);
    float *y = tu_get(&st, "y", &ny), *dy = tu_get(&st, "dy", NULL);
    float *rdq = tu_get(&st, "dq", NULL), *rdk = tu_get(&st, "dk", NULL), *rdv = tu_get(&st, "dv", NULL);
    if (!q || !k || !v || !y || !dy || !rdq || !rdk || !rdv ||
        !tu_check(nq == (size_t)B * Nq * H * dh && nk == (size_t)B * Nk * H * dh && nv == nk && ny == nq,
                  "%s: shapes match metadata", name))
        goto done;
    const size_t nP = (size_t)B * H * Nq * Nk;
    float *out = tu_zeros(ny), *P = tu_zeros(nP), *dq = tu_zeros(nq), *dk = tu_zeros(nk), *dv = tu_zeros(nv);
    float *want = tu_zeros(nq > nk ? nq : nk);
    char what[256];

    /* forward, probabilities saved */
    size_t mark = fsd_arena_mark(&ws);
    tu_check(fsd_attention_forward(out, P, q, k, v, B, Nq, Nk, H, dh, &ws) == FSD_OK, "%s: forward (P saved)", name);
    snprintf(what, sizeof what, "%s: out (P saved)", name);
    tu_check_close(what, out, y, ny, 1e-5);
    /* every probability row sums to 1 */
    double worst = 0;
    for (size_t r = 0; r < (size_t)B * H * Nq; r++) {
        double s = 0;
        for (int j = 0; j < Nk; j++) s += P[r * Nk + j];
        worst = fmax(worst, fabs(s - 1.0));
    }
    tu_check(worst < 1e-5, "%s: saved P rows sum to 1 (max dev %.2g)", name, worst);

    /* forward without P (scratch from the arena); the arena is left as found */
    memset(out, 0, ny * sizeof(float));
    size_t peak0 = ws.peak;
    ws.peak = ws.used;
    tu_check(fsd_attention_forward(out, NULL, q, k, v, B, Nq, Nk, H, dh, &ws) == FSD_OK, "%s: forward (no P)", name);
    snprintf(what, sizeof what, "%s: out (no P)", name);
    tu_check_close(what, out, y, ny, 1e-5);
    tu_check(ws.used == mark, "%s: forward resets the arena", name);
    tu_check(ws.peak - mark <= fsd_attention_ws_bytes(0, B, Nq, Nk, H, dh, 0), "%s: forward scratch %zu <= ws_bytes %zu", name,
             ws.peak - mark, fsd_attention_ws_bytes(0, B, Nq, Nk, H, dh, 0));

    /* backward from the saved P */
    tu_check(fsd_attention_backward(dq, dk, dv, dy, P, q, k, v, B, Nq, Nk, H, dh, &ws) == FSD_OK,
             "%s: backward (saved P)", name);
    snprintf(what, sizeof what, "%s: dq (saved P)", name);
    tu_check_close(what, dq, rdq, nq, 1e-4);
    snprintf(what, sizeof what, "%s: dk (saved P)", name);
    tu_check_close(what, dk, rdk, nk, 1e-4);
    snprintf(what, sizeof what, "%s: dv (saved P)", name);
    tu_check_close(what, dv, rdv, nv, 1e-4);

    /* backward again with P recomputed: it accumulates, so the buffers must now hold 2x the reference */
    ws.peak = ws.used;
    tu_check(fsd_attention_backward(dq, dk, dv, dy, NULL, q, k, v, B, Nq, Nk, H, dh, &ws) == FSD_OK,
             "%s: backward (recomputed P)", name);
    tu_check(ws.used == mark, "%s: backward resets the arena", name);
    tu_check(ws.peak - mark <= fsd_attention_ws_bytes(1, B, Nq, Nk, H, dh, 0), "%s: backward scratch %zu <= ws_bytes %zu",
             name, ws.peak - mark, fsd_attention_ws_bytes(1, B, Nq, Nk, H, dh, 0));
    ws.peak = peak0 > ws.peak ? peak0 : ws.peak;
    scale_copy(want, rdq, nq, 2.0f);
    snprintf(what, sizeof what, "%s: dq accumulated (recomputed P)", name);
    tu_check_close(what, dq, want, nq, 1e-4);
    scale_copy(want, rdk, nk, 2.0f);
    snprintf(what, sizeof what, "%s: dk accumulated (recomputed P)", name);
    tu_check_close(what, dk, want, nk, 1e-4);
    scale_copy(want, rdv, nv, 2.0f);
    snprintf(what, sizeof what, "%s: dv accumulated (recomputed P)", name);
    tu_check_close(what, dv, want, nv, 1e-4);

    /* NULL gradients are skipped: only dk */
    memset(dk, 0, nk * sizeof(float));
    tu_check(fsd_attention_backward(NULL, dk, NULL, dy, NULL, q, k, v, B, Nq, Nk, H, dh, &ws) == FSD_OK,
             "%s: backward dk only", name);
    snprintf(what, sizeof what, "%s: dk alone", name);
    tu_check_close(what, dk, rdk, nk, 1e-4);

    fsd_free(out);
    fsd_free(P);
    fsd_free(dq);
    fsd_free(dk);
    fsd_free(dv);
    fsd_free(want);
done:
    fsd_free(q);
    fsd_free(k);
    fsd_free(v);
    fsd_free(y);
    fsd_free(dy);
    fsd_free(rdq);
    fsd_free(rdk);
    fsd_free(rdv);
    fsd_st_close(&st);
}

/* ---------------------------------------------------------------- finite differences */
typedef struct {
    float *q, *k, *v, *out, *w;
    int B, Nq, Nk, H, dh;
} fd_ctx;

static double fd_loss(void *p) {
    fd_ctx *c = p;
    fsd_attention_forward(c->out, NULL, c->q, c->k, c->v, c->B, c->Nq, c->Nk, c->H, c->dh, &ws);
    double s = 0;
    size_t n = (size_t)c->B * c->Nq * c->H * c->dh;
    for (size_t i = 0; i < n; i++) s += (double)c->w[i] * c->out[i];
    return s;
}

static void fd_checks(int B, int Nq, int Nk, int H, int dh) {
    const size_t nq = (size_t)B * Nq * H * dh, nk = (size_t)B * Nk * H * dh;
    fd_ctx c = {tu_zeros(nq), tu_zeros(nk), tu_zeros(nk), tu_zeros(nq), tu_zeros(nq), B, Nq, Nk, H, dh};
    tu_fill_uniform(c.q, nq, 11, 1.5f);
    tu_fill_uniform(c.k, nk, 12, 1.5f);
    tu_fill_uniform(c.v, nk, 13, 1.0f);
    tu_fill_uniform(c.w, nq, 14, 1.0f);
    float *dq = tu_zeros(nq), *dk = tu_zeros(nk), *dv = tu_zeros(nk);
    tu_check(fsd_attention_backward(dq, dk, dv, c.w, NULL, c.q, c.k, c.v, B, Nq, Nk, H, dh, &ws) == FSD_OK,
             "fd: backward B=%d Nq=%d Nk=%d H=%d dh=%d", B, Nq, Nk, H, dh);
    char what[128];
    snprintf(what, sizeof what, "fd Nq=%d Nk=%d dq", Nq, Nk);
    tu_fd_check(what, fd_loss, &c, c.q, dq, nq, (int)nq, 1e-2, 2e-4, 2e-3);
    snprintf(what, sizeof what, "fd Nq=%d Nk=%d dk", Nq, Nk);
    tu_fd_check(what, fd_loss, &c, c.k, dk, nk, (int)nk, 1e-2, 2e-4, 2e-3);
    snprintf(what, sizeof what, "fd Nq=%d Nk=%d dv", Nq, Nk);
    tu_fd_check(what, fd_loss, &c, c.v, dv, nk, (int)nk, 1e-2, 2e-4, 2e-3);
    fsd_free(c.q);
    fsd_free(c.k);
    fsd_free(c.v);
    fsd_free(c.out);
    fsd_free(c.w);
    fsd_free(dq);
    fsd_free(dk);
    fsd_free(dv);
}

static void error_checks(void) {
    float x[64] = {0};
    fsd_clear_error();
    tu_check(fsd_attention_forward(x, NULL, x, x, x, 1, 0, 1, 1, 4, &ws) == FSD_ERR_INVALID &&
                 strstr(fsd_error_message(), "bad shape"),
             "Nq = 0 rejected: %s", fsd_error_message());
    tu_check(fsd_attention_backward(x, x, x, x, NULL, x, x, x, 1, 2, 2, 1, -3, &ws) == FSD_ERR_INVALID,
             "dh < 0 rejected");
    tu_check(fsd_attention_forward(x, NULL, x, NULL, x, 1, 2, 2, 1, 4, &ws) == FSD_ERR_INVALID, "NULL k rejected");
    /* arena too small: clean NOMEM, arena untouched */
    fsd_arena tiny;
    fsd_arena_init(&tiny, 64);
    size_t big = 4096;
    float *q = tu_zeros(big * 8), *o = tu_zeros(big * 8);
    tu_check(fsd_attention_forward(o, NULL, q, q, q, 1, (int)big, (int)big, 1, 8, &tiny) == FSD_ERR_NOMEM &&
                 tiny.used == 0,
             "small arena -> NOMEM, arena unchanged: %s", fsd_error_message());
    tu_check(fsd_attention_backward(o, o, o, q, NULL, q, q, q, 1, (int)big, (int)big, 1, 8, &tiny) == FSD_ERR_NOMEM &&
                 tiny.used == 0,
             "small arena (backward) -> NOMEM, arena unchanged");
    fsd_free(q);
    fsd_free(o);
    fsd_arena_free(&tiny);
}

int main(void) {
    if (fsd_arena_init(&ws, (size_t)64 << 20) != FSD_OK) return 1;
    char **cases;
    int n = tu_list_cases("attention", &cases);
    tu_check(n >= 8, "found %d attention reference cases in %s/attention", n, tu_ref_dir());
    for (int i = 0; i < n; i++) run_case(cases[i]);
    tu_free_list(cases, n);
    fd_checks(1, 5, 4, 2, 3);  /* few keys (direct path), Nq != Nk */
    fd_checks(2, 3, 1, 1, 4);  /* one context token: dq = dk = 0 exactly */
    fd_checks(1, 6, 20, 2, 3); /* Nk > 16: GEMM path */
    error_checks();
    fsd_arena_free(&ws);
    return tu_summary();
}
