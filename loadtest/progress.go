package loadtest

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
)

// plainEvery is how often a Display without a terminal writes a line.
const plainEvery = 5 * time.Second

// Display shows a run's progress. On a terminal it is one line redrawn in
// place: a bar over the measurement window and, beside it, connected
// participants, media in and out, loss and errors. Elsewhere (a log, CI)
// it writes a plain line every few seconds. Pass Update as
// Config.Progress; call Close once Run has returned.
type Display struct {
	w    io.Writer
	mu   sync.Mutex
	bar  *progressbar.ProgressBar // nil: plain lines
	last time.Time
	seen bool
}

// NewDisplay returns a Display writing to w; tty says w is a terminal.
func NewDisplay(w io.Writer, tty bool) *Display {
	d := &Display{w: w}
	if tty {
		d.bar = progressbar.NewOptions64(1000,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetWidth(20),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionSetElapsedTime(false),
			progressbar.OptionThrottle(0),
			progressbar.OptionShowDescriptionAtLineEnd(),
			progressbar.OptionSetRenderBlankState(true),
		)
	}
	return d
}

// Update shows p.
func (d *Display) Update(p Progress) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.seen = true
	if d.bar != nil {
		if p.Duration > 0 {
			_ = d.bar.Set64(int64(1000 * p.Measured / p.Duration))
		}
		d.bar.Describe(progressLine(p))
		return
	}
	if now := time.Now(); now.Sub(d.last) >= plainEvery || p.Phase == "leaving" {
		d.last = now
		fmt.Fprintf(d.w, "loadtest: %s\n", progressLine(p))
	}
}

// Close ends the display's line.
func (d *Display) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.bar != nil && d.seen {
		_ = d.bar.Exit()
		fmt.Fprintln(d.w)
	}
}

// progressLine is p in one line.
func progressLine(p Progress) string {
	phase := p.Phase
	if p.Phase == "measuring" {
		phase = fmt.Sprintf("measuring %.0f/%.0fs", p.Measured.Seconds(), p.Duration.Seconds())
	}
	s := fmt.Sprintf("%s | %d/%d connected | %d/%d subscriptions | out %.2f Mbps | in %.2f Mbps | loss %.2f%% | e2e p95 %.1f ms | errors %d",
		phase, p.Connected, p.Participants, p.Receiving, p.Subscriptions, p.MbpsOut, p.MbpsIn, 100*p.Loss, p.LatencyP95MS, p.Errors)
	if p.DecryptFailures > 0 {
		s += fmt.Sprintf(" | DECRYPT FAILURES %d", p.DecryptFailures)
	}
	return s
}
