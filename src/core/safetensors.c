/* safetensors reader (mmap + full validation) and atomic writer.
 * The header is untrusted input: every field is checked before any tensor byte is touched. */
#include "fsdiff/safetensors.h"
#include "fsdiff/json.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* A header larger than this is not a model file (HF's own reader refuses > 100 MB as well). */
#define ST_MAX_HEADER (100u * 1024u * 1024u)

static const char *k_dtype_names[FSD_DTYPE_COUNT] = {"F32", "F16", "BF16", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL"};
static const size_t k_dtype_sizes[FSD_DTYPE_COUNT] = {4, 2, 2, 8, 8, 4, 2, 1, 1, 1};

const char *fsd_dtype_name(fsd_dtype d) { return (unsigned)d < FSD_DTYPE_COUNT ? k_dtype_names[d] : "?"; }
size_t fsd_dtype_size(fsd_dtype d) { return (unsigned)d < FSD_DTYPE_COUNT ? k_dtype_sizes[d] : 0; }

int64_t fsd_st_numel(const fsd_st_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

/* ------------------------------------------------------------------ half / bfloat16 */
uint16_t fsd_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t absx = x & 0x7FFFFFFFu;
    if (absx >= 0x7F800000u) /* inf or nan */
        return (uint16_t)(sign | 0x7C00u | (absx > 0x7F800000u ? 0x200u | ((absx >> 13) & 0x3FFu) : 0));
    if (absx >= 0x477FF000u) return (uint16_t)(sign | 0x7C00u); /* rounds to >= 65520: overflow to inf */
    if (absx < 0x38800000u) {                                   /* below the smallest normal half 2^-14 */
        if (absx < 0x33000000u) return (uint16_t)sign;          /* < 2^-25: rounds to zero */
        uint32_t e = absx >> 23;
        uint32_t m = (absx & 0x7FFFFFu) | 0x800000u;
        /* value = m * 2^(e-150); in half-subnormal units of 2^-24 that is m >> (126 - e) */
        uint32_t shift = 126 - e;
        uint32_t q = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t r = absx - 0x38000000u; /* rebias exponent 127 -> 15 */
    uint32_t q = r >> 13, rem = r & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (q & 1))) q++;
    return (uint16_t)(sign | q);
}

float fsd_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1Fu, m = h & 0x3FFu, x;
    if (e == 0) {
        if (m == 0) x = sign;
        else { /* subnormal: normalise */
            int k = -1;
            do { k++; m <<= 1; } while (!(m & 0x400u));
            x = sign | ((uint32_t)(127 - 15 - k) << 23) | ((m & 0x3FFu) << 13);
        }
    } else if (e == 31) x = sign | 0x7F800000u | (m << 13);
    else x = sign | ((e + 112) << 23) | (m << 13);
    float f;
    memcpy(&f, &x, 4);
    return f;
}

uint16_t fsd_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((x >> 16) | 0x40u); /* quiet nan */
    x += 0x7FFFu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

float fsd_bf16_to_f32(uint16_t h) {
    uint32_t x = (uint32_t)h << 16;
    float f;
    memcpy(&f, &x, 4);
    return f;
}

/* ------------------------------------------------------------------ reader */
static int parse_dtype(const char *s) {
    for (int d = 0; d < FSD_DTYPE_COUNT; d++)
        if (!strcmp(s, k_dtype_names[d])) return d;
    return -1;
}

typedef struct { uint64_t begin, end; int idx; } span;
static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end < y->end ? -1 : x->end > y->end);
}

