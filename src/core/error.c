/* Thread-local error message; library functions return an fsd_status and describe the problem here. */
#include "fsdiff/core.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char g_msg[1024];

fsd_status fsd_fail(fsd_status code, const char *fmt, ...) {
    /* Format into a local buffer first: callers may pass fsd_error_message() itself as an argument
     * (prefixing a lower layer's message), and vsnprintf must not read the buffer it writes. */
    char tmp[sizeof g_msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    /* One line, always: names from hostile files (chunk types, JSON keys, tensor names, paths) may
     * hold newlines or other control bytes; the CLI prints the message as its single error line. */
    for (char *p = tmp; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    memcpy(g_msg, tmp, sizeof g_msg);
    return code;
}

const char *fsd_error_message(void) { return g_msg; }
void fsd_clear_error(void) { g_msg[0] = 0; }

const char *fsd_status_name(fsd_status s) {
    switch (s) {
    case FSD_OK: return "ok";
    case FSD_ERR_IO: return "i/o error";
    case FSD_ERR_FORMAT: return "format error";
    case FSD_ERR_INVALID: return "invalid argument";
    case FSD_ERR_NOMEM: return "out of memory";
    case FSD_ERR_UNSUPPORTED: return "unsupported";
    case FSD_ERR_INTERNAL: return "internal error";
    }
    return "unknown error";
}
