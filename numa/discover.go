package numa

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Discover reads the topology from the sysfs tree under root: "/" on a
// live host, a fixture directory in tests. Missing NUMA information is not
// an error (see the package documentation); a sysfs that holds no CPU list
// at all, or holds malformed values, is.
func Discover(root string) (*Topology, error) {
	s, err := openSysfs(root)
	if err != nil {
		return nil, err
	}
	nodes, err := s.nodes()
	if err != nil {
		return nil, err
	}
	gpus, err := s.gpus()
	if err != nil {
		return nil, err
	}
	nics, err := s.nics()
	if err != nil {
		return nil, err
	}
	if len(nodes) == 1 {
		// One node: a device the firmware placed nowhere can only be here.
		only := nodes[0].ID
		for i := range gpus {
			if gpus[i].NUMANode == UnknownNode {
				gpus[i].NUMANode = only
			}
		}
		for i := range nics {
			if nics[i].NUMANode == UnknownNode {
				nics[i].NUMANode = only
			}
		}
	}
	return &Topology{Nodes: nodes, GPUs: gpus, NICs: nics}, nil
}

// sysfs reads a sysfs tree under a root directory. Paths passed
// to its methods, and the resolved paths it returns, are written as on a
// live host ("/sys/devices/..."), so PCI paths do not depend on the root.
type sysfs struct {
	root string // absolute, symlinks resolved
}

func openSysfs(root string) (sysfs, error) {
	abs, err := filepath.Abs(root)
	if err == nil {
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		return sysfs{}, fmt.Errorf("numa: sysfs root %q: %w", root, err)
	}
	return sysfs{root: abs}, nil
}

func (s sysfs) path(p string) string { return filepath.Join(s.root, filepath.FromSlash(p)) }

