#!/bin/sh
# Build the Debian package with dpkg-deb only (no debhelper): `make deb`.
# The content is exactly `make install` with Debian's paths (PREFIX=/usr,
# units in /lib/systemd/system, the library in the multiarch dir), staged
# in $BUILD/deb/root; the maintainer scripts come from scripts/packaging/deb.
# Run after `make build lib man`. Output: $DEBOUT/govscsi_<version>_<arch>.deb
# (DEBOUT defaults to $BUILD).
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
: "${BUILD:=build}"
: "${VERSION:=$(cat internal/version/VERSION)}"
: "${DEBOUT:=$BUILD}"
: "${DEBREVISION:=1}"
: "${MAINTAINER:=govscsi developers <govscsi@localhost>}"
case $BUILD in /*) ;; *) BUILD=$top/$BUILD ;; esac # absolute from here on

arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
work="$BUILD/deb"
root="$work/root"
rm -rf "$work"
mkdir -p "$root/DEBIAN"

# The same manifest as make install.
DESTDIR="$root" PREFIX=/usr LIBDIR="/usr/lib/$multiarch" SYSCONFDIR=/etc \
	SYSTEMDUNITDIR=/lib/systemd/system UDEVRULESDIR=/lib/udev/rules.d \
	XEN_SCRIPT_DIR=/etc/xen/scripts BUILD="$BUILD" VERSION="$VERSION" \
	scripts/packaging/install.sh install >/dev/null

# Debian ships stripped objects (make install keeps the symbols).
for f in $(find "$root" -type f | sort); do
	if [ "$(head -c 4 "$f" | od -An -c | tr -d ' ')" = '177ELF' ]; then
		strip --remove-section=.comment --remove-section=.note --strip-unneeded "$f"
	fi
done

# Debian's documentation files.
doc="$root/usr/share/doc/govscsi"
install -d "$doc"
install -m 0644 scripts/packaging/deb/copyright "$doc/copyright"
date=$(git log -1 --format=%cD 2>/dev/null || date -R)
printf 'govscsi (%s-%s) unstable; urgency=medium\n\n  * Built from %s.\n\n -- %s  %s\n' \
	"$VERSION" "$DEBREVISION" "$(git describe --always --dirty 2>/dev/null || echo 'a source tree')" \
	"$MAINTAINER" "$date" | gzip -9n >"$doc/changelog.Debian.gz"

# Depends: what the ELF files link (dpkg-shlibdeps reads the symbols files
# of the installed libxen* packages), plus the tools the hotplug scripts use.
mkdir -p "$work/shlibs/debian"
printf 'Source: govscsi\n\nPackage: govscsi\nArchitecture: any\n' >"$work/shlibs/debian/control"
elfs=""
for f in $(find "$root" -type f | sort); do
	if [ "$(head -c 4 "$f" | od -An -c | tr -d ' ')" = '177ELF' ]; then
		elfs="$elfs -e$f"
	fi
done
# shellcheck disable=SC2086 # one -e argument per ELF file
shlibs=$(cd "$work/shlibs" && dpkg-shlibdeps -O --ignore-missing-info $elfs 2>/dev/null |
	sed -n 's/^shlibs:Depends=//p')
depends="$shlibs, xenstore-utils, init-system-helpers (>= 1.52)"

size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<EOF
Package: govscsi
Version: $VERSION-$DEBREVISION
Architecture: $arch
Maintainer: $MAINTAINER
Installed-Size: $size
Depends: $depends
Recommends: xen-utils-common
Suggests: targetcli-fb
Section: admin
Priority: optional
Homepage: https://github.com/govscsi/govscsi
Description: Xen PV SCSI (vscsi) for a stock Xen host
 govscsi gives an upstream Xen host the PV SCSI devices xl does not know:
 the xl-vscsi toolstack commands (scsi-attach, scsi-detach, scsi-list,
 apply, create), the vscsi-autoattach daemon that attaches the vscsi=
 devices of domains started by plain xl create, and libgovscsi, a C API
 for other toolstacks.
EOF

# Configuration files: everything under /etc.
(cd "$root" && find etc -type f | sort | sed 's|^|/|') >"$root/DEBIAN/conffiles"
[ -s "$root/DEBIAN/conffiles" ] || rm -f "$root/DEBIAN/conffiles"

# The library's shlibs entry, for packages linking libgovscsi.
echo "libgovscsi 0 govscsi (>= $VERSION)" >"$root/DEBIAN/shlibs"

for s in postinst prerm postrm triggers; do
	install -m 0755 "scripts/packaging/deb/$s" "$root/DEBIAN/$s"
done
chmod 0644 "$root/DEBIAN/triggers" "$root/DEBIAN/shlibs"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | sort | xargs md5sum) >"$root/DEBIAN/md5sums"

# Reproducible: every file dated from the last commit (SOURCE_DATE_EPOCH).
: "${SOURCE_DATE_EPOCH:=$(git log -1 --format=%ct 2>/dev/null || date +%s)}"
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
export SOURCE_DATE_EPOCH

mkdir -p "$DEBOUT"
out="$DEBOUT/govscsi_${VERSION}-${DEBREVISION}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$out" >/dev/null
echo "$out"
