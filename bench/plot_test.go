package bench

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestPlot(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "charts") // Plot makes it
	files, err := sampleResults().Plot(dir)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, name := range []string{LatencyChart, BandwidthChart, TenantsChart, NoisyChart} {
		want = append(want, filepath.Join(dir, name+".png"), filepath.Join(dir, name+".svg"))
	}
	if !slices.Equal(files, want) {
		t.Errorf("Plot wrote %q, want %q", files, want)
	}
	for _, f := range want {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) < 1000 {
			t.Errorf("%s: only %d bytes", f, len(b))
		}
		switch filepath.Ext(f) {
		case ".png":
			img, err := png.Decode(bytes.NewReader(b))
			if err != nil {
				t.Errorf("%s: %v", f, err)
			} else if sz := img.Bounds().Size(); sz.X < 500 || sz.Y < 300 {
				t.Errorf("%s: %v pixels", f, sz)
			}
		case ".svg":
			if !strings.Contains(string(b), "<svg") {
				t.Errorf("%s: no <svg> element", f)
			}
		}
	}
}

// TestPlotNothing: results without a scenario make no charts, and a
// failed or starved tenant step does not break the log scales.
func TestPlotNothing(t *testing.T) {
	dir := t.TempDir()
	r := &Results{Schema: SchemaVersion, Tenants: &Tenants{Steps: []TenantStep{{Clients: 2, Error: "failed"}}}}
	files, err := r.Plot(dir)
	if err != nil || len(files) != 0 {
		t.Errorf("Plot of empty results = %q, %v", files, err)
	}
	r = sampleResults()
	r.Tenants.Steps[1].MinClient, r.Tenants.Steps[1].FairnessMaxOverMin = 0, 0
	r.Latency[1].Floor = Dist{}
	if _, err := r.Plot(dir); err != nil {
		t.Error(err)
	}
}

func TestTicks(t *testing.T) {
	for _, tt := range []struct {
		lo, hi float64
		want   []string
	}{
		{1, 1.388, []string{"1.00", "1.05", "1.10", "1.15", "1.20", "1.25", "1.30", "1.35"}},
		{1, 3, []string{"1.0", "1.2", "1.4", "1.6", "1.8", "2.0", "2.2", "2.4", "2.6", "2.8", "3.0"}},
		{0, 50, []string{"0", "5", "10", "15", "20", "25", "30", "35", "40", "45", "50"}},
		{2, 2, []string{"2"}},
	} {
		var got []string
		for _, tick := range (linearTicks{}).Ticks(tt.lo, tt.hi) {
			got = append(got, tick.Label)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("linear ticks of [%g, %g] = %q, want %q", tt.lo, tt.hi, got, tt.want)
		}
	}
	var labels []string
	for _, tick := range (logTicks{format: fmtSeconds}).Ticks(3e-7, 2e-2) {
		if tick.Label != "" {
			labels = append(labels, tick.Label)
		}
	}
	if want := []string{"1µs", "10µs", "100µs", "1ms", "10ms"}; !slices.Equal(labels, want) {
		t.Errorf("log tick labels %q, want %q", labels, want)
	}
	for in, want := range map[string]string{"1.00µs": "1µs", "2.50 GB/s": "2.5 GB/s", "100ns": "100ns", "10.0k": "10k", "3": "3"} {
		if got := trimZeros(in); got != want {
			t.Errorf("trimZeros(%q) = %q, want %q", in, got, want)
		}
	}
}