// read returns a file's contents without the trailing newline.
func (s sysfs) read(p string) (string, error) {
	b, err := os.ReadFile(s.path(p))
	if err != nil {
		return "", fmt.Errorf("numa: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// list returns the names in a directory; a missing directory is empty,
// because sysfs leaves out whole classes (infiniband, node) the host lacks.
func (s sysfs) list(p string) ([]string, error) {
	entries, err := os.ReadDir(s.path(p))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("numa: %w", err)
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names, nil
}

// resolve follows the symlinks in p (sysfs class and bus entries are
// links into /sys/devices) and returns the real path, in host form.
func (s sysfs) resolve(p string) (string, error) {
	real, err := filepath.EvalSymlinks(s.path(p))
	if err != nil {
		return "", fmt.Errorf("numa: %w", err)
	}
	rel, err := filepath.Rel(s.root, real)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("numa: %s resolves to %s, outside the sysfs root %s", p, real, s.root)
	}
	return "/" + filepath.ToSlash(rel), nil
}

func (s sysfs) nodes() ([]Node, error) {
	const dir = "/sys/devices/system/node"
	names, err := s.list(dir)
	if err != nil {
		return nil, err
	}
	var nodes []Node
	for _, name := range names {
		num, ok := strings.CutPrefix(name, "node")
		id, err := strconv.Atoi(num)
		if !ok || err != nil {
			continue // online, possible, has_cpu, power, ...
		}
		n := Node{ID: id}
		list, err := s.read(path.Join(dir, name, "cpulist"))
		if err != nil {
			return nil, err
		}
		if n.CPUs, err = parseCPUList(list); err != nil {
			return nil, fmt.Errorf("numa: node %d: %w", id, err)
		}
		if n.Distances, err = s.distances(path.Join(dir, name, "distance")); err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
	}
	if len(nodes) > 0 {
		slices.SortFunc(nodes, func(a, b Node) int { return cmp.Compare(a.ID, b.ID) })
		return nodes, nil
	}

	// No node directory: the kernel was built without NUMA, or it is a VM
	// that was given no topology. Everything is on node 0.
	list, err := s.read("/sys/devices/system/cpu/online")
	if errors.Is(err, fs.ErrNotExist) {
		list, err = s.read("/sys/devices/system/cpu/possible")
	}
	if err != nil {
		return nil, fmt.Errorf("numa: no NUMA nodes and no CPU list: %w", err)
	}
	cpus, err := parseCPUList(list)
	if err != nil {
		return nil, fmt.Errorf("numa: online CPUs: %w", err)
	}
	return []Node{{ID: 0, CPUs: cpus, Distances: []int{10}}}, nil
}

func (s sysfs) distances(p string) ([]int, error) {
	text, err := s.read(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ds []int
	for f := range strings.FieldsSeq(text) {
		d, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("numa: %s: bad distance %q", p, f)
		}
		ds = append(ds, d)
	}
	return ds, nil
}

const pciDevices = "/sys/bus/pci/devices"

func (s sysfs) gpus() ([]PCIDevice, error) {
	names, err := s.list(pciDevices)
	if err != nil {
		return nil, err
	}
	var gpus []PCIDevice
	for _, bus := range names {
		d, ok, err := s.pciDeviceAt(path.Join(pciDevices, bus))
		if err != nil {
			return nil, err
		}
		if ok && isGPU(d.Class, d.Vendor) {
			gpus = append(gpus, d)
		}
	}
	slices.SortFunc(gpus, func(a, b PCIDevice) int { return strings.Compare(a.BusID, b.BusID) })
	return gpus, nil
}

// pciDeviceAt resolves link and reads the PCI device behind it; ok is false
// when there is none (a virtual device) or it went away since the listing.
func (s sysfs) pciDeviceAt(link string) (d PCIDevice, ok bool, err error) {
	real, err := s.resolve(link)
	if err == nil {
		d, err = s.pciDevice(real)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return PCIDevice{}, false, nil
	}
	return d, err == nil, err
}

// pciDevice reads the PCI function at or above a resolved device path.
// A device with no PCI ancestor gets what its own directory says.
func (s sysfs) pciDevice(devPath string) (PCIDevice, error) {
	bus, chain := pciLocation(devPath)
	if bus == "" {
		d := PCIDevice{NUMANode: UnknownNode}
		if n, err := s.read(path.Join(devPath, "numa_node")); err == nil {
			d.NUMANode = parseNode(n)
		}
		return d, nil
	}
	dir := path.Join(pciDevices, bus)
	d := PCIDevice{BusID: bus, Path: chain, NUMANode: UnknownNode}
	for _, f := range []struct {
		name string
		bits int
		dst  func(uint64)
	}{
		{"class", 32, func(v uint64) { d.Class = uint32(v) }},
		{"vendor", 16, func(v uint64) { d.Vendor = uint16(v) }},
		{"device", 16, func(v uint64) { d.Device = uint16(v) }},
	} {
		text, err := s.read(path.Join(dir, f.name))
		if err != nil {
			return PCIDevice{}, err
		}
		v, err := strconv.ParseUint(strings.TrimPrefix(text, "0x"), 16, f.bits)
		if err != nil {
			return PCIDevice{}, fmt.Errorf("numa: %s/%s: bad value %q", dir, f.name, text)
		}
		f.dst(v)
	}
	// Without CONFIG_NUMA there is no numa_node file: unknown, not an error.
	if n, err := s.read(path.Join(dir, "numa_node")); err == nil {
		d.NUMANode = parseNode(n)
	}
	return d, nil
}

func parseNode(text string) int {
	n, err := strconv.Atoi(text)
	if err != nil || n < 0 {
		return UnknownNode
	}
	return n
}

func (s sysfs) nics() ([]NIC, error) {
	const classNet = "/sys/class/net"
	names, err := s.list(classNet)
	if err != nil {
		return nil, err
	}
	var nics []NIC
	for _, name := range names {
		d, ok, err := s.pciDeviceAt(path.Join(classNet, name, "device"))
		if err != nil {
			return nil, err
		}
		if !ok {
			continue // virtual (lo, veth, bridges, tunnels) or gone
		}
		nics = append(nics, NIC{Name: name, PCIDevice: d})
	}
	if nics, err = s.rdma(nics); err != nil {
		return nil, err
	}
	slices.SortFunc(nics, func(a, b NIC) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.BusID, b.BusID))
	})
	return nics, nil
}

// rdma attaches each RDMA device to the NICs on its PCI function, and adds
// the ones no network interface shares a function with.
func (s sysfs) rdma(nics []NIC) ([]NIC, error) {
	const classIB = "/sys/class/infiniband"
	names, err := s.list(classIB)
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	for _, name := range names {
		d, ok, err := s.pciDeviceAt(path.Join(classIB, name, "device"))
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		found := false
		for i := range nics {
			if d.BusID != "" && nics[i].BusID == d.BusID && nics[i].RDMADevice == "" {
				nics[i].RDMADevice = name
				found = true
			}
		}
		if !found {
			nics = append(nics, NIC{PCIDevice: d, RDMADevice: name})
		}
	}
	return nics, nil
}