static fsd_status parse_header(fsd_safetensors *st, const unsigned char *file, size_t size, const char *label) {
    if (size < 8) return fsd_fail(FSD_ERR_FORMAT, "%s: too short for a safetensors file (%zu bytes)", label, size);
    uint64_t hl = 0;
    for (int k = 7; k >= 0; k--) hl = (hl << 8) | file[k];
    if (hl == 0) return fsd_fail(FSD_ERR_FORMAT, "%s: safetensors header length is 0", label);
    if (hl > ST_MAX_HEADER)
        return fsd_fail(FSD_ERR_FORMAT, "%s: safetensors header length %llu is absurd (limit %u bytes)", label,
                        (unsigned long long)hl, ST_MAX_HEADER);
    if (hl > size - 8)
        return fsd_fail(FSD_ERR_FORMAT, "%s: safetensors header length %llu exceeds the file (%zu bytes)", label,
                        (unsigned long long)hl, size);
    const char *hdr = (const char *)file + 8;
    if (hdr[0] != '{') return fsd_fail(FSD_ERR_FORMAT, "%s: safetensors header does not start with '{'", label);
    /* the header may be padded with trailing spaces (allowed by the format) */
    fsd_json root;
    fsd_status s = fsd_json_parse(hdr, (size_t)hl, label, &root);
    if (s) {
        /* A lying length that still lies inside the file cuts the JSON short or runs into the tensor
         * bytes: either way the header, less its space padding, does not end with the object's '}'. */
        size_t last = (size_t)hl - 1;
        while (last > 0 && (hdr[last] == ' ' || hdr[last] == '\t' || hdr[last] == '\n' || hdr[last] == '\r')) last--;
        if (hdr[last] != '}') {
            char msg[900];
            snprintf(msg, sizeof msg, "%s", fsd_error_message());
            return fsd_fail(s, "%s (the %llu-byte header does not end with '}': a wrong header length?)", msg,
                            (unsigned long long)hl);
        }
        return s;
    }
    if (root.type != FSD_JSON_OBJECT) {
        fsd_json_free(&root);
        return fsd_fail(FSD_ERR_FORMAT, "%s: safetensors header is not a JSON object", label);
    }
    const unsigned char *buf = file + 8 + hl;
    uint64_t buf_size = size - 8 - hl;
    st->tensors = calloc((size_t)root.n + 1, sizeof *st->tensors);
    span *spans = calloc((size_t)root.n + 1, sizeof *spans);
    if (!st->tensors || !spans) { free(spans); fsd_json_free(&root); return fsd_fail(FSD_ERR_NOMEM, "%s: out of memory", label); }
    s = FSD_OK;
    for (int k = 0; k < root.n && !s; k++) {
        const char *name = root.keys[k];
        const fsd_json *e = &root.items[k];
        if (!strcmp(name, "__metadata__")) {
            if (e->type != FSD_JSON_OBJECT) { s = fsd_fail(FSD_ERR_FORMAT, "%s: __metadata__ is not an object", label); break; }
            st->meta = calloc((size_t)e->n + 1, sizeof *st->meta);
            if (!st->meta) { s = fsd_fail(FSD_ERR_NOMEM, "%s: out of memory", label); break; }
            for (int j = 0; j < e->n; j++) {
                if (e->items[j].type != FSD_JSON_STRING) {
                    s = fsd_fail(FSD_ERR_FORMAT, "%s: __metadata__ value of '%s' is not a string", label, e->keys[j]);
                    break;
                }
                st->meta[j].key = strdup(e->keys[j]);
                st->meta[j].value = strdup(e->items[j].str);
                st->n_meta++;
            }
            continue;
        }
        if (!*name) { s = fsd_fail(FSD_ERR_FORMAT, "%s: tensor with an empty name", label); break; }
        if (e->type != FSD_JSON_OBJECT) { s = fsd_fail(FSD_ERR_FORMAT, "%s: entry '%s' is not an object", label, name); break; }
        const fsd_json *dt = fsd_json_get(e, "dtype"), *sh = fsd_json_get(e, "shape"), *off = fsd_json_get(e, "data_offsets");
        if (!dt || dt->type != FSD_JSON_STRING) { s = fsd_fail(FSD_ERR_FORMAT, "%s: tensor '%s' has no dtype string", label, name); break; }
        int d = parse_dtype(dt->str);
        if (d < 0) { s = fsd_fail(FSD_ERR_FORMAT, "%s: tensor '%s' has unsupported dtype '%s'", label, name, dt->str); break; }
        if (!sh || sh->type != FSD_JSON_ARRAY) { s = fsd_fail(FSD_ERR_FORMAT, "%s: tensor '%s' has no shape array", label, name); break; }
        if (sh->n > FSD_ST_MAX_DIMS) { s = fsd_fail(FSD_ERR_FORMAT, "%s: tensor '%s' has %d dimensions (max %d)", label, name, sh->n, FSD_ST_MAX_DIMS); break; }
        if (!off || off->type != FSD_JSON_ARRAY || off->n != 2 || off->items[0].type != FSD_JSON_NUMBER ||
            off->items[1].type != FSD_JSON_NUMBER || !off->items[0].is_int || !off->items[1].is_int) {
            s = fsd_fail(FSD_ERR_FORMAT, "%s: tensor '%s' needs data_offsets [begin, end] as integers", label, name);
            break;
        }
        fsd_st_tensor *t = &st->tensors[st->n_tensors];
        t->dtype = (fsd_dtype)d;
        t->ndim = sh->n;
        /* numel with overflow checks: every dimension a non-negative integer */
        uint64_t numel = 1;
        int overflow = 0;
        for (int j = 0; j < sh->n; j++) {
            const fsd_json *x = &sh->items[j];
            if (x->type != FSD_JSON_NUMBER || !x->is_int || x->i64 < 0) {
                s = fsd_fail(FSD_ERR_FORMAT, "%s: tensor '%s' has an invalid shape entry", label, name);
                break;
            }
            t->shape[j] = x->i64;
            if (x->i64 && numel > UINT64_MAX / (uint64_t)x->i64) overflow = 1;
            else numel *= (uint64_t)x->i64;
        }
        if (s) break;
        int64_t b = off->items[0].i64, en = off->items[1].i64;
        if (b < 0 || en < b) { s = fsd_fail(FSD_ERR_FORMAT, "%s: tensor '%s' has data_offsets [%lld, %lld] out of order", label, name, (long long)b, (long long)en); break; }
        uint64_t bytes = (uint64_t)en - (uint64_t)b;
        if (overflow || numel > UINT64_MAX / k_dtype_sizes[d] || numel * k_dtype_sizes[d] != bytes) {
            char shs[128];
            s = fsd_fail(FSD_ERR_FORMAT, "%s: tensor '%s' shape %s x %s (%zu bytes each) does not match its byte span %llu",
                         label, name, fsd_shape_str(t->ndim, t->shape, shs, sizeof shs), k_dtype_names[d],
                         k_dtype_sizes[d], (unsigned long long)bytes);
            break;
        }
        if ((uint64_t)en > buf_size) {
            s = fsd_fail(FSD_ERR_FORMAT, "%s: tensor '%s' data [%lld, %lld) lies outside the file's data buffer (%llu bytes; truncated file?)",
                         label, name, (long long)b, (long long)en, (unsigned long long)buf_size);
            break;
        }
        for (int j = 0; j < st->n_tensors; j++)
            if (!strcmp(st->tensors[j].name, name)) { s = fsd_fail(FSD_ERR_FORMAT, "%s: duplicate tensor name '%s'", label, name); break; }
        if (s) break;
        t->name = strdup(name);
        t->begin = (uint64_t)b;
        t->end = (uint64_t)en;
        t->data = buf + b;
        spans[st->n_tensors] = (span){t->begin, t->end, st->n_tensors};
        st->n_tensors++;
    }
    if (!s && st->n_tensors > 1) {
        qsort(spans, (size_t)st->n_tensors, sizeof *spans, cmp_span);
        for (int j = 1; j < st->n_tensors; j++) {
            /* zero-byte tensors cannot overlap anything */
            if (spans[j].begin == spans[j].end) continue;
            uint64_t prev_end = 0;
            int pi = -1;
            for (int q = j - 1; q >= 0; q--)
                if (spans[q].end > spans[q].begin) { prev_end = spans[q].end; pi = q; break; }
            if (pi >= 0 && spans[j].begin < prev_end) {
                s = fsd_fail(FSD_ERR_FORMAT, "%s: tensors '%s' and '%s' have overlapping data", label,
                             st->tensors[spans[pi].idx].name, st->tensors[spans[j].idx].name);
                break;
            }
        }
    }
    free(spans);
    fsd_json_free(&root);
    return s;
}

