/* Clarity encoder vs its PyTorch twin (tests/ref/clarity_twin.py, cases from tests/ref/ref_nn_clarity.py),
 * the context rule, the external context file, save/load, thread-count determinism.
 * Tolerances (rel_err = max-abs error / max-abs reference, testutil.h):
 *   context tokens, degradation predictions       <= 1e-4
 *   degradation loss                              <= 1e-5 relative
 *   every parameter gradient of L = sum(w * ctx) + lambda * MSE   <= 1e-3 (float32 vs float64 twin)
 *   1 vs 2 threads: ctx and gradients              <= 1e-6 (reported whether bit-identical)
 * Cases: "given" (default widths 32/64/96/128, 32x32, B=2, P=4, D=64, roles forced),
 *        "rule" (widths 16/32/32, 24x40 so the pooled windows overlap, roles from the rule).
 * FSD_CLARITY_BENCH=1 also times an inference forward at 128^2 and 640x480 (B=1, D=512). */
#include "fsdiff/clarity.h"
#include "fsdiff/ops.h"
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[256];

static int load_case(const char *name, fsd_clarity **e, fsd_safetensors *io) {
    fsd_clear_error(); /* the "(%s)" of passing checks would otherwise show an older message */
    char pp[512], ip[512];
    snprintf(pp, sizeof pp, "%s/clarity/%s/params.safetensors", tu_ref_dir(), name);
    snprintf(ip, sizeof ip, "%s/clarity/%s/io.safetensors", tu_ref_dir(), name);
    fsd_safetensors ps;
    if (!tu_check(fsd_st_open(&ps, pp) == FSD_OK, "%s: open params (%s)", name, fsd_error_message())) return 0;
    fsd_status s = fsd_clarity_open(e, &ps);
    fsd_st_close(&ps);
    if (!tu_check(s == FSD_OK, "%s: create + load twin parameters (%s)", name, fsd_error_message())) return 0;
    if (!tu_check(fsd_st_open(io, ip) == FSD_OK, "%s: open io (%s)", name, fsd_error_message())) {
        fsd_clarity_free(*e);
        return 0;
    }
    return 1;
}

/* worst per-parameter gradient error (max-abs err / max(max|ref|, 1e-4 * largest ref gradient)) */
static double grad_errors(const char *name, fsd_params *p, const fsd_safetensors *io, int *bad, const char **worst_name) {
    double gmax = 0, worst = 0;
    float **rg = calloc((size_t)p->n, sizeof(float *));
    for (int k = 0; k < p->n; k++) {
        char gn[160];
        snprintf(gn, sizeof gn, "grad.%s", p->t[k].name);
        rg[k] = tu_get(io, gn, NULL);
        for (size_t i = 0; rg[k] && i < p->t[k].numel; i++)
            if (fabsf(rg[k][i]) > gmax) gmax = fabsf(rg[k][i]);
    }
    *bad = 0;
    *worst_name = "";
    for (int k = 0; k < p->n; k++) {
        if (!rg[k]) { (*bad)++; continue; }
        double em = 0, rm = 0;
        const float *got = p->grad + p->t[k].offset;
        for (size_t i = 0; i < p->t[k].numel; i++) {
            double d = fabs((double)got[i] - rg[k][i]);
            if (!(d <= em)) em = d;
            if (fabs(rg[k][i]) > rm) rm = fabs(rg[k][i]);
        }
        double e = em / (rm > 1e-4 * gmax ? rm : 1e-4 * gmax);
        if (!(e <= worst)) worst = e, *worst_name = p->t[k].name;
        if (!(e <= 1e-3)) {
            printf("  %s grad %s: rel_err %.3g\n", name, p->t[k].name, e);
            (*bad)++;
        }
        fsd_free(rg[k]);
    }
    free(rg);
    return worst;
}

