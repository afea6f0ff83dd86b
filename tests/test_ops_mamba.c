/* Depthwise causal conv1d and the selective scan vs the PyTorch twins (tests/ref/ref_mamba.py),
 * finite differences, checkpoint/chunk invariance, accumulation, and argument/arena errors.
 * Tolerances (rel_err = max-abs error / max-abs reference, see testutil.h):
 *   conv1d y, dx, dw, dbias             <= 1e-5
 *   scan y                              <= 1e-4
 *   scan du, ddelta, dA_log, dB, dC, dD, dz <= 1e-3 (float32 recurrences vs a float64 loop)
 *   finite differences  |fd - analytic| <= 1e-4 + 1e-3 * max|analytic| (h = 1e-2 / 5e-3, float forward)
 * Every scan case runs with several chunk sizes (16 from the case, 1, 7, and the default 64 > L),
 * so chunk boundaries, a partial last chunk and the single-chunk path are all exercised, in both
 * directions, with and without the z gate.
 */
#include "fsdiff/ops_mamba.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static fsd_arena ws;

static const char *base(const char *p) { return strrchr(p, '/') ? strrchr(p, '/') + 1 : p; }

/* ---------------------------------------------------------------- conv1d vs twin */
static void conv_case(fsd_safetensors *st, const char *name) {
    const int B = tu_meta_int(st, "B", 0), D = tu_meta_int(st, "D", 0), L = tu_meta_int(st, "L", 0);
    const int K = tu_meta_int(st, "K", 0), rev = tu_meta_int(st, "reverse", 0);
    size_t nx, nw;
    float *x = tu_get(st, "x", &nx), *w = tu_get(st, "w", &nw), *bias = tu_get_opt(st, "bias", NULL);
    float *y = tu_get(st, "y", NULL), *dy = tu_get(st, "dy", NULL);
    float *rdx = tu_get(st, "dx", NULL), *rdw = tu_get(st, "dw", NULL), *rdb = tu_get_opt(st, "dbias", NULL);
    char what[256];
    if (x && w && y && dy && rdx && rdw &&
        tu_check(nx == (size_t)B * D * L && nw == (size_t)D * K, "%s: shapes match metadata", name)) {
        float *out = tu_zeros(nx), *dx = tu_zeros(nx), *dw = tu_zeros(nw), *db = tu_zeros(D);
        tu_check(fsd_conv1d_causal_forward(out, x, w, bias, B, D, L, K, rev) == FSD_OK, "%s: forward", name);
        snprintf(what, sizeof what, "%s: y", name);
        tu_check_close(what, out, y, nx, 1e-5);
        tu_check(fsd_conv1d_causal_backward(dx, dw, bias ? db : NULL, dy, x, w, B, D, L, K, rev) == FSD_OK,
                 "%s: backward", name);
        snprintf(what, sizeof what, "%s: dx", name);
        tu_check_close(what, dx, rdx, nx, 1e-5);
        snprintf(what, sizeof what, "%s: dw", name);
        tu_check_close(what, dw, rdw, nw, 1e-5);
        if (bias && rdb) {
            snprintf(what, sizeof what, "%s: dbias", name);
            tu_check_close(what, db, rdb, D, 1e-5);
        }
        fsd_free(out);
        fsd_free(dx);
        fsd_free(dw);
        fsd_free(db);
    }
    fsd_free(x);
    fsd_free(w);
    fsd_free(bias);
    fsd_free(y);
    fsd_free(dy);
    fsd_free(rdx);
    fsd_free(rdw);
    fsd_free(rdb);
}

/* ---------------------------------------------------------------- selective scan vs twin */
enum { G_U, G_DELTA, G_ALOG, G_B, G_C, G_D, G_Z, NG };
static const char *gname[NG] = {"du", "ddelta", "dA_log", "dBm", "dCm", "dD", "dz"};

