/* safetensors reader/writer against files written by PyTorch (tests/ref/ref_safetensors.py):
 * exact F32/F16/BF16 values, our f16/bf16 rounding vs torch's, a C-written file read back by an
 * independent Python reader, and every malformed file rejected with its own message. */
#include "fsdiff/json.h"
#include "fsdiff/safetensors.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int bits_equal(const float *a, const float *b, size_t n, size_t *where) {
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], 4) != 0) { *where = i; return 0; }
    return 1;
}

static void check_pytorch_files(void) {
    const char *dts[] = {"F32", "F16", "BF16"};
    for (int d = 0; d < 3; d++) {
        char p[2048], e[2048];
        snprintf(p, sizeof p, "%s/safetensors/good/model_%s.safetensors", tu_ref_dir(), dts[d]);
        snprintf(e, sizeof e, "%s/safetensors/good/expected_%s.safetensors", tu_ref_dir(), dts[d]);
        fsd_safetensors st, ex;
        fsd_clear_error();
        if (!tu_check(fsd_st_open(&st, p) == FSD_OK, "open PyTorch %s file %s", dts[d], fsd_error_message())) continue;
        if (!tu_check(fsd_st_open(&ex, e) == FSD_OK, "open expected values %s", dts[d])) { fsd_st_close(&st); continue; }
        int all = 1;
        for (int k = 0; k < ex.n_tensors; k++) {
            const fsd_st_tensor *want = &ex.tensors[k], *got = fsd_st_find(&st, want->name);
            if (!got || got->ndim != want->ndim || memcmp(got->shape, want->shape, sizeof(int64_t) * (size_t)got->ndim)) {
                all = tu_check(0, "%s: tensor %s present with the same shape", dts[d], want->name);
                continue;
            }
            size_t n = (size_t)fsd_st_numel(got), where = 0;
            float *a = tu_zeros(n), *b = tu_zeros(n);
            fsd_st_to_f32(got, a, n);
            fsd_st_to_f32(want, b, n);
            if (!bits_equal(a, b, n, &where))
                all = tu_check(0, "%s: %s[%zu] = %g, torch says %g", dts[d], want->name, where, a[where], b[where]);
            fsd_free(a);
            fsd_free(b);
        }
        tu_check(all && st.n_tensors == ex.n_tensors, "%s: all %d tensors bit-identical to torch's values", dts[d], ex.n_tensors);
        const char *fmt = fsd_st_meta_get(&st, "format");
        tu_check(fmt && !strcmp(fmt, "pt"), "%s: __metadata__ read", dts[d]);
        const fsd_st_tensor *sc = fsd_st_find(&st, "scalar");
        tu_check(sc && sc->ndim == 0 && fsd_st_numel(sc) == 1, "%s: 0-d tensor has one element", dts[d]);
        fsd_st_close(&st);
        fsd_st_close(&ex);
    }
}

