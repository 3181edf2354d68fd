package numa

import (
	"fmt"
	"strconv"
	"strings"
)

// canonicalBusID returns the sysfs spelling of a PCI address
// ("0000:3b:00.0"): lower case, the domain at least four hex digits.
// It accepts NVML's eight-digit domain ("00000000:3B:00.0") and a bare
// "3b:00.0" (domain 0), so callers can pass whatever their source gave.
func canonicalBusID(s string) (string, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	head, fn, ok := strings.Cut(s, ".")
	if !ok {
		return "", false
	}
	parts := strings.Split(head, ":")
	domain := "0"
	switch len(parts) {
	case 2:
	case 3:
		domain, parts = parts[0], parts[1:]
	default:
		return "", false
	}
	d, err1 := strconv.ParseUint(domain, 16, 32)
	b, err2 := strconv.ParseUint(parts[0], 16, 8)
	dev, err3 := strconv.ParseUint(parts[1], 16, 5)
	f, err4 := strconv.ParseUint(fn, 8, 3)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
		return "", false
	}
	return fmt.Sprintf("%04x:%02x:%02x.%x", d, b, dev, f), true
}

// isBusID reports whether a sysfs path element is a PCI function address
// as the kernel writes it ("0000:3b:00.0"; VMD domains have five digits).
func isBusID(elem string) bool {
	c, ok := canonicalBusID(elem)
	return ok && c == elem
}

// isHostBridge reports whether a sysfs path element names a PCI host
// bridge, the root of one PCI hierarchy ("pci0000:3a").
func isHostBridge(elem string) bool {
	rest, ok := strings.CutPrefix(elem, "pci")
	if !ok {
		return false
	}
	domain, bus, ok := strings.Cut(rest, ":")
	if !ok || len(domain) < 4 || len(bus) != 2 {
		return false
	}
	_, err1 := strconv.ParseUint(domain, 16, 32)
	_, err2 := strconv.ParseUint(bus, 16, 8)
	return err1 == nil && err2 == nil
}

// pciLocation splits a resolved sysfs device path such as
// /sys/devices/pci0000:17/0000:17:00.0/0000:18:00.0/0000:1c:00.0/virtio0
// into the PCI function nearest the device (its own address, or that of
// the PCI device it hangs off) and the chain above it: the host bridge and
// every bridge down to, not including, that function. A device with no
// PCI ancestor (a platform device) gives "" and nil.
func pciLocation(devPath string) (busID string, chain []string) {
	var elems []string
	for elem := range strings.SplitSeq(devPath, "/") {
		if isHostBridge(elem) || isBusID(elem) {
			elems = append(elems, elem)
		}
	}
	for i := len(elems) - 1; i >= 0; i-- {
		if isBusID(elems[i]) {
			return elems[i], elems[:i:i]
		}
	}
	return "", nil
}

// isGPU reports whether a PCI class and vendor are an NVIDIA display
// controller: VGA-compatible (0x0300xx, GeForce and workstation cards) or
// 3D controller (0x0302xx, data-centre cards with no display output).
// NVIDIA's HD audio functions and NVSwitches have other classes.
func isGPU(class uint32, vendor uint16) bool {
	const nvidia = 0x10de
	sub := class >> 8
	return vendor == nvidia && (sub == 0x0300 || sub == 0x0302)
}
