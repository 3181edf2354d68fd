package diag

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteJSON writes r as indented JSON. Lists that are empty are written
// as [] even when nil, so that consumers see one type per field.
func WriteJSON(w io.Writer, r Report) error {
	r.Host = r.Host.withEmptyLists()
	if r.Server != nil {
		s := *r.Server
		s.Candidates = orEmpty(s.Candidates)
		r.Server = &s
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("diag: encode report: %w", err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("diag: write report: %w", err)
	}
	return nil
}

// withEmptyLists returns a copy of h whose nil lists, nested ones
// included, are empty; h's own slices are not modified.
func (h HostReport) withEmptyLists() HostReport {
	h.NUMANodes = slices.Clone(orEmpty(h.NUMANodes))
	for i := range h.NUMANodes {
		h.NUMANodes[i].Distances = orEmpty(h.NUMANodes[i].Distances)
	}
	h.NICs = slices.Clone(orEmpty(h.NICs))
	for i := range h.NICs {
		h.NICs[i].Addresses = orEmpty(h.NICs[i].Addresses)
	}
	h.RDMADevices = slices.Clone(orEmpty(h.RDMADevices))
	for i := range h.RDMADevices {
		ports := slices.Clone(orEmpty(h.RDMADevices[i].Ports))
		for j := range ports {
			ports[j].GIDs = orEmpty(ports[j].GIDs)
			ports[j].GIDTypes = orEmpty(ports[j].GIDTypes)
		}
		h.RDMADevices[i].Ports = ports
	}
	h.GPUs = orEmpty(h.GPUs)
	h.Warnings = orEmpty(h.Warnings)
	return h
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// WriteTable writes r as aligned sections for people to read. Unlike the
// JSON, it scales units (µs, Gb/s, GB/s) and shows "-" for unknowns.
func WriteTable(w io.Writer, r Report) error {
	sw := &stickyWriter{w: w}
	// Section titles have no tab, so each section aligns on its own.
	tw := tabwriter.NewWriter(sw, 0, 0, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format+"\n", args...) }

	h := r.Host
	p("HOST")
	p("  hostname\t%s", dash(h.Hostname))
	p("  kernel\t%s", dash(strings.TrimSpace(h.Kernel+" "+h.Arch)))
	p("  boot id\t%s", dash(h.BootID))

	p("\nNUMA NODES")
	if len(h.NUMANodes) == 0 {
		p("  none")
	} else {
		p("  NODE\tCPUS\tDISTANCES")
	}
	for _, n := range h.NUMANodes {
		p("  %d\t%s\t%s", n.ID, dash(n.CPUs), dash(joinInts(n.Distances)))
	}

	p("\nNICS")
	if len(h.NICs) == 0 {
		p("  none")
	} else {
		p("  NAME\tTYPE\tSTATE\tMTU\tSPEED\tNUMA\tPCI\tRDMA\tMAC\tADDRESSES")
	}
	for _, n := range h.NICs {
		p("  %s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s", n.Name, dash(n.Type), dash(n.OperState), n.MTU,
			bitRate(n.SpeedBitsPerSec), node(n.NUMANode), dash(n.PCIBusID), dash(n.RDMADevice),
			dash(n.MAC), dash(strings.Join(n.Addresses, ", ")))
	}

	p("\nRDMA DEVICES")
	if len(h.RDMADevices) == 0 {
		p("  none")
	} else {
		p("  DEVICE\tPORT\tSTATE\tLINK LAYER\tMTU\tNETDEV\tNUMA\tPCI\tGIDS")
	}
	for _, d := range h.RDMADevices {
		if len(d.Ports) == 0 {
			p("  %s\t-\t-\t-\t-\t-\t%s\t%s\t-", d.Name, node(d.NUMANode), dash(d.PCIBusID))
		}
		for _, port := range d.Ports {
			p("  %s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s", d.Name, port.Port, dash(port.State), dash(port.LinkLayer),
				mtu(port.MTU), dash(port.Netdev), node(d.NUMANode), dash(d.PCIBusID), dash(gidList(port)))
		}
	}

	p("\nGPUS")
	if len(h.GPUs) == 0 {
		p("  none")
	} else {
		p("  PCI\tNUMA\tNEAREST NIC\tRDMA\tAFFINITY")
	}
	for _, g := range h.GPUs {
		p("  %s\t%s\t%s\t%s\t%s", g.PCIBusID, node(g.NUMANode), dash(g.NearestNIC),
			dash(g.NearestRDMADevice), dash(g.Affinity))
	}

	if s := r.Server; s != nil {
		p("\nSERVER")
		p("  address\t%s", dash(s.Address))
		p("  call lane\t%s", dash(s.CallLane))
		p("  bulk lane\t%s", dash(s.BulkLane))
		p("  reason\t%s", dash(s.Reason))

		p("\nTRANSPORT CANDIDATES")
		if len(s.Candidates) == 0 {
			p("  none")
		} else {
			p("  TRANSPORT\tENDPOINT\tLATENCY P50\tLATENCY P99\tBANDWIDTH\tERROR")
		}
		for _, c := range s.Candidates {
			p("  %s\t%s\t%s\t%s\t%s\t%s", c.Transport, dash(c.Endpoint), latency(c.LatencyP50),
				latency(c.LatencyP99), byteRate(c.BandwidthBytesPerSec), dash(c.Error))
		}
	}

	if b := r.Breakdown; b != nil {
		writeBreakdown(p, b)
	}

	if len(h.Warnings) > 0 {
		p("\nWARNINGS")
		for _, warning := range h.Warnings {
			p("  %s", warning)
		}
	}

	if err := tw.Flush(); err != nil && sw.err == nil {
		sw.err = err
	}
	if sw.err != nil {
		return fmt.Errorf("diag: write report: %w", sw.err)
	}
	return nil
}

// stickyWriter keeps the first write error and drops what follows it, so
// that a table is written with plain Fprintf calls and checked once.
type stickyWriter struct {
	w   io.Writer
	err error
}

func (s *stickyWriter) Write(b []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.w.Write(b)
	s.err = err
	return n, err
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func node(n int) string {
	if n < 0 {
		return "-"
	}
	return strconv.Itoa(n)
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, " ")
}

// bitRate writes a link speed the way vendors and ethtool do: decimal
// prefixes, bits.
func bitRate(bps int64) string {
	return scaled(float64(bps), "b/s")
}

// byteRate writes a bandwidth in decimal prefixes of bytes, as the
// benchmarks report it.
func byteRate(bps float64) string {
	return scaled(bps, "B/s")
}

func scaled(v float64, unit string) string {
	if v <= 0 {
		return "-"
	}
	for _, p := range []struct {
		scale  float64
		prefix string
	}{{1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "k"}} {
		if v >= p.scale {
			return strconv.FormatFloat(v/p.scale, 'g', 4, 64) + " " + p.prefix + unit
		}
	}
	return strconv.FormatFloat(v, 'g', 4, 64) + " " + unit
}

// latency keeps about four significant digits: a measured 12.345678µs is
// read as 12.35µs.
func latency(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Millisecond:
		d = d.Round(10 * time.Nanosecond)
	case d < time.Second:
		d = d.Round(10 * time.Microsecond)
	default:
		d = d.Round(10 * time.Millisecond)
	}
	return d.String()
}

// gidList shows a port's GIDs with their types: "::ffff:10.1.0.7 (RoCE v2)".
func gidList(p RDMAPort) string {
	parts := make([]string, len(p.GIDs))
	for i, g := range p.GIDs {
		parts[i] = g
		if i < len(p.GIDTypes) && p.GIDTypes[i] != "" {
			parts[i] += " (" + p.GIDTypes[i] + ")"
		}
	}
	return strings.Join(parts, ", ")
}

func mtu(n int) string {
	if n == 0 {
		return "-"
	}
	return strconv.Itoa(n)
}
