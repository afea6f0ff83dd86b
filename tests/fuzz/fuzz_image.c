/* libFuzzer harness: fsd_image_load_mem (PNG, JPEG, BMP, TGA, PNM through the validating wrapper
 * around stb_image). Contract checked on every input:
 *   - a refusal has one line of message;
 *   - an accepted image has a positive size within the pixel limit, 1 or 3 planes and every value
 *     finite in [0, 255];
 *   - small accepted images survive a PNG round trip (encode with fsd_image_encode_png, decode again:
 *     the same size and the 8-bit values the encoder wrote). */
#include "fsdiff/image.h"
#include "fuzz_common.h"

#include <math.h>
#include <stdint.h>

/* Keep the fuzzer inside its memory budget: 2^22 pixels (4 MiB of pixels x 3 planes x 4 bytes). The
 * refusal path for larger headers is the same code as for the default limit of 2^28. */
#define FUZZ_MAX_PIXELS ((int64_t)1 << 22)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fsd_image_set_max_pixels(FUZZ_MAX_PIXELS);
    fsd_image im;
    fsd_clear_error();
    fsd_status s = fsd_image_load_mem(data, size, "fuzz", &im);
    if (s) {
        fuzz_check_refusal(s);
        FUZZ_ASSERT(im.data == NULL && im.w == 0, "refusal left an image behind");
        return 0;
    }
    FUZZ_ASSERT(im.w > 0 && im.h > 0 && (int64_t)im.w * im.h <= FUZZ_MAX_PIXELS, "bad size %dx%d", im.w, im.h);
    FUZZ_ASSERT(im.c == 1 || im.c == 3, "bad channel count %d", im.c);
    size_t n = (size_t)im.w * im.h * im.c;
    for (size_t i = 0; i < n; i++)
        FUZZ_ASSERT(isfinite(im.data[i]) && im.data[i] >= 0.0f && im.data[i] <= 255.0f, "value %g at %zu",
                    (double)im.data[i], i);

    if ((int64_t)im.w * im.h <= 4096) {
        unsigned char *png = NULL;
        size_t np = 0;
        const char *text[2] = {"Software", "fuzz"};
        s = fsd_image_encode_png(&im, text, 1, &png, &np);
        FUZZ_ASSERT(s == FSD_OK, "encoding a decoded image failed: %s", fsd_error_message());
        fsd_image back;
        s = fsd_image_load_mem(png, np, "roundtrip", &back);
        FUZZ_ASSERT(s == FSD_OK, "re-decoding our own PNG failed: %s", fsd_error_message());
        FUZZ_ASSERT(back.w == im.w && back.h == im.h && back.c == im.c, "round trip changed the shape");
        fsd_image_quantize(&im);
        for (size_t i = 0; i < n; i++)
            FUZZ_ASSERT(back.data[i] == im.data[i], "round trip changed value %zu: %g -> %g", i, (double)im.data[i],
                        (double)back.data[i]);
        fsd_image_free(&back);
        fsd_free(png);
    }
    fsd_image_free(&im);
    return 0;
}
