#!/bin/sh
# The installed files as a user meets them: installed under one prefix,
# moved elsewhere, then used there.  A program built with pkg-config and
# one built with find_package(usmc) talk through shared memory; usmc-run
# finds its library in its private directory.
set -eu
build=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cmake --install "$build" --prefix "$tmp/first" >/dev/null
mv "$tmp/first" "$tmp/moved"
p=$tmp/moved
libdir=$(dirname "$(find "$p" -name 'libusmc.so.0' | head -1)")

cp "$src/tests/install_hello.c" "$tmp/hello.c"
PKG_CONFIG_PATH=$libdir/pkgconfig
export PKG_CONFIG_PATH
# shellcheck disable=SC2046
cc -Wall -Werror -o "$tmp/hello" "$tmp/hello.c" $(pkg-config --cflags --libs usmc)
LD_LIBRARY_PATH=$libdir "$tmp/hello" | grep -qx "hello SMCD"
echo "pkg-config: built against $libdir, shared memory: ok"

mkdir "$tmp/cm"
cat >"$tmp/cm/CMakeLists.txt" <<'C'
cmake_minimum_required(VERSION 3.18)
project(hello C)
find_package(usmc 0.1 REQUIRED)
add_executable(hello ../hello.c)
target_link_libraries(hello PRIVATE usmc::usmc_static)
C
cmake -S "$tmp/cm" -B "$tmp/cm/b" -DCMAKE_PREFIX_PATH="$p" >/dev/null
cmake --build "$tmp/cm/b" >/dev/null
"$tmp/cm/b/hello" | grep -qx "hello SMCD"
echo "find_package(usmc): static build, shared memory: ok"

# usmc-run, moved with its prefix, preloads its own library.
preload=$("$p/bin/usmc-run" sh -c 'echo "$LD_PRELOAD"')
case $preload in
"$(cd "$p" && pwd -P)"/lib*/usmc/libusmc-preload.so.0) echo "usmc-run: preloads $preload" ;;
*) echo "usmc-run preloads '$preload', not the moved prefix's"; exit 1 ;;
esac
"$p/bin/usmc-run" --check-policy - </dev/null >/dev/null
echo "install_check: ok"
