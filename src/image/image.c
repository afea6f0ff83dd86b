/* Image planes: allocation, validated decoding (stb_image) and 8-bit PNG encoding with tEXt chunks.
 *
 * Decoding never trusts stb_image alone to notice damage: stb happily returns an image from a
 * truncated JPEG or BMP (it reads zeros past the end). So the bytes are fed through callbacks that
 * record any attempt to read past the end of the buffer, and PNG files additionally get a chunk walk
 * (lengths inside the file, CRC of every critical chunk, IEND present) before stb sees them. */
#include "fsdiff/image.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <stb_image.h>
#include <stb_image_write.h>

/* Defined (extern) by stb_image_write's implementation in stb_impl.c but not declared in its public
 * part; returns a malloc'd PNG. */
unsigned char *stbi_write_png_to_mem(const unsigned char *pixels, int stride_bytes, int x, int y, int n, int *out_len);

/* ---------------------------------------------------------------- planes */

fsd_status fsd_image_alloc(fsd_image *im, int w, int h, int c) {
    memset(im, 0, sizeof *im);
    if (w <= 0 || h <= 0 || (c != 1 && c != 3))
        return fsd_fail(FSD_ERR_INVALID, "image of %dx%d with %d channels is not allowed", w, h, c);
    size_t n = (size_t)w * (size_t)h * (size_t)c;
    im->data = fsd_calloc(n, sizeof(float));
    if (!im->data) return FSD_ERR_NOMEM;
    im->w = w;
    im->h = h;
    im->c = c;
    return FSD_OK;
}

void fsd_image_free(fsd_image *im) {
    if (!im) return;
    fsd_free(im->data);
    memset(im, 0, sizeof *im);
}

fsd_status fsd_image_copy(fsd_image *dst, const fsd_image *src) {
    fsd_status s = fsd_image_alloc(dst, src->w, src->h, src->c);
    if (s) return s;
    memcpy(dst->data, src->data, (size_t)src->w * src->h * src->c * sizeof(float));
    return FSD_OK;
}

/* ---------------------------------------------------------------- CRC-32 (PNG, ISO 3309) */

static uint32_t g_crc_table[256];
static pthread_once_t g_crc_once = PTHREAD_ONCE_INIT;

static void crc_build(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1; /* reflected poly 0x04C11DB7 */
        g_crc_table[n] = c;
    }
}

static void crc_init(void) { pthread_once(&g_crc_once, crc_build); }

static uint32_t crc_update(uint32_t crc, const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++) crc = g_crc_table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return crc;
}

static uint32_t be32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void put_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static const unsigned char k_png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};

/* Walk the chunk list of a PNG: every chunk inside the buffer, critical chunks (upper-case first
 * letter) with a correct CRC, IHDR first, and an IEND. Ancillary chunks with a bad CRC are ignored
 * (as libpng does by default); stb skips them anyway. */
static fsd_status png_check_chunks(const unsigned char *b, size_t n, const char *label, uint32_t *w, uint32_t *h) {
    crc_init();
    *w = *h = 0;
    size_t pos = 8;
    int first = 1, colour_type = -1, have_plte = 0;
    while (1) {
        if (n - pos < 12)
            return fsd_fail(FSD_ERR_FORMAT, "%s: truncated PNG (file ends after %zu bytes, before the IEND chunk)",
                            label, n);
        uint32_t len = be32(b + pos);
        const unsigned char *type = b + pos + 4;
        if (len > 0x7FFFFFFFu)
            return fsd_fail(FSD_ERR_FORMAT, "%s: corrupt PNG (chunk length %u at byte %zu)", label, len, pos);
        if ((size_t)len > n - pos - 12)
            return fsd_fail(FSD_ERR_FORMAT, "%s: truncated PNG (chunk '%.4s' at byte %zu needs %u bytes, file has %zu)",
                            label, type, pos, len + 12u, n - pos);
        for (int i = 0; i < 4; i++) {
            unsigned char t = type[i];
            if (!((t >= 'A' && t <= 'Z') || (t >= 'a' && t <= 'z')))
                return fsd_fail(FSD_ERR_FORMAT, "%s: corrupt PNG (invalid chunk type at byte %zu)", label, pos);
        }
        if (first && (memcmp(type, "IHDR", 4) != 0 || len != 13))
            return fsd_fail(FSD_ERR_FORMAT, "%s: corrupt PNG (first chunk is not a 13-byte IHDR)", label);
        first = 0;
        int critical = !(type[0] & 0x20);
        if (critical) {
            uint32_t crc = crc_update(0xFFFFFFFFu, type, 4 + (size_t)len) ^ 0xFFFFFFFFu;
            if (crc != be32(type + 4 + len))
                return fsd_fail(FSD_ERR_FORMAT, "%s: corrupt PNG (CRC mismatch in chunk '%.4s' at byte %zu)", label,
                                type, pos);
        }
        if (!memcmp(type, "IHDR", 4) && len == 13) {
            *w = be32(type + 4);
            *h = be32(type + 8);
            colour_type = type[4 + 9];
        }
        if (!memcmp(type, "PLTE", 4)) have_plte = 1;
        /* stb only says "not of any known type" for this one: name the missing chunk instead */
        if (!memcmp(type, "IDAT", 4) && colour_type == 3 && !have_plte)
            return fsd_fail(FSD_ERR_FORMAT, "%s: corrupt PNG (palette image without a PLTE chunk before its data)", label);
        if (!memcmp(type, "IEND", 4)) return FSD_OK;
        pos += 12 + (size_t)len;
    }
}

