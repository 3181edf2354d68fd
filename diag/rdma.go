package diag

import (
	"cmp"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// readRDMADevice reads one verbs device's ports from the infiniband class
// directory (/sys/class/infiniband on a live host).
func readRDMADevice(classDir, name string) (RDMADevice, error) {
	dev := RDMADevice{Name: name, NUMANode: -1, Ports: []RDMAPort{}}
	portsDir := filepath.Join(classDir, name, "ports")
	entries, err := os.ReadDir(portsDir)
	if err != nil {
		return RDMADevice{}, fmt.Errorf("rdma device %s: %w", name, err)
	}
	for _, e := range entries {
		num, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join(portsDir, e.Name())
		p := RDMAPort{Port: num, GIDs: []string{}, GIDTypes: []string{}}
		// "4: ACTIVE": the number is the enum value, the word is for people.
		state := readTrimmed(filepath.Join(dir, "state"))
		_, p.State, _ = strings.Cut(state, ": ")
		p.State = cmp.Or(p.State, state)
		p.LinkLayer = readTrimmed(filepath.Join(dir, "link_layer"))
		var firstGID string
		p.GIDs, p.GIDTypes, firstGID = readGIDs(dir)
		// A RoCE GID names the netdev it belongs to; an InfiniBand port's
		// netdev, if any, is the IPoIB interface on the device.
		if firstGID != "" {
			p.Netdev = readTrimmed(filepath.Join(dir, "gid_attrs", "ndevs", firstGID))
		}
		if p.Netdev == "" {
			if nets, err := os.ReadDir(filepath.Join(classDir, name, "device", "net")); err == nil && len(nets) > 0 {
				p.Netdev = nets[0].Name()
			}
		}
		p.MTU = pathMTU(p.LinkLayer, readTrimmed(filepath.Join(classDir, name, "device", "net", p.Netdev, "mtu")))
		dev.Ports = append(dev.Ports, p)
	}
	slices.SortFunc(dev.Ports, func(a, b RDMAPort) int { return cmp.Compare(a.Port, b.Port) })
	return dev, nil
}

// pathMTU is the RDMA path MTU a port can use: InfiniBand's is 4096;
// RoCE's is the largest IB MTU that fits in the interface's MTU after the
// RoCE v2 headers (IP 20, UDP 8, BTH 12, ICRC 4, and room for extended
// transport headers: 1500 gives 1024, 9000 gives 4096).
func pathMTU(linkLayer, netdevMTU string) int {
	if linkLayer == "InfiniBand" {
		return 4096
	}
	m, err := strconv.Atoi(netdevMTU)
	if err != nil {
		return 0
	}
	for mtu := 4096; mtu >= 256; mtu /= 2 {
		if mtu+roceOverhead <= m {
			return mtu
		}
	}
	return 0
}

const roceOverhead = 20 + 8 + 12 + 4 + 28

// readGIDs returns a port's valid GIDs in index order, their types, and
// the index of the first. The table has a fixed size; unused entries read
// as all zeros, and on some kernels as an error.
func readGIDs(portDir string) (gids, types []string, first string) {
	gids, types = []string{}, []string{}
	entries, err := os.ReadDir(filepath.Join(portDir, "gids"))
	if err != nil {
		return gids, types, ""
	}
	type entry struct {
		index int
		name  string
	}
	var idx []entry
	for _, e := range entries {
		if i, err := strconv.Atoi(e.Name()); err == nil {
			idx = append(idx, entry{i, e.Name()})
		}
	}
	slices.SortFunc(idx, func(a, b entry) int { return cmp.Compare(a.index, b.index) })
	for _, e := range idx {
		addr, err := netip.ParseAddr(readTrimmed(filepath.Join(portDir, "gids", e.name)))
		if err != nil || addr.IsUnspecified() {
			continue
		}
		if first == "" {
			first = e.name
		}
		gids = append(gids, addr.String())
		types = append(types, readTrimmed(filepath.Join(portDir, "gid_attrs", "types", e.name)))
	}
	return gids, types, first
}

// readTrimmed returns a sysfs attribute, or "" when it cannot be read:
// attributes a driver does not implement are absent or fail with EINVAL,
// and neither is worth a warning.
func readTrimmed(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
