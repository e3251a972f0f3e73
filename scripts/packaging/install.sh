#!/bin/sh
# Install or uninstall govscsi like a Xen component:
#   scripts/packaging/install.sh install|uninstall|list
# called by `make install` / `make uninstall` (which export the variables
# below). The one manifest (the files function) drives all three actions,
# so uninstall removes exactly what install put.
#
# Layout (PREFIX=/usr/local for `make install`, /usr for the Debian package):
#   $SBINDIR          xl-vscsi, vscsi-autoattach, vscsi-backend (next to xl)
#   $LIBEXECDIR       vscsi-hotplug (the hotplug script's binary; /usr/lib/govscsi)
#   $LIBDIR           libgovscsi.so.0 (soname) + libgovscsi.so dev link
#   $INCLUDEDIR       govscsi.h;  $PKGCONFIGDIR govscsi.pc
#   $MANDIR           xl-vscsi.1, xl-vscsi.cfg.5, vscsi-autoattach.8, vscsi-backend.8
#   $XEN_SCRIPT_DIR   the hotplug script vscsi-govscsi (Xen's own dir,
#                     /etc/xen/scripts, whatever PREFIX; its binary path rewritten)
#   $SYSTEMDUNITDIR   vscsi-autoattach.service, vscsi-backend.service (ExecStart
#                     points into $SBINDIR, --config into $SYSCONFDIR/govscsi)
#   $DOCDIR           examples/vscsi-backend.yaml (the backend's optional config)
#   $UDEVRULESDIR     65-govscsi-vscsi.rules (its script path rewritten)
#   $SYSCONFDIR/govscsi/autoattach.yaml (never overwritten; removed by
#                     uninstall only while it is unchanged)
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"

: "${DESTDIR:=}"
: "${PREFIX:=/usr/local}"
: "${SBINDIR:=$PREFIX/sbin}"
: "${LIBDIR:=$PREFIX/lib}"
: "${INCLUDEDIR:=$PREFIX/include}"
: "${PKGCONFIGDIR:=$LIBDIR/pkgconfig}"
: "${MANDIR:=$PREFIX/share/man}"
: "${LIBEXECDIR:=$PREFIX/lib/govscsi}"
: "${DOCDIR:=$PREFIX/share/doc/govscsi}"
: "${SYSCONFDIR:=/etc}"
: "${XEN_SCRIPT_DIR:=/etc/xen/scripts}"
: "${SYSTEMDUNITDIR:=$PREFIX/lib/systemd/system}"
if [ "$PREFIX" = /usr ]; then : "${UDEVRULESDIR:=/lib/udev/rules.d}"; else : "${UDEVRULESDIR:=/etc/udev/rules.d}"; fi
: "${BUILD:=build}"
: "${VERSION:=$(cat internal/version/VERSION)}"
gen="$BUILD/install" # generated files (paths substituted)

# files prints the manifest: "<mode> <source> <destination>" per file,
# "link <target> <destination>" per symlink, "conf <source> <destination>"
# for the configuration. Sources are relative to the top of the tree.
files() {
	for b in xl-vscsi vscsi-autoattach vscsi-backend; do
		echo "0755 $BUILD/$b $SBINDIR/$b"
	done
	echo "0755 $BUILD/vscsi-hotplug $LIBEXECDIR/vscsi-hotplug"
	echo "0755 $gen/vscsi-govscsi $XEN_SCRIPT_DIR/vscsi-govscsi"
	echo "0644 $gen/65-govscsi-vscsi.rules $UDEVRULESDIR/65-govscsi-vscsi.rules"
	echo "0644 $BUILD/libgovscsi.so $LIBDIR/libgovscsi.so.0"
	echo "link libgovscsi.so.0 $LIBDIR/libgovscsi.so"
	echo "0644 c/include/govscsi.h $INCLUDEDIR/govscsi.h"
	echo "0644 $gen/govscsi.pc $PKGCONFIGDIR/govscsi.pc"
	for u in vscsi-autoattach vscsi-backend; do
		echo "0644 $gen/$u.service $SYSTEMDUNITDIR/$u.service"
	done
	echo "0644 backend/systemd/vscsi-backend.yaml.example $DOCDIR/examples/vscsi-backend.yaml"
	echo "conf plugin/systemd/autoattach.yaml $SYSCONFDIR/govscsi/autoattach.yaml"
	for m in xl-vscsi.1 xl-vscsi.cfg.5 vscsi-autoattach.8 vscsi-backend.8; do
		echo "0644 $BUILD/man/$m.gz $MANDIR/man${m##*.}/$m.gz"
	done
}