static fsd_status finish_open(fsd_safetensors *st, const char *label) {
    fsd_status s = parse_header(st, st->map, st->map_size, label);
    if (s) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", fsd_error_message());
        fsd_st_close(st);
        return fsd_fail(s, "%s", msg);
    }
    return FSD_OK;
}

fsd_status fsd_st_open(fsd_safetensors *st, const char *path) {
    memset(st, 0, sizeof *st);
    snprintf(st->path, sizeof st->path, "%s", path);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return fsd_fail(FSD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return fsd_fail(FSD_ERR_IO, "%s: not a regular file", path);
    }
    if (sb.st_size < 8) {
        close(fd);
        return fsd_fail(FSD_ERR_FORMAT, "%s: too short for a safetensors file (%lld bytes)", path, (long long)sb.st_size);
    }
    void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return fsd_fail(FSD_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
    st->map = m;
    st->map_size = (size_t)sb.st_size;
    return finish_open(st, path);
}

/* Buffers copied from memory are marked by a size with this tag so close() knows to free, not munmap. */
static int is_heap(const fsd_safetensors *st) { return st->path[sizeof st->path - 1] == 1; }

fsd_status fsd_st_open_mem(fsd_safetensors *st, const void *data, size_t n, const char *label) {
    memset(st, 0, sizeof *st);
    snprintf(st->path, sizeof st->path - 1, "%s", label ? label : "<memory>");
    st->path[sizeof st->path - 1] = 1;
    st->map = malloc(n ? n : 1);
    if (!st->map) return fsd_fail(FSD_ERR_NOMEM, "%s: out of memory", st->path);
    if (n) memcpy(st->map, data, n);
    st->map_size = n;
    return finish_open(st, st->path);
}

void fsd_st_close(fsd_safetensors *st) {
    for (int k = 0; k < st->n_tensors; k++) free(st->tensors[k].name);
    free(st->tensors);
    for (int k = 0; k < st->n_meta; k++) {
        free(st->meta[k].key);
        free(st->meta[k].value);
    }
    free(st->meta);
    if (st->map) {
        if (is_heap(st)) free(st->map);
        else munmap(st->map, st->map_size);
    }
    memset(st, 0, sizeof *st);
}

const fsd_st_tensor *fsd_st_find(const fsd_safetensors *st, const char *name) {
    for (int k = 0; k < st->n_tensors; k++)
        if (!strcmp(st->tensors[k].name, name)) return &st->tensors[k];
    return NULL;
}

const char *fsd_st_meta_get(const fsd_safetensors *st, const char *key) {
    for (int k = 0; k < st->n_meta; k++)
        if (!strcmp(st->meta[k].key, key)) return st->meta[k].value;
    return NULL;
}

fsd_status fsd_st_to_f32(const fsd_st_tensor *t, float *out, size_t n) {
    if ((int64_t)n != fsd_st_numel(t))
        return fsd_fail(FSD_ERR_INVALID, "tensor '%s': %lld elements, caller expects %zu", t->name,
                        (long long)fsd_st_numel(t), n);
    const unsigned char *p = t->data;
    switch (t->dtype) {
    case FSD_F32: memcpy(out, p, n * 4); break; /* little-endian host assumed (x86-64, aarch64) */
    case FSD_F16:
        for (size_t i = 0; i < n; i++) out[i] = fsd_f16_to_f32((uint16_t)(p[2 * i] | (p[2 * i + 1] << 8)));
        break;
    case FSD_BF16:
        for (size_t i = 0; i < n; i++) out[i] = fsd_bf16_to_f32((uint16_t)(p[2 * i] | (p[2 * i + 1] << 8)));
        break;
    case FSD_F64:
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, p + 8 * i, 8);
            out[i] = (float)d;
        }
        break;
    default:
        return fsd_fail(FSD_ERR_FORMAT, "tensor '%s' has dtype %s, expected a float type", t->name, fsd_dtype_name(t->dtype));
    }
    return FSD_OK;
}

