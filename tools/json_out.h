/* SPDX-License-Identifier: MIT */
/* The one writer of JSON strings for the tools' --json output. */
#ifndef USMC_JSON_OUT_H
#define USMC_JSON_OUT_H

#include <stddef.h>

/*
 * Prints s (at most max bytes, up to its NUL) to stdout as a JSON string,
 * quotes included.  Whatever the bytes (a process names itself), the
 * output is valid JSON: quotes, backslashes and control characters are
 * escaped, and bytes that are not UTF-8 come out as \u00XX.  NULL is null.
 */
void json_string(const char *s, size_t max);

#endif