static void parity_case(const char *name) {
    fsd_clarity *e = NULL;
    fsd_safetensors io;
    if (!load_case(name, &e, &io)) return;
    char what[256];
    int64_t xs[4];
    tu_shape(&io, "src0", xs);
    int B = (int)xs[0], H = (int)xs[2], W = (int)xs[3];
    size_t nctx, nri;
    float *src0 = tu_get(&io, "src0", NULL), *src1 = tu_get(&io, "src1", NULL), *target = tu_get(&io, "target", NULL);
    float *w = tu_get(&io, "w", &nctx), *rctx = tu_get(&io, "ctx", NULL), *rdeg = tu_get(&io, "deg", NULL);
    float *rroles = tu_get(&io, "roles", NULL), *rloss = tu_get(&io, "loss", NULL);
    float *rin = tu_get_opt(&io, "roles_in", &nri), *rctx_mean = tu_get_opt(&io, "ctx_mean", NULL);
    float *ctx = tu_zeros(nctx), *deg = tu_zeros((size_t)B * 6);
    int *roles = calloc((size_t)2 * B, sizeof(int)), *roles_in = NULL;
    if (rin) {
        roles_in = calloc((size_t)2 * B, sizeof(int));
        for (int i = 0; i < 2 * B; i++) roles_in[i] = (int)rin[i];
    }
    const fsd_clarity_config *cf = fsd_clarity_cfg(e);
    tu_check((int)(nctx / ((size_t)B * cf->context_dim)) == fsd_clarity_tokens(cf->pool * cf->pool),
             "%s: T = 2 (1 + P) = %d tokens", name, fsd_clarity_tokens(cf->pool * cf->pool));
    if (src0 && src1 && target && w && rctx && rdeg && rroles && rloss) {
        double loss = 0;
        fsd_clarity_zero_grad(e);
        double t0 = fsd_time_seconds();
        tu_check(fsd_clarity_forward(e, src0, src1, B, H, W, FSD_CONTEXT_CLARITY, roles_in, target, ctx, deg, roles,
                                     &loss, 1) == FSD_OK,
                 "%s: forward (%s)", name, fsd_error_message());
        double t1 = fsd_time_seconds();
        snprintf(what, sizeof what, "%s: context tokens", name);
        tu_check_close(what, ctx, rctx, nctx, 1e-4);
        snprintf(what, sizeof what, "%s: degradation predictions", name);
        tu_check_close(what, deg, rdeg, (size_t)B * 6, 1e-4);
        int same = 1;
        for (int i = 0; i < 2 * B; i++) same &= roles[i] == (int)rroles[i];
        tu_check(same, "%s: roles %s (%d %d | %d %d) equal the twin's", name, rin ? "forced" : "from the rule", roles[0],
                 roles[1], roles[2], roles[3]);
        tu_check(fabs(loss - rloss[0]) <= 1e-5 * fabs(rloss[0]), "%s: degradation loss %.8f vs twin %.8f", name, loss,
                 (double)rloss[0]);
        double t2 = fsd_time_seconds();
        tu_check(fsd_clarity_backward(e, w, 1.0f) == FSD_OK, "%s: backward (%s)", name, fsd_error_message());
        double t3 = fsd_time_seconds();
        int bad;
        const char *wn;
        fsd_params *p = fsd_clarity_params(e);
        double worst = grad_errors(name, p, &io, &bad, &wn);
        tu_check(bad == 0, "%s: all %d parameter gradients <= 1e-3 (worst %.2e at %s)", name, p->n, worst, wn);
        size_t np = 0;
        for (int k = 0; k < p->n; k++) np += p->t[k].numel;
        printf("  %s: %zu params, fwd %.4fs bwd %.4fs\n", name, np, t1 - t0, t3 - t2);

        if (rctx_mean) { /* ablation mode: both neutral */
            tu_check(fsd_clarity_forward(e, src0, src1, B, H, W, FSD_CONTEXT_MEAN, NULL, NULL, ctx, NULL, roles, NULL,
                                         0) == FSD_OK,
                     "%s: mean-mode forward", name);
            int neutral = 1;
            for (int i = 0; i < 2 * B; i++) neutral &= roles[i] == FSD_ROLE_NEUTRAL;
            tu_check(neutral, "%s: mean mode gives neutral roles", name);
            snprintf(what, sizeof what, "%s: mean-mode context tokens", name);
            tu_check_close(what, ctx, rctx_mean, nctx, 1e-4);
        }
    }
    fsd_free(src0), fsd_free(src1), fsd_free(target), fsd_free(w), fsd_free(rctx), fsd_free(rdeg), fsd_free(rroles);
    fsd_free(rloss), fsd_free(rin), fsd_free(rctx_mean), fsd_free(ctx), fsd_free(deg);
    free(roles), free(roles_in);
    fsd_st_close(&io);
    fsd_clarity_free(e);
}

