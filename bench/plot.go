package bench

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Chart names: Plot writes NAME.png and NAME.svg for each.
const (
	LatencyChart   = "latency"
	BandwidthChart = "bandwidth"
	TenantsChart   = "tenants"
	NoisyChart     = "noisy"
)

// Plot writes the charts of r into dir, each as PNG and SVG: the latency
// CDF of each transport beside its floor, copy bandwidth against size
// (log-log, a line per direction and transport, and the floors), and the
// many-tenant scaling (aggregate and per-client rate against the number of
// clients, and fairness), and the noisy neighbours (the bystander's p50
// and p99 in each phase). A chart with nothing to show is not written. It
// returns the files written.
func (r *Results) Plot(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var files []string
	for _, c := range []struct {
		name string
		w, h vg.Length
		draw func() (func(draw.Canvas), error)
	}{
		{LatencyChart, 7 * vg.Inch, 4.5 * vg.Inch, r.latencyChart},
		{BandwidthChart, 7 * vg.Inch, 5 * vg.Inch, r.bandwidthChart},
		{TenantsChart, 7 * vg.Inch, 7 * vg.Inch, r.tenantsChart},
		{NoisyChart, 7 * vg.Inch, 4.5 * vg.Inch, r.noisyChart},
	} {
		paint, err := c.draw()
		if err != nil {
			return files, fmt.Errorf("bench: %s chart: %w", c.name, err)
		}
		if paint == nil {
			continue
		}
		written, err := saveChart(dir, c.name, c.w, c.h, paint)
		files = append(files, written...)
		if err != nil {
			return files, fmt.Errorf("bench: %s chart: %w", c.name, err)
		}
	}
	return files, nil
}

// saveChart paints one chart onto a PNG and an SVG canvas and writes them.
func saveChart(dir, name string, w, h vg.Length, paint func(draw.Canvas)) ([]string, error) {
	png := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(120), vgimg.UseBackgroundColor(color.White))
	paint(draw.New(png))
	svg := vgsvg.New(w, h)
	paint(draw.New(svg))
	var files []string
	for _, out := range []struct {
		ext string
		to  io.WriterTo
	}{{".png", vgimg.PngCanvas{Canvas: png}}, {".svg", svg}} {
		path := filepath.Join(dir, name+out.ext)
		if err := writeFile(path, out.to); err != nil {
			return files, err
		}
		files = append(files, path)
	}
	return files, nil
}

func writeFile(path string, to io.WriterTo) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = to.WriteTo(f)
	return errors.Join(err, f.Close())
}

// transportStyle gives each transport a color, the same in every chart.
func transportColor(tr string) color.Color {
	switch tr {
	case "tcp":
		return plotutil.Color(0)
	case "shm":
		return plotutil.Color(1)
	}
	return plotutil.Color(2)
}

func (r *Results) latencyChart() (func(draw.Canvas), error) {
	if len(r.Latency) == 0 {
		return nil, nil
	}
	p := newPlot("Call latency: synchronous null round trip", "latency (log scale)", "fraction of calls")
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = logTicks{format: fmtSeconds}
	p.Y.Min, p.Y.Max = 0, 1
	for _, l := range r.Latency {
		for _, s := range []struct {
			name   string
			d      Dist
			dashed bool
		}{{l.Transport + " Ping", l.Call, false}, {l.Transport + " floor (" + shortFloor(l.Transport) + ")", l.Floor, true}} {
			pts := cdfPoints(s.d)
			if len(pts) == 0 {
				continue
			}
			line, err := plotter.NewLine(pts)
			if err != nil {
				return nil, err
			}
			line.Color = transportColor(l.Transport)
			line.Width = vg.Points(1.5)
			if s.dashed {
				line.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			}
			p.Add(line)
			p.Legend.Add(s.name, line)
		}
	}
	p.Legend.Left, p.Legend.Top = false, false
	p.Legend.XOffs = -vg.Points(8)
	p.Legend.YOffs = vg.Points(12)
	return p.Draw, nil
}

// cdfPoints are the positive points of d's CDF.
func cdfPoints(d Dist) plotter.XYs {
	var pts plotter.XYs
	for _, c := range d.CDF {
		if c.Seconds > 0 {
			pts = append(pts, plotter.XY{X: c.Seconds, Y: c.Fraction})
		}
	}
	return pts
}

