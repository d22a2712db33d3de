package sfu

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// Defaults of Config fields left zero.
const (
	defaultListenIP                = "0.0.0.0"
	defaultPacketCacheSize         = 512
	defaultKeyframeRequestInterval = 500 * time.Millisecond
	defaultICEDisconnectedTimeout  = 5 * time.Second
	defaultICEFailedTimeout        = 10 * time.Second
	iceKeepaliveInterval           = 2 * time.Second
	// tcpReadBufferSize is the number of packets ICE-TCP buffers per
	// connection before the reader catches up.
	tcpReadBufferSize = 64
	// tcpWriteBufferSize bounds the bytes queued per ICE-TCP connection:
	// seconds of video, so only a stalled subscriber ever fills it.
	tcpWriteBufferSize = 1 << 20
	// bindAttempts bounds the retries of picking a port free for both UDP
	// and TCP when Config.Port is 0.
	bindAttempts = 8
)

// Target names of a participant's two peer connections, as the signaling
// protocol spells them.
const (
	targetPublisher  = "publisher"
	targetSubscriber = "subscriber"
)

// SFU is a selective forwarding unit: rooms of participants, each with a
// publisher and a subscriber peer connection, all on one media port.
type SFU struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics

	// se, pubStack and subStack build a participant's connections:
	// publisher connections (the SFU receives) on pubStack, subscriber
	// connections (the SFU sends) on subStack, whose interceptor chains
	// differ, see newPublisherInterceptors and newSubscriberInterceptors.
	// Each connection gets a webrtc.API of its own, for its BufferFactory
	// (newPeerConnection).
	se       webrtc.SettingEngine
	pubStack connStack
	subStack connStack

	udpMux ice.UDPMux
	cands  *candidatePolicy
	// batch is the UDP mux's sockets, for forwarding loops to batch their
	// writes on (udpbatch.go); nil when DisableBatchedWrites or Net.
	batch  *batchGroup
	tcpMux ice.TCPMux // nil when DisableTCP
	port   int

	mu     sync.Mutex
	rooms  map[string]*room
	closed bool

	closeOnce sync.Once
}

// room is the participants of one room and the tracks they publish. It
// exists while it has a participant. Guarded by SFU.mu.
type room struct {
	participants map[string]*Participant // by participant SID
	tracks       map[string]*publishedTrack
}

// Counts is a snapshot of what the SFU holds; tests use it to prove that
// nothing leaks.
type Counts struct {
	Rooms         int // rooms with at least one participant
	Participants  int // participants joined and not closed
	Tracks        int // published tracks, announced or about to be
	Subscriptions int // (participant, track) forwarding pairs
}

// New starts an SFU: it binds the media port (UDP, and TCP on the same
// port number unless DisableTCP or Net) and builds the WebRTC stacks.
func New(cfg Config) (*SFU, error) {
	cfg = withDefaults(cfg)
	log := cfg.Logger

	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}

	ip := net.ParseIP(cfg.ListenIP)
	if ip == nil {
		return nil, fmt.Errorf("sfu: listen IP %q is not an IP address", cfg.ListenIP)
	}
	lf := newPionLoggerFactory(log, m)
	udpMux, batch, tcpListener, port, err := listenMedia(cfg, ip, lf)
	if err != nil {
		return nil, err
	}
	s := &SFU{
		cfg:     cfg,
		log:     log,
		metrics: m,
		port:    port,
		rooms:   make(map[string]*room),
		udpMux:  udpMux,
		batch:   batch,
	}
	if s.cands, err = newCandidatePolicy(cfg, ownAddrs(udpMux), cfg.Registerer); err != nil {
		_ = s.closeSockets()
		return nil, err
	}
	if tcpListener != nil {
		// What webrtc.NewICETCPMux builds, plus a write buffer: without
		// one a write blocks while a subscriber's TCP window is full, and
		// a track's forwarding loop would stall every other subscriber
		// behind the slow one. With it, that subscriber's packets drop.
		s.tcpMux = ice.NewTCPMuxDefault(ice.TCPMuxParams{
			Listener:        tcpListener,
			Logger:          lf.NewLogger("tcpmux"),
			ReadBufferSize:  tcpReadBufferSize,
			WriteBufferSize: tcpWriteBufferSize,
		})
	}

	if s.se, err = s.settingEngine(ip, lf); err != nil {
		_ = s.closeSockets()
		return nil, err
	}
	strict := strictFactory{opts: newStrictOptions(), m: m.strict}
	if s.pubStack, err = newConnStack(cfg.AudioLevelExtension, strict, newPublisherInterceptors); err != nil {
		_ = s.closeSockets()
		return nil, err
	}
	if s.subStack, err = newConnStack(cfg.AudioLevelExtension, strict, newSubscriberInterceptors); err != nil {
		_ = s.closeSockets()
		return nil, err
	}
	log.Info("sfu: SFU listening", "ip", cfg.ListenIP, "port", port, "tcp", s.tcpMux != nil)
	return s, nil
}

