package loadtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
	"golang.org/x/time/rate"

	"github.com/sotto-rtc/sotto/signaling/client"
)

// Progress is the run's state, handed to Config.Progress about once a
// second.
type Progress struct {
	// Phase is "joining", "settling" (waiting for every subscription's
	// first frame), "measuring", "draining" or "leaving".
	Phase string
	// Elapsed is the time since the run started; Measured the time into
	// the measurement window, which lasts Duration.
	Elapsed, Measured, Duration time.Duration
	// Connected of Participants are connected now; Receiving of
	// Subscriptions have delivered media.
	Connected, Participants    int
	Receiving, Subscriptions   int
	MbpsOut, MbpsIn            float64 // media sent and received over the last interval
	Loss                       float64 // frame loss so far, 0-1
	Errors                     int
	DecryptFailures, NoKey     uint64
	LatencyP95MS, LatencyP50MS float64
}

// windowStarted reports whether the measurement window has begun.
func (p Progress) windowStarted() bool {
	return p.Phase == "measuring" || p.Phase == "draining" || p.Phase == "leaving"
}

// progressInterval is how often Config.Progress is called.
const progressInterval = time.Second

// leaveTimeout bounds one participant's leave message.
const leaveTimeout = 5 * time.Second

// maxErrorSamples is how many error messages the report keeps.
const maxErrorSamples = 10

// Run joins the configured participants to the SFU, has them publish and
// receive synthetic media for cfg.Duration, and reports what they saw and
// what the SFU's metrics say. It returns when the run is over or ctx is
// cancelled; either way every participant has left and every goroutine it
// started has ended. The report is filled as far as the run got (with
// Interrupted set when ctx ended it early) even when an error is returned.
// Broken thresholds are Report.Violations, not an error. Errors: a bad
// Config (*ConfigError, ErrSimulcast), or no participant joined at all.
func Run(ctx context.Context, cfg Config) (Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Report{}, err
	}
	r, err := newRunner(cfg)
	if err != nil {
		return Report{}, err
	}
	return r.run(ctx)
}

// runner is one run's state.
type runner struct {
	cfg      Config
	log      *slog.Logger
	se       *webrtc.SettingEngine
	hc       *http.Client
	prefix   string
	tokenTTL time.Duration
	epoch    time.Time // frames' send times count from here

	latency   histogram
	bytesOut  atomic.Uint64
	bytesIn   atomic.Uint64
	connected atomic.Int64
	malformed atomic.Uint64
	// reconnects counts Reconnecting events.
	reconnects atomic.Int64
	// admitted counts participants admitted by a member (or first in
	// their room); admissions those the load tool's members admitted
	// (every member admits all: AdmitAll); rosterAlerts roster alerts.
	admitted, admissions, rosterAlerts atomic.Int64

	mu          sync.Mutex
	phase       string
	measureFrom time.Time
	joinTimes   []time.Duration
	joinFails   int
	joinRetries int
	errCount    int
	errSamples  []string
	parts       []*participant
	pubTracks   []*pubTrack // by id-1
	subTracks   map[subKey]*subTrack
	subOrder    []*subTrack

	readers sync.WaitGroup // frame readers
}

// subKey names one subscriber's subscription to one published track, the
// same across reconnects of either side.
type subKey struct {
	subscriber, publisher, track string
}

