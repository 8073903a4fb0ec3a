#!/usr/bin/env bash
# Builds medos's release artifacts into OUT_DIR (default: dist/):
#
#   medos-VERSION-linux-MACHINE.tar.gz   bin/medos, systemd/*.service, installer/{install.sh,ip-detect},
#                                        share/medos/universe (the default package repository),
#                                        SHA256SUMS (sha256sum -c inside the unpacked directory)
#   medos_VERSION_ARCH.deb               /opt/medos/bin/medos (+ /usr/bin/medos), the units in
#                                        /lib/systemd/system, /usr/share/medos/{installer,universe}, and the
#                                        conffile /etc/default/medos; starts nothing by itself
#   SHA256SUMS                           of both
#
# Usage: bash packaging/build.sh [OUT_DIR]
# The binary is built with `cargo build --release --locked` (into $CARGO_TARGET_DIR or
# target/); MEDOS_BIN=PATH packages an existing binary instead. Needs dpkg-deb for the .deb.
set -euo pipefail

die() {
    echo "build.sh: error: $*" >&2
    exit 1
}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$(mkdir -p "${1:-$repo/dist}" && cd "${1:-$repo/dist}" && pwd)
cd "$repo"
command -v dpkg-deb >/dev/null || die "dpkg-deb is missing (apt-get install dpkg)"

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[ -n "$version" ] || die "no version in Cargo.toml"
machine=$(uname -m)
arch=$(dpkg --print-architecture 2>/dev/null || echo "$machine")

if [ -n "${MEDOS_BIN:-}" ]; then
    bin=$MEDOS_BIN
else
    cargo build --release --locked
    bin=${CARGO_TARGET_DIR:-$repo/target}/release/medos
fi
if [ ! -f "$bin" ] || [ ! -x "$bin" ]; then
    die "$bin is not an executable file"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The tarball.
name=medos-$version-linux-$machine
tree=$work/$name
install -D -m 0755 "$bin" "$tree/bin/medos"
install -d -m 0755 "$tree/systemd" "$tree/installer"
install -m 0644 systemd/*.service "$tree/systemd/"
install -m 0755 installer/install.sh installer/ip-detect "$tree/installer/"
install -m 0644 README.md "$tree/README.md"
# The default package repository (Universe layout).
mkdir -p "$tree/share/medos" && cp -R universe "$tree/share/medos/universe"
(cd "$tree" && find . -type f -printf '%P\n' | LC_ALL=C sort | xargs sha256sum >"$work/sums")
mv "$work/sums" "$tree/SHA256SUMS"
tar --owner=0 --group=0 --numeric-owner --sort=name -czf "$out/$name.tar.gz" -C "$work" "$name"

# The .deb.
deb=$work/deb
install -D -m 0755 "$bin" "$deb/opt/medos/bin/medos"
install -d -m 0755 "$deb/usr/bin" "$deb/lib/systemd/system" "$deb/usr/share/medos/installer" "$deb/DEBIAN"
ln -s /opt/medos/bin/medos "$deb/usr/bin/medos"
install -m 0644 systemd/*.service "$deb/lib/systemd/system/"
install -m 0755 installer/install.sh installer/ip-detect "$deb/usr/share/medos/installer/"
cp -R universe "$deb/usr/share/medos/universe"
install -D -m 0644 packaging/deb/medos.default "$deb/etc/default/medos"
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" packaging/deb/control.in >"$deb/DEBIAN/control"
echo /etc/default/medos >"$deb/DEBIAN/conffiles"
install -m 0755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm "$deb/DEBIAN/"
dpkg-deb --root-owner-group -Zxz --build "$deb" "$out/medos_${version}_${arch}.deb" >/dev/null

(cd "$out" && sha256sum "$name.tar.gz" "medos_${version}_${arch}.deb" >SHA256SUMS)
echo "built in $out:" >&2
(cd "$out" && ls -l "$name.tar.gz" "medos_${version}_${arch}.deb" SHA256SUMS) >&2