func withDefaults(cfg Config) Config {
	if cfg.ListenIP == "" {
		cfg.ListenIP = defaultListenIP
	}
	if cfg.PacketCacheSize <= 0 {
		cfg.PacketCacheSize = defaultPacketCacheSize
	}
	if cfg.PacketCacheSize > maxPacketCacheSize {
		cfg.PacketCacheSize = maxPacketCacheSize
	}
	if cfg.KeyframeRequestInterval <= 0 {
		cfg.KeyframeRequestInterval = defaultKeyframeRequestInterval
	}
	cfg.AudioMaxBitrate = orDefault(cfg.AudioMaxBitrate, DefaultAudioMaxBitrate)
	cfg.AudioMaxPacketRate = orDefault(cfg.AudioMaxPacketRate, DefaultAudioMaxPacketRate)
	cfg.VideoMaxBitrate = orDefault(cfg.VideoMaxBitrate, DefaultVideoMaxBitrate)
	cfg.VideoMaxPacketRate = orDefault(cfg.VideoMaxPacketRate, DefaultVideoMaxPacketRate)
	if cfg.RateLimitEndFactor <= 0 {
		cfg.RateLimitEndFactor = DefaultRateLimitEndFactor
	}
	if cfg.RateLimitEndAfter <= 0 {
		cfg.RateLimitEndAfter = DefaultRateLimitEndAfter
	}
	if cfg.ICEDisconnectedTimeout <= 0 {
		cfg.ICEDisconnectedTimeout = defaultICEDisconnectedTimeout
	}
	if cfg.ICEFailedTimeout <= 0 {
		cfg.ICEFailedTimeout = defaultICEFailedTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg
}

// listenMedia binds the media port: the ICE UDP mux and, unless TCP is
// off, the ICE-TCP listener on the same port number. It returns the
// port number bound, and the mux's sockets as a batchGroup unless batched
// writes are off (or the network is cfg.Net's, whose sockets are not the
// kernel's).
//
// On a specific ListenIP one UDP socket serves every peer. On the
// unspecified address (0.0.0.0 or ::) one socket would answer a peer from
// whatever source address the kernel routes by, which on a multi-homed
// host need not be the address the peer sent to, and the peer drops the
// reply. There every interface address gets a socket of its own, all on
// one port number; addresses that appear after New are not served. TCP
// needs no such care: a reply leaves on the connection it answers.
func listenMedia(cfg Config, ip net.IP, lf pionLoggerFactory) (ice.UDPMux, *batchGroup, net.Listener, int, error) {
	logger := lf.NewLogger("udpmux")
	switch {
	case cfg.Net != nil:
		udp, err := cfg.Net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: cfg.Port})
		if err != nil {
			return nil, nil, nil, 0, fmt.Errorf("sfu: bind UDP %s: %w", net.JoinHostPort(ip.String(), strconv.Itoa(cfg.Port)), err)
		}
		mux := ice.NewUDPMuxDefault(ice.UDPMuxParams{Logger: logger, UDPConn: udp, Net: cfg.Net})
		return mux, nil, nil, udp.LocalAddr().(*net.UDPAddr).Port, nil
	case ip.IsUnspecified():
		return listenEveryInterface(ip, cfg.Port, !cfg.DisableTCP, cfg.IncludeLoopback, !cfg.DisableBatchedWrites, logger, lf.state.drops.oversized)
	default:
		udp, tcp, err := bindMediaPort(ip, cfg.Port, !cfg.DisableTCP)
		if err != nil {
			return nil, nil, nil, 0, err
		}
		port := udp.LocalAddr().(*net.UDPAddr).Port
		if cfg.DisableBatchedWrites {
			return webrtc.NewICEUDPMux(logger, udp), nil, tcp, port, nil
		}
		bc := newBatchConn(udp)
		bc.oversized = lf.state.drops.oversized
		mux := ice.NewUDPMuxDefault(ice.UDPMuxParams{Logger: logger, UDPConn: bc})
		return mux, &batchGroup{conns: []*batchConn{bc}}, tcp, port, nil
	}
}

