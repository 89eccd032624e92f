/*
 * Part of test-add-sqe: "qemu/aio.h" included before <liburing.h> (the test
 * program itself uses the other order). Both orders must compile cleanly.
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "qemu/aio.h"
#include <liburing.h>

void prep_nop_other_order(struct io_uring_sqe *sqe, void *opaque);

void prep_nop_other_order(struct io_uring_sqe *sqe, void *opaque)
{
    (void)opaque;
    io_uring_prep_nop(sqe);
}
