/* Shared checks for the libFuzzer harnesses (tests/fuzz/fuzz_*.c).
 * A harness reports a finding by abort(): a crash or sanitizer report is one, and so is a broken
 * contract that would otherwise go unnoticed (an error without a message, a message of more than one
 * line, a "successful" load returning impossible values). */
#ifndef FSD_FUZZ_COMMON_H
#define FSD_FUZZ_COMMON_H

#include "fsdiff/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_ASSERT(cond, ...)                                                                                         \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "fuzz contract violated at %s:%d: ", __FILE__, __LINE__);                                  \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fputc('\n', stderr);                                                                                       \
            abort();                                                                                                   \
        }                                                                                                              \
    } while (0)

/* After a refusal: a status in range and a non-empty message that fits on one line (the CLI prints it
 * as its single "fsdiff: error: ..." line). */
static inline void fuzz_check_refusal(fsd_status s) {
    const char *m = fsd_error_message();
    FUZZ_ASSERT(s > FSD_OK && s <= FSD_ERR_INTERNAL, "status %d out of range", (int)s);
    FUZZ_ASSERT(m && *m, "status %d (%s) without a message", (int)s, fsd_status_name(s));
    for (const char *p = m; *p; p++)
        FUZZ_ASSERT((unsigned char)*p >= 0x20 && *p != 0x7f, "control byte 0x%02x in the error message: %s",
                    (unsigned char)*p, m);
}

#endif