static void check_conversions_and_writer(void) {
    char p[2048], out[2048];
    snprintf(p, sizeof p, "%s/safetensors/good/convert.safetensors", tu_ref_dir());
    fsd_safetensors st;
    if (!tu_check(fsd_st_open(&st, p) == FSD_OK, "open convert.safetensors")) return;
    size_t n;
    float *f32 = tu_get(&st, "f32", &n), *h = tu_get(&st, "as_f16", NULL), *bf = tu_get(&st, "as_bf16", NULL);
    float *mine_h = tu_zeros(n), *mine_b = tu_zeros(n);
    for (size_t i = 0; i < n; i++) {
        mine_h[i] = fsd_f16_to_f32(fsd_f32_to_f16(f32[i]));
        mine_b[i] = fsd_bf16_to_f32(fsd_f32_to_bf16(f32[i]));
    }
    size_t where = 0;
    int okh = bits_equal(mine_h, h, n, &where);
    tu_check(okh, "f32->f16->f32 matches torch .half() on %zu values incl. subnormals/overflow%s", n, okh ? "" : " (mismatch)");
    if (!okh) printf("      at %zu: x=%.9g ours=%.9g torch=%.9g\n", where, f32[where], mine_h[where], h[where]);
    int okb = bits_equal(mine_b, bf, n, &where);
    tu_check(okb, "f32->bf16->f32 matches torch .bfloat16() on %zu values", n);

    /* writer: write F32/F16/BF16 + metadata, read back with our reader and with Python's */
    snprintf(out, sizeof out, "%s/safetensors/written_by_c.safetensors", tu_ref_dir());
    fsd_st_writer w;
    fsd_st_writer_init(&w);
    int64_t shp[1] = {(int64_t)n}, shaped[3] = {2, 3, 1};
    fsd_st_writer_add(&w, "as_f32", FSD_F32, 1, shp, f32);
    fsd_st_writer_add(&w, "as_f16", FSD_F16, 1, shp, f32);
    fsd_st_writer_add(&w, "as_bf16", FSD_BF16, 1, shp, f32);
    fsd_st_writer_add(&w, "shaped", FSD_F32, 3, shaped, f32);
    fsd_st_writer_meta(&w, "fsdiff.test", "value with \"quotes\" and \\ backslash");
    tu_check(fsd_st_writer_add(&w, "as_f32", FSD_F32, 1, shp, f32) != FSD_OK, "writer refuses a duplicate name");
    tu_check(fsd_st_writer_save(&w, out) == FSD_OK, "writer saves %s", out);
    fsd_safetensors back;
    if (tu_check(fsd_st_open(&back, out) == FSD_OK, "C reader reopens the C-written file")) {
        float *g16 = tu_get(&back, "as_f16", NULL), *g32 = tu_get(&back, "as_f32", NULL);
        tu_check(g16 && bits_equal(g16, h, n, &where), "F16 round trip through the file");
        tu_check(g32 && bits_equal(g32, f32, n, &where), "F32 round trip through the file");
        fsd_free(g16);
        fsd_free(g32);
        fsd_st_close(&back);
    }
    const char *py = getenv("FSD_PYTHON"), *src = getenv("FSD_SOURCE_DIR");
    if (py && src) {
        char cmd[8192];
        snprintf(cmd, sizeof cmd, "'%s' '%s/tests/ref/check_st_written.py' '%s' '%s'", py, src, out, p);
        tu_check(system(cmd) == 0, "independent Python reader accepts the C-written file bit for bit");
    } else {
        tu_check(0, "FSD_PYTHON/FSD_SOURCE_DIR not set: cannot run the Python cross-check");
    }
    /* atomic write: a failing save leaves no file; an existing file is replaced whole */
    tu_check(fsd_st_writer_save(&w, "/nonexistent-dir/x.safetensors") == FSD_ERR_IO, "save into a missing directory fails with an i/o error");
    tu_check(access("/nonexistent-dir/x.safetensors", F_OK) != 0, "and leaves nothing behind");
    fsd_st_writer_free(&w);
    fsd_free(f32); fsd_free(h); fsd_free(bf); fsd_free(mine_h); fsd_free(mine_b);
    fsd_st_close(&st);
}

