/*
 * qaio-demo: a loopback TCP echo server and its client, both driven by one
 * AioContext.
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The server's listening socket, the connection it accepts and the client's
 * socket are non-blocking fds registered with aio_set_fd_handler().  A bottom
 * half sends each message once the previous one has come back; every 16th
 * message is held back by a pacing QEMUTimer that schedules the BH a couple
 * of milliseconds later, and a deadline QEMUTimer ends a run that hangs.
 * Messages range from a few bytes to 192 KiB, so sockets fill up and the
 * io_write handlers take over until the kernel drains them.
 *
 * The same workload runs under either driver:
 *   qaio-demo           loops on aio_poll(ctx, true), as an IOThread does;
 *   qaio-demo --glib    attaches aio_get_g_source(ctx) to the default
 *                       GMainContext and runs a GMainLoop, as QEMU's main
 *                       loop does.
 *
 * It exits 0 only if every message came back intact before the deadline.
 * QAIO_FDMON=poll|epoll|io_uring picks the fd monitor; the summary says which
 * one ran.
 */
#define _GNU_SOURCE             /* accept4() */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <glib.h>
#include "qemu/aio.h"

#define DEFAULT_MESSAGES    64
#define DEFAULT_TIMEOUT_MS  10000
#define MAX_MESSAGE_LEN     (192 * 1024)
#define PACE_EVERY          16      /* every 16th message is sent by the pacing timer */
#define PACE_DELAY_MS       2
#define IO_CHUNK            (64 * 1024)
/* The server stops reading while this much echo is still unsent. */
#define SERVER_BACKLOG_MAX  (256 * 1024)
/* Small socket buffers, so big messages fill them and io_write handlers run. */
#define SOCKET_BUFFER       (32 * 1024)

/*
 * Exit codes: the workload failed; the demo could not start at all; the
 * monitor forced through QAIO_FDMON is not available here (77, which meson
 * reports as a skipped test).
 */
#define EXIT_WORKLOAD_FAILED 1
#define EXIT_SETUP_FAILED    2
#define EXIT_FDMON_UNAVAILABLE 77

typedef struct Demo Demo;

/* One accepted connection: echoes back whatever it reads. */
typedef struct ServerConn {
    Demo *demo;
    int fd;
    uint8_t *pending;           /* read but not yet written back */
    size_t pending_off, pending_len;
    bool eof;
    bool reading, writing;      /* which handlers are registered */
    struct ServerConn *next;
} ServerConn;

struct Demo {
    AioContext *ctx;
    GMainLoop *loop;            /* set only by the glib driver */
    const char *fdmon_at_start;

    int listen_fd;
    uint16_t port;
    ServerConn *conns;
    int conns_open;

    int client_fd;
    bool client_writing;
    uint8_t *msg;               /* the message in flight */
    size_t msg_len, msg_sent, msg_recv;
    int next_msg, total_msgs;
    int64_t timeout_ms;

    QEMUBH *send_bh;
    QEMUTimer *pace_timer;
    QEMUTimer *deadline_timer;

    /* what happened, for the summary */
    int accepted, echoed;
    uint64_t bytes_sent, bytes_received, server_bytes;
    int bh_runs, pace_fired;
    bool deadline_fired;
    int client_write_waits, server_write_waits, server_read_pauses;
    uint64_t aio_poll_calls, aio_poll_progress;

    bool verbose;
    bool finished;
    char failure[256];
};

static void demo_finish(Demo *d)
{
    d->finished = true;
    if (d->loop) {
        g_main_loop_quit(d->loop);
    }
}

static void G_GNUC_PRINTF(2, 3) demo_fail(Demo *d, const char *fmt, ...)
{
    va_list ap;

    if (!d->failure[0]) {
        va_start(ap, fmt);
        vsnprintf(d->failure, sizeof(d->failure), fmt, ap);
        va_end(ap);
    }
    demo_finish(d);
}

/* Message i: its length and its content are a function of i alone. */
static size_t message_len(int i)
{
    if (i % 4 == 3) {
        return 64 * 1024 + ((size_t)i * 40503u) % (MAX_MESSAGE_LEN - 64 * 1024);
    }
    return 16 + ((size_t)i * 2654435761u) % 4096;
}

