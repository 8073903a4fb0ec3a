#!/usr/bin/env bash
# Builds the golden root filesystem of the simulated bare-metal hosts (e2e/hostsim.rs):
# Debian bookworm, minbase plus PACKAGES, as a zstd tarball. The machine's own apt sources
# are used, so no mirror is named here. The image has an empty machine-id and no SSH host
# keys: every host gets its own when it is created.
#
# usage: hostsim-image.sh OUT.tar.zst PACKAGE[,PACKAGE...]
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 OUT.tar.zst PACKAGE[,PACKAGE...]" >&2
    exit 2
fi
out=$1
packages=$2

sources=/etc/apt/sources.list.d/debian.sources
[ -f "$sources" ] || sources=/etc/apt/sources.list
if [ ! -f "$sources" ]; then
    echo "no apt sources on this machine (looked for /etc/apt/sources.list.d/debian.sources and /etc/apt/sources.list)" >&2
    exit 1
fi
for tool in mmdebstrap zstd; do
    if ! command -v "$tool" >/dev/null; then
        echo "$tool is missing: apt-get install -y mmdebstrap zstd" >&2
        exit 1
    fi
done

case "$out" in
    *.tar.zst) ;;
    *) echo "OUT must end in .tar.zst (mmdebstrap picks the format by the name)" >&2; exit 2 ;;
esac
tmp="${out%.tar.zst}.partial-$$.tar.zst"
trap 'rm -f "$tmp"' EXIT
# The hooks are run by mmdebstrap with the root as $1: the single quotes are meant.
# shellcheck disable=SC2016
mmdebstrap --quiet --variant=minbase --include="$packages" \
    --customize-hook='truncate -s 0 "$1/etc/machine-id"' \
    --customize-hook='rm -f "$1"/etc/ssh/ssh_host_*' \
    --customize-hook='rm -f "$1/var/lib/dbus/machine-id"' \
    bookworm "$tmp" "$sources"
mv "$tmp" "$out"
