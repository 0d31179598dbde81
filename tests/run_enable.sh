#!/bin/sh
# usmc-run --enable/--disable UNIT: the systemd drop-in it writes and removes.
set -eu
run=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
USMC_SYSTEMD_DIR=$dir
export USMC_SYSTEMD_DIR

"$run" --enable nginx >/dev/null
conf=$dir/nginx.service.d/usmc.conf
grep -qx '\[Service\]' "$conf"
lib=$(sed -n 's/^Environment=LD_PRELOAD=//p' "$conf")
[ -r "$lib" ] || { echo "the drop-in preloads '$lib', which is not there"; exit 1; }
# Again: the same file, not a second line.
"$run" --enable nginx.service >/dev/null
[ "$(grep -c LD_PRELOAD "$conf")" = 1 ]
"$run" --disable nginx >/dev/null
[ ! -e "$conf" ] && [ ! -d "$dir/nginx.service.d" ]
# A drop-in directory that holds other files stays.
mkdir "$dir/php-fpm.socket.d" && touch "$dir/php-fpm.socket.d/other.conf"
"$run" --enable php-fpm.socket >/dev/null && "$run" --disable php-fpm.socket >/dev/null
[ -e "$dir/php-fpm.socket.d/other.conf" ]
set +e
"$run" --enable ../etc/passwd 2>/dev/null; [ $? -eq 2 ] || { echo "a path as a unit: not refused"; exit 1; }
"$run" --enable 2>/dev/null; [ $? -eq 2 ] || { echo "no unit: not a usage error"; exit 1; }
echo "run_enable: ok"