static void message_fill(uint8_t *buf, size_t len, int i)
{
    int n = snprintf((char *)buf, len, "qaio-demo message %d\n", i);
    size_t j = n < 0 ? 0 : MIN((size_t)n, len);

    for (; j < len; j++) {
        buf[j] = (uint8_t)(j * 131u + (unsigned)i * 7u + (j >> 9));
    }
}

/* --- the server ------------------------------------------------------- */

static void server_read(void *opaque);
static void server_write(void *opaque);

static void server_close(ServerConn *c)
{
    Demo *d = c->demo;
    ServerConn **p;

    aio_set_fd_handler(d->ctx, c->fd, NULL, NULL, NULL, NULL, NULL);
    close(c->fd);
    for (p = &d->conns; *p != c; p = &(*p)->next) {
        /* find c */
    }
    *p = c->next;
    g_free(c->pending);
    g_free(c);
    d->conns_open--;
}

/* Register exactly the handlers the connection needs now. */
static void server_update_handlers(ServerConn *c)
{
    bool reading = !c->eof && c->pending_len < SERVER_BACKLOG_MAX;
    bool writing = c->pending_len > c->pending_off;

    if (c->reading && !reading && !c->eof) {
        c->demo->server_read_pauses++;
    }
    if (reading != c->reading || writing != c->writing) {
        c->reading = reading;
        c->writing = writing;
        aio_set_fd_handler(c->demo->ctx, c->fd,
                           reading ? server_read : NULL,
                           writing ? server_write : NULL,
                           NULL, NULL, c);
    }
}

/* Write back as much as the socket takes; close once the client is gone. */
static void server_flush(ServerConn *c)
{
    Demo *d = c->demo;

    while (c->pending_off < c->pending_len) {
        ssize_t n = write(c->fd, c->pending + c->pending_off,
                          c->pending_len - c->pending_off);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (!c->writing) {
                    d->server_write_waits++;
                }
                break;
            }
            demo_fail(d, "server: write: %s", strerror(errno));
            server_close(c);
            return;
        }
        c->pending_off += (size_t)n;
        d->server_bytes += (size_t)n;
    }
    if (c->pending_off == c->pending_len) {
        c->pending_off = c->pending_len = 0;
    }

    if (c->eof && c->pending_len == 0) {
        server_close(c);
        if (d->conns_open == 0 && d->next_msg == d->total_msgs) {
            demo_finish(d);
        }
        return;
    }
    server_update_handlers(c);
}

static void server_read(void *opaque)
{
    ServerConn *c = opaque;

    while (!c->eof && c->pending_len < SERVER_BACKLOG_MAX) {
        ssize_t n;

        if (c->pending_off > 0) {
            memmove(c->pending, c->pending + c->pending_off,
                    c->pending_len - c->pending_off);
            c->pending_len -= c->pending_off;
            c->pending_off = 0;
        }
        n = read(c->fd, c->pending + c->pending_len,
                 SERVER_BACKLOG_MAX + IO_CHUNK - c->pending_len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                break;
            }
            demo_fail(c->demo, "server: read: %s", strerror(errno));
            server_close(c);
            return;
        }
        if (n == 0) {
            c->eof = true;
            break;
        }
        c->pending_len += (size_t)n;
    }
    server_flush(c);
}

static void server_write(void *opaque)
{
    server_flush(opaque);
}

static void server_accept(void *opaque)
{
    Demo *d = opaque;

    for (;;) {
        int fd = accept4(d->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        ServerConn *c;

        if (fd < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                demo_fail(d, "server: accept: %s", strerror(errno));
            }
            return;
        }
        c = g_new0(ServerConn, 1);
        c->demo = d;
        c->fd = fd;
        c->pending = g_malloc(SERVER_BACKLOG_MAX + IO_CHUNK);
        c->next = d->conns;
        d->conns = c;
        d->conns_open++;
        d->accepted++;
        server_update_handlers(c);
    }
}

/* --- the client ------------------------------------------------------- */

static void client_read(void *opaque);
static void client_write(void *opaque);
static void client_connected(void *opaque);

static void client_close(Demo *d)
{
    if (d->client_fd >= 0) {
        aio_set_fd_handler(d->ctx, d->client_fd, NULL, NULL, NULL, NULL, NULL);
        close(d->client_fd);
        d->client_fd = -1;
    }
}

