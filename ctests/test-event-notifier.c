/*
 * The EventNotifier API on its own (aio-behaviour.md section 11.1): init,
 * set, test_and_clear, the fds, adopting an eventfd, cleanup. Dispatch of
 * notifiers through an AioContext is covered by test-fd-handler.c (S8-S11).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "common.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

static bool fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1 || errno != EBADF;
}

static bool fd_readable(int fd)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    int r = poll(&pfd, 1, 0);

    g_assert_cmpint(r, >=, 0);
    return r == 1 && (pfd.revents & POLLIN);
}

/* True if fd is an eventfd, according to /proc/self/fdinfo. */
static bool fd_is_eventfd(int fd)
{
    char path[64];
    gchar *contents = NULL;
    bool ret;

    snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
    if (!g_file_get_contents(path, &contents, NULL, NULL)) {
        return false;
    }
    ret = strstr(contents, "eventfd-count:") != NULL;
    g_free(contents);
    return ret;
}

static void test_init_inactive(void)
{
    EventNotifier e;
    int fd;

    g_assert_cmpint(event_notifier_init(&e, 0), ==, 0);
    fd = event_notifier_get_fd(&e);
    g_assert_cmpint(fd, >=, 0);
    g_assert_false(fd_readable(fd));
    g_assert_cmpint(event_notifier_test_and_clear(&e), ==, 0);
    event_notifier_cleanup(&e);
}

static void test_init_active(void)
{
    EventNotifier e;

    g_assert_cmpint(event_notifier_init(&e, 1), ==, 0);
    g_assert_true(fd_readable(event_notifier_get_fd(&e)));
    g_assert_cmpint(event_notifier_test_and_clear(&e), ==, 1);
    g_assert_cmpint(event_notifier_test_and_clear(&e), ==, 0);
    g_assert_false(fd_readable(event_notifier_get_fd(&e)));
    event_notifier_cleanup(&e);
}

/* The notifier is a non-blocking, close-on-exec eventfd used for both ends. */
static void test_fds(void)
{
    EventNotifier e;
    int fd;

    g_assert_cmpint(event_notifier_init(&e, 0), ==, 0);
    fd = event_notifier_get_fd(&e);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(event_notifier_get_wfd(&e), ==, fd);
    g_assert_true(fd_is_eventfd(fd));
    g_assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
    g_assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    event_notifier_cleanup(&e);
}

static void test_set_clear(void)
{
    EventNotifier e;
    int fd;

    g_assert_cmpint(event_notifier_init(&e, 0), ==, 0);
    fd = event_notifier_get_fd(&e);

    g_assert_cmpint(event_notifier_set(&e), ==, 0);
    g_assert_true(fd_readable(fd));
    g_assert_cmpint(event_notifier_test_and_clear(&e), ==, 1);
    g_assert_false(fd_readable(fd));
    g_assert_cmpint(event_notifier_test_and_clear(&e), ==, 0);

    /* Two sets, one clear: the clear takes everything. */
    g_assert_cmpint(event_notifier_set(&e), ==, 0);
    g_assert_cmpint(event_notifier_set(&e), ==, 0);
    g_assert_cmpint(event_notifier_test_and_clear(&e), ==, 1);
    g_assert_cmpint(event_notifier_test_and_clear(&e), ==, 0);
    g_assert_false(fd_readable(fd));
    event_notifier_cleanup(&e);
}

/* set writes the 8-byte value 1: two sets leave the eventfd counter at 2. */
static void test_set_writes_one(void)
{
    EventNotifier e;
    uint64_t value = 0;

    g_assert_cmpint(event_notifier_init(&e, 0), ==, 0);
    g_assert_cmpint(event_notifier_set(&e), ==, 0);
    g_assert_cmpint(event_notifier_set(&e), ==, 0);
    g_assert_cmpint(read(event_notifier_get_fd(&e), &value, sizeof(value)), ==, sizeof(value));
    g_assert_cmpuint(value, ==, 2);
    g_assert_cmpint(event_notifier_test_and_clear(&e), ==, 0);

    /* An active notifier starts at 1. */
    event_notifier_cleanup(&e);
    g_assert_cmpint(event_notifier_init(&e, 1), ==, 0);
    g_assert_cmpint(read(event_notifier_get_fd(&e), &value, sizeof(value)), ==, sizeof(value));
    g_assert_cmpuint(value, ==, 1);
    event_notifier_cleanup(&e);
}

/* A write by someone else on the fd is seen by test_and_clear. */
static void test_external_write(void)
{
    EventNotifier e;
    uint64_t one = 1;

    g_assert_cmpint(event_notifier_init(&e, 0), ==, 0);
    g_assert_cmpint(write(event_notifier_get_wfd(&e), &one, sizeof(one)), ==, sizeof(one));
    g_assert_cmpint(event_notifier_test_and_clear(&e), ==, 1);
    g_assert_cmpint(event_notifier_test_and_clear(&e), ==, 0);
    event_notifier_cleanup(&e);
}

/* event_notifier_init_fd adopts an existing eventfd for both ends; cleanup
 * closes it. */
