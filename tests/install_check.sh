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

cat >"$tmp/hello.c" <<'C'
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <usmc.h>

int main(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	struct usmc_info info;
	char buf[6] = "";
	int l = usmc_socket(AF_INET, SOCK_STREAM, IPPROTO_SMC), c, s;

	if (usmc_bind(l, (struct sockaddr *)&a, len) || usmc_listen(l, 8) ||
	    getsockname(l, (struct sockaddr *)&a, &len))
		return 1;
	c = usmc_socket(AF_INET, SOCK_STREAM, IPPROTO_SMC);
	if (usmc_connect(c, (struct sockaddr *)&a, len) || (s = usmc_accept(l, NULL, NULL)) < 0)
		return 2;
	if (usmc_write(c, "hello", 5) != 5 || usmc_read(s, buf, 5) != 5 || strcmp(buf, "hello"))
		return 3;
	if (usmc_info(s, &info, sizeof(info)) || info.mode != USMC_MODE_SMCD)
		return 4;
	printf("%s %s\n", buf, usmc_mode_str(info.mode));
	return 0;
}
C
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