/* Walk the marker segments of a JPEG: every segment inside the file, entropy-coded data after each
 * SOS skipped up to the next real marker, and an EOI at the end. Huffman tables (DHT) are checked
 * to define at most 256 symbols each: the stb_image shipped by Debian (2.27) does not check this and
 * writes past its table for such files. */
static fsd_status jpeg_check_markers(const unsigned char *b, size_t n, const char *label) {
    size_t pos = 0;
    while (b[pos] == 0xFF) pos++;
    pos++; /* after SOI (format_name checked it is there) */
    while (1) {
        if (pos >= n) return fsd_fail(FSD_ERR_FORMAT, "%s: truncated JPEG (no end-of-image marker)", label);
        if (b[pos] != 0xFF)
            return fsd_fail(FSD_ERR_FORMAT, "%s: corrupt JPEG (expected a marker at byte %zu)", label, pos);
        while (pos < n && b[pos] == 0xFF) pos++; /* fill bytes */
        if (pos >= n) return fsd_fail(FSD_ERR_FORMAT, "%s: truncated JPEG (no end-of-image marker)", label);
        unsigned m = b[pos++];
        if (m == 0xD9) return FSD_OK;                       /* EOI */
        if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) continue; /* TEM, RSTn: no payload */
        if (m == 0xD8 || m == 0x00)
            return fsd_fail(FSD_ERR_FORMAT, "%s: corrupt JPEG (unexpected marker 0x%02X at byte %zu)", label, m, pos - 2);
        if (n - pos < 2) return fsd_fail(FSD_ERR_FORMAT, "%s: truncated JPEG (segment header cut)", label);
        size_t len = ((size_t)b[pos] << 8) | b[pos + 1];
        if (len < 2) return fsd_fail(FSD_ERR_FORMAT, "%s: corrupt JPEG (segment length %zu at byte %zu)", label, len, pos);
        if (len > n - pos)
            return fsd_fail(FSD_ERR_FORMAT, "%s: truncated JPEG (segment 0x%02X at byte %zu needs %zu bytes, %zu left)",
                            label, m, pos - 2, len, n - pos);
        if (m == 0xC4) { /* DHT: one or more tables of 1 + 16 + sum(counts) bytes */
            size_t q = pos + 2, end = pos + len;
            while (q < end) {
                if (end - q < 17) return fsd_fail(FSD_ERR_FORMAT, "%s: corrupt JPEG (short Huffman table)", label);
                size_t sym = 0;
                for (int i = 1; i <= 16; i++) sym += b[q + i];
                if (sym > 256 || sym > end - q - 17)
                    return fsd_fail(FSD_ERR_FORMAT, "%s: corrupt JPEG (Huffman table with %zu symbols)", label, sym);
                q += 17 + sym;
            }
        }
        pos += len;
        if (m == 0xDA) { /* SOS: skip entropy-coded data; FF00 is a stuffed byte, FFD0-D7 restarts */
            while (pos + 1 < n) {
                if (b[pos] == 0xFF) {
                    unsigned nx = b[pos + 1];
                    if (nx == 0x00 || (nx >= 0xD0 && nx <= 0xD7)) { pos += 2; continue; }
                    if (nx != 0xFF) break; /* a marker: next segment */
                }
                pos++;
            }
            if (pos + 1 >= n) return fsd_fail(FSD_ERR_FORMAT, "%s: truncated JPEG (scan data runs to the end of the file)", label);
        }
    }
}

