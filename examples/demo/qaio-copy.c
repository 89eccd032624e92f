/*
 * qaio-copy: copies a file with io_uring reads and writes that ride the
 * AioContext's own ring (aio_add_sqe), driven by aio_poll() or, with
 * --glib, by a GMainLoop.  Several blocks are in flight at once; each read
 * completion submits the matching write from its CqeHandler callback.
 *
 *   qaio-copy [--glib] [--block-kib N] [--depth N] SRC DST
 *   qaio-copy --self-test [--glib]   copy a generated 8 MiB file and compare
 *
 * Exit status: 0 copied (and, with --self-test, verified), 1 failed,
 * 77 the context does not run on io_uring (aio_has_io_uring() is false).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "qemu/aio.h"

typedef struct Copy Copy;

/* One block in flight: read into buf, then write it out. */
typedef struct {
    CqeHandler handler;     /* first: the callback gets a CqeHandler * */
    Copy *copy;
    uint8_t *buf;
    uint64_t offset;
    uint32_t len;
    uint32_t done;          /* bytes written so far (short writes resume) */
    bool writing;
} Block;

struct Copy {
    AioContext *ctx;
    GMainLoop *loop;        /* NULL when aio_poll drives */
    int in_fd, out_fd;
    uint64_t size, next_offset;
    uint32_t block_size;
    int in_flight;
    int reads, writes;
    bool failed;
};

static void block_cb(CqeHandler *h);

static void prep_read(struct io_uring_sqe *sqe, void *opaque)
{
    Block *b = opaque;
    sqe->opcode = IORING_OP_READ;
    sqe->fd = b->copy->in_fd;
    sqe->addr = (uintptr_t)b->buf;
    sqe->len = b->len;
    sqe->off = b->offset;
}

static void prep_write(struct io_uring_sqe *sqe, void *opaque)
{
    Block *b = opaque;
    sqe->opcode = IORING_OP_WRITE;
    sqe->fd = b->copy->out_fd;
    sqe->addr = (uintptr_t)(b->buf + b->done);
    sqe->len = b->len - b->done;
    sqe->off = b->offset + b->done;
}

/* Start the next block with this buffer, or retire it. */
static void block_start(Block *b)
{
    Copy *c = b->copy;
    if (c->failed || c->next_offset >= c->size) {
        c->in_flight--;
        if (c->in_flight == 0 && c->loop) {
            g_main_loop_quit(c->loop);
        }
        return;
    }
    b->offset = c->next_offset;
    b->len = (uint32_t)MIN((uint64_t)c->block_size, c->size - c->next_offset);
    b->done = 0;
    b->writing = false;
    c->next_offset += b->len;
    b->handler.cb = block_cb;
    c->reads++;
    aio_add_sqe(prep_read, b, &b->handler);
}

static void block_cb(CqeHandler *h)
{
    Block *b = (Block *)h;
    Copy *c = b->copy;
    int res = h->cqe.res;

    if (res < 0 || (res == 0 && b->len > b->done)) {
        fprintf(stderr, "qaio-copy: %s at offset %llu failed: %s\n",
                b->writing ? "write" : "read", (unsigned long long)b->offset,
                res < 0 ? strerror(-res) : "unexpected end of file");
        c->failed = true;
        block_start(b);
        return;
    }
    if (!b->writing) {
        b->len = (uint32_t)res;      /* a short read near EOF */
        b->writing = true;
    } else {
        b->done += (uint32_t)res;
        if (b->done == b->len) {
            block_start(b);
            return;
        }
    }
    c->writes++;
    aio_add_sqe(prep_write, b, &b->handler);
}

static bool copy_file(Copy *c, int depth, bool glib)
{
    Block *blocks = g_new0(Block, depth);
    for (int i = 0; i < depth; i++) {
        blocks[i].copy = c;
        blocks[i].buf = g_malloc(c->block_size);
    }
    c->in_flight = depth;
    for (int i = 0; i < depth; i++) {
        block_start(&blocks[i]);
    }
    if (glib) {
        GMainContext *mc = g_main_context_new();
        GSource *src = aio_get_g_source(c->ctx);
        g_source_attach(src, mc);
        c->loop = g_main_loop_new(mc, FALSE);
        g_main_context_push_thread_default(mc);
        if (c->in_flight) {
            g_main_loop_run(c->loop);
        }
        g_main_context_pop_thread_default(mc);
        g_main_loop_unref(c->loop);
        c->loop = NULL;
        g_source_destroy(src);
        g_source_unref(src);
        g_main_context_unref(mc);
    } else {
        while (c->in_flight) {
            aio_poll(c->ctx, true);
        }
    }
    for (int i = 0; i < depth; i++) {
        g_free(blocks[i].buf);
    }
    g_free(blocks);
    return !c->failed;
}