static void scan_case(fsd_safetensors *st, const char *name) {
    const int B = tu_meta_int(st, "B", 0), E = tu_meta_int(st, "E", 0), N = tu_meta_int(st, "N", 0);
    const int L = tu_meta_int(st, "L", 0), rev = tu_meta_int(st, "reverse", 0);
    const int case_chunk = tu_meta_int(st, "chunk", 16);
    size_t nu, na, nb;
    float *u = tu_get(st, "u", &nu), *delta = tu_get(st, "delta", NULL), *A_log = tu_get(st, "A_log", &na);
    float *Bm = tu_get(st, "Bm", &nb), *Cm = tu_get(st, "Cm", NULL), *D = tu_get(st, "D", NULL);
    float *z = tu_get_opt(st, "z", NULL), *y = tu_get(st, "y", NULL), *dy = tu_get(st, "dy", NULL);
    float *ref[NG];
    for (int g = 0; g < NG; g++) ref[g] = (g == G_Z && !z) ? NULL : tu_get(st, gname[g], NULL);
    const size_t gn[NG] = {nu, nu, na, nb, nb, (size_t)E, nu};
    char what[256];
    int ok = u && delta && A_log && Bm && Cm && D && y && dy;
    for (int g = 0; g < NG; g++) ok = ok && (ref[g] || (g == G_Z && !z));
    if (!ok || !tu_check(nu == (size_t)B * E * L && na == (size_t)E * N && nb == (size_t)B * N * L,
                         "%s: shapes match metadata", name))
        goto done;

    float *out = tu_zeros(nu), *grad[NG], *want = tu_zeros(nu > nb ? nu : nb);
    for (int g = 0; g < NG; g++) grad[g] = tu_zeros(gn[g]);
    const int chunks[] = {case_chunk, 1, 7, 0};
    for (int ci = 0; ci < 4; ci++) {
        const int chunk = chunks[ci];
        const size_t nck = fsd_selective_scan_ckpt_floats(B, E, N, L, chunk);
        const int ceff = chunk > 0 ? chunk : FSD_SCAN_CHUNK;
        tu_check(nck == (size_t)B * E * ((L + ceff - 1) / ceff) * N, "%s chunk %d: checkpoint size %zu", name, chunk, nck);
        float *hck = tu_zeros(nck);
        memset(out, 0, nu * sizeof(float));
        size_t mark = fsd_arena_mark(&ws);
        ws.peak = ws.used;
        tu_check(fsd_selective_scan_forward(out, hck, u, delta, A_log, Bm, Cm, D, z, B, E, N, L, chunk, rev, &ws) == FSD_OK,
                 "%s chunk %d: forward %s", name, chunk, fsd_error_message());
        tu_check(ws.used == mark && ws.peak - mark <= fsd_selective_scan_ws_bytes(0, 1, B, E, N, L, chunk),
                 "%s chunk %d: forward resets the arena, scratch %zu within ws_bytes", name, chunk, ws.peak - mark);
        snprintf(what, sizeof what, "%s chunk %d: y", name, chunk);
        tu_check_close(what, out, y, nu, 1e-4);

        /* chunk 7: accumulate on top of the reference gradients, expect 2x */
        const int accum = chunk == 7;
        for (int g = 0; g < NG; g++)
            if (grad[g]) {
                if (accum && ref[g]) memcpy(grad[g], ref[g], gn[g] * sizeof(float));
                else memset(grad[g], 0, gn[g] * sizeof(float));
            }
        ws.peak = ws.used;
        tu_check(fsd_selective_scan_backward(grad[G_U], grad[G_DELTA], grad[G_ALOG], grad[G_B], grad[G_C], grad[G_D],
                                             z ? grad[G_Z] : NULL, dy, hck, u, delta, A_log, Bm, Cm, D, z, B, E, N, L,
                                             chunk, rev, &ws) == FSD_OK,
                 "%s chunk %d: backward %s", name, chunk, fsd_error_message());
        tu_check(ws.used == mark && ws.peak - mark <= fsd_selective_scan_ws_bytes(1, 1, B, E, N, L, chunk),
                 "%s chunk %d: backward resets the arena, scratch %zu within ws_bytes", name, chunk, ws.peak - mark);
        for (int g = 0; g < NG; g++) {
            if (!ref[g]) continue;
            const float *r = ref[g];
            if (accum) {
                for (size_t i = 0; i < gn[g]; i++) want[i] = 2.0f * ref[g][i];
                r = want;
            }
            snprintf(what, sizeof what, "%s chunk %d: %s%s", name, chunk, gname[g], accum ? " (accumulated x2)" : "");
            tu_check_close(what, grad[g], r, gn[g], 1e-3);
        }

        if (ci == 0) {
            /* no checkpoints: the forward saves nothing, the backward rebuilds them; only some grads */
            memset(out, 0, nu * sizeof(float));
            tu_check(fsd_selective_scan_forward(out, NULL, u, delta, A_log, Bm, Cm, D, z, B, E, N, L, chunk, rev, &ws) == FSD_OK,
                     "%s: forward without checkpoints", name);
            snprintf(what, sizeof what, "%s: y (no checkpoints)", name);
            tu_check_close(what, out, y, nu, 1e-4);
            memset(grad[G_DELTA], 0, nu * sizeof(float));
            memset(grad[G_C], 0, nb * sizeof(float));
            ws.peak = ws.used;
            tu_check(fsd_selective_scan_backward(NULL, grad[G_DELTA], NULL, NULL, grad[G_C], NULL, NULL, dy, NULL, u, delta,
                                                 A_log, Bm, Cm, D, z, B, E, N, L, chunk, rev, &ws) == FSD_OK,
                     "%s: backward rebuilding checkpoints (ddelta, dC only)", name);
            tu_check(ws.peak - mark <= fsd_selective_scan_ws_bytes(1, 0, B, E, N, L, chunk),
                     "%s: backward without checkpoints: scratch within ws_bytes", name);
            snprintf(what, sizeof what, "%s: ddelta (rebuilt checkpoints)", name);
            tu_check_close(what, grad[G_DELTA], ref[G_DELTA], nu, 1e-3);
            snprintf(what, sizeof what, "%s: dCm (rebuilt checkpoints)", name);
            tu_check_close(what, grad[G_C], ref[G_C], nb, 1e-3);
        }
        fsd_free(hck);
    }
    fsd_free(out);
    fsd_free(want);
    for (int g = 0; g < NG; g++) fsd_free(grad[g]);
done:
    fsd_free(u);
    fsd_free(delta);
    fsd_free(A_log);
    fsd_free(Bm);
    fsd_free(Cm);
    fsd_free(D);
    fsd_free(z);
    fsd_free(y);
    fsd_free(dy);
    for (int g = 0; g < NG; g++) fsd_free(ref[g]);
}