func (r *Results) bandwidthChart() (func(draw.Canvas), error) {
	if len(r.Copy) == 0 {
		return nil, nil
	}
	p := newPlot("Copy bandwidth (synchronous copies)", "copy size", "bandwidth (log scale)")
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	var sizeTicks plot.ConstantTicks
	for _, s := range r.copySizes() {
		sizeTicks = append(sizeTicks, plot.Tick{Value: float64(s), Label: fmtBytes(uint64(s))})
	}
	p.X.Tick.Marker = sizeTicks
	p.Y.Tick.Marker = logTicks{format: fmtBandwidth}
	dirColor := map[string]color.Color{"HtoD": plotutil.Color(0), "DtoH": plotutil.Color(1), "DtoD": plotutil.Color(2),
		"HtoD pinned": plotutil.Color(3), "DtoH pinned": plotutil.Color(4)}
	trDash := map[string][]vg.Length{"tcp": nil, "shm": {vg.Points(6), vg.Points(3)}}
	for i, c := range r.Copy {
		var pts plotter.XYs
		for _, pt := range c.Points {
			if pt.BytesPerSecond > 0 {
				pts = append(pts, plotter.XY{X: float64(pt.Bytes), Y: pt.BytesPerSecond})
			}
		}
		if len(pts) == 0 {
			continue
		}
		line, points, err := plotter.NewLinePoints(pts)
		if err != nil {
			return nil, err
		}
		line.Color, points.Color = dirColor[c.Direction], dirColor[c.Direction]
		line.Dashes = trDash[c.Transport]
		line.Width = vg.Points(1.5)
		points.Shape = plotutil.Shape(i)
		p.Add(line, points)
		p.Legend.Add(c.Transport+" "+c.Direction, line, points)
	}
	for i, f := range r.CopyFloors {
		var pts plotter.XYs
		for _, pt := range f.Points {
			if pt.BytesPerSecond > 0 {
				pts = append(pts, plotter.XY{X: float64(pt.Bytes), Y: pt.BytesPerSecond})
			}
		}
		if len(pts) == 0 {
			continue
		}
		line, err := plotter.NewLine(pts)
		if err != nil {
			return nil, err
		}
		line.Color = color.Gray{Y: uint8(40 + 80*i)}
		line.Width = vg.Points(2)
		line.Dashes = []vg.Length{vg.Points(1), vg.Points(3)}
		p.Add(line)
		p.Legend.Add("floor: "+f.Name, line)
	}
	// The legend goes bottom right, below the lowest figure: the axis
	// reaches down far enough to leave it that room.
	if p.Y.Min > 0 {
		p.Y.Min /= 30 // the smallest figure, as the lines were added
	}
	p.Legend.Top, p.Legend.Left = false, false
	p.Legend.YOffs = vg.Points(4)
	return p.Draw, nil
}

func (r *Results) tenantsChart() (func(draw.Canvas), error) {
	tn := r.Tenants
	if tn == nil {
		return nil, nil
	}
	var agg, mean, lo, hi, fair plotter.XYs
	var ticks plot.ConstantTicks
	for _, s := range tn.Steps {
		if s.Error != "" || s.OpsPerSecond <= 0 {
			continue
		}
		n := float64(s.Clients)
		ticks = append(ticks, plot.Tick{Value: n, Label: fmt.Sprint(s.Clients)})
		agg = append(agg, plotter.XY{X: n, Y: s.OpsPerSecond})
		mean = append(mean, plotter.XY{X: n, Y: s.MeanClient})
		if s.MinClient > 0 {
			lo = append(lo, plotter.XY{X: n, Y: s.MinClient})
			fair = append(fair, plotter.XY{X: n, Y: s.FairnessMaxOverMin})
		}
		hi = append(hi, plotter.XY{X: n, Y: s.MaxClient})
	}
	if len(agg) == 0 {
		return nil, nil
	}
	rates := newPlot(fmt.Sprintf("Many tenants over %s: N clients, 1/N of one device each", tn.Transport), "clients", "ops/s (log scale)")
	rates.X.Scale, rates.Y.Scale = plot.LogScale{}, plot.LogScale{}
	rates.X.Tick.Marker, rates.Y.Tick.Marker = ticks, logTicks{format: fmtRate}
	if err := plotutil.AddLinePoints(rates, "aggregate", agg, "per client (mean)", mean, "slowest client", lo, "fastest client", hi); err != nil {
		return nil, err
	}
	rates.Legend.Top, rates.Legend.Left = false, true
	rates.Legend.XOffs = vg.Points(8)
	fairness := newPlot("", "clients", "fairness: fastest / slowest")
	fairness.X.Scale, fairness.X.Tick.Marker = plot.LogScale{}, ticks
	fairness.Y.Min = 1
	fairness.Y.Tick.Marker = linearTicks{}
	if err := plotutil.AddLinePoints(fairness, "max/min per-client rate", fair); err != nil {
		return nil, err
	}
	ideal := plotter.NewFunction(func(float64) float64 { return 1 })
	ideal.Color, ideal.Dashes = color.Gray{Y: 120}, []vg.Length{vg.Points(2), vg.Points(2)}
	fairness.Add(ideal)
	fairness.Legend.Add("perfectly fair", ideal)
	fairness.Legend.Top, fairness.Legend.Left = true, true
	fairness.Legend.XOffs = vg.Points(8)
	return func(dc draw.Canvas) {
		plots := [][]*plot.Plot{{rates}, {fairness}}
		canvases := plot.Align(plots, draw.Tiles{Rows: 2, Cols: 1, PadY: vg.Points(10), PadTop: vg.Points(4), PadBottom: vg.Points(4)}, dc)
		rates.Draw(canvases[0][0])
		fairness.Draw(canvases[1][0])
	}, nil
}