// listenEveryInterface binds UDP on port of every interface address (and
// TCP on the unspecified ip, same port number, when withTCP). The port
// number is found by binding the unspecified address first, as
// bindMediaPort does; the UDP socket is then closed and replaced by one
// per interface address. With port 0 another process may take the number
// in between; then it tries again with another. With batch, the sockets
// are batchConns, returned as a group.
func listenEveryInterface(ip net.IP, port int, withTCP, loopback, batch bool, logger logging.LeveledLogger, oversized prometheus.Counter) (ice.UDPMux, *batchGroup, net.Listener, int, error) {
	attempts := 1
	if port == 0 {
		attempts = bindAttempts
	}
	var lastErr error
	for range attempts {
		udp, tcp, err := bindMediaPort(ip, port, withTCP)
		if err != nil {
			return nil, nil, nil, 0, err
		}
		got := udp.LocalAddr().(*net.UDPAddr).Port
		_ = udp.Close()
		opts := []ice.UDPMuxFromPortOption{ice.UDPMuxFromPortWithLogger(logger)}
		if loopback {
			opts = append(opts, ice.UDPMuxFromPortWithLoopback())
		}
		var group *batchGroup
		if batch {
			bn, err := newBatchNet()
			if err != nil {
				if tcp != nil {
					_ = tcp.Close()
				}
				return nil, nil, nil, 0, fmt.Errorf("sfu: network: %w", err)
			}
			bn.oversized = oversized
			group = &bn.group
			opts = append(opts, ice.UDPMuxFromPortWithNet(bn))
		}
		mux, err := ice.NewMultiUDPMuxFromPort(got, opts...)
		if err == nil && len(mux.GetListenAddresses()) == 0 {
			_ = mux.Close()
			err = errors.New("no interface address to listen on")
		}
		if err == nil {
			return mux, group, tcp, got, nil
		}
		if tcp != nil {
			_ = tcp.Close()
		}
		lastErr = fmt.Errorf("sfu: bind UDP port %d on every interface: %w", got, err)
	}
	return nil, nil, nil, 0, lastErr
}

// bindMediaPort binds UDP on ip:port and, when withTCP, TCP on the port
// number UDP got. With port 0 the kernel picks the UDP port, which may be
// taken for TCP; then it tries again with another.
func bindMediaPort(ip net.IP, port int, withTCP bool) (*net.UDPConn, net.Listener, error) {
	attempts := 1
	if port == 0 {
		attempts = bindAttempts
	}
	var lastErr error
	for range attempts {
		udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: port})
		if err != nil {
			return nil, nil, fmt.Errorf("sfu: bind UDP %s: %w", net.JoinHostPort(ip.String(), strconv.Itoa(port)), err)
		}
		if !withTCP {
			return udp, nil, nil
		}
		got := udp.LocalAddr().(*net.UDPAddr).Port
		tcp, err := net.ListenTCP("tcp", &net.TCPAddr{IP: ip, Port: got})
		if err == nil {
			return udp, tcp, nil
		}
		_ = udp.Close()
		lastErr = fmt.Errorf("sfu: bind TCP %s: %w", net.JoinHostPort(ip.String(), strconv.Itoa(got)), err)
	}
	return nil, nil, lastErr
}