/* ---------------------------------------------------------------- finite differences */
typedef struct {
    float *x, *w, *bias, *out, *wt; /* conv */
    int B, D, L, K, rev;
} conv_fd;

static double conv_loss(void *p) {
    conv_fd *c = p;
    fsd_conv1d_causal_forward(c->out, c->x, c->w, c->bias, c->B, c->D, c->L, c->K, c->rev);
    double s = 0;
    for (size_t i = 0; i < (size_t)c->B * c->D * c->L; i++) s += (double)c->wt[i] * c->out[i];
    return s;
}

static void conv_fd_check(int rev) {
    conv_fd c = {0};
    c.B = 2, c.D = 3, c.L = 6, c.K = 4, c.rev = rev;
    const size_t n = (size_t)c.B * c.D * c.L, nw = (size_t)c.D * c.K;
    c.x = tu_zeros(n), c.w = tu_zeros(nw), c.bias = tu_zeros(c.D), c.out = tu_zeros(n), c.wt = tu_zeros(n);
    tu_fill_uniform(c.x, n, 21, 1.0f);
    tu_fill_uniform(c.w, nw, 22, 1.0f);
    tu_fill_uniform(c.bias, c.D, 23, 1.0f);
    tu_fill_uniform(c.wt, n, 24, 1.0f);
    float *dx = tu_zeros(n), *dw = tu_zeros(nw), *db = tu_zeros(c.D);
    fsd_conv1d_causal_backward(dx, dw, db, c.wt, c.x, c.w, c.B, c.D, c.L, c.K, rev);
    char what[64];
    snprintf(what, sizeof what, "fd conv1d %s dx", rev ? "rev" : "fwd");
    tu_fd_check(what, conv_loss, &c, c.x, dx, n, (int)n, 1e-2, 1e-4, 1e-3);
    snprintf(what, sizeof what, "fd conv1d %s dw", rev ? "rev" : "fwd");
    tu_fd_check(what, conv_loss, &c, c.w, dw, nw, (int)nw, 1e-2, 1e-4, 1e-3);
    snprintf(what, sizeof what, "fd conv1d %s dbias", rev ? "rev" : "fwd");
    tu_fd_check(what, conv_loss, &c, c.bias, db, c.D, c.D, 1e-2, 1e-4, 1e-3);
    fsd_free(c.x), fsd_free(c.w), fsd_free(c.bias), fsd_free(c.out), fsd_free(c.wt);
    fsd_free(dx), fsd_free(dw), fsd_free(db);
}

typedef struct {
    float *in[NG]; /* u, delta, A_log, Bm, Cm, D, z */
    float *out, *wt;
    int B, E, N, L, chunk, rev;
} scan_fd;

static double scan_loss(void *p) {
    scan_fd *c = p;
    fsd_selective_scan_forward(c->out, NULL, c->in[G_U], c->in[G_DELTA], c->in[G_ALOG], c->in[G_B], c->in[G_C],
                               c->in[G_D], c->in[G_Z], c->B, c->E, c->N, c->L, c->chunk, c->rev, &ws);
    double s = 0;
    for (size_t i = 0; i < (size_t)c->B * c->E * c->L; i++) s += (double)c->wt[i] * c->out[i];
    return s;
}

