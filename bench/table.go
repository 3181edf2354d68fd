package bench

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/gpufabric/gpufabric/transport/shm"
	"github.com/gpufabric/gpufabric/transport/tcp"
)

// table is one block of the report, rendered as aligned text (WriteTable)
// or Markdown (WriteMarkdown): the first column left-aligned, the rest
// right-aligned.
type table struct {
	title  string
	notes  []string
	header []string
	rows   [][]string
	// chart names the chart (without extension) that goes with the
	// table, for Markdown.
	chart string
}

// WriteTable writes the results for people: what was measured on what,
// then one table per scenario, each figure beside its floor.
func (r *Results) WriteTable(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "gpufabric bench: %s per step, %s in all\n", fmtDuration(r.Config.StepSeconds), fmtDuration(r.Elapsed))
	for _, l := range r.describe() {
		fmt.Fprintf(&b, "  %s\n", l)
	}
	for _, t := range r.tables() {
		fmt.Fprintf(&b, "\n%s\n", strings.ToUpper(t.title))
		for _, n := range t.notes {
			fmt.Fprintf(&b, "  %s\n", n)
		}
		writeAligned(&b, t)
	}
	if len(r.Errors) > 0 {
		fmt.Fprintf(&b, "\nERRORS\n")
		for _, e := range r.Errors {
			fmt.Fprintf(&b, "  %s\n", e)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeAligned(b *strings.Builder, t table) {
	widths := make([]int, len(t.header))
	for _, row := range append([][]string{t.header}, t.rows...) {
		for i, c := range row {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	for _, row := range append([][]string{t.header}, t.rows...) {
		b.WriteString("  ")
		for i, c := range row {
			pad := strings.Repeat(" ", widths[i]-len([]rune(c)))
			switch {
			case i == 0:
				b.WriteString(c + pad)
			default:
				b.WriteString("  " + pad + c)
			}
		}
		b.WriteString("\n")
	}
}

// describe is what was measured on what: machine, server, floors, skips.
func (r *Results) describe() []string {
	m := r.Machine
	machine := fmt.Sprintf("machine: %s, %d cores, %s memory, %s/%s %s, %s, GOMAXPROCS %d",
		orUnknown(m.CPU), m.Cores, fmtBytes(m.MemoryBytes), m.OS, m.Arch, m.Kernel, m.GoVersion, m.GOMAXPROCS)
	s := r.Server
	// The in-process server's port changes every run: it would only add
	// noise to the documents the results are published in.
	where := "server " + s.Address
	if s.InProcess {
		where = "in-process server on loopback"
	}
	backend := s.Backend + " backend"
	if s.Emulated {
		backend += " (CPU emulation, no GPU)"
	}
	server := fmt.Sprintf("server: %s, %s, %d device(s); measured on %q, %s",
		where, backend, s.Devices, s.Device, fmtBytes(s.DeviceMemoryBytes))
	lines := []string{machine, server, "floors: " + s.Floors}
	for _, sk := range r.Skipped {
		lines = append(lines, fmt.Sprintf("not measured: %s: %s", sk.Transport, sk.Reason))
	}
	return lines
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown CPU"
	}
	return s
}

// tables are the scenarios' tables, in the order they ran.
func (r *Results) tables() []table {
	var ts []table
	if len(r.Latency) > 0 {
		t := table{
			title:  "Call latency",
			notes:  []string{"A synchronous null call (Session.Ping) round trip; x floor = p50 over the floor's p50"},
			header: []string{"path", "calls", "calls/s", "p50", "p90", "p99", "p99.9", "x floor"},
			chart:  "latency",
		}
		for _, l := range r.Latency {
			t.rows = append(t.rows, []string{l.Transport, fmt.Sprint(l.Call.Samples), fmtRate(l.CallsPerSecond),
				fmtSeconds(l.Call.P50), fmtSeconds(l.Call.P90), fmtSeconds(l.Call.P99), fmtSeconds(l.Call.P999), fmtX(l.XFloor)})
			if l.Floor.Samples > 0 {
				t.rows = append(t.rows, []string{"  floor: " + shortFloor(l.Transport), fmt.Sprint(l.Floor.Samples), "",
					fmtSeconds(l.Floor.P50), fmtSeconds(l.Floor.P90), fmtSeconds(l.Floor.P99), fmtSeconds(l.Floor.P999), ""})
			}
			if b := l.Breakdown; b != nil {
				t.rows = append(t.rows, []string{"  in the server (mean)", "", "", fmtSeconds(b.ServerMean), "", "", "", ""},
					[]string{"  outside it (mean)", "", "", fmtSeconds(b.OutsideMean), "", "", "", ""})
				if b.GoRunQueueMean > 0 {
					t.rows = append(t.rows, []string{"  server goroutines' wait for a thread", "", "", fmtSeconds(b.GoRunQueueMean), "", "", "", ""})
				}
				if b.RunQueueMean > 0 {
					t.rows = append(t.rows, []string{"  server threads' run-queue wait", "", "", fmtSeconds(b.RunQueueMean), "", "", "", ""})
				}
			}
		}
		for _, l := range r.Latency {
			if b := l.Breakdown; b != nil {
				note := "Breakdown: the server's stage clocks (one call in 64); outside = round trip less the server's part; run-queue wait: every thread of the server's process (eBPF), the client's too when the server runs in-process"
				if b.Probes != "" {
					note += "; " + b.Probes
				}
				t.notes = append(t.notes, note)
				break
			}
		}
		for _, l := range r.Latency {
			if l.FloorName != "" {
				t.notes = append(t.notes, fmt.Sprintf("Floor of %s: %s", l.Transport, l.FloorName))
			}
		}
		ts = append(ts, t)
	}
	if len(r.Launch) > 0 {
		t := table{
			title:  "Launch throughput",
			notes:  []string{"Asynchronous launches of spin(0) from one client, then Synchronize, beside the rate of synchronous calls"},
			header: []string{"transport", "launches", "launches/s", "sync calls/s", "x sync"},
		}
		for _, l := range r.Launch {
			t.rows = append(t.rows, []string{l.Transport, fmt.Sprint(l.Launches), fmtRate(l.LaunchesPerSecond), fmtRate(l.SyncCallsPerSecond), fmtX(l.XSync)})
		}
		ts = append(ts, t)
	}
	for _, tr := range r.copyTransports() {
		t := table{
			title:  "Copy bandwidth over " + tr,
			header: []string{"size"},
			chart:  "bandwidth",
		}
		var sweeps []Copy
		for _, c := range r.Copy {
			if c.Transport == tr {
				sweeps = append(sweeps, c)
				t.header = append(t.header, c.Direction, "x floor")
			}
		}
		floors := map[string]bool{}
		for _, c := range sweeps {
			floors[c.Floor] = true
		}
		var floorNames []string
		for _, f := range r.CopyFloors {
			if floors[f.Name] {
				floorNames = append(floorNames, f.Name)
				t.header = append(t.header, f.Name+" floor")
				t.notes = append(t.notes, fmt.Sprintf("Floor %s: %s", f.Name, f.Description))
			}
		}
		t.notes = append([]string{"Synchronous copies; " + floorUse(sweeps)}, t.notes...)
		for i, size := range r.copySizes() {
			row := []string{fmtBytes(uint64(size))}
			for _, c := range sweeps {
				if i < len(c.Points) {
					row = append(row, fmtBandwidth(c.Points[i].BytesPerSecond), fmtX(c.Points[i].XFloor))
				} else {
					row = append(row, "", "")
				}
			}
			for _, name := range floorNames {
				row = append(row, fmtBandwidth(r.floorAt(name, size)))
			}
			t.rows = append(t.rows, row)
		}
		ts = append(ts, t)
	}
	if tn := r.Tenants; tn != nil && len(tn.Steps) > 0 {
		t := table{
			title: "Many tenants over " + tn.Transport,
			notes: []string{
				fmt.Sprintf("N clients at once, each holding 1/N of device %d; one op = %s", tn.Device, tn.Op),
				"Max/min: the fastest client's rate over the slowest's (1 is fair); Jain: Jain's fairness index (1 is fair)",
			},
			header: []string{"clients", "share", "ops/s", "per client", "min", "max", "max/min", "Jain", "p50 op", "p99 op"},
			chart:  "tenants",
		}
		for _, s := range tn.Steps {
			if s.Error != "" {
				t.rows = append(t.rows, []string{fmt.Sprint(s.Clients), fmt.Sprintf("%.3g", s.Share), "failed", "", "", "", "", "", "", ""})
				continue
			}
			t.rows = append(t.rows, []string{fmt.Sprint(s.Clients), fmt.Sprintf("%.3g", s.Share),
				fmtRate(s.OpsPerSecond), fmtRate(s.MeanClient), fmtRate(s.MinClient), fmtRate(s.MaxClient),
				fmtX(s.FairnessMaxOverMin), fmt.Sprintf("%.3f", s.JainIndex), fmtSeconds(s.OpLatency.P50), fmtSeconds(s.OpLatency.P99)})
		}
		ts = append(ts, t)
	}
	if n := r.Noisy; n != nil && len(n.Phases) > 0 {
		ts = append(ts, n.table())
	}
	if pc := r.ProbeCost; pc != nil && len(pc.Transports) > 0 {
		ts = append(ts, pc.table())
	}
	return ts
}

// table is the probe-cost scenario's: a row per transport.
func (pc *ProbeCost) table() table {
	t := table{
		title: "What the eBPF probes cost",
		notes: []string{
			fmt.Sprintf("The same client against %d servers started in pairs (off-on, on-off, ...), one of each pair with --probe on; probes loaded: %s", pc.Servers, pc.Loaded),
			"x = with probes over without, the median of the pairs' (and the least and greatest): the median round trip (above 1 is slower), the launch rate (below 1 is slower)",
			"Targets (not asserted): " + pc.Targets,
		},
		header: []string{"transport", "p50 off", "p50 on", "x call", "range", "p99 off", "p99 on", "launches/s off", "launches/s on", "x launch", "range"},
	}
	for _, row := range pc.Transports {
		t.rows = append(t.rows, []string{row.Transport, fmtSeconds(row.CallOff.P50), fmtSeconds(row.CallOn.P50), fmtX(row.XCall), fmtRange(row.XCallRange),
			fmtSeconds(row.CallOff.P99), fmtSeconds(row.CallOn.P99), fmtRate(row.LaunchOff), fmtRate(row.LaunchOn), fmtX(row.XLaunch), fmtRange(row.XLaunchRange)})
	}
	return t
}

// table is the noisy-neighbour scenario's: a row per phase, transport and
// call, the phase's memory on its first row.
func (n *Noisy) table() table {
	t := table{
		title: "Noisy neighbours",
		notes: []string{
			"Bystander: " + n.Bystander,
			fmt.Sprintf("x idle = p99 over the same call's p99 in the idle phase; failed: calls that returned an error; >1s: calls that took over %v", SlowCall),
			"Server RSS: " + orUnknownRSS(n.RSSOf) + "; at the phase's end, its peak during the phase, and that peak less the RSS at the end of the idle phase",
			"Targets (not asserted): " + n.Targets,
		},
		header: []string{"phase", "transport", "call", "calls", "p50", "p99", "max", "x idle", "failed", ">1s", "RSS", "peak RSS", "peak - idle"},
		chart:  "noisy",
	}
	for _, p := range n.Phases {
		t.notes = append(t.notes, fmt.Sprintf("%s: %s", p.Name, p.Hostile))
		if p.Error != "" {
			t.notes = append(t.notes, fmt.Sprintf("%s: error: %s", p.Name, p.Error))
		}
		for i, c := range p.Calls {
			row := []string{"", c.Transport, c.Call, fmt.Sprint(c.Latency.Samples), fmtSeconds(c.Latency.P50), fmtSeconds(c.Latency.P99),
				fmtSeconds(c.Latency.Max), fmtX(c.XIdleP99), fmt.Sprint(c.Failed), fmt.Sprint(c.Slow), "", "", ""}
			if i == 0 {
				row[0], row[10], row[11], row[12] = p.Name, fmtRSS(p.RSSBytes), fmtRSS(p.PeakRSSBytes), fmtGrowth(p, n)
			}
			t.rows = append(t.rows, row)
		}
		if len(p.Calls) == 0 {
			what := "failed"
			if strings.HasPrefix(p.Hostile, "skipped") {
				what = "skipped"
			}
			t.rows = append(t.rows, []string{p.Name, "", what, "", "", "", "", "", "", "", fmtRSS(p.RSSBytes), fmtRSS(p.PeakRSSBytes), fmtGrowth(p, n)})
		}
	}
	return t
}

func orUnknownRSS(s string) string {
	if s == "" {
		return "not read"
	}
	return s
}

// fmtGrowth prints a phase's peak over the idle RSS; nothing for the idle
// phase itself.
func fmtGrowth(p NoisyPhase, n *Noisy) string {
	if p.PeakRSSBytes == 0 || len(n.Phases) == 0 || p.Name == n.Phases[0].Name {
		return ""
	}
	if p.PeakOverIdleBytes < 0 {
		return "-" + fmtBytes(uint64(-p.PeakOverIdleBytes))
	}
	return "+" + fmtBytes(uint64(p.PeakOverIdleBytes))
}

func fmtRSS(n uint64) string {
	if n == 0 {
		return "-"
	}
	return fmtBytes(n)
}

func shortFloor(tr string) string {
	switch tr {
	case tcp.Name, TLS:
		return "raw TCP"
	case shm.Name:
		return "raw shm spin"
	}
	return tr
}

// floorUse says which floor each direction is set beside.
func floorUse(sweeps []Copy) string {
	var parts []string
	for _, c := range sweeps {
		parts = append(parts, c.Direction+" beside "+c.Floor)
	}
	return "x floor: " + strings.Join(parts, ", ")
}

// copyTransports are the transports with copy sweeps, in order.
func (r *Results) copyTransports() []string {
	var trs []string
	for _, c := range r.Copy {
		if len(trs) == 0 || trs[len(trs)-1] != c.Transport {
			trs = append(trs, c.Transport)
		}
	}
	return trs
}

// copySizes are the sizes of the longest sweep or floor.
func (r *Results) copySizes() []int {
	var sizes []int
	consider := func(n int, at func(i int) int64) {
		if n > len(sizes) {
			sizes = sizes[:0]
			for i := range n {
				sizes = append(sizes, int(at(i)))
			}
		}
	}
	for _, c := range r.Copy {
		consider(len(c.Points), func(i int) int64 { return c.Points[i].Bytes })
	}
	for _, f := range r.CopyFloors {
		consider(len(f.Points), func(i int) int64 { return f.Points[i].Bytes })
	}
	return sizes
}

func (r *Results) floorAt(name string, size int) float64 {
	for _, f := range r.CopyFloors {
		if f.Name == name {
			for _, p := range f.Points {
				if p.Bytes == int64(size) {
					return p.BytesPerSecond
				}
			}
		}
	}
	return 0
}

// fmtSeconds prints a latency with three significant digits.
func fmtSeconds(s float64) string {
	if s <= 0 {
		return "-"
	}
	d := time.Duration(math.Round(s * 1e9))
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d.Nanoseconds())
	case d < time.Millisecond:
		return sig3(s*1e6) + "µs"
	case d < time.Second:
		return sig3(s*1e3) + "ms"
	}
	return sig3(s) + "s"
}

// fmtDuration prints a wall time: 2s, 1.5s, 50ms.
func fmtDuration(s float64) string {
	if s < 1 {
		return fmtSeconds(s)
	}
	return time.Duration(s * float64(time.Second)).Round(100 * time.Millisecond).String()
}

func sig3(x float64) string {
	switch {
	case x >= 100:
		return fmt.Sprintf("%.0f", x)
	case x >= 10:
		return fmt.Sprintf("%.1f", x)
	}
	return fmt.Sprintf("%.2f", x)
}

// fmtRate prints a rate per second with three significant digits.
func fmtRate(x float64) string {
	switch {
	case x <= 0:
		return "-"
	case x >= 1e9:
		return sig3(x/1e9) + "G"
	case x >= 1e6:
		return sig3(x/1e6) + "M"
	case x >= 1e3:
		return sig3(x/1e3) + "k"
	}
	return sig3(x)
}

// fmtBandwidth prints bytes per second in decimal units, as network and
// memory bandwidths are quoted.
func fmtBandwidth(x float64) string {
	switch {
	case x <= 0:
		return "-"
	case x >= 1e9:
		return sig3(x/1e9) + " GB/s"
	case x >= 1e6:
		return sig3(x/1e6) + " MB/s"
	}
	return sig3(x/1e3) + " kB/s"
}

// fmtBytes prints a size in binary units: 4 KiB, 256 MiB.
func fmtBytes(n uint64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	x := float64(n)
	i := 0
	for x >= 1024 && i < len(units)-1 {
		x /= 1024
		i++
	}
	if x == math.Trunc(x) {
		return fmt.Sprintf("%.0f %s", x, units[i])
	}
	return fmt.Sprintf("%.1f %s", x, units[i])
}

// fmtX prints a multiple: 0.75x, 12.3x, 0.0049x.
// fmtRange prints the least and greatest of ratios.
func fmtRange(r [2]float64) string {
	if r[1] <= 0 {
		return "-"
	}
	return sig3(r[0]) + "-" + sig3(r[1])
}

func fmtX(x float64) string {
	switch {
	case x <= 0:
		return "-"
	case x < 0.01:
		return fmt.Sprintf("%.2gx", x)
	}
	return sig3(x) + "x"
}
