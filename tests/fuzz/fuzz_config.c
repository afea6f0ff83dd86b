/* libFuzzer harness: the JSON parser and the three config parsers (network, clarity encoder,
 * diffusion) on the same bytes. Contract: refusals have one line of message; an accepted config
 * validates, and writing it back out (…_to_json) and parsing that again gives the same config
 * (compared through a second …_to_json). JSON values that parse are walked completely. */
#include "fsdiff/clarity.h"
#include "fsdiff/json.h"
#include "fsdiff/model.h"
#include "fsdiff/nn.h"
#include "fuzz_common.h"

#include <stdint.h>

static int walk(const fsd_json *v, int depth) {
    FUZZ_ASSERT(depth <= 64 + 1, "JSON nesting %d beyond the limit", depth);
    switch (v->type) {
    case FSD_JSON_STRING: FUZZ_ASSERT(v->str != NULL, "string without text"); return 1;
    case FSD_JSON_ARRAY:
    case FSD_JSON_OBJECT: {
        int n = 1;
        FUZZ_ASSERT(v->n >= 0 && (v->n == 0 || v->items), "container without items");
        for (int k = 0; k < v->n; k++) {
            if (v->type == FSD_JSON_OBJECT) {
                FUZZ_ASSERT(v->keys && v->keys[k], "object member without a key");
                FUZZ_ASSERT(fsd_json_get(v, v->keys[k]) != NULL, "key not found");
            }
            n += walk(&v->items[k], depth + 1);
        }
        return n;
    }
    default: return 1;
    }
}

/* text -> config -> json A -> config -> json B; A must equal B */
#define ROUND_TRIP(type, from, to, validate)                                                                           \
    do {                                                                                                               \
        type c1, c2;                                                                                                   \
        fsd_clear_error();                                                                                             \
        fsd_status s_ = from(&c1, text, size, "fuzz.json");                                                            \
        if (s_) {                                                                                                      \
            fuzz_check_refusal(s_);                                                                                    \
            break;                                                                                                     \
        }                                                                                                              \
        FUZZ_ASSERT(validate(&c1) == FSD_OK, #from " accepted a config that does not validate: %s",                    \
                    fsd_error_message());                                                                              \
        char *a = to(&c1);                                                                                             \
        FUZZ_ASSERT(a != NULL, #to " failed");                                                                         \
        s_ = from(&c2, a, strlen(a), "roundtrip");                                                                     \
        FUZZ_ASSERT(s_ == FSD_OK, #from " refused its own output %s: %s", a, fsd_error_message());                     \
        char *b = to(&c2);                                                                                             \
        FUZZ_ASSERT(b && !strcmp(a, b), "round trip changed the config: %s -> %s", a, b ? b : "(null)");              \
        fsd_free(a);                                                                                                   \
        fsd_free(b);                                                                                                   \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data;
    fsd_json j;
    fsd_clear_error();
    fsd_status s = fsd_json_parse(text, size, "fuzz.json", &j);
    if (s) fuzz_check_refusal(s);
    else {
        walk(&j, 0);
        fsd_json_free(&j);
    }
    ROUND_TRIP(fsd_net_config, fsd_net_config_from_json, fsd_net_config_to_json, fsd_net_config_validate);
    ROUND_TRIP(fsd_clarity_config, fsd_clarity_config_from_json, fsd_clarity_config_to_json,
               fsd_clarity_config_validate);
    ROUND_TRIP(fsd_diffusion_config, fsd_diffusion_config_from_json, fsd_diffusion_config_to_json,
               fsd_diffusion_config_validate);
    return 0;
}
