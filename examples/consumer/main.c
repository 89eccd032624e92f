/*
 * The smallest useful qaio program: one AioContext, one bottom half, one
 * aio_poll() iteration.
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <stdio.h>
#include <stdlib.h>
#include "qemu/aio.h"

static void hello_bh(void *opaque)
{
    int *runs = opaque;

    (*runs)++;
}

int main(void)
{
    Error *err = NULL;
    AioContext *ctx = aio_context_new(&err);
    QEMUBH *bh;
    bool progress;
    int runs = 0;

    if (!ctx) {
        fprintf(stderr, "qaio-consumer: aio_context_new: %s\n", error_get_pretty(err));
        error_free(err);
        return EXIT_FAILURE;
    }
    qemu_set_current_aio_context(ctx);

    bh = aio_bh_new(ctx, hello_bh, &runs);
    qemu_bh_schedule(bh);
    progress = aio_poll(ctx, false);
    qemu_bh_delete(bh);

    printf("qaio-consumer: BH ran %d time(s), aio_poll returned %s, fdmon: %s\n",
           runs, progress ? "true" : "false", qaio_context_fdmon_name(ctx));
    aio_context_unref(ctx);
    return runs == 1 && progress ? EXIT_SUCCESS : EXIT_FAILURE;
}
