package bench

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// ProgressBar draws a run's progress on one terminal line, redrawn in
// place with a carriage return: a bar, the step, its name and the time
// spent. Within a step it advances with the clock, by the step's expected
// length. Give Update to Config.Progress and call Finish after Run; use it
// only on a terminal (the caller checks, e.g. with term.IsTerminal).
type ProgressBar struct {
	w     io.Writer
	width int

	mu      sync.Mutex
	cur     Progress
	began   time.Time // of the run
	stepAt  time.Time // of the current step
	drawn   int       // length of the line last drawn
	stop    chan struct{}
	stopped chan struct{}
	finish  sync.Once
}

// NewProgressBar starts a bar on w, redrawn a few times a second until
// Finish.
func NewProgressBar(w io.Writer) *ProgressBar {
	p := &ProgressBar{w: w, width: 30, began: time.Now(), stop: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(p.stopped)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-tick.C:
				p.draw()
			}
		}
	}()
	return p
}

// Update records that a step has started.
func (p *ProgressBar) Update(pr Progress) {
	p.mu.Lock()
	p.cur, p.stepAt = pr, time.Now()
	p.mu.Unlock()
	p.draw()
}

// Finish stops redrawing and clears the line. Calls after the first do
// nothing.
func (p *ProgressBar) Finish() {
	p.finish.Do(func() {
		close(p.stop)
		<-p.stopped
		p.mu.Lock()
		defer p.mu.Unlock()
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.drawn))
	})
}

func (p *ProgressBar) draw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur.Steps == 0 {
		return
	}
	line := p.line(time.Now())
	pad := max(p.drawn-len([]rune(line)), 0)
	fmt.Fprintf(p.w, "\r%s%s", line, strings.Repeat(" ", pad))
	p.drawn = len([]rune(line))
}

// line is the bar as it stands at now.
func (p *ProgressBar) line(now time.Time) string {
	done := float64(p.cur.Step - 1)
	if p.cur.Expected > 0 {
		done += min(float64(now.Sub(p.stepAt))/float64(p.cur.Expected), 0.99)
	}
	frac := min(done/float64(p.cur.Steps), 1)
	filled := int(frac * float64(p.width))
	return fmt.Sprintf("[%s%s] %d/%d %s  %s", strings.Repeat("#", filled), strings.Repeat(".", p.width-filled),
		p.cur.Step, p.cur.Steps, p.cur.Name, now.Sub(p.began).Round(time.Second))
}