// settingEngine is shared by every connection: one port, one set of ICE
// rules.
func (s *SFU) settingEngine(ip net.IP, lf pionLoggerFactory) (webrtc.SettingEngine, error) {
	var se webrtc.SettingEngine
	se.LoggerFactory = lf
	se.SetICEUDPMux(s.udpMux)
	if s.cfg.Net != nil {
		se.SetNet(s.cfg.Net)
	}
	types := []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6}
	if s.tcpMux != nil {
		se.SetICETCPMux(s.tcpMux)
		types = append(types, webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6)
	}
	se.SetNetworkTypes(types)
	if !ip.IsUnspecified() {
		// The UDP mux only ever offers its own address, but ICE-TCP
		// gathers from every interface: keep it to the one we listen on.
		se.SetIPFilter(func(candidate net.IP) bool { return candidate.Equal(ip) })
	}
	if len(s.cfg.PublicIPs) > 0 {
		// 1:1 NAT: host candidates carry the public addresses instead of
		// the local ones. This is what SetNAT1To1IPs(ips, host) did; that
		// setter is deprecated in favour of rewrite rules.
		if err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External:        s.cfg.PublicIPs,
			AsCandidateType: webrtc.ICECandidateTypeHost,
			Mode:            webrtc.ICEAddressRewriteReplace,
		}); err != nil {
			return se, fmt.Errorf("sfu: public IPs %v: %w", s.cfg.PublicIPs, err)
		}
	}
	se.SetIncludeLoopbackCandidate(s.cfg.IncludeLoopback)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetICETimeouts(s.cfg.ICEDisconnectedTimeout, s.cfg.ICEFailedTimeout, iceKeepaliveInterval)
	se.SetLite(false)
	return se, nil
}

// connStack is the codecs and interceptors of one kind of connection.
// pion copies the media engine and builds the interceptors afresh for
// every connection, so one stack serves them all.
type connStack struct {
	media *webrtc.MediaEngine
	reg   *interceptor.Registry
}

func newConnStack(audioLevel bool, strict interceptor.Factory, interceptors func(*interceptor.Registry) error) (connStack, error) {
	me, err := newMediaEngine(audioLevel)
	if err != nil {
		return connStack{}, err
	}
	reg, err := newInterceptorRegistry(strict, interceptors)
	if err != nil {
		return connStack{}, err
	}
	return connStack{media: me, reg: reg}, nil
}

// newPeerConnection builds one connection of a participant on a
// webrtc.API of its own: the SFU's settings, st's codecs and
// interceptors, and guard as the BufferFactory, so that every SRTP and
// SRTCP stream pion opens on it is counted against it (ssrcguard.go).
//
// pion starts no RTX repair reader on its own when a BufferFactory is set
// (DTLSTransport.streamsForSSRC); the SFU negotiates no RTX, so nothing
// changes for it.
func (s *SFU) newPeerConnection(st connStack, guard *ssrcGuard, cfg webrtc.Configuration) (*webrtc.PeerConnection, error) {
	se := s.se
	se.BufferFactory = guard.newBuffer
	api := webrtc.NewAPI(
		webrtc.WithSettingEngine(se),
		webrtc.WithMediaEngine(st.media),
		webrtc.WithInterceptorRegistry(st.reg),
	)
	return api.NewPeerConnection(cfg)
}

// newMediaEngine lists the codecs and header extensions both connections
// negotiate; audioLevel adds the RFC 6464 audio-level extension
// (Config.AudioLevelExtension).
func newMediaEngine(audioLevel bool) (*webrtc.MediaEngine, error) {
	me := &webrtc.MediaEngine{}
	if err := wire.RegisterCodecs(me, audioLevel); err != nil {
		return nil, fmt.Errorf("sfu: %w", err)
	}
	return me, nil
}