func newRunner(cfg Config) (*runner, error) {
	prefix := cfg.RoomPrefix
	if prefix == "" {
		b := make([]byte, 3)
		_, _ = rand.Read(b)
		prefix = "loadtest-" + hex.EncodeToString(b)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	se := cfg.SettingEngine
	if se == nil && loopbackURL(cfg.URL) {
		se = loopbackSettings()
	}
	ramp := time.Duration(float64(cfg.participants()) / cfg.Ramp * float64(time.Second))
	return &runner{
		cfg:       cfg,
		log:       log,
		se:        se,
		hc:        &http.Client{Timeout: scrapeTimeout},
		prefix:    prefix,
		tokenTTL:  ramp + cfg.Settle + cfg.Duration + time.Hour,
		subTracks: make(map[subKey]*subTrack),
	}, nil
}

// loopbackURL reports whether rawURL's host is a loopback address.
func loopbackURL(rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil {
		return false
	}
	h := u.Hostname()
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// loopbackSettings keeps the participants' ICE on loopback: an SFU on the
// same machine is reached over lo and nothing else, and candidates are
// gathered without mDNS.
func loopbackSettings() *webrtc.SettingEngine {
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	return &se
}

func (r *runner) roomName(i int) string { return fmt.Sprintf("%s-%d", r.prefix, i) }

// now is the time since the epoch in microseconds, on the monotonic clock.
func (r *runner) now() int64 { return time.Since(r.epoch).Microseconds() }

func (r *runner) setPhase(p string) {
	r.mu.Lock()
	r.phase = p
	if p == "measuring" {
		r.measureFrom = time.Now()
	}
	r.mu.Unlock()
}

func (r *runner) noteError(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errCount++
	if len(r.errSamples) < maxErrorSamples {
		r.errSamples = append(r.errSamples, err.Error())
	}
	r.log.Warn("loadtest: error", "err", err)
}

func (r *runner) joined(p *participant, c *client.Client, d time.Duration) {
	p.c = c
	p.live.Store(true)
	r.connected.Add(1)
	r.mu.Lock()
	r.joinTimes = append(r.joinTimes, d)
	r.mu.Unlock()
}

func (r *runner) joinFailed(p *participant, err error) {
	r.mu.Lock()
	r.joinFails++
	r.mu.Unlock()
	r.noteError(fmt.Errorf("%s: join: %w", p.identity, err))
}

func (r *runner) joinRetry() {
	r.mu.Lock()
	r.joinRetries++
	r.mu.Unlock()
}

// startTrack registers a published track; its encoder starts with the
// measurement's encoders (see run).
func (r *runner) startTrack(p *participant, kind string, pub *client.Publication) {
	pt := &pubTrack{kind: kind, pub: pub, owner: p}
	pt.last.Store(-1)
	pt.start.Store(-1)
	pt.cutoff.Store(-1)
	r.mu.Lock()
	r.pubTracks = append(r.pubTracks, pt)
	pt.id = uint32(len(r.pubTracks))
	r.mu.Unlock()
	p.pubs = append(p.pubs, pt)
}

func (r *runner) publishedTracks() []*pubTrack {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*pubTrack(nil), r.pubTracks...)
}

func (r *runner) pubTrackByID(id uint32) *pubTrack {
	r.mu.Lock()
	defer r.mu.Unlock()
	if id == 0 || int(id) > len(r.pubTracks) {
		return nil
	}
	return r.pubTracks[id-1]
}

func (r *runner) subTrack(p *participant, rt *client.RemoteTrack) *subTrack {
	k := subKey{subscriber: p.identity, publisher: rt.Info.Identity, track: rt.Info.ClientTrackID}
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.subTracks[k]
	if st == nil {
		st = &subTrack{kind: rt.Info.Kind}
		r.subTracks[k] = st
		r.subOrder = append(r.subOrder, st)
	}
	return st
}

// plan lists the participants in join order: the rooms fill evenly, each
// with its publishers first.
func (r *runner) plan() []*participant {
	var ps []*participant
	per := r.cfg.Publishers + r.cfg.Subscribers
	for slot := range per {
		for room := range r.cfg.Rooms {
			p := &participant{r: r, room: room, publisher: slot < r.cfg.Publishers}
			if p.publisher {
				p.identity = fmt.Sprintf("pub-%d-%d", room, slot)
			} else {
				p.identity = fmt.Sprintf("sub-%d-%d", room, slot-r.cfg.Publishers)
			}
			ps = append(ps, p)
		}
	}
	return ps
}

func (r *runner) run(ctx context.Context) (Report, error) {
	started := time.Now()
	r.epoch = started
	rep := Report{Schema: SchemaVersion, StartedAt: started.UTC()}

	var before sample
	var scrapeErr error
	if r.cfg.MetricsURL != "off" {
		before, scrapeErr = scrape(ctx, r.hc, r.cfg.MetricsURL)
	}

	progressDone := make(chan struct{})
	var progressWG sync.WaitGroup
	if r.cfg.Progress != nil {
		progressWG.Add(1)
		go func() {
			defer progressWG.Done()
			r.reportProgress(progressDone)
		}()
	}

	// Joining: one join starts every 1/Ramp seconds, each on its own
	// goroutine, so a slow join does not slow the ones after it.
	r.setPhase("joining")
	joinCtx, stopJoins := context.WithCancel(ctx)
	defer stopJoins()
	lim := rate.NewLimiter(rate.Limit(r.cfg.Ramp), 1)
	var joins sync.WaitGroup
	stopMedia := make(chan struct{})
	var pacers sync.WaitGroup
	startPacers := func(p *participant) {
		for _, pt := range p.pubs {
			pacers.Add(1)
			go func() {
				defer pacers.Done()
				r.pace(stopMedia, pt)
			}()
		}
	}
	// A publisher's encoders start as soon as it has published: the
	// server announces a track at its first packet.
	for _, p := range r.plan() {
		if lim.Wait(joinCtx) != nil {
			break
		}
		joins.Add(1)
		go func() {
			defer joins.Done()
			ok := p.join(joinCtx)
			if p.c != nil {
				r.mu.Lock()
				r.parts = append(r.parts, p)
				r.mu.Unlock()
			}
			if ok && p.publisher {
				startPacers(p)
			}
		}()
	}
	joins.Wait()

	r.mu.Lock()
	nobody := len(r.joinTimes) == 0
	r.mu.Unlock()
	if nobody {
		// Nothing to measure: say why at once.
		r.setPhase("leaving")
		r.leaveAll(ctx)
		close(progressDone)
		progressWG.Wait()
		r.fill(&rep, before, scrapeErr, sample{}, errors.New("no participant joined"), sample{}, nil)
		rep.Interrupted = ctx.Err() != nil
		rep.Violations = Evaluate(rep, r.cfg.Thresholds)
		return rep, fmt.Errorf("loadtest: no participant could join %s: %s", r.cfg.URL, firstOr(rep.ErrorSamples, "no error recorded"))
	}

	// Settling: the window starts once every subscription of the
	// participants who joined delivers, so that it measures the steady
	// state.
	r.setPhase("settling")
	target := r.settleTarget()
	settle := time.NewTimer(r.cfg.Settle)
	tick := time.NewTicker(100 * time.Millisecond)
settled:
	for r.receiving() < target {
		select {
		case <-tick.C:
		case <-settle.C:
			break settled
		case <-ctx.Done():
			break settled
		}
	}
	settle.Stop()
	tick.Stop()

	// Measuring.
	r.setPhase("measuring")
	var w0, w1 sample
	var w0Err, w1Err error
	if r.cfg.MetricsURL != "off" {
		// Not ctx: a run interrupted while settling still reports the
		// server's side of what ran.
		w0, w0Err = scrape(context.WithoutCancel(ctx), r.hc, r.cfg.MetricsURL)
	}
	cpu0 := processCPU()
	windowStart := time.Now()
	// Frames written from now on are the window's.
	for _, pt := range r.publishedTracks() {
		pt.start.Store(pt.last.Load() + 1)
		pt.bytesAtStart.Store(pt.bytes.Load())
	}
	window := time.NewTimer(r.cfg.Duration)
	select {
	case <-window.C:
	case <-ctx.Done():
		rep.Interrupted = true
	}
	window.Stop()
	rep.MeasuredSeconds = time.Since(windowStart).Seconds()
	rep.LoadtestCPUSeconds = (processCPU() - cpu0).Seconds()
	if r.cfg.MetricsURL != "off" {
		w1, w1Err = scrape(context.WithoutCancel(ctx), r.hc, r.cfg.MetricsURL)
	}
	rep.ParticipantsConnected = int(r.connected.Load())

	// Draining: the measurement counts frames up to what each encoder
	// had written by now; the encoders go on a little so that those
	// frames can still arrive (and the last one be completed: a frame is
	// known to be whole only when the next one starts).
	r.setPhase("draining")
	for _, pt := range r.publishedTracks() {
		pt.cutoff.Store(pt.last.Load())
		pt.bytesAtEnd.Store(pt.bytes.Load())
	}
	drain := time.NewTimer(DefaultDrain)
	<-drain.C

	// Leaving.
	r.setPhase("leaving")
	stopJoins()
	close(stopMedia)
	pacers.Wait()
	r.leaveAll(ctx)
	r.readers.Wait()
	close(progressDone)
	progressWG.Wait()

	r.fill(&rep, before, scrapeErr, w0, w0Err, w1, w1Err)
	rep.Violations = Evaluate(rep, r.cfg.Thresholds)
	return rep, nil
}

func firstOr(s []string, def string) string {
	if len(s) > 0 {
		return s[0]
	}
	return def
}

// leaveAll has every participant leave, in parallel, and waits until each
// client is done (its last handler has returned).
func (r *runner) leaveAll(ctx context.Context) {
	r.mu.Lock()
	parts := append([]*participant(nil), r.parts...)
	r.mu.Unlock()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, p := range parts {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), leaveTimeout)
			defer cancel()
			if err := p.c.Leave(lctx); err != nil && !errors.Is(err, client.ErrClosed) {
				r.log.Debug("loadtest: leave", "participant", p.identity, "err", err)
			}
			<-p.c.Done()
		}()
	}
	wg.Wait()
}