fsd_status fsd_st_load_f32(const fsd_safetensors *st, const char *name, int ndim, const int64_t *shape,
                           int check_finite, float **out, size_t *n_out) {
    *out = NULL;
    const fsd_st_tensor *t = fsd_st_find(st, name);
    if (!t) return fsd_fail(FSD_ERR_FORMAT, "%s: tensor '%s' is missing", st->path, name);
    if (ndim >= 0) {
        int same = t->ndim == ndim;
        for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
        if (!same) {
            char a[128], b[128];
            return fsd_fail(FSD_ERR_FORMAT, "%s: tensor '%s' has shape %s, expected %s", st->path, name,
                            fsd_shape_str(t->ndim, t->shape, a, sizeof a), fsd_shape_str(ndim, shape, b, sizeof b));
        }
    }
    size_t n = (size_t)fsd_st_numel(t);
    float *buf = fsd_alloc((n ? n : 1) * sizeof(float));
    if (!buf) return FSD_ERR_NOMEM;
    fsd_status s = fsd_st_to_f32(t, buf, n);
    if (s) {
        fsd_free(buf);
        return fsd_fail(s, "%s: %s", st->path, fsd_error_message());
    }
    if (check_finite)
        for (size_t i = 0; i < n; i++)
            if (!isfinite(buf[i])) {
                const char *what = isnan(buf[i]) ? "NaN" : "Inf";
                fsd_free(buf);
                return fsd_fail(FSD_ERR_FORMAT, "%s: tensor '%s' contains %s at element %zu", st->path, name, what, i);
            }
    *out = buf;
    if (n_out) *n_out = n;
    return FSD_OK;
}