static bool make_test_file(const char *path, uint64_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        return false;
    }
    uint32_t x = 2463534242u;
    for (uint64_t i = 0; i < size; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        fputc((int)(x & 0xff), f);
    }
    return fclose(f) == 0;
}

static bool same_contents(const char *a, const char *b)
{
    gchar *da, *db;
    gsize la, lb;
    bool same = false;
    if (g_file_get_contents(a, &da, &la, NULL)) {
        if (g_file_get_contents(b, &db, &lb, NULL)) {
            same = la == lb && memcmp(da, db, la) == 0;
            g_free(db);
        }
        g_free(da);
    }
    return same;
}

int main(int argc, char **argv)
{
    bool glib = false, self_test = false;
    long block_kib = 64, depth = 8;
    const char *paths[2] = { NULL, NULL };
    int npaths = 0;
    char *tmpdir = NULL, *src_path = NULL, *dst_path = NULL;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--glib")) {
            glib = true;
        } else if (!strcmp(argv[i], "--self-test")) {
            self_test = true;
        } else if (!strcmp(argv[i], "--block-kib") && i + 1 < argc) {
            block_kib = strtol(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--depth") && i + 1 < argc) {
            depth = strtol(argv[++i], NULL, 10);
        } else if (argv[i][0] != '-' && npaths < 2) {
            paths[npaths++] = argv[i];
        } else {
            fprintf(stderr, "usage: qaio-copy [--glib] [--block-kib N] [--depth N] "
                    "(SRC DST | --self-test)\n");
            return 1;
        }
    }
    if (block_kib < 1 || block_kib > 65536 || depth < 1 || depth > 1024 ||
        (!self_test && npaths != 2)) {
        fprintf(stderr, "qaio-copy: bad arguments (see the comment at the top)\n");
        return 1;
    }

    AioContext *ctx = aio_context_new(&error_fatal);
    qemu_set_current_aio_context(ctx);
    printf("qaio-copy: fdmon: %s, driver: %s\n", qaio_context_fdmon_name(ctx),
           glib ? "glib" : "aio_poll");
    if (!aio_has_io_uring()) {
        printf("qaio-copy: the context does not use io_uring; nothing to do\n");
        qemu_set_current_aio_context(NULL);
        aio_context_unref(ctx);
        return 77;
    }

    if (self_test) {
        tmpdir = g_dir_make_tmp("qaio-copy-XXXXXX", NULL);
        src_path = g_build_filename(tmpdir, "src", NULL);
        dst_path = g_build_filename(tmpdir, "dst", NULL);
        if (!tmpdir || !make_test_file(src_path, 8 * 1024 * 1024 + 12345)) {
            fprintf(stderr, "qaio-copy: cannot create the test file\n");
            return 1;
        }
        paths[0] = src_path;
        paths[1] = dst_path;
    }

    Copy c = { .ctx = ctx, .block_size = (uint32_t)block_kib * 1024 };
    struct stat st;
    c.in_fd = open(paths[0], O_RDONLY | O_CLOEXEC);
    c.out_fd = open(paths[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (c.in_fd < 0 || c.out_fd < 0 || fstat(c.in_fd, &st) < 0) {
        fprintf(stderr, "qaio-copy: %s: %s\n", c.in_fd < 0 ? paths[0] : paths[1],
                strerror(errno));
        return 1;
    }
    c.size = (uint64_t)st.st_size;
    bool ok = copy_file(&c, (int)depth, glib);
    ok = close(c.out_fd) == 0 && ok;
    close(c.in_fd);
    printf("qaio-copy: %llu bytes, %d reads, %d writes, %ld in flight: %s\n",
           (unsigned long long)c.size, c.reads, c.writes, depth, ok ? "ok" : "FAILED");

    if (ok && self_test) {
        ok = same_contents(src_path, dst_path);
        printf("qaio-copy: contents %s\n", ok ? "identical" : "DIFFER");
    }
    if (self_test) {
        unlink(src_path);
        unlink(dst_path);
        rmdir(tmpdir);
        g_free(src_path);
        g_free(dst_path);
        g_free(tmpdir);
    }
    qemu_set_current_aio_context(NULL);
    aio_context_unref(ctx);
    return ok ? 0 : 1;
}
