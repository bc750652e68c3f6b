/* fuzz.h - what the libFuzzer targets share: an assertion that aborts (so libFuzzer records the
 * input as a crash) with the file, line and the property that broke. */
#ifndef HL_FUZZ_H
#define HL_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* FUZZ_ASSERT: a property every input must keep; a breach is a finding, reported like a crash. */
#define FUZZ_ASSERT(cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: property broken: %s: ", __FILE__, __LINE__, #cond);            \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
