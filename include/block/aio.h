/*
 * qaio: QEMU's AioContext event loop as a C library.
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * QEMU moved this header from block/aio.h to qemu/aio.h; code written
 * against either path compiles unchanged.  Hand-written, not generated.
 */
#ifndef QAIO_BLOCK_AIO_H
#define QAIO_BLOCK_AIO_H

#include "qemu/aio.h"

#endif
