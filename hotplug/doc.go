// Package hotplug implements govscsi's vscsi hotplug script (the body of
// /etc/xen/scripts/vscsi-govscsi, see hotplug/cmd/vscsi-hotplug): Xen's
// hotplug contract (XENBUS_PATH/XENBUS_TYPE from xl-vscsi or udev,
// add/remove, hotplug-status / hotplug-error), the preparation each p-dev
// needs for the backend flavour (for xen-scsiback: LIO objects in configfs,
// recorded in a state file so remove undoes exactly them), the udev guard
// and a flock. docs/hotplug.md is the user-facing contract.
//
// Everything is behind small seams for tests: xenstore is a xenif.Store,
// configfs a ConfigFS (FixtureConfigFS imitates it on a directory tree),
// sysfs resolution a cfgparse.Resolver.
package hotplug