/* Binary PNM header (P5/P6): width, height and maxval, each after whitespace and '#' comments, read
 * the way stb_image reads them. stb 2.27 accumulates the digits in an int without an overflow check
 * (undefined behaviour for a 10-digit width, found by fuzzing): numbers too large for an image are
 * refused here, before stb parses them. */
static fsd_status pnm_check_header(const unsigned char *b, size_t n, const char *label) {
    static const char *what[3] = {"width", "height", "maximum value"};
    static const long limit[3] = {1L << 24, 1L << 24, 65535}; /* stb's STBI_MAX_DIMENSIONS; 16 bits */
    size_t pos = 2;
    for (int k = 0; k < 3; k++) {
        for (;;) { /* whitespace, then a comment up to the end of its line, repeated */
            while (pos < n && (b[pos] == ' ' || (b[pos] >= '\t' && b[pos] <= '\r'))) pos++;
            if (pos >= n || b[pos] != '#') break;
            while (pos < n && b[pos] != '\n' && b[pos] != '\r') pos++;
        }
        long v = 0;
        for (; pos < n && b[pos] >= '0' && b[pos] <= '9'; pos++) {
            v = v * 10 + (b[pos] - '0');
            if (v > limit[k])
                return fsd_fail(FSD_ERR_FORMAT, "%s: corrupt PNM (%s above %ld in the header)", label, what[k], limit[k]);
        }
    }
    return FSD_OK;
}

/* Lower bound of the bytes an uncompressed image of w x h needs for its pixels (0 when compressed or
 * not known): binary PNM (samples of 1 or 2 bytes), BMP without compression (rows padded to 4 bytes),
 * TGA types 1-3 (a format name of "image" with a working stbi_info can only be TGA: every other
 * format we build has a signature). */
static uint64_t uncompressed_bytes(const char *fmt, const unsigned char *b, size_t n, int w, int h) {
    if (!strcmp(fmt, "PNM") && (b[1] == '5' || b[1] == '6')) {
        /* the third number of the header is maxval (pnm_check_header has bounded all three) */
        size_t pos = 2;
        long v[3] = {0, 0, 0};
        for (int k = 0; k < 3; k++) {
            for (;;) {
                while (pos < n && (b[pos] == ' ' || (b[pos] >= '\t' && b[pos] <= '\r'))) pos++;
                if (pos >= n || b[pos] != '#') break;
                while (pos < n && b[pos] != '\n' && b[pos] != '\r') pos++;
            }
            for (; pos < n && b[pos] >= '0' && b[pos] <= '9'; pos++) v[k] = v[k] * 10 + (b[pos] - '0');
        }
        return (uint64_t)w * h * (b[1] == '6' ? 3 : 1) * (v[2] > 255 ? 2 : 1);
    }
    if (!strcmp(fmt, "BMP") && n >= 34) {
        uint32_t hsz = b[14] | (uint32_t)b[15] << 8 | (uint32_t)b[16] << 16 | (uint32_t)b[17] << 24;
        unsigned bpp = b[28] | (unsigned)b[29] << 8, comp = b[30] | (unsigned)b[31] << 8;
        if (hsz < 40 || (comp != 0 && comp != 3) || bpp == 0) return 0;
        uint64_t row = ((uint64_t)w * bpp + 31) / 32 * 4;
        return row * (uint64_t)(h - 1) + ((uint64_t)w * bpp + 7) / 8;
    }
    if (!strcmp(fmt, "image") && n >= 18 && b[2] >= 1 && b[2] <= 3)
        return (uint64_t)w * h * ((b[16] + 7u) / 8u);
    return 0;
}

/* ---------------------------------------------------------------- decoding */

static int64_t g_max_pixels = (int64_t)1 << 28;

void fsd_image_set_max_pixels(int64_t max_pixels) { g_max_pixels = max_pixels > 0 ? max_pixels : (int64_t)1 << 28; }

/* A memory stream for stb's callback API that notices reads past the end of the data.
 * stb reads in two ways: refills of its 128-byte look-ahead buffer (a short refill at the end of the
 * file is normal; an empty one means the decoder wanted bytes beyond the end), and exact-size block
 * reads straight into the destination (stbi__getn, used for raw pixel rows, whose failure some
 * loaders ignore; there a short read means truncation). Every stb entry point starts a fresh context
 * with a refill, so the first buffer address seen after a reset is the refill buffer. */
