/* SPDX-License-Identifier: MIT */
/* What every C test binary shares: `ok N - name` / `not ok N - name` lines, and the summary line
 * `c-tests NAME: N passed, N failed` that tools/run-tests.sh adds up. Included once per test file. */
#ifndef ET_TEST_TAP_H
#define ET_TEST_TAP_H

#include <stdio.h>

static int tap_passed, tap_failed;

/* Records one check. */
static void ok(int cond, const char *name)
{
    if (cond)
        tap_passed++;
    else
        tap_failed++;
    printf("%sok %d - %s\n", cond ? "" : "not ", tap_passed + tap_failed, name);
}

/* Prints the summary line; the binary's exit status (non-zero if any check failed). */
static int tap_done(const char *suite)
{
    printf("c-tests %s: %d passed, %d failed\n", suite, tap_passed, tap_failed);
    return tap_failed ? 1 : 0;
}

#endif