# generate writes the files whose content depends on the install paths.
generate() {
	mkdir -p "$gen"
	sed -e "s|@PREFIX@|$PREFIX|" -e "s|@LIBDIR@|$LIBDIR|" -e "s|@INCLUDEDIR@|$INCLUDEDIR|" \
		-e "s|@VERSION@|$VERSION|" c/govscsi.pc.in >"$gen/govscsi.pc"
	for u in plugin/systemd/vscsi-autoattach.service backend/systemd/vscsi-backend.service; do
		sed -e "s|/usr/sbin/|$SBINDIR/|g" -e "s|/etc/govscsi/|$SYSCONFDIR/govscsi/|g" \
			"$u" >"$gen/$(basename "$u")"
	done
	sed -e "s|/usr/lib/govscsi/vscsi-hotplug|$LIBEXECDIR/vscsi-hotplug|g" \
		hotplug/scripts/vscsi-govscsi >"$gen/vscsi-govscsi"
	sed -e "s|/etc/xen/scripts/vscsi-govscsi|$XEN_SCRIPT_DIR/vscsi-govscsi|g" \
		hotplug/udev/65-govscsi-vscsi.rules >"$gen/65-govscsi-vscsi.rules"
}

do_install() {
	generate
	files | while read -r mode src dst; do
		d="$DESTDIR$dst"
		case $mode in
		link)
			mkdir -p "$(dirname "$d")"
			ln -sfn "$src" "$d"
			echo "  LN      $dst -> $src"
			;;
		conf)
			if [ -e "$d" ] && ! cmp -s "$src" "$d"; then
				echo "  KEEP    $dst (changed locally; the shipped one is $src)"
			else
				install -D -m 0644 "$src" "$d"
				echo "  INSTALL $dst"
			fi
			;;
		*)
			if [ ! -e "$src" ]; then
				echo "install: $src is missing (run make build lib man)" >&2
				exit 1
			fi
			install -D -m "$mode" "$src" "$d"
			echo "  INSTALL $dst"
			;;
		esac
	done
}

do_uninstall() {
	files | while read -r mode src dst; do
		d="$DESTDIR$dst"
		case $mode in
		conf)
			if [ -e "$d" ] && ! cmp -s "$src" "$d"; then
				echo "  KEEP    $dst (changed locally)"
				continue
			fi
			;;
		esac
		if [ -e "$d" ] || [ -L "$d" ]; then
			rm -f "$d"
			echo "  RM      $dst"
		fi
	done
	# Directories: our own one goes when empty; in a staging DESTDIR every
	# directory install made is pruned once empty. System directories of a
	# live install (/usr/sbin, ...) are never touched.
	rmdir "$DESTDIR$SYSCONFDIR/govscsi" 2>/dev/null || true
	if [ -n "$DESTDIR" ] && [ -d "$DESTDIR" ]; then
		find "$DESTDIR" -mindepth 1 -depth -type d -empty -delete
	fi
}

case ${1:-} in
install) do_install ;;
uninstall) do_uninstall ;;
list) files | awk '{print $3}' ;;
*)
	echo "usage: $0 install|uninstall|list" >&2
	exit 2
	;;
esac