/* ------------------------------------------------------------------ writer */
void fsd_st_writer_init(fsd_st_writer *w) { memset(w, 0, sizeof *w); }

fsd_status fsd_st_writer_add(fsd_st_writer *w, const char *name, fsd_dtype dtype, int ndim, const int64_t *shape,
                             const float *data) {
    if (dtype != FSD_F32 && dtype != FSD_F16 && dtype != FSD_BF16)
        return fsd_fail(FSD_ERR_INVALID, "safetensors writer: tensor '%s': dtype must be F32, F16 or BF16", name);
    if (ndim < 0 || ndim > FSD_ST_MAX_DIMS) return fsd_fail(FSD_ERR_INVALID, "tensor '%s': rank %d", name, ndim);
    if (!*name || !strcmp(name, "__metadata__")) return fsd_fail(FSD_ERR_INVALID, "invalid tensor name '%s'", name);
    for (int k = 0; k < w->n; k++)
        if (!strcmp(w->entries[k].name, name)) return fsd_fail(FSD_ERR_INVALID, "duplicate tensor name '%s'", name);
    for (int k = 0; k < ndim; k++)
        if (shape[k] < 0) return fsd_fail(FSD_ERR_INVALID, "tensor '%s': negative dimension", name);
    if (w->n == w->cap) {
        int nc = w->cap ? w->cap * 2 : 32;
        fsd_st_entry *ne = realloc(w->entries, (size_t)nc * sizeof *ne);
        if (!ne) return fsd_fail(FSD_ERR_NOMEM, "out of memory");
        w->entries = ne;
        w->cap = nc;
    }
    fsd_st_entry *e = &w->entries[w->n];
    memset(e, 0, sizeof *e);
    e->name = strdup(name);
    e->dtype = dtype;
    e->ndim = ndim;
    memcpy(e->shape, shape, (size_t)ndim * sizeof(int64_t));
    e->data = data;
    w->n++;
    return FSD_OK;
}

fsd_status fsd_st_writer_meta(fsd_st_writer *w, const char *key, const char *value) {
    if (w->n_meta == w->cap_meta) {
        int nc = w->cap_meta ? w->cap_meta * 2 : 8;
        fsd_st_meta *nm = realloc(w->meta, (size_t)nc * sizeof *nm);
        if (!nm) return fsd_fail(FSD_ERR_NOMEM, "out of memory");
        w->meta = nm;
        w->cap_meta = nc;
    }
    w->meta[w->n_meta].key = strdup(key);
    w->meta[w->n_meta].value = strdup(value);
    w->n_meta++;
    return FSD_OK;
}