// noisyChart draws the bystander's p99 (solid) and p50 (dotted) in each
// phase of the noisy-neighbour scenario, a line per transport and call.
func (r *Results) noisyChart() (func(draw.Canvas), error) {
	n := r.Noisy
	if n == nil || len(n.Phases) == 0 {
		return nil, nil
	}
	p := newPlot("Noisy neighbours: the bystander's calls in each phase", "phase", "latency (log scale): p99 solid, p50 dotted")
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = logTicks{format: fmtSeconds}
	var ticks plot.ConstantTicks
	type key struct{ tr, call string }
	var order []key
	p99s, p50s := map[key]plotter.XYs{}, map[key]plotter.XYs{}
	for i, ph := range n.Phases {
		ticks = append(ticks, plot.Tick{Value: float64(i), Label: ph.Name})
		for _, c := range ph.Calls {
			if c.Latency.P99 <= 0 {
				continue
			}
			k := key{c.Transport, c.Call}
			if _, ok := p99s[k]; !ok {
				order = append(order, k)
			}
			p99s[k] = append(p99s[k], plotter.XY{X: float64(i), Y: c.Latency.P99})
			p50s[k] = append(p50s[k], plotter.XY{X: float64(i), Y: c.Latency.P50})
		}
	}
	if len(order) == 0 {
		return nil, nil
	}
	p.X.Tick.Marker = ticks
	p.X.Min, p.X.Max = -0.3, float64(len(n.Phases))-0.7
	for i, k := range order {
		line, points, err := plotter.NewLinePoints(p99s[k])
		if err != nil {
			return nil, err
		}
		col := transportColor(k.tr)
		line.Color, points.Color = col, col
		line.Width = vg.Points(1.5)
		points.Shape = plotutil.Shape(i)
		if k.call != "ping" {
			line.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
		}
		median, err := plotter.NewLine(p50s[k])
		if err != nil {
			return nil, err
		}
		median.Color, median.Width = col, vg.Points(1)
		median.Dashes = []vg.Length{vg.Points(1), vg.Points(3)}
		p.Add(line, points, median)
		p.Legend.Add(k.tr+" "+k.call, line, points)
	}
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.XOffs = vg.Points(8)
	return p.Draw, nil
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text, p.X.Label.Text, p.Y.Label.Text = title, x, y
	p.Add(plotter.NewGrid())
	return p
}

// logTicks marks a log axis at each multiple of each power of ten,
// labelled in the axis' units by format at the powers of ten (and at 3
// times them on a short axis).
type logTicks struct {
	format func(float64) string
}

func (t logTicks) Ticks(lo, hi float64) []plot.Tick {
	if lo <= 0 || hi <= 0 {
		return nil
	}
	var ticks []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		base := math.Pow(10, e)
		for m := 1; m < 10; m++ {
			v := base * float64(m)
			if v < lo*0.999 || v > hi*1.001 {
				continue
			}
			tick := plot.Tick{Value: v}
			if m == 1 || (m == 3 && hi/lo < 1e3) {
				tick.Label = trimZeros(t.format(v))
			}
			ticks = append(ticks, tick)
		}
	}
	return ticks
}

// trimZeros drops the trailing zeros of a label's number: "1.00µs" is
// "1µs", "2.50 GB/s" is "2.5 GB/s".
func trimZeros(label string) string {
	end := strings.IndexFunc(label, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if end < 0 {
		end = len(label)
	}
	num, unit := label[:end], label[end:]
	if strings.Contains(num, ".") {
		num = strings.TrimRight(strings.TrimRight(num, "0"), ".")
	}
	return num + unit
}

// linearTicks marks a linear axis at a round step (1, 2 or 5 times a power
// of ten) that gives four to ten ticks, each labelled exactly: gonum's
// default ticker rounds its labels, so that a tick at 1.05 reads "1".
type linearTicks struct{}

func (linearTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(hi > lo) {
		return []plot.Tick{{Value: lo, Label: strconv.FormatFloat(lo, 'g', 4, 64)}}
	}
	step := math.Pow(10, math.Floor(math.Log10(hi-lo)))
	for _, m := range []float64{0.1, 0.2, 0.5, 1} {
		if (hi-lo)/(step*m) <= 10 {
			step *= m
			break
		}
	}
	prec := max(0, -int(math.Floor(math.Log10(step))))
	var ticks []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi+step*1e-9; v += step {
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', prec, 64)})
	}
	return ticks
}