// newInterceptorRegistry builds a connection's interceptor chain: the
// strict checks first, then what add registers. First matters: pion binds
// a chain in registration order, so the first interceptor is the innermost
// reader (it sees an incoming packet before any other interceptor parses
// it) and the innermost writer too (it sees an outgoing packet last, after
// every other interceptor had its say). strictInterceptor's
// documentation has the details; TestStrictInterceptorIsFirst holds it.
func newInterceptorRegistry(strict interceptor.Factory, add func(*interceptor.Registry) error) (*interceptor.Registry, error) {
	reg := &interceptor.Registry{}
	reg.Add(strict)
	if err := add(reg); err != nil {
		return nil, err
	}
	return reg, nil
}

// newPublisherInterceptors adds the interceptors of the connections the
// SFU receives on: NACKs toward the publisher for lost packets, receiver
// reports, and transport-wide congestion feedback. There is deliberately
// no NACK responder here (nothing is sent on this connection).
func newPublisherInterceptors(reg *interceptor.Registry) error {
	gen, err := nack.NewGeneratorInterceptor()
	if err != nil {
		return fmt.Errorf("sfu: nack generator: %w", err)
	}
	reg.Add(gen)
	rr, err := report.NewReceiverInterceptor()
	if err != nil {
		return fmt.Errorf("sfu: receiver reports: %w", err)
	}
	reg.Add(rr)
	// webrtc.ConfigureTWCCSender would register the transport-cc feedback
	// and extension a second time; newMediaEngine already has them.
	tw, err := twcc.NewSenderInterceptor()
	if err != nil {
		return fmt.Errorf("sfu: twcc sender: %w", err)
	}
	reg.Add(tw)
	return nil
}

// newSubscriberInterceptors adds the interceptors of the connections the
// SFU sends on: sender reports only. pion's NACK responder is left out on
// purpose: the SFU answers NACKs itself from the track's shared packet
// cache rather than keeping a copy of every packet per subscriber.
func newSubscriberInterceptors(reg *interceptor.Registry) error {
	sr, err := report.NewSenderInterceptor()
	if err != nil {
		return fmt.Errorf("sfu: sender reports: %w", err)
	}
	reg.Add(sr)
	return nil
}

// Port returns the media port bound, UDP and (unless disabled) TCP.
func (s *SFU) Port() int { return s.port }

// Close closes every participant and then the media sockets. It is safe
// to call more than once.
func (s *SFU) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		var all []*Participant
		for _, r := range s.rooms {
			for _, p := range r.participants {
				all = append(all, p)
			}
		}
		s.mu.Unlock()
		for _, p := range all {
			p.Close()
		}
		err = s.closeSockets()
	})
	return err
}

func (s *SFU) closeSockets() error {
	var errs []error
	if s.tcpMux != nil {
		if err := s.tcpMux.Close(); err != nil {
			errs = append(errs, fmt.Errorf("sfu: close TCP mux: %w", err))
		}
	}
	if err := s.udpMux.Close(); err != nil {
		errs = append(errs, fmt.Errorf("sfu: close UDP mux: %w", err))
	}
	return errors.Join(errs...)
}

// RoomTracks returns every live track of the room: the tracks a
// participant joining now would be offered.
func (s *SFU) RoomTracks(roomName string) []TrackInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[roomName]
	if r == nil {
		return nil
	}
	out := make([]TrackInfo, 0, len(r.tracks))
	for _, t := range r.tracks {
		if t.announced {
			out = append(out, t.infoLocked())
		}
	}
	sortTracks(out)
	return out
}

// sortTracks orders tracks by SID, so listings are stable.
func sortTracks(ts []TrackInfo) {
	slices.SortFunc(ts, func(a, b TrackInfo) int { return strings.Compare(a.SID, b.SID) })
}

// Counts returns how many rooms, participants, tracks and subscriptions
// the SFU holds right now.
func (s *SFU) Counts() Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	var c Counts
	c.Rooms = len(s.rooms)
	for _, r := range s.rooms {
		c.Participants += len(r.participants)
		c.Tracks += len(r.tracks)
		for _, p := range r.participants {
			c.Subscriptions += len(p.subs)
		}
	}
	return c
}
