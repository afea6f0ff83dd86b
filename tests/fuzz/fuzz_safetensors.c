/* libFuzzer harness: fsd_st_open_mem (header length, JSON header, dtypes, shapes, spans, overlaps,
 * metadata), then every tensor through fsd_st_load_f32 (float dtypes; the others must be refused),
 * then the configs stored in the metadata of a model file (network, clarity encoder, diffusion).
 * Contract: refusals have one line of message; an accepted file's tensors lie inside the buffer, are
 * findable by name, and their element count times the dtype size is their byte span. */
#include "fsdiff/clarity.h"
#include "fsdiff/model.h"
#include "fsdiff/nn.h"
#include "fsdiff/safetensors.h"
#include "fuzz_common.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fsd_safetensors st;
    fsd_clear_error();
    fsd_status s = fsd_st_open_mem(&st, data, size, "fuzz.safetensors");
    if (s) {
        fuzz_check_refusal(s);
        FUZZ_ASSERT(st.map == NULL && st.n_tensors == 0, "refusal left state behind");
        return 0;
    }
    const unsigned char *lo = st.map, *hi = lo + st.map_size;
    for (int k = 0; k < st.n_tensors; k++) {
        const fsd_st_tensor *t = &st.tensors[k];
        FUZZ_ASSERT(t->name && *t->name, "tensor %d without a name", k);
        FUZZ_ASSERT(fsd_st_find(&st, t->name) == t, "tensor '%s' not found by name", t->name);
        FUZZ_ASSERT(t->ndim >= 0 && t->ndim <= FSD_ST_MAX_DIMS, "rank %d", t->ndim);
        FUZZ_ASSERT(t->end >= t->begin && t->data >= lo + 8 && t->data + (t->end - t->begin) <= hi,
                    "tensor '%s' outside the buffer", t->name);
        int64_t numel = fsd_st_numel(t);
        FUZZ_ASSERT(numel >= 0 && (uint64_t)numel * fsd_dtype_size(t->dtype) == t->end - t->begin,
                    "tensor '%s': numel %lld does not match its span", t->name, (long long)numel);
        float *buf = NULL;
        size_t n = 0;
        fsd_clear_error();
        s = fsd_st_load_f32(&st, t->name, t->ndim, t->shape, 1, &buf, &n);
        int is_float = t->dtype == FSD_F32 || t->dtype == FSD_F16 || t->dtype == FSD_BF16 || t->dtype == FSD_F64;
        if (s) {
            fuzz_check_refusal(s);
            FUZZ_ASSERT(buf == NULL, "refused load returned a buffer");
        } else {
            FUZZ_ASSERT(is_float, "tensor '%s' of dtype %s loaded as float", t->name, fsd_dtype_name(t->dtype));
            FUZZ_ASSERT((int64_t)n == numel, "loaded %zu of %lld elements", n, (long long)numel);
            fsd_free(buf);
        }
    }
    for (int k = 0; k < st.n_meta; k++) {
        FUZZ_ASSERT(st.meta[k].key && st.meta[k].value, "metadata entry %d incomplete", k);
        FUZZ_ASSERT(fsd_st_meta_get(&st, st.meta[k].key) != NULL, "metadata key not found");
    }
    /* the configs of a model file, as fsd_model_open reads them (without building the network) */
    const char *nj = fsd_st_meta_get(&st, FSD_NET_CONFIG_META_KEY), *cj = fsd_st_meta_get(&st, FSD_CLARITY_META_KEY),
               *dj = fsd_st_meta_get(&st, FSD_DIFFUSION_META_KEY);
    if (nj) {
        fsd_net_config c;
        fsd_clear_error();
        s = fsd_net_config_from_json(&c, nj, strlen(nj), st.path);
        if (s) fuzz_check_refusal(s);
        else FUZZ_ASSERT(fsd_net_config_validate(&c) == FSD_OK, "accepted net config does not validate");
    }
    if (cj) {
        fsd_clarity_config c;
        fsd_clear_error();
        s = fsd_clarity_config_from_json(&c, cj, strlen(cj), st.path);
        if (s) fuzz_check_refusal(s);
    }
    if (dj) {
        fsd_diffusion_config c;
        fsd_clear_error();
        s = fsd_diffusion_config_from_json(&c, dj, strlen(dj), st.path);
        if (s) fuzz_check_refusal(s);
    }
    fsd_st_close(&st);
    return 0;
}
