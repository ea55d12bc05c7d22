#!/usr/bin/env bash
# colbert-ai's compiled C++ extensions carried from one GPU session to the next, so a fresh machine
# skips their compile (77-190 s on fresh H100 hosts; carried, they load in 0.07 s):
#
#   bash scripts/gpu_extensions.sh pack EXT_DIR TARBALL     # once: no-op if TARBALL exists or EXT_DIR does not
#   bash scripts/gpu_extensions.sh unpack TARBALL EXT_DIR   # no-op if EXT_DIR exists or TARBALL does not
#
# EXT_DIR is a TORCH_EXTENSIONS_DIR. Build lock files are left out (a stale one makes torch wait forever).
# ninja then finds the objects newer than their sources and builds nothing; on another torch or compiler
# torch's build file changes and it rebuilds. scripts/gpu_session.sh packs, scripts/gpu_run.sh unpacks.
set -euo pipefail
case ${1:-} in
  pack)
    ext=$2; tarball=$3
    [ -d "$ext" ] && [ ! -f "$tarball" ] || exit 0
    tar -cJf "$tarball.part" --exclude='*/lock' -C "$(dirname "$ext")" "$(basename "$ext")"
    mv "$tarball.part" "$tarball"  # whole or not at all: scripts/gpu_poll.sh never fetches a .part
    echo "gpu_extensions: packed $ext into $tarball"
    ;;
  unpack)
    tarball=$2; ext=$3
    [ -f "$tarball" ] && [ ! -d "$ext" ] || exit 0
    mkdir -p "$ext"
    tar -xJf "$tarball" --strip-components=1 -C "$ext"
    echo "gpu_extensions: unpacked $tarball into $ext"
    ;;
  *) echo "usage: gpu_extensions.sh pack EXT_DIR TARBALL | unpack TARBALL EXT_DIR" >&2; exit 2 ;;
esac