static void test_init_fd(void)
{
    EventNotifier e;
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    uint64_t value = 0;

    g_assert_cmpint(fd, >=, 0);
    event_notifier_init_fd(&e, fd);
    g_assert_cmpint(event_notifier_get_fd(&e), ==, fd);
    g_assert_cmpint(event_notifier_get_wfd(&e), ==, fd);

    g_assert_cmpint(event_notifier_test_and_clear(&e), ==, 0);
    g_assert_cmpint(event_notifier_set(&e), ==, 0);
    g_assert_cmpint(read(fd, &value, sizeof(value)), ==, sizeof(value));
    g_assert_cmpuint(value, ==, 1);

    g_assert_cmpint(event_notifier_set(&e), ==, 0);
    g_assert_cmpint(event_notifier_test_and_clear(&e), ==, 1);
    g_assert_false(fd_readable(fd));

    event_notifier_cleanup(&e);
    g_assert_false(fd_is_open(fd));
}

/* Cleanup resets the fds to -1 and is idempotent; afterwards set fails
 * with -1 and test_and_clear reports nothing. */
static void test_cleanup(void)
{
    EventNotifier e;
    int fd;

    g_assert_cmpint(event_notifier_init(&e, 1), ==, 0);
    fd = event_notifier_get_fd(&e);
    event_notifier_cleanup(&e);
    g_assert_false(fd_is_open(fd));
    g_assert_cmpint(event_notifier_get_fd(&e), ==, -1);
    g_assert_cmpint(event_notifier_get_wfd(&e), ==, -1);

    event_notifier_cleanup(&e);
    g_assert_cmpint(event_notifier_get_fd(&e), ==, -1);

    g_assert_cmpint(event_notifier_set(&e), ==, -1);
    g_assert_cmpint(event_notifier_test_and_clear(&e), ==, 0);

    /* It can be initialised again. */
    g_assert_cmpint(event_notifier_init(&e, 0), ==, 0);
    g_assert_cmpint(event_notifier_set(&e), ==, 0);
    g_assert_cmpint(event_notifier_test_and_clear(&e), ==, 1);
    event_notifier_cleanup(&e);
}

/*
 * A notifier that was never initialised (zero-filled, or with fds that
 * belong to someone else but initialized == false): cleanup does nothing and
 * in particular closes nothing; set returns -1; test_and_clear returns 0.
 */
static void test_uninitialised(void)
{
    EventNotifier zero;
    EventNotifier other;
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    bool fd0_open = fd_is_open(0);
    uint64_t one = 1;

    memset(&zero, 0, sizeof(zero));
    g_assert_cmpint(event_notifier_set(&zero), ==, -1);
    g_assert_cmpint(event_notifier_test_and_clear(&zero), ==, 0);
    event_notifier_cleanup(&zero);
    g_assert_cmpint(fd_is_open(0), ==, fd0_open);

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(write(fd, &one, sizeof(one)), ==, sizeof(one));
    memset(&other, 0, sizeof(other));
    other.rfd = fd;
    other.wfd = fd;
    other.initialized = false;
    g_assert_cmpint(event_notifier_set(&other), ==, -1);
    g_assert_cmpint(event_notifier_test_and_clear(&other), ==, 0);
    g_assert_true(fd_readable(fd)); /* not consumed */
    event_notifier_cleanup(&other);
    g_assert_true(fd_is_open(fd));
    g_assert_cmpint(other.rfd, ==, fd);
    close(fd);
}

/* Many notifiers at once: each one's state is its own. */
static void test_independent(void)
{
    EventNotifier e[8];

    for (int i = 0; i < 8; i++) {
        g_assert_cmpint(event_notifier_init(&e[i], i % 2), ==, 0);
    }
    for (int i = 0; i < 8; i++) {
        for (int j = 0; j < i; j++) {
            g_assert_cmpint(event_notifier_get_fd(&e[i]), !=, event_notifier_get_fd(&e[j]));
        }
    }
    for (int i = 0; i < 8; i++) {
        g_assert_cmpint(event_notifier_test_and_clear(&e[i]), ==, i % 2);
    }
    for (int i = 0; i < 8; i++) {
        event_notifier_cleanup(&e[i]);
    }
}

int main(int argc, char **argv)
{
    test_init(&argc, &argv);

    g_test_add_func("/event-notifier/init/inactive", test_init_inactive);
    g_test_add_func("/event-notifier/init/active", test_init_active);
    g_test_add_func("/event-notifier/fds", test_fds);
    g_test_add_func("/event-notifier/set-clear", test_set_clear);
    g_test_add_func("/event-notifier/set-writes-one", test_set_writes_one);
    g_test_add_func("/event-notifier/external-write", test_external_write);
    g_test_add_func("/event-notifier/init-fd", test_init_fd);
    g_test_add_func("/event-notifier/cleanup", test_cleanup);
    g_test_add_func("/event-notifier/uninitialised", test_uninitialised);
    g_test_add_func("/event-notifier/independent", test_independent);

    return g_test_run();
}
