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

// leaveTimeout bounds one participant's leave message.
const leaveTimeout = 5 * time.Second

// maxErrorSamples is how many error messages the report keeps.
const maxErrorSamples = 10

// Run joins the participants, has them send and receive synthetic media
// for cfg.Duration, and reports what they saw and what the SFU's metrics
// say. When it returns, at the end or at ctx's, everyone has left; the
// report covers what ran even with an error (a bad Config, or nobody
// joined). Broken thresholds are Report.Violations, not an error.
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

	latency    histogram
	bytesOut   atomic.Uint64
	bytesIn    atomic.Uint64
	connected  atomic.Int64
	malformed  atomic.Uint64
	reconnects atomic.Int64
	// See AdmissionReport.
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

// subKey names a subscription, the same across reconnects of either side.
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

// loopbackSettings keeps the participants' ICE on loopback, without mDNS.
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

// startTrack registers a published track.
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

// plan lists the participants in join order: rooms fill evenly, publishers
// first.
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
	var sc scrapes
	if r.cfg.MetricsURL != "off" {
		sc.before, sc.beforeErr = scrape(ctx, r.hc, r.cfg.MetricsURL)
	}
	stopProgress := r.startProgress()

	joinCtx, stopJoins := context.WithCancel(ctx)
	defer stopJoins()
	enc := &encoders{stop: make(chan struct{})}
	r.joinAll(joinCtx, enc)
	if r.nobodyJoined() {
		r.setPhase("leaving")
		r.leaveAll(ctx)
		stopProgress()
		sc.w0Err = errors.New("no participant joined")
		r.fill(&rep, sc)
		rep.Interrupted = ctx.Err() != nil
		rep.Violations = Evaluate(rep, r.cfg.Thresholds)
		return rep, fmt.Errorf("loadtest: no participant could join %s: %s", r.cfg.URL, firstOr(rep.ErrorSamples, "no error recorded"))
	}
	r.settle(ctx)
	r.measure(ctx, &rep, &sc)
	r.drain()

	r.setPhase("leaving")
	stopJoins()
	enc.halt()
	r.leaveAll(ctx)
	r.readers.Wait()
	stopProgress()
	r.fill(&rep, sc)
	rep.Violations = Evaluate(rep, r.cfg.Thresholds)
	return rep, nil
}

// scrapes are the reads of the SFU's /metrics: before the first join and at
// both ends of the window.
type scrapes struct {
	before, w0, w1          sample
	beforeErr, w0Err, w1Err error
}

// encoders are the publishers' pacers.
type encoders struct {
	stop chan struct{}
	wg   sync.WaitGroup
}

func (e *encoders) start(r *runner, p *participant) {
	for _, pt := range p.pubs {
		e.wg.Go(func() { r.pace(e.stop, pt) })
	}
}

func (e *encoders) halt() {
	close(e.stop)
	e.wg.Wait()
}

// joinAll starts one join every 1/Ramp seconds, each on its own goroutine
// so a slow one does not hold up the next. A publisher's encoders start
// once it has published: the server announces a track at its first packet.
func (r *runner) joinAll(ctx context.Context, enc *encoders) {
	r.setPhase("joining")
	lim := rate.NewLimiter(rate.Limit(r.cfg.Ramp), 1)
	var joins sync.WaitGroup
	for _, p := range r.plan() {
		if lim.Wait(ctx) != nil {
			break
		}
		joins.Go(func() {
			ok := p.join(ctx)
			if p.c != nil {
				r.mu.Lock()
				r.parts = append(r.parts, p)
				r.mu.Unlock()
			}
			if ok && p.publisher {
				enc.start(r, p)
			}
		})
	}
	joins.Wait()
}

func (r *runner) nobodyJoined() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.joinTimes) == 0
}

// settle waits, at most Settle, until every subscription of those who
// joined delivers, so that the window measures the steady state.
func (r *runner) settle(ctx context.Context) {
	r.setPhase("settling")
	target := r.settleTarget()
	timeout := time.NewTimer(r.cfg.Settle)
	defer timeout.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for r.receiving() < target {
		select {
		case <-tick.C:
		case <-timeout.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// measure runs the window: frames written from its start count, and the
// SFU's metrics are read at both ends.
func (r *runner) measure(ctx context.Context, rep *Report, sc *scrapes) {
	r.setPhase("measuring")
	if r.cfg.MetricsURL != "off" {
		// Not ctx: a run interrupted while settling still reports the
		// server's side of what ran.
		sc.w0, sc.w0Err = scrape(context.WithoutCancel(ctx), r.hc, r.cfg.MetricsURL)
	}
	cpu0 := processCPU()
	windowStart := time.Now()
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
		sc.w1, sc.w1Err = scrape(context.WithoutCancel(ctx), r.hc, r.cfg.MetricsURL)
	}
	rep.ParticipantsConnected = int(r.connected.Load())
}

// drain counts frames up to what each encoder has written now, and lets
// them arrive (a frame is whole only once the next one starts).
func (r *runner) drain() {
	r.setPhase("draining")
	for _, pt := range r.publishedTracks() {
		pt.cutoff.Store(pt.last.Load())
		pt.bytesAtEnd.Store(pt.bytes.Load())
	}
	time.Sleep(DefaultDrain)
}

func firstOr(s []string, def string) string {
	if len(s) > 0 {
		return s[0]
	}
	return def
}

// leaveAll has every participant leave, in parallel, and waits for each.
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

// settleTarget is the subscriptions that should deliver given who joined.
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