typedef struct mem_stream {
    const unsigned char *b;
    size_t n, pos;
    const char *refill_buf;
    int overrun;
} mem_stream;

static void ms_reset(mem_stream *s) {
    s->pos = 0;
    s->refill_buf = NULL;
}

static int ms_read(void *user, char *data, int size) {
    mem_stream *s = user;
    if (size <= 0) return 0;
    if (!s->refill_buf) s->refill_buf = data;
    size_t left = s->n - s->pos;
    if (left == 0 || (data != s->refill_buf && left < (size_t)size)) s->overrun = 1;
    size_t k = left < (size_t)size ? left : (size_t)size;
    memcpy(data, s->b + s->pos, k);
    s->pos += k;
    return (int)k;
}

static void ms_skip(void *user, int n) {
    mem_stream *s = user;
    if (n < 0) {
        size_t back = (size_t)(-(long)n);
        s->pos = back > s->pos ? 0 : s->pos - back;
        return;
    }
    if ((size_t)n > s->n - s->pos) {
        s->overrun = 1;
        s->pos = s->n;
    } else {
        s->pos += (size_t)n;
    }
}

static int ms_eof(void *user) {
    mem_stream *s = user;
    return s->pos >= s->n;
}

static const stbi_io_callbacks k_ms_io = {ms_read, ms_skip, ms_eof};

static const char *stb_reason(void) {
    const char *r = stbi_failure_reason();
    return r && *r ? r : "unknown decoder failure";
}

static const char *format_name(const unsigned char *b, size_t n) {
    if (n >= 8 && !memcmp(b, k_png_sig, 8)) return "PNG";
    if (n >= 2 && b[0] == 0xFF) { /* stb takes any run of FF then D8 as the start of a JPEG */
        size_t i = 0;
        while (i < n && b[i] == 0xFF) i++;
        if (i < n && b[i] == 0xD8) return "JPEG";
    }
    if (n >= 2 && b[0] == 'B' && b[1] == 'M') return "BMP";
    if (n >= 2 && b[0] == 'P' && b[1] >= '1' && b[1] <= '6') return "PNM";
    return "image";
}

