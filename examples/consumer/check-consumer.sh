#!/bin/sh
# Builds and runs examples/consumer the two ways a C project gets qaio.
# Registered as meson tests (suite 'consumer') by examples/meson.build.
# SPDX-License-Identifier: GPL-2.0-or-later
#
#   check-consumer.sh subproject MESON SRCROOT WORKDIR
#       Copies the consumer project into WORKDIR/src, makes this source tree
#       its subprojects/qaio (a symlink), configures it with the subproject
#       forced (--force-fallback-for=qaio), builds it and runs it.
#       WORKDIR/build is kept between runs, so only the first run pays for
#       the subproject's own cargo build.
#
#   check-consumer.sh pkgconfig MESON SRCROOT WORKDIR BUILDROOT PREFIX
#       Installs BUILDROOT (this qaio build) into WORKDIR/root with
#       `meson install --destdir`, then compiles the consumer with plain cc
#       and the flags `pkg-config qaio` gives, and runs it.
set -eu

mode=$1 meson=$2 srcroot=$3 work=$4
consumer=$srcroot/examples/consumer
expect='qaio-consumer: BH ran 1 time(s), aio_poll returned true'

check_output() {
    printf '%s\n' "$1"
    case $1 in
    "$expect"*) ;;
    *) echo "unexpected output; wanted a line starting with: $expect" >&2; exit 1 ;;
    esac
}

case $mode in
subproject)
    mkdir -p "$work"
    rm -rf "$work/src"
    mkdir -p "$work/src/subprojects"
    cp "$consumer/meson.build" "$consumer/main.c" "$work/src/"
    ln -s "$srcroot" "$work/src/subprojects/qaio"
    if [ -f "$work/build/build.ninja" ]; then
        "$meson" setup --reconfigure "$work/build" "$work/src" >"$work/setup.log" 2>&1 ||
            { cat "$work/setup.log"; exit 1; }
    else
        rm -rf "$work/build"
        "$meson" setup --force-fallback-for=qaio "$work/build" "$work/src" \
            >"$work/setup.log" 2>&1 || { cat "$work/setup.log"; exit 1; }
    fi
    cat "$work/setup.log"
    # Prove that dependency('qaio') was satisfied by the subproject.
    grep -q "Executing subproject qaio" "$work/setup.log" ||
        { echo "qaio was not built as a subproject" >&2; exit 1; }
    "$meson" compile -C "$work/build"
    check_output "$("$work/build/qaio-consumer")"
    ;;
pkgconfig)
    buildroot=$5 prefix=$6
    rm -rf "$work"
    mkdir -p "$work"
    "$meson" install -C "$buildroot" --no-rebuild --destdir "$work/root" >"$work/install.log" 2>&1 ||
        { cat "$work/install.log"; exit 1; }
    root=$work/root$prefix
    pc=$(find "$root" -name qaio.pc -path '*/pkgconfig/*' | head -n1)
    [ -n "$pc" ] || { echo "qaio.pc was not installed" >&2; cat "$work/install.log"; exit 1; }
    # The installed qaio.pc says prefix=PREFIX; point a copy at the DESTDIR
    # (glib's own .pc must keep its real prefix, so no --define-variable).
    mkdir -p "$work/pkgconfig"
    sed "s|^prefix=.*|prefix=$root|" "$pc" >"$work/pkgconfig/qaio.pc"
    export PKG_CONFIG_PATH="$work/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
    libdir=$(pkg-config --variable=libdir qaio)
    includedir=$(pkg-config --variable=includedir qaio)
    # The installed layout: the real file is the SONAME, the dev symlink
    # points at it, and both header paths exist.
    [ -f "$libdir/libqaio.so.0" ] || { echo "missing $libdir/libqaio.so.0" >&2; exit 1; }
    [ "$(readlink "$libdir/libqaio.so")" = libqaio.so.0 ] ||
        { echo "$libdir/libqaio.so is not a symlink to libqaio.so.0" >&2; exit 1; }
    for h in qemu/aio.h qemu/timer.h qemu/event_notifier.h block/aio.h; do
        [ -f "$includedir/qaio/$h" ] || { echo "missing $includedir/qaio/$h" >&2; exit 1; }
    done
    cflags=$(pkg-config --cflags qaio)
    libs=$(pkg-config --libs qaio)
    echo "pkg-config qaio: $cflags $libs"
    cc=${CC:-cc}
    # block/aio.h, the old path, must forward to qemu/aio.h.
    printf '#include "block/aio.h"\nAioContext *(*new_ctx)(Error **) = aio_context_new;\n' >"$work/old-path.c"
    # shellcheck disable=SC2086 # word splitting of pkg-config output is intended
    $cc -std=gnu11 -Wall -Wextra -Werror -c "$work/old-path.c" -o "$work/old-path.o" $cflags
    # shellcheck disable=SC2086
    $cc -std=gnu11 -Wall -Wextra -Werror "$consumer/main.c" -o "$work/qaio-consumer" $cflags $libs
    readelf -d "$work/qaio-consumer" | grep -q 'NEEDED.*\[libqaio\.so\.0\]' ||
        { echo "qaio-consumer does not record libqaio.so.0 as NEEDED" >&2; exit 1; }
    check_output "$(LD_LIBRARY_PATH=$libdir "$work/qaio-consumer")"
    ;;
*)
    echo "usage: $0 subproject|pkgconfig ..." >&2
    exit 2
    ;;
esac
