/* A small strict JSON parser (RFC 8259) for safetensors headers and config files.
 * Integers that fit in int64 are kept exactly (byte offsets can exceed 2^53). Nesting is limited
 * to 64 levels so hostile input cannot exhaust the stack. */
#ifndef FSDIFF_JSON_H
#define FSDIFF_JSON_H

#include "fsdiff/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum fsd_json_type {
    FSD_JSON_NULL, FSD_JSON_BOOL, FSD_JSON_NUMBER, FSD_JSON_STRING, FSD_JSON_ARRAY, FSD_JSON_OBJECT
} fsd_json_type;

typedef struct fsd_json {
    fsd_json_type type;
    int boolean;
    double num;
    int is_int;     /* number written without fraction/exponent and within int64 range */
    int64_t i64;
    char *str;      /* FSD_JSON_STRING: decoded UTF-8, NUL-terminated (may contain no NUL) */
    int n;          /* array / object element count */
    struct fsd_json *items; /* array elements or object values */
    char **keys;            /* object keys (n of them) */
} fsd_json;

/* Parses text[0..len). On failure returns FSD_ERR_FORMAT with "<label>: invalid JSON at byte N: why". */
fsd_status fsd_json_parse(const char *text, size_t len, const char *label, fsd_json *out);
void fsd_json_free(fsd_json *v);
/* Object member lookup (first match); NULL if absent or v is not an object. */
const fsd_json *fsd_json_get(const fsd_json *v, const char *key);
const char *fsd_json_type_name(fsd_json_type t);
/* Writes s as a JSON string literal (quotes, backslashes and control characters escaped). */
void fsd_json_write_string(FILE *fp, const char *s);

#ifdef __cplusplus
}
#endif
#endif
