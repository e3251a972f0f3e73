// Package hotplug implements Xen's hotplug-script contract for vscsi devices:
// XENBUS_PATH/XENBUS_TYPE from libxl or udev, add/remove, and the
// hotplug-status / hotplug-error nodes.
package hotplug