// settleTarget is the number of subscriptions that should deliver media
// given who joined: per room, subscribers in it times tracks published in
// it.
func (r *runner) settleTarget() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	subs := make(map[int]int)
	tracks := make(map[int]int)
	for _, p := range r.parts {
		if p.publisher {
			tracks[p.room] += len(p.pubs)
		} else {
			subs[p.room]++
		}
	}
	n := 0
	for room, s := range subs {
		n += s * tracks[room]
	}
	return n
}

// receiving counts subscriptions that delivered at least one frame.
func (r *runner) receiving() int {
	r.mu.Lock()
	sts := append([]*subTrack(nil), r.subOrder...)
	r.mu.Unlock()
	n := 0
	for _, st := range sts {
		st.mu.Lock()
		if st.frames > 0 {
			n++
		}
		st.mu.Unlock()
	}
	return n
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
	if exp > 0 {
		pr.Loss = float64(exp-rec) / float64(exp)
	}
	pr.LatencyP50MS = r.latency.Quantile(50) / 1000
	pr.LatencyP95MS = r.latency.Quantile(95) / 1000
	return pr
}

// fill computes the report once every participant has left.
func (r *runner) fill(rep *Report, before sample, beforeErr error, w0 sample, w0Err error, w1 sample, w1Err error) {
	cfg := r.cfg
	rep.Config = ReportConfig{
		URL:              cfg.URL,
		Rooms:            cfg.Rooms,
		Publishers:       cfg.Publishers,
		Subscribers:      cfg.Subscribers,
		DurationSeconds:  cfg.Duration.Seconds(),
		Media:            cfg.Media.String(),
		VideoBitrateBPS:  cfg.VideoBitrate,
		E2EE:             !cfg.DisableE2EE,
		RampPerSecond:    cfg.Ramp,
		MaxLoss:          cfg.Thresholds.MaxLoss,
		MaxP95JoinMS:     float64(cfg.Thresholds.MaxP95Join) / float64(time.Millisecond),
		AudioFrameBytes:  audioFrameBytes,
		VideoFPS:         videoFPS,
		KeyframeInterval: keyframeInterval.Seconds(),
	}

	r.mu.Lock()
	rep.ParticipantsExpected = cfg.participants()
	rep.ParticipantsJoined = len(r.joinTimes)
	rep.JoinFailures = r.joinFails
	rep.JoinRetries = r.joinRetries
	rep.JoinMS = durationPercentiles(r.joinTimes)
	rep.Errors = r.errCount
	rep.ErrorSamples = append([]string{}, r.errSamples...)
	pts := append([]*pubTrack(nil), r.pubTracks...)
	sts := append([]*subTrack(nil), r.subOrder...)
	r.mu.Unlock()
	rep.Reconnects = int(r.reconnects.Load())
	if !r.cfg.DisableE2EE {
		rep.Admission = &AdmissionReport{
			Policy:       "admit all",
			Admitted:     int(r.admitted.Load()),
			Admissions:   int(r.admissions.Load()),
			RosterAlerts: int(r.rosterAlerts.Load()),
		}
	}
	rep.MalformedFrames = r.malformed.Load()

	rep.TracksPublished = len(pts)
	rep.TracksExpected = cfg.expectedTracks()
	var sentRates []float64
	for _, pt := range pts {
		rep.FramesSent += pt.frames.Load()
		if rep.MeasuredSeconds > 0 && pt.start.Load() >= 0 {
			sentRates = append(sentRates, float64(pt.bytesAtEnd.Load()-pt.bytesAtStart.Load())*8/rep.MeasuredSeconds)
		}
		if last := pt.last.Load(); last >= 0 {
			interval := audioFrameInterval
			if pt.kind == "video" {
				interval = time.Second / videoFPS
			}
			due := (pt.lastUS.Load()-pt.firstUS.Load())/interval.Microseconds() + 1
			rep.FramesSkipped += uint64(max(due-(last+1), 0))
		}
	}
	rep.SentBitrateBPS = mean(sentRates)

	var jitters, rates, audio, video []float64
	for _, st := range sts {
		ramp, window := st.counts()
		st.mu.Lock()
		if st.frames > 0 {
			rep.TracksReceived++
		}
		rep.Ramp.FramesExpected += ramp.expected
		rep.Ramp.FramesReceived += ramp.received
		rep.FramesExpected += window.expected
		rep.FramesReceived += window.received
		if st.wFrames > 1 {
			jitters = append(jitters, st.jit.j/1000)
			if span := float64(st.wLastUS-st.wFirstUS) / 1e6; span > 0 {
				bps := float64(st.wBytes) * 8 / span
				rates = append(rates, bps)
				if st.kind == "audio" {
					audio = append(audio, bps)
				} else {
					video = append(video, bps)
				}
			}
		}
		for _, rt := range st.remotes {
			s := rt.Stats()
			rep.DecryptFailures += s.Rejected
			rep.DecryptNoKey += s.NoKey
		}
		st.mu.Unlock()
	}
	if rep.Ramp.FramesExpected > 0 {
		rep.Ramp.PacketLoss = float64(rep.Ramp.FramesExpected-rep.Ramp.FramesReceived) / float64(rep.Ramp.FramesExpected)
	}
	if rep.FramesExpected > 0 {
		rep.PacketLoss = float64(rep.FramesExpected-rep.FramesReceived) / float64(rep.FramesExpected)
	}
	rep.JitterMS = mean(jitters)
	rep.ReceivedBitrateBPS = mean(rates)
	rep.ReceivedBitrateBPSByKind = KindRates{Audio: mean(audio), Video: mean(video)}
	rep.E2ELatencyMS = r.latency.Percentiles()

	rep.SFU = sfuReport(cfg.MetricsURL, before, beforeErr, w0, w0Err, w1, w1Err, rep.ParticipantsConnected)
}