static void check_malformed(void) {
    char dir[2048], man[2100];
    snprintf(dir, sizeof dir, "%s/safetensors/malformed", tu_ref_dir());
    snprintf(man, sizeof man, "%s/malformed.json", dir);
    unsigned char *txt;
    size_t n;
    if (!tu_check(fsd_read_file(man, &txt, &n) == FSD_OK, "read malformed.json")) return;
    fsd_json j;
    if (!tu_check(fsd_json_parse((const char *)txt, n, man, &j) == FSD_OK, "parse malformed.json")) { fsd_free(txt); return; }
    int distinct = 0;
    char seen[64][256];
    for (int k = 0; k < j.n; k++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, j.keys[k]);
        fsd_safetensors st;
        fsd_status s = fsd_st_open(&st, p);
        const char *msg = fsd_error_message();
        int ok = s == FSD_ERR_FORMAT && strstr(msg, j.items[k].str) != NULL && strstr(msg, j.keys[k]) != NULL;
        tu_check(ok, "malformed %-28s rejected: %s", j.keys[k], s ? msg : "(accepted!)");
        if (s == FSD_OK) fsd_st_close(&st);
        int dup = 0;
        for (int q = 0; q < distinct; q++) dup |= !strcmp(seen[q], j.items[k].str);
        if (!dup && distinct < 64) snprintf(seen[distinct++], 256, "%s", j.items[k].str);
    }
    tu_check(j.n >= 10 && distinct >= 10, "%d malformed files, %d distinct messages (>= 10 each)", j.n, distinct);
    fsd_json_free(&j);
    fsd_free(txt);

    fsd_safetensors st;
    tu_check(fsd_st_open(&st, "/nonexistent/model.safetensors") == FSD_ERR_IO, "missing file: %s", fsd_error_message());
    /* NaN weights and wrong shapes are caught when a tensor is loaded */
    char p[2048];
    snprintf(p, sizeof p, "%s/safetensors/good/nan_weights.safetensors", tu_ref_dir());
    if (tu_check(fsd_st_open(&st, p) == FSD_OK, "open nan_weights (valid file)")) {
        float *x = NULL;
        fsd_status s = fsd_st_load_f32(&st, "w", -1, NULL, 1, &x, NULL);
        tu_check(s == FSD_ERR_FORMAT && strstr(fsd_error_message(), "NaN"), "NaN weight rejected: %s", fsd_error_message());
        int64_t want[2] = {3, 1};
        s = fsd_st_load_f32(&st, "w", 2, want, 0, &x, NULL);
        tu_check(s == FSD_ERR_FORMAT && strstr(fsd_error_message(), "has shape [3], expected [3, 1]"), "wrong shape rejected: %s", fsd_error_message());
        s = fsd_st_load_f32(&st, "nope", -1, NULL, 0, &x, NULL);
        tu_check(s == FSD_ERR_FORMAT && strstr(fsd_error_message(), "missing"), "missing tensor: %s", fsd_error_message());
        fsd_st_close(&st);
    }
    /* every prefix of a valid file is rejected cleanly (no crash, no acceptance of a cut file) */
    snprintf(p, sizeof p, "%s/safetensors/good/model_F16.safetensors", tu_ref_dir());
    unsigned char *buf;
    if (fsd_read_file(p, &buf, &n) == FSD_OK) {
        int accepted = 0;
        for (size_t L = 0; L < n; L++) {
            if (fsd_st_open_mem(&st, buf, L, "prefix") == FSD_OK) { accepted++; fsd_st_close(&st); }
        }
        tu_check(accepted == 0, "all %zu truncations of a valid file are rejected (%d accepted)", n, accepted);
        tu_check(fsd_st_open_mem(&st, buf, n, "whole") == FSD_OK, "the whole file is accepted from memory");
        fsd_st_close(&st);
        fsd_free(buf);
    }
}

static void check_json(void) {
    fsd_json j;
    const char *t = "{\"a\": [1, -2.5e3, true, null, \"x\\u00e9\\ud83d\\ude00\"], \"big\": 18446744073709551615, \"i\": 9007199254740993}";
    if (tu_check(fsd_json_parse(t, strlen(t), "t", &j) == FSD_OK, "JSON parse of a mixed document")) {
        const fsd_json *a = fsd_json_get(&j, "a"), *big = fsd_json_get(&j, "big"), *i = fsd_json_get(&j, "i");
        tu_check(a && a->n == 5 && a->items[1].num == -2500.0 && a->items[2].boolean == 1, "JSON values");
        tu_check(a && !strcmp(a->items[4].str, "x\xc3\xa9\xf0\x9f\x98\x80"), "JSON \\u escapes incl. surrogate pair decode to UTF-8");
        tu_check(big && !big->is_int, "integer beyond int64 is flagged as not exact");
        tu_check(i && i->is_int && i->i64 == 9007199254740993LL, "int64 above 2^53 kept exactly");
        fsd_json_free(&j);
    }
    const char *bad[] = {"", "{", "[1,]", "{\"a\" 1}", "01", "1.", "\"\\x\"", "tru", "[1] 2", "\"\x01\"", "{\"a\":1,}"};
    int rej = 0;
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) rej += fsd_json_parse(bad[k], strlen(bad[k]), "bad", &j) == FSD_ERR_FORMAT;
    tu_check(rej == (int)(sizeof bad / sizeof bad[0]), "JSON rejects %d/%zu malformed documents", rej, sizeof bad / sizeof bad[0]);
}

int main(void) {
    check_json();
    check_pytorch_files();
    check_conversions_and_writer();
    check_malformed();
    return tu_summary();
}
