#!/bin/bash
# SPDX-License-Identifier: MIT
# The image tests/docker.sh runs: Debian 12 made here by debootstrap
# (minbase) and imported into docker, never pulled from a registry.
# Needs root, debootstrap, a Debian mirror and a running docker daemon.
#
#   docker_image.sh [ROOTFS_DIR] [IMAGE]
set -euo pipefail

root=${1:-/var/tmp/usmc-rootfs/bookworm}
image=${2:-usmc-debootstrap:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

[ -x "$root/bin/sh" ] || debootstrap --variant=minbase bookworm "$root" "$mirror"
tar -C "$root" -c . | docker import - "$image"
docker image inspect -f '{{.Id}} {{.Size}}' "$image"