// sfuReport turns the three reads of /metrics into the report's sfu
// section.
func sfuReport(url string, before sample, beforeErr error, w0 sample, w0Err error, w1 sample, w1Err error, participants int) SFUReport {
	var s SFUReport
	if url == "off" {
		s.Note = "metrics not read (--metrics-url off)"
		return s
	}
	if err := errors.Join(w0Err, w1Err); err != nil {
		s.Note = err.Error()
		return s
	}
	s.Available = true
	s.WindowSeconds = w1.at.Sub(w0.at).Seconds()
	delta := func(name string) float64 { return w1.values[name] - w0.values[name] }
	s.CPUSeconds = delta(metricCPU)
	s.RSSBytes = w1.values[metricRSS]
	s.ForwardedPackets = delta(metricForwarded)
	s.ReceivedPackets = delta(metricReceived)
	s.DroppedPackets = delta(metricDropped)
	s.NACKRetransmissions = delta(metricNACK)
	if s.CPUSeconds > 0 {
		s.ForwardedPerCPUSecond = s.ForwardedPackets / s.CPUSeconds
	}
	var missing []string
	for _, m := range []string{metricCPU, metricRSS, metricForwarded} {
		if !w1.present[m] {
			missing = append(missing, m)
		}
	}
	if beforeErr == nil {
		run := func(name string) float64 { return w1.values[name] - before.values[name] }
		s.SignalingMessages = run(metricMessages)
		s.RelayMessages = run(metricRelays)
		s.SignalingErrors = run(metricErrors)
		s.SlowClientDisconnects = run(metricSlow)
		s.RSSBytesBefore = before.values[metricRSS]
		if participants > 0 && s.RSSBytes > 0 {
			s.RSSBytesPerParticipant = (s.RSSBytes - s.RSSBytesBefore) / float64(participants)
		}
	}
	switch {
	case len(missing) > 0:
		s.Note = fmt.Sprintf("the SFU's /metrics lacks %v: those figures are 0", missing)
	case beforeErr != nil:
		s.Note = "no read before the first join: " + beforeErr.Error()
	}
	return s
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	var sum float64
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs))
}
