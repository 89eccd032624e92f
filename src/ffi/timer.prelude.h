/*
 * Hand-written part of qemu/timer.h: what cbindgen cannot express.
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifdef QEMU_OSDEP_H
/* Compiled inside QEMU: what QEMU's own qemu/timer.h brings in. */
#include "qemu/bitops.h"
#include "qemu/notify.h"
#include "qemu/host-utils.h"
#else
#include <sys/time.h>
#include <time.h>
#endif


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

/*
 * Host clocks, read directly (not through a QEMUClockType).
 */

/* The largest jump of the host clock not treated as a clock change: 60 s. */
static inline int64_t get_max_clock_jump(void)
{
    return 60 * NANOSECONDS_PER_SECOND;
}

/* Wall-clock time in ns (gettimeofday: microsecond resolution). */
static inline int64_t get_clock_realtime(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return tv.tv_sec * NANOSECONDS_PER_SECOND + tv.tv_usec * 1000;
}

#ifdef QEMU_OSDEP_H
/* Set up by QEMU's util/qemu-timer-common.c. */
extern int64_t clock_start;
extern int use_rt_clock;
#endif

/*
 * Monotonic time in ns.  Inside QEMU, wall-clock time where QEMU found no
 * monotonic clock at start-up (use_rt_clock == 0).
 */
static inline int64_t get_clock(void)
{
    struct timespec ts;

#ifdef QEMU_OSDEP_H
    if (!use_rt_clock) {
        return get_clock_realtime();
    }
#endif
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * NANOSECONDS_PER_SECOND + ts.tv_nsec;
}

/*
 * A fast, fine-grained host cycle counter, for profiling: its unit is the
 * CPU's (TSC ticks on x86, the generic timer on Arm); elsewhere get_clock().
 */
static inline int64_t cpu_get_host_ticks(void)
{
#if defined(__x86_64__) || defined(__i386__)
    return (int64_t)__builtin_ia32_rdtsc();
#elif defined(__aarch64__)
    uint64_t ticks;

    __asm__ __volatile__("mrs %0, cntvct_el0" : "=r"(ticks));
    return (int64_t)ticks;
#else
    return get_clock();
#endif
}

/* A migration stream (QEMU's migration/qemu-file.c), for timer_get/put. */
typedef struct QEMUFile QEMUFile;