/* ---------------------------------------------------------------- the rule on crafted predictions */
static void rule_tests(void) {
    fsd_clarity_config c;
    fsd_clarity_config_default(&c, 64); /* score = log2 s + 0.5 blur, blurred iff > 1.5 */
    /* per sample: source 0 (IR), source 1 (VI): (log2 scale, blur, noise) */
    const float deg[4 * 6] = {
        1.0f, 0.0f, 5.0f, 1.0f, 0.5f, 0.0f, /* both clear (1.0, 1.25) */
        2.0f, 1.0f, 0.0f, 1.0f, 0.0f, 9.0f, /* IR blurred (2.5), VI clear (1.0) */
        1.0f, 0.8f, 0.0f, 1.0f, 1.2f, 0.0f, /* IR clear (1.4), VI blurred by blur alone (1.6) */
        3.0f, 0.0f, 0.0f, 2.0f, 0.0f, 0.0f, /* both blurred */
    };
    const int want_clarity[8] = {0, 0, FSD_ROLE_LEAD, FSD_ROLE_FOLLOW, FSD_ROLE_FOLLOW, FSD_ROLE_LEAD, 0, 0};
    int roles[8];
    fsd_clarity_decide(&c, FSD_CONTEXT_CLARITY, deg, 4, roles);
    tu_check(!memcmp(roles, want_clarity, sizeof roles),
             "clarity rule: both clear -> neutral, IR blurred -> IR leads, VI blurred -> VI leads, both blurred -> "
             "neutral (got %d%d %d%d %d%d %d%d)",
             roles[0], roles[1], roles[2], roles[3], roles[4], roles[5], roles[6], roles[7]);
    fsd_clarity_decide(&c, FSD_CONTEXT_MEAN, deg, 4, roles);
    int all0 = 1;
    for (int i = 0; i < 8; i++) all0 &= roles[i] == FSD_ROLE_NEUTRAL;
    tu_check(all0, "mean mode: neutral for all four situations");
    float sc = fsd_clarity_score(&c, deg + 6);
    tu_check(fabsf(sc - 2.5f) < 1e-6f, "score = log2 scale + 0.5 blur (%.3f)", sc);
    fsd_context_mode m;
    tu_check(fsd_context_mode_parse("clarity", &m) == FSD_OK && m == FSD_CONTEXT_CLARITY &&
                 fsd_context_mode_parse("mean", &m) == FSD_OK && m == FSD_CONTEXT_MEAN,
             "context mode names");
    tu_check(fsd_context_mode_parse("max", &m) == FSD_ERR_INVALID && strstr(fsd_error_message(), "max"),
             "unknown context mode rejected: %s", fsd_error_message());
    float n3[3], p3[3] = {3.0f, 4.0f, 25.0f}, q3[3];
    fsd_clarity_normalise(n3, p3);
    fsd_clarity_denormalise(q3, n3);
    tu_check(fabsf(n3[0] - 1) < 1e-6f && fabsf(n3[1] - 1) < 1e-6f && fabsf(n3[2] - 1) < 1e-6f &&
                 fabsf(q3[2] - 25.0f) < 1e-5f,
             "normalisation maps the nominal range ends to 1 and back");
    /* net config compatibility */
    fsd_net_config nc;
    fsd_net_config_preset(&nc, "tiny");
    nc.context_tokens = 10;
    tu_check(fsd_clarity_check_net(&c, &nc) == FSD_OK, "T = 10 and D = 64 match the tiny net with context_tokens 10");
    nc.context_tokens = 2;
    tu_check(fsd_clarity_check_net(&c, &nc) == FSD_ERR_INVALID && strstr(fsd_error_message(), "context_tokens"),
             "mismatch rejected: %s", fsd_error_message());
    fsd_clarity_config bad = c;
    bad.widths[1] = 60;
    tu_check(fsd_clarity_config_validate(&bad) == FSD_ERR_INVALID && strstr(fsd_error_message(), "widths[1]"),
             "bad width rejected: %s", fsd_error_message());
    char *j = fsd_clarity_config_to_json(&c);
    fsd_clarity_config d;
    tu_check(j && fsd_clarity_config_from_json(&d, j, strlen(j), "j") == FSD_OK && !memcmp(&c, &d, sizeof c),
             "config JSON round trip: %s", j ? j : "");
    fsd_free(j);
    tu_check(fsd_clarity_config_from_json(&d, "{\"colour\": 1}", 13, "j") != FSD_OK &&
                 strstr(fsd_error_message(), "colour"),
             "unknown config key rejected: %s", fsd_error_message());
}