fsd_status fsd_image_load_mem(const unsigned char *buf, size_t n, const char *label, fsd_image *out) {
    memset(out, 0, sizeof *out);
    if (!label) label = "<memory>";
    if (!buf || n == 0) return fsd_fail(FSD_ERR_FORMAT, "%s: empty file, not an image", label);
    if (n > (size_t)INT_MAX) return fsd_fail(FSD_ERR_UNSUPPORTED, "%s: file of %zu bytes is too large", label, n);
    const char *fmt = format_name(buf, n);
    if (!strcmp(fmt, "PNG")) {
        /* structure first, then the size from IHDR: refused before stb allocates anything */
        uint32_t pw, ph;
        fsd_status s = png_check_chunks(buf, n, label, &pw, &ph);
        if (s) return s;
        if (pw == 0 || ph == 0) return fsd_fail(FSD_ERR_FORMAT, "%s: PNG has a zero size (%ux%u)", label, pw, ph);
        if ((int64_t)pw * ph > g_max_pixels)
            return fsd_fail(FSD_ERR_NOMEM, "%s: %ux%u = %lld pixels is over the limit of %lld", label, pw, ph,
                            (long long)pw * ph, (long long)g_max_pixels);
    } else if (!strcmp(fmt, "JPEG")) {
        fsd_status s = jpeg_check_markers(buf, n, label);
        if (s) return s;
    } else if (!strcmp(fmt, "PNM") && (buf[1] == '5' || buf[1] == '6')) {
        fsd_status s = pnm_check_header(buf, n, label);
        if (s) return s;
    }

    /* Header only: size and channel count, validated before any pixel memory is allocated. */
    mem_stream ms = {buf, n, 0, NULL, 0};
    int w = 0, h = 0, comp = 0;
    if (!stbi_info_from_callbacks(&k_ms_io, &ms, &w, &h, &comp))
        return fsd_fail(FSD_ERR_FORMAT, "%s: not a readable %s (%s)", label, fmt, stb_reason());
    if (w <= 0 || h <= 0) return fsd_fail(FSD_ERR_FORMAT, "%s: %s has a zero size (%dx%d)", label, fmt, w, h);
    if ((int64_t)w * h > g_max_pixels)
        return fsd_fail(FSD_ERR_NOMEM, "%s: %dx%d = %lld pixels is over the limit of %lld", label, w, h,
                        (long long)w * h, (long long)g_max_pixels);
    if (comp < 1 || comp > 4) return fsd_fail(FSD_ERR_FORMAT, "%s: unsupported channel count %d", label, comp);
    /* Uncompressed formats store every pixel: a file too short for its header's size is refused here,
     * before stb allocates the whole image (a 60-byte BMP claiming 16384 x 16384 would otherwise cost
     * a 768 MiB allocation and a decode of zeros before the overrun is noticed). */
    uint64_t need = uncompressed_bytes(fmt, buf, n, w, h);
    if (need > n)
        return fsd_fail(FSD_ERR_FORMAT, "%s: truncated %s (a %dx%d image needs %llu bytes of pixels, the file has %zu)",
                        label, fmt, w, h, (unsigned long long)need, n);

    ms_reset(&ms);
    int is16 = stbi_is_16_bit_from_callbacks(&k_ms_io, &ms);

    ms_reset(&ms);
    ms.overrun = 0;
    int lw = 0, lh = 0, lc = 0;
    void *pix = is16 ? (void *)stbi_load_16_from_callbacks(&k_ms_io, &ms, &lw, &lh, &lc, 0)
                     : (void *)stbi_load_from_callbacks(&k_ms_io, &ms, &lw, &lh, &lc, 0);
    if (!pix) return fsd_fail(FSD_ERR_FORMAT, "%s: corrupt or truncated %s (%s)", label, fmt, stb_reason());
    if (ms.overrun) {
        stbi_image_free(pix);
        return fsd_fail(FSD_ERR_FORMAT, "%s: truncated %s (the pixel data runs past the end of the %zu-byte file)",
                        label, fmt, n);
    }
    if (lw != w || lh != h || lc < 1 || lc > 4) {
        stbi_image_free(pix);
        return fsd_fail(FSD_ERR_FORMAT, "%s: inconsistent %s header (%dx%dx%d vs %dx%dx%d)", label, fmt, w, h, comp,
                        lw, lh, lc);
    }

    /* interleaved -> planes; grey(+alpha) -> 1 plane, RGB(A) -> 3 planes, alpha dropped */
    int c = lc <= 2 ? 1 : 3;
    fsd_status s = fsd_image_alloc(out, w, h, c);
    if (s) {
        stbi_image_free(pix);
        return s;
    }
    size_t hw = (size_t)w * h;
    for (int ch = 0; ch < c; ch++) {
        float *dst = out->data + ch * hw;
        if (is16) {
            const uint16_t *src = (const uint16_t *)pix + ch;
            for (size_t i = 0; i < hw; i++) dst[i] = (float)src[i * lc] / 257.0f;
        } else {
            const unsigned char *src = (const unsigned char *)pix + ch;
            for (size_t i = 0; i < hw; i++) dst[i] = (float)src[i * lc];
        }
    }
    stbi_image_free(pix);
    return FSD_OK;
}

fsd_status fsd_image_load(const char *path, fsd_image *out) {
    memset(out, 0, sizeof *out);
    struct stat st;
    if (stat(path, &st) != 0) return fsd_fail(FSD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) return fsd_fail(FSD_ERR_IO, "%s: is a directory, not an image file", path);
    unsigned char *buf;
    size_t n;
    fsd_status s = fsd_read_file(path, &buf, &n);
    if (s) return s;
    s = fsd_image_load_mem(buf, n, path, out);
    fsd_free(buf);
    return s;
}

/* ---------------------------------------------------------------- encoding */

void fsd_image_quantize(fsd_image *im) {
    size_t n = (size_t)im->w * im->h * im->c;
    for (size_t i = 0; i < n; i++) {
        float v = im->data[i];
        /* NaN compares false everywhere: send it to 0 */
        v = v >= 0.0f ? v : 0.0f;
        v = v <= 255.0f ? v : 255.0f;
        im->data[i] = floorf(v + 0.5f);
    }
}

/* PNG spec: keyword 1..79 printable Latin-1, no leading, trailing or double spaces. */
static int keyword_ok(const char *k) {
    size_t L = strlen(k);
    if (L < 1 || L > 79 || k[0] == ' ' || k[L - 1] == ' ') return 0;
    for (size_t i = 0; i < L; i++) {
        unsigned char ch = (unsigned char)k[i];
        if (!((ch >= 32 && ch <= 126) || ch >= 161)) return 0;
        if (ch == ' ' && k[i + 1] == ' ') return 0;
    }
    return 1;
}