static void scan_fd_check(int B, int E, int N, int L, int chunk, int rev) {
    scan_fd c = {0};
    c.B = B, c.E = E, c.N = N, c.L = L, c.chunk = chunk, c.rev = rev;
    const size_t nu = (size_t)B * E * L, nb = (size_t)B * N * L;
    const size_t gn[NG] = {nu, nu, (size_t)E * N, nb, nb, (size_t)E, nu};
    float *grad[NG];
    for (int g = 0; g < NG; g++) {
        c.in[g] = tu_zeros(gn[g]);
        grad[g] = tu_zeros(gn[g]);
        tu_fill_uniform(c.in[g], gn[g], 31 + g, 1.0f);
    }
    /* delta in [0.15, 0.85] so delta +- h stays positive like a softplus output; A_log in [-0.5, 0.5] */
    for (size_t i = 0; i < nu; i++) c.in[G_DELTA][i] = 0.5f + 0.35f * c.in[G_DELTA][i];
    for (size_t i = 0; i < gn[G_ALOG]; i++) c.in[G_ALOG][i] *= 0.5f;
    c.out = tu_zeros(nu);
    c.wt = tu_zeros(nu);
    tu_fill_uniform(c.wt, nu, 40, 1.0f);
    tu_check(fsd_selective_scan_backward(grad[G_U], grad[G_DELTA], grad[G_ALOG], grad[G_B], grad[G_C], grad[G_D],
                                         grad[G_Z], c.wt, NULL, c.in[G_U], c.in[G_DELTA], c.in[G_ALOG], c.in[G_B],
                                         c.in[G_C], c.in[G_D], c.in[G_Z], B, E, N, L, chunk, rev, &ws) == FSD_OK,
             "fd scan backward B=%d E=%d N=%d L=%d chunk=%d rev=%d", B, E, N, L, chunk, rev);
    for (int g = 0; g < NG; g++) {
        char what[96];
        snprintf(what, sizeof what, "fd scan N=%d L=%d chunk=%d %s %s", N, L, chunk, rev ? "rev" : "fwd", gname[g]);
        tu_fd_check(what, scan_loss, &c, c.in[g], grad[g], gn[g], (int)gn[g], g == G_DELTA ? 5e-3 : 1e-2, 1e-4, 1e-3);
    }
    for (int g = 0; g < NG; g++) fsd_free(c.in[g]), fsd_free(grad[g]);
    fsd_free(c.out), fsd_free(c.wt);
}

/* ---------------------------------------------------------------- long sequence, errors */
static void long_sequence_check(void) {
    /* L = 20000 (beyond the test twins): outputs stay finite, and chunk 64 and chunk 1000 agree */
    const int B = 1, E = 3, N = 16, L = 20000;
    const size_t nu = (size_t)B * E * L, nb = (size_t)B * N * L;
    float *u = tu_zeros(nu), *dl = tu_zeros(nu), *Al = tu_zeros((size_t)E * N), *Bm = tu_zeros(nb), *Cm = tu_zeros(nb);
    float *y1 = tu_zeros(nu), *y2 = tu_zeros(nu), *g1 = tu_zeros(nb), *g2 = tu_zeros(nb), *du1 = tu_zeros(nu), *du2 = tu_zeros(nu);
    tu_fill_uniform(u, nu, 51, 1.0f);
    tu_fill_uniform(dl, nu, 52, 1.0f);
    for (size_t i = 0; i < nu; i++) dl[i] = 0.051f + 0.05f * dl[i]; /* model init range 1e-3..0.1 */
    for (int e = 0; e < E; e++)
        for (int n = 0; n < N; n++) Al[e * N + n] = logf((float)(n + 1));
    tu_fill_uniform(Bm, nb, 53, 1.0f);
    tu_fill_uniform(Cm, nb, 54, 1.0f);
    fsd_selective_scan_forward(y1, NULL, u, dl, Al, Bm, Cm, NULL, NULL, B, E, N, L, 64, 1, &ws);
    fsd_selective_scan_forward(y2, NULL, u, dl, Al, Bm, Cm, NULL, NULL, B, E, N, L, 1000, 1, &ws);
    fsd_selective_scan_backward(du1, NULL, NULL, g1, NULL, NULL, NULL, u, NULL, u, dl, Al, Bm, Cm, NULL, NULL, B, E, N, L, 64, 1, &ws);
    fsd_selective_scan_backward(du2, NULL, NULL, g2, NULL, NULL, NULL, u, NULL, u, dl, Al, Bm, Cm, NULL, NULL, B, E, N, L, 1000, 1, &ws);
    int finite = 1;
    for (size_t i = 0; i < nu; i++) finite &= isfinite(y1[i]) && isfinite(du1[i]);
    for (size_t i = 0; i < nb; i++) finite &= isfinite(g1[i]);
    tu_check(finite, "L=%d reverse scan: y, du, dB finite", L);
    tu_check(tu_rel_err(y1, y2, nu) == 0.0, "L=%d: y independent of the chunk size (bitwise)", L);
    tu_check_close("L=20000: du chunk 64 vs 1000", du1, du2, nu, 1e-6);
    tu_check_close("L=20000: dB chunk 64 vs 1000", g1, g2, nb, 1e-6);
    fsd_free(u), fsd_free(dl), fsd_free(Al), fsd_free(Bm), fsd_free(Cm);
    fsd_free(y1), fsd_free(y2), fsd_free(g1), fsd_free(g2), fsd_free(du1), fsd_free(du2);
}