/* ---------------------------------------------------------------- context file */
static void write_ctx(const char *path, const char *name, int ndim, int64_t n, int64_t d, int nan_at) {
    int64_t sh[3] = {1, n, d}, sh2[2] = {n, d};
    float *v = tu_zeros((size_t)(n * d));
    tu_fill_uniform(v, (size_t)(n * d), 3, 1.0f);
    if (nan_at >= 0) v[nan_at] = NAN;
    fsd_st_writer w;
    fsd_st_writer_init(&w);
    fsd_st_writer_add(&w, name, FSD_F32, ndim, ndim == 3 ? sh : sh2, v);
    fsd_st_writer_save(&w, path);
    fsd_st_writer_free(&w);
    fsd_free(v);
}

static void context_file_tests(void) {
    char p[300];
    snprintf(p, sizeof p, "%s/clarity_ctx_%d.safetensors", tmpdir, (int)getpid());
    float *c = NULL;
    fsd_clear_error();
    write_ctx(p, "context", 2, 10, 64, -1);
    tu_check(fsd_context_file_load(p, 10, 64, &c) == FSD_OK && c, "context file (10, 64) loads (%s)", fsd_error_message());
    float ref[640];
    tu_fill_uniform(ref, 640, 3, 1.0f);
    tu_check(c && !memcmp(c, ref, sizeof ref), "context values exact");
    fsd_free(c), c = NULL;
    write_ctx(p, "context", 3, 10, 64, -1);
    tu_check(fsd_context_file_load(p, 10, 64, &c) == FSD_OK && c, "context file (1, 10, 64) loads");
    fsd_free(c), c = NULL;
    struct { const char *name; int ndim; int64_t n, d; int nan_at; const char *want; } bad[] = {
        {"context", 2, 10, 32, -1, "context_dim is 64"},
        {"context", 2, 4, 64, -1, "context_tokens is 10"},
        {"context", 2, 10, 64, 77, "NaN"},
        {"ctx", 2, 10, 64, -1, "no tensor 'context'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_ctx(p, bad[i].name, bad[i].ndim, bad[i].n, bad[i].d, bad[i].nan_at);
        fsd_status s = fsd_context_file_load(p, 10, 64, &c);
        tu_check(s != FSD_OK && !c && strstr(fsd_error_message(), bad[i].want) && !strchr(fsd_error_message(), '\n'),
                 "context file rejected: %s", fsd_error_message());
    }
    {   /* (2, N, D): a batch of contexts is not accepted */
        int64_t sh[3] = {2, 10, 64};
        float *v = tu_zeros(1280);
        fsd_st_writer w;
        fsd_st_writer_init(&w);
        fsd_st_writer_add(&w, "context", FSD_F32, 3, sh, v);
        fsd_st_writer_save(&w, p);
        fsd_st_writer_free(&w);
        fsd_free(v);
        tu_check(fsd_context_file_load(p, 10, 64, &c) != FSD_OK && strstr(fsd_error_message(), "(1, N, D)"),
                 "context file rejected: %s", fsd_error_message());
    }
    tu_check(fsd_context_file_load("/nonexistent/ctx.safetensors", 10, 64, &c) == FSD_ERR_IO, "missing file: %s",
             fsd_error_message());
    remove(p);
}

/* ---------------------------------------------------------------- save / load, init */
static void store_tests(void) {
    fsd_clarity_config cf;
    fsd_clarity_config_default(&cf, 64);
    fsd_clarity *a = NULL, *b = NULL;
    if (!tu_check(fsd_clarity_create(&a, &cf) == FSD_OK && fsd_clarity_create(&b, &cf) == FSD_OK, "create")) return;
    fsd_params *pa = fsd_clarity_params(a), *pb = fsd_clarity_params(b);
    tu_check(fsd_clarity_init(a, 9) == FSD_OK && fsd_clarity_init(b, 9) == FSD_OK &&
                 !memcmp(pa->data, pb->data, pa->total * sizeof(float)),
             "init is seed-deterministic");
    int prefixed = 1;
    for (int k = 0; k < pa->n; k++) prefixed &= !strncmp(pa->t[k].name, "clarity.", 8);
    size_t count = 0;
    for (int k = 0; k < pa->n; k++) count += pa->t[k].numel;
    tu_check(prefixed, "all %d tensor names start with 'clarity.'", pa->n);
    printf("  default encoder (D = 64): %zu parameters\n", count);
    char path[300];
    snprintf(path, sizeof path, "%s/clarity_model_%d.safetensors", tmpdir, (int)getpid());
    for (int mode = 0; mode < 4; mode++) {
        fsd_st_writer w;
        fsd_st_writer_init(&w);
        int64_t sh[1] = {4};
        float other[4] = {1, 2, 3, 4};
        fsd_st_writer_add(&w, "downs.0.bias", FSD_F32, 1, sh, other); /* a U-Net tensor in the same file */
        if (mode == 0) tu_check(fsd_clarity_add_to_writer(a, &w, FSD_F32) == FSD_OK, "add to writer");
        else {
            for (int k = 0; k < pa->n; k++) {
                const fsd_param *t = &pa->t[k];
                if (mode == 1 && !strcmp(t->name, "clarity.role_emb")) continue;
                int64_t s4[4] = {t->shape[0], t->shape[1], t->shape[2], t->shape[3]};
                if (mode == 2 && !strcmp(t->name, "clarity.deg.2.bias")) s4[0] = 4;
                fsd_st_writer_add(&w, t->name, FSD_F32, t->ndim, s4, pa->data + t->offset);
            }
            if (mode == 3) fsd_st_writer_meta(&w, FSD_CLARITY_META_KEY, "{\"pool\": 1, \"context_dim\": 64}");
        }
        fsd_st_writer_save(&w, path);
        fsd_st_writer_free(&w);
        fsd_safetensors st;
        if (!tu_check(fsd_st_open(&st, path) == FSD_OK, "open saved file")) continue;
        memset(pb->data, 0, pb->total * sizeof(float));
        fsd_clear_error();
        fsd_status s = fsd_clarity_load(b, &st);
        if (mode == 0) {
            tu_check(s == FSD_OK && !memcmp(pa->data, pb->data, pa->total * sizeof(float)),
                     "save/load round trip exact beside a U-Net tensor (%s)", fsd_error_message());
            fsd_clarity *o = NULL;
            tu_check(fsd_clarity_open(&o, &st) == FSD_OK && !memcmp(fsd_clarity_params(o)->data, pa->data, pa->total * 4),
                     "open from metadata");
            fsd_clarity_free(o);
        } else {
            static const char *want[] = {"", "missing tensor 'clarity.role_emb'", "clarity.deg.2.bias", "config differs"};
            tu_check(s != FSD_OK && strstr(fsd_error_message(), want[mode]), "load rejects: %s", fsd_error_message());
        }
        fsd_st_close(&st);
    }
    remove(path);
    fsd_clarity_free(a);
    fsd_clarity_free(b);
}

/* One model file with the U-Net and the clarity encoder: each loader takes its own tensors. */
static void combined_file_test(void) {
    fsd_net_config nc;
    fsd_net *net = NULL, *net2 = NULL;
    fsd_clarity *e = NULL, *e2 = NULL;
    fsd_clarity_config cf;
    if (fsd_net_config_preset(&nc, "tiny") != FSD_OK || fsd_net_create(&net, &nc) != FSD_OK ||
        fsd_net_create(&net2, &nc) != FSD_OK) {
        tu_check(0, "combined file: create tiny net (%s)", fsd_error_message());
        return;
    }
    fsd_clarity_config_default(&cf, nc.context_dim);
    fsd_net_init(net, 3);
    if (fsd_clarity_create(&e, &cf) != FSD_OK || fsd_clarity_create(&e2, &cf) != FSD_OK) {
        tu_check(0, "combined file: create encoder");
        return;
    }
    fsd_clarity_init(e, 4);
    char path[300];
    snprintf(path, sizeof path, "%s/combined_%d.safetensors", tmpdir, (int)getpid());
    fsd_params *pn = fsd_net_params(net);
    fsd_st_writer w;
    fsd_st_writer_init(&w);
    for (int k = 0; k < pn->n; k++)
        fsd_st_writer_add(&w, pn->t[k].name, FSD_F32, pn->t[k].ndim, pn->t[k].shape, pn->data + pn->t[k].offset);
    fsd_clarity_add_to_writer(e, &w, FSD_F32);
    fsd_status s = fsd_st_writer_save(&w, path);
    fsd_st_writer_free(&w);
    fsd_safetensors st;
    if (tu_check(s == FSD_OK && fsd_st_open(&st, path) == FSD_OK, "combined file written")) {
        s = fsd_net_load(net2, path);
        tu_check(s == FSD_OK && !memcmp(pn->data, fsd_net_params(net2)->data, pn->total * sizeof(float)),
                 "U-Net loads from a file that also holds the clarity encoder (%s)", s ? fsd_error_message() : "ok");
        s = fsd_clarity_load(e2, &st);
        tu_check(s == FSD_OK && !memcmp(fsd_clarity_params(e)->data, fsd_clarity_params(e2)->data,
                                        fsd_clarity_params(e)->total * sizeof(float)),
                 "clarity encoder loads from the same file");
        fsd_st_close(&st);
    }
    remove(path);
    fsd_net_free(net);
    fsd_net_free(net2);
    fsd_clarity_free(e);
    fsd_clarity_free(e2);
}

/* ---------------------------------------------------------------- threads, errors */
static void thread_tests(void) {
    fsd_clarity_config cf;
    fsd_clarity_config_default(&cf, 64);
    fsd_clarity *e = NULL;
    if (!tu_check(fsd_clarity_create(&e, &cf) == FSD_OK && fsd_clarity_init(e, 5) == FSD_OK, "create")) return;
    int B = 2, H = 48, W = 64, T = fsd_clarity_tokens(4), D = 64;
    size_t img = (size_t)B * 3 * H * W, nc = (size_t)B * T * D;
    float *s0 = tu_zeros(img), *s1 = tu_zeros(img), *w = tu_zeros(nc), *ctx[2], *grad[2];
    float target[12] = {1, 0, 0, 2, 1, 5, 0, 3, 20, 3, 0, 0};
    tu_fill_uniform(s0, img, 11, 1.0f);
    tu_fill_uniform(s1, img, 12, 1.0f);
    tu_fill_uniform(w, nc, 13, 1.0f);
    fsd_params *p = fsd_clarity_params(e);
    int prev = fsd_get_threads();
    for (int t = 0; t < 2; t++) {
        fsd_set_threads(t + 1);
        ctx[t] = tu_zeros(nc);
        grad[t] = tu_zeros(p->total);
        double loss;
        fsd_clarity_zero_grad(e);
        tu_check(fsd_clarity_forward(e, s0, s1, B, H, W, FSD_CONTEXT_CLARITY, NULL, target, ctx[t], NULL, NULL, &loss, 1) ==
                         FSD_OK &&
                     fsd_clarity_backward(e, w, 1.0f) == FSD_OK,
                 "%d thread(s): forward + backward", t + 1);
        memcpy(grad[t], p->grad, p->total * sizeof(float));
    }
    fsd_set_threads(prev);
    int bit = !memcmp(ctx[0], ctx[1], nc * 4) && !memcmp(grad[0], grad[1], p->total * 4);
    double ec = tu_rel_err(ctx[1], ctx[0], nc), eg = tu_rel_err(grad[1], grad[0], p->total);
    tu_check(ec <= 1e-6 && eg <= 1e-6, "1 vs 2 threads: ctx (%.1e) and gradients (%.1e) agree (%s)", ec, eg,
             bit ? "bit-identical" : "not bit-identical");
    /* errors */
    float c1[4];
    tu_check(fsd_clarity_forward(e, s0, s1, 1, 16, 16, FSD_CONTEXT_MEAN, NULL, NULL, c1, NULL, NULL, NULL, 0) ==
                     FSD_ERR_INVALID &&
                 strstr(fsd_error_message(), "token grid"),
             "too small input rejected: %s", fsd_error_message());
    fsd_clarity_forward(e, s0, s1, B, H, W, FSD_CONTEXT_MEAN, NULL, NULL, ctx[0], NULL, NULL, NULL, 1);
    tu_check(fsd_clarity_backward(e, w, 1.0f) == FSD_ERR_INVALID && strstr(fsd_error_message(), "target"),
             "loss gradient without target rejected: %s", fsd_error_message());
    fsd_clarity_forward(e, s0, s1, B, H, W, FSD_CONTEXT_MEAN, NULL, NULL, ctx[0], NULL, NULL, NULL, 0);
    tu_check(fsd_clarity_backward(e, w, 0.0f) == FSD_ERR_INVALID, "backward after an inference forward rejected");
    for (int t = 0; t < 2; t++) fsd_free(ctx[t]), fsd_free(grad[t]);
    fsd_free(s0), fsd_free(s1), fsd_free(w);
    fsd_clarity_free(e);
}

static void bench(void) {
    fsd_clarity_config cf;
    fsd_clarity_config_default(&cf, 512);
    fsd_clarity *e = NULL;
    if (fsd_clarity_create(&e, &cf) || fsd_clarity_init(e, 1)) return;
    size_t np = 0;
    for (int k = 0; k < fsd_clarity_params(e)->n; k++) np += fsd_clarity_params(e)->t[k].numel;
    int sizes[2][2] = {{128, 128}, {480, 640}};
    for (int i = 0; i < 2; i++) {
        int H = sizes[i][0], W = sizes[i][1];
        size_t img = (size_t)3 * H * W;
        float *s0 = tu_zeros(img), *s1 = tu_zeros(img), ctx[10 * 512];
        tu_fill_uniform(s0, img, 1, 1.0f);
        tu_fill_uniform(s1, img, 2, 1.0f);
        double best = 1e9;
        for (int r = 0; r < 5; r++) {
            double t0 = fsd_time_seconds();
            fsd_clarity_forward(e, s0, s1, 1, H, W, FSD_CONTEXT_CLARITY, NULL, NULL, ctx, NULL, NULL, NULL, 0);
            double t = fsd_time_seconds() - t0;
            if (t < best) best = t;
        }
        printf("  bench: D = 512, %zu params, %dx%d B=1 both sources, %d threads: forward %.1f ms (best of 5)\n", np, W,
               H, fsd_get_threads(), best * 1e3);
        fsd_free(s0), fsd_free(s1);
    }
    fsd_clarity_free(e);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "%s", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    rule_tests();
    context_file_tests();
    store_tests();
    combined_file_test();
    parity_case("given");
    parity_case("rule");
    thread_tests();
    if (getenv("FSD_CLARITY_BENCH")) bench();
    return tu_summary();
}
