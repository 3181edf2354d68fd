package rdma

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// GID is one entry of a port's GID table, as sysfs shows it
// (/sys/class/infiniband/DEV/ports/N/gids, gid_attrs/types, gid_attrs/ndevs).
type GID struct {
	Index  int
	Addr   netip.Addr // the GID as an IPv6 address
	Type   string     // "RoCE v2" or "IB/RoCE v1"
	Netdev string     // the network interface it belongs to (RoCE)
}

// RoCEv2 is the GID type of RoCE v2 (routable, over UDP).
const RoCEv2 = "RoCE v2"

// ErrNoGID is returned when no GID of a port reaches a peer.
var ErrNoGID = errors.New("rdma: no usable GID")

// ReadGIDTable returns a port's valid GIDs in index order. classDir is
// /sys/class/infiniband on a live host; tests point it at a fixture.
func ReadGIDTable(classDir, device string, port int) ([]GID, error) {
	dir := filepath.Join(classDir, device, "ports", strconv.Itoa(port))
	entries, err := os.ReadDir(filepath.Join(dir, "gids"))
	if err != nil {
		return nil, fmt.Errorf("rdma: GID table of %s port %d: %w", device, port, err)
	}
	var table []GID
	for _, e := range entries {
		i, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		addr, err := netip.ParseAddr(readAttr(filepath.Join(dir, "gids", e.Name())))
		if err != nil || addr.IsUnspecified() {
			continue // unused entries read as zeros, or fail
		}
		table = append(table, GID{
			Index:  i,
			Addr:   addr,
			Type:   readAttr(filepath.Join(dir, "gid_attrs", "types", e.Name())),
			Netdev: readAttr(filepath.Join(dir, "gid_attrs", "ndevs", e.Name())),
		})
	}
	slices.SortFunc(table, func(a, b GID) int { return cmp.Compare(a.Index, b.Index) })
	return table, nil
}

func readAttr(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// ChooseGID picks the GID to reach peer with, from a port's table, given
// the network interface the peer is routed through (RouteNetdev; "" on
// InfiniBand, where any GID of the port does). It prefers, on that
// interface, RoCE v2 with an address of the peer's family (IPv4-mapped for
// an IPv4 peer; a global IPv6 one for an IPv6 peer), then any RoCE v2,
// then RoCE v1 the same way (PVRDMA offers v1 first).
func ChooseGID(table []GID, netdev string, peer netip.Addr) (GID, error) {
	best, bestScore := GID{}, -1
	for _, g := range table {
		if netdev != "" && g.Netdev != "" && g.Netdev != netdev {
			continue
		}
		// RoCE v2 before v1 (or InfiniBand); within each, a GID of the
		// peer's family (IPv4-mapped for an IPv4 peer, a global IPv6 one
		// for an IPv6 peer) before a link-local one.
		score := 0
		if g.Type == RoCEv2 {
			score = 2
		}
		mapped := g.Addr.Is4In6()
		global := !mapped && !g.Addr.IsLinkLocalUnicast()
		if peer.Unmap().Is4() && mapped || !peer.Unmap().Is4() && global {
			score++
		}
		if score > bestScore {
			best, bestScore = g, score
		}
	}
	if bestScore < 0 {
		return GID{}, fmt.Errorf("%w: none on %q toward %v", ErrNoGID, netdev, peer)
	}
	return best, nil
}