static void client_update_handlers(Demo *d)
{
    bool writing = d->msg_sent < d->msg_len;

    if (writing != d->client_writing) {
        d->client_writing = writing;
        if (writing) {
            d->client_write_waits++;
        }
        aio_set_fd_handler(d->ctx, d->client_fd, client_read,
                           writing ? client_write : NULL, NULL, NULL, d);
    }
}

static void client_flush(Demo *d)
{
    while (d->msg_sent < d->msg_len) {
        ssize_t n = write(d->client_fd, d->msg + d->msg_sent, d->msg_len - d->msg_sent);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                break;
            }
            demo_fail(d, "client: write: %s", strerror(errno));
            return;
        }
        d->msg_sent += (size_t)n;
        d->bytes_sent += (size_t)n;
    }
    client_update_handlers(d);
}

static void client_write(void *opaque)
{
    client_flush(opaque);
}

/* The BH: put the next message on the wire. */
static void send_next_bh(void *opaque)
{
    Demo *d = opaque;

    d->bh_runs++;
    if (d->finished) {
        return;
    }
    d->msg_len = message_len(d->next_msg);
    message_fill(d->msg, d->msg_len, d->next_msg);
    d->msg_sent = d->msg_recv = 0;
    client_flush(d);
}

/* The pacing timer: send the held-back message now. */
static void pace_timer_cb(void *opaque)
{
    Demo *d = opaque;

    d->pace_fired++;
    qemu_bh_schedule(d->send_bh);
}

static void deadline_timer_cb(void *opaque)
{
    Demo *d = opaque;

    d->deadline_fired = true;
    demo_fail(d, "deadline of %" PRId64 " ms passed with %d of %d messages echoed",
              d->timeout_ms, d->echoed, d->total_msgs);
}

static void message_echoed(Demo *d)
{
    d->echoed++;
    if (d->verbose) {
        printf("qaio-demo: message %d: %zu bytes echoed\n", d->next_msg, d->msg_len);
    }
    d->next_msg++;
    d->msg_len = d->msg_sent = d->msg_recv = 0;
    if (d->next_msg == d->total_msgs) {
        /* Closing makes the server see EOF; it finishes the run. */
        client_close(d);
    } else if (d->next_msg % PACE_EVERY == 0) {
        timer_mod(d->pace_timer, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + PACE_DELAY_MS);
    } else {
        qemu_bh_schedule(d->send_bh);
    }
}

static void client_read(void *opaque)
{
    Demo *d = opaque;
    uint8_t buf[IO_CHUNK];

    while (d->client_fd >= 0) {
        ssize_t n = read(d->client_fd, buf, sizeof(buf));
        size_t len;

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                demo_fail(d, "client: read: %s", strerror(errno));
                client_close(d);
            }
            return;
        }
        if (n == 0) {
            demo_fail(d, "client: server closed the connection during message %d",
                      d->next_msg);
            client_close(d);
            return;
        }
        len = (size_t)n;
        d->bytes_received += len;
        if (len > d->msg_sent - d->msg_recv) {
            demo_fail(d, "client: %zu unexpected bytes after message %d",
                      len - (d->msg_sent - d->msg_recv), d->next_msg);
            client_close(d);
            return;
        }
        if (memcmp(buf, d->msg + d->msg_recv, len) != 0) {
            demo_fail(d, "client: message %d came back corrupted near byte %zu",
                      d->next_msg, d->msg_recv);
            client_close(d);
            return;
        }
        d->msg_recv += len;
        if (d->msg_recv == d->msg_len) {
            message_echoed(d);
        }
    }
}

/* The non-blocking connect() finished: check how, then start sending. */
static void client_connected(void *opaque)
{
    Demo *d = opaque;
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(d->client_fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) {
        err = errno;
    }
    if (err) {
        demo_fail(d, "client: connect: %s", strerror(err));
        client_close(d);
        return;
    }
    d->client_writing = false;
    aio_set_fd_handler(d->ctx, d->client_fd, client_read, NULL, NULL, NULL, d);
    qemu_bh_schedule(d->send_bh);
}

/* --- set-up, drivers, teardown -------------------------------------------- */

