/* safetensors reader (mmap, fully validated) and writer (atomic).
 * Format: u64 little-endian header length N, N bytes of JSON
 *   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__": {"k": "v"}}
 * then the byte buffer; offsets are relative to the buffer start. */
#ifndef FSDIFF_SAFETENSORS_H
#define FSDIFF_SAFETENSORS_H

#include "fsdiff/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum fsd_dtype {
    FSD_F32 = 0, FSD_F16, FSD_BF16, FSD_F64, FSD_I64, FSD_I32, FSD_I16, FSD_I8, FSD_U8, FSD_BOOL,
    FSD_DTYPE_COUNT
} fsd_dtype;

const char *fsd_dtype_name(fsd_dtype d);
size_t fsd_dtype_size(fsd_dtype d);

#define FSD_ST_MAX_DIMS 8

typedef struct fsd_st_tensor {
    char *name;
    fsd_dtype dtype;
    int ndim;
    int64_t shape[FSD_ST_MAX_DIMS];
    uint64_t begin, end; /* byte span inside the data buffer */
    const unsigned char *data; /* points into the mapping */
} fsd_st_tensor;

typedef struct fsd_st_meta {
    char *key;
    char *value;
} fsd_st_meta;

typedef struct fsd_safetensors {
    void *map;
    size_t map_size;
    int n_tensors;
    fsd_st_tensor *tensors; /* in file (header) order */
    int n_meta;
    fsd_st_meta *meta;
    char path[1024];
} fsd_safetensors;

/* Opens and validates: header length sane and inside the file, JSON well-formed, known dtypes,
 * shapes non-negative, numel x dtype size == byte span, spans inside the buffer and not overlapping,
 * no duplicate names. Any problem: a one-line message naming the file and the problem. */
fsd_status fsd_st_open(fsd_safetensors *st, const char *path);
/* Same, from a memory buffer (copied); used by tests and fuzzing. */
fsd_status fsd_st_open_mem(fsd_safetensors *st, const void *data, size_t n, const char *label);
void fsd_st_close(fsd_safetensors *st);

const fsd_st_tensor *fsd_st_find(const fsd_safetensors *st, const char *name);
const char *fsd_st_meta_get(const fsd_safetensors *st, const char *key); /* NULL if absent */
int64_t fsd_st_numel(const fsd_st_tensor *t);

/* Convert any float dtype (F32/F16/BF16/F64) to float32 into out[n]; n must equal numel. */
fsd_status fsd_st_to_f32(const fsd_st_tensor *t, float *out, size_t n);
/* Look up `name`, check its shape equals shape[0..ndim) (ndim < 0: any shape), convert to a
 * newly allocated float32 buffer (fsd_free it). Reports NaN/Inf values as an error when check_finite. */
fsd_status fsd_st_load_f32(const fsd_safetensors *st, const char *name, int ndim, const int64_t *shape,
                           int check_finite, float **out, size_t *n_out);

/* ---------------------------------------------------------------- writer */
typedef struct fsd_st_entry {
    char *name;
    fsd_dtype dtype; /* storage dtype: F32, F16 or BF16 (converted from float at save) */
    int ndim;
    int64_t shape[FSD_ST_MAX_DIMS];
    const float *data; /* borrowed until save */
} fsd_st_entry;

typedef struct fsd_st_writer {
    int n, cap;
    fsd_st_entry *entries;
    int n_meta, cap_meta;
    fsd_st_meta *meta;
} fsd_st_writer;

void fsd_st_writer_init(fsd_st_writer *w);
fsd_status fsd_st_writer_add(fsd_st_writer *w, const char *name, fsd_dtype dtype, int ndim,
                             const int64_t *shape, const float *data);
fsd_status fsd_st_writer_meta(fsd_st_writer *w, const char *key, const char *value);
/* Writes atomically (temp + rename); tensors are laid out in the order added, 8-byte aligned header. */
fsd_status fsd_st_writer_save(const fsd_st_writer *w, const char *path);
void fsd_st_writer_free(fsd_st_writer *w);

/* float <-> half / bfloat16 (round to nearest even). */
uint16_t fsd_f32_to_f16(float f);
float fsd_f16_to_f32(uint16_t h);
uint16_t fsd_f32_to_bf16(float f);
float fsd_bf16_to_f32(uint16_t h);

#ifdef __cplusplus
}
#endif
#endif
