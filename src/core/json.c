/* Strict recursive-descent JSON parser with depth limit and exact int64 integers. */
#include "fsdiff/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 64

typedef struct {
    const char *s;
    size_t n, i;
    const char *label;
    char why[128];
} parser;

static int fail(parser *p, const char *why) {
    if (!p->why[0]) snprintf(p->why, sizeof p->why, "%s", why);
    return -1;
}

static void skip_ws(parser *p) {
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
}

static int parse_value(parser *p, fsd_json *v, int depth);

static int hex4(parser *p, unsigned *out) {
    if (p->n - p->i < 4) return fail(p, "truncated \\u escape");
    unsigned x = 0;
    for (int k = 0; k < 4; k++) {
        char c = p->s[p->i++];
        x <<= 4;
        if (c >= '0' && c <= '9') x |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') x |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') x |= (unsigned)(c - 'A' + 10);
        else return fail(p, "bad hex digit in \\u escape");
    }
    *out = x;
    return 0;
}

static int put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Validates one UTF-8 sequence starting at s[0]; returns its length or 0 if invalid. */
static int utf8_len(const unsigned char *s, size_t avail) {
    unsigned c = s[0];
    int len;
    unsigned min;
    if (c < 0x80) return 1;
    if ((c & 0xE0) == 0xC0) { len = 2; min = 0x80; c &= 0x1F; }
    else if ((c & 0xF0) == 0xE0) { len = 3; min = 0x800; c &= 0x0F; }
    else if ((c & 0xF8) == 0xF0) { len = 4; min = 0x10000; c &= 0x07; }
    else return 0;
    if ((size_t)len > avail) return 0;
    for (int k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80) return 0;
        c = (c << 6) | (s[k] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
    return len;
}

static int parse_string(parser *p, char **out) {
    /* p->s[p->i] == '"' */
    p->i++;
    size_t start = p->i;
    /* decoded length <= raw length */
    size_t end = start;
    while (end < p->n && p->s[end] != '"') end += (p->s[end] == '\\' && end + 1 < p->n) ? 2 : 1;
    if (end >= p->n) return fail(p, "unterminated string");
    char *o = malloc(end - start + 1);
    if (!o) return fail(p, "out of memory");
    size_t k = 0;
    while (p->i < p->n) {
        unsigned char c = (unsigned char)p->s[p->i];
        if (c == '"') { p->i++; o[k] = 0; *out = o; return 0; }
        if (c < 0x20) { free(o); return fail(p, "control character in string"); }
        if (c == '\\') {
            p->i++;
            if (p->i >= p->n) break;
            char e = p->s[p->i++];
            switch (e) {
            case '"': o[k++] = '"'; break;
            case '\\': o[k++] = '\\'; break;
            case '/': o[k++] = '/'; break;
            case 'b': o[k++] = '\b'; break;
            case 'f': o[k++] = '\f'; break;
            case 'n': o[k++] = '\n'; break;
            case 'r': o[k++] = '\r'; break;
            case 't': o[k++] = '\t'; break;
            case 'u': {
                unsigned cp;
                if (hex4(p, &cp)) { free(o); return -1; }
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    unsigned lo;
                    if (p->n - p->i < 6 || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u') {
                        free(o);
                        return fail(p, "unpaired surrogate in \\u escape");
                    }
                    p->i += 2;
                    if (hex4(p, &lo)) { free(o); return -1; }
                    if (lo < 0xDC00 || lo > 0xDFFF) { free(o); return fail(p, "bad surrogate pair"); }
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    free(o);
                    return fail(p, "unpaired surrogate in \\u escape");
                }
                if (cp == 0) { free(o); return fail(p, "NUL character in string"); }
                k += (size_t)put_utf8(o + k, cp); /* \uXXXX is 6 raw bytes, at most 4 decoded */
                break;
            }
            default: free(o); return fail(p, "bad escape in string");
            }
        } else {
            int L = utf8_len((const unsigned char *)p->s + p->i, p->n - p->i);
            if (!L) { free(o); return fail(p, "invalid UTF-8 in string"); }
            memcpy(o + k, p->s + p->i, (size_t)L);
            k += (size_t)L;
            p->i += (size_t)L;
        }
    }
    free(o);
    return fail(p, "unterminated string");
}

static int parse_number(parser *p, fsd_json *v) {
    size_t st = p->i;
    int is_int = 1;
    if (p->s[p->i] == '-') p->i++;
    if (p->i >= p->n) return fail(p, "truncated number");
    if (p->s[p->i] == '0') p->i++;
    else if (p->s[p->i] >= '1' && p->s[p->i] <= '9') while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    else return fail(p, "bad number");
    if (p->i < p->n && p->s[p->i] == '.') {
        is_int = 0;
        p->i++;
        if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') return fail(p, "bad fraction");
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    }
    if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
        is_int = 0;
        p->i++;
        if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-')) p->i++;
        if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') return fail(p, "bad exponent");
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    }
    char buf[64];
    size_t L = p->i - st;
    if (L >= sizeof buf) { /* very long literal: parse as double only */
        char *tmp = malloc(L + 1);
        if (!tmp) return fail(p, "out of memory");
        memcpy(tmp, p->s + st, L);
        tmp[L] = 0;
        v->num = strtod(tmp, NULL);
        free(tmp);
        is_int = 0;
    } else {
        memcpy(buf, p->s + st, L);
        buf[L] = 0;
        v->num = strtod(buf, NULL);
        if (is_int) {
            /* exact int64 with overflow detection */
            const char *q = buf;
            int neg = *q == '-';
            if (neg) q++;
            uint64_t acc = 0;
            for (; *q; q++) {
                unsigned d = (unsigned)(*q - '0');
                if (acc > (UINT64_MAX - d) / 10) { is_int = 0; break; }
                acc = acc * 10 + d;
            }
            if (is_int) {
                if (!neg && acc > (uint64_t)INT64_MAX) is_int = 0;
                else if (neg && acc > (uint64_t)INT64_MAX + 1) is_int = 0;
                else v->i64 = neg ? (int64_t)(0 - acc) : (int64_t)acc;
            }
        }
    }
    if (!isfinite(v->num)) return fail(p, "number out of range");
    v->type = FSD_JSON_NUMBER;
    v->is_int = is_int;
    return 0;
}

