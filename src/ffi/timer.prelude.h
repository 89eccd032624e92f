/*
 * Hand-written part of qemu/timer.h: what cbindgen cannot express.
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

/* Nanoseconds per unit of a timer's scale. */
#define SCALE_MS 1000000
#define SCALE_US 1000
#define SCALE_NS 1

#define NANOSECONDS_PER_SECOND 1000000000LL

/*
 * The clocks timers run on.  REALTIME: monotonic host time.  VIRTUAL: guest
 * time; qaio has no guest, so it reads the monotonic clock, and it starts
 * disabled (see qemu_clock_enable()).  HOST: wall-clock time, which may jump.
 * VIRTUAL_RT: host time while the VM runs; monotonic in qaio.
 */
typedef enum {
    QEMU_CLOCK_REALTIME = 0,
    QEMU_CLOCK_VIRTUAL = 1,
    QEMU_CLOCK_HOST = 2,
    QEMU_CLOCK_VIRTUAL_RT = 3,
    QEMU_CLOCK_MAX
} QEMUClockType;

/*
 * Timer attributes (QEMUTimer.attributes).  EXTERNAL marks a timer whose
 * callback acts outside the guest; qaio stores the bits without using them.
 */
#define QEMU_TIMER_ATTR_EXTERNAL ((int)1)
#define QEMU_TIMER_ATTR_ALL 0xffffffff

/* A timer callback; `void (*cb)(void *opaque)` below is the same type. */
typedef void QEMUTimerCB(void *opaque);
typedef void QEMUTimerListNotifyCB(void *opaque, QEMUClockType type);

/* A migration stream (QEMU's migration/qemu-file.c), for timer_get/put. */
typedef struct QEMUFile QEMUFile;