static void error_checks(void) {
    float x[256] = {0};
    fsd_clear_error();
    tu_check(fsd_conv1d_causal_forward(x, x, x, NULL, 1, 2, 3, 0, 0) == FSD_ERR_INVALID &&
                 strstr(fsd_error_message(), "bad shape"),
             "conv1d K = 0 rejected: %s", fsd_error_message());
    tu_check(fsd_conv1d_causal_backward(x, x, x, NULL, x, x, 1, 2, 3, 4, 0) == FSD_ERR_INVALID, "conv1d NULL dy rejected");
    tu_check(fsd_selective_scan_forward(x, NULL, x, x, x, x, x, NULL, NULL, 1, 2, 3, 0, 4, 0, &ws) == FSD_ERR_INVALID,
             "scan L = 0 rejected");
    tu_check(fsd_selective_scan_backward(x, x, x, x, x, x, NULL, x, NULL, x, x, x, x, x, NULL, NULL, 1, 2, -1, 4, 4, 0, &ws) ==
                 FSD_ERR_INVALID,
             "scan N < 0 rejected");
    tu_check(fsd_selective_scan_forward(x, NULL, x, x, x, x, x, NULL, NULL, 1, 2, 3, 4, 4, 0, NULL) == FSD_ERR_INVALID,
             "scan without arena rejected");
    fsd_arena tiny;
    fsd_arena_init(&tiny, 256);
    tu_check(fsd_selective_scan_forward(x, NULL, x, x, x, x, x, NULL, NULL, 1, 2, 3, 20, 4, 0, &tiny) == FSD_ERR_NOMEM &&
                 tiny.used == 0,
             "scan forward, small arena -> NOMEM, arena unchanged: %s", fsd_error_message());
    tu_check(fsd_selective_scan_backward(x, x, x, x, x, x, NULL, x, NULL, x, x, x, x, x, NULL, NULL, 1, 2, 3, 20, 4, 0,
                                         &tiny) == FSD_ERR_NOMEM && tiny.used == 0,
             "scan backward, small arena -> NOMEM, arena unchanged");
    fsd_arena_free(&tiny);
}

int main(void) {
    if (fsd_arena_init(&ws, (size_t)64 << 20) != FSD_OK) return 1;
    char **cases;
    int n = tu_list_cases("mamba", &cases), nconv = 0, nscan = 0;
    for (int i = 0; i < n; i++) {
        fsd_safetensors st;
        if (!tu_check(fsd_st_open(&st, cases[i]) == FSD_OK, "open %s: %s", cases[i], fsd_error_message())) continue;
        const char *op = tu_meta_str(&st, "op", "");
        if (!strcmp(op, "conv1d")) conv_case(&st, base(cases[i])), nconv++;
        else if (!strcmp(op, "selective_scan")) scan_case(&st, base(cases[i])), nscan++;
        else tu_check(0, "%s: unknown op '%s'", cases[i], op);
        fsd_st_close(&st);
    }
    tu_free_list(cases, n);
    tu_check(nconv >= 6 && nscan >= 8, "ran %d conv1d and %d selective-scan reference cases from %s/mamba", nconv, nscan,
             tu_ref_dir());
    conv_fd_check(0);
    conv_fd_check(1);
    scan_fd_check(1, 2, 16, 9, 4, 0); /* N = 16 (the specialised kernel), causal */
    scan_fd_check(1, 2, 3, 9, 4, 1);  /* generic N, reverse */
    long_sequence_check();
    error_checks();
    fsd_arena_free(&ws);
    return tu_summary();
}
