package diag

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/Mellanox/rdmamap"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/gpufabric/gpufabric/numa"
)

const (
	bootIDFile = "/proc/sys/kernel/random/boot_id"
	classNet   = "/sys/class/net"
)

func collectPlatform(r *HostReport) error {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		r.warn(fmt.Errorf("uname: %w", err))
	} else {
		r.Kernel = unix.ByteSliceToString(u.Release[:])
		r.Arch = unix.ByteSliceToString(u.Machine[:])
	}
	if b, err := os.ReadFile(bootIDFile); err != nil {
		r.warn(fmt.Errorf("boot id: %w", err))
	} else {
		r.BootID = strings.TrimSpace(string(b))
	}

	topo, err := numa.Discover("/")
	if err != nil {
		r.warn(fmt.Errorf("topology: %w", err))
	} else {
		r.addTopology(topo)
	}

	// A handle of our own rather than the package's, so that the sockets
	// are closed when collection ends.
	h, err := netlink.NewHandle()
	if err != nil {
		r.warn(fmt.Errorf("netlink: %w", err))
	} else {
		nics, warnings := collectNICs(h, topo, classNet)
		h.Close()
		r.NICs = append(r.NICs, nics...)
		r.Warnings = append(r.Warnings, warnings...)
	}

	// rdmamap lists the devices; their ports are read from the same class
	// directory by readRDMADevice, which tests can point at a fixture.
	for _, name := range rdmamap.GetRdmaDeviceList() {
		dev, err := readRDMADevice(rdmamap.RdmaClassDir, name)
		if err != nil {
			r.warn(err)
			continue
		}
		dev.NUMANode, dev.PCIBusID, _ = nicLocality(topo, func(n numa.NIC) bool { return n.RDMADevice == name })
		r.RDMADevices = append(r.RDMADevices, dev)
	}
	return nil
}

// collectNICs lists the links that h sees (h may be bound to another
// network namespace) with their addresses, speed from classNet, and the
// locality topo gives them. Failures become warnings.
func collectNICs(h *netlink.Handle, topo *numa.Topology, classNet string) ([]NIC, []string) {
	var warnings []string
	links, err := h.LinkList()
	// A dump interrupted by a concurrent change is retried; the kernel
	// says so rather than return a torn list.
	for try := 0; errors.Is(err, netlink.ErrDumpInterrupted) && try < 3; try++ {
		links, err = h.LinkList()
	}
	if err != nil {
		warnings = append(warnings, fmt.Sprintf("netlink: list links: %v", err))
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return []NIC{}, warnings
		}
	}
	nics := make([]NIC, 0, len(links))
	for _, l := range links {
		a := l.Attrs()
		nic := NIC{
			Name:      a.Name,
			Type:      l.Type(),
			OperState: a.OperState.String(),
			MAC:       a.HardwareAddr.String(),
			MTU:       a.MTU,
			Addresses: []string{},
		}
		addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			warnings = append(warnings, fmt.Sprintf("netlink: addresses of %s: %v", a.Name, err))
		}
		for _, addr := range addrs {
			nic.Addresses = append(nic.Addresses, addr.IPNet.String())
		}
		nic.SpeedBitsPerSec = linkSpeed(classNet, a.Name)
		nic.NUMANode, nic.PCIBusID, nic.RDMADevice = nicLocality(topo, func(n numa.NIC) bool { return n.Name == a.Name })
		nics = append(nics, nic)
	}
	return nics, warnings
}

// linkSpeed reads the link speed the driver negotiated, which netlink does
// not carry. The file holds Mb/s, -1 when unknown, and fails to read (EINVAL)
// on a link that is down or has no notion of speed; all of those are 0.
func linkSpeed(classNet, name string) int64 {
	b, err := os.ReadFile(filepath.Join(classNet, name, "speed"))
	if err != nil {
		return 0
	}
	mbps, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || mbps <= 0 {
		return 0
	}
	return mbps * 1_000_000
}
