package loadtest

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
)

// Progress is the run's state, handed to Config.Progress about once a
// second.
type Progress struct {
	// Phase is "joining", "settling", "measuring", "draining" or "leaving".
	Phase                       string
	Elapsed, Measured, Duration time.Duration
	Connected, Participants     int
	Receiving, Subscriptions    int
	MbpsOut, MbpsIn             float64 // media sent and received over the last interval
	Loss                        float64 // frame loss so far, 0-1
	Errors                      int
	DecryptFailures, NoKey      uint64
	LatencyP95MS, LatencyP50MS  float64
}

// windowStarted reports whether the measurement window has begun.
func (p Progress) windowStarted() bool {
	return p.Phase == "measuring" || p.Phase == "draining" || p.Phase == "leaving"
}

// progressInterval is how often Config.Progress is called.
const progressInterval = time.Second

// startProgress calls Config.Progress until the returned stop, which
// returns after the last call.
func (r *runner) startProgress() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	if r.cfg.Progress != nil {
		wg.Go(func() { r.reportProgress(done) })
	}
	return func() {
		close(done)
		wg.Wait()
	}
}

// reportProgress calls Config.Progress every progressInterval until done
// is closed, and once more then.
func (r *runner) reportProgress(done <-chan struct{}) {
	t := time.NewTicker(progressInterval)
	defer t.Stop()
	lastAt := time.Now()
	lastOut, lastIn := r.bytesOut.Load(), r.bytesIn.Load()
	for {
		final := false
		select {
		case <-t.C:
		case <-done:
			final = true
		}
		now := time.Now()
		out, in := r.bytesOut.Load(), r.bytesIn.Load()
		secs := max(now.Sub(lastAt).Seconds(), 1e-3)
		pr := r.progress(now)
		pr.MbpsOut = float64(out-lastOut) * 8 / secs / 1e6
		pr.MbpsIn = float64(in-lastIn) * 8 / secs / 1e6
		lastAt, lastOut, lastIn = now, out, in
		r.cfg.Progress(pr)
		if final {
			return
		}
	}
}

func (r *runner) progress(now time.Time) Progress {
	r.mu.Lock()
	pr := Progress{
		Phase:         r.phase,
		Elapsed:       now.Sub(r.epoch),
		Duration:      r.cfg.Duration,
		Participants:  r.cfg.participants(),
		Subscriptions: r.cfg.expectedTracks(),
		Errors:        r.errCount,
	}
	if !r.measureFrom.IsZero() {
		pr.Measured = min(now.Sub(r.measureFrom), r.cfg.Duration)
	}
	sts := append([]*subTrack(nil), r.subOrder...)
	r.mu.Unlock()
	pr.Connected = int(r.connected.Load())
	var exp, rec uint64
	for _, st := range sts {
		ramp, window := st.counts()
		c := ramp
		if pr.windowStarted() {
			c = window
		}
		exp += c.expected
		rec += c.received
		st.mu.Lock()
		if st.frames > 0 {
			pr.Receiving++
		}
		for _, rt := range st.remotes {
			s := rt.Stats()
			pr.DecryptFailures += s.Rejected
			pr.NoKey += s.NoKey
		}
		st.mu.Unlock()
	}
	pr.Loss = lossOf(exp, rec)
	pr.LatencyP50MS = r.latency.Quantile(50) / 1000
	pr.LatencyP95MS = r.latency.Quantile(95) / 1000
	return pr
}

// plainEvery is how often a Display without a terminal writes a line.
const plainEvery = 5 * time.Second

// Display shows a run's progress: a line redrawn in place on a terminal, a
// plain line every few seconds elsewhere. Pass Update as Config.Progress;
// Close once Run has returned.
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