fsd_status fsd_image_encode_png(const fsd_image *im, const char *const *text, int n_text, unsigned char **out,
                                size_t *n_out) {
    *out = NULL;
    *n_out = 0;
    if (!im || !im->data || im->w <= 0 || im->h <= 0 || (im->c != 1 && im->c != 3))
        return fsd_fail(FSD_ERR_INVALID, "encode PNG: bad image (%dx%d, %d channels)", im ? im->w : 0,
                        im ? im->h : 0, im ? im->c : 0);
    if ((int64_t)im->w * im->h * im->c > INT_MAX / 2)
        return fsd_fail(FSD_ERR_UNSUPPORTED, "encode PNG: %dx%d image is too large", im->w, im->h);
    if (n_text < 0 || (n_text > 0 && !text)) return fsd_fail(FSD_ERR_INVALID, "encode PNG: bad text list");
    size_t text_bytes = 0;
    for (int k = 0; k < n_text; k++) {
        const char *key = text[2 * k], *val = text[2 * k + 1];
        if (!key || !keyword_ok(key))
            return fsd_fail(FSD_ERR_INVALID, "encode PNG: '%s' is not a valid PNG text keyword", key ? key : "(null)");
        if (!val) return fsd_fail(FSD_ERR_INVALID, "encode PNG: text '%s' has no value", key);
        size_t L = strlen(key) + 1 + strlen(val);
        if (L > 0x7FFFFFFFu - 12) return fsd_fail(FSD_ERR_INVALID, "encode PNG: text '%s' is too long", key);
        text_bytes += 12 + L;
    }

    /* planes -> interleaved 8-bit, rounded and clipped like fsd_image_quantize */
    size_t hw = (size_t)im->w * im->h;
    unsigned char *pix = fsd_alloc(hw * im->c);
    if (!pix) return FSD_ERR_NOMEM;
    for (int ch = 0; ch < im->c; ch++) {
        const float *src = im->data + ch * hw;
        for (size_t i = 0; i < hw; i++) {
            float v = src[i];
            v = v >= 0.0f ? v : 0.0f;
            v = v <= 255.0f ? v : 255.0f;
            pix[i * im->c + ch] = (unsigned char)(v + 0.5f);
        }
    }
    int len = 0;
    unsigned char *png = stbi_write_png_to_mem(pix, im->w * im->c, im->w, im->h, im->c, &len);
    fsd_free(pix);
    if (!png || len < 33) {
        free(png);
        return fsd_fail(FSD_ERR_NOMEM, "encode PNG: the encoder failed (out of memory?)");
    }

    /* Splice the tEXt chunks right after IHDR (signature 8 + IHDR 25 bytes): readers see them
     * before the pixel data, and the chunk order stays legal. */
    size_t n = (size_t)len + text_bytes;
    unsigned char *buf = fsd_alloc(n);
    if (!buf) {
        free(png);
        return FSD_ERR_NOMEM;
    }
    crc_init();
    memcpy(buf, png, 33);
    size_t pos = 33;
    for (int k = 0; k < n_text; k++) {
        const char *key = text[2 * k], *val = text[2 * k + 1];
        size_t kl = strlen(key), vl = strlen(val);
        put_be32(buf + pos, (uint32_t)(kl + 1 + vl));
        memcpy(buf + pos + 4, "tEXt", 4);
        memcpy(buf + pos + 8, key, kl);
        buf[pos + 8 + kl] = 0; /* keyword separator */
        memcpy(buf + pos + 9 + kl, val, vl);
        uint32_t crc = crc_update(0xFFFFFFFFu, buf + pos + 4, 4 + kl + 1 + vl) ^ 0xFFFFFFFFu;
        put_be32(buf + pos + 9 + kl + vl, crc);
        pos += 12 + kl + 1 + vl;
    }
    memcpy(buf + pos, png + 33, (size_t)len - 33);
    free(png);
    *out = buf;
    *n_out = n;
    return FSD_OK;
}

fsd_status fsd_image_save_png(const char *path, const fsd_image *im, const char *const *text, int n_text) {
    unsigned char *buf;
    size_t n;
    fsd_status s = fsd_image_encode_png(im, text, n_text, &buf, &n);
    if (s) return s;
    s = fsd_write_file_atomic(path, buf, n);
    fsd_free(buf);
    return s;
}