static void set_buffer_sizes(int fd)
{
    int size = SOCKET_BUFFER;

    /* Best effort: the demo works with any size, it only shows less. */
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
}

static bool demo_listen_and_connect(Demo *d)
{
    struct sockaddr_in addr = {
        .sin_family = AF_INET,
        .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
    };
    socklen_t addrlen = sizeof(addr);

    d->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (d->listen_fd < 0 ||
        bind(d->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        listen(d->listen_fd, 4) < 0 ||
        getsockname(d->listen_fd, (struct sockaddr *)&addr, &addrlen) < 0) {
        fprintf(stderr, "qaio-demo: listening socket: %s\n", strerror(errno));
        return false;
    }
    d->port = ntohs(addr.sin_port);
    set_buffer_sizes(d->listen_fd);     /* accepted sockets inherit them */
    aio_set_fd_handler(d->ctx, d->listen_fd, server_accept, NULL, NULL, NULL, d);

    d->client_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (d->client_fd < 0) {
        fprintf(stderr, "qaio-demo: client socket: %s\n", strerror(errno));
        return false;
    }
    set_buffer_sizes(d->client_fd);
    if (connect(d->client_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 &&
        errno != EINPROGRESS) {
        fprintf(stderr, "qaio-demo: connect: %s\n", strerror(errno));
        return false;
    }
    /* Writable means the connection attempt is over, either way. */
    aio_set_fd_handler(d->ctx, d->client_fd, NULL, client_connected, NULL, NULL, d);
    return true;
}

static void demo_teardown(Demo *d)
{
    client_close(d);
    while (d->conns) {
        server_close(d->conns);
    }
    if (d->listen_fd >= 0) {
        aio_set_fd_handler(d->ctx, d->listen_fd, NULL, NULL, NULL, NULL, NULL);
        close(d->listen_fd);
        d->listen_fd = -1;
    }
    timer_free(d->pace_timer);
    timer_free(d->deadline_timer);
    qemu_bh_delete(d->send_bh);
    g_free(d->msg);
}

/*
 * A driver runs the context until demo_finish() has been called, then tears
 * the workload down with demo_teardown() while the context is still set up
 * for that driver.
 */
typedef void DemoDriver(Demo *d);

/* IOThread style: block in aio_poll() until the workload is done. */
static void drive_aio_poll(Demo *d)
{
    while (!d->finished) {
        d->aio_poll_calls++;
        if (aio_poll(d->ctx, true)) {
            d->aio_poll_progress++;
        }
    }
    demo_teardown(d);
}

/* Main-loop style: glib polls and dispatches the context's GSource. */
static void drive_glib(Demo *d)
{
    GSource *source = aio_get_g_source(d->ctx);

    g_source_attach(source, NULL);
    d->loop = g_main_loop_new(NULL, FALSE);
    if (!d->finished) {
        g_main_loop_run(d->loop);
    }
    g_main_loop_unref(d->loop);
    d->loop = NULL;
    /* Handlers go before the source: glib refuses to remove a poll from a
     * destroyed source. */
    demo_teardown(d);
    g_source_destroy(source);
    g_source_unref(source);
}

static void demo_report(Demo *d, const char *driver_name)
{
    const char *fdmon = qaio_context_fdmon_name(d->ctx);

    printf("qaio-demo: driver: %s\n", driver_name);
    if (strcmp(fdmon, d->fdmon_at_start) != 0) {
        printf("qaio-demo: fdmon: %s (started on %s)\n", fdmon, d->fdmon_at_start);
    } else {
        printf("qaio-demo: fdmon: %s\n", fdmon);
    }
    printf("qaio-demo: echo server on 127.0.0.1:%u: %d connection(s) accepted, "
           "%" PRIu64 " bytes echoed\n", (unsigned)d->port, d->accepted, d->server_bytes);
    printf("qaio-demo: messages: %d of %d came back intact "
           "(%" PRIu64 " bytes sent, %" PRIu64 " bytes received)\n",
           d->echoed, d->total_msgs, d->bytes_sent, d->bytes_received);
    printf("qaio-demo: io_write handlers: client waited %d time(s), server %d time(s); "
           "server paused reading %d time(s)\n",
           d->client_write_waits, d->server_write_waits, d->server_read_pauses);
    printf("qaio-demo: bottom half: ran %d time(s)\n", d->bh_runs);
    printf("qaio-demo: timers: pacing timer fired %d time(s); deadline timer (%" PRId64
           " ms) %s\n", d->pace_fired, d->timeout_ms,
           d->deadline_fired ? "FIRED" : "did not fire");
    if (d->aio_poll_calls) {
        printf("qaio-demo: aio_poll: %" PRIu64 " call(s), %" PRIu64 " made progress\n",
               d->aio_poll_calls, d->aio_poll_progress);
    }
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: qaio-demo [--glib] [--messages N] [--timeout-ms MS] [--verbose]\n"
            "  --glib          drive the AioContext from a GMainLoop instead of aio_poll()\n"
            "  --messages N    number of messages to echo (default %d)\n"
            "  --timeout-ms MS deadline for the whole run (default %d)\n"
            "  --verbose       print every message as it comes back\n"
            "QAIO_FDMON=poll|epoll|io_uring forces an fd monitor.\n",
            DEFAULT_MESSAGES, DEFAULT_TIMEOUT_MS);
}

static bool parse_positive(const char *s, long max, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v <= 0 || v > max) {
        return false;
    }
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    Demo demo = {
        .listen_fd = -1,
        .client_fd = -1,
        .total_msgs = DEFAULT_MESSAGES,
        .timeout_ms = DEFAULT_TIMEOUT_MS,
    };
    Demo *d = &demo;
    DemoDriver *driver = drive_aio_poll;
    const char *driver_name = "aio_poll(ctx, true) loop";
    Error *err = NULL;
    long v;
    int i;

    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--glib")) {
            driver = drive_glib;
            driver_name = "GMainLoop with aio_get_g_source(ctx) attached";
        } else if (!strcmp(argv[i], "--messages") && i + 1 < argc &&
                   parse_positive(argv[i + 1], 1000000, &v)) {
            d->total_msgs = (int)v;
            i++;
        } else if (!strcmp(argv[i], "--timeout-ms") && i + 1 < argc &&
                   parse_positive(argv[i + 1], 3600 * 1000, &v)) {
            d->timeout_ms = v;
            i++;
        } else if (!strcmp(argv[i], "--verbose") || !strcmp(argv[i], "-v")) {
            d->verbose = true;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return EXIT_SUCCESS;
        } else {
            usage(stderr);
            return EXIT_SETUP_FAILED;
        }
    }

    d->ctx = aio_context_new(&err);
    if (!d->ctx) {
        const char *forced = getenv("QAIO_FDMON");

        fprintf(stderr, "qaio-demo: aio_context_new: %s\n", error_get_pretty(err));
        error_free(err);
        /* poll(2) is always there, so failing to start it is a real error. */
        if (forced && *forced && strcmp(forced, "poll") != 0) {
            return EXIT_FDMON_UNAVAILABLE;
        }
        return EXIT_SETUP_FAILED;
    }
    qemu_set_current_aio_context(d->ctx);
    d->fdmon_at_start = qaio_context_fdmon_name(d->ctx);

    d->msg = g_malloc(MAX_MESSAGE_LEN);
    d->send_bh = aio_bh_new(d->ctx, send_next_bh, d);
    d->pace_timer = aio_timer_new(d->ctx, QEMU_CLOCK_REALTIME, SCALE_MS, pace_timer_cb, d);
    d->deadline_timer = aio_timer_new(d->ctx, QEMU_CLOCK_REALTIME, SCALE_MS,
                                      deadline_timer_cb, d);
    timer_mod(d->deadline_timer, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + d->timeout_ms);

    if (!demo_listen_and_connect(d)) {
        demo_teardown(d);
        aio_context_unref(d->ctx);
        return EXIT_SETUP_FAILED;
    }

    driver(d);

    demo_report(d, driver_name);
    aio_context_unref(d->ctx);

    if (d->failure[0] || d->echoed != d->total_msgs) {
        printf("qaio-demo: FAILED: %s\n", d->failure[0] ? d->failure : "not every message came back");
        return EXIT_WORKLOAD_FAILED;
    }
    printf("qaio-demo: OK\n");
    return EXIT_SUCCESS;
}