static int lit(parser *p, const char *w) {
    size_t L = strlen(w);
    if (p->n - p->i < L || memcmp(p->s + p->i, w, L) != 0) return fail(p, "unexpected token");
    p->i += L;
    return 0;
}

static int push(fsd_json *v, int *cap, char *key, fsd_json *item) {
    if (v->n == *cap) {
        int nc = *cap ? *cap * 2 : 8;
        fsd_json *ni = realloc(v->items, (size_t)nc * sizeof *ni);
        if (!ni) return -1;
        v->items = ni;
        if (v->type == FSD_JSON_OBJECT) {
            char **nk = realloc(v->keys, (size_t)nc * sizeof *nk);
            if (!nk) return -1;
            v->keys = nk;
        }
        *cap = nc;
    }
    v->items[v->n] = *item;
    if (v->type == FSD_JSON_OBJECT) v->keys[v->n] = key;
    v->n++;
    return 0;
}

static int parse_value(parser *p, fsd_json *v, int depth) {
    memset(v, 0, sizeof *v);
    if (depth > JSON_MAX_DEPTH) return fail(p, "nesting too deep");
    skip_ws(p);
    if (p->i >= p->n) return fail(p, "unexpected end of input");
    char c = p->s[p->i];
    if (c == '{' || c == '[') {
        int obj = c == '{';
        v->type = obj ? FSD_JSON_OBJECT : FSD_JSON_ARRAY;
        int cap = 0;
        p->i++;
        skip_ws(p);
        if (p->i < p->n && p->s[p->i] == (obj ? '}' : ']')) { p->i++; return 0; }
        for (;;) {
            char *key = NULL;
            fsd_json item;
            skip_ws(p);
            if (obj) {
                if (p->i >= p->n || p->s[p->i] != '"') return fail(p, "expected a string key");
                if (parse_string(p, &key)) return -1;
                skip_ws(p);
                if (p->i >= p->n || p->s[p->i] != ':') { free(key); return fail(p, "expected ':'"); }
                p->i++;
            }
            if (parse_value(p, &item, depth + 1)) { free(key); fsd_json_free(&item); return -1; }
            if (push(v, &cap, key, &item)) { free(key); fsd_json_free(&item); return fail(p, "out of memory"); }
            skip_ws(p);
            if (p->i >= p->n) return fail(p, "unexpected end of input");
            if (p->s[p->i] == ',') { p->i++; continue; }
            if (p->s[p->i] == (obj ? '}' : ']')) { p->i++; return 0; }
            return fail(p, obj ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
    if (c == '"') {
        v->type = FSD_JSON_STRING;
        return parse_string(p, &v->str);
    }
    if (c == '-' || (c >= '0' && c <= '9')) return parse_number(p, v);
    if (c == 't') { v->type = FSD_JSON_BOOL; v->boolean = 1; return lit(p, "true"); }
    if (c == 'f') { v->type = FSD_JSON_BOOL; return lit(p, "false"); }
    if (c == 'n') { v->type = FSD_JSON_NULL; return lit(p, "null"); }
    return fail(p, "unexpected character");
}

fsd_status fsd_json_parse(const char *text, size_t len, const char *label, fsd_json *out) {
    parser p = {text, len, 0, label, {0}};
    memset(out, 0, sizeof *out);
    if (parse_value(&p, out, 0) == 0) {
        skip_ws(&p);
        if (p.i == p.n) return FSD_OK;
        fail(&p, "trailing characters after the value");
    }
    fsd_json_free(out);
    return fsd_fail(FSD_ERR_FORMAT, "%s: invalid JSON at byte %zu: %s", label ? label : "json", p.i, p.why);
}

void fsd_json_free(fsd_json *v) {
    if (!v) return;
    if (v->type == FSD_JSON_ARRAY || v->type == FSD_JSON_OBJECT) {
        for (int k = 0; k < v->n; k++) {
            fsd_json_free(&v->items[k]);
            if (v->keys) free(v->keys[k]);
        }
        free(v->items);
        free(v->keys);
    }
    free(v->str);
    memset(v, 0, sizeof *v);
}

const fsd_json *fsd_json_get(const fsd_json *v, const char *key) {
    if (!v || v->type != FSD_JSON_OBJECT) return NULL;
    for (int k = 0; k < v->n; k++)
        if (!strcmp(v->keys[k], key)) return &v->items[k];
    return NULL;
}

const char *fsd_json_type_name(fsd_json_type t) {
    static const char *names[] = {"null", "boolean", "number", "string", "array", "object"};
    return (unsigned)t < 6 ? names[t] : "?";
}

void fsd_json_write_string(FILE *fp, const char *s) {
    fputc('"', fp);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(fp, "\\%c", *p);
        else if (*p < 0x20) fprintf(fp, "\\u%04x", *p);
        else fputc(*p, fp);
    }
    fputc('"', fp);
}
