/* Adam / AdamW against torch.optim.Adam / AdamW (tests/ref/ref_optim.py, float64): 5 steps from the
 * same initial parameters with the same random gradients (some exactly zero, scales 1e2 .. 1e-2).
 * Tolerances: parameters after every step rel_err <= 1e-5 (testutil.h definition); the update of
 * every step (p_t - p_{t-1}, ~lr in size) rel_err <= 2e-3 (float32 rounding of p ~ 1e-7 absolute is
 * the floor here); m and v after step 5 rel_err <= 1e-5. */
#include "fsdiff/ops_linear.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void run_case(const char *path) {
    fsd_safetensors st;
    if (fsd_st_open(&st, path) != FSD_OK) {
        tu_check(0, "open %s: %s", path, fsd_error_message());
        return;
    }
    const char *name = strrchr(path, '/') + 1;
    const char *op = tu_meta_str(&st, "op", "?");
    fsd_adam_config cfg = {(float)tu_meta_double(&st, "lr", 0), (float)tu_meta_double(&st, "beta1", 0),
                           (float)tu_meta_double(&st, "beta2", 0), (float)tu_meta_double(&st, "eps", 0),
                           (float)tu_meta_double(&st, "weight_decay", 0), !strcmp(op, "adamw")};
    int steps = tu_meta_int(&st, "steps", 0);
    size_t n = 0;
    float *p = tu_get(&st, "p0", &n);
    if (!p) goto done;
    float *m = tu_zeros(n), *v = tu_zeros(n), *prev = tu_zeros(n), *dref = tu_zeros(n), *dgot = tu_zeros(n);
    float *pref_prev = tu_get(&st, "p0", NULL);
    for (int t = 1; t <= steps; t++) {
        char key[16], what[256];
        snprintf(key, sizeof key, "g%d", t);
        float *g = tu_get(&st, key, NULL);
        snprintf(key, sizeof key, "p%d", t);
        float *pref = tu_get(&st, key, NULL);
        if (!g || !pref) {
            fsd_free(g), fsd_free(pref);
            break;
        }
        memcpy(prev, p, n * sizeof(float));
        fsd_adam_step(p, g, m, v, n, &cfg, t);
        snprintf(what, sizeof what, "%s %s step %d: params", name, op, t);
        tu_check_close(what, p, pref, n, 1e-5);
        for (size_t i = 0; i < n; i++) {
            dgot[i] = p[i] - prev[i];
            dref[i] = pref[i] - pref_prev[i];
        }
        snprintf(what, sizeof what, "%s %s step %d: update p_t - p_t-1", name, op, t);
        tu_check_close(what, dgot, dref, n, 2e-3);
        fsd_free(g), fsd_free(pref_prev);
        pref_prev = pref;
    }
    fsd_free(pref_prev);
    float *mref = tu_get(&st, "m5", NULL), *vref = tu_get(&st, "v5", NULL);
    if (mref && vref && steps == 5) {
        char what[256];
        snprintf(what, sizeof what, "%s: exp_avg after 5 steps", name);
        tu_check_close(what, m, mref, n, 1e-5);
        snprintf(what, sizeof what, "%s: exp_avg_sq after 5 steps", name);
        tu_check_close(what, v, vref, n, 1e-5);
    }
    fsd_free(mref), fsd_free(vref), fsd_free(m), fsd_free(v), fsd_free(prev), fsd_free(dref), fsd_free(dgot);
done:
    fsd_free(p);
    fsd_st_close(&st);
}

/* The parallel path (large n) gives the same numbers as small serial chunks, for any thread count. */
static void parallel_consistency(void) {
    size_t n = 200003;
    float *p1 = tu_zeros(n), *p2 = tu_zeros(n), *g = tu_zeros(n), *m1 = tu_zeros(n), *m2 = tu_zeros(n);
    float *v1 = tu_zeros(n), *v2 = tu_zeros(n);
    tu_fill_uniform(p1, n, 1, 1.0f), tu_fill_uniform(g, n, 2, 1.0f);
    memcpy(p2, p1, n * 4);
    fsd_adam_config cfg = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 1};
    for (int t = 1; t <= 3; t++) {
        fsd_set_threads(t == 2 ? 1 : 2);
        fsd_adam_step(p1, g, m1, v1, n, &cfg, t);
        for (size_t i0 = 0; i0 < n; i0 += 777)
            fsd_adam_step(p2 + i0, g + i0, m2 + i0, v2 + i0, n - i0 < 777 ? n - i0 : 777, &cfg, t);
    }
    fsd_set_threads(2);
    tu_check(!memcmp(p1, p2, n * 4) && !memcmp(m1, m2, n * 4) && !memcmp(v1, v2, n * 4),
             "adamw: parallel and chunked serial steps are bit-identical");
    /* t < 1 is a no-op rather than a division by zero */
    memcpy(p2, p1, n * 4);
    fsd_adam_step(p1, g, m1, v1, n, &cfg, 0);
    tu_check(!memcmp(p1, p2, n * 4), "adam step t = 0 leaves parameters unchanged");
    fsd_free(p1), fsd_free(p2), fsd_free(g), fsd_free(m1), fsd_free(m2), fsd_free(v1), fsd_free(v2);
}

int main(void) {
    fsd_set_threads(2);
    char **paths = NULL;
    int n = tu_list_cases("linear/optim", &paths);
    tu_check(n >= 4, "found %d reference cases in %s/linear/optim", n, tu_ref_dir());
    for (int i = 0; i < n; i++) run_case(paths[i]);
    tu_free_list(paths, n);
    parallel_consistency();
    return tu_summary();
}
