package bench

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestProgressLine(t *testing.T) {
	began := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	p := &ProgressBar{width: 10, began: began}
	p.cur, p.stepAt = Progress{Step: 3, Steps: 5, Name: "copy bandwidth tcp", Expected: 2 * time.Second}, began.Add(4*time.Second)
	for _, tt := range []struct {
		at   time.Duration
		want string
	}{
		{4 * time.Second, "[####......] 3/5 copy bandwidth tcp  4s"},
		{5 * time.Second, "[#####.....] 3/5 copy bandwidth tcp  5s"},
		{60 * time.Second, "[#####.....] 3/5 copy bandwidth tcp  1m0s"}, // a slow step stays within itself
	} {
		if got := p.line(began.Add(tt.at)); got != tt.want {
			t.Errorf("at %v: %q, want %q", tt.at, got, tt.want)
		}
	}
}

func TestProgressBar(t *testing.T) {
	// Every write happens under the bar's lock and before Finish returns,
	// so a plain buffer read after Finish is race-free.
	var out bytes.Buffer
	p := NewProgressBar(&out)
	p.Update(Progress{Step: 1, Steps: 2, Name: "first", Expected: time.Second})
	p.Update(Progress{Step: 2, Steps: 2, Name: "second"})
	p.Finish()
	p.Finish()
	got := out.String()
	if !strings.Contains(got, "\r[") || !strings.Contains(got, "1/2 first") || !strings.Contains(got, "2/2 second") {
		t.Errorf("bar drew %q", got)
	}
	if !strings.HasSuffix(got, "\r") {
		t.Errorf("bar did not clear its line: %q", got)
	}
}