void fsd_st_writer_free(fsd_st_writer *w) {
    for (int k = 0; k < w->n; k++) free(w->entries[k].name);
    free(w->entries);
    for (int k = 0; k < w->n_meta; k++) {
        free(w->meta[k].key);
        free(w->meta[k].value);
    }
    free(w->meta);
    memset(w, 0, sizeof *w);
}

/* growable string for the JSON header */
typedef struct { char *s; size_t n, cap; int oom; } sbuf;
static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t nc = (b->cap ? b->cap * 2 : 4096);
        while (nc < b->n + n + 1) nc *= 2;
        char *ns = realloc(b->s, nc);
        if (!ns) { b->oom = 1; return; }
        b->s = ns;
        b->cap = nc;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}
static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }
static void sb_json_str(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') { esc[0] = '\\'; esc[1] = (char)*p; sb_put(b, esc, 2); }
        else if (*p < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", *p); sb_str(b, esc); }
        else sb_put(b, (const char *)p, 1);
    }
    sb_put(b, "\"", 1);
}

fsd_status fsd_st_writer_save(const fsd_st_writer *w, const char *path) {
    sbuf h = {0};
    char num[128];
    uint64_t off = 0;
    sb_str(&h, "{");
    for (int k = 0; k < w->n; k++) {
        const fsd_st_entry *e = &w->entries[k];
        uint64_t numel = 1;
        for (int j = 0; j < e->ndim; j++) numel *= (uint64_t)e->shape[j];
        uint64_t bytes = numel * fsd_dtype_size(e->dtype);
        if (k) sb_str(&h, ",");
        sb_json_str(&h, e->name);
        sb_str(&h, ":{\"dtype\":\"");
        sb_str(&h, fsd_dtype_name(e->dtype));
        sb_str(&h, "\",\"shape\":[");
        for (int j = 0; j < e->ndim; j++) {
            snprintf(num, sizeof num, "%s%lld", j ? "," : "", (long long)e->shape[j]);
            sb_str(&h, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off, (unsigned long long)(off + bytes));
        sb_str(&h, num);
        off += bytes;
    }
    if (w->n_meta) {
        sb_str(&h, w->n ? ",\"__metadata__\":{" : "\"__metadata__\":{");
        for (int k = 0; k < w->n_meta; k++) {
            if (k) sb_str(&h, ",");
            sb_json_str(&h, w->meta[k].key);
            sb_str(&h, ":");
            sb_json_str(&h, w->meta[k].value);
        }
        sb_str(&h, "}");
    }
    sb_str(&h, "}");
    while (!h.oom && h.n % 8) sb_str(&h, " "); /* 8-byte aligned data start */
    if (h.oom) { free(h.s); return fsd_fail(FSD_ERR_NOMEM, "%s: out of memory building header", path); }

    fsd_atomic_file f;
    fsd_status s = fsd_atomic_open(&f, path);
    if (s) { free(h.s); return s; }
    unsigned char len8[8];
    for (int k = 0; k < 8; k++) len8[k] = (unsigned char)((uint64_t)h.n >> (8 * k));
    int ok = fwrite(len8, 1, 8, f.fp) == 8 && fwrite(h.s, 1, h.n, f.fp) == h.n;
    free(h.s);
    uint16_t tmp[4096];
    for (int k = 0; ok && k < w->n; k++) {
        const fsd_st_entry *e = &w->entries[k];
        size_t numel = 1;
        for (int j = 0; j < e->ndim; j++) numel *= (size_t)e->shape[j];
        if (e->dtype == FSD_F32) {
            ok = fwrite(e->data, 4, numel, f.fp) == numel;
            continue;
        }
        for (size_t i = 0; ok && i < numel; i += 4096) {
            size_t m = numel - i < 4096 ? numel - i : 4096;
            for (size_t j = 0; j < m; j++)
                tmp[j] = e->dtype == FSD_F16 ? fsd_f32_to_f16(e->data[i + j]) : fsd_f32_to_bf16(e->data[i + j]);
            ok = fwrite(tmp, 2, m, f.fp) == m;
        }
    }
    if (!ok) {
        int e = errno;
        fsd_atomic_abort(&f);
        return fsd_fail(FSD_ERR_IO, "%s: write failed: %s", path, strerror(e));
    }
    return fsd_atomic_commit(&f);
}
